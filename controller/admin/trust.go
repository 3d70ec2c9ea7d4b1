package admin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// maxSiteScopes bounds a site's allowed scopes.
const maxSiteScopes = 256

func parseScopes(in []string) ([]netip.Prefix, []*apierr.FieldError) {
	var bad []*apierr.FieldError
	if len(in) > maxSiteScopes {
		return nil, []*apierr.FieldError{apierr.Field("scopes", "at most %d CIDRs", maxSiteScopes)}
	}
	out := make([]netip.Prefix, 0, len(in))
	for i, c := range in {
		p, fe := parseCIDR(fmt.Sprintf("scopes[%d]", i), c)
		if fe != nil {
			bad = append(bad, fe)
			continue
		}
		out = append(out, p)
	}
	return out, bad
}

// UpdateSite implements AdminService.UpdateSite.
func (s *Server) UpdateSite(ctx context.Context, req *pb.UpdateSiteRequest) (*pb.UpdateSiteResponse, error) {
	var bad []*apierr.FieldError
	if req.GetName() == "" {
		bad = append(bad, apierr.Field("name", "required"))
	}
	if len(req.GetDescription()) > 1024 {
		bad = append(bad, apierr.Field("description", "at most 1024 bytes"))
	}
	scopes, fes := parseScopes(req.GetScopes())
	bad = append(bad, fes...)
	if len(bad) > 0 {
		return nil, apierr.Invalid(bad...)
	}
	p := db.UpdateSiteParams{Scopes: scopes, Name: req.GetName()}
	if req.Description != nil {
		p.Description = pgtype.Text{String: req.GetDescription(), Valid: true}
	}
	site, err := s.q.UpdateSite(ctx, p)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apierr.NotFound("name", "no site named %q", req.GetName())
	}
	if err != nil {
		return nil, s.internal("update site", err)
	}
	s.log.Info("site updated", "site", site.Name, "scopes", site.Scopes, "by", actor(ctx))
	return &pb.UpdateSiteResponse{Site: sitePB(site)}, nil
}

// RevokeAgent implements AdminService.RevokeAgent: the agent is refused on
// every controller from its next call (they cache an agent's row for at
// most half a heartbeat), and its leases return to pending now.
func (s *Server) RevokeAgent(ctx context.Context, req *pb.RevokeAgentRequest) (*pb.RevokeAgentResponse, error) {
	id, err := parseID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	resp := &pb.RevokeAgentResponse{}
	var a db.Agent
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		var err error
		if a, err = q.RevokeAgent(ctx, id); err != nil {
			return err
		}
		released, err := q.ReleaseAgentLeases(ctx, a.ID.String())
		if err != nil {
			return err
		}
		sites := map[string]bool{}
		for _, r := range released {
			resp.ReleasedJobIds = append(resp.ReleasedJobIds, r.ID.String())
			sites[r.SiteID.String()] = true
		}
		for site := range sites {
			if err := q.NotifyJobsAvailable(ctx, site); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apierr.NotFound("id", "no agent %s", id)
	}
	if err != nil {
		return nil, s.internal("revoke agent", err)
	}
	s.log.Warn("agent revoked", "agent_id", a.ID, "agent", a.Name, "released_jobs", resp.ReleasedJobIds, "by", actor(ctx))
	resp.Agent, err = s.agentPB(ctx, a)
	return resp, err
}

// ApproveAgent implements AdminService.ApproveAgent.
func (s *Server) ApproveAgent(ctx context.Context, req *pb.ApproveAgentRequest) (*pb.ApproveAgentResponse, error) {
	id, err := parseID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	a, err := s.q.ApproveAgent(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		cur, gerr := s.q.GetAgent(ctx, id)
		if errors.Is(gerr, pgx.ErrNoRows) {
			return nil, apierr.NotFound("id", "no agent %s", id)
		}
		if gerr != nil {
			return nil, s.internal("read agent", gerr)
		}
		return nil, status.Errorf(codes.FailedPrecondition, "id: agent %s is %s, not pending_approval", id, cur.State)
	}
	if err != nil {
		return nil, s.internal("approve agent", err)
	}
	s.log.Info("agent approved", "agent_id", a.ID, "agent", a.Name, "by", actor(ctx))
	out, err := s.agentPB(ctx, a)
	return &pb.ApproveAgentResponse{Agent: out}, err
}

// agentPB renders one agent as ListAgents shows it.
func (s *Server) agentPB(ctx context.Context, a db.Agent) (*pb.Agent, error) {
	site, err := s.q.GetSiteByID(ctx, a.SiteID)
	if err != nil {
		return nil, s.internal("read site", err)
	}
	list, err := s.ListAgents(ctx, &pb.ListAgentsRequest{Site: site.Name, PageSize: maxPageSize})
	if err != nil {
		return nil, err
	}
	for _, x := range list.GetAgents() {
		if x.GetId() == a.ID.String() {
			return x, nil
		}
	}
	return &pb.Agent{Id: a.ID.String(), Site: site.Name, Name: a.Name, State: a.State}, nil
}
