// Command scanorama-controller runs the Scanorama controller: it owns the
// PostgreSQL schema, leases scan jobs to agents and commits their results.
//
//	scanorama-controller serve   [--listen ADDR] [--database-url URL] [--data-dir DIR] ...
//	scanorama-controller migrate [--database-url URL] [--data-dir DIR]
//	scanorama-controller backup  --out FILE [--database-url URL] [--data-dir DIR]
//	scanorama-controller restore --in FILE [--database-url URL] [--data-dir DIR]
//	scanorama-controller ca init --data-dir DIR [--database-url URL]
//	scanorama-controller agent enroll --site S [--ttl 24h] [--uses 1] | agent tokens | agent revoke-token --id ID
//	scanorama-controller doctor  [--database-url URL] [--data-dir DIR] [--lease-ttl D] [--tls-cert F ...]
//	scanorama-controller token create|list|revoke ...
//	scanorama-controller import  --site SITE [--target ID] [--controller ADDR] FILE.xml
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

	"github.com/scanorama/scanorama/controller/doctor"
	"github.com/scanorama/scanorama/controller/pgserver"
	"github.com/scanorama/scanorama/controller/pki"
	"github.com/scanorama/scanorama/controller/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: scanorama-controller <command> [flags]

commands:
  serve     run the controller (gRPC AgentService + AdminService)
  migrate   apply schema migrations and exit
  backup    dump the database to a file (pg_dump custom format)
  restore   load a backup into an empty database
  ca init   create the controller CA under --data-dir (once; never overwrites)
  agent     enroll (print a one-time agent enrollment token), tokens, revoke-token
  doctor    check the database, schema, partitions, lease reaping and TLS; exit 1 if any check failed
  token     create, list or revoke people's bearer tokens
  import    send an nmap XML (-oX) file to a running controller (ImportResults)
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
	case "backup":
		return backupCmd(ctx, args[1:], stderr)
	case "restore":
		return restoreCmd(ctx, args[1:], stderr)
	case "ca":
		return caCmd(ctx, args[1:], os.Stdout, stderr)
	case "agent":
		return agentCmd(ctx, args[1:], os.Stdout, stderr)
	case "doctor":
		return doctorCmd(ctx, args[1:], stderr)
	case "token":
		return tokenCmd(ctx, args[1:], os.Stdout, stderr)
	case "import":
		return importCmd(ctx, args[1:], os.Stdout, stderr)
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
	keep := registerRetention(fs)
	hookRetry := fs.Duration("webhook-retry-base", envDuration("SCANORAMA_WEBHOOK_RETRY_BASE", time.Second), "delay before a failed webhook delivery's first retry; doubled per retry up to 5m, with jitter (env SCANORAMA_WEBHOOK_RETRY_BASE)")
	hookAttempts := fs.Int("webhook-max-attempts", envInt("SCANORAMA_WEBHOOK_MAX_ATTEMPTS", 10), "attempts before a webhook delivery is dead (RetryWebhookDeliveries re-drives it) (env SCANORAMA_WEBHOOK_MAX_ATTEMPTS)")
	ttl := fs.Duration("lease-ttl", envDuration("SCANORAMA_LEASE_TTL", 30*time.Second), "lease lifetime without a heartbeat (env SCANORAMA_LEASE_TTL)")
	metricsListen := fs.String("metrics-listen", env("SCANORAMA_METRICS_LISTEN", ""), "serve Prometheus metrics at /metrics on this host:port; empty: off (env SCANORAMA_METRICS_LISTEN)")
	var tlsFiles server.TLSFiles
	fs.StringVar(&tlsFiles.CertFile, "tls-cert", env("SCANORAMA_TLS_CERT", ""), "PEM certificate (chain) the gRPC API presents; with --tls-key it serves TLS, reloaded when the files change (env SCANORAMA_TLS_CERT)")
	fs.StringVar(&tlsFiles.KeyFile, "tls-key", env("SCANORAMA_TLS_KEY", ""), "PEM private key of --tls-cert (env SCANORAMA_TLS_KEY)")
	fs.StringVar(&tlsFiles.ClientCAFile, "tls-client-ca", env("SCANORAMA_TLS_CLIENT_CA", ""), "PEM CA bundle; every agent (and, without --tls-admin-ca, every admin) must present a certificate it signed (env SCANORAMA_TLS_CLIENT_CA)")
	fs.StringVar(&tlsFiles.AdminCAFile, "tls-admin-ca", env("SCANORAMA_TLS_ADMIN_CA", ""), "PEM CA bundle of the admins' certificates: only they may call AdminService, and only --tls-client-ca's may call AgentService (env SCANORAMA_TLS_ADMIN_CA)")
	advertise := fs.String("advertise", env("SCANORAMA_ADVERTISE", ""), "names and addresses agents dial, comma separated; with the built-in CA they go into the controller's own certificate besides the --listen host (env SCANORAMA_ADVERTISE)")
	agentCertTTL := fs.Duration("agent-cert-ttl", envDuration("SCANORAMA_AGENT_CERT_TTL", 12*time.Hour), "lifetime of enrolled agents' certificates; they renew at 2/3 of it (env SCANORAMA_AGENT_CERT_TTL)")
	requireApproval := fs.Bool("require-agent-approval", envBool("SCANORAMA_REQUIRE_AGENT_APPROVAL"), "keep newly enrolled agents pending_approval (no work) until AdminService.ApproveAgent (env SCANORAMA_REQUIRE_AGENT_APPROVAL)")
	insecure := fs.Bool("insecure", envBool("SCANORAMA_INSECURE"), "serve plaintext without authentication (every caller is an admin); loopback --listen only, for tests and demos (env SCANORAMA_INSECURE)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := checkArgs(fs); err != nil {
		return fail(stderr, err)
	}
	if *agentCertTTL < 10*time.Second || *agentCertTTL > 90*24*time.Hour {
		return fail(stderr, fmt.Errorf("--agent-cert-ttl: %s is outside 10s..2160h", *agentCertTTL))
	}
	var advertised []string
	for _, h := range strings.Split(*advertise, ",") {
		if h = strings.TrimSpace(h); h != "" {
			if strings.ContainsAny(h, " /:") && net.ParseIP(h) == nil {
				return fail(stderr, fmt.Errorf("--advertise: %q is not a host name or IP address", h))
			}
			advertised = append(advertised, h)
		}
	}
	if _, _, err := net.SplitHostPort(*listen); err != nil {
		return fail(stderr, fmt.Errorf("--listen: %q is not host:port", *listen))
	}
	if *ttl < time.Second || *ttl > time.Hour {
		return fail(stderr, fmt.Errorf("--lease-ttl: %s is outside 1s..1h", *ttl))
	}
	if err := keep.check(); err != nil {
		return fail(stderr, err)
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
	var ca *pki.CA
	if tlsFiles.Enabled() {
		var err error
		if tlsCfg, roles, err = tlsFiles.Config(); err != nil {
			return fail(stderr, err)
		}
	} else {
		// The built-in CA (scanorama-controller ca init) turns on TLS and
		// agent enrollment; without it the controller serves as before.
		var err error
		if ca, err = pki.LoadCA(c.dataDir); errors.Is(err, pki.ErrNoCA) {
			ca = nil
		} else if err != nil {
			return fail(stderr, fmt.Errorf("--data-dir: %w", err))
		}
	}
	if *metricsListen != "" {
		if _, _, err := net.SplitHostPort(*metricsListen); err != nil {
			return fail(stderr, fmt.Errorf("--metrics-listen: %q is not host:port", *metricsListen))
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
	if err := server.CheckTransport(*listen, tlsCfg != nil || ca != nil, *insecure); err != nil {
		return fail(stderr, err)
	}
	if *debugListen != "" {
		if err := serveDebug(ctx, *debugListen, log.Named("debug")); err != nil {
			return fail(stderr, fmt.Errorf("--debug-listen: %w", err))
		}
	}
	err = server.Run(ctx, server.Config{
		Listen: *listen, DatabaseURL: c.databaseURL, DataDir: c.dataDir, LeaseTTL: *ttl, MaxConns: int32(*maxConns), RetentionMonths: *retention,
		Retention: keep.Retention(),
		TLS:       tlsCfg, Roles: roles, Insecure: *insecure, Logger: log, MetricsListen: *metricsListen,
		CA: ca, Advertise: advertised, AgentCertTTL: *agentCertTTL, RequireAgentApproval: *requireApproval,
		WebhookRetryBase: *hookRetry, WebhookMaxAttempts: *hookAttempts,
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

// doctorCmd prints one line per check and exits 1 if any failed. Without
// --database-url it starts the managed PostgreSQL under --data-dir for the
// checks (and stops it after), unless a running controller owns it.
func doctorCmd(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	ttl := fs.Duration("lease-ttl", envDuration("SCANORAMA_LEASE_TTL", 30*time.Second), "the controllers' lease lifetime; leases expired for twice this and still held mean no reaper runs (env SCANORAMA_LEASE_TTL)")
	var tlsFiles server.TLSFiles
	fs.StringVar(&tlsFiles.CertFile, "tls-cert", env("SCANORAMA_TLS_CERT", ""), "PEM certificate (chain) the gRPC API presents (env SCANORAMA_TLS_CERT)")
	fs.StringVar(&tlsFiles.KeyFile, "tls-key", env("SCANORAMA_TLS_KEY", ""), "PEM private key of --tls-cert (env SCANORAMA_TLS_KEY)")
	fs.StringVar(&tlsFiles.ClientCAFile, "tls-client-ca", env("SCANORAMA_TLS_CLIENT_CA", ""), "PEM CA bundle of the agents' certificates (env SCANORAMA_TLS_CLIENT_CA)")
	fs.StringVar(&tlsFiles.AdminCAFile, "tls-admin-ca", env("SCANORAMA_TLS_ADMIN_CA", ""), "PEM CA bundle of the admins' certificates (env SCANORAMA_TLS_ADMIN_CA)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := checkArgs(fs); err != nil {
		return fail(stderr, err)
	}
	if *ttl < time.Second || *ttl > time.Hour {
		return fail(stderr, fmt.Errorf("--lease-ttl: %s is outside 1s..1h", *ttl))
	}
	log, err := c.logger()
	if err != nil {
		return fail(stderr, err)
	}
	url := c.databaseURL
	if url == "" {
		pg, err := pgserver.Start(ctx, pgserver.Options{DataDir: c.dataDir, Logger: log.Named("postgres")})
		if err != nil {
			hint := "check --data-dir"
			if errors.Is(err, pgserver.ErrDataDirInUse) {
				hint = "a running controller owns it; pass --database-url (its URL is in the controller's log)"
			}
			doctor.Report(os.Stdout, []doctor.Result{{Check: "database", Status: doctor.Fail,
				Detail: fmt.Sprintf("managed PostgreSQL in %s: %v; %s", c.dataDir, err, hint)}})
			return 1
		}
		defer pg.Stop(context.Background()) //nolint:errcheck // best effort on exit
		url = pg.URL(pgserver.DefaultDatabase)
	}
	if doctor.Report(os.Stdout, doctor.Controller(ctx, doctor.Options{DatabaseURL: url, LeaseTTL: *ttl, TLS: tlsFiles})) {
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
