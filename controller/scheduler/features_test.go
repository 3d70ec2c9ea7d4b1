package scheduler_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/agent/scanspec"
	"github.com/scanorama/scanorama/controller/calendar"
	"github.com/scanorama/scanorama/controller/leasing"
	"github.com/scanorama/scanorama/controller/scheduler"
	"github.com/scanorama/scanorama/gen/db"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := calendar.LoadZone(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func cronTarget(expr, zone string) func(*db.CreateTargetParams) {
	return func(p *db.CreateTargetParams) {
		p.CronExpr = pgtype.Text{String: expr, Valid: true}
		p.TimeZone = zone
	}
}

type step struct {
	name   string
	at     time.Time
	finish bool // complete every open job first
	want   scheduler.Result
	jobs   int
	next   time.Time
}

func runSteps(t *testing.T, pool *pgxpool.Pool, c *clock, s *scheduler.Scheduler, steps []step) {
	t.Helper()
	ctx := context.Background()
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
}

func TestCronFiresAtItsTimesWithBoundedJitter(t *testing.T) {
	t.Parallel()
	berlin := mustZone(t, "Europe/Berlin")
	local := func(y int, m time.Month, d, h, mi int) time.Time {
		return time.Date(y, m, d, h, mi, 0, 0, berlin).UTC()
	}
	// Weekdays at 09:00 in Berlin; t0 is Sunday 2026-11-29, so the first run is Monday.
	plan := scheduler.Plan{Loc: berlin}
	c0, err := calendar.ParseCron("0 9 * * mon-fri")
	if err != nil {
		t.Fatal(err)
	}
	plan.Cron = c0
	first := plan.First(t0)
	if want := local(2026, 11, 30, 9, 0); !first.Equal(want) {
		t.Fatalf("first run %s, want %s", first, want)
	}
	pool, _ := fixtureWith(t, func(p *db.CreateTargetParams) {
		cronTarget("0 9 * * mon-fri", "Europe/Berlin")(p)
		p.NextRunAt = pgtype.Timestamptz{Time: first, Valid: true}
	})
	c := &clock{}
	s := newScheduler(pool, c, 2*time.Minute) // under the 5 minute cap for daily runs
	runSteps(t, pool, c, s, []step{
		{name: "Sunday: nothing", at: t0, jobs: 0, next: local(2026, 11, 30, 9, 0)},
		{name: "a minute early", at: local(2026, 11, 30, 8, 59), jobs: 0, next: local(2026, 11, 30, 9, 0)},
		{name: "Monday 09:00", at: local(2026, 11, 30, 9, 0), want: scheduler.Result{Created: 1}, jobs: 1, next: local(2026, 12, 1, 9, 2)},
		{name: "Tuesday, jittered", at: local(2026, 12, 1, 9, 2), finish: true, want: scheduler.Result{Created: 1}, jobs: 2, next: local(2026, 12, 2, 9, 2)},
		{name: "down from Wednesday to Saturday: one run, next on Monday", at: local(2026, 12, 5, 12, 0), finish: true,
			want: scheduler.Result{Created: 1}, jobs: 3, next: local(2026, 12, 7, 9, 2)},
	})

	// Jitter never reaches the next cron time: a tenth of the gap, at most 5 minutes.
	cases := []struct {
		expr string
		at   time.Time
		want time.Duration
	}{
		{"*/10 * * * *", time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC), time.Minute},
		{"* * * * *", time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC), 6 * time.Second},
		{"0,1 * * * *", time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC), 6 * time.Second},
		{"0,1 * * * *", time.Date(2026, 11, 29, 12, 1, 0, 0, time.UTC), 5 * time.Minute},
		{"0 * * * *", time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC), 5 * time.Minute},
	}
	for _, tc := range cases {
		cr, err := calendar.ParseCron(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := (scheduler.Plan{Cron: cr, Loc: time.UTC}).MaxJitter(tc.at); got != tc.want {
			t.Errorf("MaxJitter(%q at %s) = %s, want %s", tc.expr, tc.at, got, tc.want)
		}
	}
	// With a huge jitter the scheduler still keeps to the cap.
	pool2, _ := fixtureWith(t, cronTarget("*/10 * * * *", "UTC"))
	c2 := &clock{}
	runSteps(t, pool2, c2, newScheduler(pool2, c2, time.Hour), []step{
		{name: "every 10 minutes, jitter capped at 1m", at: t0, want: scheduler.Result{Created: 1}, jobs: 1, next: t0.Add(11 * time.Minute)},
	})
	// And the real, random jitter stays inside [0, cap).
	s3 := scheduler.New(nil, hclog.NewNullLogger())
	for range 1000 {
		if j := s3.Jitter(time.Minute); j < 0 || j >= time.Minute {
			t.Fatalf("jitter %s outside [0, 1m)", j)
		}
	}
}

