package maintenance_test

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/controller/changefeed"
	"github.com/scanorama/scanorama/controller/maintenance"
	"github.com/scanorama/scanorama/controller/pgtest"
)

// History retention prunes the change feed from its oldest end in bounded
// steps and records how far: every change older than the cutoff goes
// unless a younger one precedes it in feed order (it waits for that one to
// age), no younger change goes, and a cursor older than the pruned point is
// out of range while the cursor of the last pruned change resumes cleanly.
func TestRetentionPrunesChangeFeed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	now := time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)
	// 200 hosts x 10 changes an hour apart, committed in time order, from
	// 2026-08-01 on; then one change of 2026-11-14 committed before two
	// more old ones (a long transaction's rows: feed order is commit order).
	if _, err := pool.Exec(ctx, `
		INSERT INTO sites (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'a');
		INSERT INTO hosts (site_id, ip_address, first_seen, last_seen)
		  SELECT '00000000-0000-0000-0000-00000000000a', set_masklen('10.99.0.0'::inet + g, 32), '2026-08-01', '2026-08-01'
		  FROM generate_series(1, 200) g;
		INSERT INTO host_history (host_id, site_id, event, changed_at, changed_by)
		  SELECT h.id, h.site_id, 'host_up', timestamptz '2026-08-01' + (g * 200 + r) * interval '1 minute', 'test'
		  FROM (SELECT id, site_id, row_number() OVER (ORDER BY ip_address) r FROM hosts) h
		  CROSS JOIN generate_series(0, 9) g
		  ORDER BY 4;
		INSERT INTO host_history (host_id, site_id, event, changed_at, changed_by)
		  SELECT id, site_id, 'host_down', '2026-11-14', 'test' FROM hosts ORDER BY ip_address LIMIT 1;
		INSERT INTO host_history (host_id, site_id, event, changed_at, changed_by)
		  SELECT id, site_id, 'host_up', '2026-08-02', 'test' FROM hosts ORDER BY ip_address LIMIT 2;`); err != nil {
		t.Fatal(err)
	}
	total := scalar(t, pool, `SELECT count(*) FROM host_history`)
	cutoff := now.Add(-90 * 24 * time.Hour) // 2026-08-17: every change of the first batch is older
	old := scalar(t, pool, `SELECT count(*) FROM host_history WHERE changed_at < $1 AND feed_seq < (SELECT feed_seq FROM host_history WHERE changed_at = '2026-11-14')`, cutoff)
	if old != 2000 {
		t.Fatalf("fixture: %d old changes before the young one, want 2000", old)
	}
	feed := changefeed.New(pool, nil)
	firstSeq := scalar(t, pool, `SELECT min(feed_seq) FROM host_history`)

	m := maintenance.New(pool, hclog.NewNullLogger())
	m.Now = func() time.Time { return now }
	m.Batch = 300
	// Retention off (the flag's 0): nothing is pruned.
	if st, err := m.RetentionPass(ctx); err != nil || st.History != 0 {
		t.Fatalf("pass without history retention: %+v, %v; want nothing pruned", st, err)
	}
	m.Retention = maintenance.Retention{History: 90 * 24 * time.Hour}
	st, err := m.RetentionPass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.History != 2000 {
		t.Fatalf("pruned %d changes, want the 2000 old ones before the young change", st.History)
	}
	for _, c := range []struct {
		sql  string
		want int
	}{
		{`SELECT count(*) FROM host_history`, total - 2000},
		// The young change and the two old ones committed after it stay.
		{`SELECT count(*) FROM host_history WHERE changed_at < '2026-08-17'`, 2},
		{`SELECT count(*) FROM host_history WHERE changed_at = '2026-11-14'`, 1},
		// What went is exactly a prefix of the feed, and change_feed says where it ends.
		{`SELECT count(*) FROM host_history WHERE feed_seq <= (SELECT pruned_through FROM change_feed)`, 0},
		{`SELECT (SELECT min(feed_seq) FROM host_history) - (SELECT pruned_through FROM change_feed)`, 1},
	} {
		if n := scalar(t, pool, c.sql); n != c.want {
			t.Errorf("%s = %d, want %d", c.sql, n, c.want)
		}
	}
	pruned := int64(scalar(t, pool, `SELECT pruned_through FROM change_feed`))
	if _, err := feed.Start(ctx, int64(firstSeq), true, false); err == nil {
		t.Fatalf("cursor at change %d, before the pruned point %d: no error", firstSeq, pruned)
	} else if e, ok := changefeed.IsOutOfRange(err); !ok || e.PrunedThrough != pruned {
		t.Fatalf("cursor before the pruned point: %v; want OutOfRange naming %d", err, pruned)
	}
	if seq, err := feed.Start(ctx, pruned, true, false); err != nil || seq != pruned {
		t.Fatalf("cursor of the last pruned change: %d, %v; want to resume after %d", seq, err, pruned)
	}
	if seq, err := feed.Start(ctx, 0, false, false); err != nil || seq != pruned {
		t.Fatalf("empty cursor: starts after %d, %v; want after %d", seq, err, pruned)
	}

	// Once the young change has aged out too, the rest of the old ones go.
	m.Now = func() time.Time { return time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC) }
	if st, err := m.RetentionPass(ctx); err != nil || st.History != int64(total-2000) {
		t.Fatalf("later pass: %+v, %v; want the %d changes left pruned", st, err, total-2000)
	}
	if again, err := m.RetentionPass(ctx); err != nil || again.History != 0 {
		t.Fatalf("pass with nothing left: %+v, %v", again, err)
	}
}
