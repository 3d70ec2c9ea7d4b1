package leasing

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/metrics"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
)

// Reaper returns expired leases to the queue (or fails the job once its
// attempts are used up) and marks agents that stopped heartbeating as lost.
// Several controllers may run reapers at once: the reap statement skips rows
// another reaper holds.
//
// Lease clocks stop while no controller is alive: every tick stamps the
// database's lease_clock, and the first tick after a gap longer than
// outageAfter (no controller ticked, so no agent could heartbeat) moves every
// held lease's timeout on by the gap, and at least lostAfter into the future
// (a fresh span for holders to reconnect, as Nomad gives clients after a
// failover), before anything is reaped, under the clock's row lock so two
// controllers starting together extend once. An
// agent that finished a scan during the outage then commits on the same
// attempt however long the outage was; one whose agent really died is reaped
// a TTL later. Fencing is unchanged: only leases still held move.
//
// On top of that a controller gives leases one startup grace period before
// reaping them (a lease that expired just before the outage began).
type Reaper struct {
	cfg     ReaperConfig
	started time.Time
	pool    *pgxpool.Pool
	q       *db.Queries
	waker   Waker
	outage  time.Duration
	log     hclog.Logger
}

// ReaperConfig configures a Reaper.
type ReaperConfig struct {
	// Interval is how often the reaper runs (and stamps the lease clock).
	Interval time.Duration
	// LostAfter of silence marks an agent lost; it is also the fresh span
	// held leases get after an outage.
	LostAfter time.Duration
	// StartGrace spares recently expired leases for this long after the
	// reaper is created.
	StartGrace time.Duration
	// Batch is how many expired leases one statement reaps (its locks and
	// WAL stay bounded after a mass expiry); a pass repeats until a batch
	// comes back short. Zero or less means DefaultReapBatch.
	Batch int
	// Metrics, when set, counts reaper passes, expired leases and agents
	// marked lost.
	Metrics *metrics.Controller
}

// DefaultReapBatch is ReaperConfig.Batch when unset.
const DefaultReapBatch = 500

func (r *Reaper) batch() int {
	if r.cfg.Batch <= 0 {
		return DefaultReapBatch
	}
	return r.cfg.Batch
}

// NewReaper returns a reaper configured by cfg.
func NewReaper(pool *pgxpool.Pool, waker Waker, cfg ReaperConfig, log hclog.Logger) *Reaper {
	return &Reaper{cfg: cfg, started: time.Now(), pool: pool, q: db.New(pool), waker: waker,
		outage: OutageAfter(cfg.Interval), log: log.Named("reaper")}
}

// OutageAfter is how long the lease clock may go unstamped before the gap
// counts as an outage: a few reap intervals, so a slow tick is not one.
func OutageAfter(reapEvery time.Duration) time.Duration {
	return max(3*reapEvery, 2*time.Second)
}

// tickClock stamps the lease clock and, after an outage, extends held leases
// by its length (see Reaper).
func (r *Reaper) tickClock(ctx context.Context) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		row, err := r.q.WithTx(tx).TickLeaseClock(ctx, db.TickLeaseClockParams{
			OutageSeconds: r.outage.Seconds(), FreshSeconds: r.cfg.LostAfter.Seconds(),
		})
		if err != nil {
			return fmt.Errorf("tick lease clock: %w", err)
		}
		if row.GapSeconds > 0 {
			r.log.Warn("no controller was alive; lease clocks stopped for the outage",
				"outage", time.Duration(row.GapSeconds*float64(time.Second)).Round(time.Millisecond), "leases_extended", row.Extended)
		}
		return nil
	})
}

// Run reaps once at once (a controller that starts after a crash must not
// leave jobs stuck) and then every interval until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
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
	r.cfg.Metrics.LeasesExpired(total)
	r.cfg.Metrics.ReaperRun(time.Since(began), lost, err)
	return total, err
}

func (r *Reaper) reapOnce(ctx context.Context) (int, int, error) {
	if err := r.tickClock(ctx); err != nil {
		return 0, 0, err
	}
	total := 0
	for {
		grace := time.Duration(0)
		if time.Since(r.started) < r.cfg.StartGrace {
			grace = r.cfg.StartGrace
		}
		rows, err := r.q.ReapExpiredLeases(ctx, db.ReapExpiredLeasesParams{GraceSeconds: grace.Seconds(), BatchSize: int32(r.batch())})
		if err != nil {
			return total, 0, fmt.Errorf("reap expired leases: %w", err)
		}
		for _, row := range rows {
			r.log.Warn("lease expired", "job_id", row.ID, "new_status", row.Status, "reason", row.ErrorMessage.String)
			if state.JobStatus(row.Status) == state.JobPending {
				if err := r.q.NotifyJobsAvailable(ctx, row.SiteID.String()); err != nil {
					return total, 0, fmt.Errorf("notify site: %w", err)
				}
				r.waker.WakeSite(row.SiteID.String())
			}
		}
		total += len(rows)
		if len(rows) < r.batch() {
			break
		}
	}
	lost, err := r.q.MarkLostAgents(ctx, r.cfg.LostAfter.Seconds())
	if err != nil {
		return total, 0, fmt.Errorf("mark lost agents: %w", err)
	}
	for _, a := range lost {
		r.log.Warn("agent stopped heartbeating; marked lost", "agent_id", a.ID, "agent", a.Name)
	}
	return total, len(lost), nil
}
