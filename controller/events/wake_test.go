package events

import (
	"testing"

	"github.com/hashicorp/go-hclog"
)

// woken drains every channel and says which had a wake-up pending.
func woken(chs []<-chan struct{}) []int {
	var out []int
	for i, ch := range chs {
		select {
		case <-ch:
			out = append(out, i)
		default:
		}
	}
	return out
}

func TestWakeIsBounded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		batch int
		wake  func(h *Hub)
		want  []int // waiters of site "a" woken, by subscription order
	}{
		{"a site wakes its longest-waiting batch", 3, func(h *Hub) { h.WakeSite("a") }, []int{0, 1, 2}},
		{"the next wake reaches the next ones", 3, func(h *Hub) { h.WakeSite("a"); h.WakeSite("a") }, []int{0, 1, 2, 3, 4}},
		{"wake one passes on to one", 3, func(h *Hub) { h.WakeOne("a") }, []int{0}},
		{"another site wakes none here", 3, func(h *Hub) { h.WakeSite("b") }, nil},
		{"all sites wake everyone", 3, func(h *Hub) { h.WakeSite("") }, []int{0, 1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := NewHub("", hclog.NewNullLogger())
			h.WakeBatch = tt.batch
			var chs []<-chan struct{}
			for range 5 {
				ch, cancel := h.SubscribeJobs("a")
				t.Cleanup(cancel)
				chs = append(chs, ch)
			}
			_, cancel := h.SubscribeJobs("b") // another site's waiter
			t.Cleanup(cancel)
			all, cancelAll := h.SubscribeJobs("")
			t.Cleanup(cancelAll)
			tt.wake(h)
			got := woken(chs)
			if len(got) != len(tt.want) {
				t.Fatalf("woken %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("woken %v, want %v", got, tt.want)
				}
			}
			// An all-sites waiter hears of every site's work.
			if n := len(woken([]<-chan struct{}{all})); n != 1 && tt.name != "wake one passes on to one" {
				t.Errorf("all-sites waiter woken %d times, want 1", n)
			}
		})
	}
}

func TestUnsubscribeLeavesNoQueue(t *testing.T) {
	t.Parallel()
	h := NewHub("", hclog.NewNullLogger())
	_, c1 := h.SubscribeJobs("a")
	_, c2 := h.SubscribeJobs("a")
	if n := h.Waiting("a"); n != 2 {
		t.Fatalf("waiting %d, want 2", n)
	}
	c1()
	c2()
	if n := h.Waiting("a"); n != 0 {
		t.Fatalf("waiting %d after unsubscribing, want 0", n)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.jobs) != 0 {
		t.Fatalf("%d empty queues kept", len(h.jobs))
	}
}
