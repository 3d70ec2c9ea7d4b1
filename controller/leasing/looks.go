package leasing

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
)

// DefaultMaxConcurrentLooks is how many job queries a controller's
// long-polls run at once unless Config says otherwise. Looks of one site
// all start at the head of its pending index and skip each other's locked
// rows, so past a few at a time they only contend: with 20 (half the
// default pool), 10,000 agents taking 1,000 jobs kept the database's cores
// busy skipping rows and the controller's heartbeats waited behind it
// (jobs-window heartbeat p50 64-102 ms); with 4 the same jobs were leased
// sooner (window 3.4-4.1 s instead of 4.6-5.5) and heartbeat p50 was 4-9 ms,
// while lease throughput with 100 agents stayed at 400 jobs/s.
const DefaultMaxConcurrentLooks = 4

// AnnouncingWaker is a Waker that counts, per site, the events that may
// make work leasable (events.Hub.Announced). With it, a look that found
// nothing answers for the site's other long-polls of the same scope and
// capabilities until the count moves: ten thousand agents re-polling a
// site whose queue was just drained otherwise ran a job query each
// (three empty looks per lease in the 10,000-agent bench).
type AnnouncingWaker interface {
	Waker
	Announced(site string) uint64
}

// lookKey is what a job query's answer depends on besides the queue: the
// agent's site, scope and raw-socket capability.
type lookKey struct {
	site  uuid.UUID
	scope string
	raw   bool
}

// emptyLooks remembers, per lookKey, the announcement count at which the
// latest look that found nothing began. An entry is an answer while the
// site's count has not moved since: everything announced later makes it
// stale, and what is never announced (a scheduled_at passing, a row that
// was locked by a transaction that then rolled back) waits at most until
// the next recheck, which announces every site, as parked long-polls
// always did.
type emptyLooks struct {
	mu sync.Mutex
	m  map[lookKey]uint64
}

func (e *emptyLooks) get(k lookKey) (uint64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n, ok := e.m[k]
	return n, ok
}

func (e *emptyLooks) found(k lookKey, announced uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[lookKey]uint64{}
	}
	e.m[k] = max(e.m[k], announced)
}

func (e *emptyLooks) forget(k lookKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, k)
}

// memoKey returns agent's lookKey, or false when its looks may not answer
// for others: the waker counts no announcements, or the cached agent is in
// a state the job query refuses (its empty answer says nothing of the
// queue). A cache that still shows a freshly drained agent active can
// leave an empty answer for its key: at worst one recheck interval late.
func (l *Leaser) memoKey(agent db.Agent) (lookKey, AnnouncingWaker, bool) {
	w, ok := l.waker.(AnnouncingWaker)
	if !ok {
		return lookKey{}, nil, false
	}
	switch state.AgentState(agent.State) {
	case state.AgentDraining, state.AgentRevoked, state.AgentPendingApproval:
		return lookKey{}, nil, false
	}
	var b strings.Builder
	for i, p := range agent.Scope {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.String())
	}
	return lookKey{site: agent.SiteID, scope: b.String(), raw: agent.RawSockets}, w, true
}

// look runs one job query in a slot of l.looks, unless a look of the same
// key found nothing since anything was announced in the site: then it
// answers pgx.ErrNoRows without a query. It checks again once it has its
// slot, so long-polls queued behind a look that found nothing do not repeat
// it.
func (l *Leaser) look(ctx context.Context, agent db.Agent) (db.AcquireJobRow, error) {
	key, w, memo := l.memoKey(agent)
	site := agent.SiteID.String()
	knownEmpty := func() bool {
		if !memo {
			return false
		}
		n, ok := l.empty.get(key)
		return ok && n == w.Announced(site)
	}
	if knownEmpty() {
		return db.AcquireJobRow{}, pgx.ErrNoRows
	}
	select {
	case l.looks <- struct{}{}:
	case <-ctx.Done():
		return db.AcquireJobRow{}, ctx.Err()
	}
	defer func() { <-l.looks }()
	if knownEmpty() {
		return db.AcquireJobRow{}, pgx.ErrNoRows
	}
	var announced uint64
	if memo {
		announced = w.Announced(site)
	}
	job, err := l.q.AcquireJob(ctx, db.AcquireJobParams{
		SiteID:     agent.SiteID,
		Scope:      agent.Scope,
		RawSockets: agent.RawSockets,
		WorkerID:   agent.ID.String(),
		TtlSeconds: l.cfg.TTL.Seconds(),
	})
	switch {
	case !memo:
	case err == nil:
		// Work nothing announced: whatever said empty was wrong.
		l.empty.forget(key)
	case errors.Is(err, pgx.ErrNoRows):
		l.empty.found(key, announced)
	}
	return job, err
}