func TestCronAcrossDaylightSavingTime(t *testing.T) {
	t.Parallel()
	// 02:30 Berlin does not exist on 2026-03-29: that run happens at 03:00 CEST (01:00 UTC).
	start := time.Date(2026, 3, 28, 1, 30, 0, 0, time.UTC) // 02:30 CET
	pool, _ := fixtureWith(t, func(p *db.CreateTargetParams) {
		cronTarget("30 2 * * *", "Europe/Berlin")(p)
		p.NextRunAt = pgtype.Timestamptz{Time: start, Valid: true}
	})
	c := &clock{}
	runSteps(t, pool, c, newScheduler(pool, c, 0), []step{
		{name: "02:30 CET", at: start, want: scheduler.Result{Created: 1}, jobs: 1, next: time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)},
		{name: "gap: 03:00 CEST", at: time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), finish: true, want: scheduler.Result{Created: 1}, jobs: 2,
			next: time.Date(2026, 3, 30, 0, 30, 0, 0, time.UTC)},
		{name: "02:30 CEST", at: time.Date(2026, 3, 30, 0, 30, 0, 0, time.UTC), finish: true, want: scheduler.Result{Created: 1}, jobs: 3,
			next: time.Date(2026, 3, 31, 0, 30, 0, 0, time.UTC)},
	})
}

// nopWaker lets leasing run without the notification hub, and without
// publishing job events.
type nopWaker struct{}

func (nopWaker) Publish(string) {}

func (nopWaker) SubscribeJobs(string) (<-chan struct{}, func()) {
	return make(chan struct{}), func() {}
}
func (nopWaker) WakeSite(string) {}
func (nopWaker) WakeOne(string)  {}

// lease takes a pending job as a real agent would and heartbeats it to running.
func lease(t *testing.T, pool *pgxpool.Pool, siteID netip.Prefix) (*leasing.Leaser, leasing.LeaseRef) {
	t.Helper()
	ctx := context.Background()
	q := db.New(pool)
	var site db.Site
	var err error
	if site, err = q.GetSiteByName(ctx, "lab"); err != nil {
		t.Fatal(err)
	}
	agent, err := q.UpsertAgent(ctx, db.UpsertAgentParams{SiteID: site.ID, Name: "a1", Scope: []netip.Prefix{siteID}, NmapVersion: "7.93"})
	if err != nil {
		t.Fatal(err)
	}
	l := leasing.New(pool, nopWaker{}, nopWaker{}, leasing.DefaultConfig(), hclog.NewNullLogger())
	job, err := l.Acquire(ctx, agent, time.Second)
	if err != nil || job == nil {
		t.Fatalf("acquire: %v %v", job, err)
	}
	ref := leasing.LeaseRef{JobID: job.ID, WorkerID: job.WorkerID.String, Token: job.LeaseToken}
	if hb, err := l.Heartbeat(ctx, ref, 10); err != nil || hb.State != leasing.LeaseActive {
		t.Fatalf("heartbeat: %+v %v", hb, err)
	}
	return l, ref
}

func jobState(t *testing.T, pool *pgxpool.Pool, id any) (status, msg string) {
	t.Helper()
	var m *string
	if err := pool.QueryRow(context.Background(), "SELECT status, error_message FROM scan_jobs WHERE id = $1", id).Scan(&status, &m); err != nil {
		t.Fatal(err)
	}
	if m != nil {
		msg = *m
	}
	return status, msg
}

