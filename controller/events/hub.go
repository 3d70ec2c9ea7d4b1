// Package events owns the controller's LISTEN/NOTIFY connection. It turns
// PostgreSQL notifications into in-process wake-ups: agents long-polling for
// work in a site wake when jobs appear there, and WatchEvents streams see job
// and host changes as they commit. Notifications are hints, never the source
// of truth: after a reconnect every subscriber is woken so nothing waits on a
// notification that was lost.
package events

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
)

// Channels the controller listens on.
const (
	// ChannelJobs carries a site id whenever pending work appears in that site.
	ChannelJobs = "scanorama_jobs"
	// ChannelEvents carries a JSON Event for WatchEvents.
	ChannelEvents = "scanorama_events"
)

// Hub fans notifications out to subscribers.
type Hub struct {
	connString string
	log        hclog.Logger

	mu     sync.Mutex
	nextID int
	// jobs holds the long-polls waiting for work, per site, longest
	// waiting first (wake.go).
	jobs   map[string]*waitQueue
	evSubs map[int]chan string
	// WakeBatch is how many long-polls of a site one notification wakes.
	WakeBatch int
	// Recheck is how often the longest-waiting long-polls of every site look
	// for work without a notification (jobs whose backoff ended, a batch
	// whose agents could not take the job).
	Recheck time.Duration
	// Pending, when set before Run, is looked up every Recheck so that
	// long-polls of a site without pending work can skip their first look
	// (Quiet). Nil: every long-poll looks first.
	Pending PendingSites
	// wakes stamps wake-ups (Quiet), announced what may make work
	// leasable (Announced, announce.go).
	wakes     siteStamps
	announced siteStamps
	check     *siteCheck
	ready     chan struct{}
	readyOne  sync.Once
}

// NewHub returns a hub that will listen on connString once Run is called.
func NewHub(connString string, log hclog.Logger) *Hub {
	return &Hub{
		connString: connString,
		log:        log.Named("events"),
		jobs:       map[string]*waitQueue{},
		WakeBatch:  DefaultWakeBatch,
		Recheck:    DefaultRecheck,
		evSubs:     map[int]chan string{},
		ready:      make(chan struct{}),
	}
}

// Ready is closed once the hub has listened successfully for the first time.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// SubscribeEvents returns a channel of raw event payloads. A subscriber that
// falls more than buffer events behind loses the oldest ones rather than
// slowing the hub; the payloads are only a live view.
func (h *Hub) SubscribeEvents(buffer int) (<-chan string, func()) {
	ch := make(chan string, buffer)
	h.mu.Lock()
	id := h.nextID
	h.nextID++
	h.evSubs[id] = ch
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.evSubs, id)
		h.mu.Unlock()
	}
}

func (h *Hub) publish(payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ch := range h.evSubs {
		select {
		case ch <- payload:
		default:
			// Drop the oldest to make room: a slow watcher sees the latest state.
			select {
			case <-ch:
			default:
			}
			select {
			case ch <- payload:
			default:
			}
		}
	}
}

// Run listens until ctx ends, reconnecting with backoff when the connection
// drops (for example while PostgreSQL restarts).
func (h *Hub) Run(ctx context.Context) {
	go h.recheckLoop(ctx)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := h.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		h.log.Warn("notification listener lost its connection; reconnecting", "error", err, "backoff", backoff)
		// Anything could have happened while we were deaf.
		h.WakeSite("")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (h *Hub) listen(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, h.connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, ch := range []string{ChannelJobs, ChannelEvents} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}
	h.readyOne.Do(func() { close(h.ready) })
	// We may have missed notifications before LISTEN took effect.
	h.WakeSite("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		switch n.Channel {
		case ChannelJobs:
			h.WakeSite(n.Payload)
		case ChannelEvents:
			h.publish(n.Payload)
		}
	}
}
