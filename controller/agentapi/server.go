// Package agentapi serves AgentService: it authenticates nothing itself
// (transport security is the server's job) but checks every agent call
// against the agent's registration and fences every job call with the
// lease token, translating leasing and ingest outcomes into gRPC codes.
package agentapi

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/scanorama/scanorama/agent/protocol"
	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/ingest"
	"github.com/scanorama/scanorama/controller/leasing"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Server implements pb.AgentServiceServer.
type Server struct {
	pb.UnimplementedAgentServiceServer
	pool   *pgxpool.Pool
	q      *db.Queries
	leaser *leasing.Leaser
	ingest *ingest.Ingester
	log    hclog.Logger
	agents *agentCache
	loader *agentLoader
	trust  *Trust // nil: agents are not enrolled (see Trust)
	// touch bounds how stale an agent's last_seen may get while it calls.
	touch time.Duration
	// touched are agents whose last_seen Run writes in the next batch.
	touched touches
}

// New returns an AgentService implementation; Run must run beside it to
// record the agents' last contact.
func New(pool *pgxpool.Pool, leaser *leasing.Leaser, in *ingest.Ingester, log hclog.Logger) *Server {
	// An agent is lost after 3 TTLs of silence; its calls (and open
	// long-polls, every TTL/3) must refresh last_seen well within that: the
	// cache and the touch threshold add at most TTL/3 each. A revocation
	// reaches every controller within half a heartbeat (TTL/6).
	hb := leaser.HeartbeatInterval()
	return &Server{pool: pool, q: db.New(pool), leaser: leaser, ingest: in, log: log.Named("agentapi"),
		agents: newAgentCache(min(agentCacheTTL, leaser.TTL()/6)), loader: newAgentLoader(), touch: min(touchEvery, hb)}
}

// touchEvery bounds how stale an agent's last_seen may get while it is active.
const touchEvery = 5 * time.Second

var allAddresses = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

// Register implements AgentService.Register.
func (s *Server) Register(ctx context.Context, req *pb.RegisterRequest) (*pb.RegisterResponse, error) {
	if id, ok := IdentityFrom(ctx); ok {
		return s.registerEnrolled(ctx, id, req)
	}
	var bad []*apierr.FieldError
	if req.GetSite() == "" {
		bad = append(bad, apierr.Field("site", "required"))
	}
	if n := req.GetName(); n == "" || len(n) > 128 {
		bad = append(bad, apierr.Field("name", "required, at most 128 characters"))
	}
	scope := make([]netip.Prefix, 0, len(req.GetScope()))
	for i, c := range req.GetScope() {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			bad = append(bad, apierr.Field(fmt.Sprintf("scope[%d]", i), "not a CIDR: %q", c))
			continue
		}
		scope = append(scope, p.Masked())
	}
	if len(bad) > 0 {
		return nil, apierr.Invalid(bad...)
	}
	if len(scope) == 0 {
		scope = allAddresses
	}
	if err := protocol.Check(req.GetProtocolVersion()); err != nil {
		return nil, apierr.FailedPrecondition("protocol_version", "%v; upgrade the agent or the controller", err)
	}
	site, err := s.q.GetSiteByName(ctx, req.GetSite())
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apierr.NotFound("site", "no site named %q; create it with AdminService.CreateSite", req.GetSite())
	}
	if err != nil {
		return nil, s.internal("look up site", err)
	}
	begin := time.Now()
	a, err := s.q.UpsertAgent(ctx, db.UpsertAgentParams{
		SiteID: site.ID, Name: req.GetName(), Scope: scope,
		NmapVersion: req.GetCapabilities().GetNmapVersion(), RawSockets: req.GetCapabilities().GetRawSockets(),
		Version: req.GetVersion(), Hostname: req.GetHostname(), ProtocolVersion: int32(req.GetProtocolVersion()),
	})
	if err != nil {
		return nil, s.internal("register agent", err)
	}
	s.agents.put(begin, a)
	s.log.Info("agent registered", "agent_id", a.ID, "site", site.Name, "name", a.Name, "scope", scope,
		"nmap", a.NmapVersion, "raw_sockets", a.RawSockets, "protocol", protocol.Effective(req.GetProtocolVersion()))
	ttl := s.leaser.TTL()
	return &pb.RegisterResponse{
		AgentId:           a.ID.String(),
		HeartbeatInterval: durationpb.New(s.leaser.HeartbeatInterval()),
		LeaseTtl:          durationpb.New(ttl),
		ProtocolVersion:   protocol.Version,
	}, nil
}