func TestWindowWaitsForOpeningAndCancelsAtClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	berlin := mustZone(t, "Europe/Berlin")
	local := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, berlin).UTC() }
	// Hourly, Mon-Fri 22:00-06:00 Berlin. t0 is Sunday 13:00 Berlin.
	pool, _ := fixtureWith(t, func(p *db.CreateTargetParams) {
		p.ScanIntervalSeconds = pgtype.Int4{Int32: 3600, Valid: true}
		p.TimeZone = "Europe/Berlin"
		p.WindowDays = pgtype.Int2{Int16: 0b0111110, Valid: true}
		p.WindowStartMinute = pgtype.Int2{Int16: 22 * 60, Valid: true}
		p.WindowEndMinute = pgtype.Int2{Int16: 6 * 60, Valid: true}
	})
	listen, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listen.Release()
	if _, err := listen.Exec(ctx, "LISTEN scanorama_events"); err != nil {
		t.Fatal(err)
	}
	c := &clock{}
	s := newScheduler(pool, c, 0)
	runSteps(t, pool, c, s, []step{
		{name: "Sunday afternoon: waits for Monday night", at: t0, want: scheduler.Result{Deferred: 1}, jobs: 0, next: local(30, 22)},
		{name: "still closed", at: local(30, 21), jobs: 0, next: local(30, 22)},
		{name: "Monday 22:00: runs", at: local(30, 22), want: scheduler.Result{Created: 1}, jobs: 1, next: local(30, 23)},
	})
	if n := count(t, pool, "SELECT count(*) FROM scan_runs"); n != 1 {
		t.Errorf("%d runs recorded; the wait is not a run", n)
	}
	l, ref := lease(t, pool, netip.MustParsePrefix("10.99.0.0/16"))
	runSteps(t, pool, c, s, []step{
		{name: "23:00 while running: skipped", at: local(30, 23), want: scheduler.Result{Skipped: 1}, jobs: 1, next: time.Date(2026, 12, 1, 0, 0, 0, 0, berlin).UTC()},
		{name: "Tuesday 06:00: cancelled, next run waits for Tuesday night", at: time.Date(2026, 12, 1, 6, 0, 0, 0, berlin).UTC(),
			want: scheduler.Result{Cancelled: 1, Deferred: 1}, jobs: 1, next: time.Date(2026, 12, 1, 22, 0, 0, 0, berlin).UTC()},
	})
	status, msg := jobState(t, pool, ref.JobID)
	if status != "cancelled" || !strings.Contains(msg, "scan window closed at 2026-12-01T06:00:00+01:00 (Europe/Berlin)") {
		t.Fatalf("job %s: %q", status, msg)
	}
	var outcome string
	if err := pool.QueryRow(ctx, "SELECT outcome FROM scan_job_leases WHERE job_id = $1 AND ended_at IS NOT NULL", ref.JobID).Scan(&outcome); err != nil || outcome != "cancelled" {
		t.Fatalf("lease outcome %q, %v", outcome, err)
	}
	if hb, err := l.Heartbeat(ctx, ref, 50); err != nil || hb.State != leasing.LeaseCancelled {
		t.Fatalf("the agent's next heartbeat: %+v %v; want cancelled", hb, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		n, err := listen.Conn().WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("no cancelled event: %v", err)
		}
		var ev struct{ JobID, Status string }
		_ = json.Unmarshal([]byte(strings.ReplaceAll(n.Payload, "job_id", "JobID")), &ev)
		if ev.JobID == ref.JobID.String() && ev.Status == "cancelled" {
			break
		}
	}
	// A second pass cancels nothing more.
	if got, err := s.RunOnce(ctx); err != nil || got.Cancelled != 0 {
		t.Fatalf("second pass: %+v %v", got, err)
	}
}

