package scheduler

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/agent/scanspec"
	"github.com/scanorama/scanorama/controller/jobs"
	"github.com/scanorama/scanorama/gen/db"
)

// SettleAfter is how long the scheduler waits for the holder of a job
// cancelled at its window's close to commit the hosts it finished before it
// carries the whole job over.
const SettleAfter = 5 * time.Minute

// CarryOver turns what scheduled runs left unscanned when their scan window
// closed into jobs of the next window: for each job the deadline cancelled
// (once its holder committed the hosts it finished, or nobody held it), a
// job of the same run for its network minus the finished hosts, leasable
// from the window's next opening; the run's deadline moves to that
// opening's close. A network that needs three windows thus finishes in
// three. It returns how many interrupted jobs it handled.
func (s *Scheduler) CarryOver(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		rows, err := q.LockInterruptedJobs(ctx, db.LockInterruptedJobsParams{
			SettledBefore: now.Add(-SettleAfter), Now: now, RowLimit: batch,
		})
		if err != nil {
			return fmt.Errorf("find interrupted jobs: %w", err)
		}
		for _, r := range rows {
			if err := s.carryOver(ctx, q, r.ScanJob, r.ScanTarget, now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

func (s *Scheduler) carryOver(ctx context.Context, q *db.Queries, j db.ScanJob, t db.ScanTarget, now time.Time) error {
	log := s.log.With("job_id", j.ID, "target_id", t.ID)
	if err := q.MarkCarriedOver(ctx, j.ID); err != nil {
		return fmt.Errorf("mark job %s carried over: %w", j.ID, err)
	}
	plan, err := PlanFor(t)
	if err != nil || plan.Window == nil {
		log.Warn("interrupted job not carried over: the target has no usable scan window now", "error", err)
		return nil
	}
	excl := remainderExclusions(j)
	left := scanspec.HostCount([]netip.Prefix{j.Network}, excl)
	if left == 0 {
		log.Info("interrupted job had finished every host; nothing to carry over")
		return nil
	}
	inside, opens, closes := plan.Window.At(now, plan.Loc)
	if inside {
		opens = now
	}
	if opens.IsZero() {
		log.Warn("interrupted job not carried over: the scan window never opens again")
		return nil
	}
	id, err := q.InsertRemainderJob(ctx, db.InsertRemainderJobParams{Exclusions: excl, ScheduledAt: opens, ID: j.ID})
	if err != nil {
		return fmt.Errorf("create remainder of job %s: %w", j.ID, err)
	}
	if !closes.IsZero() {
		if err := q.ExtendRunDeadline(ctx, db.ExtendRunDeadlineParams{
			CancelAt: closes, CancelReason: jobs.WindowClosedReason(t, closes), ID: j.RunID.UUID,
		}); err != nil {
			return fmt.Errorf("extend run %s: %w", j.RunID.UUID, err)
		}
	}
	log.Info("interrupted job carried over to the next scan window", "remainder_job_id", id,
		"hosts_finished", j.HostsFinished.Int64, "addresses_left", left, "not_before", opens)
	return nil
}

// remainderExclusions is the interrupted job's exclusions plus every host it
// finished (one prefix per address; a /24 shard has at most 256).
func remainderExclusions(j db.ScanJob) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(j.Exclusions)+len(j.FinishedHosts))
	out = append(out, j.Exclusions...)
	for _, a := range j.FinishedHosts {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}
