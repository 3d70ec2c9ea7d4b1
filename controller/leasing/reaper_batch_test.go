package leasing

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
)

// TestReaperBatch: one reap statement takes at most Batch expired leases,
// and a pass repeats until every expired lease is handled.
func TestReaperBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newLeaseFixture(t, 3)
	cfg := ReaperConfig{Interval: time.Hour, LostAfter: time.Hour}
	if got := NewReaper(f.pool, quietWaker{}, cfg, hclog.NewNullLogger()).batch(); got != DefaultReapBatch || DefaultReapBatch != 500 {
		t.Fatalf("unset batch = %d (default %d), want 500", got, DefaultReapBatch)
	}
	cfg.Batch = 2
	r := NewReaper(f.pool, quietWaker{}, cfg, hclog.NewNullLogger())
	// Stamp the lease clock first, so the leases below do not look held
	// through an outage (which would extend them instead).
	if _, err := r.ReapOnce(ctx); err != nil {
		t.Fatal(err)
	}
	const expired = 7
	if _, err := f.pool.Exec(ctx, `
		INSERT INTO scan_jobs (target_id, site_id, profile_id, network, options, max_attempts,
		                       status, attempt, lease_token, worker_id, timeout_at)
		SELECT target_id, site_id, profile_id, network, options, 3, 'leased', 1, 1, 'gone', now() - interval '1 hour'
		  FROM scan_jobs, generate_series(1, $1) WHERE id = $2`, expired, f.job); err != nil {
		t.Fatal(err)
	}

	rows, err := db.New(f.pool).ReapExpiredLeases(ctx, db.ReapExpiredLeasesParams{GraceSeconds: 0, BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("one statement with batch_size 3 reaped %d, want 3", len(rows))
	}
	for _, row := range rows {
		if state.JobStatus(row.Status) != state.JobPending {
			t.Errorf("reaped job %s is %s, want pending (attempts left)", row.ID, row.Status)
		}
	}

	n, err := r.ReapOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != expired-3 {
		t.Errorf("a pass with Batch 2 reaped %d, want the remaining %d", n, expired-3)
	}
	var held int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM scan_jobs WHERE status IN ('leased', 'running')`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if held != 0 {
		t.Errorf("%d leases still held after the pass", held)
	}
}
