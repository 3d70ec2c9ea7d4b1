package agentapi

import (
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/scanorama/scanorama/gen/db"
)

// agentCacheTTL bounds how long a controller acts on a remembered agent row:
// a drain, or a scope change by re-registration on another controller,
// takes effect within it.
const agentCacheTTL = 2 * time.Second

// agentCache spares every agent call a database read: an agent makes three
// or more calls per job, and all of them only need to know it exists.
type agentCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[uuid.UUID]cachedAgent
}

type cachedAgent struct {
	a       db.Agent
	expires time.Time
}

func newAgentCache(ttl time.Duration) *agentCache {
	return &agentCache{ttl: ttl, m: map[uuid.UUID]cachedAgent{}}
}

func (c *agentCache) get(id uuid.UUID) (db.Agent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || time.Now().After(e.expires) {
		delete(c.m, id)
		return db.Agent{}, false
	}
	return e.a, true
}

func (c *agentCache) put(a db.Agent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) > 100_000 {
		clear(c.m) // bounded: a flood of agent ids cannot grow it forever
	}
	c.m[a.ID] = cachedAgent{a: a, expires: time.Now().Add(c.ttl)}
}
