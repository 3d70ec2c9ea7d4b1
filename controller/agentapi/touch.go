package agentapi

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
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
func (s *Server) Run(ctx context.Context) {
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
			s.refreshAgents(ctx)
		case <-alive.C:
			s.touched.markWaiting()
		case <-t.C:
			s.FlushTouches(ctx)
		}
	}
}

// FlushTouches writes last_seen of every agent seen since the last flush.
// A failed write puts them back for the next flush.
func (s *Server) FlushTouches(ctx context.Context) {
	ids := s.touched.take()
	if len(ids) == 0 {
		return
	}
	if err := s.q.TouchAgents(ctx, ids); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("could not record agents' last contact; will retry", "agents", len(ids), "error", err)
		}
		for _, id := range ids {
			s.touched.mark(id)
		}
	}
}
