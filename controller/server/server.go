// Package server assembles a controller: database (given or managed),
// migrations, the notification hub, leasing with its reaper, ingest,
// housekeeping, and the gRPC server with AgentService, AdminService,
// grpc.health.v1 and server reflection. It owns start-up order and
// graceful shutdown; all state lives in PostgreSQL.
package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/controller/admin"
	"github.com/scanorama/scanorama/controller/agentapi"
	"github.com/scanorama/scanorama/controller/events"
	"github.com/scanorama/scanorama/controller/ingest"
	"github.com/scanorama/scanorama/controller/leasing"
	"github.com/scanorama/scanorama/controller/maintenance"
	"github.com/scanorama/scanorama/controller/metrics"
	"github.com/scanorama/scanorama/controller/pki"
	"github.com/scanorama/scanorama/controller/scheduler"
	"github.com/scanorama/scanorama/controller/webhooks"
	"github.com/scanorama/scanorama/gen/db"
)

// Config configures a controller.
type Config struct {
	// Listen is the gRPC address, e.g. "127.0.0.1:7443".
	Listen string
	// DatabaseURL of an existing PostgreSQL; empty runs a managed one under DataDir.
	DatabaseURL string
	DataDir     string
	// LeaseTTL is how long a lease lives without a heartbeat.
	LeaseTTL time.Duration
	// ReapEvery is how often expired leases are reaped.
	ReapEvery time.Duration
	// ReapBatch is how many expired leases one reap statement handles
	// (leasing.DefaultReapBatch when zero).
	ReapBatch int
	// MaxConns caps the database pool.
	MaxConns int32
	// RetentionMonths of port_scans stay live; older months are archived (0 keeps all).
	RetentionMonths int
	// Retention of host_history, finished jobs and archived months (zero
	// values keep them forever).
	Retention maintenance.Retention
	Logger    hclog.Logger
	// TLS, when set, secures the gRPC API (see TLSFiles); nil serves
	// plaintext.
	TLS *tls.Config
	// Roles, when set, keeps agents' certificates off AdminService and
	// admins' off AgentService.
	Roles *Roles
	// Insecure permits plaintext and unauthenticated AdminService calls
	// (serve --insecure), on loopback listen addresses only.
	Insecure bool
	// WebhookRetryBase and WebhookMaxAttempts tune webhook retries
	// (zero: webhooks.DefaultOptions).
	WebhookRetryBase   time.Duration
	WebhookMaxAttempts int
	// Ready, when set, receives the bound address once the server accepts calls.
	Ready func(addr net.Addr)
	// CA, when set and TLS is nil, is the built-in controller CA: the
	// controller serves TLS with a certificate it issues itself for
	// Advertise and the listen host, and agents enroll (see agentapi.Trust).
	CA                   *pki.CA
	Advertise            []string
	AgentCertTTL         time.Duration
	RequireAgentApproval bool
	// MetricsListen, when set, serves Prometheus metrics at /metrics there.
	MetricsListen string
	// Metrics, when set, is where the controller reports (MetricsListen
	// serves it); nil with MetricsListen set makes a fresh one.
	Metrics *metrics.Controller
}

// shutdownGrace bounds how long open calls and background loops get to
// finish at shutdown.
const shutdownGrace = 10 * time.Second

// withDefaults fills what the caller left zero.
func (cfg Config) withDefaults() Config {
	if cfg.Logger == nil {
		cfg.Logger = hclog.Default()
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = leasing.DefaultConfig().TTL
	}
	if cfg.ReapEvery <= 0 {
		cfg.ReapEvery = max(cfg.LeaseTTL/6, 500*time.Millisecond)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 40
	}
	return cfg
}