func TestMaxDurationCancelsUnfinishedJobs(t *testing.T) {
	t.Parallel()
	pool, _ := fixtureWith(t, func(p *db.CreateTargetParams) {
		p.ScanIntervalSeconds = pgtype.Int4{Int32: 3600, Valid: true}
		p.Network = netip.MustParsePrefix("10.99.0.0/23") // two jobs
		p.MaxDurationSeconds = pgtype.Int4{Int32: 1800, Valid: true}
	})
	ctx := context.Background()
	c := &clock{}
	s := newScheduler(pool, c, 0)
	runSteps(t, pool, c, s, []step{
		{name: "run", at: t0, want: scheduler.Result{Created: 1}, jobs: 2, next: t0.Add(time.Hour)},
	})
	_, ref := lease(t, pool, netip.MustParsePrefix("10.99.0.0/16"))
	// The other job finishes in time.
	if _, err := pool.Exec(ctx, `UPDATE scan_jobs SET status = 'completed', completed_at = now() WHERE status = 'pending'`); err != nil {
		t.Fatal(err)
	}
	runSteps(t, pool, c, s, []step{
		{name: "29 minutes: nothing", at: t0.Add(29 * time.Minute), jobs: 2, next: t0.Add(time.Hour)},
		{name: "30 minutes: the running job is cancelled", at: t0.Add(30 * time.Minute), want: scheduler.Result{Cancelled: 1}, jobs: 2, next: t0.Add(time.Hour)},
	})
	status, msg := jobState(t, pool, ref.JobID)
	if status != "cancelled" || !strings.Contains(msg, "run exceeded max_duration 30m0s") {
		t.Fatalf("job %s: %q", status, msg)
	}
	if n := count(t, pool, "SELECT count(*) FROM scan_jobs WHERE status = 'completed'"); n != 1 {
		t.Fatalf("the finished job changed: %d completed", n)
	}
}

// completeDiscovery finishes every pending job as an agent's commit would:
// the hosts given are up, everything else in the site is down.
func completeDiscovery(t *testing.T, pool *pgxpool.Pool, up ...string) {
	t.Helper()
	ctx := context.Background()
	for _, a := range up {
		if _, err := pool.Exec(ctx, `INSERT INTO hosts (site_id, ip_address, status) SELECT id, $1, 'up' FROM sites WHERE name = 'lab'
			ON CONFLICT (site_id, ip_address) DO UPDATE SET status = 'up'`, a); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE scan_jobs SET status = 'completed', completed_at = now() WHERE status = 'pending'`); err != nil {
		t.Fatal(err)
	}
}

type jobRow struct {
	network    netip.Prefix
	exclusions []netip.Prefix
	profile    string
	phase      string
}

func runJobs(t *testing.T, pool *pgxpool.Pool, phase string) []jobRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT j.network, j.exclusions, p.name, j.execution_context->>'phase'
		FROM scan_jobs j JOIN scan_profiles p ON p.id = j.profile_id
		WHERE j.execution_context->>'phase' = $1 ORDER BY j.network`, phase)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []jobRow
	for rows.Next() {
		var r jobRow
		if err := rows.Scan(&r.network, &r.exclusions, &r.profile, &r.phase); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func runPhase(t *testing.T, pool *pgxpool.Pool) (phase, reason string) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), "SELECT phase, reason FROM scan_runs WHERE outcome = 'created' ORDER BY created_at DESC LIMIT 1").Scan(&phase, &reason); err != nil {
		t.Fatal(err)
	}
	return phase, reason
}

