package admin

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Archiving is reversible: an archived target or site comes back with
// everything it kept. Targets come back disabled (archiving disabled them
// and forgot whether they were enabled); UpdateTarget enables them.

// UnarchiveTarget implements AdminService.UnarchiveTarget.
func (s *Server) UnarchiveTarget(ctx context.Context, req *pb.UnarchiveTargetRequest) (*pb.UnarchiveTargetResponse, error) {
	id, err := parseID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	by := actor(ctx)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		cur, err := q.GetTargetForUpdate(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && cur.PurgeRequestedAt.Valid) {
			return apierr.NotFound("id", "no target %s", id)
		}
		if err != nil {
			return err
		}
		if !cur.ArchivedAt.Valid {
			return apierr.FailedPrecondition("id", "target %q is not archived", cur.Name)
		}
		site, err := q.GetSiteByID(ctx, cur.SiteID)
		if err != nil {
			return err
		}
		if site.ArchivedAt.Valid {
			return apierr.FailedPrecondition("id", "target %q is in the archived site %q; UnarchiveSite brings back the site and its targets",
				cur.Name, site.Name)
		}
		_, err = q.UnarchiveTarget(ctx, db.UnarchiveTargetParams{ID: id, ModifiedBy: by})
		return err
	})
	if err != nil {
		return nil, s.internal("unarchive target", err)
	}
	t, err := s.target(ctx, id)
	if err != nil {
		return nil, err
	}
	s.log.Info("target unarchived", "target_id", id, "by", by)
	return &pb.UnarchiveTargetResponse{Target: t}, nil
}

// UnarchiveSite implements AdminService.UnarchiveSite.
func (s *Server) UnarchiveSite(ctx context.Context, req *pb.UnarchiveSiteRequest) (*pb.UnarchiveSiteResponse, error) {
	site, err := s.siteByName(ctx, s.q, "name", req.GetName())
	if err != nil {
		return nil, err
	}
	if !site.ArchivedAt.Valid {
		return nil, apierr.FailedPrecondition("name", "site %q is not archived", site.Name)
	}
	by := actor(ctx)
	var targets int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if _, err := q.UnarchiveSite(ctx, site.ID); errors.Is(err, pgx.ErrNoRows) {
			// Unarchived or queued for purging meanwhile.
			return apierr.FailedPrecondition("name", "site %q is not archived", site.Name)
		} else if err != nil {
			return err
		}
		targets, err = q.UnarchiveSiteTargets(ctx, db.UnarchiveSiteTargetsParams{
			SiteID: site.ID, ArchivedAt: site.ArchivedAt.Time, ModifiedBy: by,
		})
		return err
	})
	if err != nil {
		return nil, s.internal("unarchive site", err)
	}
	site, err = s.siteByName(ctx, s.q, "name", req.GetName())
	if err != nil {
		return nil, err
	}
	s.log.Info("site unarchived", "site", site.Name, "targets", targets, "by", by)
	return &pb.UnarchiveSiteResponse{Site: sitePB(site), TargetsUnarchived: targets}, nil
}
