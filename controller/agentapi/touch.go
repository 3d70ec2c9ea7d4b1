package agentapi

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/gen/db"
)

// touchFlushEvery is how often the agents seen since the last flush get
// their last_seen written, all in one statement. An agent is called lost
// after minutes of silence (3 lease TTLs), so a second's delay is nothing,
// while a synchronous commit per heartbeat was the controller's largest
// cost per idle agent.
const touchFlushEvery = time.Second

// touches collects the agents whose last_seen should move forward, and the
// agents holding an open long-poll, which count as alive while they wait.
type touches struct {
	mu      sync.Mutex
	ids     map[uuid.UUID]struct{}
	waiting map[uuid.UUID]int
}

func (t *touches) wait(id uuid.UUID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.waiting == nil {
		t.waiting = map[uuid.UUID]int{}
	}
	t.waiting[id]++
}

func (t *touches) done(id uuid.UUID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.waiting[id]--; t.waiting[id] <= 0 {
		delete(t.waiting, id)
	}
}

// markWaiting marks every agent with an open poll for the next flush.
func (t *touches) markWaiting() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ids == nil {
		t.ids = map[uuid.UUID]struct{}{}
	}
	for id := range t.waiting {
		t.ids[id] = struct{}{}
	}
}

func (t *touches) mark(id uuid.UUID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ids == nil {
		t.ids = map[uuid.UUID]struct{}{}
	}
	t.ids[id] = struct{}{}
}

func (t *touches) take() []uuid.UUID {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.ids) == 0 {
		return nil
	}
	out := make([]uuid.UUID, 0, len(t.ids))
	for id := range t.ids {
		out = append(out, id)
	}
	clear(t.ids)
	return out
}

// Run writes the agents' last_seen in batches and refreshes the cached
// agent rows until ctx ends; agents with an open poll are marked every
// heartbeat interval.
//
// Both, and the batched reads of agents missing from the cache (loader.go),
// run on database connections of their own. They keep every agent's
// row and liveness current for all calls, so they must not queue behind
// thousands of calls waiting for the shared pool when it is saturated:
// expired rows would send every call to the pool for its own read (a
// stampede that keeps it saturated), and late touches would let connected
// agents be marked lost.
func (s *Server) Run(ctx context.Context) {
	q := s.q
	if own, err := s.ownPool(); err != nil {
		s.log.Warn("no connections of their own for agent rows and liveness; sharing the pool", "error", err)
	} else {
		defer own.Close()
		q = db.New(own)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); s.runLoader(ctx, q) }()
	t := time.NewTicker(touchFlushEvery)
	defer t.Stop()
	alive := time.NewTicker(s.leaser.HeartbeatInterval())
	defer alive.Stop()
	refresh := time.NewTicker(s.agents.ttl / 2)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			s.refreshAgents(ctx, q)
		case <-alive.C:
			s.touched.markWaiting()
		case <-t.C:
			s.flushTouches(ctx, q)
		}
	}
}

// ownPool is a two-connection pool with the shared pool's settings: one
// for the loader's batches, one for the refreshes and flushes.
func (s *Server) ownPool() (*pgxpool.Pool, error) {
	cfg := s.pool.Config()
	cfg.MaxConns, cfg.MinConns = 2, 0
	return pgxpool.NewWithConfig(context.Background(), cfg)
}

// backgroundTimeout bounds one refresh or flush, so a hung connection does
// not stop the loop.
const backgroundTimeout = 10 * time.Second

// FlushTouches writes last_seen of every agent seen since the last flush.
// A failed write puts them back for the next flush.
func (s *Server) FlushTouches(ctx context.Context) { s.flushTouches(ctx, s.q) }

func (s *Server) flushTouches(ctx context.Context, q *db.Queries) {
	ids := s.touched.take()
	if len(ids) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, backgroundTimeout)
	defer cancel()
	at := time.Now() // the statement's now() is no earlier
	if err := q.TouchAgents(cctx, ids); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("could not record agents' last contact; will retry", "agents", len(ids), "error", err)
		}
		for _, id := range ids {
			s.touched.mark(id)
		}
		return
	}
	s.agents.touchedAt(at, ids)
}