func (s *Server) agent(ctx context.Context, requested string) (db.Agent, error) {
	id, err := checkAgentID(ctx, requested)
	if err != nil {
		return db.Agent{}, err
	}
	a, err := s.cachedAgent(ctx, id)
	if err != nil {
		return a, err
	}
	if state.AgentState(a.State) == state.AgentRevoked {
		return db.Agent{}, status.Errorf(codes.PermissionDenied, "agent %s (%s) is revoked", a.ID, a.Name)
	}
	if _, ok := IdentityFrom(ctx); a.Enrolled && !ok {
		return db.Agent{}, status.Errorf(codes.PermissionDenied, "agent %s is enrolled: it calls with its own certificate only", a.ID)
	}
	return a, nil
}

func (s *Server) cachedAgent(ctx context.Context, id string) (db.Agent, error) {
	aid, err := uuid.Parse(id)
	if err != nil {
		return db.Agent{}, apierr.InvalidField("agent_id", "not a UUID: %q", id)
	}
	begin := time.Now() // before any read below: what it stores is no older
	a, ok := s.agents.get(aid)
	if !ok {
		a, err = s.loadAgent(ctx, aid)
	}
	switch {
	case err != nil:
	case state.AgentState(a.State) == state.AgentLost:
		// Back at once: the agent must not be treated as lost any longer.
		a, err = s.q.TouchAgent(ctx, aid)
		ok = false
	case time.Since(a.LastSeen) > s.touch:
		// last_seen is coarse on purpose and written in batches (touch.go):
		// a write on every call would cost a synchronous commit per
		// heartbeat, acquire and results stream.
		s.touched.mark(aid)
	}
	if ok {
		return a, nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return db.Agent{}, status.Errorf(codes.Unauthenticated, "agent_id %s is not registered; call Register", id)
	}
	if err != nil {
		return db.Agent{}, s.internal("read agent", err)
	}
	s.agents.put(begin, a)
	return a, nil
}

// AcquireJob implements AgentService.AcquireJob.
func (s *Server) AcquireJob(ctx context.Context, req *pb.AcquireJobRequest) (*pb.AcquireJobResponse, error) {
	a, err := s.agent(ctx, req.GetAgentId())
	if err != nil {
		return nil, err
	}
	if state.AgentState(a.State) == state.AgentDraining {
		// The cached row may predate an undrain; "no work" must not. The
		// lease statement checks the state itself, so only this early
		// answer needs the current row (draining agents are few).
		begin := time.Now()
		if a, err = s.loadAgent(ctx, a.ID); err != nil {
			return nil, s.internal("read agent", err)
		}
		s.agents.put(begin, a)
		if state.AgentState(a.State) == state.AgentDraining {
			return &pb.AcquireJobResponse{}, nil
		}
	}
	if a, err = s.enrolledScope(ctx, a); err != nil {
		return nil, err
	}
	// An open poll counts as liveness (Run marks waiting agents every
	// heartbeat interval), so an idle agent whose poll outlasts 3 TTLs is
	// never marked lost, whatever the TTL.
	s.touched.wait(a.ID)
	job, err := s.leaser.Acquire(ctx, a, req.GetWait().AsDuration())
	s.touched.done(a.ID)
	if err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return nil, s.internal("acquire job", err)
	}
	if job == nil {
		return &pb.AcquireJobResponse{}, nil
	}
	var opts pb.ScanOptions
	if err := protojson.Unmarshal(job.Options, &opts); err != nil {
		return nil, s.internal("decode job options", err)
	}
	excl := make([]string, len(job.Exclusions))
	for i, e := range job.Exclusions {
		excl[i] = e.String()
	}
	return &pb.AcquireJobResponse{Lease: &pb.Lease{
		JobId: job.ID.String(), LeaseToken: job.LeaseToken, TimeoutAt: timestamppb.New(job.TimeoutAt.Time),
		Attempt: job.Attempt, Network: job.Network.String(), Exclusions: excl, Options: &opts, Site: job.SiteName,
	}}, nil
}

