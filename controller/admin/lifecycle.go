package admin

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Deletes never destroy history silently: a target or site with results is
// only deleted when the caller says what should happen to them, archive
// (keep everything, stop scanning, hide from lists) or purge (really
// delete; the object leaves the API in this call and the maintenance loop
// removes its rows in small batches, see purge_step in migration 0008).

func deleteMode(archive, purge bool) error {
	if archive && purge {
		return apierr.Invalid(apierr.Field("archive", "archive and purge exclude each other"),
			apierr.Field("purge", "archive and purge exclude each other"))
	}
	return nil
}

// DeleteTarget implements AdminService.DeleteTarget.
func (s *Server) DeleteTarget(ctx context.Context, req *pb.DeleteTargetRequest) (*pb.DeleteTargetResponse, error) {
	id, err := parseID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	if err := deleteMode(req.GetArchive(), req.GetPurge()); err != nil {
		return nil, err
	}
	by := actor(ctx)
	target := uuid.NullUUID{UUID: id, Valid: true}
	var what string
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		cur, err := q.GetTargetForUpdate(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && cur.PurgeRequestedAt.Valid) {
			return apierr.NotFound("id", "no target %s", id)
		}
		if err != nil {
			return err
		}
		switch {
		case req.GetPurge():
			what = "purge queued"
			if _, err := q.CancelQueuedJobs(ctx, db.CancelQueuedJobsParams{TargetID: target, Running: true, Reason: "target purged by " + by}); err != nil {
				return err
			}
			_, err := q.QueueTargetPurge(ctx, db.QueueTargetPurgeParams{TargetID: target, ModifiedBy: by})
			return err
		case req.GetArchive():
			what = "archived"
			if _, err := q.CancelQueuedJobs(ctx, db.CancelQueuedJobsParams{TargetID: target, Reason: "target archived by " + by}); err != nil {
				return err
			}
			_, err := q.ArchiveTargets(ctx, db.ArchiveTargetsParams{TargetID: target, ModifiedBy: by})
			return err
		}
		n, err := q.TargetResultCounts(ctx, id)
		if err != nil {
			return err
		}
		if n.Jobs > 0 {
			archived, err := q.TargetArchivedPortRows(ctx, id)
			if err != nil {
				return err
			}
			return apierr.FailedPrecondition("id", "target %q has %d jobs, %d result rows (port_scans, %d of them in archived months) and %d host changes; "+
				"pass archive: true to stop scanning and keep them, or purge: true to delete them", cur.Name, n.Jobs, n.PortRows+archived, archived, n.Changes)
		}
		what = "deleted"
		_, err = q.DeleteTarget(ctx, id)
		return err
	})
	if err != nil {
		return nil, s.internal("delete target", err)
	}
	s.log.Info("target "+what, "target_id", id, "by", by)
	return &pb.DeleteTargetResponse{}, nil
}

// DeleteSite implements AdminService.DeleteSite.
func (s *Server) DeleteSite(ctx context.Context, req *pb.DeleteSiteRequest) (*pb.DeleteSiteResponse, error) {
	if err := deleteMode(req.GetArchive(), req.GetPurge()); err != nil {
		return nil, err
	}
	site, err := s.siteByName(ctx, s.q, "name", req.GetName())
	if err != nil {
		return nil, err
	}
	by := actor(ctx)
	siteID := uuid.NullUUID{UUID: site.ID, Valid: true}
	var what string
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		switch {
		case req.GetPurge():
			what = "purge queued"
			if _, err := q.CancelQueuedJobs(ctx, db.CancelQueuedJobsParams{SiteID: siteID, Running: true, Reason: "site purged by " + by}); err != nil {
				return err
			}
			if _, err := q.QueueTargetPurge(ctx, db.QueueTargetPurgeParams{SiteID: siteID, ModifiedBy: by}); err != nil {
				return err
			}
			n, err := q.QueueSitePurge(ctx, site.ID)
			if err == nil && n == 0 {
				return apierr.NotFound("name", "no site named %q", req.GetName())
			}
			return err
		case req.GetArchive():
			what = "archived"
			if _, err := q.CancelQueuedJobs(ctx, db.CancelQueuedJobsParams{SiteID: siteID, Reason: "site archived by " + by}); err != nil {
				return err
			}
			if _, err := q.ArchiveTargets(ctx, db.ArchiveTargetsParams{SiteID: siteID, ModifiedBy: by}); err != nil {
				return err
			}
			_, err := q.ArchiveSite(ctx, site.ID)
			return err
		}
		n, err := q.SiteResultCounts(ctx, site.ID)
		if err != nil {
			return err
		}
		if n.Jobs > 0 || n.Hosts > 0 {
			archived, err := q.SiteArchivedPortRows(ctx, site.ID)
			if err != nil {
				return err
			}
			return apierr.FailedPrecondition("name", "site %q has %d jobs, %d result rows (port_scans, %d of them in archived months), %d hosts and %d host changes; "+
				"pass archive: true to stop scanning and keep them, or purge: true to delete them", site.Name, n.Jobs, n.PortRows+archived, archived, n.Hosts, n.Changes)
		}
		what = "deleted"
		_, err = q.DeleteSite(ctx, site.Name)
		return err
	})
	if err != nil {
		return nil, s.internal("delete site "+req.GetName()+" (delete or archive its targets first)", err)
	}
	s.log.Info("site "+what, "site", req.GetName(), "by", by)
	return &pb.DeleteSiteResponse{}, nil
}

// DeleteProfile implements AdminService.DeleteProfile: only a profile no
// target or job refers to (jobs keep the profile they ran with).
func (s *Server) DeleteProfile(ctx context.Context, req *pb.DeleteProfileRequest) (*pb.DeleteProfileResponse, error) {
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
	if p.Builtin {
		return nil, apierr.FailedPrecondition("name", "%q is built in and cannot be deleted", req.GetName())
	}
	use, err := s.q.ProfileUsage(ctx, p.ID)
	if err != nil {
		return nil, s.internal("read profile usage", err)
	}
	if use.Targets > 0 || use.Jobs > 0 {
		return nil, apierr.FailedPrecondition("name", "profile %q is used by %d targets (archived and purging ones included) and %d jobs; "+
			"move the targets to another profile, and purge the targets whose jobs use it", req.GetName(), use.Targets, use.Jobs)
	}
	if _, err := s.q.DeleteProfile(ctx, req.GetName()); err != nil {
		return nil, s.internal("delete profile "+req.GetName()+" (targets or jobs still use it)", err)
	}
	s.log.Info("profile deleted", "profile", req.GetName(), "by", actor(ctx))
	return &pb.DeleteProfileResponse{}, nil
}
