package ingest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/gen/db"
)

// These tests call ingest_commit and ingest_commit_many directly, statement
// by statement of the commit function: every host_history event, the ports
// nmap folds into "not shown", UDP, exclusions, first/last seen and
// discovery counts, the staged path against the array path, and two commits
// racing on one new host.

// sqlPort is one port row of a scan.
type sqlPort struct {
	proto   string
	port    int32
	state   string
	service string // "name product version", space-separated, may be short
}

// sqlHost is one host row of a scan.
type sqlHost struct {
	ip     string
	status string // "up" or "down"
	os     string
	ports  []sqlPort
}

// sqlScan is one job's results: what nmap reported and what it was asked to
// scan.
type sqlScan struct {
	hosts      []sqlHost
	tcp, udp   string   // scanned port sets, int4multirange literals
	exclusions []string // the job's excluded CIDRs
}

const sqlNet = "10.99.50.0/24"

// commitPath commits one scan's rows for a leased job.
type commitPath func(t *testing.T, pool *pgxpool.Pool, job uuid.UUID, s sqlScan) string

// stagedPath is a large job's path: rows in the session's staging tables,
// then ingest_commit.
func stagedPath(t *testing.T, pool *pgxpool.Pool, job uuid.UUID, s sqlScan) string {
	t.Helper()
	out, err := commitStaged(context.Background(), pool, job, s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func commitStaged(ctx context.Context, pool *pgxpool.Pool, job uuid.UUID, s sqlScan) (string, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Release()
	if err := stage(ctx, conn, s); err != nil {
		return "", err
	}
	var outcome string
	if err := conn.QueryRow(ctx, `SELECT outcome FROM ingest_commit($1, 'w', 1, $2, $3, '{}', false, true)`,
		job, s.tcp, s.udp).Scan(&outcome); err != nil {
		return "", fmt.Errorf("ingest_commit: %w", err)
	}
	return outcome, nil
}

// stage writes a scan's rows into the session's staging tables.
func stage(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, s sqlScan) error {
	for _, h := range s.hosts {
		if _, err := q.Exec(ctx, `
			INSERT INTO ingest_hosts (ip, status, reason, mac_address, vendor, hostname, os_name, os_family, os_confidence)
			VALUES ($1::inet, $2, 'test', NULL, '', '', $3, $4, $5)`,
			h.ip, h.status, h.os, osFamily(h.os), osConfidence(h.os)); err != nil {
			return fmt.Errorf("stage host: %w", err)
		}
		for _, p := range h.ports {
			name, product, version := serviceParts(p.service)
			if _, err := q.Exec(ctx, `
				INSERT INTO ingest_ports (ip, protocol, port, state, reason, service_name, service_product,
				                          service_version, service_extra_info, scripts)
				VALUES ($1::inet, $2, $3, $4, 'test', $5, $6, $7, '', NULL)`,
				h.ip, p.proto, p.port, p.state, name, product, version); err != nil {
				return fmt.Errorf("stage port: %w", err)
			}
		}
	}
	return nil
}

// arrayPath is a small job's path: rows as arrays in one
// ingest_commit_many call.
func arrayPath(t *testing.T, pool *pgxpool.Pool, job uuid.UUID, s sqlScan) string {
	t.Helper()
	var (
		hIP, hStatus, hOS, hFamily                     []string
		hConf                                          []int16
		pIP, pProto, pState, pName, pProduct, pVersion []string
		pPort                                          []int32
	)
	for _, h := range s.hosts {
		hIP, hStatus, hOS, hFamily = append(hIP, h.ip), append(hStatus, h.status), append(hOS, h.os), append(hFamily, osFamily(h.os))
		hConf = append(hConf, osConfidence(h.os))
		for _, p := range h.ports {
			name, product, version := serviceParts(p.service)
			pIP, pProto, pPort, pState = append(pIP, h.ip), append(pProto, p.proto), append(pPort, p.port), append(pState, p.state)
			pName, pProduct, pVersion = append(pName, name), append(pProduct, product), append(pVersion, version)
		}
	}
	blank := func(n int) []string { return make([]string, n) }
	reasons := func(n int) []string {
		r := make([]string, n)
		for i := range r {
			r[i] = "test"
		}
		return r
	}
	var outcome, message string
	err := pool.QueryRow(context.Background(), `
		SELECT outcome, message FROM ingest_commit_many(
			ARRAY[$1::uuid], ARRAY['w'], ARRAY[1::bigint], ARRAY[$2::text], ARRAY[$3::text], ARRAY['{}'::jsonb],
			ARRAY[$4::int], ARRAY[$5::int],
			$6::text[]::inet[], $7::text[], $8::text[], array_fill(NULL::macaddr, ARRAY[$4::int]), $9::text[],
			$9::text[], $10::text[], $11::text[], $12::int2[],
			$13::text[]::inet[], $14::text[], $15::int4[], $16::text[], $17::text[], $18::text[], $19::text[],
			$20::text[], $21::text[], array_fill(NULL::jsonb, ARRAY[$5::int]))`,
		job, s.tcp, s.udp, len(hIP), len(pIP),
		hIP, hStatus, reasons(len(hIP)), blank(len(hIP)), hOS, hFamily, hConf,
		pIP, pProto, pPort, pState, reasons(len(pIP)), pName, pProduct, pVersion, blank(len(pIP)),
	).Scan(&outcome, &message)
	if err != nil {
		t.Fatalf("ingest_commit_many: %v", err)
	}
	if message != "" {
		t.Fatalf("ingest_commit_many: %s: %s", outcome, message)
	}
	return outcome
}

func serviceParts(s string) (name, product, version string) {
	f := strings.Fields(s)
	for len(f) < 3 {
		f = append(f, "")
	}
	return f[0], f[1], strings.Join(f[2:], " ")
}

func osFamily(os string) string {
	if f, _, ok := strings.Cut(os, " "); ok {
		return f
	}
	return os
}

func osConfidence(os string) int16 {
	if os == "" {
		return 0
	}
	return 90
}

// sqlFixture is a site with one target on sqlNet; each scan is a new job on
// it, leased to worker "w" with token 1.
type sqlFixture struct {
	pool                  *pgxpool.Pool
	site, target, profile uuid.UUID
	commit                commitPath
	jobs                  []uuid.UUID
}

func newSQLFixture(t *testing.T, commit commitPath) *sqlFixture {
	t.Helper()
	ctx := context.Background()
	pool := newPool(t)
	q := db.New(pool)
	site, err := q.CreateSite(ctx, db.CreateSiteParams{Name: "lab", CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := q.GetProfileByName(ctx, "quick")
	if err != nil {
		t.Fatal(err)
	}
	var tgt uuid.UUID
	if err := pool.QueryRow(ctx, `
		INSERT INTO scan_targets (site_id, name, network, profile_id, enabled, next_run_at, created_by)
		VALUES ($1, 'net', $2::cidr, $3, true, $4, 'test') RETURNING id`,
		site.ID, sqlNet, p.ID, pgtype.Timestamptz{Time: time.Now(), Valid: true}).Scan(&tgt); err != nil {
		t.Fatal(err)
	}
	return &sqlFixture{pool: pool, site: site.ID, target: tgt, profile: p.ID, commit: commit}
}

// newJob inserts a job on sqlNet leased to "w" with token 1.
func (f *sqlFixture) newJob(t *testing.T, exclusions []string) uuid.UUID {
	t.Helper()
	if exclusions == nil {
		exclusions = []string{}
	}
	var id uuid.UUID
	if err := f.pool.QueryRow(context.Background(), `
		INSERT INTO scan_jobs (target_id, site_id, profile_id, network, exclusions, options, status, attempt, worker_id,
		                       lease_token, timeout_at, started_at)
		VALUES ($1, $2, $3, $4::cidr, $5::text[]::cidr[], '{}', 'leased', 1, 'w', 1, now() + interval '1 hour', now())
		RETURNING id`,
		f.target, f.site, f.profile, sqlNet, exclusions).Scan(&id); err != nil {
		t.Fatal(err)
	}
	f.jobs = append(f.jobs, id)
	return id
}

func (f *sqlFixture) run(t *testing.T, s sqlScan) uuid.UUID {
	t.Helper()
	if s.tcp == "" {
		s.tcp = "{}"
	}
	if s.udp == "" {
		s.udp = "{}"
	}
	job := f.newJob(t, s.exclusions)
	if out := f.commit(t, f.pool, job, s); out != "committed" {
		t.Fatalf("commit: outcome %q", out)
	}
	return job
}

// events lists a job's host_history rows as "event ip port/proto old->new",
// sorted.
func (f *sqlFixture) events(t *testing.T, job uuid.UUID) []string {
	t.Helper()
	return f.lines(t, `
		SELECT concat_ws(' ', hh.event, host(h.ip_address),
		                 CASE WHEN hh.port IS NULL THEN NULL ELSE hh.port || '/' || hh.protocol END,
		                 coalesce(hh.old_value, '') || '->' || coalesce(hh.new_value, ''))
		FROM host_history hh JOIN hosts h ON h.id = hh.host_id
		WHERE hh.job_id = $1`, job)
}

// state is everything the commits left behind, job-independent, for
// comparing the two paths.
func (f *sqlFixture) state(t *testing.T) []string {
	t.Helper()
	var out []string
	out = append(out, f.lines(t, `
		SELECT concat_ws(' ', 'host', host(ip_address), status, coalesce(os_name, '-'), coalesce(os_family, '-'),
		                 discovery_count, first_seen <= last_seen)
		FROM hosts`)...)
	out = append(out, f.lines(t, `
		SELECT concat_ws(' ', 'service', host(h.ip_address), s.port || '/' || s.protocol, s.state,
		                 coalesce(s.service_name, '-'), coalesce(s.service_product, '-'), coalesce(s.service_version, '-'))
		FROM services s JOIN hosts h ON h.id = s.host_id`)...)
	out = append(out, f.lines(t, `
		SELECT concat_ws(' ', 'history', j.n, hh.event, host(h.ip_address), coalesce(hh.port::text, '-'),
		                 coalesce(hh.protocol, '-'), coalesce(hh.old_value, '-'), coalesce(hh.new_value, '-'))
		FROM host_history hh JOIN hosts h ON h.id = hh.host_id
		JOIN (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM scan_jobs) j ON j.id = hh.job_id`)...)
	out = append(out, f.lines(t, `
		SELECT concat_ws(' ', 'port_scan', host(h.ip_address), p.port || '/' || p.protocol, p.state)
		FROM port_scans p JOIN hosts h ON h.id = p.host_id`)...)
	out = append(out, f.lines(t, `
		SELECT concat_ws(' ', 'job', status, scan_stats->>'hosts_up', scan_stats->>'port_rows', scan_stats->>'changes')
		FROM scan_jobs`)...)
	return out
}

func (f *sqlFixture) lines(t *testing.T, sql string, args ...any) []string {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func up(ip string, ports ...sqlPort) sqlHost { return sqlHost{ip: ip, status: "up", ports: ports} }

func tcp(port int32, state, service string) sqlPort {
	return sqlPort{proto: "tcp", port: port, state: state, service: service}
}

func udp(port int32, state, service string) sqlPort {
	return sqlPort{proto: "udp", port: port, state: state, service: service}
}

// commitCases are scans in order; want is the host_history of the last one.
var commitCases = []struct {
	name  string
	scans []sqlScan
	want  []string
	check func(t *testing.T, f *sqlFixture)
}{
	{
		name:  "new host with an open port is discovered and the port opened",
		scans: []sqlScan{{hosts: []sqlHost{up("10.99.50.10", tcp(22, "open", "ssh"))}, tcp: "{[22,22]}"}},
		want:  []string{"host_discovered 10.99.50.10 ->up", "port_opened 10.99.50.10 22/tcp ->open"},
	},
	{
		name:  "a host reported down only is not recorded",
		scans: []sqlScan{{hosts: []sqlHost{{ip: "10.99.50.11", status: "down"}}}},
		want:  nil,
		check: func(t *testing.T, f *sqlFixture) {
			if n := f.lines(t, `SELECT ip_address::text FROM hosts`); len(n) != 0 {
				t.Errorf("hosts = %v, want none", n)
			}
		},
	},
	{
		name: "a known host reported down goes down",
		scans: []sqlScan{
			{hosts: []sqlHost{up("10.99.50.12")}},
			{hosts: []sqlHost{{ip: "10.99.50.12", status: "down"}}},
		},
		want: []string{"host_down 10.99.50.12 up->down"},
	},
	{
		name: "a host up before that does not answer goes down",
		scans: []sqlScan{
			{hosts: []sqlHost{up("10.99.50.13")}},
			{},
		},
		want: []string{"host_down 10.99.50.13 up->down"},
	},
	{
		name: "a host that was down and answers is up again",
		scans: []sqlScan{
			{hosts: []sqlHost{up("10.99.50.14")}},
			{},
			{hosts: []sqlHost{up("10.99.50.14")}},
		},
		want: []string{"host_up 10.99.50.14 down->up"},
	},
	{
		name: "an excluded host that does not answer is not marked down",
		scans: []sqlScan{
			{hosts: []sqlHost{up("10.99.50.20"), up("10.99.50.40")}},
			{exclusions: []string{"10.99.50.16/28"}},
		},
		want: []string{"host_down 10.99.50.40 up->down"},
		check: func(t *testing.T, f *sqlFixture) {
			got := f.lines(t, `SELECT host(ip_address) || ' ' || status FROM hosts`)
			want := []string{"10.99.50.20 up", "10.99.50.40 down"}
			if !slices.Equal(got, want) {
				t.Errorf("hosts = %v, want %v", got, want)
			}
		},
	},
	{
		name: "a port reported closed is closed",
		scans: []sqlScan{
			{hosts: []sqlHost{up("10.99.50.21", tcp(22, "open", "ssh"))}, tcp: "{[22,22]}"},
			{hosts: []sqlHost{up("10.99.50.21", tcp(22, "closed", ""))}, tcp: "{[22,22]}"},
		},
		want: []string{"port_closed 10.99.50.21 22/tcp open->closed"},
	},
	{
		name: "a port reported filtered is closed with that state",
		scans: []sqlScan{
			{hosts: []sqlHost{up("10.99.50.22", tcp(443, "open", "https"))}, tcp: "{[443,443]}"},
			{hosts: []sqlHost{up("10.99.50.22", tcp(443, "filtered", ""))}, tcp: "{[443,443]}"},
		},
		want: []string{"port_closed 10.99.50.22 443/tcp open->filtered"},
	},
	{
		name: "a scanned port nmap folds into not shown is closed",
		scans: []sqlScan{
			{hosts: []sqlHost{up("10.99.50.23", tcp(22, "open", "ssh"), tcp(80, "open", "http"))}, tcp: "{[1,1024]}"},
			{hosts: []sqlHost{up("10.99.50.23", tcp(80, "open", "http"))}, tcp: "{[1,1024]}"},
		},
		want: []string{"port_closed 10.99.50.23 22/tcp open->closed"},
		check: func(t *testing.T, f *sqlFixture) {
			got := f.lines(t, `SELECT port || ' ' || state FROM services`)
			if want := []string{"22 closed", "80 open"}; !slices.Equal(got, want) {
				t.Errorf("services = %v, want %v", got, want)
			}
		},
	},
	{
		name: "an open port outside the scanned set stays open",
		scans: []sqlScan{
			{hosts: []sqlHost{up("10.99.50.24", tcp(22, "open", "ssh"))}, tcp: "{[22,22]}"},
			{hosts: []sqlHost{up("10.99.50.24")}, tcp: "{[80,80]}"},
		},
		want: nil,
		check: func(t *testing.T, f *sqlFixture) {
			if got := f.lines(t, `SELECT port || ' ' || state FROM services`); !slices.Equal(got, []string{"22 open"}) {
				t.Errorf("services = %v, want [22 open]", got)
			}
		},
	},
	{
		name: "ports of a host that did not answer are left alone",
		scans: []sqlScan{
			{hosts: []sqlHost{up("10.99.50.25", tcp(22, "open", "ssh"))}, tcp: "{[22,22]}"},
			{tcp: "{[22,22]}"},
		},
		want: []string{"host_down 10.99.50.25 up->down"},
		check: func(t *testing.T, f *sqlFixture) {
			if got := f.lines(t, `SELECT port || ' ' || state FROM services`); !slices.Equal(got, []string{"22 open"}) {
				t.Errorf("services = %v, want [22 open]", got)
			}
		},
	},
	{
		name: "a changed service is recorded with old and new",
		scans: []sqlScan{
			{hosts: []sqlHost{up("10.99.50.26", tcp(22, "open", "ssh OpenSSH 8.9"))}, tcp: "{[22,22]}"},
			{hosts: []sqlHost{up("10.99.50.26", tcp(22, "open", "ssh OpenSSH 9.6"))}, tcp: "{[22,22]}"},
		},
		want: []string{"service_changed 10.99.50.26 22/tcp ssh OpenSSH 8.9->ssh OpenSSH 9.6"},
	},
	{
		name: "an open port without a service name changes no service",
		scans: []sqlScan{
			{hosts: []sqlHost{up("10.99.50.27", tcp(22, "open", "ssh OpenSSH 8.9"))}, tcp: "{[22,22]}"},
			{hosts: []sqlHost{up("10.99.50.27", tcp(22, "open", ""))}, tcp: "{[22,22]}"},
		},
		want: nil,
	},
	{
		name: "a changed OS is recorded",
		scans: []sqlScan{
			{hosts: []sqlHost{{ip: "10.99.50.28", status: "up", os: "Linux 5.X"}}},
			{hosts: []sqlHost{{ip: "10.99.50.28", status: "up", os: "Linux 6.X"}}},
		},
		want: []string{"os_changed 10.99.50.28 Linux 5.X->Linux 6.X"},
	},
	{
		name: "an unknown OS does not erase the known one",
		scans: []sqlScan{
			{hosts: []sqlHost{{ip: "10.99.50.29", status: "up", os: "Linux 5.X"}}},
			{hosts: []sqlHost{up("10.99.50.29")}},
		},
		want: nil,
		check: func(t *testing.T, f *sqlFixture) {
			if got := f.lines(t, `SELECT os_name FROM hosts`); !slices.Equal(got, []string{"Linux 5.X"}) {
				t.Errorf("os_name = %v, want [Linux 5.X]", got)
			}
		},
	},
	{
		name: "a UDP port opens and closes by the scanned UDP set",
		scans: []sqlScan{
			{hosts: []sqlHost{up("10.99.50.30", udp(53, "open", "domain"))}, udp: "{[53,53]}"},
			{hosts: []sqlHost{up("10.99.50.30")}, udp: "{[53,53]}"},
		},
		want: []string{"port_closed 10.99.50.30 53/udp open->closed"},
	},
	{
		name: "a TCP scanned set does not close a UDP port of the same number",
		scans: []sqlScan{
			{hosts: []sqlHost{up("10.99.50.31", udp(53, "open", "domain"))}, udp: "{[53,53]}"},
			{hosts: []sqlHost{up("10.99.50.31")}, tcp: "{[53,53]}"},
		},
		want: nil,
	},
	{
		name: "a reopened port is opened again with its old state",
		scans: []sqlScan{
			{hosts: []sqlHost{up("10.99.50.32", tcp(22, "open", "ssh"))}, tcp: "{[22,22]}"},
			{hosts: []sqlHost{up("10.99.50.32", tcp(22, "closed", ""))}, tcp: "{[22,22]}"},
			{hosts: []sqlHost{up("10.99.50.32", tcp(22, "open", "ssh"))}, tcp: "{[22,22]}"},
		},
		want: []string{"port_opened 10.99.50.32 22/tcp closed->open"},
	},
	{
		name: "first_seen, last_seen and discovery_count",
		scans: []sqlScan{
			{hosts: []sqlHost{up("10.99.50.33", tcp(22, "open", "ssh"))}, tcp: "{[22,22]}"},
			{hosts: []sqlHost{up("10.99.50.33", tcp(22, "open", "ssh"))}, tcp: "{[22,22]}"},
			{tcp: "{[22,22]}"},
		},
		want: []string{"host_down 10.99.50.33 up->down"},
		check: func(t *testing.T, f *sqlFixture) {
			got := f.lines(t, `
				SELECT concat_ws(' ', h.discovery_count,
				       h.first_seen = (SELECT completed_at FROM scan_jobs WHERE id = $1),
				       h.last_seen = (SELECT completed_at FROM scan_jobs WHERE id = $2),
				       s.first_seen = (SELECT completed_at FROM scan_jobs WHERE id = $1),
				       s.last_seen = (SELECT completed_at FROM scan_jobs WHERE id = $2))
				FROM hosts h JOIN services s ON s.host_id = h.id`, f.jobs[0], f.jobs[1])
			// Seen up twice; first seen by the first job, last seen up by the
			// second (the third saw it down); the service likewise.
			if want := []string{"2 t t t t"}; !slices.Equal(got, want) {
				t.Errorf("discovery_count first_seen last_seen service first/last = %v, want %v", got, want)
			}
		},
	},
}

func TestCommitFunctionStatementByStatement(t *testing.T) {
	t.Parallel()
	for _, tc := range commitCases {
		for _, path := range []struct {
			name   string
			commit commitPath
		}{{"staged", stagedPath}, {"arrays", arrayPath}} {
			t.Run(path.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				f := newSQLFixture(t, path.commit)
				var last uuid.UUID
				for _, s := range tc.scans {
					last = f.run(t, s)
				}
				if got := f.events(t, last); !slices.Equal(got, sortedCopy(tc.want)) {
					t.Errorf("host_history of the last scan:\n got %q\nwant %q", got, sortedCopy(tc.want))
				}
				if tc.check != nil {
					tc.check(t, f)
				}
			})
		}
	}
}

// The staged path (large jobs) and the array path (small jobs, group
// commit) leave exactly the same hosts, services, history, port_scans and
// job stats for the same scans.
func TestCommitPathsAgree(t *testing.T) {
	t.Parallel()
	for _, tc := range commitCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var states [2][]string
			for i, commit := range []commitPath{stagedPath, arrayPath} {
				f := newSQLFixture(t, commit)
				for _, s := range tc.scans {
					f.run(t, s)
				}
				states[i] = f.state(t)
			}
			if !slices.Equal(states[0], states[1]) {
				t.Errorf("staged and array paths differ:\nstaged: %s\narrays: %s",
					strings.Join(states[0], "\n        "), strings.Join(states[1], "\n        "))
			}
		})
	}
}

// Two jobs committing at once, both reporting a host the site did not know:
// the host is discovered once, not twice.
func TestConcurrentCommitsDiscoverAHostOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newSQLFixture(t, stagedPath)
	first, second := f.newJob(t, nil), f.newJob(t, nil)
	scan := sqlScan{hosts: []sqlHost{up("10.99.50.77", tcp(22, "open", "ssh"))}, tcp: "{[22,22]}", udp: "{}"}

	// The first commit runs inside a transaction left open, so its new host
	// row stays uncommitted while the second commit runs into it.
	tx := openTx(ctx, t, f.pool)
	if err := stage(ctx, tx, scan); err != nil {
		t.Fatal(err)
	}
	var outcome string
	if err := tx.QueryRow(ctx, `SELECT outcome FROM ingest_commit($1, 'w', 1, '{[22,22]}', '{}', '{}', false, true)`, first).Scan(&outcome); err != nil || outcome != "committed" {
		t.Fatalf("first commit: %q, %v", outcome, err)
	}

	done := make(chan string, 1)
	go func() {
		out, err := commitStaged(ctx, f.pool, second, scan)
		if err != nil {
			out = err.Error()
		}
		done <- out
	}()
	// Wait until the second commit waits on the first one's row lock.
	waitForLockWait(ctx, t, f.pool, "%ingest_commit%", func() (string, bool) {
		select {
		case out := <-done:
			return out, true
		default:
			return "", false
		}
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if out := <-done; out != "committed" {
		t.Fatalf("second commit: %s", out)
	}
	got := f.lines(t, `SELECT event FROM host_history WHERE event = 'host_discovered'`)
	if len(got) != 1 {
		t.Fatalf("host_discovered recorded %d times, want once", len(got))
	}
	if got := f.lines(t, `SELECT event || ' ' || (job_id = $1) FROM host_history`, first); !slices.Equal(got, []string{"host_discovered true", "port_opened true"}) {
		t.Errorf("history = %v; want the first job's discovery and port_opened only", got)
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// waitForLockWait returns once a session running a query LIKE pattern waits
// on a lock. finished reports whether the session meant to wait ended
// instead (and how); the test fails then, or after 30 s.
func waitForLockWait(ctx context.Context, t *testing.T, pool *pgxpool.Pool, pattern string, finished func() (string, bool)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1`, pattern).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			return
		}
		if out, ok := finished(); ok {
			t.Fatalf("finished without waiting for the lock: %s", out)
		}
		if time.Now().After(deadline) {
			t.Fatal("never waited for the lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openTx begins a transaction on a connection of its own, left open until
// the test ends (rolled back then unless committed).
func openTx(ctx context.Context, t *testing.T, pool *pgxpool.Pool) pgx.Tx {
	t.Helper()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		conn.Release()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		conn.Release()
	})
	return tx
}
