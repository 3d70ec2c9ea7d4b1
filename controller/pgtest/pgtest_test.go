//go:build unix

package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/pgserver"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func scalar[T any](t testing.TB, pool *pgxpool.Pool, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := pool.QueryRow(ctxT(t), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func TestParallelTestsAreIsolated(t *testing.T) {
	SkipShort(t)
	t.Parallel()
	var mu sync.Mutex
	names := map[string]string{}
	t.Run("group", func(t *testing.T) {
		for _, who := range []string{"a", "b"} {
			t.Run(who, func(t *testing.T) {
				t.Parallel()
				pool := NewPool(t)
				ctx := ctxT(t)
				own := "only_" + who
				for _, sql := range []string{
					"CREATE TABLE items (v text)",
					"INSERT INTO items VALUES ('" + who + "')",
					"CREATE TABLE " + own + " (x int)",
				} {
					if _, err := pool.Exec(ctx, sql); err != nil {
						t.Fatalf("%s: %v", sql, err)
					}
				}
				// Let the sibling create its tables before looking.
				time.Sleep(200 * time.Millisecond)
				if got := scalar[string](t, pool, "SELECT string_agg(v, ',') FROM items"); got != who {
					t.Errorf("items = %q, want only %q", got, who)
				}
				other := "only_a"
				if who == "a" {
					other = "only_b"
				}
				if n := scalar[int](t, pool, "SELECT count(*) FROM pg_tables WHERE tablename = $1", other); n != 0 {
					t.Errorf("sees the other test's table %s", other)
				}
				mu.Lock()
				names[who] = scalar[string](t, pool, "SELECT current_database()")
				mu.Unlock()
			})
		}
	})
	if names["a"] == "" || names["a"] == names["b"] {
		t.Fatalf("databases not distinct: %v", names)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "test_") {
			t.Errorf("database %q lacks the test_ prefix", n)
		}
	}
}

func TestTemplateIsClonedNotRerun(t *testing.T) {
	SkipShort(t)
	t.Parallel()
	const clones = 10
	last := NewPool(t) // warm-up: may start the cluster and build the template
	begin := time.Now()
	for range clones {
		last = NewPool(t)
	}
	t.Logf("clone-from-template per test (NewPool incl. connect): %s", (time.Since(begin) / clones).Round(time.Millisecond))
	if n := scalar[int](t, last, "SELECT count(*) FROM "+markerTable); n != markerRows {
		t.Fatalf("clone has %d marker rows, want %d", n, markerRows)
	}
	if _, err := last.Exec(ctxT(t), "DELETE FROM "+markerTable); err != nil {
		t.Fatal(err)
	}
	next := NewPool(t)
	if n := scalar[int](t, next, "SELECT count(*) FROM "+markerTable); n != markerRows {
		t.Fatalf("changes in one clone leaked into the next: %d rows", n)
	}
	if n := hookCalls.Load(); n != 1 {
		t.Fatalf("template hook ran %d times, want once", n)
	}
}

func TestDatabaseIsDroppedAtCleanup(t *testing.T) {
	SkipShort(t)
	t.Parallel()
	var name string
	t.Run("user", func(t *testing.T) {
		name = scalar[string](t, NewPool(t), "SELECT current_database()")
	})
	observer := NewPool(t)
	if n := scalar[int](t, observer, "SELECT count(*) FROM pg_database WHERE datname = $1", name); n != 0 {
		t.Fatalf("database %s still exists after its test finished", name)
	}
}

