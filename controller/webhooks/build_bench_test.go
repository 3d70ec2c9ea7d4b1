package webhooks

import (
	"context"
	"slices"
	"syscall"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/changefeed"
	"github.com/scanorama/scanorama/controller/pgtest"
	"github.com/scanorama/scanorama/gen/db"
)

// burstChanges is the size of the bench's webhook burst
// (webhook_burst_50k_vs_bare): 250 hosts, 200 ports each, one job.
const burstChanges = 250 * 200

// seedBurst commits burstChanges changes of one job in one statement, as an
// agent's results arrive, and returns the database and a webhook on the
// site.
func seedBurst(tb testing.TB) (*pgxpool.Pool, db.Webhook) {
	tb.Helper()
	ctx := context.Background()
	pool := pgtest.NewPool(tb)
	if _, err := pool.Exec(ctx, `
		INSERT INTO sites (id, name) VALUES ('00000000-0000-0000-0000-0000000000b5', 'bench');
		INSERT INTO hosts (site_id, ip_address, hostname, status)
		SELECT '00000000-0000-0000-0000-0000000000b5', ('10.99.33.' || g)::inet, 'h' || g || '.bench.example', 'up'
		FROM generate_series(1, 250) g;
		INSERT INTO scan_targets (id, site_id, name, network, profile_id)
		SELECT '00000000-0000-0000-0000-0000000000b7', '00000000-0000-0000-0000-0000000000b5', 'burst', '10.99.33.0/24', id
		FROM scan_profiles ORDER BY name LIMIT 1;
		INSERT INTO scan_jobs (id, target_id, site_id, profile_id, network, options, status)
		SELECT '00000000-0000-0000-0000-0000000000b8', t.id, t.site_id, t.profile_id, t.network, '{}', 'pending'
		FROM scan_targets t;
		INSERT INTO host_history (host_id, site_id, job_id, event, port, protocol, new_value, changed_by)
		SELECT h.id, h.site_id, '00000000-0000-0000-0000-0000000000b8', 'port_opened', 1000 + p, 'tcp', 'open', 'bench'
		FROM hosts h CROSS JOIN generate_series(0, 199) p ORDER BY h.ip_address, p;
		INSERT INTO webhooks (id, name, url, site_id, secret, created_by)
		VALUES ('00000000-0000-0000-0000-0000000000e5', 'bench', 'http://127.0.0.1:9/', '00000000-0000-0000-0000-0000000000b5',
		        'sixteen-chars-secret', 'bench');`); err != nil {
		tb.Fatal(err)
	}
	w, err := db.New(pool).GetWebhook(ctx, uuid.MustParse("00000000-0000-0000-0000-0000000000e5"))
	if err != nil {
		tb.Fatal(err)
	}
	return pool, w
}

// readBurst reads the whole burst from the feed as the dispatcher's reader
// does (pages of readAhead, one buffer reused), calling each for every page.
func readBurst(ctx context.Context, tb testing.TB, pool *pgxpool.Pool, w db.Webhook, buf []changefeed.Row, each func([]changefeed.Row)) []changefeed.Row {
	var after int64
	for n := 0; n < burstChanges; {
		err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) (err error) {
			buf, err = changefeed.ReadPage(ctx, tx, w.SiteID.UUID, after, readAhead, w.TargetID.Valid, buf)
			return err
		})
		if err != nil || len(buf) == 0 {
			tb.Fatalf("read after %d: %d rows, %v", after, len(buf), err)
		}
		each(buf)
		n += len(buf)
		after = buf[len(buf)-1].HostHistory.FeedSeq
	}
	return buf
}

// BenchmarkBuildBurst is the controller's CPU for the build side of the
// bench's 50,000-change burst, apart from PostgreSQL's: "read" is the feed
// read into the reader's recycled page, "encode" turns pages already read
// into delivery bodies (the builder's work but the outbox COPY and the
// signatures). The bench case measures the whole path against a bare loop;
// this one is for comparing changes to these two steps with benchstat.
func BenchmarkBuildBurst(b *testing.B) {
	pgtest.SkipShort(b)
	ctx := context.Background()
	pool, w := seedBurst(b)
	b.Run("read", func(b *testing.B) {
		var buf []changefeed.Row
		b.ReportAllocs()
		cpu := processCPU(b)
		for b.Loop() {
			buf = readBurst(ctx, b, pool, w, buf, func([]changefeed.Row) {})
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*burstChanges), "ns/change")
		// The wall time includes PostgreSQL's; this is the controller's.
		b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N*burstChanges), "cpu-ns/change")
	})
	b.Run("encode", func(b *testing.B) {
		var pages [][]changefeed.Row
		readBurst(ctx, b, pool, w, nil, func(rows []changefeed.Row) { pages = append(pages, slices.Clone(rows)) })
		d := &Dispatcher{}
		var size int
		b.ReportAllocs()
		for b.Loop() {
			size = 0
			var enc encoder
			for _, rows := range pages {
				for _, dr := range encodePage(b, d, w, rows, &enc) {
					size += len(dr.body)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*burstChanges), "ns/change")
		b.ReportMetric(float64(size)/burstChanges, "bytes/change")
	})
}

// encodePage is the builder's work on one page but the database's: the
// webhook's filter, the cut into deliveries and their bodies.
func encodePage(tb testing.TB, d *Dispatcher, w db.Webhook, rows []changefeed.Row, enc *encoder) []draft {
	c := cutter{w: w, enc: enc}
	for i := range rows {
		c.last = rows[i].HostHistory.FeedSeq
		keep, err := d.filter(context.Background(), nil, w, &rows[i])
		if err == nil && keep {
			err = c.add(&rows[i])
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := c.cut(); err != nil {
		tb.Fatal(err)
	}
	return c.batches
}

// processCPU is the CPU time this process has used, in nanoseconds.
func processCPU(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
