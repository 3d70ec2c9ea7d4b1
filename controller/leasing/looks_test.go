package leasing

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
)

// A long-poll waits for a free look slot instead of taking a pooled
// connection, and gives up with its context without touching the job.
func TestLooksAreCapped(t *testing.T) {
	t.Parallel()
	f := newLeaseFixture(t, 3)
	if got, want := cap(f.l.looks), max(1, min(DefaultMaxConcurrentLooks, int(f.pool.Config().MaxConns)/2)); got != want {
		t.Fatalf("default look slots = %d, want %d (DefaultMaxConcurrentLooks, at most half the pool)", got, want)
	}
	l := New(f.pool, quietWaker{}, discard{}, Config{TTL: time.Minute, MaxWait: time.Second, MaxConcurrentLooks: 1}, hclog.NewNullLogger())
	l.looks <- struct{}{} // another look holds the only slot

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	j, err := l.Acquire(ctx, f.agent, time.Second)
	if !errors.Is(err, context.DeadlineExceeded) || j != nil {
		t.Fatalf("acquire with no free slot = %v, %v; want the context's deadline", j, err)
	}
	if status, attempt, _, _ := f.jobRow(t); status != "pending" || attempt != 0 {
		t.Fatalf("job after a look that never ran: %s attempt %d, want pending attempt 0", status, attempt)
	}

	<-l.looks // the other look ends
	j, err = l.Acquire(context.Background(), f.agent, time.Second)
	if err != nil || j == nil || j.ID != f.job {
		t.Fatalf("acquire with a free slot = %v, %v; want job %s", j, err, f.job)
	}
	if len(l.looks) != 0 {
		t.Fatalf("%d look slots still held after the look ended", len(l.looks))
	}
}

// countingWaker wakes no one and counts announcements as the test makes
// them.
type countingWaker struct {
	quietWaker
	n atomic.Uint64
}

func (w *countingWaker) Announced(string) uint64 { return w.n.Load() }

// A look that found nothing answers for its site's long-polls of the same
// scope and capabilities until something is announced there; it answers for
// no other scope or capability, and a look refused for the agent's own state
// answers for no one.
func TestEmptyLookAnswersUntilAnnounced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	other := func(a db.Agent, change func(*db.Agent)) db.Agent { change(&a); return a }
	tests := []struct {
		name string
		// prime looks while the queue is empty; then the job is made
		// pending without an announcement and probe looks.
		prime, probe func(db.Agent) db.Agent
		announce     bool
		wantJob      bool
	}{
		{name: "same key answered from the empty look", wantJob: false},
		{name: "announcement makes it stale", announce: true, wantJob: true},
		{name: "another scope looks for itself", wantJob: true,
			probe: func(a db.Agent) db.Agent {
				return other(a, func(a *db.Agent) { a.Scope = []netip.Prefix{netip.MustParsePrefix("10.99.70.0/24")} })
			}},
		{name: "raw sockets look for themselves", wantJob: true,
			probe: func(a db.Agent) db.Agent { return other(a, func(a *db.Agent) { a.RawSockets = true }) }},
		{name: "a draining agent's empty look answers for no one", wantJob: true,
			prime: func(a db.Agent) db.Agent {
				return other(a, func(a *db.Agent) { a.State = string(state.AgentDraining) })
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newLeaseFixture(t, 3)
			w := &countingWaker{}
			l := New(f.pool, w, discard{}, Config{TTL: time.Minute, MaxWait: time.Second}, hclog.NewNullLogger())
			f.exec(t, `UPDATE scan_jobs SET scheduled_at = now() + interval '1 hour' WHERE id = $1`)
			prime, probe := f.agent, f.agent
			if tt.prime != nil {
				prime = tt.prime(prime)
			}
			if tt.probe != nil {
				probe = tt.probe(probe)
			}
			if j, err := l.Acquire(ctx, prime, 20*time.Millisecond); err != nil || j != nil {
				t.Fatalf("look at an empty queue = %v, %v; want nothing", j, err)
			}
			// Work appears and nothing announces it.
			f.exec(t, `UPDATE scan_jobs SET scheduled_at = now() WHERE id = $1`)
			if tt.announce {
				w.n.Add(1)
			}
			j, err := l.Acquire(ctx, probe, 20*time.Millisecond)
			if err != nil || (j != nil) != tt.wantJob {
				t.Fatalf("look after the job became due = %v, %v; want a job: %v", j, err, tt.wantJob)
			}
			if tt.wantJob {
				return
			}
			// The next announcement (a recheck announces every site) ends it.
			w.n.Add(1)
			if j, err := l.Acquire(ctx, probe, 20*time.Millisecond); err != nil || j == nil || j.ID != f.job {
				t.Fatalf("look after an announcement = %v, %v; want job %s", j, err, f.job)
			}
		})
	}
}
