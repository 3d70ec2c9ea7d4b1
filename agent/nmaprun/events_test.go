package nmaprun

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// recorder is an Events implementation for tests.
type recorder struct {
	hosts    []Host
	progress []int
	// failAt makes Host return errAbort for the failAt-th host (1-based).
	failAt int
	// onHost, if set, runs for every host before it is recorded.
	onHost func(Host)
}

var errAbort = errors.New("consumer gave up")

func (r *recorder) Host(_ context.Context, h Host) error {
	if r.onHost != nil {
		r.onHost(h)
	}
	if r.failAt > 0 && len(r.hosts)+1 == r.failAt {
		return errAbort
	}
	r.hosts = append(r.hosts, h)
	return nil
}

func (r *recorder) Progress(p int) { r.progress = append(r.progress, p) }

// checkProgress verifies the Events.Progress contract: strictly increasing
// values in 0..100, with 100 only as the final value of a successful run.
func checkProgress(t *testing.T, progress []int, success bool) {
	t.Helper()
	for i, p := range progress {
		if p < 0 || p > 100 || (i > 0 && p <= progress[i-1]) {
			t.Fatalf("progress not strictly increasing within 0..100: %v", progress)
		}
	}
	has100 := slices.Contains(progress, 100)
	if success && (!has100 || progress[len(progress)-1] != 100) {
		t.Fatalf("successful run did not end progress at 100: %v", progress)
	}
	if !success && has100 {
		t.Fatalf("failed run reported 100%%: %v", progress)
	}
}