// Run serves until ctx is cancelled, then stops gracefully: the gRPC server
// drains first (the last commits' job events still go out), then the
// background loops stop, then the database closes.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	log := cfg.Logger
	if err := CheckTransport(cfg.Listen, cfg.TLS != nil || cfg.CA != nil, cfg.Insecure); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", cfg.Listen, err)
	}
	defer lis.Close()
	if host, _, _ := net.SplitHostPort(lis.Addr().String()); cfg.Insecure && !isLoopback(host) {
		return fmt.Errorf("--insecure: %s is not a loopback address; insecure serving is for one machine only", lis.Addr())
	}

	d, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer d.Close()
	m := cfg.Metrics
	if m == nil && cfg.MetricsListen != "" {
		m = metrics.NewController()
	}
	m.RegisterPool(d.pool)
	m.RegisterDatabase(d.pool, log.Named("metrics"))

	bg := newLoops(log)
	defer bg.Stop(shutdownGrace)
	// Job events are published until the gRPC server has stopped, so the
	// last commits' events still go out.
	pubCtx, stopPub := context.WithCancel(context.Background())
	defer stopPub()
	pub := events.NewPublisher(d.pool, 8192, log)
	go pub.Run(pubCtx)
	m.RegisterEventDrops(pub.Dropped)

	in := ingest.NewWithMetrics(pubCtx, d.pool, pub, m, log)
	svc, err := startComponents(ctx, cfg, d, pub, in, bg, m)
	if err != nil {
		return err
	}
	if cfg.TLS == nil && !cfg.Insecure {
		if cfg.TLS, svc.trust, err = builtinCA(ctx, db.New(d.pool), cfg); err != nil {
			return err
		}
	}
	gs, hs, security := newGRPCServer(cfg, d.pool, svc, m, log)
	bg.Go("agent-touch", svc.agent.Run)
	bg.Go("health", func(ctx context.Context) { watchDatabase(ctx, d.pool, hs, log) })
	if cfg.MetricsListen != "" {
		if _, err := metrics.Serve(bg.ctx, cfg.MetricsListen, m.Registry(), log.Named("metrics")); err != nil {
			return err
		}
	}
	if cfg.Insecure {
		log.Warn("!!! INSECURE: --insecure serves without authentication; anyone who can reach "+lis.Addr().String()+
			" is an admin, agents join any site they name. For tests and demos on one machine only. !!!",
			"listen", lis.Addr().String(), "transport", security)
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- gs.Serve(lis) }()
	log.Info("controller serving", "listen", lis.Addr().String(), "transport", security, "lease_ttl", cfg.LeaseTTL)
	if cfg.Ready != nil {
		cfg.Ready(lis.Addr())
	}
	select {
	case err := <-serveErr:
		return fmt.Errorf("grpc server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	stopGRPC(gs, hs, shutdownGrace, log)
	stopPub()
	<-pub.Done()
	return nil
}

// startComponents runs the start-up work that must finish before serving
// (partitions, archiving, reaping leases that expired while no controller
// ran), starts the background loops under bg, and builds the services.
func startComponents(ctx context.Context, cfg Config, d *database, pub *events.Publisher, in *ingest.Ingester,
	bg *loops, m *metrics.Controller) (services, error) {
	log, pool := cfg.Logger, d.pool
	hub := events.NewHub(d.url, log)
	// Long-polls of sites without pending work park without a job query
	// (events.Hub.Quiet): an idle fleet of ten thousand re-polls 400 times a
	// second.
	pending := db.New(pool)
	hub.Pending = func(ctx context.Context, horizon time.Duration) ([]string, error) {
		return pending.SitesWithPendingJobs(ctx, horizon.Seconds())
	}
	bg.Go("notification-hub", hub.Run)

	maint := maintenance.New(pool, log)
	maint.RetentionMonths = cfg.RetentionMonths
	maint.Retention = cfg.Retention
	if err := maint.EnsurePartitions(ctx); err != nil {
		return services{}, fmt.Errorf("create port_scans partitions: %w", err)
	}
	if _, err := maint.Archive(ctx); err != nil {
		return services{}, fmt.Errorf("archive old port_scans: %w", err)
	}
	bg.Go("maintenance", maint.Run)

	lcfg := leasing.DefaultConfig()
	lcfg.TTL = cfg.LeaseTTL
	lcfg.Metrics = m
	leaser := leasing.New(pool, hub, pub, lcfg, log)
	reaper := leasing.NewReaper(pool, hub, leasing.ReaperConfig{
		Interval: cfg.ReapEvery, LostAfter: 3 * cfg.LeaseTTL, StartGrace: cfg.LeaseTTL, Batch: cfg.ReapBatch, Metrics: m,
	}, log)
	if _, err := reaper.ReapOnce(ctx); err != nil {
		return services{}, fmt.Errorf("reap leases at start: %w", err)
	}
	bg.Go("reaper", reaper.Run)
	bg.Go("scheduler", scheduler.New(pool, log).Run)

	hookOpts := webhooks.DefaultOptions()
	if cfg.WebhookRetryBase > 0 {
		hookOpts.RetryBase = cfg.WebhookRetryBase
	}
	if cfg.WebhookMaxAttempts > 0 {
		hookOpts.MaxAttempts = cfg.WebhookMaxAttempts
	}
	bg.Go("webhooks", webhooks.New(pool, hub, hookOpts, log).Run)

	svc := services{
		agent: agentapi.New(pool, leaser, in, log),
		admin: admin.New(pool, hub, log).WithImporter(in),
	}
	return svc, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
