package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/ingest"
	"github.com/scanorama/scanorama/controller/internal/pguuid"
	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgserver"
)

// database is the controller's PostgreSQL: the given one, or one it runs
// itself under DataDir; migrated, with the pool every component shares.
type database struct {
	url     string
	pool    *pgxpool.Pool
	managed *pgserver.Server
	log     hclog.Logger
}

func openDatabase(ctx context.Context, cfg Config, log hclog.Logger) (_ *database, err error) {
	d := &database{url: cfg.DatabaseURL, log: log}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.url == "" {
		if d.managed, err = pgserver.Start(ctx, pgserver.Options{DataDir: cfg.DataDir, Logger: log.Named("postgres")}); err != nil {
			return nil, fmt.Errorf("start managed PostgreSQL: %w", err)
		}
		d.url = d.managed.URL(pgserver.DefaultDatabase)
	}
	if err := Migrate(ctx, d.url, log); err != nil {
		return nil, err
	}
	poolCfg, err := pgxpool.ParseConfig(d.url)
	if err != nil {
		return nil, fmt.Errorf("--database-url: %w", err)
	}
	poolCfg.MaxConns = cfg.MaxConns
	// Short OLTP statements only: JIT compiling costs more than it saves
	// here, and a generic plan of an optional-filter query (cost estimates
	// in the millions) would otherwise pay hundreds of ms of compilation.
	poolCfg.ConnConfig.RuntimeParams["jit"] = "off"
	pguuid.ConfigurePool(poolCfg)
	ingest.ConfigurePool(poolCfg)
	if d.pool, err = pgxpool.NewWithConfig(ctx, poolCfg); err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return d, nil
}

// Close closes the pool and stops a managed PostgreSQL.
func (d *database) Close() {
	if d.pool != nil {
		d.pool.Close()
	}
	if d.managed == nil {
		return
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.managed.Stop(stopCtx); err != nil {
		d.log.Error("stop managed PostgreSQL", "error", err)
	} else {
		d.log.Info("managed PostgreSQL stopped")
	}
}

// Migrate applies the embedded migrations to the database at url.
func Migrate(ctx context.Context, url string, log hclog.Logger) error {
	conn, err := connectRetry(ctx, url, log)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	applied, err := migrate.Up(ctx, conn, log.Named("migrate"))
	if err != nil {
		return err
	}
	v, err := migrate.Version(ctx, conn)
	if err != nil {
		return err
	}
	log.Info("schema ready", "version", v, "applied_now", len(applied))
	return nil
}

// connectRetry waits out a database that is still starting.
func connectRetry(ctx context.Context, url string, log hclog.Logger) (*pgx.Conn, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			return conn, nil
		}
		if time.Now().After(deadline) || errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("connect to database: %w", err)
		}
		log.Warn("database not reachable yet; retrying", "error", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
