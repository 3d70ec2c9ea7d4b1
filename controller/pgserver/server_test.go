//go:build unix

package pgserver

import (
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
)

func TestLifecycle(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := reachableTempDir(t)

	begin := time.Now()
	s := startT(t, Options{DataDir: dir})
	t.Logf("initdb+start: %s", time.Since(begin).Round(time.Millisecond))
	url := s.URL(DefaultDatabase)
	if !strings.HasPrefix(url, "postgres://scanorama:") || !strings.Contains(url, "@127.0.0.1:"+strconv.Itoa(s.Port())+"/scanorama?sslmode=disable") {
		t.Fatalf("unexpected URL %q", url)
	}
	execSQL(t, url, "CREATE TABLE results (id int PRIMARY KEY)", "INSERT INTO results VALUES (1)")

	t.Run("configuration", func(t *testing.T) {
		ctx := testContext(t)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		want := map[string]string{
			"listen_addresses":    "127.0.0.1",
			"fsync":               "on",
			"synchronous_commit":  "on",
			"max_connections":     "200",
			"shared_buffers":      "128MB",
			"server_encoding":     "UTF8",
			"password_encryption": "scram-sha-256",
			"data_checksums":      "on",
			"port":                strconv.Itoa(s.Port()),
		}
		for name, v := range want {
			var got string
			if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&got); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got != v {
				t.Errorf("%s = %q, want %q", name, got, v)
			}
		}
		var sockets string
		if err := conn.QueryRow(ctx, "SELECT current_setting('unix_socket_directories')").Scan(&sockets); err != nil {
			t.Fatal(err)
		}
		if sockets != "" && !strings.HasPrefix(sockets, dir) {
			t.Errorf("unix_socket_directories = %q, want inside %s", sockets, dir)
		}
	})

	t.Run("files and ownership", func(t *testing.T) {
		fi, err := os.Stat(filepath.Join(dir, passwordName))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("password file mode %v, want 0600", fi.Mode().Perm())
		}
		if fileSize(filepath.Join(dir, logName)) == 0 {
			t.Errorf("server log %s is empty", filepath.Join(dir, logName))
		}
		if os.Geteuid() != 0 {
			return
		}
		u, err := user.Lookup(DefaultOSUser)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{s.PGData(), filepath.Join(dir, socketName), s.LogFile()} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if uid, _, _ := fileOwner(fi); strconv.Itoa(int(uid)) != u.Uid {
				t.Errorf("%s owned by uid %d, want %s (%s)", p, uid, u.Uid, DefaultOSUser)
			}
		}
	})

	t.Run("PID is the postmaster", func(t *testing.T) {
		pid := s.PID()
		if st, comm := inspectProcess(pid); st != procRunning || comm != "postgres" {
			t.Fatalf("PID %d: state %v comm %q", pid, st, comm)
		}
		backend := queryInt(t, url, "SELECT pg_backend_pid()")
		if got := parentPID(t, backend); got != pid {
			t.Fatalf("backend %d has parent %d, want postmaster %d", backend, got, pid)
		}
	})

	t.Run("second owner is refused", func(t *testing.T) {
		_, err := Start(testContext(t), Options{DataDir: dir, Logger: hclog.NewNullLogger()})
		if !errors.Is(err, ErrDataDirInUse) {
			t.Fatalf("Start on an owned data dir: %v, want ErrDataDirInUse", err)
		}
	})

	t.Run("stop is idempotent", func(t *testing.T) {
		for i := range 2 {
			if err := s.Stop(testContext(t)); err != nil {
				t.Fatalf("Stop #%d: %v", i+1, err)
			}
		}
		if pid := s.PID(); pid != 0 {
			t.Fatalf("PID after Stop = %d", pid)
		}
		if conn, err := pgx.Connect(testContext(t), url); err == nil {
			conn.Close(testContext(t))
			t.Fatal("connected to a stopped server")
		}
	})

	// From here on the data dir belongs to s2; s is stopped and Destroy on
	// it only removes files.
	begin = time.Now()
	s2 := startT(t, Options{DataDir: dir})
	t.Logf("start of existing cluster: %s", time.Since(begin).Round(time.Millisecond))

	t.Run("start again keeps data, password and port", func(t *testing.T) {
		if got := s2.URL(DefaultDatabase); got != url {
			t.Fatalf("URL changed across restart: %q -> %q", url, got)
		}
		if n := queryInt(t, url, "SELECT count(*) FROM results"); n != 1 {
			t.Fatalf("rows after restart = %d, want 1", n)
		}
	})

	t.Run("restart", func(t *testing.T) {
		// A superuser cannot widen the listen address with ALTER SYSTEM.
		execSQL(t, url, "ALTER SYSTEM SET listen_addresses = '*'")
		old := s2.PID()
		begin := time.Now()
		if err := s2.Restart(testContext(t)); err != nil {
			t.Fatal(err)
		}
		t.Logf("restart: %s", time.Since(begin).Round(time.Millisecond))
		if s2.PID() == old || s2.PID() == 0 {
			t.Fatalf("PID %d -> %d after Restart", old, s2.PID())
		}
		execSQL(t, url, "INSERT INTO results VALUES (2)")
		ctx := testContext(t)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var listen string
		if err := conn.QueryRow(ctx, "SELECT current_setting('listen_addresses')").Scan(&listen); err != nil {
			t.Fatal(err)
		}
		if listen != ListenAddress {
			t.Fatalf("listen_addresses = %q after ALTER SYSTEM, want %s", listen, ListenAddress)
		}
	})

	t.Run("restart after kill -9", func(t *testing.T) {
		old := s2.PID()
		killPostmaster(t, old)
		begin := time.Now()
		if err := s2.Restart(testContext(t)); err != nil {
			t.Fatal(err)
		}
		t.Logf("restart after kill -9: %s", time.Since(begin).Round(time.Millisecond))
		if n := queryInt(t, url, "SELECT count(*) FROM results"); n != 2 {
			t.Fatalf("rows after crash = %d, want 2", n)
		}
	})

	t.Run("stop and start after kill -9", func(t *testing.T) {
		killPostmaster(t, s2.PID())
		begin := time.Now()
		if err := s2.Stop(testContext(t)); err != nil {
			t.Fatalf("Stop of a killed server: %v", err)
		}
		if d := time.Since(begin); d > 5*time.Second {
			t.Errorf("Stop of a killed server took %s", d)
		}
		s3 := startT(t, Options{DataDir: dir})
		if n := queryInt(t, s3.URL(DefaultDatabase), "SELECT count(*) FROM results"); n != 2 {
			t.Fatalf("rows after crash = %d, want 2", n)
		}
	})
}