func TestDiscoveryFirstPortScansOnlyHostsUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := fixtureWith(t, func(p *db.CreateTargetParams) {
		p.ScanIntervalSeconds = pgtype.Int4{Int32: 3600, Valid: true}
		p.Network = netip.MustParsePrefix("10.99.0.0/23")
		p.DiscoveryFirst = true
	})
	// Known hosts before the run: one ignored, one in another network.
	if _, err := pool.Exec(ctx, `INSERT INTO hosts (site_id, ip_address, status, ignore_scanning)
		SELECT id, inet '10.99.1.5', 'up', true FROM sites WHERE name = 'lab'
		UNION ALL SELECT id, inet '198.18.0.1', 'up', false FROM sites WHERE name = 'lab'`); err != nil {
		t.Fatal(err)
	}
	c := &clock{}
	s := newScheduler(pool, c, 0)
	runSteps(t, pool, c, s, []step{
		{name: "run starts with discovery", at: t0, want: scheduler.Result{Created: 1}, jobs: 2, next: t0.Add(time.Hour)},
		{name: "discovery pending: nothing", at: t0.Add(time.Minute), jobs: 2, next: t0.Add(time.Hour)},
	})
	disc := runJobs(t, pool, "discovery")
	if len(disc) != 2 || disc[0].profile != "discovery" || disc[0].network.String() != "10.99.0.0/24" {
		t.Fatalf("discovery jobs %+v", disc)
	}
	if ph, _ := runPhase(t, pool); ph != "discovery" {
		t.Fatalf("phase %q", ph)
	}
	completeDiscovery(t, pool, "10.99.0.10", "10.99.0.20")
	if _, err := pool.Exec(ctx, `INSERT INTO hosts (site_id, ip_address, status) SELECT id, '10.99.0.30', 'down' FROM sites WHERE name = 'lab'`); err != nil {
		t.Fatal(err)
	}
	// Several controllers see the finished discovery at once: one creates the port scan.
	var wg sync.WaitGroup
	results := make([]scheduler.Result, 6)
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
	advanced := 0
	for _, r := range results {
		advanced += r.Advanced
	}
	if advanced != 1 {
		t.Fatalf("%d schedulers advanced the run; want exactly one", advanced)
	}
	scan := runJobs(t, pool, "port_scan")
	if len(scan) != 1 {
		t.Fatalf("port-scan jobs %+v; want one, for the only shard with hosts up", scan)
	}
	j := scan[0]
	if j.profile != "quick" || j.network.String() != "10.99.0.0/27" {
		t.Fatalf("port-scan job %+v", j)
	}
	if n := scanspec.HostCount([]netip.Prefix{j.network}, j.exclusions); n != 2 {
		t.Fatalf("port-scan job covers %d addresses (%s minus %v), want 2", n, j.network, j.exclusions)
	}
	for _, a := range []string{"10.99.0.10", "10.99.0.20"} {
		for _, e := range j.exclusions {
			if e.Contains(netip.MustParseAddr(a)) {
				t.Fatalf("%s excluded by %s", a, e)
			}
		}
	}
	if ph, reason := runPhase(t, pool); ph != "port_scan" || !strings.Contains(reason, "found 2 hosts up") {
		t.Fatalf("phase %q, reason %q", ph, reason)
	}
	var runJobsCount int
	if err := pool.QueryRow(ctx, "SELECT jobs FROM scan_runs WHERE outcome = 'created'").Scan(&runJobsCount); err != nil || runJobsCount != 3 {
		t.Fatalf("run counts %d jobs (%v), want 3", runJobsCount, err)
	}
	if got, err := s.RunOnce(ctx); err != nil || got.Advanced != 0 {
		t.Fatalf("another pass: %+v %v", got, err)
	}
	if n := count(t, pool, "SELECT count(*) FROM scan_jobs WHERE run_id IS NULL"); n != 0 {
		t.Fatalf("%d jobs without a run", n)
	}
}

