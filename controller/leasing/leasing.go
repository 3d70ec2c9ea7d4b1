// Package leasing owns the scan job lease: who may work on a job, until
// when, and under which fencing token. Every write by a lease holder is
// conditional on (worker_id, lease_token) still matching in the database, so
// an agent that lost its lease (it stalled, its lease expired and the job was
// leased again) can neither renew, report, fail nor commit. The reaper
// returns expired leases to the queue.
package leasing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/events"
	"github.com/scanorama/scanorama/controller/metrics"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
)

// ErrLeaseLost means the caller no longer holds the lease it names. The API
// says FAILED_PRECONDITION: the agent must stop and drop the job.
var ErrLeaseLost = apierr.Sentinel(codes.FailedPrecondition, "lease lost")

// Waker lets Acquire sleep until work may have appeared in a site. It
// wakes a bounded number of a site's waiters per notification and rechecks
// on its own (events.Hub), so Acquire keeps no timer of its own.
type Waker interface {
	SubscribeJobs(site string) (<-chan struct{}, func())
	WakeSite(site string)
	// WakeOne passes a wake-up on to another waiter of site.
	WakeOne(site string)
}

// QuietWaker is a Waker that knows which sites have no pending work, so a
// long-poll there may park without looking (events.Hub.Quiet).
type QuietWaker interface {
	Waker
	Quiet(site string) bool
}

// Publisher sends job events to watchers off the request path.
type Publisher interface {
	Publish(payload string)
}

// Config tunes leasing.
type Config struct {
	// TTL is how long a lease lives without a heartbeat.
	TTL time.Duration
	// MaxWait caps one long-poll.
	MaxWait time.Duration
	// Metrics, when set, counts leases granted, renewed and reassigned and
	// writes fenced off for a lost lease.
	Metrics *metrics.Controller
	// MaxConcurrentLooks caps the job queries long-polls run at once. With
	// thousands of agents re-polling, uncapped looks took every pooled
	// connection and admin calls, result commits and liveness writes queued
	// behind them for minutes. 0 means DefaultMaxConcurrentLooks (never
	// more than half the pool).
	MaxConcurrentLooks int
}

// DefaultConfig suits agents that heartbeat every TTL/3.
func DefaultConfig() Config {
	return Config{TTL: 30 * time.Second, MaxWait: 30 * time.Second}
}

// Leaser grants and fences leases.
type Leaser struct {
	pool  *pgxpool.Pool
	looks chan struct{} // a slot per job query in flight
	empty emptyLooks    // looks that found nothing (looks.go)
	q     *db.Queries
	waker Waker
	pub   Publisher
	cfg   Config
	log   hclog.Logger
}

// New returns a Leaser. Job events of leases granted and renewed go to pub;
// those of transactions (fail, release) are sent in the transaction.
func New(pool *pgxpool.Pool, waker Waker, pub Publisher, cfg Config, log hclog.Logger) *Leaser {
	looks := cfg.MaxConcurrentLooks
	if looks <= 0 {
		looks = max(1, min(DefaultMaxConcurrentLooks, int(pool.Config().MaxConns)/2))
	}
	return &Leaser{pool: pool, looks: make(chan struct{}, looks), q: db.New(pool), waker: waker, pub: pub, cfg: cfg, log: log.Named("leasing")}
}

// TTL is the lease lifetime granted by Acquire and Heartbeat.
func (l *Leaser) TTL() time.Duration { return l.cfg.TTL }

// HeartbeatInterval is how often agents are told to heartbeat, and how often
// a waiting long-poll refreshes its agent's last_seen.
func (l *Leaser) HeartbeatInterval() time.Duration { return l.cfg.TTL / 3 }

// Acquire long-polls for a job the agent may run: one in its site, inside
// its scope, whose needs its capabilities meet. It returns (nil, nil) when
// nothing arrived within wait.
//
// An open poll counts as liveness; agentapi records it (see its touches).
func (l *Leaser) Acquire(ctx context.Context, agent db.Agent, wait time.Duration) (*db.AcquireJobRow, error) {
	if wait <= 0 || wait > l.cfg.MaxWait {
		wait = l.cfg.MaxWait
	}
	site := agent.SiteID.String()
	wake, unsubscribe := l.waker.SubscribeJobs(site)
	defer unsubscribe()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	// A site with nothing pending is not looked at: an idle fleet re-polls
	// hundreds of times a second and every look would find nothing. The
	// poll parks subscribed, so work that appears wakes it as any waiter.
	if q, ok := l.waker.(QuietWaker); ok && q.Quiet(site) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, nil
		case <-wake:
		}
	}
	for {
		job, err := l.look(ctx, agent)
		switch {
		case err == nil:
			l.cfg.Metrics.Lease(metrics.LeaseAcquired)
			if job.Attempt > 1 {
				l.cfg.Metrics.Lease(metrics.LeaseReassigned)
			}
			l.log.Debug("leased job", "job_id", job.ID, "agent", agent.Name, "lease_token", job.LeaseToken, "attempt", job.Attempt)
			l.pub.Publish(events.JobEvent{JobID: job.ID, SiteID: job.SiteID, Status: state.JobLeased, WorkerID: agent.ID.String()}.Payload())
			// More work may be queued behind this job: pass the wake-up on.
			l.waker.WakeOne(site)
			return &job, nil
		case !errors.Is(err, pgx.ErrNoRows):
			return nil, fmt.Errorf("acquire job for agent %s: %w", agent.Name, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, nil
		case <-wake:
		}
	}
}

