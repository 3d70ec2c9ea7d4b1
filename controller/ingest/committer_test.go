package ingest

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/leasing"
	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgtest"
	"github.com/scanorama/scanorama/gen/db"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrate.Template)
	pgtest.Main(m)
}

// newPool is a migrated test database with the staging tables on every
// connection, as the controller's pool has them.
func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	ConfigurePool(cfg)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// leasedJobs creates n jobs on shards of 10.99.40.0/22, each leased to
// worker "w" with token 1.
func leasedJobs(t *testing.T, pool *pgxpool.Pool, n int) []netip.Prefix {
	t.Helper()
	ctx := context.Background()
	q := db.New(pool)
	site, err := q.CreateSite(ctx, db.CreateSiteParams{Name: "lab", CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := q.GetProfileByName(ctx, "quick")
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := q.CreateTarget(ctx, db.CreateTargetParams{
		SiteID: site.ID, Name: "net", Network: netip.MustParsePrefix("10.99.40.0/22"), ProfileID: p.ID,
		Enabled: true, NextRunAt: pgtype.Timestamptz{Time: time.Now(), Valid: true}, CreatedBy: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	var nets []netip.Prefix
	for i := range n {
		nets = append(nets, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(40 + i), 0}), 24))
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO scan_jobs (target_id, site_id, profile_id, network, options, status, attempt, worker_id, lease_token, timeout_at)
		SELECT $1, $2, $3, n, '{}', 'leased', 1, 'w', 1, now() + interval '1 hour' FROM unnest($4::cidr[]) AS n`,
		tgt.ID, site.ID, p.ID, nets); err != nil {
		t.Fatal(err)
	}
	return nets
}

func jobOf(t *testing.T, pool *pgxpool.Pool, n netip.Prefix) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	if err := pool.QueryRow(context.Background(), `SELECT id FROM scan_jobs WHERE network = $1`, n).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func oneHost(addr netip.Addr, hostname string) *rowBuffer {
	var b rowBuffer
	b.addHost(hostRow{ip: addr, status: "up", reason: "syn-ack", hostname: hostname})
	b.addPort(portRow{ip: addr, protocol: "tcp", port: 22, state: "open", reason: "syn-ack", name: "ssh"})
	return &b
}

// One group commit holding a good job, a job whose lease moved on and a job
// the database rejects: the good one commits, the others write nothing, and
// each caller hears its own outcome.
func TestGroupCommitIsolatesJobs(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	nets := leasedJobs(t, pool, 3)
	c := newCommitter(pool, hclog.NewNullLogger())
	req := func(n netip.Prefix, token int64, rows *rowBuffer) *commitRequest {
		return &commitRequest{
			job: commitJob{
				ref:        leasing.LeaseRef{JobID: jobOf(t, pool, n), WorkerID: "w", Token: token},
				scannedTCP: "{[22,22]}", scannedUDP: "{}", stats: []byte(`{"hosts_sent":1}`),
			},
			rows: rows, replyTo: make(chan commitReply, 1),
		}
	}
	good := req(nets[0], 1, oneHost(nets[0].Addr().Next(), ""))
	stale := req(nets[1], 7, oneHost(nets[1].Addr().Next(), ""))
	// A hostname over the schema's bound: the database refuses the job (the
	// stream validator would have caught it first; this is the backstop).
	refused := req(nets[2], 1, oneHost(nets[2].Addr().Next(), strings.Repeat("h", 300)))

	c.commitBatch(context.Background(), []*commitRequest{stale, good, refused})

	g := <-good.replyTo
	if g.err != nil || g.row.Outcome != "committed" || g.row.MergedHosts != 1 || g.row.PortRows != 1 || g.row.Changes != 2 {
		t.Fatalf("good job: %+v, %v", g.row, g.err)
	}
	if s := <-stale.replyTo; !errors.Is(s.err, leasing.ErrLeaseLost) {
		t.Fatalf("stale lease: %+v, %v; want ErrLeaseLost", s.row, s.err)
	}
	if r := <-refused.replyTo; r.err == nil || !strings.Contains(r.err.Error(), "23514") {
		t.Fatalf("refused job: %+v, %v; want a check violation", r.row, r.err)
	}
	count := func(sql string, args ...any) int {
		var n int
		if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for sql, want := range map[string]int{
		`SELECT count(*) FROM hosts`:                                      1,
		`SELECT count(*) FROM port_scans`:                                 1,
		`SELECT count(*) FROM services`:                                   1,
		`SELECT count(*) FROM host_history`:                               2,
		`SELECT count(*) FROM scan_jobs WHERE status = 'completed'`:       1,
		`SELECT count(*) FROM scan_jobs WHERE status = 'leased'`:          2,
		`SELECT count(*) FROM scan_job_leases WHERE ended_at IS NOT NULL`: 0, // jobs were leased by hand
	} {
		if got := count(sql); got != want {
			t.Errorf("%s = %d, want %d", sql, got, want)
		}
	}
	if n := count(`SELECT count(*) FROM hosts WHERE ip_address = $1`, nets[0].Addr().Next()); n != 1 {
		t.Errorf("the committed host is not the good job's")
	}

	// The good job's agent never heard back and sends again.
	again := req(nets[0], 1, oneHost(nets[0].Addr().Next(), ""))
	c.commitBatch(context.Background(), []*commitRequest{again})
	if a := <-again.replyTo; a.err != nil || a.row.Outcome != "already_committed" {
		t.Fatalf("resend: %+v, %v; want already_committed", a.row, a.err)
	}
	if n := count(`SELECT count(*) FROM port_scans`); n != 1 {
		t.Fatalf("resend wrote rows: %d port_scans", n)
	}
	// Nothing is left in the staging tables of any connection.
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	var left int
	if err := conn.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM ingest_hosts) + (SELECT count(*) FROM ingest_ports)`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d staged rows left behind", left)
	}
}
