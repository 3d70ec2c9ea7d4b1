package scope_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/authz"
	"github.com/scanorama/scanorama/controller/pgtest"
	"github.com/scanorama/scanorama/controller/scope"
	"github.com/scanorama/scanorama/gen/db"
)

type fixture struct {
	pool    *pgxpool.Pool
	siteA   uuid.UUID
	siteB   uuid.UUID
	hostB   uuid.UUID
	jobB    uuid.UUID
	targetB uuid.UUID
}

// seed writes one site's worth of rows in every site-data table for sites
// a and b, as the owning role (the agent path).
func seed(t *testing.T) *fixture {
	t.Helper()
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	f := &fixture{pool: pool}
	for _, site := range []struct {
		name string
		id   *uuid.UUID
	}{{"a", &f.siteA}, {"b", &f.siteB}} {
		var target, job, host uuid.UUID
		err := pool.QueryRow(ctx, `
WITH s AS (INSERT INTO sites (name) VALUES ($1) RETURNING id),
     t AS (INSERT INTO scan_targets (site_id, name, network, profile_id)
           SELECT s.id, 'net', '10.99.0.0/24', (SELECT id FROM scan_profiles WHERE name = 'quick') FROM s RETURNING id, site_id)
SELECT t.site_id, t.id FROM t`, site.name).Scan(site.id, &target)
		if err != nil {
			t.Fatal(err)
		}
		// Every statement takes both parameters (site, target).
		steps := []string{
			`INSERT INTO scan_target_ports (target_id, protocol, port_start, port_end) SELECT $2::uuid, 'tcp', 22, 22 WHERE $1::uuid IS NOT NULL`,
			`INSERT INTO scan_exclusions (site_id, network) SELECT $1::uuid, '10.99.0.1/32' WHERE $2::uuid IS NOT NULL`,
			`INSERT INTO scan_exclusions (target_id, network) SELECT $2::uuid, '10.99.0.2/32' WHERE $1::uuid IS NOT NULL`,
			`INSERT INTO agents (site_id, name) SELECT $1::uuid, 'agent' WHERE $2::uuid IS NOT NULL`,
			`INSERT INTO scan_runs (target_id, scheduled_for, outcome, created_by, origin) SELECT $2::uuid, now(), 'created', 'test', 'scan_now' WHERE $1::uuid IS NOT NULL`,
		}
		for _, s := range steps {
			if _, err := pool.Exec(ctx, s, *site.id, target); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		if err := pool.QueryRow(ctx, `INSERT INTO scan_jobs (target_id, site_id, profile_id, network, options)
SELECT $2, $1, profile_id, network, '{}' FROM scan_targets WHERE id = $2 RETURNING id`, *site.id, target).Scan(&job); err != nil {
			t.Fatal(err)
		}
		if err := pool.QueryRow(ctx, `INSERT INTO hosts (site_id, ip_address) VALUES ($1, '10.99.0.10') RETURNING id`, *site.id).Scan(&host); err != nil {
			t.Fatal(err)
		}
		// Every statement takes both parameters (job, host).
		steps = []string{
			`INSERT INTO scan_job_leases (job_id, lease_token, worker_id) SELECT $1::uuid, 1, 'w' WHERE $2::uuid IS NOT NULL`,
			`INSERT INTO services (host_id, port, protocol, state) SELECT $2::uuid, 22, 'tcp', 'open' WHERE $1::uuid IS NOT NULL`,
			`INSERT INTO port_scans (job_id, host_id, port, protocol, state, scanned_at) VALUES ($1, $2, 22, 'tcp', 'open', now())`,
			`INSERT INTO host_history (host_id, site_id, job_id, event, changed_by) SELECT $2, site_id, $1, 'host_discovered', 'test' FROM hosts WHERE id = $2`,
		}
		for _, s := range steps {
			if _, err := pool.Exec(ctx, s, job, host); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		if site.name == "b" {
			f.hostB, f.jobB, f.targetB = host, job, target
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO scan_exclusions (network, reason) VALUES ('10.99.0.254/32', 'global')`); err != nil {
		t.Fatal(err)
	}
	return f
}

// siteTables and the query counting one site's rows in each.
var siteTables = map[string]string{
	"sites":             `SELECT count(*) FROM sites WHERE id = $1`,
	"scan_targets":      `SELECT count(*) FROM scan_targets WHERE site_id = $1`,
	"scan_target_ports": `SELECT count(*) FROM scan_target_ports p JOIN scan_targets t ON t.id = p.target_id WHERE t.site_id = $1`,
	"scan_exclusions":   `SELECT count(*) FROM scan_exclusions e WHERE e.site_id = $1 OR e.target_id IN (SELECT id FROM scan_targets WHERE site_id = $1)`,
	"agents":            `SELECT count(*) FROM agents WHERE site_id = $1`,
	"scan_jobs":         `SELECT count(*) FROM scan_jobs WHERE site_id = $1`,
	"scan_job_leases":   `SELECT count(*) FROM scan_job_leases l JOIN scan_jobs j ON j.id = l.job_id WHERE j.site_id = $1`,
	"hosts":             `SELECT count(*) FROM hosts WHERE site_id = $1`,
	"services":          `SELECT count(*) FROM services s JOIN hosts h ON h.id = s.host_id WHERE h.site_id = $1`,
	"port_scans":        `SELECT count(*) FROM port_scans p JOIN hosts h ON h.id = p.host_id WHERE h.site_id = $1`,
	"host_history":      `SELECT count(*) FROM host_history WHERE site_id = $1`,
	"scan_runs":         `SELECT count(*) FROM scan_runs r JOIN scan_targets t ON t.id = r.target_id WHERE t.site_id = $1`,
}

// as runs f in a transaction set up exactly as scope does for p.
func as(t *testing.T, pool *pgxpool.Pool, p *authz.Principal, f func(tx pgx.Tx)) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if p != nil {
		if err := scope.Apply(ctx, tx, *p); err != nil {
			t.Fatal(err)
		}
	} else if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+scope.Role); err != nil {
		t.Fatal(err)
	}
	f(tx)
}

func count(t *testing.T, tx pgx.Tx, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := tx.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// A raw SELECT under site A's scope returns none of site B's rows in any
// site-data table; unscoped sees them; no scope setting at all sees nothing.
func TestRowLevelSecuritySQL(t *testing.T) {
	t.Parallel()
	f := seed(t)
	scopedA := &authz.Principal{Kind: authz.KindToken, Role: authz.RoleAdmin, Sites: []uuid.UUID{f.siteA}}
	all := &authz.Principal{Kind: authz.KindToken, Role: authz.RoleAdmin}
	for table, q := range siteTables {
		as(t, f.pool, scopedA, func(tx pgx.Tx) {
			if n := count(t, tx, q, f.siteB); n != 0 {
				t.Errorf("%s: a site-a caller sees %d rows of site b", table, n)
			}
			if n := count(t, tx, q, f.siteA); n == 0 {
				t.Errorf("%s: a site-a caller sees none of its own rows", table)
			}
		})
		as(t, f.pool, all, func(tx pgx.Tx) {
			if n := count(t, tx, q, f.siteB); n == 0 {
				t.Errorf("%s: an unscoped caller sees no rows of site b", table)
			}
		})
		as(t, f.pool, nil, func(tx pgx.Tx) {
			if n := count(t, tx, q, f.siteA) + count(t, tx, q, f.siteB); n != 0 {
				t.Errorf("%s: without a scope setting the admin role sees %d rows; want none", table, n)
			}
		})
	}
	// Global exclusions and profiles are readable by a scoped caller, not writable.
	as(t, f.pool, scopedA, func(tx pgx.Tx) {
		if n := count(t, tx, `SELECT count(*) FROM scan_exclusions WHERE site_id IS NULL AND target_id IS NULL`); n != 1 {
			t.Errorf("global exclusions seen by a scoped caller: %d, want 1", n)
		}
		if n := count(t, tx, `SELECT count(*) FROM scan_profiles`); n == 0 {
			t.Error("a scoped caller sees no profiles")
		}
	})
	writes := []string{
		`INSERT INTO scan_exclusions (network) VALUES ('10.99.1.0/24')`,
		`INSERT INTO scan_targets (site_id, name, network, profile_id) SELECT $1, 'x', '10.99.2.0/24', id FROM scan_profiles WHERE name = 'quick'`,
		`INSERT INTO scan_profiles (name, scan_type) VALUES ('mine', 'connect')`,
		`INSERT INTO sites (name) VALUES ('c')`,
		`INSERT INTO api_tokens (id, name, role, secret_sha256, created_by) VALUES ('00000000000000aa', 'x', 'admin', sha256(''), 't')`,
	}
	for _, w := range writes {
		as(t, f.pool, scopedA, func(tx pgx.Tx) {
			args := []any{}
			if countParams(w) > 0 {
				args = append(args, f.siteB)
			}
			_, err := tx.Exec(context.Background(), w, args...)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
				t.Errorf("%s as a site-a caller: %v; want a row-level security violation", w, err)
			}
		})
	}
	// Updates and deletes of another site's rows touch nothing.
	as(t, f.pool, scopedA, func(tx pgx.Tx) {
		for _, w := range []struct {
			sql string
			id  uuid.UUID
		}{
			{`UPDATE hosts SET ignore_scanning = true WHERE id = $1`, f.hostB},
			{`DELETE FROM scan_targets WHERE id = $1`, f.targetB},
			{`UPDATE scan_jobs SET status = 'cancelled', completed_at = now() WHERE id = $1`, f.jobB},
		} {
			tag, err := tx.Exec(context.Background(), w.sql, w.id)
			if err != nil || tag.RowsAffected() != 0 {
				t.Errorf("%s on site b as a site-a caller: %v, %d rows", w.sql, err, tag.RowsAffected())
			}
		}
	})
}

func countParams(sql string) int {
	n := 0
	for i := 0; i+1 < len(sql); i++ {
		if sql[i] == '$' {
			n++
		}
	}
	return n
}

// The admin role can never bypass the policies.
func TestAdminRoleIsNotPrivileged(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	var super, bypass, login bool
	var owns int
	err := pool.QueryRow(context.Background(), `SELECT rolsuper, rolbypassrls, rolcanlogin,
  (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid)::int FROM pg_roles r WHERE rolname = $1`, scope.Role).Scan(&super, &bypass, &login, &owns)
	if err != nil {
		t.Fatal(err)
	}
	if super || bypass || login || owns != 0 {
		t.Fatalf("%s: superuser %v, bypassrls %v, login %v, owns %d relations", scope.Role, super, bypass, login, owns)
	}
}

// Every table with a site_id, host_id, target_id or job_id column (site
// data) has row-level security, so a table added later without a policy
// fails here instead of leaking to scoped callers.
func TestEverySiteTableHasRowLevelSecurity(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	rows, err := pool.Query(context.Background(), `
SELECT DISTINCT c.relname, c.relrowsecurity
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname IN ('site_id', 'host_id', 'target_id', 'job_id', 'site_ids') AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var name string
		var rls bool
		if err := rows.Scan(&name, &rls); err != nil {
			t.Fatal(err)
		}
		seen++
		if !rls {
			t.Errorf("table %s holds site data but has no row-level security (add a policy for %s in a migration)", name, scope.Role)
		}
	}
	if seen < 10 {
		t.Fatalf("found only %d site-data tables", seen)
	}
}

// DB refuses to run anything for a context without a caller.
func TestDBRefusesWithoutPrincipal(t *testing.T) {
	t.Parallel()
	q := db.New(scope.New(pgtest.NewPool(t)))
	if _, err := q.ListSites(context.Background(), db.ListSitesParams{RowLimit: 10}); !errors.Is(err, scope.ErrNoPrincipal) {
		t.Fatalf("ListSites without a principal: %v", err)
	}
}

// Statements through DB see only the caller's sites, and writes commit.
func TestDBScopesStatements(t *testing.T) {
	t.Parallel()
	f := seed(t)
	ctx := authz.NewContext(context.Background(), authz.Principal{Kind: authz.KindToken, Role: authz.RoleAdmin, Sites: []uuid.UUID{f.siteA}})
	q := db.New(scope.New(f.pool))
	sites, err := q.ListSites(ctx, db.ListSitesParams{RowLimit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(sites) != 1 || sites[0].ID != f.siteA {
		t.Fatalf("ListSites for a site-a caller: %+v", sites)
	}
	if _, err := q.CreateSite(ctx, db.CreateSiteParams{Name: "c", CreatedBy: "t"}); err == nil {
		t.Fatal("a site-a caller created a site")
	}
	unscoped := authz.NewContext(context.Background(), authz.Principal{Kind: authz.KindToken, Role: authz.RoleAdmin})
	if _, err := q.CreateSite(unscoped, db.CreateSiteParams{Name: "c", CreatedBy: "t"}); err != nil {
		t.Fatalf("unscoped CreateSite: %v", err)
	}
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM sites`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("sites after an unscoped CreateSite: %d, %v (not committed?)", n, err)
	}
}
