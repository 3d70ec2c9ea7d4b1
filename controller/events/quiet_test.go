package events

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestQuiet checks when a long-poll of site "a" may skip its first look:
// only after a successful, recent check found no work there and nothing
// woke the site since that check started.
func TestQuiet(t *testing.T) {
	t.Parallel()
	busy := func(sites ...string) PendingSites {
		return func(context.Context, time.Duration) ([]string, error) { return sites, nil }
	}
	tests := []struct {
		name    string
		pending func(h *Hub) PendingSites
		after   func(h *Hub) // between the check and the question
		want    bool
	}{
		{"no check configured", func(*Hub) PendingSites { return nil }, nil, false},
		{"nothing pending anywhere", func(*Hub) PendingSites { return busy() }, nil, true},
		{"another site has work", func(*Hub) PendingSites { return busy("b") }, nil, true},
		{"this site has work", func(*Hub) PendingSites { return busy("a", "b") }, nil, false},
		{"the check failed", func(*Hub) PendingSites {
			return func(context.Context, time.Duration) ([]string, error) { return nil, errors.New("down") }
		}, nil, false},
		{"a notification for the site after the check", func(*Hub) PendingSites { return busy() }, func(h *Hub) { h.WakeSite("a") }, false},
		{"a lease granted in the site after the check", func(*Hub) PendingSites { return busy() }, func(h *Hub) { h.WakeOne("a") }, false},
		{"the listener reconnected after the check", func(*Hub) PendingSites { return busy() }, func(h *Hub) { h.WakeSite("") }, false},
		{"a notification for another site", func(*Hub) PendingSites { return busy() }, func(h *Hub) { h.WakeSite("b") }, true},
		{"a notification while the check ran", func(h *Hub) PendingSites {
			return func(context.Context, time.Duration) ([]string, error) { h.WakeSite("a"); return nil, nil }
		}, nil, false},
		{"the check is too old", func(*Hub) PendingSites { return busy() }, func(h *Hub) {
			h.mu.Lock()
			h.check.done = time.Now().Add(-3 * h.recheckEvery())
			h.mu.Unlock()
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := NewHub("", hclog.NewNullLogger())
			h.WakeSite("a") // wake-ups before the check are in it
			h.Pending = tt.pending(h)
			h.checkSites(context.Background())
			if tt.after != nil {
				tt.after(h)
			}
			if got := h.Quiet("a"); got != tt.want {
				t.Fatalf("Quiet(a) = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestQuietHorizon checks that the check asks about work due within one
// recheck interval, so a job whose scheduled_at is about to pass keeps its
// site from looking quiet.
func TestQuietHorizon(t *testing.T) {
	t.Parallel()
	h := NewHub("", hclog.NewNullLogger())
	h.Recheck = 3 * time.Second
	var asked time.Duration
	h.Pending = func(_ context.Context, horizon time.Duration) ([]string, error) { asked = horizon; return nil, nil }
	h.checkSites(context.Background())
	if asked != h.Recheck {
		t.Fatalf("horizon %s, want the recheck interval %s", asked, h.Recheck)
	}
}
