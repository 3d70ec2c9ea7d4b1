// Package pgtest owns the PostgreSQL test harness shared by every package's
// tests: real PostgreSQL, no mocks, one isolated database per test.
//
// Use it from a package's tests like this:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		pool := pgtest.NewPool(t) // fresh, empty database, dropped at cleanup
//		...
//	}
//
// # Which server
//
// When SCANORAMA_TEST_DATABASE_URL is set (a URL to a running server whose
// role may create databases, normally a superuser), every test binary uses
// that server. `make test` runs the tests under deploy/scripts/with-test-db.sh,
// which starts one for the whole run with
//
//	go run ./controller/pgserver/cmd/pgserver-dev start -data-dir DIR -export
//
// (it prints `export SCANORAMA_TEST_DATABASE_URL=...`) and removes it
// afterwards with `pgserver-dev stop -data-dir DIR -remove`.
//
// Under -short (make test-short) NewDatabase, NewPool and NewPrivateCluster
// skip the test, so unit tests run where PostgreSQL is not installed.
//
// Otherwise the first test that asks for a database starts one throwaway
// cluster for the whole test binary (pgserver, Ephemeral, fsync off) in a
// temporary directory. Main stops and deletes it after the tests; if the
// binary dies first (a test panics, go test's timeout, SIGKILL) the pgserver
// watchdog does it instead.
//
// # Databases
//
// NewDatabase creates test_<random> with CREATE DATABASE and drops it WITH
// (FORCE) at t.Cleanup. When SetTemplate registered a migration hook, the
// hook runs once per test binary against a template database tpl_<random>,
// and every NewDatabase clones it (CREATE DATABASE ... TEMPLATE), which costs
// tens of milliseconds instead of a full migration per test.
//
// Fault tests that need to kill or restart the server use NewPrivateCluster,
// which gives the test a cluster of its own with production settings.
//
// SCANORAMA_PGTEST_LOG (trace, debug, info, warn, error; default warn) sets
// the harness's log level on stderr.
package pgtest