// LeaseRef names a lease: the job, the holder and the fencing token.
type LeaseRef struct {
	JobID    uuid.UUID
	WorkerID string
	Token    int64
}

// HeartbeatResult tells the holder what became of its lease.
type HeartbeatResult struct {
	State     LeaseState
	TimeoutAt time.Time
}

// LeaseState is the holder's view of a lease.
type LeaseState int

// Lease states reported by Heartbeat.
const (
	LeaseActive LeaseState = iota + 1
	LeaseCancelled
	LeaseLost
)

// Heartbeat renews a lease and records progress (never backwards).
func (l *Leaser) Heartbeat(ctx context.Context, ref LeaseRef, progress int) (HeartbeatResult, error) {
	row, err := l.q.RenewLease(ctx, db.RenewLeaseParams{
		TtlSeconds:      l.cfg.TTL.Seconds(),
		ProgressPercent: int32(max(0, min(progress, 100))),
		ID:              ref.JobID,
		WorkerID:        ref.WorkerID,
		LeaseToken:      ref.Token,
	})
	if err == nil {
		l.cfg.Metrics.Lease(metrics.LeaseRenewed)
		l.pub.Publish(events.JobEvent{JobID: ref.JobID, SiteID: row.SiteID, Status: state.JobRunning, ProgressPercent: int32(row.ProgressPercent), WorkerID: ref.WorkerID}.Payload())
		return HeartbeatResult{State: LeaseActive, TimeoutAt: row.TimeoutAt.Time}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return HeartbeatResult{}, fmt.Errorf("renew lease on job %s: %w", ref.JobID, err)
	}
	st, err := l.q.GetJobLeaseState(ctx, ref.JobID)
	if errors.Is(err, pgx.ErrNoRows) {
		l.cfg.Metrics.Fenced(metrics.FencedHeartbeat)
		return HeartbeatResult{State: LeaseLost}, nil
	}
	if err != nil {
		return HeartbeatResult{}, fmt.Errorf("read job %s: %w", ref.JobID, err)
	}
	if state.JobStatus(st.Status) == state.JobCancelled && st.LeaseToken == ref.Token && st.WorkerID.String == ref.WorkerID {
		return HeartbeatResult{State: LeaseCancelled}, nil
	}
	l.cfg.Metrics.Fenced(metrics.FencedHeartbeat)
	return HeartbeatResult{State: LeaseLost}, nil
}

// Fail gives up a lease with an error. Retryable errors send the job back
// to the queue while attempts remain. It returns the job's new status.
func (l *Leaser) Fail(ctx context.Context, ref LeaseRef, msg string, retryable bool) (state.JobStatus, error) {
	var status state.JobStatus
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		q := l.q.WithTx(tx)
		row, err := q.FailJob(ctx, db.FailJobParams{
			Retryable: retryable, ErrorMessage: msg, ID: ref.JobID, WorkerID: ref.WorkerID, LeaseToken: ref.Token,
		})
		status = state.JobStatus(row.Status)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrLeaseLost
		}
		if err != nil {
			return fmt.Errorf("fail job %s: %w", ref.JobID, err)
		}
		if err := q.EndLease(ctx, db.EndLeaseParams{Outcome: pgText(string(state.LeaseFailed)), JobID: ref.JobID, LeaseToken: ref.Token}); err != nil {
			return fmt.Errorf("end lease: %w", err)
		}
		l.notifyJob(ctx, q, events.JobEvent{JobID: ref.JobID, SiteID: row.SiteID, Status: status, WorkerID: ref.WorkerID})
		if status == state.JobPending {
			return l.notifySite(ctx, q, ref.JobID)
		}
		return nil
	})
	if errors.Is(err, ErrLeaseLost) {
		l.cfg.Metrics.Fenced(metrics.FencedFail)
	}
	return status, err
}

// Release returns a lease at once without using up the attempt: the agent is
// shutting down cleanly and another agent should not wait for expiry.
func (l *Leaser) Release(ctx context.Context, ref LeaseRef) error {
	err := l.release(ctx, ref)
	if errors.Is(err, ErrLeaseLost) {
		l.cfg.Metrics.Fenced(metrics.FencedRelease)
	}
	return err
}

func (l *Leaser) release(ctx context.Context, ref LeaseRef) error {
	return pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		q := l.q.WithTx(tx)
		n, err := q.ReleaseJob(ctx, db.ReleaseJobParams{ID: ref.JobID, WorkerID: ref.WorkerID, LeaseToken: ref.Token})
		if err != nil {
			return fmt.Errorf("release job %s: %w", ref.JobID, err)
		}
		if n == 0 {
			return ErrLeaseLost
		}
		if err := q.EndLease(ctx, db.EndLeaseParams{Outcome: pgText(string(state.LeaseReleased)), JobID: ref.JobID, LeaseToken: ref.Token}); err != nil {
			return fmt.Errorf("end lease: %w", err)
		}
		return l.notifySite(ctx, q, ref.JobID)
	})
}

func (l *Leaser) notifySite(ctx context.Context, q *db.Queries, jobID uuid.UUID) error {
	st, err := q.GetJobLeaseState(ctx, jobID)
	if err != nil {
		return fmt.Errorf("read job %s: %w", jobID, err)
	}
	if err := q.NotifyJobsAvailable(ctx, st.SiteID.String()); err != nil {
		return fmt.Errorf("notify site: %w", err)
	}
	return nil
}
