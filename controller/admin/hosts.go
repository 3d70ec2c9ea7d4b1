package admin

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

const recentChanges = 20

// ListAgents implements AdminService.ListAgents.
func (s *Server) ListAgents(ctx context.Context, req *pb.ListAgentsRequest) (*pb.ListAgentsResponse, error) {
	site, err := s.optionalSite(ctx, req.GetSite())
	if err != nil {
		return nil, err
	}
	var cur struct{ Site, Name string }
	rows, next, err := paginate(req, &cur, func(limit int32) ([]db.ListAgentsRow, error) {
		return s.q.ListAgents(ctx, db.ListAgentsParams{SiteID: site, AfterSite: cur.Site, AfterName: cur.Name, RowLimit: limit})
	}, func(r db.ListAgentsRow) struct{ Site, Name string } {
		return struct{ Site, Name string }{r.SiteName, r.Agent.Name}
	})
	if err != nil {
		return nil, s.internal("list agents", err)
	}
	resp := &pb.ListAgentsResponse{NextPageToken: next}
	for _, r := range rows {
		a := r.Agent
		scope := make([]string, len(a.Scope))
		for k, p := range a.Scope {
			scope[k] = p.String()
		}
		resp.Agents = append(resp.Agents, &pb.Agent{
			Id: a.ID.String(), Site: r.SiteName, Name: a.Name, Scope: scope,
			Capabilities: &pb.AgentCapabilities{NmapVersion: a.NmapVersion, RawSockets: a.RawSockets},
			Version:      a.Version, Hostname: a.Hostname, State: a.State, RegisteredAt: timestamppb.New(a.RegisteredAt),
			LastSeen: timestamppb.New(a.LastSeen), ActiveLeases: r.ActiveLeases, ProtocolVersion: uint32(a.ProtocolVersion),
		})
	}
	return resp, nil
}

type hostCursor struct {
	Site uuid.UUID
	IP   netip.Addr
}

// ListHosts implements AdminService.ListHosts.
func (s *Server) ListHosts(ctx context.Context, req *pb.ListHostsRequest) (*pb.ListHostsResponse, error) {
	p := db.ListHostsParams{}
	var bad []*apierr.FieldError
	if req.GetNetwork() != "" {
		n, fe := parseCIDR("network", req.GetNetwork())
		if fe != nil {
			bad = append(bad, fe)
		} else {
			p.Network = &n
		}
	}
	switch req.GetStatus() {
	case "":
	case "up", "down":
		p.Status = pgtype.Text{String: req.GetStatus(), Valid: true}
	default:
		bad = append(bad, apierr.Field("status", "must be up or down, got %q", req.GetStatus()))
	}
	if op := req.GetOpenPort(); op != 0 {
		if op < 1 || op > 65535 {
			bad = append(bad, apierr.Field("open_port", "must be 1..65535, got %d", op))
		}
		p.OpenPort = pgtype.Int4{Int32: op, Valid: true}
	}
	if v := req.GetServiceName(); v != "" {
		p.ServiceName = pgtype.Text{String: v, Valid: true}
	}
	if v := req.GetOsFamily(); v != "" {
		p.OsFamily = pgtype.Text{String: v, Valid: true}
	}
	if t := req.GetSeenAfter(); t != nil {
		p.SeenAfter = pgtype.Timestamptz{Time: t.AsTime(), Valid: true}
	}
	if t := req.GetSeenBefore(); t != nil {
		p.SeenBefore = pgtype.Timestamptz{Time: t.AsTime(), Valid: true}
	}
	if len(bad) > 0 {
		return nil, apierr.Invalid(bad...)
	}
	var (
		rows []db.ListHostsRow
		next string
	)
	err := s.read(ctx, func(q *db.Queries) error {
		var err error
		if p.SiteID, err = s.optionalSiteIn(ctx, q, req.GetSite()); err != nil {
			return err
		}
		cur := hostCursor{IP: netip.IPv4Unspecified()}
		rows, next, err = paginate(req, &cur, func(limit int32) ([]db.ListHostsRow, error) {
			p.AfterSiteID, p.AfterIp, p.RowLimit = cur.Site, cur.IP, limit
			return q.ListHosts(ctx, p)
		}, func(r db.ListHostsRow) hostCursor { return hostCursor{r.Host.SiteID, r.Host.IpAddress} })
		return err
	})
	if err != nil {
		return nil, s.internal("list hosts", err)
	}
	resp := &pb.ListHostsResponse{NextPageToken: next}
	for _, r := range rows {
		resp.Hosts = append(resp.Hosts, hostPB(r.Host, r.SiteName))
	}
	return resp, nil
}

