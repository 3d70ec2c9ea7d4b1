package admin

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/authz"
	"github.com/scanorama/scanorama/controller/tokens"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

var tokenIDRe = regexp.MustCompile(`^[0-9a-f]{16}$`)

// CreateToken implements AdminService.CreateToken. The secret is in the
// response only; it is stored hashed. The call is audited without it.
func (s *Server) CreateToken(ctx context.Context, req *pb.CreateTokenRequest) (*pb.CreateTokenResponse, error) {
	caller, _ := authz.FromContext(ctx)
	var bad []*apierr.FieldError
	if req.GetName() == "" || len(req.GetName()) > 128 {
		bad = append(bad, apierr.Field("name", "required, at most 128 characters"))
	}
	role, err := authz.RoleFromPB(req.GetRole())
	if err != nil {
		bad = append(bad, apierr.Field("role", "TOKEN_ROLE_ADMIN, TOKEN_ROLE_OPERATOR or TOKEN_ROLE_VIEWER"))
	}
	var ttl time.Duration
	if req.GetTtl() != nil {
		if err := req.GetTtl().CheckValid(); err != nil {
			bad = append(bad, apierr.Field("ttl", "%v", err))
		} else if ttl = req.GetTtl().AsDuration(); ttl < time.Minute {
			bad = append(bad, apierr.Field("ttl", "at least 1m, got %s", ttl))
		}
	}
	if len(bad) > 0 {
		return nil, apierr.Invalid(bad...)
	}
	if caller.Scoped() && len(req.GetSites()) == 0 {
		return nil, status.Error(codes.PermissionDenied, "sites: a site-scoped caller can only create tokens confined to its own sites; name them")
	}
	siteIDs, err := s.siteIDs(ctx, req.GetSites())
	if err != nil {
		return nil, err
	}
	row, secret, err := tokens.Create(ctx, s.q, tokens.Spec{Name: req.GetName(), Role: role, Sites: siteIDs, TTL: ttl, CreatedBy: actor(ctx)})
	if err != nil {
		return nil, s.internal("create token", err)
	}
	s.log.Info("token created", "id", row.ID, "name", row.Name, "role", row.Role, "by", actor(ctx))
	out, err := tokenPB(row, req.GetSites())
	if err != nil {
		return nil, s.internal("create token", err)
	}
	return &pb.CreateTokenResponse{Token: out, Secret: secret}, nil
}

