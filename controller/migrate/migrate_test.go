package migrate_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestUpFromEmptyIsIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	all, err := migrate.All()
	if err != nil {
		t.Fatal(err)
	}
	// Several controllers starting together: exactly one applies each migration.
	var wg sync.WaitGroup
	applied := make([][]int, 4)
	errs := make([]error, 4)
	for i := range applied {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = migrate.UpURL(ctx, url, hclog.NewNullLogger())
		}()
	}
	wg.Wait()
	total := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("controller %d: %v", i, err)
		}
		total += len(applied[i])
	}
	if total != len(all) {
		t.Fatalf("migrations applied %d times in all, want %d (once each)", total, len(all))
	}
	again, err := migrate.UpURL(ctx, url, hclog.NewNullLogger())
	if err != nil || len(again) != 0 {
		t.Fatalf("second run applied %v, err %v; want nothing", again, err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	v, err := migrate.Version(ctx, conn)
	if err != nil || v != len(all) {
		t.Fatalf("version = %d, %v; want %d", v, err, len(all))
	}
	for _, table := range []string{"sites", "scan_targets", "scan_target_ports", "scan_profiles", "scan_jobs",
		"scan_job_leases", "agents", "hosts", "port_scans", "services", "host_history", "scan_exclusions"} {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing (err %v)", table, err)
		}
	}
	var partitioned bool
	if err := conn.QueryRow(ctx, "SELECT relkind = 'p' FROM pg_class WHERE relname = 'port_scans'").Scan(&partitioned); err != nil || !partitioned {
		t.Errorf("port_scans is not partitioned (err %v)", err)
	}
	var builtin int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM scan_profiles WHERE builtin").Scan(&builtin); err != nil || builtin < 3 {
		t.Errorf("built-in profiles = %d (err %v); want at least 3", builtin, err)
	}
}

// fixture rows the constraint cases build on.
const fixture = `
INSERT INTO sites (id, name) VALUES ('00000000-0000-0000-0000-0000000000a1', 'site-a'), ('00000000-0000-0000-0000-0000000000a2', 'site-b');
INSERT INTO scan_targets (id, site_id, name, network, profile_id)
  SELECT '00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 't', '10.99.0.0/24', id FROM scan_profiles WHERE name = 'default';
INSERT INTO scan_jobs (id, target_id, site_id, profile_id, network, options)
  SELECT '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', id, '10.99.0.0/24', '{}' FROM scan_profiles WHERE name = 'default';
INSERT INTO hosts (id, site_id, ip_address) VALUES ('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-0000000000a1', '10.99.0.10');
`

func TestConstraintsRejectBadRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	if _, err := migrate.UpURL(ctx, url, hclog.NewNullLogger()); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fixture); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	const (
		check   = "23514"
		unique  = "23505"
		foreign = "23503"
		ok      = ""
	)
	cases := []struct {
		name, sql, code string
	}{
		{"site name with spaces", `INSERT INTO sites (name) VALUES ('Bad Name')`, check},
		{"duplicate site", `INSERT INTO sites (name) VALUES ('site-a')`, unique},
		{"same address twice in one site", `INSERT INTO hosts (site_id, ip_address) VALUES ('00000000-0000-0000-0000-0000000000a1', '10.99.0.10')`, unique},
		{"same address in another site", `INSERT INTO hosts (site_id, ip_address) VALUES ('00000000-0000-0000-0000-0000000000a2', '10.99.0.10')`, ok},
		{"host address with a netmask", `INSERT INTO hosts (site_id, ip_address) VALUES ('00000000-0000-0000-0000-0000000000a1', '10.99.0.0/24')`, check},
		{"os confidence over 100", `UPDATE hosts SET os_confidence = 101`, check},
		{"last_seen before first_seen", `UPDATE hosts SET last_seen = first_seen - interval '1 day'`, check},
		{"progress over 100", `UPDATE scan_jobs SET progress_percent = 101`, check},
		{"completed before started", `UPDATE scan_jobs SET started_at = now(), completed_at = now() - interval '1 hour'`, check},
		{"leased without a worker", `UPDATE scan_jobs SET status = 'leased', lease_token = 1, timeout_at = now()`, check},
		{"unknown job status", `UPDATE scan_jobs SET status = 'done'`, check},
		{"completed without completed_at", `UPDATE scan_jobs SET status = 'completed'`, check},
		{"attempt beyond max_attempts", `UPDATE scan_jobs SET attempt = max_attempts + 1`, check},
		{"port 0", `INSERT INTO port_scans (job_id, host_id, port, protocol, state, scanned_at) VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 0, 'tcp', 'open', now())`, check},
		{"unknown port state", `INSERT INTO port_scans (job_id, host_id, port, protocol, state, scanned_at) VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 22, 'tcp', 'ajar', now())`, check},
		{"port scan of a job that does not exist", `INSERT INTO port_scans (job_id, host_id, port, protocol, state, scanned_at) VALUES ('00000000-0000-0000-0000-00000000ffff', '00000000-0000-0000-0000-0000000000d1', 22, 'tcp', 'open', now())`, foreign},
		{"valid port scan", `INSERT INTO port_scans (job_id, host_id, port, protocol, state, scanned_at) VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 22, 'tcp', 'open', now())`, ok},
		{"duplicate port scan row", `INSERT INTO port_scans (job_id, host_id, port, protocol, state, scanned_at) VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 22, 'tcp', 'open', '2026-01-01T00:00:00Z'), ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 22, 'tcp', 'closed', '2026-01-01T00:00:00Z')`, unique},
		{"reversed port range", `INSERT INTO scan_target_ports VALUES ('00000000-0000-0000-0000-0000000000b1', 'tcp', 100, 10)`, check},
		{"port range past 65535", `INSERT INTO scan_target_ports VALUES ('00000000-0000-0000-0000-0000000000b1', 'tcp', 1, 65536)`, check},
		{"target in a site that does not exist", `INSERT INTO scan_targets (site_id, name, network, profile_id) SELECT '00000000-0000-0000-0000-00000000ffff', 'x', '10.99.1.0/24', id FROM scan_profiles LIMIT 1`, foreign},
		{"duplicate target name in a site", `INSERT INTO scan_targets (site_id, name, network, profile_id) SELECT '00000000-0000-0000-0000-0000000000a1', 't', '10.99.1.0/24', id FROM scan_profiles LIMIT 1`, unique},
		{"profile with ports and top_ports", `INSERT INTO scan_profiles (name, scan_type, ports, top_ports) VALUES ('p', 'connect', '22', 100)`, check},
		{"profile with a free-form scan type", `INSERT INTO scan_profiles (name, scan_type) VALUES ('p2', '-sS -O --script=all')`, check},
		{"agent state unknown", `INSERT INTO agents (site_id, name, state) VALUES ('00000000-0000-0000-0000-0000000000a1', 'a', 'sleepy')`, check},
		{"history event unknown", `INSERT INTO host_history (host_id, site_id, event, changed_by) VALUES ('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-0000000000a1', 'port_ajar', 'test')`, check},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Each case runs in a transaction that is rolled back, so cases
			// cannot see each other's rows.
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx) //nolint:errcheck // rolled back on purpose
			_, err = tx.Exec(ctx, tc.sql)
			var pgErr *pgconn.PgError
			switch {
			case tc.code == ok && err != nil:
				t.Fatalf("want success, got %v", err)
			case tc.code != ok && !errors.As(err, &pgErr):
				t.Fatalf("want SQLSTATE %s, got %v", tc.code, err)
			case tc.code != ok && pgErr.Code != tc.code:
				t.Fatalf("want SQLSTATE %s, got %s: %s", tc.code, pgErr.Code, pgErr.Message)
			}
		})
	}
}
