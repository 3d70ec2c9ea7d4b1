package server

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// loops runs the controller's background loops (notification hub, reaper,
// scheduler, maintenance, webhooks, ...) under one context, so shutdown
// stops them together and waits for them before the pool they use closes.
type loops struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	log    hclog.Logger
	mu     sync.Mutex
	names  map[string]int
}

func newLoops(log hclog.Logger) *loops {
	ctx, cancel := context.WithCancel(context.Background())
	return &loops{ctx: ctx, cancel: cancel, log: log, names: map[string]int{}}
}

// Go starts run(ctx) as the loop name; run must return once ctx is done.
func (l *loops) Go(name string, run func(context.Context)) {
	l.mu.Lock()
	l.names[name]++
	l.mu.Unlock()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		run(l.ctx)
		l.mu.Lock()
		l.names[name]--
		l.mu.Unlock()
	}()
}

// Stop cancels every loop and waits up to timeout for them to return; it
// names the ones still running after that (they are left behind rather than
// holding up the process's exit).
func (l *loops) Stop(timeout time.Duration) {
	l.cancel()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		l.mu.Lock()
		var running []string
		for n, c := range l.names {
			if c > 0 {
				running = append(running, n)
			}
		}
		l.mu.Unlock()
		l.log.Warn("background loops still running after shutdown timeout", "loops", running, "timeout", timeout)
	}
}
