// Command scanorama-controller runs the Scanorama controller: it owns the
// PostgreSQL schema, leases scan jobs to agents and commits their results.
//
//	scanorama-controller serve   [--listen ADDR] [--database-url URL] [--data-dir DIR] ...
//	scanorama-controller migrate [--database-url URL] [--data-dir DIR]
//
// Every flag has an environment twin: --database-url is SCANORAMA_DATABASE_URL, and so on.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/controller/pgserver"
	"github.com/scanorama/scanorama/controller/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: scanorama-controller <command> [flags]

commands:
  serve     run the controller (gRPC AgentService + AdminService)
  migrate   apply schema migrations and exit
  version   print the version

Run "scanorama-controller <command> -h" for the command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "migrate":
		return migrateCmd(ctx, args[1:], stderr)
	case "version", "--version":
		fmt.Fprintln(os.Stdout, version)
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "scanorama-controller: unknown command %q\n%s", args[0], usage)
	return 2
}

type common struct {
	databaseURL string
	dataDir     string
	logLevel    string
	logJSON     bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.databaseURL, "database-url", env("SCANORAMA_DATABASE_URL", ""), "PostgreSQL URL; empty runs a managed PostgreSQL under --data-dir (env SCANORAMA_DATABASE_URL)")
	fs.StringVar(&c.dataDir, "data-dir", env("SCANORAMA_DATA_DIR", pgserver.DefaultDataDir), "directory for the managed PostgreSQL (env SCANORAMA_DATA_DIR)")
	fs.StringVar(&c.logLevel, "log-level", env("SCANORAMA_LOG_LEVEL", "info"), "trace, debug, info, warn or error (env SCANORAMA_LOG_LEVEL)")
	fs.BoolVar(&c.logJSON, "log-json", envBool("SCANORAMA_LOG_JSON"), "log JSON lines (env SCANORAMA_LOG_JSON)")
}

