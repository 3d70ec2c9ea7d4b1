package events

// Announcements count the events that may make work leasable in a site: a
// notification or direct WakeSite (jobs created, failed back to the queue,
// released, reaped, an agent revoked), a listener reconnect (anything may
// have been missed) and each recheck (work whose scheduled_at passed, rows
// a look skipped while another transaction held them). A lease passing its
// wake-up on (WakeOne) announces nothing new. A look that found nothing
// stays the answer for its site until the site's count moves (leasing's
// empty-look memo); each recheck moves it, so no answer outlives one
// recheck interval.

// Announced returns site's announcement count; it only grows.
func (h *Hub) Announced(site string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.announced.at(site)
}

// announce records an announcement for site ("" = every site). Caller
// holds h.mu.
func (h *Hub) announce(site string) { h.announced.mark(site) }
