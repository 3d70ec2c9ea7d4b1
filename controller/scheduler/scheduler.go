// Package scheduler owns interval schedules: when a target's next run is
// due it creates the run's jobs, or records the run as skipped while the
// previous run of that target is still going (no overlapping scans of one
// target), and moves next_run_at forward with jitter so that many targets
// with the same interval do not all start at once. Several controllers may
// run it together: due targets are locked with SKIP LOCKED and each
// (target, scheduled time) is recorded once under a unique key.
package scheduler

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/jobs"
	"github.com/scanorama/scanorama/gen/db"
)

// batch bounds how many due targets one pass handles.
const batch = 100

// Scheduler runs due targets.
type Scheduler struct {
	pool *pgxpool.Pool
	q    *db.Queries
	log  hclog.Logger
	// Now is the clock; tests replace it.
	Now func() time.Time
	// Jitter returns the random delay added to a next run, at most max.
	Jitter func(max time.Duration) time.Duration
	// Every is how often Run looks for due targets.
	Every time.Duration
}

// New returns a scheduler with a real clock and uniform jitter.
func New(pool *pgxpool.Pool, log hclog.Logger) *Scheduler {
	return &Scheduler{
		pool: pool, q: db.New(pool), log: log.Named("scheduler"), Now: time.Now, Every: 5 * time.Second,
		Jitter: func(max time.Duration) time.Duration {
			if max <= 0 {
				return 0
			}
			return rand.N(max)
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
type Result struct{ Created, Skipped int }

// RunOnce handles every target due now.
func (s *Scheduler) RunOnce(ctx context.Context) (Result, error) {
	var res Result
	now := s.Now()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		due, err := q.LockDueTargets(ctx, db.LockDueTargetsParams{Now: now, RowLimit: batch})
		if err != nil {
			return fmt.Errorf("find due targets: %w", err)
		}
		for _, t := range due {
			created, err := s.runTarget(ctx, q, t, now)
			if err != nil {
				return fmt.Errorf("target %s: %w", t.ID, err)
			}
			if created {
				res.Created++
			} else {
				res.Skipped++
			}
		}
		return nil
	})
	return res, err
}

func (s *Scheduler) runTarget(ctx context.Context, q *db.Queries, t db.ScanTarget, now time.Time) (bool, error) {
	scheduledFor := t.NextRunAt.Time
	interval := time.Duration(t.ScanIntervalSeconds.Int32) * time.Second
	next := scheduledFor.Add(interval)
	if !next.After(now) {
		// We were down for more than an interval: run once now, not once per missed slot.
		next = now.Add(interval)
	}
	next = next.Add(s.Jitter(MaxJitter(interval)))
	if err := q.SetNextRun(ctx, db.SetNextRunParams{NextRunAt: pgtype.Timestamptz{Time: next, Valid: true}, ID: t.ID}); err != nil {
		return false, err
	}
	active, err := q.ActiveJobsForTarget(ctx, t.ID)
	if err != nil {
		return false, err
	}
	run := db.RecordRunParams{TargetID: t.ID, ScheduledFor: scheduledFor, CreatedBy: "scheduler"}
	if active > 0 {
		run.Outcome, run.Reason = "skipped", fmt.Sprintf("previous run still has %d unfinished jobs", active)
		s.log.Info("run skipped: previous run still going", "target_id", t.ID, "scheduled_for", scheduledFor, "active_jobs", active)
		_, err := q.RecordRun(ctx, run)
		return false, err
	}
	p, err := q.GetProfileByID(ctx, t.ProfileID)
	if err != nil {
		return false, err
	}
	created, err := jobs.Create(ctx, q, jobs.Request{Target: t, Profile: p, CreatedBy: "scheduler", Reason: "schedule"})
	if err != nil {
		return false, err
	}
	run.Outcome, run.Jobs = "created", int32(len(created))
	n, err := q.RecordRun(ctx, run)
	if err != nil {
		return false, err
	}
	if n == 0 {
		return false, fmt.Errorf("run for %s already recorded", scheduledFor)
	}
	s.log.Info("scheduled run created", "target_id", t.ID, "scheduled_for", scheduledFor, "jobs", len(created), "next_run_at", next)
	return true, nil
}
