package scheduler_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgtest"
	"github.com/scanorama/scanorama/controller/scheduler"
	"github.com/scanorama/scanorama/gen/db"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrate.Template)
	pgtest.Main(m)
}

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// fixture makes a site and one target scanned every interval, first due at t0.
func fixture(t *testing.T, interval time.Duration) (*pgxpool.Pool, db.ScanTarget) {
	t.Helper()
	return fixtureWith(t, func(p *db.CreateTargetParams) {
		p.ScanIntervalSeconds = pgtype.Int4{Int32: int32(interval / time.Second), Valid: true}
	})
}

// fixtureWith makes a site and one target of the "quick" profile for
// 10.99.0.0/24, first due at t0, adjusted by edit.
func fixtureWith(t *testing.T, edit func(*db.CreateTargetParams)) (*pgxpool.Pool, db.ScanTarget) {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	q := db.New(pool)
	site, err := q.CreateSite(ctx, db.CreateSiteParams{Name: "lab", CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := q.GetProfileByName(ctx, "quick")
	if err != nil {
		t.Fatal(err)
	}
	params := db.CreateTargetParams{
		SiteID: site.ID, Name: "net", Network: netip.MustParsePrefix("10.99.0.0/24"), ProfileID: p.ID, Enabled: true,
		NextRunAt: pgtype.Timestamptz{Time: t0, Valid: true}, CreatedBy: "test",
	}
	edit(&params)
	tgt, err := q.CreateTarget(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	return pool, tgt
}

// clock is a controllable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

func newScheduler(pool *pgxpool.Pool, c *clock, jitter time.Duration) *scheduler.Scheduler {
	s := scheduler.New(pool, hclog.NewNullLogger())
	s.Now = c.Now
	s.Jitter = func(limit time.Duration) time.Duration { return min(jitter, limit) }
	return s
}

func count(t *testing.T, pool *pgxpool.Pool, sql string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func nextRun(t *testing.T, pool *pgxpool.Pool) time.Time {
	t.Helper()
	var next time.Time
	if err := pool.QueryRow(context.Background(), "SELECT next_run_at FROM scan_targets").Scan(&next); err != nil {
		t.Fatal(err)
	}
	return next.UTC()
}

func TestIntervalSkipIfRunningAndJitter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := fixture(t, time.Hour)
	c := &clock{now: t0.Add(-time.Minute)}
	s := newScheduler(pool, c, 2*time.Minute)

	steps := []struct {
		name     string
		at       time.Time
		finish   bool // complete every open job first
		want     scheduler.Result
		jobs     int
		next     time.Time
		outcomes string
	}{
		{name: "not due yet", at: t0.Add(-time.Minute), want: scheduler.Result{}, jobs: 0, next: t0},
		{name: "due: first run", at: t0, want: scheduler.Result{Created: 1}, jobs: 1, next: t0.Add(time.Hour + 2*time.Minute)},
		{name: "same instant again: nothing", at: t0.Add(time.Second), want: scheduler.Result{}, jobs: 1, next: t0.Add(time.Hour + 2*time.Minute)},
		{name: "due while the first run is unfinished: skipped", at: t0.Add(time.Hour + 3*time.Minute), want: scheduler.Result{Skipped: 1}, jobs: 1, next: t0.Add(2*time.Hour + 4*time.Minute)},
		{name: "previous run finished: created", at: t0.Add(2*time.Hour + 5*time.Minute), finish: true, want: scheduler.Result{Created: 1}, jobs: 2, next: t0.Add(3*time.Hour + 6*time.Minute)},
		{name: "controller down for a day: one run, not 24", at: t0.Add(27 * time.Hour), finish: true, want: scheduler.Result{Created: 1}, jobs: 3, next: t0.Add(28*time.Hour + 2*time.Minute)},
	}
	for _, st := range steps {
		if st.finish {
			if _, err := pool.Exec(ctx, `UPDATE scan_jobs SET status = 'completed', completed_at = now() WHERE status = 'pending'`); err != nil {
				t.Fatal(err)
			}
		}
		c.set(st.at)
		got, err := s.RunOnce(ctx)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got != st.want {
			t.Errorf("%s: result %+v, want %+v", st.name, got, st.want)
		}
		if n := count(t, pool, "SELECT count(*) FROM scan_jobs"); n != st.jobs {
			t.Errorf("%s: %d jobs, want %d", st.name, n, st.jobs)
		}
		if next := nextRun(t, pool); !next.Equal(st.next) {
			t.Errorf("%s: next run %s, want %s", st.name, next, st.next)
		}
	}
	if n := count(t, pool, "SELECT count(*) FROM scan_runs WHERE outcome = 'skipped'"); n != 1 {
		t.Errorf("skipped runs recorded = %d, want 1", n)
	}
}

func TestJitterBounds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		interval, want time.Duration
	}{
		{time.Minute, 6 * time.Second},
		{time.Hour, 5 * time.Minute},
		{24 * time.Hour, 5 * time.Minute},
	}
	for _, tc := range cases {
		if got := scheduler.MaxJitter(tc.interval); got != tc.want {
			t.Errorf("MaxJitter(%s) = %s, want %s", tc.interval, got, tc.want)
		}
	}
	s := scheduler.New(nil, hclog.NewNullLogger())
	for range 1000 {
		if j := s.Jitter(time.Minute); j < 0 || j >= time.Minute {
			t.Fatalf("jitter %s outside [0, 1m)", j)
		}
	}
}

func TestTwoControllersNeverCreateTheSameRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := fixture(t, time.Hour)
	c := &clock{now: t0}
	var wg sync.WaitGroup
	results := make([]scheduler.Result, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := newScheduler(pool, c, 0).RunOnce(ctx)
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		}()
	}
	wg.Wait()
	created := 0
	for _, r := range results {
		created += r.Created
	}
	if created != 1 || count(t, pool, "SELECT count(*) FROM scan_jobs") != 1 || count(t, pool, "SELECT count(*) FROM scan_runs") != 1 {
		t.Fatalf("eight concurrent schedulers created %d runs (%d jobs); want exactly one", created, count(t, pool, "SELECT count(*) FROM scan_jobs"))
	}
}
