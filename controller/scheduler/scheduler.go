// Package scheduler owns schedules. Each pass (RunOnce, every few seconds on
// every controller, with an injectable clock) does three things:
//
//  1. Deadlines: jobs still unfinished when their run's deadline passes —
//     the scan window closed, or the target's max_duration elapsed — are
//     cancelled like CancelJob does (the agent learns at its next
//     heartbeat), with an error_message saying why.
//  2. Discovery: discovery-first runs whose discovery jobs are all final
//     get their port-scan jobs, covering only the hosts found up (see
//     jobs.AdvanceRun).
//  3. Due targets: for each target whose next run is due (by interval or by
//     cron expression in its time zone) it creates the run's jobs, or
//     records the run as skipped while the previous run of that target is
//     still going (no overlapping scans of one target), and moves
//     next_run_at forward with jitter so that many targets due at the same
//     time do not all start at once. A run due outside the target's scan
//     window is not recorded: next_run_at moves to the window's next
//     opening (plus jitter) and the run happens then.
//
// Several controllers may run it together: due targets and discovery runs
// are locked with SKIP LOCKED, each scheduled (target, time) is recorded
// once under a unique key, and cancelling is idempotent.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
	_ "time/tzdata" // time zones resolve on machines without tzdata

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/events"
	"github.com/scanorama/scanorama/controller/jobs"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
)

// batch bounds how many due targets or discovery runs one pass handles, and
// how many jobs one cancelling statement takes.
const batch = 100

// Scheduler runs due targets.
type Scheduler struct {
	pool *pgxpool.Pool
	q    *db.Queries
	log  hclog.Logger
	// Now is the clock; tests replace it.
	Now func() time.Time
	// Jitter returns the random delay added to a next run, at most limit.
	Jitter func(limit time.Duration) time.Duration
	// Every is how often Run looks for due targets.
	Every time.Duration
}

// New returns a scheduler with a real clock and uniform jitter.
func New(pool *pgxpool.Pool, log hclog.Logger) *Scheduler {
	var q *db.Queries
	if pool != nil {
		q = db.New(pool)
	}
	return &Scheduler{
		pool: pool, q: q, log: log.Named("scheduler"), Now: time.Now, Every: 5 * time.Second,
		Jitter: func(limit time.Duration) time.Duration {
			if limit <= 0 {
				return 0
			}
			return rand.N(limit)
		},
	}
}

// MaxJitter is the largest delay added to a run: a tenth of the interval,
// at most five minutes.
func MaxJitter(interval time.Duration) time.Duration {
	return min(interval/10, 5*time.Minute)
}

// Run schedules until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTicker(s.Every)
	defer t.Stop()
	for {
		if _, err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("scheduling pass failed; will retry", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Result counts what one pass did.
type Result struct {
	// Created and Skipped count due runs; Deferred counts due runs moved to
	// their scan window's next opening.
	Created, Skipped, Deferred int
	// Cancelled counts jobs cancelled at their run's deadline.
	Cancelled int
	// Advanced counts discovery-first runs whose discovery ended (with or
	// without port-scan jobs).
	Advanced int
	// Carried counts jobs interrupted at a window's close whose remainder
	// was carried over to the next window (see CarryOver).
	Carried int
}

// RunOnce enforces deadlines, advances finished discoveries and handles
// every target due now. A failing step does not stop the others.
func (s *Scheduler) RunOnce(ctx context.Context) (Result, error) {
	var res Result
	now := s.Now()
	var errs []error
	var err error
	if res.Cancelled, err = s.EnforceDeadlines(ctx, now); err != nil {
		errs = append(errs, fmt.Errorf("enforce deadlines: %w", err))
	}
	if res.Carried, err = s.CarryOver(ctx, now); err != nil {
		errs = append(errs, fmt.Errorf("carry over interrupted jobs: %w", err))
	}
	if res.Advanced, err = s.AdvanceDiscoveries(ctx, now); err != nil {
		errs = append(errs, fmt.Errorf("advance discoveries: %w", err))
	}
	if err := s.runDue(ctx, now, &res); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

func (s *Scheduler) runDue(ctx context.Context, now time.Time, res *Result) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		due, err := q.LockDueTargets(ctx, db.LockDueTargetsParams{Now: now, RowLimit: batch})
		if err != nil {
			return fmt.Errorf("find due targets: %w", err)
		}
		for _, t := range due {
			var o outcome
			err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error { // a savepoint per target
				var err error
				o, err = s.runTarget(ctx, s.q.WithTx(sp), t, now)
				return err
			})
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				// One broken target must not stop the others, nor be retried every pass.
				if o, err = s.runFailed(ctx, q, t, now, err); err != nil {
					return fmt.Errorf("target %s: %w", t.ID, err)
				}
			}
			switch o {
			case created:
				res.Created++
			case skipped:
				res.Skipped++
			case deferred:
				res.Deferred++
			}
		}
		return nil
	})
}

type outcome int

const (
	none outcome = iota
	created
	skipped
	deferred
)

func (s *Scheduler) setNext(ctx context.Context, q *db.Queries, t db.ScanTarget, next time.Time) error {
	return q.SetNextRun(ctx, db.SetNextRunParams{NextRunAt: pgtype.Timestamptz{Time: next, Valid: !next.IsZero()}, ID: t.ID})
}

