// Package migrate owns the schema version of a Scanorama database: it applies
// the embedded migrations in order, each in its own transaction, under a
// session advisory lock so that several controllers can start at once.
package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/sql/migrations"
)

// advisoryLockKey is an arbitrary constant shared by all controllers.
const advisoryLockKey int64 = 0x5ca7_0ba3a

// Migration is one embedded schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// File is the migration's file name, e.g. "0006_ingest_commit.sql".
func (m Migration) File() string { return fmt.Sprintf("%04d_%s.sql", m.Version, m.Name) }

// Checksum is the hex sha256 of the migration file, recorded in
// schema_migrations when it is applied.
func (m Migration) Checksum() string {
	sum := sha256.Sum256([]byte(m.SQL))
	return hex.EncodeToString(sum[:])
}

// ErrChecksumMismatch reports a released migration that was edited after a
// database applied it.
var ErrChecksumMismatch = errors.New("migration differs from the one applied")

var fileRe = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// All returns the embedded migrations ordered by version.
func All() ([]Migration, error) {
	return load(migrations.FS)
}

// Load reads the migrations of fsys (NNNN_name.sql files at its root),
// ordered by version: another release's migrations, in tests.
func Load(fsys fs.FS) ([]Migration, error) { return load(fsys) }

func load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		m := fileRe.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration %q: name must look like 0001_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migration version %d used twice (%s, %s)", v, prev, e.Name())
		}
		seen[v] = e.Name()
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: m[2], SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration versions must be 1..n without gaps; found %d at position %d", m.Version, i+1)
		}
	}
	return out, nil
}

// Up applies every migration newer than the database's version and returns
// the versions it applied. It holds a session advisory lock while it works,
// so concurrent callers wait and then find nothing left to do.
func Up(ctx context.Context, conn *pgx.Conn, log hclog.Logger) ([]int, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	return up(ctx, conn, log, all)
}

// UpMigrations is Up with the given migrations instead of the embedded ones.
func UpMigrations(ctx context.Context, conn *pgx.Conn, log hclog.Logger, all []Migration) ([]int, error) {
	return up(ctx, conn, log, all)
}

func up(ctx context.Context, conn *pgx.Conn, log hclog.Logger, all []Migration) (applied []int, err error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", advisoryLockKey); err != nil {
		return nil, fmt.Errorf("take migration lock: %w", err)
	}
	defer func() {
		// A fresh context: the caller's may be cancelled, and a leaked
		// session lock would block every other controller.
		if _, uerr := conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", advisoryLockKey); uerr != nil {
			err = errors.Join(err, fmt.Errorf("release migration lock: %w", uerr))
		}
	}()

	// checksum came later than the table: databases migrated by older
	// controllers get the column here and their rows' checksums below.
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now());
		ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text`); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, "SELECT COALESCE(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	if current > len(all) {
		return nil, fmt.Errorf("database schema version %d is newer than this controller knows (%d): upgrade the controller", current, len(all))
	}
	if err := verify(ctx, conn, log, all[:current]); err != nil {
		return nil, err
	}
	for _, m := range all[current:] {
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", m.Version, m.Name, m.Checksum())
			return err
		}); err != nil {
			return applied, fmt.Errorf("apply migration %04d_%s: %w", m.Version, m.Name, err)
		}
		log.Info("applied migration", "version", m.Version, "name", m.Name)
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// verify compares the applied migrations' recorded checksums with the
// embedded files. A row without a checksum (applied by a controller older
// than checksums) is backfilled with the embedded file's: that is the one
// trusted moment. A mismatch means a released migration was edited: the
// database's schema is not what this controller's migrations describe, so
// it refuses to go on, naming the file.
func verify(ctx context.Context, conn *pgx.Conn, log hclog.Logger, applied []Migration) error {
	rows, err := conn.Query(ctx, "SELECT version, name, COALESCE(checksum, '') FROM schema_migrations ORDER BY version")
	if err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	type row struct {
		version        int
		name, checksum string
	}
	recorded, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.version, &x.name, &x.checksum)
	})
	if err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	byVersion := make(map[int]row, len(recorded))
	for _, r := range recorded {
		byVersion[r.version] = r
	}
	for _, m := range applied {
		r, ok := byVersion[m.Version]
		switch {
		case !ok:
			return fmt.Errorf("schema_migrations has no row for %s although later versions are applied", m.File())
		case r.name != m.Name:
			return fmt.Errorf("%w: version %d was applied as %04d_%s.sql, this controller embeds %s",
				ErrChecksumMismatch, m.Version, m.Version, r.name, m.File())
		case r.checksum == "":
			if _, err := conn.Exec(ctx, "UPDATE schema_migrations SET checksum = $2 WHERE version = $1 AND checksum IS NULL",
				m.Version, m.Checksum()); err != nil {
				return fmt.Errorf("record checksum of %s: %w", m.File(), err)
			}
			log.Info("recorded checksum of a migration applied before checksums", "file", m.File(), "sha256", m.Checksum())
		case r.checksum != m.Checksum():
			return fmt.Errorf("%w: %s (applied sha256 %s, embedded sha256 %s): released migrations must never be edited; "+
				"put the change in a new migration", ErrChecksumMismatch, m.File(), r.checksum, m.Checksum())
		}
	}
	return nil
}

// Version reports the database's schema version (0 for an empty database).
func Version(ctx context.Context, conn *pgx.Conn) (int, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("look for schema_migrations: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := conn.QueryRow(ctx, "SELECT COALESCE(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// Template migrates the database at url quietly: the shape of
// pgtest.TemplateFunc, so test binaries clone one migrated database.
func Template(ctx context.Context, url string) error {
	_, err := UpURL(ctx, url, hclog.NewNullLogger())
	return err
}

// UpURL connects to url and applies every pending migration.
func UpURL(ctx context.Context, url string, log hclog.Logger) ([]int, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Close(context.Background())
	return Up(ctx, conn, log)
}
