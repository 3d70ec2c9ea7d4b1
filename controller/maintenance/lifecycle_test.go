package maintenance_test

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/maintenance"
	"github.com/scanorama/scanorama/controller/pgtest"
)

// world: two sites; site "a" has targets a1 and a2, site "b" has b1. Every
// target has a run and finished jobs whose results sit in a live month
// (2026-11) and in a month archived into the archive schema (2026-06);
// hosts, services, host_history and leases to match.
const world = `
SELECT ensure_port_scan_partitions('2026-06-01', 6);
INSERT INTO sites (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'a'), ('00000000-0000-0000-0000-00000000000b', 'b');
INSERT INTO scan_targets (id, site_id, name, network, profile_id)
  SELECT t.id::uuid, t.site::uuid, t.name, t.net::cidr, p.id
  FROM (VALUES ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-00000000000a', 'a1', '10.99.1.0/24'),
               ('00000000-0000-0000-0000-0000000000a2', '00000000-0000-0000-0000-00000000000a', 'a2', '10.99.2.0/24'),
               ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-00000000000b', 'b1', '10.99.3.0/24')) t(id, site, name, net)
  CROSS JOIN (SELECT id FROM scan_profiles WHERE name = 'quick') p;
INSERT INTO scan_runs (target_id, scheduled_for, outcome, created_by)
  SELECT id, '2026-11-01', 'created', 'test' FROM scan_targets;
INSERT INTO scan_jobs (target_id, site_id, profile_id, network, options, status, started_at, completed_at, run_id, worker_id, lease_token)
  SELECT t.id, t.site_id, t.profile_id, t.network, '{}', 'completed', ts, ts, r.id, 'w', 1
  FROM scan_targets t JOIN scan_runs r ON r.target_id = t.id
  CROSS JOIN generate_series(1, 4) g CROSS JOIN LATERAL (SELECT CASE WHEN g % 2 = 0 THEN timestamptz '2026-06-10' ELSE timestamptz '2026-11-10' END AS ts) x;
INSERT INTO scan_job_leases (job_id, lease_token, worker_id, ended_at, outcome) SELECT id, 1, 'w', completed_at, 'completed' FROM scan_jobs;
INSERT INTO hosts (site_id, ip_address)
  SELECT t.site_id, set_masklen((host(network)::inet + g), 32) FROM scan_targets t CROSS JOIN generate_series(1, 5) g;
INSERT INTO port_scans (job_id, host_id, port, protocol, state, scanned_at)
  SELECT j.id, h.id, p, 'tcp', 'open', j.completed_at
  FROM scan_jobs j JOIN hosts h ON h.site_id = j.site_id AND h.ip_address <<= j.network CROSS JOIN generate_series(20, 25) p;
INSERT INTO services (host_id, port, protocol, state) SELECT DISTINCT host_id, port, protocol, 'open' FROM port_scans;
INSERT INTO host_history (host_id, site_id, job_id, event, changed_at, changed_by)
  SELECT h.id, h.site_id, j.id, 'host_up', j.completed_at, 'test'
  FROM scan_jobs j JOIN hosts h ON h.site_id = j.site_id AND h.ip_address <<= j.network;
SELECT archive_port_scans_before('2026-07-01');
`