// siteIDs resolves site names the caller can see; any other is NotFound.
func (s *Server) siteIDs(ctx context.Context, names []string) ([]uuid.UUID, error) {
	if len(names) == 0 {
		return nil, nil
	}
	rows, err := s.q.SiteIDsByName(ctx, names)
	if err != nil {
		return nil, s.internal("look up sites", err)
	}
	byName := map[string]uuid.UUID{}
	for _, r := range rows {
		byName[r.Name] = r.ID
	}
	var ids []uuid.UUID
	for _, n := range names {
		id, ok := byName[n]
		if !ok {
			return nil, apierr.NotFound("sites", "no site named %q", n)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

type tokenCursor struct {
	Created time.Time
	ID      string
}

// ListTokens implements AdminService.ListTokens (never the secrets: only
// their hashes are stored).
func (s *Server) ListTokens(ctx context.Context, req *pb.ListTokensRequest) (*pb.ListTokensResponse, error) {
	var cur tokenCursor
	rows, next, err := paginate(req, &cur, func(limit int32) ([]db.ListAPITokensRow, error) {
		p := db.ListAPITokensParams{AfterID: cur.ID, RowLimit: limit}
		if !cur.Created.IsZero() {
			p.AfterCreated = pgtype.Timestamptz{Time: cur.Created, Valid: true}
		}
		return s.q.ListAPITokens(ctx, p)
	}, func(r db.ListAPITokensRow) tokenCursor { return tokenCursor{r.ApiToken.CreatedAt, r.ApiToken.ID} })
	if err != nil {
		return nil, s.internal("list tokens", err)
	}
	resp := &pb.ListTokensResponse{NextPageToken: next}
	for _, r := range rows {
		out, err := tokenPB(r.ApiToken, r.SiteNames)
		if err != nil {
			return nil, s.internal("list tokens", err)
		}
		resp.Tokens = append(resp.Tokens, out)
	}
	return resp, nil
}

// RevokeToken implements AdminService.RevokeToken: the token fails from
// its next call on, on every controller.
func (s *Server) RevokeToken(ctx context.Context, req *pb.RevokeTokenRequest) (*pb.RevokeTokenResponse, error) {
	if !tokenIDRe.MatchString(req.GetId()) {
		return nil, apierr.InvalidField("id", "a token id is 16 hex digits (the part after scn_), got %q", req.GetId())
	}
	row, err := s.q.RevokeAPIToken(ctx, db.RevokeAPITokenParams{ID: req.GetId(), RevokedBy: pgtype.Text{String: actor(ctx), Valid: true}})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apierr.NotFound("id", "no unrevoked token %s", req.GetId())
	}
	if err != nil {
		return nil, s.internal("revoke token", err)
	}
	s.log.Info("token revoked", "id", row.ID, "name", row.Name, "by", actor(ctx))
	out, err := tokenPB(row, nil)
	if err != nil {
		return nil, s.internal("revoke token", err)
	}
	return &pb.RevokeTokenResponse{Token: out}, nil
}

func tokenPB(t db.ApiToken, sites []string) (*pb.APIToken, error) {
	role, err := authz.ParseRole(t.Role)
	if err != nil {
		return nil, fmt.Errorf("token %s: %w", t.ID, err)
	}
	rolePB, err := role.ToPB()
	if err != nil {
		return nil, fmt.Errorf("token %s: %w", t.ID, err)
	}
	out := &pb.APIToken{Id: t.ID, Name: t.Name, Role: rolePB, Sites: sites,
		CreatedAt: timestamppb.New(t.CreatedAt), CreatedBy: t.CreatedBy, RevokedBy: t.RevokedBy.String}
	if t.ExpiresAt.Valid {
		out.ExpiresAt = timestamppb.New(t.ExpiresAt.Time)
	}
	if t.RevokedAt.Valid {
		out.RevokedAt = timestamppb.New(t.RevokedAt.Time)
	}
	return out, nil
}

type auditCursor struct{ ID int64 }

// ListAuditEvents implements AdminService.ListAuditEvents, newest first.
func (s *Server) ListAuditEvents(ctx context.Context, req *pb.ListAuditEventsRequest) (*pb.ListAuditEventsResponse, error) {
	p := db.ListAuditEventsParams{}
	if req.GetSince() != nil {
		if err := req.GetSince().CheckValid(); err != nil {
			return nil, apierr.InvalidField("since", "%v", err)
		}
		p.Since = pgtype.Timestamptz{Time: req.GetSince().AsTime(), Valid: true}
	}
	if req.GetActor() != "" {
		p.Actor = pgtype.Text{String: req.GetActor(), Valid: true}
	}
	site, err := s.optionalSite(ctx, req.GetSite())
	if err != nil {
		return nil, err
	}
	p.SiteID = site
	var cur auditCursor
	rows, next, err := paginate(req, &cur, func(limit int32) ([]db.ListAuditEventsRow, error) {
		p.RowLimit = limit
		if cur.ID > 0 {
			p.BeforeID = pgtype.Int8{Int64: cur.ID, Valid: true}
		}
		return s.q.ListAuditEvents(ctx, p)
	}, func(r db.ListAuditEventsRow) auditCursor { return auditCursor{r.AuditLog.ID} })
	if err != nil {
		return nil, s.internal("list audit events", err)
	}
	resp := &pb.ListAuditEventsResponse{NextPageToken: next}
	for _, r := range rows {
		a := r.AuditLog
		resp.Events = append(resp.Events, &pb.AuditEvent{
			Id: a.ID, Time: timestamppb.New(a.At), Actor: a.Actor, Role: a.Role, Action: a.Action, Site: r.SiteName,
			ObjectIds: a.ObjectIds, RequestJson: string(a.Request), Peer: a.Peer, Outcome: a.Outcome, Message: a.Message,
		})
	}
	return resp, nil
}
