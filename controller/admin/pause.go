package admin

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/events"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// PauseScanning implements AdminService.PauseScanning: an emergency stop.
// The pause is a row the AcquireJob statement checks, so every controller
// stops leasing in the site (or everywhere) as soon as it commits. With
// cancel_running the site's held leases are cancelled in the same
// transaction; their agents stop at the next heartbeat.
func (s *Server) PauseScanning(ctx context.Context, req *pb.PauseScanningRequest) (*pb.PauseScanningResponse, error) {
	if len(req.GetReason()) > 1024 {
		return nil, apierr.InvalidField("reason", "at most 1024 bytes")
	}
	site, err := s.optionalSite(ctx, req.GetSite())
	if err != nil {
		return nil, err
	}
	by := actor(ctx)
	resp := &pb.PauseScanningResponse{}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		p, err := q.PauseScanning(ctx, db.PauseScanningParams{
			SiteID: site, CancelRunning: req.GetCancelRunning(), Reason: req.GetReason(), PausedBy: by,
		})
		if err != nil {
			return fmt.Errorf("record pause: %w", err)
		}
		resp.Pause = pausePB(p, req.GetSite())
		if !req.GetCancelRunning() {
			return nil
		}
		reason := "cancelled by " + by + ": scanning paused"
		if req.GetReason() != "" {
			reason += ": " + req.GetReason()
		}
		jobs, err := q.CancelRunningJobs(ctx, db.CancelRunningJobsParams{Reason: reason, SiteID: site})
		if err != nil {
			return fmt.Errorf("cancel running jobs: %w", err)
		}
		for _, j := range jobs {
			ev := events.JobEvent{JobID: j.ID, SiteID: j.SiteID, Status: state.JobCancelled, ProgressPercent: int32(j.ProgressPercent)}
			if err := q.NotifyJobEvent(ctx, ev.Payload()); err != nil {
				return fmt.Errorf("publish job event: %w", err)
			}
		}
		resp.CancelledJobs = int64(len(jobs))
		return nil
	})
	if err != nil {
		return nil, s.internal("pause scanning", err)
	}
	s.log.Warn("scanning paused", "site", siteLabel(req.GetSite()), "cancel_running", req.GetCancelRunning(),
		"cancelled_jobs", resp.CancelledJobs, "by", by)
	return resp, nil
}

// ResumeScanning implements AdminService.ResumeScanning. Jobs queued during
// the pause are announced to the agents long-polling as new jobs are.
func (s *Server) ResumeScanning(ctx context.Context, req *pb.ResumeScanningRequest) (*pb.ResumeScanningResponse, error) {
	site, err := s.optionalSite(ctx, req.GetSite())
	if err != nil {
		return nil, err
	}
	n, err := s.q.ResumeScanning(ctx, site)
	if err != nil {
		return nil, s.internal("resume scanning", err)
	}
	if n > 0 {
		s.log.Warn("scanning resumed", "site", siteLabel(req.GetSite()), "by", actor(ctx))
		// Jobs queued during the pause are announced like new ones: a
		// long-poll's empty look during the pause would otherwise answer
		// for its site until the next recheck. "" wakes every site.
		var payload string
		if site.Valid {
			payload = site.UUID.String()
		}
		if err := s.q.NotifyJobsAvailable(ctx, payload); err != nil {
			s.log.Warn("could not announce the resumed sites' queued jobs; agents find them at the next recheck", "error", err)
		}
	}
	return &pb.ResumeScanningResponse{Resumed: n > 0}, nil
}

func siteLabel(name string) string {
	if name == "" {
		return "(all sites)"
	}
	return name
}

func pausePB(p db.ScanPause, site string) *pb.ScanPause {
	return &pb.ScanPause{Site: site, CancelRunning: p.CancelRunning, Reason: p.Reason, PausedAt: timestamppb.New(p.PausedAt), PausedBy: p.PausedBy}
}

// pauses lists the pauses in force; with a site, only those covering it.
func (s *Server) pauses(ctx context.Context, q *db.Queries, site uuid.NullUUID) ([]*pb.ScanPause, error) {
	rows, err := q.ListPauses(ctx)
	if err != nil {
		return nil, fmt.Errorf("list pauses: %w", err)
	}
	var out []*pb.ScanPause
	for _, r := range rows {
		if site.Valid && r.SiteID.Valid && r.SiteID.UUID != site.UUID {
			continue
		}
		out = append(out, pausePB(db.ScanPause{SiteID: r.SiteID, CancelRunning: r.CancelRunning, Reason: r.Reason,
			PausedAt: r.PausedAt, PausedBy: r.PausedBy}, r.SiteName))
	}
	return out, nil
}

// pausedSites says which of the listed sites lease nothing now.
func pausedSites(pauses []*pb.ScanPause) (all bool, sites map[string]bool) {
	sites = map[string]bool{}
	for _, p := range pauses {
		if p.GetSite() == "" {
			all = true
		}
		sites[p.GetSite()] = true
	}
	return all, sites
}
