package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/controller/pgserver"
)

// backupCmd writes the whole database (schema, data, archived months) with
// pg_dump's custom format: compressed, and restorable table by table.
func backupCmd(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	out := fs.String("out", "", "file to write the backup to (pg_dump custom format); required")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := checkArgs(fs); err != nil {
		return fail(stderr, err)
	}
	if *out == "" {
		return fail(stderr, errors.New("--out: required, e.g. --out scanorama-$(date +%F).dump"))
	}
	if _, err := os.Stat(*out); err == nil {
		return fail(stderr, fmt.Errorf("--out: %s exists; choose a new file", *out))
	}
	if st, err := os.Stat(filepath.Dir(*out)); err != nil || !st.IsDir() {
		return fail(stderr, fmt.Errorf("--out: directory %s does not exist", filepath.Dir(*out)))
	}
	log, err := c.logger()
	if err != nil {
		return fail(stderr, err)
	}
	dbURL, stop, err := c.database(ctx, log)
	if err != nil {
		log.Error("open database", "error", err)
		return 1
	}
	defer stop()
	tmp := *out + ".partial"
	if err := runPG(ctx, "pg_dump", dbURL, stderr, "--format=custom", "--no-owner", "--file", tmp); err != nil {
		_ = os.Remove(tmp)
		log.Error("backup failed", "error", err)
		return 1
	}
	if err := os.Rename(tmp, *out); err != nil {
		log.Error("backup failed", "error", err)
		return 1
	}
	st, _ := os.Stat(*out)
	log.Info("backup written", "file", *out, "bytes", st.Size())
	return 0
}

// restoreCmd loads a backup into an empty database, all or nothing. The
// next serve applies any newer migrations (a backup of an older release
// upgrades like the database it came from).
func restoreCmd(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	in := fs.String("in", "", "backup file written by \"scanorama-controller backup\"; required")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := checkArgs(fs); err != nil {
		return fail(stderr, err)
	}
	if *in == "" {
		return fail(stderr, errors.New("--in: required"))
	}
	if st, err := os.Stat(*in); err != nil || st.IsDir() {
		return fail(stderr, fmt.Errorf("--in: %s is not a readable file", *in))
	}
	log, err := c.logger()
	if err != nil {
		return fail(stderr, err)
	}
	dbURL, stop, err := c.database(ctx, log)
	if err != nil {
		log.Error("open database", "error", err)
		return 1
	}
	defer stop()
	if err := requireEmpty(ctx, dbURL); err != nil {
		return fail(stderr, err)
	}
	if err := ensureClusterRoles(ctx, dbURL); err != nil {
		return fail(stderr, err)
	}
	if err := runPG(ctx, "pg_restore", dbURL, stderr, "--no-owner", "--exit-on-error", "--single-transaction", *in); err != nil {
		log.Error("restore failed; the database is unchanged", "error", err)
		return 1
	}
	log.Info("backup restored", "file", *in)
	return 0
}

// database is the --database-url, or the managed PostgreSQL under
// --data-dir started for this command (stop shuts it down again).
func (c *common) database(ctx context.Context, log hclog.Logger) (string, func(), error) {
	if c.databaseURL != "" {
		return c.databaseURL, func() {}, nil
	}
	pg, err := pgserver.Start(ctx, pgserver.Options{DataDir: c.dataDir, Logger: log.Named("postgres")})
	if err != nil {
		return "", nil, fmt.Errorf("start managed PostgreSQL (is a controller still running on --data-dir %s? stop it, or pass its --database-url): %w", c.dataDir, err)
	}
	return pg.URL(pgserver.DefaultDatabase), func() { pg.Stop(context.Background()) }, nil //nolint:errcheck // best effort on exit
}

// requireEmpty refuses to restore over existing tables.
func requireEmpty(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Close(context.Background())
	var tables int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`).Scan(&tables); err != nil {
		return fmt.Errorf("inspect database: %w", err)
	}
	if tables > 0 {
		return fmt.Errorf("the database already holds %d tables; restore into an empty database (a new database, or a fresh --data-dir)", tables)
	}
	return nil
}

// clusterRoles creates what a dump cannot carry: roles belong to the
// cluster, not the database, and the restored policies and grants name
// scanorama_admin_api (created by migration 0011_trust_people.sql the same
// way).
const clusterRoles = `
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'scanorama_admin_api') THEN
        CREATE ROLE scanorama_admin_api NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT scanorama_admin_api TO %I', current_user);
    END IF;
END $$`

func ensureClusterRoles(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, clusterRoles); err != nil {
		return fmt.Errorf("create the roles the backup's policies name: %w", err)
	}
	return nil
}

// runPG runs a PostgreSQL client tool against dbURL. The password travels
// in PGPASSWORD, not on the command line.
func runPG(ctx context.Context, tool, dbURL string, stderr io.Writer, args ...string) error {
	bin, err := pgTool(tool)
	if err != nil {
		return err
	}
	env := os.Environ()
	if u, err := url.Parse(dbURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			env = append(env, "PGPASSWORD="+pw)
			u.User = url.User(u.User.Username())
			dbURL = u.String()
		}
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--dbname", dbURL}, args...)...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", bin, err)
	}
	return nil
}

// pgTool finds pg_dump or pg_restore: $SCANORAMA_PG_BINDIR, the newest
// /usr/lib/postgresql/NN/bin (a newer pg_dump reads older servers, not the
// other way round), then $PATH.
func pgTool(name string) (string, error) {
	if dir := os.Getenv(pgserver.EnvBinDir); dir != "" {
		return filepath.Join(dir, name), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) > majorOf(dirs[j]) })
	for _, d := range dirs {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found in /usr/lib/postgresql/*/bin or $PATH: install the PostgreSQL client tools or set %s", name, pgserver.EnvBinDir)
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(strings.Split(filepath.Base(filepath.Dir(binDir)), ".")[0])
	return n
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
