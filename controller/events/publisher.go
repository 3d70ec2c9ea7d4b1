package events

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/gen/db"
)

// publishBatch caps the payloads sent in one NOTIFY statement; PostgreSQL's
// notification queue takes 8 kB pages, and a statement of a few hundred small
// payloads is still one short transaction.
const publishBatch = 256

// Publisher sends job events to ChannelEvents off the request path: callers
// hand it a payload and go on, and one goroutine sends whatever has queued
// up in one statement. A lease granted or a job committed then costs no
// NOTIFY transaction of its own (each one takes PostgreSQL's global notify
// lock at commit). Events are a live view, never the source of truth: when
// the queue is full, or the database cannot be reached, events are dropped
// and counted.
type Publisher struct {
	q       *db.Queries
	log     hclog.Logger
	ch      chan string
	dropped atomic.Int64
	done    chan struct{}
}

// NewPublisher returns a publisher that queues up to buffer events.
func NewPublisher(pool *pgxpool.Pool, buffer int, log hclog.Logger) *Publisher {
	return &Publisher{q: db.New(pool), log: log.Named("events"), ch: make(chan string, buffer), done: make(chan struct{})}
}

// Publish queues payload; it never blocks.
func (p *Publisher) Publish(payload string) {
	select {
	case p.ch <- payload:
	default:
		if p.dropped.Add(1)%1000 == 1 {
			p.log.Warn("event queue full; dropping job events (watchers may miss some)", "dropped_total", p.dropped.Load())
		}
	}
}

// Dropped is how many events were dropped so far.
func (p *Publisher) Dropped() int64 { return p.dropped.Load() }

// Run sends queued events until ctx ends, then sends what is still queued
// (for at most a few seconds) and returns.
func (p *Publisher) Run(ctx context.Context) {
	defer close(p.done)
	batch := make([]string, 0, publishBatch)
	for {
		select {
		case first := <-p.ch:
			batch = p.fill(append(batch[:0], first))
			// Not cut short by shutdown: a NOTIFY that ran but whose
			// answer was abandoned would count as dropped.
			p.send(context.WithoutCancel(ctx), batch)
		case <-ctx.Done():
			flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			for batch = p.fill(batch[:0]); len(batch) > 0; batch = p.fill(batch[:0]) {
				p.send(flush, batch)
			}
			cancel()
			return
		}
	}
}

// Done is closed when Run has returned.
func (p *Publisher) Done() <-chan struct{} { return p.done }

// fill appends whatever is queued, up to publishBatch, without waiting.
func (p *Publisher) fill(batch []string) []string {
	for len(batch) < publishBatch {
		select {
		case s := <-p.ch:
			batch = append(batch, s)
		default:
			return batch
		}
	}
	return batch
}

// sendTimeout bounds one NOTIFY statement, so a hung database connection
// costs queued events, never a stuck publisher.
const sendTimeout = 5 * time.Second

func (p *Publisher) send(ctx context.Context, batch []string) {
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	if err := p.q.NotifyJobEvents(ctx, batch); err != nil {
		p.dropped.Add(int64(len(batch)))
		p.log.Debug("could not publish job events", "events", len(batch), "error", err)
	}
}
