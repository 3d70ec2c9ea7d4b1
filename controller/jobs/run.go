package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/scanorama/scanorama/controller/calendar"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
)

// Run origins (scan_runs.origin).
const (
	OriginSchedule = "schedule"
	OriginScanNow  = "scan_now"
)

// Run phases (scan_runs.phase).
const (
	// PhaseDiscovery: a discovery-first run's ping sweep is going.
	PhaseDiscovery = "discovery"
	// PhasePortScan: the port-scan jobs exist; nothing more will be created.
	PhasePortScan = "port_scan"
	// PhaseFinished: the run ended without (more) port-scan jobs.
	PhaseFinished = "finished"
)

// DiscoveryProfile is the built-in profile a discovery-first run sweeps with.
const DiscoveryProfile = "discovery"

// ErrRunExists means the scheduled run was recorded already (by another controller).
var ErrRunExists = errors.New("run already recorded")

// RunRequest starts one run of a target.
type RunRequest struct {
	Target db.ScanTarget
	// Profile is the target's profile (the port scan's).
	Profile      db.ScanProfile
	Origin       string
	ScheduledFor time.Time
	// Now is when the run starts; max_duration counts from here.
	Now time.Time
	// WindowClose, when set, is when the scan window the run starts in
	// closes: jobs still unfinished then are cancelled.
	WindowClose time.Time
	CreatedBy   string
}

// Run is a started run and the jobs of its first phase.
type Run struct {
	db.ScanRun
	Jobs []db.ScanJob
}

