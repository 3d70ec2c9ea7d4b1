package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/events"
	"github.com/scanorama/scanorama/controller/jobs"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// ScanNow implements AdminService.ScanNow.
func (s *Server) ScanNow(ctx context.Context, req *pb.ScanNowRequest) (*pb.ScanNowResponse, error) {
	id, err := parseID("target_id", req.GetTargetId())
	if err != nil {
		return nil, err
	}
	var created []db.ScanJob
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		t, err := q.GetTargetForUpdate(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && t.PurgeRequestedAt.Valid) {
			return apierr.NotFound("target_id", "no target %s", id)
		}
		if err != nil {
			return err
		}
		if t.ArchivedAt.Valid {
			return apierr.FailedPrecondition("target_id", "target %q is archived and no longer scans", t.Name)
		}
		p, err := q.GetProfileByID(ctx, t.ProfileID)
		if err != nil {
			return err
		}
		// A run like a scheduled one (a discovery first for discovery-first
		// targets, max_duration applies) that ignores the scan window.
		now := time.Now()
		run, err := jobs.StartRun(ctx, q, jobs.RunRequest{Target: t, Profile: p, Origin: jobs.OriginScanNow, ScheduledFor: now, Now: now, CreatedBy: actor(ctx)})
		created = run.Jobs
		return err
	})
	if err != nil {
		return nil, s.internal("scan now", err)
	}
	jobs, err := s.jobs(ctx, created)
	if err != nil {
		return nil, err
	}
	resp := &pb.ScanNowResponse{Jobs: jobs}
	s.log.Info("scan requested", "target_id", id, "jobs", len(created), "by", actor(ctx))
	return resp, nil
}

func (s *Server) job(ctx context.Context, id uuid.UUID) (*pb.Job, error) {
	row, err := s.q.GetJob(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apierr.NotFound("id", "no job %s", id)
	}
	if err != nil {
		return nil, s.internal("read job", err)
	}
	j, err := jobPB(row.ScanJob, row.SiteName, row.ProfileName)
	if err != nil {
		return nil, s.internal("read job", err)
	}
	return j, nil
}

// jobs reads created back as the API shows them (their state now), in
// created's order.
func (s *Server) jobs(ctx context.Context, created []db.ScanJob) ([]*pb.Job, error) {
	ids := make([]uuid.UUID, len(created))
	for i, j := range created {
		ids[i] = j.ID
	}
	rows, err := s.q.GetJobsByIDs(ctx, ids)
	if err != nil {
		return nil, s.internal("read jobs", err)
	}
	byID := make(map[uuid.UUID]*pb.Job, len(rows))
	for _, row := range rows {
		j, err := jobPB(row.ScanJob, row.SiteName, row.ProfileName)
		if err != nil {
			return nil, s.internal("read jobs", err)
		}
		byID[row.ScanJob.ID] = j
	}
	out := make([]*pb.Job, len(ids))
	for i, id := range ids {
		if out[i] = byID[id]; out[i] == nil {
			return nil, apierr.NotFound("id", "no job %s", id)
		}
	}
	return out, nil
}

// GetJob implements AdminService.GetJob.
func (s *Server) GetJob(ctx context.Context, req *pb.GetJobRequest) (*pb.GetJobResponse, error) {
	id, err := parseID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	j, err := s.job(ctx, id)
	if err != nil {
		return nil, err
	}
	resp := &pb.GetJobResponse{Job: j}
	if j.GetRunId() != "" {
		if resp.Run, err = s.runProgress(ctx, j.GetRunId()); err != nil {
			return nil, s.internal("read run progress", err)
		}
	}
	return resp, nil
}

// ListJobs implements AdminService.ListJobs, newest first.
func (s *Server) ListJobs(ctx context.Context, req *pb.ListJobsRequest) (*pb.ListJobsResponse, error) {
	p := db.ListJobsParams{}
	if st := req.GetStatus(); st != pb.JobStatus_JOB_STATUS_UNSPECIFIED {
		name, err := state.JobStatusFromPB(st)
		if err != nil {
			return nil, apierr.InvalidField("status", "unknown status %d", st)
		}
		p.Status = pgtype.Text{String: string(name), Valid: true}
	}
	if req.GetTargetId() != "" {
		id, err := parseID("target_id", req.GetTargetId())
		if err != nil {
			return nil, err
		}
		p.TargetID = uuid.NullUUID{UUID: id, Valid: true}
	}
	var err error
	if p.SiteID, err = s.optionalSite(ctx, req.GetSite()); err != nil {
		return nil, err
	}
	if t := req.GetCreatedAfter(); t != nil {
		p.CreatedAfter = pgtype.Timestamptz{Time: t.AsTime(), Valid: true}
	}
	if t := req.GetCreatedBefore(); t != nil {
		p.CreatedBefore = pgtype.Timestamptz{Time: t.AsTime(), Valid: true}
	}
	cur := timeCursor{Created: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), ID: uuid.Max}
	rows, next, err := paginate(req, &cur, func(limit int32) ([]db.ListJobsRow, error) {
		p.BeforeCreated, p.BeforeID, p.RowLimit = cur.Created, cur.ID, limit
		return s.q.ListJobs(ctx, p)
	}, func(r db.ListJobsRow) timeCursor { return timeCursor{r.ScanJob.CreatedAt, r.ScanJob.ID} })
	if err != nil {
		return nil, s.internal("list jobs", err)
	}
	resp := &pb.ListJobsResponse{NextPageToken: next}
	for _, r := range rows {
		j, err := jobPB(r.ScanJob, r.SiteName, r.ProfileName)
		if err != nil {
			return nil, s.internal("list jobs", err)
		}
		resp.Jobs = append(resp.Jobs, j)
	}
	return resp, nil
}

