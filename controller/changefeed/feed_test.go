package changefeed_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/scanorama/scanorama/controller/changefeed"
)

// Every feed reader pages through feed_page (migration 0022): pages of a
// big commit, for one site and for every site, come out complete and in
// feed_seq order, and the function carries its own enable_sort = off so
// the read walks an index in order whatever the statistics say.
func TestFeedPagesAreCompleteAndOrdered(t *testing.T) {
	t.Parallel()
	f := newFeedFixture(t)
	ctx := context.Background()
	var other, otherHost uuid.UUID
	if err := f.pool.QueryRow(ctx, `INSERT INTO sites (name) VALUES ('other') RETURNING id`).Scan(&other); err != nil {
		t.Fatal(err)
	}
	if err := f.pool.QueryRow(ctx, `INSERT INTO hosts (site_id, ip_address, status) VALUES ($1, '10.99.1.1', 'up') RETURNING id`,
		other).Scan(&otherHost); err != nil {
		t.Fatal(err)
	}
	// One commit of 1,234 changes over both sites, as a burst arrives:
	// events, protocols and values that repeat, values that do not, NULLs.
	if _, err := f.pool.Exec(ctx, `
INSERT INTO host_history (host_id, site_id, event, port, protocol, old_value, new_value, changed_by)
SELECT CASE i % 3 WHEN 0 THEN $1::uuid WHEN 1 THEN $2::uuid ELSE $3::uuid END,
       CASE i % 3 WHEN 2 THEN $5::uuid ELSE $4::uuid END,
       (ARRAY['port_opened', 'port_closed', 'service_changed'])[1 + i % 7 % 3], 1 + i % 60000,
       CASE WHEN i % 11 = 0 THEN NULL WHEN i % 2 = 0 THEN 'tcp' ELSE 'udp' END,
       CASE WHEN i % 5 = 0 THEN 'ssh OpenSSH 9.' || i END, CASE WHEN i % 4 <> 0 THEN 'open' END, 'test'
FROM generate_series(1, 1234) AS i`, f.hostA, f.hostB, otherHost, f.site, other); err != nil {
		t.Fatal(err)
	}
	feed := changefeed.New(f.pool, nil)
	for _, tc := range []struct {
		name string
		site uuid.UUID
	}{{"one site", f.site}, {"every site", uuid.Nil}} {
		var want []int64
		rows, err := f.pool.Query(ctx, `SELECT id FROM host_history WHERE $1::uuid IS NULL OR site_id = $1 ORDER BY feed_seq`,
			uuid.NullUUID{UUID: tc.site, Valid: tc.site != uuid.Nil})
		if err != nil {
			t.Fatal(err)
		}
		if want, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			t.Fatal(err)
		}
		var got []int64
		var after int64
		for {
			page, err := feed.Read(ctx, tc.site, after, 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page {
				if r.HostHistory.FeedSeq <= after {
					t.Fatalf("%s: feed_seq %d after %d: out of order", tc.name, r.HostHistory.FeedSeq, after)
				}
				if tc.site != uuid.Nil && r.HostHistory.SiteID != tc.site || r.SiteName == "" || !r.IpAddress.IsValid() {
					t.Fatalf("%s: row %+v", tc.name, r)
				}
				got, after = append(got, r.HostHistory.ID), r.HostHistory.FeedSeq
			}
			if len(page) < 100 {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: paged %d changes, want %d in feed order", tc.name, len(got), len(want))
		}
	}

	// ReadPage (the join-free read, scanned by hand into a reused buffer)
	// reads what Read reads, page for page, bar the author and reason.
	var buf []changefeed.Row
	for _, site := range []uuid.UUID{f.site, uuid.Nil} {
		for after := int64(0); ; {
			want, err := feed.Read(ctx, site, after, 300)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := f.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
			if err != nil {
				t.Fatal(err)
			}
			got, err := changefeed.ReadPage(ctx, tx, site, after, 300, true, buf)
			_ = tx.Rollback(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				want[i].HostHistory.ChangedBy, want[i].HostHistory.ChangeReason = "", pgtype.Text{}
			}
			if !slices.EqualFunc(got, want, func(a, b changefeed.Row) bool {
				return a.HostHistory == b.HostHistory && a.SiteName == b.SiteName && a.IpAddress == b.IpAddress &&
					a.Hostname == b.Hostname && a.TargetID == b.TargetID
			}) {
				t.Fatalf("site %v after %d: ReadPage read %d rows unlike Read's %d", site, after, len(got), len(want))
			}
			if len(want) < 300 {
				break
			}
			after, buf = want[len(want)-1].HostHistory.FeedSeq, got
		}
	}

	var config []string
	if err := f.pool.QueryRow(ctx, `SELECT proconfig FROM pg_proc WHERE proname = 'feed_page'`).Scan(&config); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(config, "enable_sort=off") {
		t.Fatalf("feed_page settings %v, want enable_sort=off", config)
	}
	// Under that setting both of its queries walk an index in order.
	tx, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SET LOCAL enable_sort = off`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`EXPLAIN SELECT * FROM host_history WHERE feed_seq > 0 ORDER BY feed_seq LIMIT 4000`,
		`EXPLAIN SELECT * FROM host_history WHERE site_id = '` + f.site.String() + `' AND feed_seq > 0 ORDER BY feed_seq LIMIT 4000`,
	} {
		rows, err := tx.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		if strings.Contains(plan, "Sort") || !strings.Contains(plan, "Index Scan using host_history") {
			t.Fatalf("plan of %s:\n%s\nwant an ordered index scan and no sort", q, plan)
		}
	}
}
