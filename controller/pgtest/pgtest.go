package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/internal/pguuid"
	"github.com/scanorama/scanorama/controller/pgserver"
)

// Main runs the tests and then stops the shared test cluster (if one was
// started) before exiting with the tests' status. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if err := shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest: shutdown:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// shutdown releases the shared backend.
func shutdown() error {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	b := shared
	shared, sharedErr = nil, fmt.Errorf("pgtest: the test cluster was shut down by Main")
	return b.close(ctx)
}

// NewDatabase creates a fresh database for this test (a clone of the
// template when SetTemplate was used, else empty), drops it at t.Cleanup,
// and returns a superuser URL to it. Safe for parallel tests.
func NewDatabase(t testing.TB) string {
	t.Helper()
	SkipShort(t)
	b, err := sharedBackend()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	tpl, err := b.template(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := newName("test")
	if err := b.createDatabase(ctx, name, tpl); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := b.dropDatabase(ctx, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return b.databaseURL(name)
}

// NewPool is NewDatabase plus a pgxpool connected to it, closed at cleanup
// (before the database is dropped).
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	dbURL := NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	// The controller's own pool reads uuids this way.
	pguuid.ConfigurePool(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("pgtest: ping test database: %v", err)
	}
	return pool
}

// NewPrivateCluster starts a cluster for this test alone, with production
// settings (fsync on), for fault tests that kill, stop or restart the server
// (see PID, Restart, Stop). It is destroyed at t.Cleanup; it ignores
// SCANORAMA_TEST_DATABASE_URL. Database "scanorama" exists; use
// srv.URL("scanorama").
func NewPrivateCluster(t testing.TB) *pgserver.Server {
	t.Helper()
	SkipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := startCluster(ctx, "scanorama-pgtest-private-", nil)
	if err != nil {
		t.Fatalf("pgtest: start private cluster: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := srv.Destroy(ctx); err != nil {
			t.Errorf("pgtest: destroy private cluster: %v", err)
		}
	})
	return srv
}

// SkipShort skips a test that needs PostgreSQL when tests run with -short,
// so `make test-short` passes on a machine without PostgreSQL installed.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL: skipped under -short")
	}
}

var (
	logOnce sync.Once
	log     hclog.Logger
)

// logger is the harness's logger: stderr, level from SCANORAMA_PGTEST_LOG
// (default warn).
func logger() hclog.Logger {
	logOnce.Do(func() {
		level := hclog.LevelFromString(os.Getenv("SCANORAMA_PGTEST_LOG"))
		if level == hclog.NoLevel {
			level = hclog.Warn
		}
		log = hclog.New(&hclog.LoggerOptions{Name: "pgtest", Level: level, Output: os.Stderr})
	})
	return log
}
