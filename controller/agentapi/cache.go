package agentapi

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/scanorama/scanorama/gen/db"
)

// agentCacheTTL bounds how long a controller acts on a remembered agent row:
// a drain, a revocation, or a scope change by re-registration on another
// controller, takes effect within it.
const agentCacheTTL = 2 * time.Second

// agentIdle is how long an agent that made no call stays in the cache (and
// in its refreshes). Its long-poll outlasts it only when the agent stopped
// heartbeating, and then a cache miss costs one read.
const agentIdle = 60 * time.Second

// agentFullRefresh is how often a refresh reads every cached row instead
// of the changed ones only: it is what notices deleted agents (a site's
// deletion removes its agents; nothing else deletes one), which the change
// stamp cannot show.
const agentFullRefresh = 30 * time.Second

// agentCache spares every agent call a database read: an agent makes a
// call every few seconds (heartbeat, long-poll, results), and all of them
// only need its row. Rows are not re-read per agent when they expire but
// together, by Server.Run every TTL/2 (refreshAgents): it reads only the
// rows changed since its last look (agents.changed_xid, migration 0020),
// and that no other row changed makes every cached row as current as the
// look (fresh). So ten thousand heartbeating agents cost one small query a
// second, and each row stays at most one TTL old.
type agentCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[uuid.UUID]*cachedAgent
	// started is when the last refresh began; fresh when the last one that
	// succeeded began: every entry that is not stale is as current as fresh.
	started, fresh time.Time
	// since is the change horizon of the last successful refresh: the next
	// reads the rows changed by transactions at or after it. 0: none yet,
	// the next refresh reads every row.
	since    int64
	lastFull time.Time
}

type cachedAgent struct {
	a db.Agent
	// loaded is when the query that read a started: the row is no older.
	loaded time.Time
	// used is the last call that asked for the agent.
	used time.Time
	// stale is set for a row read before a refresh began and stored after:
	// that refresh may have missed a change the read did not see, so the
	// row is only as current as loaded and expires with it.
	stale bool
}

func newAgentCache(ttl time.Duration) *agentCache {
	return &agentCache{ttl: ttl, m: map[uuid.UUID]*cachedAgent{}}
}

// current is when e's row was known to be current. Caller holds c.mu.
func (c *agentCache) current(e *cachedAgent) time.Time {
	if !e.stale && c.fresh.After(e.loaded) {
		return c.fresh
	}
	return e.loaded
}

func (c *agentCache) get(id uuid.UUID) (db.Agent, bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || now.Sub(c.current(e)) > c.ttl {
		// Expired (refreshes failing or late): the caller reads the row.
		return db.Agent{}, false
	}
	e.used = now
	return e.a, true
}

// put stores a row read or written by a statement that started at begin.
func (c *agentCache) put(begin time.Time, a db.Agent) {
	c.loaded(begin, []db.Agent{a})
}

// loaded stores rows read by a query that started at begin, unless the
// cache holds a row loaded later.
func (c *agentCache) loaded(begin time.Time, rows []db.Agent) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(rows) > 100_000 {
		clear(c.m) // bounded: a flood of agent ids cannot grow it forever
	}
	stale := begin.Before(c.started)
	for _, a := range rows {
		if e, ok := c.m[a.ID]; ok && !e.loaded.Before(begin) {
			continue
		}
		c.m[a.ID] = &cachedAgent{a: a, loaded: begin, used: now, stale: stale}
	}
}

// active returns the agents called for within idle and forgets the others.
func (c *agentCache) active(idle time.Duration) []uuid.UUID {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]uuid.UUID, 0, len(c.m))
	for id, e := range c.m {
		if now.Sub(e.used) > idle {
			delete(c.m, id)
			continue
		}
		ids = append(ids, id)
	}
	return ids
}

// begin records that a refresh starts now and whether it must read every
// row (no horizon yet, or agentFullRefresh passed).
func (c *agentCache) begin() (begin time.Time, since int64, full bool) {
	begin = time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started = begin
	full = c.since == 0 || begin.Sub(c.lastFull) >= agentFullRefresh
	return begin, c.since, full
}

// store puts a refreshed row in place of an entry read before begin.
// Caller holds c.mu.
func (c *agentCache) store(begin time.Time, a db.Agent) {
	if e, ok := c.m[a.ID]; ok && e.loaded.Before(begin) {
		e.a, e.loaded, e.stale = a, begin, false
	}
}

// changed stores the rows changed since the last refresh, read by a
// refresh that began at begin with horizon next: every other entry is
// as current as begin.
func (c *agentCache) changed(begin time.Time, next int64, rows []db.Agent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range rows {
		c.store(begin, a)
	}
	c.fresh, c.since = begin, next
}

// refreshed stores rows read by a full refresh that began at begin with
// horizon next, for ids. An id without a row was deleted and is
// forgotten. Entries loaded after begin (a registration meanwhile) are
// newer than the query's and kept.
func (c *agentCache) refreshed(begin time.Time, next int64, ids []uuid.UUID, rows []db.Agent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fresh, c.since, c.lastFull = begin, next, begin
	for _, a := range rows {
		c.store(begin, a)
	}
	if len(rows) == len(ids) {
		return
	}
	found := make(map[uuid.UUID]struct{}, len(rows))
	for _, a := range rows {
		found[a.ID] = struct{}{}
	}
	for _, id := range ids {
		if _, ok := found[id]; ok {
			continue
		}
		if e, ok := c.m[id]; ok && e.loaded.Before(begin) {
			delete(c.m, id)
		}
	}
}

// touchedAt moves the cached last_seen of ids to at, when their batched
// touch (written at or after at) committed: the refresh does not re-read
// rows whose only change is last_seen.
func (c *agentCache) touchedAt(at time.Time, ids []uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if e, ok := c.m[id]; ok && e.a.LastSeen.Before(at) {
			e.a.LastSeen = at
		}
	}
}

// refreshAgents brings every cached agent's row up to date: the rows
// changed since the last refresh (every agentFullRefresh, all rows). On
// failure the rows age out and calls read their own (and fail the same
// way while the database is down).
func (s *Server) refreshAgents(ctx context.Context, q *db.Queries) {
	begin, since, full := s.agents.begin()
	cctx, cancel := context.WithTimeout(ctx, backgroundTimeout)
	defer cancel()
	// The horizon is taken before the rows are read: every transaction
	// older than it had ended, so the read below saw all its changes.
	next, err := q.AgentChangeHorizon(cctx)
	var ids []uuid.UUID
	var rows []db.Agent
	switch {
	case err != nil:
	case full:
		ids = s.agents.active(agentIdle)
		if len(ids) > 0 {
			rows, err = q.GetAgentsByIDs(cctx, ids)
		}
	default:
		rows, err = q.GetChangedAgents(cctx, since)
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("could not refresh cached agents; they expire and are read one by one", "full", full, "error", err)
		}
		return
	}
	if full {
		s.agents.refreshed(begin, next, ids, rows)
		return
	}
	s.agents.changed(begin, next, rows)
}
