package events

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// What may make work leasable moves a site's announcement count; a lease
// passing its wake-up on does not.
func TestAnnounced(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		do   func(h *Hub)
		a, b bool // whether sites a and b moved
	}{
		{name: "a site's wake-up moves that site", do: func(h *Hub) { h.WakeSite("a") }, a: true},
		{name: "another site's does not", do: func(h *Hub) { h.WakeSite("b") }, b: true},
		{name: "a lease passing its wake-up on moves nothing", do: func(h *Hub) { h.WakeOne("a") }},
		{name: "every site's wake-up moves every site", do: func(h *Hub) { h.WakeSite("") }, a: true, b: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := NewHub("", hclog.NewNullLogger())
			_, unsub := h.SubscribeJobs("a")
			defer unsub()
			h.WakeSite("a")
			h.WakeSite("b")
			a0, b0 := h.Announced("a"), h.Announced("b")
			tt.do(h)
			if got := h.Announced("a") != a0; got != tt.a {
				t.Errorf("site a moved: %v, want %v", got, tt.a)
			}
			if got := h.Announced("b") != b0; got != tt.b {
				t.Errorf("site b moved: %v, want %v", got, tt.b)
			}
		})
	}
}

// Each recheck announces every site, waiters or not: what no notification
// announced (a scheduled_at that passed) is looked for again.
func TestRecheckAnnouncesEverySite(t *testing.T) {
	t.Parallel()
	h := NewHub("", hclog.NewNullLogger())
	h.Recheck = 10 * time.Millisecond
	before := h.Announced("no-waiters")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.recheckLoop(ctx)
	for deadline := time.Now().Add(5 * time.Second); h.Announced("no-waiters") == before; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no recheck announced the site")
		}
	}
}
