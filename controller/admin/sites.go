package admin

import (
	"context"
	"regexp"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// CreateSite implements AdminService.CreateSite.
func (s *Server) CreateSite(ctx context.Context, req *pb.CreateSiteRequest) (*pb.CreateSiteResponse, error) {
	var bad []*apierr.FieldError
	if !nameRe.MatchString(req.GetName()) {
		bad = append(bad, apierr.Field("name", "must be 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit; got %q", req.GetName()))
	}
	if len(req.GetDescription()) > 1024 {
		bad = append(bad, apierr.Field("description", "at most 1024 bytes"))
	}
	scopes, fes := parseScopes(req.GetScopes())
	bad = append(bad, fes...)
	if len(bad) > 0 {
		return nil, apierr.Invalid(bad...)
	}
	site, err := s.q.CreateSite(ctx, db.CreateSiteParams{Name: req.GetName(), Description: req.GetDescription(), CreatedBy: actor(ctx), Scopes: scopes})
	if err != nil {
		return nil, s.internal("create site "+req.GetName(), err)
	}
	s.log.Info("site created", "site", site.Name)
	return &pb.CreateSiteResponse{Site: sitePB(site)}, nil
}

// ListSites implements AdminService.ListSites.
func (s *Server) ListSites(ctx context.Context, req *pb.ListSitesRequest) (*pb.ListSitesResponse, error) {
	var cur nameCursor
	rows, next, err := paginate(req, &cur, func(limit int32) ([]db.Site, error) {
		return s.q.ListSites(ctx, db.ListSitesParams{AfterName: cur.Name, RowLimit: limit, IncludeArchived: req.GetIncludeArchived()})
	}, func(r db.Site) nameCursor { return nameCursor{r.Name} })
	if err != nil {
		return nil, s.internal("list sites", err)
	}
	pauses, err := s.pauses(ctx, s.q, uuid.NullUUID{})
	if err != nil {
		return nil, s.internal("list sites", err)
	}
	all, paused := pausedSites(pauses)
	resp := &pb.ListSitesResponse{NextPageToken: next}
	for _, r := range rows {
		p := sitePB(r)
		p.Paused = all || paused[r.Name]
		resp.Sites = append(resp.Sites, p)
	}
	return resp, nil
}

func sitePB(s db.Site) *pb.Site {
	scopes := make([]string, len(s.Scopes))
	for i, p := range s.Scopes {
		scopes[i] = p.String()
	}
	out := &pb.Site{Id: s.ID.String(), Name: s.Name, Description: s.Description, CreatedAt: timestamppb.New(s.CreatedAt), Scopes: scopes}
	if s.ArchivedAt.Valid {
		out.ArchivedAt = timestamppb.New(s.ArchivedAt.Time)
	}
	return out
}
