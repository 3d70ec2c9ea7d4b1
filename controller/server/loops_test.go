package server

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestLoopsStopWaitsForEveryLoop(t *testing.T) {
	t.Parallel()
	l := newLoops(hclog.NewNullLogger())
	var returned atomic.Int32
	for _, name := range []string{"a", "b", "c"} {
		l.Go(name, func(ctx context.Context) {
			<-ctx.Done()
			time.Sleep(20 * time.Millisecond) // a loop finishing its last step
			returned.Add(1)
		})
	}
	l.Stop(5 * time.Second)
	if got := returned.Load(); got != 3 {
		t.Fatalf("Stop returned with %d of 3 loops finished", got)
	}
}

func TestLoopsStopGivesUpOnAStuckLoop(t *testing.T) {
	t.Parallel()
	l := newLoops(hclog.NewNullLogger())
	release := make(chan struct{})
	defer close(release)
	l.Go("stuck", func(context.Context) { <-release })
	begin := time.Now()
	l.Stop(50 * time.Millisecond)
	if el := time.Since(begin); el > 5*time.Second {
		t.Fatalf("Stop took %v with a loop that ignores its context; want about the 50ms timeout", el)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.names["stuck"] != 1 {
		t.Fatalf("running loops %v, want the stuck one counted", l.names)
	}
}