// GetHost implements AdminService.GetHost: current ports and recent changes.
func (s *Server) GetHost(ctx context.Context, req *pb.GetHostRequest) (*pb.GetHostResponse, error) {
	var bad []*apierr.FieldError
	if req.GetSite() == "" {
		bad = append(bad, apierr.Field("site", "required"))
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(req.GetIpAddress()))
	if err != nil {
		bad = append(bad, apierr.Field("ip_address", "not an IP address: %q", req.GetIpAddress()))
	}
	if len(bad) > 0 {
		return nil, apierr.Invalid(bad...)
	}
	// One transaction (s.read): host, ports and changes from one snapshot.
	var h *pb.Host
	err = s.read(ctx, func(q *db.Queries) error {
		site, err := s.siteByName(ctx, q, "site", req.GetSite())
		if err != nil {
			return err
		}
		row, err := q.GetHost(ctx, db.GetHostParams{SiteID: site.ID, IpAddress: ip.Unmap()})
		if errors.Is(err, pgx.ErrNoRows) {
			return apierr.NotFound("ip_address", "no host %s in site %q", ip, site.Name)
		}
		if err != nil {
			return fmt.Errorf("read host: %w", err)
		}
		h = hostPB(row.Host, row.SiteName)
		svcs, err := q.ListHostServices(ctx, row.Host.ID)
		if err != nil {
			return fmt.Errorf("read host services: %w", err)
		}
		for _, sv := range svcs {
			h.Ports = append(h.Ports, &pb.HostPort{
				Port: sv.Port, Protocol: sv.Protocol, State: sv.State, ServiceName: sv.ServiceName.String,
				ServiceProduct: sv.ServiceProduct.String, ServiceVersion: sv.ServiceVersion.String,
				ServiceExtraInfo: sv.ServiceExtraInfo.String, FirstSeen: timestamppb.New(sv.FirstSeen),
				LastSeen: timestamppb.New(sv.LastSeen),
			})
		}
		changes, err := q.ListHostChanges(ctx, db.ListHostChangesParams{
			HostID: uuid.NullUUID{UUID: row.Host.ID, Valid: true}, BeforeID: math.MaxInt64, RowLimit: recentChanges,
		})
		if err != nil {
			return fmt.Errorf("read host history: %w", err)
		}
		for _, c := range changes {
			h.RecentChanges = append(h.RecentChanges, changePB(c))
		}
		return nil
	})
	if err != nil {
		return nil, s.internal("get host", err) // passes the NotFound through
	}
	return &pb.GetHostResponse{Host: h}, nil
}

type changeCursor struct {
	At time.Time
	ID int64
}

// ListHostChanges implements AdminService.ListHostChanges, newest first.
func (s *Server) ListHostChanges(ctx context.Context, req *pb.ListHostChangesRequest) (*pb.ListHostChangesResponse, error) {
	p := db.ListHostChangesParams{}
	if t := req.GetSince(); t != nil {
		p.Since = pgtype.Timestamptz{Time: t.AsTime(), Valid: true}
	}
	if t := req.GetUntil(); t != nil {
		p.Until = pgtype.Timestamptz{Time: t.AsTime(), Valid: true}
	}
	var (
		rows []db.ListHostChangesRow
		next string
	)
	err := s.read(ctx, func(q *db.Queries) error {
		var err error
		if p.SiteID, err = s.optionalSiteIn(ctx, q, req.GetSite()); err != nil {
			return err
		}
		if req.GetIpAddress() != "" {
			if !p.SiteID.Valid {
				return apierr.InvalidField("site", "required with ip_address (addresses repeat across sites)")
			}
			ip, err := netip.ParseAddr(req.GetIpAddress())
			if err != nil {
				return apierr.InvalidField("ip_address", "not an IP address: %q", req.GetIpAddress())
			}
			h, err := q.GetHost(ctx, db.GetHostParams{SiteID: p.SiteID.UUID, IpAddress: ip.Unmap()})
			if errors.Is(err, pgx.ErrNoRows) {
				return apierr.NotFound("ip_address", "no host %s in site %q", ip, req.GetSite())
			}
			if err != nil {
				return fmt.Errorf("read host: %w", err)
			}
			p.HostID = uuid.NullUUID{UUID: h.Host.ID, Valid: true}
		}
		cur := changeCursor{At: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), ID: math.MaxInt64}
		rows, next, err = paginate(req, &cur, func(limit int32) ([]db.ListHostChangesRow, error) {
			p.BeforeAt, p.BeforeID, p.RowLimit = cur.At, cur.ID, limit
			return q.ListHostChanges(ctx, p)
		}, func(r db.ListHostChangesRow) changeCursor {
			return changeCursor{At: r.HostHistory.ChangedAt, ID: r.HostHistory.ID}
		})
		return err
	})
	if err != nil {
		return nil, s.internal("list host changes", err)
	}
	resp := &pb.ListHostChangesResponse{NextPageToken: next}
	for _, r := range rows {
		resp.Changes = append(resp.Changes, changePB(r))
	}
	return resp, nil
}

func hostPB(h db.Host, site string) *pb.Host {
	out := &pb.Host{
		Id: h.ID.String(), Site: site, IpAddress: h.IpAddress.String(), Hostname: h.Hostname.String,
		Vendor: h.Vendor.String, OsFamily: h.OsFamily.String, OsName: h.OsName.String,
		OsConfidence: int32(h.OsConfidence.Int16), Status: h.Status, FirstSeen: timestamppb.New(h.FirstSeen),
		LastSeen: timestamppb.New(h.LastSeen), DiscoveryCount: h.DiscoveryCount, IgnoreScanning: h.IgnoreScanning,
		OpenPorts: h.OpenPorts,
	}
	if h.MacAddress != nil {
		out.MacAddress = h.MacAddress.String()
	}
	return out
}

func changePB(c db.ListHostChangesRow) *pb.HostChange {
	h := c.HostHistory
	out := &pb.HostChange{
		Id: h.ID, Site: c.SiteName, IpAddress: c.IpAddress.String(), Event: h.Event, Port: h.Port.Int32,
		Protocol: h.Protocol.String, OldValue: h.OldValue.String, NewValue: h.NewValue.String,
		ChangedAt: timestamppb.New(h.ChangedAt), ChangedBy: h.ChangedBy, ChangeReason: h.ChangeReason.String,
	}
	if h.JobID.Valid {
		out.JobId = h.JobID.UUID.String()
	}
	return out
}
