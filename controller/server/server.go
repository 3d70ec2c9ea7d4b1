// Package server assembles a controller: database (given or managed),
// migrations, the notification hub, leasing with its reaper, ingest,
// housekeeping, and the gRPC server with AgentService, AdminService,
// grpc.health.v1 and server reflection. It owns start-up order and
// graceful shutdown; all state lives in PostgreSQL.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/scanorama/scanorama/controller/admin"
	"github.com/scanorama/scanorama/controller/agentapi"
	"github.com/scanorama/scanorama/controller/audit"
	"github.com/scanorama/scanorama/controller/authz"
	"github.com/scanorama/scanorama/controller/events"
	"github.com/scanorama/scanorama/controller/ingest"
	"github.com/scanorama/scanorama/controller/leasing"
	"github.com/scanorama/scanorama/controller/maintenance"
	"github.com/scanorama/scanorama/controller/metrics"
	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgserver"
	"github.com/scanorama/scanorama/controller/pki"
	"github.com/scanorama/scanorama/controller/scheduler"
	"github.com/scanorama/scanorama/controller/tokens"
	"github.com/scanorama/scanorama/controller/webhooks"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
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

// Run serves until ctx is cancelled, then stops gracefully.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = hclog.Default()
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

	url := cfg.DatabaseURL
	if url == "" {
		pg, err := pgserver.Start(ctx, pgserver.Options{DataDir: cfg.DataDir, Logger: log.Named("postgres")})
		if err != nil {
			return fmt.Errorf("start managed PostgreSQL: %w", err)
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := pg.Stop(stopCtx); err != nil {
				log.Error("stop managed PostgreSQL", "error", err)
			} else {
				log.Info("managed PostgreSQL stopped")
			}
		}()
		url = pg.URL(pgserver.DefaultDatabase)
	}
	if err := Migrate(ctx, url, log); err != nil {
		return err
	}
	poolCfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("--database-url: %w", err)
	}
	poolCfg.MaxConns = cfg.MaxConns
	// Short OLTP statements only: JIT compiling costs more than it saves
	// here, and a generic plan of an optional-filter query (cost estimates
	// in the millions) would otherwise pay hundreds of ms of compilation.
	poolCfg.ConnConfig.RuntimeParams["jit"] = "off"
	ingest.ConfigurePool(poolCfg)
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	defer pool.Close()
	m := cfg.Metrics
	if m == nil && cfg.MetricsListen != "" {
		m = metrics.NewController()
	}
	m.RegisterPool(pool)
	m.RegisterDatabase(pool, log.Named("metrics"))

	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	hub := events.NewHub(url, log)
	go hub.Run(bg)
	// Job events are published until the gRPC server has stopped, so the
	// last commits' events still go out.
	pubCtx, stopPub := context.WithCancel(context.Background())
	defer stopPub()
	pub := events.NewPublisher(pool, 8192, log)
	go pub.Run(pubCtx)
	m.RegisterEventDrops(pub.Dropped)

	maint := maintenance.New(pool, log)
	maint.RetentionMonths = cfg.RetentionMonths
	maint.Retention = cfg.Retention
	if err := maint.EnsurePartitions(ctx); err != nil {
		return fmt.Errorf("create port_scans partitions: %w", err)
	}
	if _, err := maint.Archive(ctx); err != nil {
		return fmt.Errorf("archive old port_scans: %w", err)
	}
	go maint.Run(bg)

	lcfg := leasing.DefaultConfig()
	lcfg.TTL = cfg.LeaseTTL
	lcfg.Metrics = m
	leaser := leasing.New(pool, hub, pub, lcfg, log)
	reaper := leasing.NewReaper(pool, hub, cfg.ReapEvery, 3*cfg.LeaseTTL, cfg.LeaseTTL, log)
	reaper.Metrics = m
	reaper.Batch = cfg.ReapBatch
	if _, err := reaper.ReapOnce(ctx); err != nil {
		return fmt.Errorf("reap leases at start: %w", err)
	}
	go reaper.Run(bg)

	go scheduler.New(pool, log).Run(bg)

	hookOpts := webhooks.DefaultOptions()
	if cfg.WebhookRetryBase > 0 {
		hookOpts.RetryBase = cfg.WebhookRetryBase
	}
	if cfg.WebhookMaxAttempts > 0 {
		hookOpts.MaxAttempts = cfg.WebhookMaxAttempts
	}
	go webhooks.New(pool, hub, hookOpts, log).Run(bg)

	in := ingest.NewWithMetrics(pubCtx, pool, pub, m, log)

	agentSrv := agentapi.New(pool, leaser, in, log)
	var trust *agentapi.Trust
	if cfg.TLS == nil && !cfg.Insecure {
		if cfg.TLS, trust, err = builtinCA(ctx, db.New(pool), cfg); err != nil {
			return err
		}
	}
	opts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.MaxRecvMsgSize(16 << 20),
	}
	// First in the chain, so calls the role check refuses are counted too.
	opts = append(opts, grpcMetrics(m)...)
	opts = append(opts, connOptions()...)
	authorizer := &authz.Authorizer{
		Tokens: tokens.NewVerifier(pool), Insecure: cfg.Insecure,
		Audit: &audit.Recorder{DB: pool, Log: log.Named("audit")}, Log: log.Named("authz"),
	}
	security := "plaintext"
	if cfg.TLS != nil {
		// Certificates of the built-in CA are agents', never admins': people
		// use bearer tokens there.
		authorizer.Cert = certInfo(cfg.TLS, cfg.Roles, trust == nil)
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
		security = "tls"
		if cfg.TLS.ClientAuth == tls.RequireAndVerifyClientCert {
			security = "mtls"
		}
		if cfg.Roles != nil {
			opts = append(opts, grpc.ChainUnaryInterceptor(cfg.Roles.UnaryInterceptor()),
				grpc.ChainStreamInterceptor(cfg.Roles.StreamInterceptor()))
			security = "mtls with agent and admin roles"
		}
		if trust != nil {
			agentSrv.EnableTrust(*trust)
			opts = append(opts, grpc.ChainUnaryInterceptor(agentSrv.UnaryInterceptor()),
				grpc.ChainStreamInterceptor(agentSrv.StreamInterceptor()))
			security = "tls with the built-in CA (enrolled agents, CA " + cfg.CA.Fingerprint() + ")"
		}
	}
	if cfg.Insecure {
		log.Warn("!!! INSECURE: --insecure serves without authentication; anyone who can reach "+lis.Addr().String()+
			" is an admin, agents join any site they name. For tests and demos on one machine only. !!!",
			"listen", lis.Addr().String(), "transport", security)
		security += ", insecure (no authentication required)"
	}
	opts = append(opts, grpc.ChainUnaryInterceptor(authorizer.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(authorizer.StreamInterceptor()))
	gs := grpc.NewServer(opts...)
	go agentSrv.Run(bg)
	pb.RegisterAgentServiceServer(gs, agentSrv)
	pb.RegisterAdminServiceServer(gs, admin.New(pool, hub, log).WithImporter(in))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(pb.AgentService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(pb.AdminService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	reflection.Register(gs)
	go watchDatabase(bg, pool, hs, log)
	if m != nil {
		m.GRPC().InitializeMetrics(gs)
	}
	if cfg.MetricsListen != "" {
		if _, err := metrics.Serve(bg, cfg.MetricsListen, m.Registry(), log.Named("metrics")); err != nil {
			return err
		}
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
	hs.Shutdown()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		log.Warn("streams still open after 10s; closing them")
		gs.Stop()
	}
	stopPub()
	<-pub.Done()
	return nil
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

// watchDatabase keeps the health status honest: a controller that cannot
// reach PostgreSQL can neither lease nor commit, so it reports NOT_SERVING
// until the database answers again.
func watchDatabase(ctx context.Context, pool *pgxpool.Pool, hs *health.Server, log hclog.Logger) {
	serving := true
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := pool.Ping(pctx)
		cancel()
		if ok := err == nil; ok != serving && ctx.Err() == nil {
			serving = ok
			st := healthpb.HealthCheckResponse_SERVING
			if !ok {
				st = healthpb.HealthCheckResponse_NOT_SERVING
				log.Warn("database unreachable; health is NOT_SERVING", "error", err)
			} else {
				log.Info("database reachable again; health is SERVING")
			}
			for _, svc := range []string{"", pb.AgentService_ServiceDesc.ServiceName, pb.AdminService_ServiceDesc.ServiceName} {
				hs.SetServingStatus(svc, st)
			}
		}
	}
}

// grpcMetrics returns the server options that count calls into m.
func grpcMetrics(m *metrics.Controller) []grpc.ServerOption {
	if m == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.GRPC().UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(m.GRPC().StreamServerInterceptor()),
	}
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
