package server

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/scanorama/scanorama/controller/agentapi"
	"github.com/scanorama/scanorama/controller/audit"
	"github.com/scanorama/scanorama/controller/authz"
	"github.com/scanorama/scanorama/controller/metrics"
	"github.com/scanorama/scanorama/controller/tokens"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// services are what the gRPC server exposes.
type services struct {
	agent *agentapi.Server
	admin pb.AdminServiceServer
	// trust is set when agents enroll with the built-in CA.
	trust *agentapi.Trust
}

// newGRPCServer builds the server's security chain (metrics, connection
// limits, role and enrollment checks, authorization) and registers the
// services, health and reflection. It returns the server, its health
// status and a one-line description of the transport for the log.
func newGRPCServer(cfg Config, pool *pgxpool.Pool, svc services, m *metrics.Controller, log hclog.Logger) (*grpc.Server, *health.Server, string) {
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
		authorizer.Cert = certInfo(cfg.TLS, cfg.Roles, svc.trust == nil)
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
		if svc.trust != nil {
			svc.agent.EnableTrust(*svc.trust)
			opts = append(opts, grpc.ChainUnaryInterceptor(svc.agent.UnaryInterceptor()),
				grpc.ChainStreamInterceptor(svc.agent.StreamInterceptor()))
			security = "tls with the built-in CA (enrolled agents, CA " + cfg.CA.Fingerprint() + ")"
		}
	}
	if cfg.Insecure {
		security += ", insecure (no authentication required)"
	}
	opts = append(opts, grpc.ChainUnaryInterceptor(authorizer.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(authorizer.StreamInterceptor()))
	gs := grpc.NewServer(opts...)
	pb.RegisterAgentServiceServer(gs, svc.agent)
	pb.RegisterAdminServiceServer(gs, svc.admin)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	setHealth(hs, healthpb.HealthCheckResponse_SERVING)
	reflection.Register(gs)
	if m != nil {
		m.GRPC().InitializeMetrics(gs)
	}
	return gs, hs, security
}

// stopGRPC drains calls for up to grace, then closes what is still open.
func stopGRPC(gs *grpc.Server, hs *health.Server, grace time.Duration, log hclog.Logger) {
	hs.Shutdown()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(grace):
		log.Warn("streams still open after the grace period; closing them", "grace", grace)
		gs.Stop()
	}
}

func setHealth(hs *health.Server, st healthpb.HealthCheckResponse_ServingStatus) {
	for _, svc := range []string{"", pb.AgentService_ServiceDesc.ServiceName, pb.AdminService_ServiceDesc.ServiceName} {
		hs.SetServingStatus(svc, st)
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
			setHealth(hs, st)
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
