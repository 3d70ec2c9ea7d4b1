package agentapi

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/gen/db"
)

// agentLoader reads the rows of agents missing from the cache together:
// every call that misses while a read is running joins the next one, so a
// fleet reconnecting at once (a controller restart), or a refresh running
// late, costs a few statements instead of one pool connection per call;
// the calls wait for their batch instead of queueing on the shared pool.
type agentLoader struct {
	running atomic.Bool  // Run serves batches; otherwise calls read their own row
	batches atomic.Int64 // statements run
	kick    chan struct{}
	mu      sync.Mutex
	next    *agentBatch
}

type agentBatch struct {
	ids  map[uuid.UUID]struct{}
	done chan struct{}
	rows map[uuid.UUID]db.Agent
	err  error
}

func newAgentLoader() *agentLoader {
	return &agentLoader{kick: make(chan struct{}, 1)}
}

// load returns id's row from the next batch; pgx.ErrNoRows when there is
// no such agent.
func (s *Server) loadAgent(ctx context.Context, id uuid.UUID) (db.Agent, error) {
	l := s.loader
	if !l.running.Load() {
		return s.q.GetAgent(ctx, id)
	}
	l.mu.Lock()
	b := l.next
	if b == nil {
		b = &agentBatch{ids: map[uuid.UUID]struct{}{}, done: make(chan struct{})}
		l.next = b
	}
	b.ids[id] = struct{}{}
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	select {
	case <-ctx.Done():
		return db.Agent{}, ctx.Err()
	case <-b.done:
	}
	if b.err != nil {
		return db.Agent{}, b.err
	}
	a, ok := b.rows[id]
	if !ok {
		return db.Agent{}, pgx.ErrNoRows
	}
	return a, nil
}

// runLoader serves batches with q until ctx ends.
func (s *Server) runLoader(ctx context.Context, q *db.Queries) {
	l := s.loader
	l.running.Store(true)
	defer func() {
		l.running.Store(false)
		// Calls that joined a batch nobody will run read their own rows.
		l.mu.Lock()
		if b := l.next; b != nil {
			l.next = nil
			b.err = context.Canceled
			close(b.done)
		}
		l.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
		}
		l.mu.Lock()
		b := l.next
		l.next = nil
		l.mu.Unlock()
		if b == nil {
			continue
		}
		ids := make([]uuid.UUID, 0, len(b.ids))
		for id := range b.ids {
			ids = append(ids, id)
		}
		cctx, cancel := context.WithTimeout(ctx, backgroundTimeout)
		begin := time.Now()
		rows, err := q.GetAgentsByIDs(cctx, ids)
		cancel()
		l.batches.Add(1)
		b.err = err
		if err == nil {
			b.rows = make(map[uuid.UUID]db.Agent, len(rows))
			for _, a := range rows {
				b.rows[a.ID] = a
			}
			s.agents.loaded(begin, rows)
		}
		close(b.done)
	}
}
