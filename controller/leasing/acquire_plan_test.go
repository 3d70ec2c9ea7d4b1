package leasing

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scanorama/scanorama/gen/db"
)

// TestAcquireJobWalksThePendingIndex guards the lease's plan, not its time:
// AcquireJob must take the oldest eligible job by walking scan_jobs_pending
// in its order, never read the whole queue and sort it. With the pause check
// correlated to the candidate row (until 2026-12-02) the planner did the
// latter: it read every row of scan_jobs at every lease (365 buffers at 2,000
// jobs, most of a lease's 6.6 ms, growing with the table). scan_pauses stays
// empty and never analyzed here, as in production, where that misled it.
// Both plans the plan cache may use are checked.
func TestAcquireJobWalksThePendingIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newLeaseFixture(t, 3)
	// A queue worth planning for: 2,000 pending jobs beside 2,000 finished.
	f.exec(t, `INSERT INTO scan_jobs (target_id, site_id, profile_id, network, options, status, completed_at)
		SELECT j.target_id, j.site_id, j.profile_id, set_masklen('10.99.0.0'::inet + g * 16, 28)::cidr, '{}',
		       CASE WHEN g % 2 = 0 THEN 'pending' ELSE 'completed' END,
		       CASE WHEN g % 2 = 0 THEN NULL ELSE now() END
		FROM scan_jobs j, generate_series(1, 4000) g WHERE j.id = $1`)
	if _, err := f.pool.Exec(ctx, `ANALYZE scan_jobs`); err != nil {
		t.Fatal(err)
	}
	// auto_explain hands the plan of the real generated statement, with
	// its parameters bound as the controller binds them, back as a notice.
	var (
		mu    sync.Mutex
		plans []string
	)
	cfg := f.pool.Config().ConnConfig.Copy()
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		defer mu.Unlock()
		if strings.Contains(n.Message, "plan:") {
			plans = append(plans, n.Message)
		}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	for _, s := range []string{
		`LOAD 'auto_explain'`,
		`SET auto_explain.log_min_duration = 0`,
		`SET auto_explain.log_level = notice`,
		`SET client_min_messages = notice`,
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	q := db.New(conn)
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		t.Run(mode, func(t *testing.T) {
			if _, err := conn.Exec(ctx, `SET plan_cache_mode = `+mode); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			plans = nil
			mu.Unlock()
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			job, err := q.WithTx(tx).AcquireJob(ctx, db.AcquireJobParams{
				SiteID: f.agent.SiteID, Scope: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16")},
				WorkerID: f.agent.ID.String(), TtlSeconds: 30,
			})
			if err != nil {
				t.Fatalf("AcquireJob: %v", err)
			}
			if job.Status != "leased" {
				t.Fatalf("job %s is %s", job.ID, job.Status)
			}
			mu.Lock()
			defer mu.Unlock()
			var plan string
			for _, p := range plans {
				if strings.Contains(p, "AcquireJob") {
					plan = p
				}
			}
			if plan == "" {
				t.Fatalf("no plan of AcquireJob among %d notices", len(plans))
			}
			if !strings.Contains(plan, "Index Scan using scan_jobs_pending") || strings.Contains(plan, "Seq Scan on scan_jobs") {
				t.Fatalf("AcquireJob does not walk scan_jobs_pending:\n%s", plan)
			}
		})
	}
}