func TestDropDisconnectsLeakedConnections(t *testing.T) {
	SkipShort(t)
	t.Parallel()
	var leaked *pgx.Conn
	t.Run("leaks", func(t *testing.T) {
		var err error
		leaked, err = pgx.Connect(ctxT(t), NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
	})
	defer leaked.Close(ctxT(t))
	// Cleanup dropped the database WITH (FORCE) despite the open connection.
	if err := leaked.Ping(ctxT(t)); err == nil {
		t.Fatal("leaked connection survived the drop")
	}
}

func TestPrivateClusterSurvivesFaults(t *testing.T) {
	SkipShort(t)
	t.Parallel()
	srv := NewPrivateCluster(t)
	url := srv.URL(pgserver.DefaultDatabase)
	exec := func(sql string) {
		t.Helper()
		conn, err := pgx.Connect(ctxT(t), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctxT(t))
		if _, err := conn.Exec(ctxT(t), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("CREATE TABLE results (id int)")
	exec("INSERT INTO results VALUES (1)")
	pid := srv.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 postmaster %d: %v", pid, err)
	}
	if err := srv.Restart(ctxT(t)); err != nil {
		t.Fatalf("Restart after kill -9: %v", err)
	}
	if srv.PID() == pid {
		t.Fatal("PID unchanged after restart")
	}
	exec("INSERT INTO results VALUES (2)")
	conn, err := pgx.Connect(ctxT(t), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctxT(t))
	var n int
	var fsync string
	if err := conn.QueryRow(ctxT(t), "SELECT count(*), current_setting('fsync') FROM results").Scan(&n, &fsync); err != nil {
		t.Fatal(err)
	}
	if n != 2 || fsync != "on" {
		t.Fatalf("rows=%d fsync=%s, want 2 rows and production fsync=on", n, fsync)
	}
}

// TestSharedClusterStoppedWhenTestPanics runs TestHelperPanics in a child
// process: it starts the shared cluster and panics, so Main never gets to
// clean up. The pgserver watchdog must stop the postmaster and delete the
// cluster directory anyway.
func TestSharedClusterStoppedWhenTestPanics(t *testing.T) {
	SkipShort(t)
	t.Parallel()
	out := runSelf(t, "^TestHelperPanics$", helperPanic, "", true)
	vals := parseKV(out)
	pid, _ := strconv.Atoi(vals["PID"])
	dir := vals["DIR"]
	if pid == 0 || dir == "" {
		t.Fatalf("helper did not report its cluster:\n%s", out)
	}
	if vals["TABLES"] != "0" {
		t.Errorf("database without template has %s tables, want 0", vals["TABLES"])
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		errPID := syscall.Kill(pid, 0)
		_, errDir := os.Stat(dir)
		if errors.Is(errPID, syscall.ESRCH) && errors.Is(errDir, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the panic: postmaster %d alive=%v, dir %s err=%v", pid, errPID == nil, dir, errDir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestHelperPanics(t *testing.T) {
	SkipShort(t)
	if os.Getenv(helperEnv) != helperPanic {
		t.Skip("helper process for TestSharedClusterStoppedWhenTestPanics")
	}
	pool := NewPool(t)
	tables := scalar[int](t, pool, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
	srv := shared.server
	fmt.Printf("PID=%d\nDIR=%s\nTABLES=%d\n", srv.PID(), srv.DataDir(), tables)
	_ = os.Stdout.Sync()
	panic("deliberate panic to prove the cluster is cleaned up")
}

// TestExternalServer runs this package's database tests in a child process
// pointed at a server through SCANORAMA_TEST_DATABASE_URL, then checks they
// left no databases behind.
func TestExternalServer(t *testing.T) {
	SkipShort(t)
	if os.Getenv(helperEnv) != "" {
		t.Skip("already a helper process")
	}
	t.Parallel()
	srv := NewPrivateCluster(t)
	out := runSelf(t, "^(TestParallelTestsAreIsolated|TestTemplateIsClonedNotRerun|TestDatabaseIsDroppedAtCleanup)$", helperNested, srv.URL("postgres"), false)
	if !strings.Contains(out, "--- PASS: TestTemplateIsClonedNotRerun") {
		t.Fatalf("nested run did not pass:\n%s", out)
	}
	conn, err := pgx.Connect(ctxT(t), srv.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctxT(t))
	var left []string
	rows, err := conn.Query(ctxT(t), "SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%' OR datname LIKE 'tpl\\_%'")
	if err != nil {
		t.Fatal(err)
	}
	left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("external server still has %v", left)
	}
}

// runSelf runs this test binary with -test.run=pattern in helper mode.
func runSelf(t *testing.T, pattern, mode, dbURL string, wantFail bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+pattern, "-test.v", "-test.count=1")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvDatabaseURL+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, helperEnv+"="+mode)
	if dbURL != "" {
		env = append(env, EnvDatabaseURL+"="+dbURL)
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if (err != nil) != wantFail {
		t.Fatalf("child %s: err=%v, want failure=%v\n%s", pattern, err, wantFail, out)
	}
	return string(out)
}

func parseKV(out string) map[string]string {
	vals := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && k != "" && !strings.ContainsAny(k, " \t") {
			vals[k] = v
		}
	}
	return vals
}

// BenchmarkNewDatabase measures one template clone (drops happen at the
// end).
func BenchmarkNewDatabase(b *testing.B) {
	NewDatabase(b) // start the cluster and build the template outside the loop
	for b.Loop() {
		NewDatabase(b)
	}
}
