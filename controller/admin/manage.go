package admin

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// CreateExclusion implements AdminService.CreateExclusion.
func (s *Server) CreateExclusion(ctx context.Context, req *pb.CreateExclusionRequest) (*pb.CreateExclusionResponse, error) {
	n, fe := parseCIDR("network", req.GetNetwork())
	if fe != nil {
		return nil, apierr.Invalid(fe)
	}
	if len(req.GetReason()) > 1024 {
		return nil, apierr.InvalidField("reason", "at most 1024 bytes")
	}
	site, err := s.optionalSite(ctx, req.GetSite())
	if err != nil {
		return nil, err
	}
	e, err := s.q.CreateExclusion(ctx, db.CreateExclusionParams{SiteID: site, Network: n, Reason: req.GetReason(), CreatedBy: actor(ctx)})
	if err != nil {
		return nil, s.internal("create exclusion", err)
	}
	s.log.Info("exclusion created", "network", n, "site", req.GetSite(), "by", actor(ctx))
	return &pb.CreateExclusionResponse{Exclusion: exclusionPB(e.ID, req.GetSite(), e.Network, e.Reason, e.CreatedAt, e.CreatedBy)}, nil
}

// ListExclusions implements AdminService.ListExclusions.
func (s *Server) ListExclusions(ctx context.Context, req *pb.ListExclusionsRequest) (*pb.ListExclusionsResponse, error) {
	site, err := s.optionalSite(ctx, req.GetSite())
	if err != nil {
		return nil, err
	}
	var cur timeCursor
	rows, next, err := paginate(req, &cur, func(limit int32) ([]db.ListExclusionsRow, error) {
		return s.q.ListExclusions(ctx, db.ListExclusionsParams{SiteID: site, AfterCreated: cur.Created, AfterID: cur.ID, RowLimit: limit})
	}, func(r db.ListExclusionsRow) timeCursor { return timeCursor{r.CreatedAt, r.ID} })
	if err != nil {
		return nil, s.internal("list exclusions", err)
	}
	resp := &pb.ListExclusionsResponse{NextPageToken: next}
	for _, r := range rows {
		resp.Exclusions = append(resp.Exclusions, exclusionPB(r.ID, r.SiteName, r.Network, r.Reason, r.CreatedAt, r.CreatedBy))
	}
	return resp, nil
}

// DeleteExclusion implements AdminService.DeleteExclusion.
func (s *Server) DeleteExclusion(ctx context.Context, req *pb.DeleteExclusionRequest) (*pb.DeleteExclusionResponse, error) {
	id, err := parseID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	n, err := s.q.DeleteExclusion(ctx, id)
	if err != nil {
		return nil, s.internal("delete exclusion", err)
	}
	if n == 0 {
		return nil, apierr.NotFound("id", "no global or site exclusion %s (target exclusions change with UpdateTarget)", id)
	}
	return &pb.DeleteExclusionResponse{}, nil
}

func exclusionPB(id uuid.UUID, site string, n netip.Prefix, reason string, at time.Time, by string) *pb.Exclusion {
	return &pb.Exclusion{Id: id.String(), Site: site, Network: n.String(), Reason: reason, CreatedAt: timestamppb.New(at), CreatedBy: by}
}

// GetProfile implements AdminService.GetProfile.
func (s *Server) GetProfile(ctx context.Context, req *pb.GetProfileRequest) (*pb.GetProfileResponse, error) {
	if req.GetName() == "" {
		return nil, apierr.InvalidField("name", "required")
	}
	p, err := s.q.GetProfileByName(ctx, req.GetName())
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apierr.NotFound("name", "no profile named %q", req.GetName())
	}
	if err != nil {
		return nil, s.internal("read profile", err)
	}
	out, err := profilePB(p)
	if err != nil {
		return nil, s.internal("read profile", err)
	}
	return &pb.GetProfileResponse{Profile: out}, nil
}

// DrainAgent implements AdminService.DrainAgent.
func (s *Server) DrainAgent(ctx context.Context, req *pb.DrainAgentRequest) (*pb.DrainAgentResponse, error) {
	site, err := s.siteByName(ctx, s.q, "site", req.GetSite())
	if err != nil {
		return nil, err
	}
	if req.GetName() == "" {
		return nil, apierr.InvalidField("name", "required")
	}
	if _, err := s.q.SetAgentDraining(ctx, db.SetAgentDrainingParams{Drain: req.GetDrain(), SiteID: site.ID, Name: req.GetName()}); errors.Is(err, pgx.ErrNoRows) {
		return nil, apierr.NotFound("name", "no agent %q in site %q", req.GetName(), site.Name)
	} else if err != nil {
		return nil, s.internal("drain agent", err)
	}
	s.log.Info("agent drain set", "site", site.Name, "agent", req.GetName(), "drain", req.GetDrain(), "by", actor(ctx))
	list, err := s.ListAgents(ctx, &pb.ListAgentsRequest{Site: site.Name, PageSize: maxPageSize})
	if err != nil {
		return nil, err
	}
	for _, a := range list.GetAgents() {
		if a.GetName() == req.GetName() {
			return &pb.DrainAgentResponse{Agent: a}, nil
		}
	}
	return &pb.DrainAgentResponse{}, nil
}

// UpdateHost implements AdminService.UpdateHost.
func (s *Server) UpdateHost(ctx context.Context, req *pb.UpdateHostRequest) (*pb.UpdateHostResponse, error) {
	ip, err := netip.ParseAddr(strings.TrimSpace(req.GetIpAddress()))
	if err != nil {
		return nil, apierr.InvalidField("ip_address", "not an IP address: %q", req.GetIpAddress())
	}
	site, err := s.siteByName(ctx, s.q, "site", req.GetSite())
	if err != nil {
		return nil, err
	}
	if _, err := s.q.SetHostIgnored(ctx, db.SetHostIgnoredParams{IgnoreScanning: req.GetIgnoreScanning(), SiteID: site.ID, IpAddress: ip.Unmap()}); errors.Is(err, pgx.ErrNoRows) {
		return nil, apierr.NotFound("ip_address", "no host %s in site %q", ip, site.Name)
	} else if err != nil {
		return nil, s.internal("update host", err)
	}
	h, err := s.GetHost(ctx, &pb.GetHostRequest{Site: site.Name, IpAddress: ip.String()})
	if err != nil {
		return nil, err
	}
	return &pb.UpdateHostResponse{Host: h.GetHost()}, nil
}