// CancelJob implements AdminService.CancelJob. The job is final at once;
// an agent running it learns at its next heartbeat and stops nmap.
func (s *Server) CancelJob(ctx context.Context, req *pb.CancelJobRequest) (*pb.CancelJobResponse, error) {
	id, err := parseID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	if len(req.GetReason()) > 1024 {
		return nil, apierr.InvalidField("reason", "at most 1024 bytes")
	}
	reason := fmt.Sprintf("cancelled by %s", actor(ctx))
	if req.GetReason() != "" {
		reason += ": " + req.GetReason()
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		j, err := q.CancelJob(ctx, db.CancelJobParams{Reason: reason, ID: id})
		if errors.Is(err, pgx.ErrNoRows) {
			cur, gerr := q.GetJobLeaseState(ctx, id)
			if errors.Is(gerr, pgx.ErrNoRows) {
				return apierr.NotFound("id", "no job %s", id)
			}
			if gerr != nil {
				return gerr
			}
			return apierr.FailedPrecondition("id", "job %s is already %s", id, cur.Status)
		}
		if err != nil {
			return err
		}
		if j.LeaseToken > 0 {
			if err := q.EndLease(ctx, db.EndLeaseParams{Outcome: pgtype.Text{String: string(state.LeaseCancelled), Valid: true}, JobID: id, LeaseToken: j.LeaseToken}); err != nil {
				return err
			}
		}
		return q.NotifyJobEvent(ctx, events.JobEvent{JobID: id, SiteID: j.SiteID, Status: state.JobCancelled, ProgressPercent: int32(j.ProgressPercent)}.Payload())
	})
	if err != nil {
		return nil, s.internal("cancel job", err)
	}
	j, err := s.job(ctx, id)
	if err != nil {
		return nil, err
	}
	s.log.Info("job cancelled", "job_id", id, "by", actor(ctx))
	return &pb.CancelJobResponse{Job: j}, nil
}

// jobPB is a job row as the API's Job; a status the API has no value for is
// an error, not JOB_STATUS_UNSPECIFIED.
func jobPB(j db.ScanJob, site, profile string) (*pb.Job, error) {
	status, err := state.JobStatus(j.Status).ToPB()
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", j.ID, err)
	}
	out := &pb.Job{
		Id: j.ID.String(), TargetId: j.TargetID.String(), Site: site, Network: j.Network.String(), Ports: j.Ports,
		Profile: profile, Status: status,
		Attempt: j.Attempt, MaxAttempts: j.MaxAttempts, WorkerId: j.WorkerID.String, LeaseToken: j.LeaseToken,
		ProgressPercent: int32(j.ProgressPercent), CreatedAt: timestamppb.New(j.CreatedAt),
		ErrorMessage: j.ErrorMessage.String, Partial: j.Partial, HostsFinished: j.HostsFinished.Int64, Kind: j.Kind,
	}
	if j.RunID.Valid {
		out.RunId = j.RunID.UUID.String()
	}
	out.CancelledByDeadline = j.CancelledByDeadline
	if j.RemainderOf.Valid {
		out.RemainderOf = j.RemainderOf.UUID.String()
	}
	if j.TimeoutAt.Valid {
		out.TimeoutAt = timestamppb.New(j.TimeoutAt.Time)
	}
	if j.StartedAt.Valid {
		out.StartedAt = timestamppb.New(j.StartedAt.Time)
	}
	if j.CompletedAt.Valid {
		out.CompletedAt = timestamppb.New(j.CompletedAt.Time)
	}
	for _, e := range j.Exclusions {
		out.Exclusions = append(out.Exclusions, e.String())
	}
	if len(j.ScanStats) > 0 {
		var st struct {
			HostsUp     int64   `json:"hosts_up"`
			HostsDown   int64   `json:"hosts_down"`
			PortRows    int64   `json:"port_rows"`
			OpenPorts   int64   `json:"open_ports"`
			ElapsedSec  float64 `json:"elapsed_seconds"`
			NmapVersion string  `json:"nmap_version"`
		}
		if json.Unmarshal(j.ScanStats, &st) == nil {
			out.Stats = &pb.JobStats{
				HostsUp: st.HostsUp, HostsDown: st.HostsDown, PortRows: st.PortRows, OpenPorts: st.OpenPorts,
				Elapsed: durationpb.New(time.Duration(st.ElapsedSec * float64(time.Second))), NmapVersion: st.NmapVersion,
			}
		}
	}
	return out, nil
}