func TestDiscoveryFirstEdgeCases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(t *testing.T, edit func(*db.CreateTargetParams)) (*pgxpool.Pool, *clock, *scheduler.Scheduler) {
		pool, _ := fixtureWith(t, func(p *db.CreateTargetParams) {
			p.ScanIntervalSeconds = pgtype.Int4{Int32: 3600, Valid: true}
			p.Network = netip.MustParsePrefix("10.99.0.0/23")
			p.DiscoveryFirst = true
			edit(p)
		})
		c := &clock{now: t0}
		s := newScheduler(pool, c, 0)
		if got, err := s.RunOnce(ctx); err != nil || got.Created != 1 {
			t.Fatalf("first pass: %+v %v", got, err)
		}
		return pool, c, s
	}
	t.Run("no host up", func(t *testing.T) {
		t.Parallel()
		pool, _, s := setup(t, func(*db.CreateTargetParams) {})
		completeDiscovery(t, pool)
		if got, err := s.RunOnce(ctx); err != nil || got.Advanced != 1 {
			t.Fatalf("%+v %v", got, err)
		}
		if ph, reason := runPhase(t, pool); ph != "finished" || !strings.Contains(reason, "no host up") {
			t.Fatalf("phase %q, reason %q", ph, reason)
		}
		if n := len(runJobs(t, pool, "port_scan")); n != 0 {
			t.Fatalf("%d port-scan jobs", n)
		}
	})
	t.Run("profile skips host discovery: everything", func(t *testing.T) {
		t.Parallel()
		pool, _, s := setup(t, func(*db.CreateTargetParams) {})
		prof, err := db.New(pool).CreateProfile(ctx, db.CreateProfileParams{
			Name: "pn", ScanType: "connect", TopPorts: 10, SkipHostDiscovery: true, Scripts: []string{}, PingMethods: []string{}, CreatedBy: "test",
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, "UPDATE scan_targets SET profile_id = $1", prof.ID); err != nil {
			t.Fatal(err)
		}
		completeDiscovery(t, pool, "10.99.0.10")
		if got, err := s.RunOnce(ctx); err != nil || got.Advanced != 1 {
			t.Fatalf("%+v %v", got, err)
		}
		scan := runJobs(t, pool, "port_scan")
		if len(scan) != 2 || scan[0].network.String() != "10.99.0.0/24" || len(scan[0].exclusions) != 0 {
			t.Fatalf("port-scan jobs %+v; want the whole network", scan)
		}
	})
	t.Run("deadline during discovery: cancelled, no port scan", func(t *testing.T) {
		t.Parallel()
		pool, c, s := setup(t, func(p *db.CreateTargetParams) { p.MaxDurationSeconds = pgtype.Int4{Int32: 600, Valid: true} })
		c.set(t0.Add(10 * time.Minute))
		got, err := s.RunOnce(ctx)
		if err != nil || got.Cancelled != 2 || got.Advanced != 1 {
			t.Fatalf("%+v %v", got, err)
		}
		if ph, reason := runPhase(t, pool); ph != "finished" || !strings.Contains(reason, "no port scan") {
			t.Fatalf("phase %q, reason %q", ph, reason)
		}
		if n := len(runJobs(t, pool, "port_scan")); n != 0 {
			t.Fatalf("%d port-scan jobs", n)
		}
	})
	t.Run("next run waits for the discovery to end", func(t *testing.T) {
		t.Parallel()
		pool, c, s := setup(t, func(*db.CreateTargetParams) {})
		c.set(t0.Add(time.Hour))
		if got, err := s.RunOnce(ctx); err != nil || got.Skipped != 1 {
			t.Fatalf("%+v %v", got, err)
		}
		if n := count(t, pool, "SELECT count(*) FROM scan_jobs"); n != 2 {
			t.Fatalf("%d jobs", n)
		}
	})
}

// A target whose run cannot be created (here: its profile names no ports
// and neither does the target) is recorded as skipped with the error and
// moved on; other due targets still run.
func TestBrokenTargetDoesNotStopOthers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, good := fixture(t, time.Hour)
	q := db.New(pool)
	def, err := q.GetProfileByName(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.CreateTarget(ctx, db.CreateTargetParams{
		SiteID: good.SiteID, Name: "broken", Network: netip.MustParsePrefix("10.99.9.0/24"), ProfileID: def.ID, Enabled: true,
		ScanIntervalSeconds: pgtype.Int4{Int32: 3600, Valid: true}, NextRunAt: pgtype.Timestamptz{Time: t0.Add(-time.Second), Valid: true}, CreatedBy: "test",
	}); err != nil {
		t.Fatal(err)
	}
	c := &clock{now: t0}
	got, err := newScheduler(pool, c, 0).RunOnce(ctx)
	if err != nil || got != (scheduler.Result{Created: 1, Skipped: 1}) {
		t.Fatalf("%+v %v", got, err)
	}
	var reason string
	var next time.Time
	if err := pool.QueryRow(ctx, `SELECT r.reason, t.next_run_at FROM scan_runs r JOIN scan_targets t ON t.id = r.target_id
		WHERE t.name = 'broken' AND r.outcome = 'skipped'`).Scan(&reason, &next); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reason, "run failed: no ports") || !next.Equal(t0.Add(time.Hour-time.Second)) {
		t.Fatalf("reason %q, next %s", reason, next.UTC())
	}
}
