package leasing

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/metrics"
	"github.com/scanorama/scanorama/gen/db"
)

// Reaper returns expired leases to the queue (or fails the job once its
// attempts are used up) and marks agents that stopped heartbeating as lost.
// Several controllers may run reapers at once: the reap statement skips rows
// another reaper holds.
//
// A controller that starts after an outage gives leases one startup grace
// period before reaping them: while no controller was up, live agents could
// not heartbeat, and reaping their leases the moment one comes back would
// throw away scans that are finished and spooled. A lease whose agent really
// died is reaped one grace period later.
type Reaper struct {
	started    time.Time
	startGrace time.Duration
	pool       *pgxpool.Pool
	q          *db.Queries
	waker      Waker
	interval   time.Duration
	lostAfter  time.Duration
	log        hclog.Logger
	// Metrics, when set, counts reaper passes, expired leases and agents
	// marked lost.
	Metrics *metrics.Controller
}

// NewReaper returns a reaper that runs every interval, calls an agent lost
// after lostAfter of silence, and spares recently expired leases for
// startGrace after it is created.
func NewReaper(pool *pgxpool.Pool, waker Waker, interval, lostAfter, startGrace time.Duration, log hclog.Logger) *Reaper {
	return &Reaper{started: time.Now(), startGrace: startGrace, pool: pool, q: db.New(pool), waker: waker, interval: interval, lostAfter: lostAfter, log: log.Named("reaper")}
}

// Run reaps once at once (a controller that starts after a crash must not
// leave jobs stuck) and then every interval until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		if _, err := r.ReapOnce(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("reap failed; will retry", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ReapOnce handles every lease expired now and returns how many it handled.
func (r *Reaper) ReapOnce(ctx context.Context) (int, error) {
	began := time.Now()
	total, lost, err := r.reapOnce(ctx)
	r.Metrics.LeasesExpired(total)
	r.Metrics.ReaperRun(time.Since(began), lost, err)
	return total, err
}

func (r *Reaper) reapOnce(ctx context.Context) (int, int, error) {
	total := 0
	for {
		grace := time.Duration(0)
		if time.Since(r.started) < r.startGrace {
			grace = r.startGrace
		}
		rows, err := r.q.ReapExpiredLeases(ctx, grace.Seconds())
		if err != nil {
			return total, 0, fmt.Errorf("reap expired leases: %w", err)
		}
		for _, row := range rows {
			r.log.Warn("lease expired", "job_id", row.ID, "new_status", row.Status, "reason", row.ErrorMessage.String)
			if row.Status == "pending" {
				if err := r.q.NotifyJobsAvailable(ctx, row.SiteID.String()); err != nil {
					return total, 0, fmt.Errorf("notify site: %w", err)
				}
				r.waker.WakeSite(row.SiteID.String())
			}
		}
		total += len(rows)
		if len(rows) < 500 {
			break
		}
	}
	lost, err := r.q.MarkLostAgents(ctx, r.lostAfter.Seconds())
	if err != nil {
		return total, 0, fmt.Errorf("mark lost agents: %w", err)
	}
	for _, a := range lost {
		r.log.Warn("agent stopped heartbeating; marked lost", "agent_id", a.ID, "agent", a.Name)
	}
	return total, len(lost), nil
}