// StartRun records a run and creates the jobs of its first phase in q's
// transaction: discovery jobs (the built-in discovery profile over the
// target network) for a discovery-first target, otherwise the port-scan
// jobs. Its deadline is the earlier of WindowClose and Now plus the target's
// max_duration. A scheduled run already recorded for the same time returns
// ErrRunExists.
func StartRun(ctx context.Context, q *db.Queries, r RunRequest) (Run, error) {
	phase, profile := PhasePortScan, r.Profile
	if r.Target.DiscoveryFirst {
		p, err := q.GetProfileByName(ctx, DiscoveryProfile)
		if err != nil {
			return Run{}, fmt.Errorf("read the %s profile: %w", DiscoveryProfile, err)
		}
		phase, profile = PhaseDiscovery, p
	}
	at, why := Deadline(r.Target, r.Now, r.WindowClose)
	row, err := q.InsertRun(ctx, db.InsertRunParams{
		TargetID: r.Target.ID, ScheduledFor: r.ScheduledFor, Origin: r.Origin, Outcome: string(state.RunCreated), Phase: phase,
		CancelAt: pgtype.Timestamptz{Time: at, Valid: !at.IsZero()}, CancelReason: pgtype.Text{String: why, Valid: !at.IsZero()},
		CreatedBy: r.CreatedBy,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Run{}, fmt.Errorf("%w: target %s at %s", ErrRunExists, r.Target.ID, r.ScheduledFor)
	}
	if err != nil {
		return Run{}, fmt.Errorf("record run: %w", err)
	}
	created, err := Create(ctx, q, Request{
		Target: r.Target, Profile: profile, CreatedBy: r.CreatedBy, Reason: r.Origin,
		RunID: uuid.NullUUID{UUID: row.ID, Valid: true}, Phase: phase,
	})
	if err != nil {
		return Run{}, err
	}
	reason := ""
	if phase == PhaseDiscovery {
		reason = fmt.Sprintf("discovering hosts with %d jobs", len(created))
	}
	if err := q.SetRunPhase(ctx, db.SetRunPhaseParams{Phase: phase, AddedJobs: int32(len(created)), Reason: reason, ID: row.ID}); err != nil {
		return Run{}, fmt.Errorf("update run: %w", err)
	}
	row.Jobs, row.Reason = int32(len(created)), reason
	return Run{ScanRun: row, Jobs: created}, nil
}

// WindowClosedReason is the error_message of the jobs a scan window's close
// at closes cancels, in the target's time zone.
func WindowClosedReason(t db.ScanTarget, closes time.Time) string {
	loc, err := calendar.LoadZone(t.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	return fmt.Sprintf("cancelled by scheduler: scan window closed at %s (%s)", closes.In(loc).Format(time.RFC3339), loc)
}

// Deadline is when a run of t started at now must end, and the message its
// cancelled jobs get: the earlier of windowClose (if set) and now plus the
// target's max_duration (if set). Zero if neither applies.
func Deadline(t db.ScanTarget, now, windowClose time.Time) (time.Time, string) {
	var at time.Time
	var why string
	if !windowClose.IsZero() {
		at = windowClose
		why = WindowClosedReason(t, windowClose)
	}
	if t.MaxDurationSeconds.Valid {
		d := time.Duration(t.MaxDurationSeconds.Int32) * time.Second
		if end := now.Add(d); at.IsZero() || end.Before(at) {
			at = end
			why = fmt.Sprintf("cancelled by scheduler: run exceeded max_duration %s (started %s, deadline %s)",
				d, now.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
		}
	}
	return at, why
}

// Advance is what AdvanceRun did with a run whose discovery ended.
type Advance struct {
	Phase  string
	Reason string
	Jobs   []db.ScanJob
}

// AdvanceRun moves a discovery-first run whose discovery jobs are all final
// (locked by the caller) to its port scan: jobs covering only the hosts the
// completed discovery jobs found up, or the whole target network when the
// target's profile skips host discovery. The run finishes without a port
// scan when its deadline has passed, a discovery job was cancelled, no
// discovery job completed, or no host is up.
func AdvanceRun(ctx context.Context, q *db.Queries, run db.ScanRun, now time.Time) (Advance, error) {
	adv, err := advance(ctx, q, run, now)
	if err != nil {
		return adv, err
	}
	if err := q.SetRunPhase(ctx, db.SetRunPhaseParams{Phase: adv.Phase, AddedJobs: int32(len(adv.Jobs)), Reason: adv.Reason, ID: run.ID}); err != nil {
		return adv, fmt.Errorf("update run: %w", err)
	}
	return adv, nil
}

func advance(ctx context.Context, q *db.Queries, run db.ScanRun, now time.Time) (Advance, error) {
	finish := func(format string, args ...any) (Advance, error) {
		return Advance{Phase: PhaseFinished, Reason: fmt.Sprintf(format, args...)}, nil
	}
	n, err := q.RunJobCounts(ctx, uuid.NullUUID{UUID: run.ID, Valid: true})
	if err != nil {
		return Advance{}, fmt.Errorf("count discovery jobs: %w", err)
	}
	switch {
	case run.CancelAt.Valid && !now.Before(run.CancelAt.Time):
		return finish("no port scan: deadline passed during discovery (%s)", run.CancelReason.String)
	case n.Cancelled > 0:
		return finish("no port scan: %d of %d discovery jobs were cancelled", n.Cancelled, n.Total)
	case n.Total == 0:
		return finish("no port scan: every address of the target is excluded")
	case n.Completed == 0:
		return finish("no port scan: all %d discovery jobs failed", n.Total)
	}
	row, err := q.GetTarget(ctx, run.TargetID)
	if err != nil {
		return Advance{}, fmt.Errorf("read target: %w", err)
	}
	t := row.ScanTarget
	p, err := q.GetProfileByID(ctx, t.ProfileID)
	if err != nil {
		return Advance{}, fmt.Errorf("read profile: %w", err)
	}
	req := Request{
		Target: t, Profile: p, CreatedBy: run.CreatedBy, Reason: run.Origin,
		RunID: uuid.NullUUID{UUID: run.ID, Valid: true}, Phase: PhasePortScan,
	}
	note := ""
	if n.Failed > 0 {
		note = fmt.Sprintf("; %d of %d discovery jobs failed, their networks are not port-scanned", n.Failed, n.Total)
	}
	if p.SkipHostDiscovery {
		created, err := Create(ctx, q, req)
		if err != nil {
			return Advance{}, err
		}
		return Advance{Phase: PhasePortScan, Jobs: created,
			Reason: fmt.Sprintf("profile %q skips host discovery: port-scanning the whole network with %d jobs", p.Name, len(created))}, nil
	}
	up, err := q.RunUpHosts(ctx, db.RunUpHostsParams{RunID: uuid.NullUUID{UUID: run.ID, Valid: true}, SiteID: t.SiteID})
	if err != nil {
		return Advance{}, fmt.Errorf("read hosts found up: %w", err)
	}
	if len(up) == 0 {
		return finish("no port scan: discovery found no host up%s", note)
	}
	req.OnlyHosts, req.Hosts = true, up
	created, err := Create(ctx, q, req)
	if err != nil {
		return Advance{}, err
	}
	if len(created) == 0 {
		return finish("no port scan: the %d hosts found up are all excluded or outside the target now%s", len(up), note)
	}
	return Advance{Phase: PhasePortScan, Jobs: created,
		Reason: fmt.Sprintf("discovery found %d hosts up: port-scanning them with %d jobs%s", len(up), len(created), note)}, nil
}
