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
	"github.com/scanorama/scanorama/controller/events"
	"github.com/scanorama/scanorama/controller/ingest"
	"github.com/scanorama/scanorama/controller/leasing"
	"github.com/scanorama/scanorama/controller/maintenance"
	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgserver"
	"github.com/scanorama/scanorama/controller/scheduler"
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
	// MaxConns caps the database pool.
	MaxConns int32
	// RetentionMonths of port_scans stay live; older months are archived (0 keeps all).
	RetentionMonths int
	Logger          hclog.Logger
	// TLS, when set, secures the gRPC API (see TLSFiles); nil serves
	// plaintext.
	TLS *tls.Config
	// Roles, when set, keeps agents' certificates off AdminService and
	// admins' off AgentService.
	Roles *Roles
	// Ready, when set, receives the bound address once the server accepts calls.
	Ready func(addr net.Addr)
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
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", cfg.Listen, err)
	}
	defer lis.Close()

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

	maint := maintenance.New(pool, log)
	maint.RetentionMonths = cfg.RetentionMonths
	if err := maint.EnsurePartitions(ctx); err != nil {
		return fmt.Errorf("create port_scans partitions: %w", err)
	}
	if _, err := maint.Archive(ctx); err != nil {
		return fmt.Errorf("archive old port_scans: %w", err)
	}
	go maint.Run(bg)

	lcfg := leasing.DefaultConfig()
	lcfg.TTL = cfg.LeaseTTL
	leaser := leasing.New(pool, hub, pub, lcfg, log)
	reaper := leasing.NewReaper(pool, hub, cfg.ReapEvery, 3*cfg.LeaseTTL, cfg.LeaseTTL, log)
	if _, err := reaper.ReapOnce(ctx); err != nil {
		return fmt.Errorf("reap leases at start: %w", err)
	}
	go reaper.Run(bg)

	go scheduler.New(pool, log).Run(bg)

	in := ingest.New(pubCtx, pool, pub, log)

	opts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.MaxRecvMsgSize(16 << 20),
	}
	opts = append(opts, connOptions()...)
	security := "plaintext"
	if cfg.TLS != nil {
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
	} else if host, _, _ := net.SplitHostPort(lis.Addr().String()); !isLoopback(host) {
		log.Warn("serving plaintext gRPC on a non-loopback address: agents and admins are not authenticated; "+
			"use --tls-cert, --tls-key and --tls-client-ca", "listen", lis.Addr().String())
	}
	gs := grpc.NewServer(opts...)
	agentSrv := agentapi.New(pool, leaser, in, log)
	go agentSrv.Run(bg)
	pb.RegisterAgentServiceServer(gs, agentSrv)
	pb.RegisterAdminServiceServer(gs, admin.New(pool, hub, log))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(pb.AgentService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(pb.AdminService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	reflection.Register(gs)
	go watchDatabase(bg, pool, hs, log)

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

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
