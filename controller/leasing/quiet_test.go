package leasing

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/controller/events"
	"github.com/scanorama/scanorama/gen/db"
)

// TestQuietSiteStillFindsWork checks the long-poll that skips its first
// look because its site had no pending work: work that appears without a
// notification (a job whose scheduled_at passes, a row made pending by a
// statement that notifies nobody) reaches it within a recheck, and work
// due within the next interval keeps the site from looking quiet at all.
func TestQuietSiteStillFindsWork(t *testing.T) {
	t.Parallel()
	f := newLeaseFixture(t, 3)
	site := f.agent.SiteID.String()
	f.exec(t, `UPDATE scan_jobs SET scheduled_at = now() + interval '1 hour' WHERE id = $1`)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hub := events.NewHub(f.pool.Config().ConnString(), hclog.NewNullLogger())
	hub.Recheck = 200 * time.Millisecond
	q := db.New(f.pool)
	hub.Pending = func(ctx context.Context, horizon time.Duration) ([]string, error) {
		return q.SitesWithPendingJobs(ctx, horizon.Seconds())
	}
	go hub.Run(ctx)
	<-hub.Ready()
	waitQuiet := func(want bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); hub.Quiet(site) != want; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("site quiet %v, want %v", !want, want)
			}
		}
	}
	waitQuiet(true)

	// Due within the next interval: looked at as before.
	f.exec(t, `UPDATE scan_jobs SET scheduled_at = now() + interval '100 milliseconds' WHERE id = $1`)
	waitQuiet(false)
	f.exec(t, `UPDATE scan_jobs SET scheduled_at = now() + interval '1 hour' WHERE id = $1`)
	waitQuiet(true)

	l := New(f.pool, hub, discard{}, Config{TTL: time.Minute, MaxWait: time.Minute}, hclog.NewNullLogger())
	type result struct {
		job *db.AcquireJobRow
		err error
	}
	got := make(chan result, 1)
	go func() {
		j, err := l.Acquire(ctx, f.agent, 30*time.Second)
		got <- result{j, err}
	}()
	for hub.Waiting(site) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	begin := time.Now()
	// Work appears with no notification at all.
	f.exec(t, `UPDATE scan_jobs SET scheduled_at = now() WHERE id = $1`)
	select {
	case r := <-got:
		if r.err != nil || r.job == nil || r.job.ID != f.job {
			t.Fatalf("acquire: %v, %v; want job %s", r.job, r.err, f.job)
		}
		// Two checks at most: the one that sees it wakes the site.
		if took := time.Since(begin); took > 5*time.Second {
			t.Errorf("took %s to find unannounced work", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the parked long-poll never found the job that appeared without a notification")
	}
}
