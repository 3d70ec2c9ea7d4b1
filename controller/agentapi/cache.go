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

// agentCache spares every agent call a database read: an agent makes a
// call every few seconds (heartbeat, long-poll, results), and all of them
// only need its row. Rows are not re-read per agent when they expire but
// all together, by one statement each refresh (refresh, run by Server.Run
// every TTL/2), so ten thousand heartbeating agents cost one query a
// second instead of a thousand, and each row stays at most one TTL old.
type agentCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[uuid.UUID]*cachedAgent
}

type cachedAgent struct {
	a db.Agent
	// loaded is when the query that read a started: the row is no older.
	loaded time.Time
	// used is the last call that asked for the agent.
	used time.Time
}

func newAgentCache(ttl time.Duration) *agentCache {
	return &agentCache{ttl: ttl, m: map[uuid.UUID]*cachedAgent{}}
}

func (c *agentCache) get(id uuid.UUID) (db.Agent, bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || now.Sub(e.loaded) > c.ttl {
		// Expired (refreshes failing or late): the caller reads the row.
		return db.Agent{}, false
	}
	e.used = now
	return e.a, true
}

// put stores a row read (or written) just now.
func (c *agentCache) put(a db.Agent) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) > 100_000 {
		clear(c.m) // bounded: a flood of agent ids cannot grow it forever
	}
	c.m[a.ID] = &cachedAgent{a: a, loaded: now, used: now}
}

// loaded stores rows read by a query that started at begin, unless the
// cache holds a row loaded later.
func (c *agentCache) loaded(begin time.Time, rows []db.Agent) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(rows) > 100_000 {
		clear(c.m)
	}
	for _, a := range rows {
		if e, ok := c.m[a.ID]; ok && !e.loaded.Before(begin) {
			continue
		}
		c.m[a.ID] = &cachedAgent{a: a, loaded: begin, used: now}
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

// refreshed stores rows read by a query that started at begin for ids.
// An id without a row was deleted and is forgotten. Entries loaded after
// begin (a registration meanwhile) are newer than the query's and kept.
func (c *agentCache) refreshed(begin time.Time, ids []uuid.UUID, rows []db.Agent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range rows {
		if e, ok := c.m[a.ID]; ok && e.loaded.Before(begin) {
			e.a, e.loaded = a, begin
		}
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

// refreshAgents re-reads every cached agent's row in one statement. On
// failure the rows age out and calls read their own (and fail the same way
// while the database is down).
func (s *Server) refreshAgents(ctx context.Context, q *db.Queries) {
	ids := s.agents.active(agentIdle)
	if len(ids) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, backgroundTimeout)
	defer cancel()
	begin := time.Now()
	rows, err := q.GetAgentsByIDs(cctx, ids)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("could not refresh cached agents; they expire and are read one by one", "agents", len(ids), "error", err)
		}
		return
	}
	s.agents.refreshed(begin, ids, rows)
}