func (c *common) logger() (hclog.Logger, error) {
	lvl := hclog.LevelFromString(c.logLevel)
	if lvl == hclog.NoLevel {
		return nil, fmt.Errorf("--log-level: unknown level %q (trace, debug, info, warn, error)", c.logLevel)
	}
	return hclog.New(&hclog.LoggerOptions{Name: "controller", Level: lvl, JSONFormat: c.logJSON, Output: os.Stderr}), nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	listen := fs.String("listen", env("SCANORAMA_LISTEN", "127.0.0.1:7443"), "gRPC listen address (env SCANORAMA_LISTEN)")
	debugListen := fs.String("debug-listen", env("SCANORAMA_DEBUG_LISTEN", ""), "serve Go profiling endpoints (/debug/pprof/) on this loopback address; empty: off (env SCANORAMA_DEBUG_LISTEN)")
	maxConns := fs.Int("db-max-conns", envInt("SCANORAMA_DB_MAX_CONNS", 40), "database connections this controller may open (env SCANORAMA_DB_MAX_CONNS)")
	retention := fs.Int("retention-months", envInt("SCANORAMA_RETENTION_MONTHS", 13), "months of port_scans history kept live; older months move to the archive schema, 0 keeps all (env SCANORAMA_RETENTION_MONTHS)")
	hookRetry := fs.Duration("webhook-retry-base", envDuration("SCANORAMA_WEBHOOK_RETRY_BASE", time.Second), "delay before a failed webhook delivery's first retry; doubled per retry up to 5m, with jitter (env SCANORAMA_WEBHOOK_RETRY_BASE)")
	hookAttempts := fs.Int("webhook-max-attempts", envInt("SCANORAMA_WEBHOOK_MAX_ATTEMPTS", 10), "attempts before a webhook delivery is dead (RetryWebhookDeliveries re-drives it) (env SCANORAMA_WEBHOOK_MAX_ATTEMPTS)")
	ttl := fs.Duration("lease-ttl", envDuration("SCANORAMA_LEASE_TTL", 30*time.Second), "lease lifetime without a heartbeat (env SCANORAMA_LEASE_TTL)")
	var tlsFiles server.TLSFiles
	fs.StringVar(&tlsFiles.CertFile, "tls-cert", env("SCANORAMA_TLS_CERT", ""), "PEM certificate (chain) the gRPC API presents; with --tls-key it serves TLS, reloaded when the files change (env SCANORAMA_TLS_CERT)")
	fs.StringVar(&tlsFiles.KeyFile, "tls-key", env("SCANORAMA_TLS_KEY", ""), "PEM private key of --tls-cert (env SCANORAMA_TLS_KEY)")
	fs.StringVar(&tlsFiles.ClientCAFile, "tls-client-ca", env("SCANORAMA_TLS_CLIENT_CA", ""), "PEM CA bundle; every agent (and, without --tls-admin-ca, every admin) must present a certificate it signed (env SCANORAMA_TLS_CLIENT_CA)")
	fs.StringVar(&tlsFiles.AdminCAFile, "tls-admin-ca", env("SCANORAMA_TLS_ADMIN_CA", ""), "PEM CA bundle of the admins' certificates: only they may call AdminService, and only --tls-client-ca's may call AgentService (env SCANORAMA_TLS_ADMIN_CA)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := checkArgs(fs); err != nil {
		return fail(stderr, err)
	}
	if _, _, err := net.SplitHostPort(*listen); err != nil {
		return fail(stderr, fmt.Errorf("--listen: %q is not host:port", *listen))
	}
	if *ttl < time.Second || *ttl > time.Hour {
		return fail(stderr, fmt.Errorf("--lease-ttl: %s is outside 1s..1h", *ttl))
	}
	if *retention < 0 || *retention > 1200 {
		return fail(stderr, fmt.Errorf("--retention-months: %d is outside 0..1200", *retention))
	}
	if *hookRetry < 10*time.Millisecond || *hookRetry > time.Hour {
		return fail(stderr, fmt.Errorf("--webhook-retry-base: %s is outside 10ms..1h", *hookRetry))
	}
	if *hookAttempts < 1 || *hookAttempts > 100 {
		return fail(stderr, fmt.Errorf("--webhook-max-attempts: %d is outside 1..100", *hookAttempts))
	}
	if *maxConns < 4 || *maxConns > 1000 {
		return fail(stderr, fmt.Errorf("--db-max-conns: %d is outside 4..1000", *maxConns))
	}
	var tlsCfg *tls.Config
	var roles *server.Roles
	if tlsFiles.Enabled() {
		var err error
		if tlsCfg, roles, err = tlsFiles.Config(); err != nil {
			return fail(stderr, err)
		}
	}
	if *debugListen != "" {
		host, _, err := net.SplitHostPort(*debugListen)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return fail(stderr, fmt.Errorf("--debug-listen: %q is not a loopback host:port", *debugListen))
		}
	}
	log, err := c.logger()
	if err != nil {
		return fail(stderr, err)
	}
	if *debugListen != "" {
		if err := serveDebug(ctx, *debugListen, log.Named("debug")); err != nil {
			return fail(stderr, fmt.Errorf("--debug-listen: %w", err))
		}
	}
	err = server.Run(ctx, server.Config{
		Listen: *listen, DatabaseURL: c.databaseURL, DataDir: c.dataDir, LeaseTTL: *ttl, MaxConns: int32(*maxConns), RetentionMonths: *retention,
		TLS: tlsCfg, Roles: roles, Logger: log, WebhookRetryBase: *hookRetry, WebhookMaxAttempts: *hookAttempts,
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("controller failed", "error", err)
		return 1
	}
	return 0
}

func migrateCmd(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := checkArgs(fs); err != nil {
		return fail(stderr, err)
	}
	log, err := c.logger()
	if err != nil {
		return fail(stderr, err)
	}
	url := c.databaseURL
	if url == "" {
		pg, err := pgserver.Start(ctx, pgserver.Options{DataDir: c.dataDir, Logger: log.Named("postgres")})
		if err != nil {
			log.Error("start managed PostgreSQL", "error", err)
			return 1
		}
		defer pg.Stop(context.Background()) //nolint:errcheck // best effort on exit
		url = pg.URL(pgserver.DefaultDatabase)
	}
	if err := server.Migrate(ctx, url, log); err != nil {
		log.Error("migrate failed", "error", err)
		return 1
	}
	return 0
}

func checkArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	return nil
}

func fail(w io.Writer, err error) int {
	fmt.Fprintf(w, "scanorama-controller: %v\n", err)
	return 2
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func envBool(key string) bool {
	v := strings.ToLower(os.Getenv(key))
	return v == "1" || v == "true" || v == "yes"
}

func envDuration(key string, def time.Duration) time.Duration {
	if v := os.Getenv(key); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envInt(key string, def int) int {
	if v := os.Getenv(key); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}
