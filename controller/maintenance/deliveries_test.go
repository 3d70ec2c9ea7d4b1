package maintenance_test

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/controller/maintenance"
	"github.com/scanorama/scanorama/controller/pgtest"
)

// TestRetentionDeletesDeliveredWebhookDeliveries: delivered deliveries older
// than the retention go, in batches; recent ones, pending ones (still to be
// sent) and dead ones (waiting for a re-drive) stay, however old.
func TestRetentionDeletesDeliveredWebhookDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	now := time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)
	if _, err := pool.Exec(ctx, `
		INSERT INTO webhooks (id, name, url, secret, created_by)
		VALUES ('00000000-0000-0000-0000-0000000000e1', 'hook', 'http://127.0.0.1:9/', 'sixteen-chars-secret', 'test');
		-- 25 old delivered, 4 recent delivered, 3 old pending, 2 old dead.
		INSERT INTO webhook_deliveries (webhook_id, first_feed_seq, last_feed_seq, event_count, body, state, created_at, delivered_at)
		SELECT '00000000-0000-0000-0000-0000000000e1', g, g, 1, '\x00', s.state, s.at, CASE WHEN s.state = 'delivered' THEN s.at END
		FROM (VALUES ('delivered', timestamptz '2026-09-01', 25), ('delivered', timestamptz '2026-11-10', 4),
		             ('pending', timestamptz '2026-09-01', 3), ('dead', timestamptz '2026-09-01', 2)) s(state, at, n)
		CROSS JOIN LATERAL generate_series(1, s.n) g;`); err != nil {
		t.Fatal(err)
	}
	m := maintenance.New(pool, hclog.NewNullLogger())
	m.Now = func() time.Time { return now }
	m.Batch = 7 // 25 rows: three full batches and a short one
	m.Retention = maintenance.Retention{Deliveries: 30 * 24 * time.Hour}
	st, err := m.RetentionPass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Deliveries != 25 {
		t.Fatalf("deleted %d deliveries, want the 25 old delivered ones", st.Deliveries)
	}
	for _, tc := range []struct {
		state string
		want  int
	}{{"delivered", 4}, {"pending", 3}, {"dead", 2}} {
		if got := scalar(t, pool, `SELECT count(*) FROM webhook_deliveries WHERE state = $1`, tc.state); got != tc.want {
			t.Errorf("%s deliveries left: %d, want %d", tc.state, got, tc.want)
		}
	}
	// Zero keeps everything.
	m.Retention = maintenance.Retention{}
	m.Now = func() time.Time { return now.AddDate(1, 0, 0) }
	if st, err := m.RetentionPass(ctx); err != nil || st.Deliveries != 0 {
		t.Fatalf("retention 0 deleted %d deliveries (%v), want none", st.Deliveries, err)
	}
}
