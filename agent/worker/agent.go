package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/scanorama/scanorama/agent/nmaprun"
	"github.com/scanorama/scanorama/agent/protocol"
	"github.com/scanorama/scanorama/agent/spool"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Agent is one running agent.
type Agent struct {
	cfg    Config
	log    hclog.Logger
	conn   *grpc.ClientConn
	client pb.AgentServiceClient
	spool  *spool.Spool
	caps   nmaprun.Capabilities
	runner *nmaprun.Runner

	mu        sync.Mutex // guards agentID and heartbeat
	agentID   string
	heartbeat time.Duration
}

// New checks the configuration, detects capabilities and opens the spool.
// It does not contact the controller yet.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.Named("agent").With("site", cfg.Site, "name", cfg.Name)
	caps, err := nmaprun.DetectCapabilities(ctx, cfg.NmapPath)
	if err != nil {
		return nil, fmt.Errorf("--nmap %s: %w", cfg.NmapPath, err)
	}
	creds, err := cfg.TLS.Credentials()
	if err != nil {
		return nil, err
	}
	sp, err := spool.Open(cfg.SpoolDir, spool.WithLogger(log.Named("spool")))
	if err != nil {
		return nil, fmt.Errorf("--spool-dir %s: %w", cfg.SpoolDir, err)
	}
	addrs := make([]resolver.Address, len(cfg.Controllers))
	for i, c := range cfg.Controllers {
		// Each controller's certificate is checked against its own host:
		// the dial target ("scanorama:///controllers") names none.
		host, _, _ := net.SplitHostPort(c)
		addrs[i] = resolver.Address{Addr: c, ServerName: host}
	}
	r := manual.NewBuilderWithScheme("scanorama")
	r.InitialState(resolver.State{Addresses: addrs})
	dialOpts := []grpc.DialOption{grpc.WithResolvers(r)}
	if cfg.Dialer != nil {
		dialOpts = append(dialOpts, grpc.WithContextDialer(cfg.Dialer))
	}
	if m := cfg.Metrics; m != nil {
		dialOpts = append(dialOpts, grpc.WithChainUnaryInterceptor(m.GRPC().UnaryClientInterceptor()),
			grpc.WithChainStreamInterceptor(m.GRPC().StreamClientInterceptor()))
	}
	conn, err := grpc.NewClient(r.Scheme()+":///controllers", append(dialOpts,
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		// Reconnect within seconds of a controller's return however long it
		// was away (gRPC's default backoff grows to two minutes): leases
		// get a fresh span of 3 TTLs after an outage, not more.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: grpcbackoff.Config{
			BaseDelay: time.Second, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second,
		}, MinConnectTimeout: 5 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(16<<20)),
	)...)
	if err != nil {
		_ = sp.Close()
		return nil, fmt.Errorf("--controller: %w", err)
	}
	log.Info("agent starting", "controllers", cfg.Controllers, "tls", cfg.TLS.Enabled || cfg.TLS.Config != nil, "scope", cfg.Scope, "nmap", caps.NmapVersion,
		"raw_sockets", caps.RawSockets, "spool", cfg.SpoolDir)
	return &Agent{
		cfg: cfg, log: log, conn: conn, client: pb.NewAgentServiceClient(conn), spool: sp, caps: caps,
		runner: &nmaprun.Runner{NmapPath: cfg.NmapPath, Logger: log.Named("nmap")},
	}, nil
}

// Client is the agent's AgentService client (for certificate renewal over
// the same connections).
func (a *Agent) Client() pb.AgentServiceClient { return a.client }

// Close releases the connection and the spool.
func (a *Agent) Close() error {
	return errors.Join(a.conn.Close(), a.spool.Close())
}

// Run registers, redelivers spooled results, then takes and runs jobs
// (Concurrency at a time) until ctx ends. A clean shutdown releases the
// current leases at once.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.register(ctx, ""); err != nil {
		return err
	}
	a.redeliver(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, a.cfg.Concurrency)
	for range a.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.work(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	a.log.Info("agent stopped")
	return <-errs
}

// work is one job slot: acquire, run, repeat.
func (a *Agent) work(ctx context.Context) error {
	bo := newBackoff(a.cfg.RetryMin, a.cfg.RetryMax)
	for ctx.Err() == nil {
		id := a.id()
		resp, err := a.client.AcquireJob(ctx, &pb.AcquireJobRequest{AgentId: id, Wait: durationpb.New(a.cfg.AcquireWait)})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if status.Code(err) == codes.Unauthenticated {
				// The controller forgot us (e.g. a fresh database): register again.
				if err := a.register(ctx, id); err != nil {
					return err
				}
				continue
			}
			a.log.Warn("acquire failed; retrying", "error", err)
			bo.wait(ctx)
			continue
		}
		bo.reset()
		if l := resp.GetLease(); l != nil {
			a.runJob(ctx, l)
		}
	}
	return nil
}

// id is the agent id the controller gave at registration.
func (a *Agent) id() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.agentID
}

// register (re)registers unless another job slot already replaced stale.
func (a *Agent) register(ctx context.Context, stale string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.agentID != stale {
		return nil
	}
	host, _ := os.Hostname()
	scope := make([]string, len(a.cfg.Scope))
	for i, p := range a.cfg.Scope {
		scope[i] = p.String()
	}
	bo := newBackoff(a.cfg.RetryMin, a.cfg.RetryMax)
	for {
		resp, err := a.client.Register(ctx, &pb.RegisterRequest{
			Site: a.cfg.Site, Name: a.cfg.Name, Scope: scope, Version: a.cfg.Version, Hostname: host,
			ProtocolVersion: protocol.Version,
			Capabilities:    &pb.AgentCapabilities{NmapVersion: a.caps.NmapVersion, RawSockets: a.caps.RawSockets},
		})
		if err == nil {
			a.agentID = resp.GetAgentId()
			a.heartbeat = max(resp.GetHeartbeatInterval().AsDuration(), 100*time.Millisecond)
			a.log.Info("registered", "agent_id", a.agentID, "heartbeat", a.heartbeat, "lease_ttl", resp.GetLeaseTtl().AsDuration())
			return nil
		}
		switch status.Code(err) {
		case codes.InvalidArgument, codes.FailedPrecondition:
			return fmt.Errorf("controller refused registration: %s", status.Convert(err).Message())
		case codes.NotFound:
			a.log.Warn("site does not exist on the controller yet; waiting", "error", status.Convert(err).Message())
		default:
			a.log.Warn("controller not reachable; retrying", "error", err)
		}
		if !bo.wait(ctx) {
			return ctx.Err()
		}
	}
}

func (a *Agent) heartbeatEvery() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.heartbeat
}
