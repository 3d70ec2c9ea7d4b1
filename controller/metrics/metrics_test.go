package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgtest"
	"github.com/scanorama/scanorama/gen/db"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrate.Template)
	pgtest.Main(m)
}

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// The database collector reads jobs and agents from PostgreSQL, and reads
// again only once its cache is DBCacheFor old.
func TestDatabaseCollectorCachesReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := newPool(t)
	exec := func(sql string) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`INSERT INTO sites (name) VALUES ('lab')`)
	exec(`INSERT INTO agents (site_id, name, scope) SELECT id, 'a1', '{127.0.0.1/32}' FROM sites`)

	c := newDBCollector(db.New(pool), hclog.NewNullLogger())
	now := time.Now()
	c.now = func() time.Time { return now }
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	want := `# HELP scanorama_agents Registered agents by site and state (active, draining, lost, offline).
# TYPE scanorama_agents gauge
scanorama_agents{site="lab",state="active"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "scanorama_agents"); err != nil {
		t.Fatal(err)
	}
	exec(`INSERT INTO agents (site_id, name, scope) SELECT id, 'a2', '{127.0.0.1/32}' FROM sites`)
	// Within the cache period: the same answer, no query.
	now = now.Add(DBCacheFor - time.Millisecond)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "scanorama_agents"); err != nil {
		t.Fatalf("read again within the cache period: %v", err)
	}
	now = now.Add(time.Millisecond)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(strings.Replace(want, "} 1", "} 2", 1)), "scanorama_agents"); err != nil {
		t.Fatalf("after the cache period: %v", err)
	}
	if n, err := testutil.GatherAndCount(reg, "scanorama_db_collector_up"); err != nil || n != 1 {
		t.Fatalf("scanorama_db_collector_up: %d series, %v", n, err)
	}
}

// Every metric of a fresh controller passes the Prometheus linter, and the
// nil receiver reports nothing without panicking.
func TestControllerMetricsLint(t *testing.T) {
	t.Parallel()
	m := NewController()
	m.RegisterPool(newPool(t))
	m.RegisterEventDrops(func() int64 { return 3 })
	m.Lease(LeaseAcquired)
	m.Fenced(FencedCommit)
	m.Stream(StreamCommitted, 2, 5)
	m.Commit("group", 3*time.Millisecond)
	m.GroupCommit(2, 7)
	m.Rejected("hosts.address")
	m.ReaperRun(time.Millisecond, 1, errors.New("boom"))
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if got := testutil.ToFloat64(m.rowsIngested); got != 5 {
		t.Errorf("port rows = %v, want 5", got)
	}
	var none *Controller
	none.Lease(LeaseAcquired)
	none.Stream(StreamCommitted, 1, 1)
	none.ReaperRun(0, 0, nil)
}
