package migrate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgtest"
	"github.com/scanorama/scanorama/sql/functions"
)

// applyRelease migrates conn the way the controller of an older release
// did: its files in order, recorded in a schema_migrations table without
// checksums.
func applyRelease(ctx context.Context, t *testing.T, conn *pgx.Conn, dir string) int {
	t.Helper()
	old, err := migrate.Load(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, m := range old {
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		}); err != nil {
			t.Fatalf("%s/%s: %v", dir, m.File(), err)
		}
	}
	return len(old)
}

func connect(ctx context.Context, t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// An older release's database, with data, upgrades to the current schema:
// the new migrations apply, the old rows get their checksums, and every
// row is still there.
func TestUpgradeFromPreviousReleases(t *testing.T) {
	t.Parallel()
	releases, err := filepath.Glob("testdata/release-*")
	if err != nil || len(releases) == 0 {
		t.Fatalf("no releases in testdata (%v)", err)
	}
	data, err := os.ReadFile("testdata/release-data.sql")
	if err != nil {
		t.Fatal(err)
	}
	all, err := migrate.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range releases {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			conn := connect(ctx, t, pgtest.NewDatabase(t))
			n := applyRelease(ctx, t, conn, dir)
			if _, err := conn.Exec(ctx, string(data)); err != nil {
				t.Fatalf("release data: %v", err)
			}
			applied, err := migrate.Up(ctx, conn, hclog.NewNullLogger())
			if err != nil {
				t.Fatalf("upgrade from %s: %v", dir, err)
			}
			if len(applied) != len(all)-n || applied[0] != n+1 {
				t.Fatalf("applied %v on top of %d old migrations; want %d..%d", applied, n, n+1, len(all))
			}
			for _, m := range all {
				var sum string
				if err := conn.QueryRow(ctx, "SELECT checksum FROM schema_migrations WHERE version = $1", m.Version).Scan(&sum); err != nil || sum != m.Checksum() {
					t.Errorf("%s: checksum %q (%v), want %s", m.File(), sum, err, m.Checksum())
				}
			}
			for _, c := range []struct {
				sql  string
				want int
			}{
				{"SELECT count(*) FROM sites WHERE name = 'lab' AND description = 'upgraded site' AND archived_at IS NULL", 1},
				{"SELECT count(*) FROM scan_targets WHERE name = 'web' AND network = '10.99.7.0/24' AND purge_requested_at IS NULL", 1},
				{"SELECT count(*) FROM scan_target_ports", 2},
				{"SELECT count(*) FROM scan_runs", 1},
				{"SELECT count(*) FROM scan_jobs WHERE status = 'completed' AND run_id IS NOT NULL", 1},
				{"SELECT count(*) FROM scan_job_leases", 1},
				{"SELECT count(*) FROM hosts WHERE status = 'up'", 2},
				{"SELECT count(*) FROM port_scans", 4},
				{"SELECT count(*) FROM services WHERE state = 'open'", 4},
				{"SELECT count(*) FROM hosts WHERE open_ports = 2", 2}, // 0021 counts the ports already there
				{"SELECT count(*) FROM host_history", 6},
			} {
				var got int
				if err := conn.QueryRow(ctx, c.sql).Scan(&got); err != nil || got != c.want {
					t.Errorf("%s = %d (%v), want %d", c.sql, got, err, c.want)
				}
			}
			if again, err := migrate.Up(ctx, conn, hclog.NewNullLogger()); err != nil || len(again) != 0 {
				t.Fatalf("second start applied %v (%v); want nothing", again, err)
			}
		})
	}
}

// A migration edited after a database applied it stops the controller,
// naming the file; so does a tampered checksum.
func TestEditedMigrationIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := connect(ctx, t, pgtest.NewDatabase(t))
	all, err := migrate.All()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.UpMigrations(ctx, conn, hclog.NewNullLogger(), all); err != nil {
		t.Fatal(err)
	}
	edited := append([]migrate.Migration(nil), all...)
	edited[1].SQL += "\n-- a harmless-looking edit\n"
	_, err = migrate.UpMigrations(ctx, conn, hclog.NewNullLogger(), edited)
	if !errors.Is(err, migrate.ErrChecksumMismatch) || !strings.Contains(err.Error(), edited[1].File()) {
		t.Fatalf("edited %s: err %v; want ErrChecksumMismatch naming the file", edited[1].File(), err)
	}
	renamed := append([]migrate.Migration(nil), all...)
	renamed[2].Name = "something_else"
	if _, err := migrate.UpMigrations(ctx, conn, hclog.NewNullLogger(), renamed); !errors.Is(err, migrate.ErrChecksumMismatch) {
		t.Fatalf("renamed migration: err %v; want ErrChecksumMismatch", err)
	}
	// The untouched set still starts.
	if _, err := migrate.UpMigrations(ctx, conn, hclog.NewNullLogger(), all); err != nil {
		t.Fatalf("unchanged migrations refused: %v", err)
	}
}

// sql/functions/ingest_commit.sql is the canonical source of ingest_commit
// and ingest_commit_many: the migrated database's definitions must equal
// what that file creates.
func TestIngestCommitMatchesCanonicalSource(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	migrated := connect(ctx, t, pgtest.NewDatabase(t))
	if _, err := migrate.Up(ctx, migrated, hclog.NewNullLogger()); err != nil {
		t.Fatal(err)
	}
	canonical, err := functions.FS.ReadFile("ingest_commit.sql")
	if err != nil {
		t.Fatal(err)
	}
	// The function bodies are not checked against tables when created, so
	// an empty database takes the file as it is.
	scratch := connect(ctx, t, pgtest.NewDatabase(t))
	if _, err := scratch.Exec(ctx, string(canonical)); err != nil {
		t.Fatalf("run sql/functions/ingest_commit.sql: %v", err)
	}
	const q = `SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
		WHERE p.proname IN ('ingest_commit', 'ingest_commit_many') AND p.pronamespace = 'public'::regnamespace ORDER BY 1`
	defs := func(conn *pgx.Conn) map[string]string {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for rows.Next() {
			var name, def string
			if err := rows.Scan(&name, &def); err != nil {
				t.Fatal(err)
			}
			if _, dup := out[name]; dup {
				t.Fatalf("%s is overloaded: one definition each, please", name)
			}
			out[name] = def
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want, got := defs(scratch), defs(migrated)
	for _, name := range []string{"ingest_commit", "ingest_commit_many"} {
		if want[name] == "" {
			t.Fatalf("sql/functions/ingest_commit.sql does not define %s", name)
		}
		if got[name] != want[name] {
			t.Errorf("%s in the migrated database differs from sql/functions/ingest_commit.sql: a migration changed it "+
				"without the canonical file, or the file without a migration.\nmigrated:\n%s\ncanonical:\n%s", name, got[name], want[name])
		}
	}
}
