package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/pgserver"
)

// EnvDatabaseURL names the variable that points the harness at an existing
// server instead of starting one per test binary.
const EnvDatabaseURL = "SCANORAMA_TEST_DATABASE_URL"

const (
	startTimeout = 3 * time.Minute
	opTimeout    = time.Minute
)

// backend is the server all databases of this test binary live on.
type backend struct {
	base   *url.URL         // superuser URL; the path is swapped per database
	admin  *pgxpool.Pool    // connected to base's (maintenance) database
	server *pgserver.Server // nil when the server is external
	// strategy is the CREATE DATABASE strategy: FILE_COPY is fastest on a
	// cluster without fsync; with fsync on, the default (WAL_LOG) wins.
	strategy string

	tplOnce sync.Once
	tplName string
	tplErr  error
}

var (
	sharedMu      sync.Mutex
	shared        *backend
	sharedErr     error
	sharedStarted bool
)

// sharedBackend returns the backend for this test binary, starting it on
// first use. A failed start is remembered: every later test fails fast with
// the same error.
func sharedBackend() (*backend, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if !sharedStarted {
		sharedStarted = true
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		shared, sharedErr = openBackend(ctx)
	}
	return shared, sharedErr
}

func openBackend(ctx context.Context) (*backend, error) {
	if raw := os.Getenv(EnvDatabaseURL); raw != "" {
		b, err := connectBackend(ctx, raw, nil)
		if err != nil {
			return nil, fmt.Errorf("pgtest: use %s: %w", EnvDatabaseURL, err)
		}
		return b, nil
	}
	begin := time.Now()
	srv, err := startCluster(ctx, "scanorama-pgtest-", pgserver.UnsafeTestSettings())
	if err != nil {
		return nil, fmt.Errorf("pgtest: start a test cluster (or set %s): %w", EnvDatabaseURL, err)
	}
	logger().Info("started shared test cluster", "port", srv.Port(), "data_dir", srv.DataDir(), "elapsed", time.Since(begin))
	b, err := connectBackend(ctx, srv.URL("postgres"), srv)
	if err != nil {
		_ = srv.Destroy(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pgtest: connect to test cluster: %w", err)
	}
	return b, nil
}

// startCluster starts an Ephemeral cluster in a fresh temp dir the
// PostgreSQL OS user can traverse.
func startCluster(ctx context.Context, prefix string, settings map[string]string) (*pgserver.Server, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, fmt.Errorf("create cluster dir: %w", err)
	}
	// MkdirTemp makes 0700; as root the postgres user must traverse it.
	if err := os.Chmod(dir, 0o711); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("chmod cluster dir: %w", err)
	}
	srv, err := pgserver.Start(ctx, pgserver.Options{
		DataDir:      dir,
		Ephemeral:    true,
		Settings:     settings,
		Logger:       logger(),
		StartMessage: "pgtest: started a throwaway PostgreSQL",
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return srv, nil
}

func connectBackend(ctx context.Context, rawURL string, srv *pgserver.Server) (*backend, error) {
	base, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	cfg.MaxConns = 4
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	var (
		version   int
		fsync     string
		mayCreate bool
	)
	err = admin.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, current_setting('fsync'),
		(SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user)`).Scan(&version, &fsync, &mayCreate)
	if err != nil {
		admin.Close()
		return nil, fmt.Errorf("inspect server: %w", err)
	}
	if !mayCreate {
		admin.Close()
		return nil, errors.New("the role in the URL may not create databases")
	}
	b := &backend{base: base, admin: admin, server: srv}
	if version >= 150000 && fsync == "off" {
		b.strategy = "FILE_COPY"
	}
	return b, nil
}

// databaseURL is the base URL pointing at database name.
func (b *backend) databaseURL(name string) string {
	u := *b.base
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// createDatabase creates name, cloned from template when it is not empty.
func (b *backend) createDatabase(ctx context.Context, name, template string) error {
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if b.strategy != "" {
		sql += " STRATEGY " + b.strategy
	}
	if _, err := b.admin.Exec(ctx, sql); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// dropDatabase drops name, disconnecting whoever is still connected.
func (b *backend) dropDatabase(ctx context.Context, name string) error {
	if _, err := b.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// close drops the template and releases the server.
func (b *backend) close(ctx context.Context) error {
	var errs []error
	if b.tplName != "" && b.server == nil { // a local cluster is deleted whole
		if _, err := b.admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{b.tplName}.Sanitize()+" WITH IS_TEMPLATE false"); err != nil {
			errs = append(errs, fmt.Errorf("unmark template %s: %w", b.tplName, err))
		}
		errs = append(errs, b.dropDatabase(ctx, b.tplName))
	}
	b.admin.Close()
	if b.server != nil {
		errs = append(errs, b.server.Destroy(ctx))
	}
	return errors.Join(errs...)
}

// newName returns prefix_<16 hex chars>, a valid unquoted identifier.
func newName(prefix string) string {
	raw := make([]byte, 8)
	_, _ = rand.Read(raw) // never fails on supported platforms
	return prefix + "_" + hex.EncodeToString(raw)
}
