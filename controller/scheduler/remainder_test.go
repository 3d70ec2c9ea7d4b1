package scheduler_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/scanorama/scanorama/controller/scheduler"
	"github.com/scanorama/scanorama/gen/db"
)

// A scan window closes while a job runs; its agent commits the hosts it
// finished (partial). The rest of the shard becomes a job of the same run
// that starts at the next opening, and the run's deadline moves to that
// opening's close. A job nobody held is carried over whole; an operator's
// CancelJob is not carried over.
func TestWindowCloseCarriesRemainderOver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	berlin := mustZone(t, "Europe/Berlin")
	local := func(m time.Month, d, h, mi int) time.Time { return time.Date(2026, m, d, h, mi, 0, 0, berlin).UTC() }
	// Daily, Mon-Fri 22:00-06:00 Berlin; t0 is Sunday, the first run Monday 22:00.
	pool, _ := fixtureWith(t, func(p *db.CreateTargetParams) {
		p.ScanIntervalSeconds = pgtype.Int4{Int32: 86400, Valid: true}
		p.TimeZone = "Europe/Berlin"
		p.WindowDays = pgtype.Int2{Int16: 0b0111110, Valid: true}
		p.WindowStartMinute = pgtype.Int2{Int16: 22 * 60, Valid: true}
		p.WindowEndMinute = pgtype.Int2{Int16: 6 * 60, Valid: true}
	})
	c := &clock{}
	s := newScheduler(pool, c, 0)
	runSteps(t, pool, c, s, []step{
		{name: "Sunday: waits", at: t0, want: scheduler.Result{Deferred: 1}, jobs: 0, next: local(11, 30, 22, 0)},
		{name: "Monday 22:00: runs", at: local(11, 30, 22, 0), want: scheduler.Result{Created: 1}, jobs: 1, next: local(12, 1, 22, 0)},
	})
	_, ref := lease(t, pool, netip.MustParsePrefix("10.99.0.0/16"))
	c.set(local(12, 1, 6, 0))
	if got, err := s.RunOnce(ctx); err != nil || got.Cancelled != 1 || got.Carried != 0 {
		t.Fatalf("window close: %+v %v; want one cancelled, nothing carried before the holder commits", got, err)
	}
	// The holder commits the three hosts it had finished (what
	// ingest_commit records for a partial commit).
	if _, err := pool.Exec(ctx, `UPDATE scan_jobs SET partial = true, hosts_finished = 3,
		finished_hosts = '{10.99.0.1,10.99.0.2,10.99.0.3}' WHERE id = $1`, ref.JobID); err != nil {
		t.Fatal(err)
	}
	c.set(local(12, 1, 6, 1))
	if got, err := s.RunOnce(ctx); err != nil || got.Carried != 1 {
		t.Fatalf("after the partial commit: %+v %v; want one carried over", got, err)
	}
	var (
		status      string
		network     netip.Prefix
		excl        []netip.Prefix
		notBefore   time.Time
		sameRun     bool
		runDeadline time.Time
	)
	if err := pool.QueryRow(ctx, `SELECT j.status, j.network, j.exclusions, j.scheduled_at, j.run_id = o.run_id, r.cancel_at
		FROM scan_jobs j JOIN scan_jobs o ON o.id = j.remainder_of JOIN scan_runs r ON r.id = j.run_id
		WHERE j.remainder_of = $1`, ref.JobID).Scan(&status, &network, &excl, &notBefore, &sameRun, &runDeadline); err != nil {
		t.Fatalf("remainder job: %v", err)
	}
	if status != "pending" || network.String() != "10.99.0.0/24" || len(excl) != 3 || !sameRun {
		t.Fatalf("remainder: %s %s minus %v, same run %v", status, network, excl, sameRun)
	}
	if want := local(12, 1, 22, 0); !notBefore.Equal(want) {
		t.Fatalf("remainder starts %s, want the next opening %s", notBefore, want)
	}
	if want := local(12, 2, 6, 0); !runDeadline.Equal(want) {
		t.Fatalf("run deadline %s, want the next close %s", runDeadline, want)
	}
	// The message the remainder gets when that window closes names the new close.
	if n := count(t, pool, `SELECT count(*) FROM scan_runs WHERE cancel_reason LIKE '%closed at 2026-12-02T06:00:00+01:00%'`); n != 1 {
		t.Fatalf("the run's cancel_reason does not name the next close")
	}
	if got, err := s.RunOnce(ctx); err != nil || got.Carried != 0 {
		t.Fatalf("second pass: %+v %v; want nothing more carried", got, err)
	}
	// Tuesday 22:00: the remainder is the run's work; the next scheduled run
	// does not overlap it.
	c.set(local(12, 1, 22, 0))
	if got, err := s.RunOnce(ctx); err != nil || got.Skipped != 1 || got.Cancelled != 0 {
		t.Fatalf("next opening: %+v %v; want the new run skipped while the remainder is pending", got, err)
	}
	// Wednesday 06:00 the remainder, never leased, is cancelled and carried
	// over whole (nobody held it): the third night picks it up.
	c.set(local(12, 2, 6, 0))
	if got, err := s.RunOnce(ctx); err != nil || got.Cancelled != 1 || got.Carried != 1 {
		t.Fatalf("second close: %+v %v; want the remainder cancelled and carried over", got, err)
	}
	if n := count(t, pool, `SELECT count(*) FROM scan_jobs WHERE status = 'pending' AND cardinality(exclusions) = 3 AND remainder_of IS NOT NULL`); n != 1 {
		t.Fatalf("%d pending third-night remainders, want 1", n)
	}
	// Interrupted jobs are recognised by cancelled_by_deadline, set only by
	// the deadline.
	if n := count(t, pool, `SELECT count(*) FROM scan_jobs WHERE status = 'cancelled' AND NOT cancelled_by_deadline`); n != 0 {
		t.Fatalf("%d jobs the deadline cancelled lack cancelled_by_deadline", n)
	}
	// An operator's cancel is final: not carried over, even when its reason
	// reads exactly like the run's deadline message.
	if _, err := pool.Exec(ctx, `UPDATE scan_jobs j SET status = 'cancelled', completed_at = now(), error_message = r.cancel_reason
		FROM scan_runs r WHERE r.id = j.run_id AND j.status = 'pending'`); err != nil {
		t.Fatal(err)
	}
	c.set(local(12, 3, 6, 0))
	if got, err := s.RunOnce(ctx); err != nil || got.Carried != 0 {
		t.Fatalf("after CancelJob: %+v %v; want nothing carried", got, err)
	}
}
