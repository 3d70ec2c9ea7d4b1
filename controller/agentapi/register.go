package agentapi

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/pki"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// registerEnrolled refreshes the record of an agent identified by its
// certificate. Its id and site come from the certificate; a request naming
// another site is refused, not silently corrected.
func (s *Server) registerEnrolled(ctx context.Context, id pki.Identity, req *pb.RegisterRequest) (*pb.RegisterResponse, error) {
	if req.GetSite() != "" && req.GetSite() != id.Site {
		return nil, status.Errorf(codes.PermissionDenied, "site %q is not the site of your certificate (%q)", req.GetSite(), id.Site)
	}
	scope := make([]netip.Prefix, 0, len(req.GetScope()))
	for i, c := range req.GetScope() {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, apierr.InvalidField(fmt.Sprintf("scope[%d]", i), "not a CIDR: %q", c)
		}
		scope = append(scope, p.Masked())
	}
	if len(scope) == 0 {
		scope = allAddresses
	}
	begin := time.Now()
	a, err := s.q.RegisterEnrolledAgent(ctx, db.RegisterEnrolledAgentParams{
		ID: id.AgentID, Scope: scope,
		NmapVersion: req.GetCapabilities().GetNmapVersion(), RawSockets: req.GetCapabilities().GetRawSockets(),
		Version: req.GetVersion(), Hostname: req.GetHostname(),
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, status.Errorf(codes.PermissionDenied, "agent %s of your certificate no longer exists; enroll again", id.AgentID)
	}
	if err != nil {
		return nil, s.internal("register agent", err)
	}
	if state.AgentState(a.State) == state.AgentRevoked {
		return nil, status.Errorf(codes.PermissionDenied, "agent %s (%s) is revoked", a.ID, a.Name)
	}
	if req.GetName() != "" && req.GetName() != a.Name {
		s.log.Warn("enrolled agent registered under another name; keeping the enrolled one", "agent_id", a.ID, "enrolled_name", a.Name, "requested", req.GetName())
	}
	s.agents.put(begin, a)
	s.log.Info("enrolled agent registered", "agent_id", a.ID, "site", id.Site, "name", a.Name, "scope", scope, "state", a.State,
		"nmap", a.NmapVersion, "raw_sockets", a.RawSockets)
	ttl := s.leaser.TTL()
	return &pb.RegisterResponse{
		AgentId:           a.ID.String(),
		HeartbeatInterval: durationpb.New(ttl / 3),
		LeaseTtl:          durationpb.New(ttl),
	}, nil
}

// enrolledScope narrows an enrolled agent's scope to what its site allows.
// A site without scopes leases nothing to enrolled agents: an operator must
// say which networks a segment's agents may scan (UpdateSite). Agents that
// are not enrolled keep their declared scope (see Trust).
func (s *Server) enrolledScope(ctx context.Context, a db.Agent) (db.Agent, error) {
	if !a.Enrolled {
		return a, nil
	}
	if state.AgentState(a.State) == state.AgentPendingApproval {
		return a, status.Errorf(codes.FailedPrecondition, "agent %s (%s) awaits approval (AdminService.ApproveAgent)", a.ID, a.Name)
	}
	siteScopes, err := s.q.GetSiteScopes(ctx, a.SiteID)
	if err != nil {
		return a, s.internal("read site scopes", err)
	}
	if len(siteScopes) == 0 {
		s.log.Warn("site has no scopes; its enrolled agents lease nothing until UpdateSite sets them", "site_id", a.SiteID, "agent", a.Name)
		return a, status.Error(codes.FailedPrecondition, "your site has no scopes set, so enrolled agents lease nothing there; an admin must set them with AdminService.UpdateSite{scopes}")
	}
	eff := intersectScopes(a.Scope, siteScopes)
	if len(eff) == 0 {
		return a, status.Errorf(codes.FailedPrecondition, "your scope %v lies outside your site's scopes %v", a.Scope, siteScopes)
	}
	a.Scope = eff
	return a, nil
}
