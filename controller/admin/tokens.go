package admin

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/pki"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// CreateEnrollmentToken implements AdminService.CreateEnrollmentToken: the
// same token "scanorama-controller agent enroll" prints. Only its hash is
// stored; the token is in this response and nowhere else.
func (s *Server) CreateEnrollmentToken(ctx context.Context, req *pb.CreateEnrollmentTokenRequest) (*pb.CreateEnrollmentTokenResponse, error) {
	var bad []*apierr.FieldError
	ttl := 24 * time.Hour
	if req.Ttl != nil {
		ttl = req.GetTtl().AsDuration()
		if !req.GetTtl().IsValid() || ttl < time.Second || ttl > 365*24*time.Hour {
			bad = append(bad, apierr.Field("ttl", "must be 1s..8760h"))
		}
	}
	uses := req.GetUses()
	if uses == 0 {
		uses = 1
	}
	if uses < 1 || uses > 10000 {
		bad = append(bad, apierr.Field("uses", "must be 1..10000"))
	}
	if req.GetSite() == "" {
		bad = append(bad, apierr.Field("site", "required"))
	}
	if len(bad) > 0 {
		return nil, apierr.Invalid(bad...)
	}
	site, err := s.siteByName(ctx, s.q, "site", req.GetSite())
	if err != nil {
		return nil, err
	}
	ca, err := s.q.GetControllerCA(ctx)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, status.Error(codes.FailedPrecondition, "no controller CA: run scanorama-controller ca init and restart the controllers")
	}
	if err != nil {
		return nil, s.internal("read controller CA", err)
	}
	tok, err := pki.NewToken(ca.Fingerprint)
	if err != nil {
		return nil, s.internal("make token", err)
	}
	row, err := s.q.CreateEnrollmentToken(ctx, db.CreateEnrollmentTokenParams{
		ID: tok.ID, SecretHash: tok.SecretHash(), SiteID: site.ID, MaxUses: uses, TtlSeconds: ttl.Seconds(), CreatedBy: actor(ctx),
	})
	if err != nil {
		return nil, s.internal("create enrollment token", err)
	}
	s.log.Info("enrollment token created", "token_id", row.ID, "site", site.Name, "uses", uses, "expires", row.ExpiresAt, "by", actor(ctx))
	return &pb.CreateEnrollmentTokenResponse{Token: tok.String(), EnrollmentToken: &pb.EnrollmentToken{
		Id: row.ID, Site: site.Name, MaxUses: row.MaxUses, Uses: row.Uses, ExpiresAt: timestamppb.New(row.ExpiresAt),
		CreatedAt: timestamppb.New(row.CreatedAt), CreatedBy: row.CreatedBy,
	}}, nil
}

// ListEnrollmentTokens implements AdminService.ListEnrollmentTokens (the
// newest 1000; secrets are never shown again).
func (s *Server) ListEnrollmentTokens(ctx context.Context, _ *pb.ListEnrollmentTokensRequest) (*pb.ListEnrollmentTokensResponse, error) {
	rows, err := s.q.ListEnrollmentTokens(ctx, 1000)
	if err != nil {
		return nil, s.internal("list enrollment tokens", err)
	}
	resp := &pb.ListEnrollmentTokensResponse{}
	for _, r := range rows {
		t := &pb.EnrollmentToken{
			Id: r.ID, Site: r.SiteName, MaxUses: r.MaxUses, Uses: r.Uses, ExpiresAt: timestamppb.New(r.ExpiresAt),
			CreatedAt: timestamppb.New(r.CreatedAt), CreatedBy: r.CreatedBy, Expired: r.Expired,
		}
		if r.RevokedAt.Valid {
			t.RevokedAt = timestamppb.New(r.RevokedAt.Time)
		}
		resp.Tokens = append(resp.Tokens, t)
	}
	return resp, nil
}

// RevokeEnrollmentToken implements AdminService.RevokeEnrollmentToken.
func (s *Server) RevokeEnrollmentToken(ctx context.Context, req *pb.RevokeEnrollmentTokenRequest) (*pb.RevokeEnrollmentTokenResponse, error) {
	if !tokenIDRe.MatchString(req.GetId()) {
		return nil, apierr.InvalidField("id", "not a token id (16 hex digits, see ListEnrollmentTokens)")
	}
	n, err := s.q.RevokeEnrollmentToken(ctx, req.GetId())
	if err != nil {
		return nil, s.internal("revoke enrollment token", err)
	}
	if n == 0 {
		return nil, apierr.NotFound("id", "no unrevoked enrollment token %s", req.GetId())
	}
	s.log.Info("enrollment token revoked", "token_id", req.GetId(), "by", actor(ctx))
	return &pb.RevokeEnrollmentTokenResponse{}, nil
}