func (s *Scheduler) runTarget(ctx context.Context, q *db.Queries, t db.ScanTarget, now time.Time) (outcome, error) {
	plan, err := PlanFor(t)
	if err != nil {
		// Validation keeps this from happening; do not retry every pass.
		s.log.Error("target has an unusable schedule; trying again in an hour", "target_id", t.ID, "error", err)
		return none, s.setNext(ctx, q, t, now.Add(time.Hour))
	}
	scheduledFor := t.NextRunAt.Time
	var windowClose time.Time
	if plan.Window != nil {
		inside, opens, closes := plan.Window.At(now, plan.Loc)
		if !inside {
			next := opens
			if !next.IsZero() {
				next = next.Add(s.Jitter(plan.MaxJitter(opens)))
			}
			s.log.Info("run waits for the scan window", "target_id", t.ID, "due", scheduledFor, "window_opens", opens, "next_run_at", next)
			return deferred, s.setNext(ctx, q, t, next)
		}
		windowClose = closes
	}
	next := plan.Next(scheduledFor, now)
	if !next.IsZero() {
		next = next.Add(s.Jitter(plan.MaxJitter(next)))
	}
	if err := s.setNext(ctx, q, t, next); err != nil {
		return none, err
	}
	work, err := q.ActiveRunWork(ctx, t.ID)
	if err != nil {
		return none, err
	}
	if work.ActiveJobs > 0 || work.DiscoveringRuns > 0 {
		reason := fmt.Sprintf("previous run still has %d unfinished jobs", work.ActiveJobs)
		if work.ActiveJobs == 0 {
			reason = "previous run is still between discovery and port scan"
		}
		s.log.Info("run skipped: previous run still going", "target_id", t.ID, "scheduled_for", scheduledFor, "active_jobs", work.ActiveJobs)
		_, err := q.InsertRun(ctx, db.InsertRunParams{
			TargetID: t.ID, ScheduledFor: scheduledFor, Origin: jobs.OriginSchedule, Outcome: string(state.RunSkipped), Reason: reason,
			Phase: jobs.PhaseFinished, CreatedBy: "scheduler",
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return none, fmt.Errorf("%w: %s", jobs.ErrRunExists, scheduledFor)
		}
		return skipped, err
	}
	p, err := q.GetProfileByID(ctx, t.ProfileID)
	if err != nil {
		return none, err
	}
	run, err := jobs.StartRun(ctx, q, jobs.RunRequest{
		Target: t, Profile: p, Origin: jobs.OriginSchedule, ScheduledFor: scheduledFor, Now: now,
		WindowClose: windowClose, CreatedBy: "scheduler",
	})
	if err != nil {
		return none, err
	}
	s.log.Info("scheduled run created", "target_id", t.ID, "run_id", run.ID, "phase", run.Phase, "scheduled_for", scheduledFor,
		"jobs", len(run.Jobs), "next_run_at", next, "deadline", run.CancelAt.Time)
	return created, nil
}

// runFailed records a due run that could not be created as skipped, with
// the error as its reason, and moves the target to its next slot.
func (s *Scheduler) runFailed(ctx context.Context, q *db.Queries, t db.ScanTarget, now time.Time, cause error) (outcome, error) {
	s.log.Error("scheduled run failed; skipping it", "target_id", t.ID, "scheduled_for", t.NextRunAt.Time, "error", cause)
	next := now.Add(time.Hour)
	if plan, err := PlanFor(t); err == nil && plan.Scheduled() {
		next = plan.Next(t.NextRunAt.Time, now)
	}
	if err := s.setNext(ctx, q, t, next); err != nil {
		return none, err
	}
	_, err := q.InsertRun(ctx, db.InsertRunParams{
		TargetID: t.ID, ScheduledFor: t.NextRunAt.Time, Origin: jobs.OriginSchedule, Outcome: string(state.RunSkipped),
		Reason: fmt.Sprintf("run failed: %v", cause), Phase: jobs.PhaseFinished, CreatedBy: "scheduler",
	})
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return none, err
	}
	return skipped, nil
}

// EnforceDeadlines cancels every job still unfinished after its run's
// deadline (as of now) and returns how many it cancelled.
func (s *Scheduler) EnforceDeadlines(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		var n int
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			q := s.q.WithTx(tx)
			rows, err := q.CancelOverdueJobs(ctx, db.CancelOverdueJobsParams{Now: now, RowLimit: batch})
			if err != nil {
				return err
			}
			for _, r := range rows {
				payload := events.JobEvent{JobID: r.ID, SiteID: r.SiteID, Status: state.JobCancelled, ProgressPercent: int32(r.ProgressPercent)}.Payload()
				if err := q.NotifyJobEvent(ctx, payload); err != nil {
					return err
				}
				s.log.Info("job cancelled at its run's deadline", "job_id", r.ID, "reason", r.ErrorMessage.String)
			}
			n = len(rows)
			return nil
		})
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

// AdvanceDiscoveries creates the port-scan jobs of discovery-first runs
// whose discovery jobs are all final, and returns how many runs it moved on.
// A run whose port scan cannot be created is finished with the error as its
// reason rather than retried forever.
func (s *Scheduler) AdvanceDiscoveries(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		runs, err := q.LockRunsAwaitingPortScan(ctx, batch)
		if err != nil {
			return err
		}
		for _, run := range runs {
			var adv jobs.Advance
			err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error { // a savepoint per run
				var err error
				adv, err = jobs.AdvanceRun(ctx, s.q.WithTx(sp), run, now)
				return err
			})
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				s.log.Error("cannot create the port scan of a discovery run; finishing it", "run_id", run.ID, "target_id", run.TargetID, "error", err)
				adv = jobs.Advance{Phase: jobs.PhaseFinished, Reason: fmt.Sprintf("no port scan: %v", err)}
				if err := q.SetRunPhase(ctx, db.SetRunPhaseParams{Phase: adv.Phase, Reason: adv.Reason, ID: run.ID}); err != nil {
					return err
				}
			}
			n++
			s.log.Info("discovery finished", "run_id", run.ID, "target_id", run.TargetID, "phase", adv.Phase, "jobs", len(adv.Jobs), "reason", adv.Reason)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
