package events

import (
	"context"
	"time"
)

// PendingSites lists the sites that have pending work a long-poll might
// lease now or within the given horizon. It is a superset of what any agent
// can take: it ignores scopes, capabilities, pauses and drains, which only
// make a site look busy for longer (never quiet when it is not).
type PendingSites func(ctx context.Context, horizon time.Duration) ([]string, error)

// siteCheck is the result of one PendingSites look.
type siteCheck struct {
	// at is the hub's wake count when the look started: a wake-up counted
	// after it may announce work the look did not see.
	at   uint64
	done time.Time
	busy map[string]struct{}
}

// Quiet reports whether a long-poll of site may skip its first look for
// work and park at once: the last check (at most two recheck intervals old)
// found no pending work in site, due now or within the next interval, and
// nothing woke site (a notification, a lease passing on its wake-up, a
// listener reconnect) since that check started.
//
// Every path that makes work leasable either notifies (job creation, fail,
// release, reaping, revocation: WakeSite through the listener or directly)
// or is a job whose scheduled_at passes, which the check sees one interval
// ahead. Work that appears without either is found by the next check, which
// wakes the site's longest waiters: the bound DefaultRecheck always gave
// parked long-polls. Without a PendingSites function no site is quiet and
// every long-poll looks first, as before.
func (h *Hub) Quiet(site string) bool {
	if site == "" {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.check
	if c == nil || time.Since(c.done) > 2*h.recheckEvery() || h.wakes.at(site) > c.at {
		return false
	}
	_, busy := c.busy[site]
	return !busy
}

// noteWake records that work may have appeared in site ("" = any site).
// Caller holds h.mu.
func (h *Hub) noteWake(site string) { h.wakes.mark(site) }

func (h *Hub) recheckEvery() time.Duration {
	if h.Recheck <= 0 {
		return DefaultRecheck
	}
	return h.Recheck
}

// checkSites runs PendingSites and records which sites are quiet. A failed
// look forgets the last one: no site is quiet until a look succeeds.
func (h *Hub) checkSites(ctx context.Context) {
	if h.Pending == nil {
		return
	}
	every := h.recheckEvery()
	h.mu.Lock()
	at := h.wakes.n
	h.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, every)
	sites, err := h.Pending(cctx, every)
	cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.check = nil
		if ctx.Err() == nil {
			h.log.Debug("could not look for pending work; every long-poll looks for itself", "error", err)
		}
		return
	}
	c := &siteCheck{at: at, done: time.Now(), busy: make(map[string]struct{}, len(sites))}
	for _, s := range sites {
		c.busy[s] = struct{}{}
	}
	h.check = c
	// Wake-ups older than the look are in it.
	h.wakes.forget(at)
}