func TestStartTakesOverOrphanedServer(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := reachableTempDir(t)
	orphan := runHelperProcess(t, "orphan", dir)
	if st, _ := inspectProcess(orphan); st != procRunning {
		t.Fatalf("orphaned postmaster %d is not running", orphan)
	}
	s := startT(t, Options{DataDir: dir})
	if s.PID() == orphan {
		t.Fatal("Start reused the orphan instead of restarting it with current settings")
	}
	waitFor(t, "orphaned postmaster to exit", 10*time.Second, func() bool {
		st, _ := inspectProcess(orphan)
		return st != procRunning
	})
	if n := queryInt(t, s.URL(DefaultDatabase), "SELECT 1"); n != 1 {
		t.Fatal("query failed")
	}
}

func TestEphemeralCleanupWhenProcessIsKilled(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := reachableTempDir(t)
	pid := runHelperProcess(t, "ephemeral-kill", dir)
	waitFor(t, "watchdog to stop the postmaster", 20*time.Second, func() bool {
		st, _ := inspectProcess(pid)
		return st == procGone
	})
	waitFor(t, "watchdog to remove the data dir", 10*time.Second, func() bool {
		_, err := os.Stat(dir)
		return errors.Is(err, fs.ErrNotExist)
	})
}

func TestRelocatesUnreachableDataDir(t *testing.T) {
	skipShort(t)
	if os.Geteuid() != 0 {
		t.Skip("relocation only happens when running as root")
	}
	t.Parallel()
	// t.TempDir() lives under a root-only 0700 directory.
	dir := filepath.Join(t.TempDir(), "data")
	s := startT(t, Options{DataDir: dir})
	u, err := user.Lookup(DefaultOSUser)
	if err != nil {
		t.Fatal(err)
	}
	target, err := os.Readlink(filepath.Join(dir, pgdataName))
	if err != nil {
		t.Fatalf("pgdata is not a relocation link: %v", err)
	}
	if target != s.PGData() || !strings.HasPrefix(target, filepath.Join(u.HomeDir, relocationRoot)+"/") {
		t.Fatalf("relocated to %q (PGData %q), want under %s", target, s.PGData(), u.HomeDir)
	}
	execSQL(t, s.URL(DefaultDatabase), "CREATE TABLE kept (x int)")

	if err := s.Stop(testContext(t)); err != nil {
		t.Fatal(err)
	}
	s2 := startT(t, Options{DataDir: dir})
	if s2.PGData() != target {
		t.Fatalf("second start used %q, want the recorded %q", s2.PGData(), target)
	}
	if n := queryInt(t, s2.URL(DefaultDatabase), "SELECT count(*) FROM kept"); n != 0 {
		t.Fatalf("count = %d", n)
	}
	if err := s2.Destroy(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(target)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("relocated cluster dir survived Destroy: %v", err)
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	skipShort(t)
	t.Parallel()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"reserved listen_addresses", Options{Settings: map[string]string{"listen_addresses": "*"}}, "managed by pgserver"},
		{"reserved port", Options{Settings: map[string]string{"port": "5432"}}, "managed by pgserver"},
		{"bad setting name", Options{Settings: map[string]string{"x; drop": "1"}}, "invalid setting name"},
		{"negative port", Options{Port: -1}, "invalid port"},
		{"port too large", Options{Port: 70000}, "invalid port"},
		{"missing bin dir", Options{BinDir: "/nonexistent/pg/bin"}, "no usable PostgreSQL bin dir"},
		{"unknown OS user", Options{User: "no-such-user-scanorama"}, "cannot be used"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.name == "unknown OS user" && os.Geteuid() != 0 {
				t.Skip("User is only used as root")
			}
			o := tt.opts
			o.DataDir = reachableTempDir(t)
			o.Logger = hclog.NewNullLogger()
			s, err := Start(testContext(t), o)
			if err == nil {
				_ = s.Destroy(testContext(t))
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestDestroyAfterKillRemovesSharedMemory(t *testing.T) {
	skipShort(t)
	if _, err := os.Stat("/proc/sysvipc/shm"); err != nil {
		t.Skip("no /proc/sysvipc/shm")
	}
	t.Parallel()
	s, err := Start(testContext(t), Options{DataDir: reachableTempDir(t), Logger: testLogger(t), Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(s.PGData(), "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(strings.Split(string(b), "\n")[6])
	shmid := fields[1]
	if segs, _ := os.ReadFile("/proc/sysvipc/shm"); !strings.Contains(string(segs), " "+shmid+" ") {
		t.Fatalf("segment %s not listed before the kill", shmid)
	}
	killPostmaster(t, s.PID())
	if err := s.Destroy(testContext(t)); err != nil {
		t.Fatal(err)
	}
	segs, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(segs), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && f[1] == shmid {
			t.Fatalf("shared memory segment %s survived Destroy: %s", shmid, line)
		}
	}
}
