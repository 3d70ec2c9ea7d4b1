package leasing

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// A long-poll waits for a free look slot instead of taking a pooled
// connection, and gives up with its context without touching the job.
func TestLooksAreCapped(t *testing.T) {
	t.Parallel()
	f := newLeaseFixture(t, 3)
	if got, want := cap(f.l.looks), max(1, int(f.pool.Config().MaxConns)/2); got != want {
		t.Fatalf("default look slots = %d, want half the pool (%d)", got, want)
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
