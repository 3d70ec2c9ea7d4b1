//go:build unix

package pgserver

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
)

// Helper-process protocol: the test binary re-executes itself with these
// variables set to act as a separate controller process.
const (
	helperModeEnv = "PGSERVER_TEST_HELPER"
	helperDirEnv  = "PGSERVER_TEST_DIR"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperModeEnv); mode != "" {
		os.Exit(runHelper(mode, os.Getenv(helperDirEnv)))
	}
	os.Exit(m.Run())
}

// runHelper starts a server in dir and prints its postmaster pid, then
// leaves without stopping it: "orphan" exits normally, "ephemeral-kill"
// starts an Ephemeral server and SIGKILLs itself.
func runHelper(mode, dir string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := Options{DataDir: dir, Logger: hclog.NewNullLogger(), Ephemeral: mode == "ephemeral-kill"}
	s, err := Start(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Printf("PID=%d\n", s.PID())
	if mode == "ephemeral-kill" {
		_ = os.Stdout.Sync()
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	return 0
}

// runHelperProcess runs the helper and returns the pid it printed.
func runHelperProcess(t *testing.T, mode, dir string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperModeEnv+"="+mode, helperDirEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if mode != "ephemeral-kill" && err != nil {
		t.Fatalf("helper %s: %v\n%s", mode, err, stderr.String())
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PID="); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("helper printed bad pid %q", v)
			}
			return pid
		}
	}
	t.Fatalf("helper %s printed no pid (err %v)\nstdout: %s\nstderr: %s", mode, err, out, stderr.String())
	return 0
}

// reachableTempDir returns a fresh directory the PostgreSQL OS user can
// traverse (t.TempDir's parent is 0700 and would trigger relocation).
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgserver-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func testLogger(t *testing.T) hclog.Logger {
	level := hclog.LevelFromString(os.Getenv("PGSERVER_TEST_LOG"))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: t.Output(), Level: level})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// startT starts a server and destroys it at cleanup.
func startT(t *testing.T, o Options) *Server {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	s, err := Start(testContext(t), o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Destroy(ctx); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	return s
}

// queryInt runs a single-value query against url.
func queryInt(t *testing.T, url, sql string) int {
	t.Helper()
	ctx := testContext(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func execSQL(t *testing.T, url string, sqls ...string) {
	t.Helper()
	ctx := testContext(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	for _, sql := range sqls {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// waitFor polls cond until it holds or the timeout expires.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// parentPID reads the ppid of pid from /proc.
func parentPID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		t.Fatalf("parse ppid from %q: %v", s, err)
	}
	return ppid
}

func killPostmaster(t *testing.T, pid int) {
	t.Helper()
	if pid == 0 {
		t.Fatal("no postmaster pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
}

// skipShort skips tests that start a real cluster under -short, so
// `make test-short` passes where PostgreSQL is not installed.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PostgreSQL: skipped under -short")
	}
}
