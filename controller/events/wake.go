package events

import (
	"container/list"
	"context"
	"time"
)

// Defaults for Hub.WakeBatch and Hub.Recheck.
const (
	// DefaultWakeBatch long-polls per notification keep a site's queue
	// draining at full speed: each one that leases a job wakes the next
	// (WakeOne), so the number awake follows the work, not the fleet.
	DefaultWakeBatch = 16
	// DefaultRecheck bounds how long a job no notification announced waits
	// while a long-poll that can take it is parked.
	DefaultRecheck = 5 * time.Second
)

// waitQueue is one site's parked long-polls, longest waiting first. A
// woken waiter moves to the back, so successive wake-ups reach different
// agents: when the first ones cannot take a job (outside their scope,
// capability missing), the next notification or recheck tries others.
type waitQueue struct {
	l list.List // of chan struct{}
}

// SubscribeJobs returns a channel that receives a wake-up when work may
// have appeared in site ("" = every site), and a function to unsubscribe.
// Subscribe before looking for work, so a job created in between still
// wakes a waiter. Unlike a broadcast, a wake-up reaches a bounded number
// of a site's waiters (WakeSite, WakeOne): ten thousand parked agents do
// not all query for one job.
func (h *Hub) SubscribeJobs(site string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	q := h.jobs[site]
	if q == nil {
		q = &waitQueue{}
		h.jobs[site] = q
	}
	e := q.l.PushBack(ch)
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		q.l.Remove(e)
		if q.l.Len() == 0 && h.jobs[site] == q {
			delete(h.jobs, site)
		}
		h.mu.Unlock()
	}
}

// WakeSite wakes up to WakeBatch of site's waiters and every all-sites
// waiter; site "" wakes every waiter (after the listener reconnected,
// anything may have been missed). The controller also calls it for work
// it created itself, so a local long-poll does not wait for the
// notification's round trip.
func (h *Hub) WakeSite(site string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.noteWake(site)
	h.announce(site)
	if site == "" {
		for _, q := range h.jobs {
			q.wake(q.l.Len())
		}
		return
	}
	if q := h.jobs[site]; q != nil {
		q.wake(max(h.WakeBatch, 1))
	}
	if q := h.jobs[""]; q != nil {
		q.wake(q.l.Len())
	}
}

// WakeOne wakes site's longest-waiting waiter: a long-poll that just
// leased a job passes the wake-up on, because more work may be queued.
func (h *Hub) WakeOne(site string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.noteWake(site) // a lease was just granted there: the site is busy
	if q := h.jobs[site]; q != nil {
		q.wake(1)
	}
}

// Waiting is the number of parked long-polls of site.
func (h *Hub) Waiting(site string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if q := h.jobs[site]; q != nil {
		return q.l.Len()
	}
	return 0
}

// wake signals the n longest-waiting waiters (a waiter with a wake-up
// already pending counts) and moves them to the back. Caller holds h.mu.
func (q *waitQueue) wake(n int) {
	n = min(n, q.l.Len())
	woken := make([]*list.Element, 0, n)
	for e := q.l.Front(); e != nil && len(woken) < n; e = e.Next() {
		select {
		case e.Value.(chan struct{}) <- struct{}{}:
		default:
		}
		woken = append(woken, e)
	}
	for _, e := range woken {
		q.l.MoveToBack(e)
	}
}

// recheckLoop wakes a batch of every site's longest waiters each Recheck,
// in place of a timer per long-poll: with ten thousand agents parked, a
// timer each meant two thousand job queries a second finding nothing. It
// first looks which sites have pending work (checkSites, for Quiet).
func (h *Hub) recheckLoop(ctx context.Context) {
	t := time.NewTicker(h.recheckEvery())
	defer t.Stop()
	h.checkSites(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.checkSites(ctx)
		h.mu.Lock()
		h.announce("") // what no notification announced is looked for again
		for site, q := range h.jobs {
			if site != "" {
				q.wake(max(h.WakeBatch, 1))
			}
		}
		h.mu.Unlock()
	}
}