// Heartbeat implements AgentService.Heartbeat.
func (s *Server) Heartbeat(ctx context.Context, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	a, err := s.agent(ctx, req.GetAgentId())
	if err != nil {
		return nil, err
	}
	resp := &pb.HeartbeatResponse{Draining: state.AgentState(a.State) == state.AgentDraining}
	for i, l := range req.GetLeases() {
		jobID, err := uuid.Parse(l.GetJobId())
		if err != nil {
			return nil, apierr.InvalidField(fmt.Sprintf("leases[%d].job_id", i), "not a UUID: %q", l.GetJobId())
		}
		hb, err := s.leaser.Heartbeat(ctx, leasing.LeaseRef{JobID: jobID, WorkerID: a.ID.String(), Token: l.GetLeaseToken()}, int(l.GetProgressPercent()))
		if err != nil {
			return nil, s.internal("heartbeat", err)
		}
		st := &pb.LeaseStatus{JobId: l.GetJobId()}
		switch hb.State {
		case leasing.LeaseActive:
			st.State, st.TimeoutAt = pb.LeaseState_LEASE_STATE_ACTIVE, timestamppb.New(hb.TimeoutAt)
		case leasing.LeaseCancelled:
			st.State = pb.LeaseState_LEASE_STATE_CANCELLED
		default:
			st.State = pb.LeaseState_LEASE_STATE_LOST
		}
		resp.Leases = append(resp.Leases, st)
	}
	return resp, nil
}

// StreamResults implements AgentService.StreamResults.
func (s *Server) StreamResults(stream pb.AgentService_StreamResultsServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	a, err := s.agent(ctx, first.GetOpen().GetAgentId())
	if err != nil {
		return err
	}
	res, err := s.ingest.Ingest(ctx, a.ID.String(), &replay{first: first, rest: stream})
	if err != nil {
		return s.internal("ingest results", err)
	}
	return stream.SendAndClose(&pb.StreamResultsResponse{
		JobId: res.JobID.String(), AlreadyCommitted: res.AlreadyCommitted, Hosts: res.Hosts, PortRows: res.PortRows,
	})
}

// replay hands the already-read first message back to the ingester.
type replay struct {
	first *pb.StreamResultsRequest
	rest  ingest.Receiver
}

func (r *replay) Recv() (*pb.StreamResultsRequest, error) {
	if m := r.first; m != nil {
		r.first = nil
		return m, nil
	}
	return r.rest.Recv()
}

// FailJob implements AgentService.FailJob.
func (s *Server) FailJob(ctx context.Context, req *pb.FailJobRequest) (*pb.FailJobResponse, error) {
	a, ref, err := s.leaseRef(ctx, req.GetAgentId(), req.GetJobId(), req.GetLeaseToken())
	if err != nil {
		return nil, err
	}
	msg := req.GetErrorMessage()
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	st, err := s.leaser.Fail(ctx, ref, fmt.Sprintf("agent %s: %s", a.Name, msg), req.GetRetryable())
	if err != nil {
		return nil, s.internal("fail job", err)
	}
	s.log.Warn("agent failed job", "job_id", ref.JobID, "agent", a.Name, "error", msg, "new_status", st)
	jobStatus, err := st.ToPB()
	if err != nil {
		return nil, s.internal("fail job", err)
	}
	return &pb.FailJobResponse{Status: jobStatus}, nil
}

// ReleaseJob implements AgentService.ReleaseJob.
func (s *Server) ReleaseJob(ctx context.Context, req *pb.ReleaseJobRequest) (*pb.ReleaseJobResponse, error) {
	_, ref, err := s.leaseRef(ctx, req.GetAgentId(), req.GetJobId(), req.GetLeaseToken())
	if err != nil {
		return nil, err
	}
	if err := s.leaser.Release(ctx, ref); err != nil {
		return nil, s.internal("release job", err)
	}
	return &pb.ReleaseJobResponse{}, nil
}

func (s *Server) leaseRef(ctx context.Context, agentID, jobID string, token int64) (db.Agent, leasing.LeaseRef, error) {
	a, err := s.agent(ctx, agentID)
	if err != nil {
		return a, leasing.LeaseRef{}, err
	}
	id, err := uuid.Parse(jobID)
	if err != nil {
		return a, leasing.LeaseRef{}, apierr.InvalidField("job_id", "not a UUID: %q", jobID)
	}
	return a, leasing.LeaseRef{JobID: id, WorkerID: a.ID.String(), Token: token}, nil
}

// internal maps an error for an agent (apierr.Agents): lease lost is
// FAILED_PRECONDITION, an incomplete stream ABORTED, and everything that is
// not the agent's fault UNAVAILABLE, so it retries with its results spooled.
func (s *Server) internal(what string, err error) error {
	return apierr.Agents.Err(s.log, what, err)
}