func scalar(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// rowsOf counts every row that belongs to a target (by its id).
const rowsOfTarget = `SELECT (SELECT count(*) FROM scan_jobs WHERE target_id = $1)
	+ (SELECT count(*) FROM port_scans WHERE job_id IN (SELECT id FROM scan_jobs WHERE target_id = $1))
	+ (SELECT count(*) FROM archive.port_scans_2026_06 WHERE job_id IN (SELECT id FROM scan_jobs WHERE target_id = $1))
	+ (SELECT count(*) FROM host_history WHERE job_id IN (SELECT id FROM scan_jobs WHERE target_id = $1))
	+ (SELECT count(*) FROM scan_runs WHERE target_id = $1)
	+ (SELECT count(*) FROM scan_targets WHERE id = $1)`

const (
	a1 = "00000000-0000-0000-0000-0000000000a1"
	a2 = "00000000-0000-0000-0000-0000000000a2"
	b1 = "00000000-0000-0000-0000-0000000000b1"
)

// The purge queue empties in small steps: a purged target loses its jobs,
// runs, live and archived port_scans rows and history, and nothing of any
// other target; a purged site loses everything it had; the other site
// keeps every row.
func TestPurgeRemovesEverythingOfTheObjectAndNothingElse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	if _, err := pool.Exec(ctx, world); err != nil {
		t.Fatal(err)
	}
	before := map[string]int{a1: scalar(t, pool, rowsOfTarget, a1), a2: scalar(t, pool, rowsOfTarget, a2), b1: scalar(t, pool, rowsOfTarget, b1)}
	if before[a1] < 100 || scalar(t, pool, `SELECT count(*) FROM archive.port_scans_2026_06`) == 0 {
		t.Fatalf("fixture too small: %v", before)
	}
	siteB := `SELECT (SELECT count(*) FROM hosts WHERE site_id = '00000000-0000-0000-0000-00000000000b')
		+ (SELECT count(*) FROM services s JOIN hosts h ON h.id = s.host_id WHERE h.site_id = '00000000-0000-0000-0000-00000000000b')
		+ (SELECT count(*) FROM host_history WHERE site_id = '00000000-0000-0000-0000-00000000000b')`
	siteBBefore := scalar(t, pool, siteB)

	m := maintenance.New(pool, hclog.NewNullLogger())
	m.Batch = 7
	if _, err := pool.Exec(ctx, `UPDATE scan_targets SET purge_requested_at = now() WHERE id = $1`, a1); err != nil {
		t.Fatal(err)
	}
	st, err := m.Purge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Targets != 1 || st.Steps < before[a1]/7 {
		t.Fatalf("purge of a1: %+v; want one target in at least %d bounded steps", st, before[a1]/7)
	}
	if n := scalar(t, pool, rowsOfTarget, a1); n != 0 {
		t.Fatalf("%d rows of a1 left after its purge", n)
	}
	for _, id := range []string{a2, b1} {
		if n := scalar(t, pool, rowsOfTarget, id); n != before[id] {
			t.Fatalf("target %s has %d rows after a1's purge, had %d", id, n, before[id])
		}
	}
	if n := scalar(t, pool, `SELECT count(*) FROM hosts WHERE site_id = '00000000-0000-0000-0000-00000000000a'`); n != 10 {
		t.Fatalf("site a has %d hosts after a target purge; hosts belong to the site and stay (want 10)", n)
	}

	if _, err := pool.Exec(ctx, `UPDATE sites SET purge_requested_at = now() WHERE name = 'a'`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO agents (site_id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'agent-a')`); err != nil {
		t.Fatal(err)
	}
	st, err = m.Purge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Targets != 1 || st.Sites != 1 {
		t.Fatalf("purge of site a: %+v; want its remaining target and the site", st)
	}
	for _, q := range []string{
		`SELECT count(*) FROM sites WHERE id = '00000000-0000-0000-0000-00000000000a'`,
		`SELECT count(*) FROM scan_targets WHERE site_id = '00000000-0000-0000-0000-00000000000a'`,
		`SELECT count(*) FROM hosts WHERE site_id = '00000000-0000-0000-0000-00000000000a'`,
		`SELECT count(*) FROM host_history WHERE site_id = '00000000-0000-0000-0000-00000000000a'`,
		`SELECT count(*) FROM agents WHERE site_id = '00000000-0000-0000-0000-00000000000a'`,
		`SELECT count(*) FROM scan_jobs WHERE site_id = '00000000-0000-0000-0000-00000000000a'`,
	} {
		if n := scalar(t, pool, q); n != 0 {
			t.Errorf("%s = %d after the site purge", q, n)
		}
	}
	if n := scalar(t, pool, rowsOfTarget, b1); n != before[b1] {
		t.Fatalf("target b1 has %d rows after site a's purge, had %d", n, before[b1])
	}
	if n := scalar(t, pool, siteB); n != siteBBefore {
		t.Fatalf("site b has %d host rows after site a's purge, had %d", n, siteBBefore)
	}
	if st, err := m.Purge(ctx); err != nil || st.Steps != 0 {
		t.Fatalf("purge with an empty queue: %+v, %v", st, err)
	}
}

// One retention pass on generated data: archived months past
// --archive-retention are dropped, finished jobs past --job-retention go
// (with their leases) unless port_scans rows still refer to them, runs
// without jobs go, host_history past --history-retention goes; hosts and
// services are untouched and recent rows stay.
func TestRetentionPass(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	if _, err := pool.Exec(ctx, world); err != nil {
		t.Fatal(err)
	}
	// Generated history: 3 targets x 20 old jobs without results (failed
	// discovery-like jobs), and old and recent host_history rows.
	if _, err := pool.Exec(ctx, `
		INSERT INTO scan_runs (target_id, scheduled_for, outcome, created_by, created_at)
		  SELECT id, '2025-01-01', 'skipped', 'test', '2025-01-01' FROM scan_targets;
		INSERT INTO scan_jobs (target_id, site_id, profile_id, network, options, status, started_at, completed_at, worker_id, lease_token, created_at)
		  SELECT t.id, t.site_id, t.profile_id, t.network, '{}', 'failed', ts, ts, 'w', 1, ts
		  FROM scan_targets t CROSS JOIN generate_series(1, 20) g
		  CROSS JOIN LATERAL (SELECT timestamptz '2025-01-01' + g * interval '1 day' AS ts) x;
		INSERT INTO scan_jobs (target_id, site_id, profile_id, network, options, status, started_at, completed_at, worker_id, lease_token)
		  SELECT t.id, t.site_id, t.profile_id, t.network, '{}', 'failed', '2026-11-12', '2026-11-12', 'w', 1 FROM scan_targets t;
		INSERT INTO scan_job_leases (job_id, lease_token, worker_id, ended_at, outcome)
		  SELECT id, 1, 'w', completed_at, 'failed' FROM scan_jobs WHERE status = 'failed';
		INSERT INTO host_history (host_id, site_id, event, changed_at, changed_by)
		  SELECT h.id, h.site_id, 'host_down', timestamptz '2025-06-01' + g * interval '1 hour', 'test'
		  FROM hosts h CROSS JOIN generate_series(1, 30) g;
		-- Rows inserted here are numbered in insert order; committed ones
		-- follow time (feed_seq is drawn at commit), which retention, a
		-- prune of the feed's oldest end, relies on. Number them so.
		UPDATE host_history h SET feed_seq = o.seq
		FROM (SELECT id, nextval('host_history_feed_seq') AS seq FROM (SELECT id FROM host_history ORDER BY changed_at, id) s) o
		WHERE o.id = h.id;`); err != nil {
		t.Fatal(err)
	}
	hostsBefore := scalar(t, pool, `SELECT count(*) FROM hosts`)
	servicesBefore := scalar(t, pool, `SELECT count(*) FROM services`)
	recentHistory := scalar(t, pool, `SELECT count(*) FROM host_history WHERE changed_at >= '2026-08-17'`)
	liveRows := scalar(t, pool, `SELECT count(*) FROM port_scans`)

	m := maintenance.New(pool, hclog.NewNullLogger())
	m.Now = func() time.Time { return time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC) }
	m.Batch = 8
	m.Retention = maintenance.Retention{History: 90 * 24 * time.Hour, Jobs: 60 * 24 * time.Hour, Archive: 120 * 24 * time.Hour}

	// First with archives kept: the June jobs still have archived rows.
	keepArchive := m.Retention
	keepArchive.Archive = 0
	m.Retention = keepArchive
	st, err := m.RetentionPass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Jobs != 60 || len(st.DroppedArchives) != 0 {
		t.Fatalf("pass keeping archives: %+v; want the 60 old result-less jobs deleted and no archive dropped", st)
	}
	if n := scalar(t, pool, `SELECT count(*) FROM scan_jobs WHERE completed_at = '2026-06-10'`); n != 6 {
		t.Fatalf("%d June jobs left; their archived port_scans rows must keep them (want 6)", n)
	}

	m.Retention.Archive = 120 * 24 * time.Hour
	st, err = m.RetentionPass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.DroppedArchives) != 1 || st.DroppedArchives[0] != "archive.port_scans_2026_06" || st.Jobs != 6 {
		t.Fatalf("pass with archive retention: %+v; want archive.port_scans_2026_06 dropped and then its 6 jobs", st)
	}
	if n := scalar(t, pool, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'archive'`); n != 0 {
		t.Fatalf("%d relations left in the archive schema", n)
	}
	for _, c := range []struct {
		sql  string
		want int
	}{
		{`SELECT count(*) FROM scan_jobs WHERE completed_at < '2026-09-16'`, 0},
		{`SELECT count(*) FROM scan_jobs`, 9}, // November: 2 per target with rows, 1 without
		{`SELECT count(*) FROM scan_job_leases WHERE job_id NOT IN (SELECT id FROM scan_jobs)`, 0},
		{`SELECT count(*) FROM scan_job_leases`, 9},
		{`SELECT count(*) FROM scan_runs`, 3}, // the old skipped runs went; the November ones have jobs
		{`SELECT count(*) FROM host_history WHERE changed_at < '2026-08-17'`, 0},
		{`SELECT count(*) FROM host_history`, recentHistory},
		{`SELECT count(*) FROM port_scans`, liveRows},
		{`SELECT count(*) FROM hosts`, hostsBefore},
		{`SELECT count(*) FROM services`, servicesBefore},
	} {
		if n := scalar(t, pool, c.sql); n != c.want {
			t.Errorf("%s = %d, want %d", c.sql, n, c.want)
		}
	}
	again, err := m.RetentionPass(ctx)
	if err != nil || again.Jobs+again.Runs+again.History != 0 || len(again.DroppedArchives) != 0 {
		t.Fatalf("second pass: %+v, %v; want nothing left to do", again, err)
	}
}
