package scope_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/controller/authz"
	"github.com/scanorama/scanorama/controller/pgtest"
	"github.com/scanorama/scanorama/controller/scope"
	"github.com/scanorama/scanorama/gen/db"
)

// recordingDB remembers the last query sent through Query, so a test can
// EXPLAIN exactly what a generated db method ran.
type recordingDB struct {
	*scope.DB
	sql  string
	args []any
}

func (r *recordingDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.sql, r.args = sql, args
	return r.DB.Query(ctx, sql, args...)
}

// ListHosts with a network returns exactly the hosts inside it, and, run
// as the admin role (row-level security), its plan bounds the
// hosts_site_ip scan to the network. Under RLS PostgreSQL does not derive
// index bounds from <<= (not leakproof); at a million hosts the unbounded
// scan read a whole 311,829-host site per call (740 ms p99). Open ports
// come from hosts.open_ports: the plan reads no services.
func TestListHostsNetworkBoundsTheIndexScan(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	var site uuid.UUID
	if err := pool.QueryRow(ctx, `INSERT INTO sites (name) VALUES ('big') RETURNING id`).Scan(&site); err != nil {
		t.Fatal(err)
	}
	// Enough hosts that an index scan is the plan, with the edges of the
	// queried networks: 10.99.0.0 .. 10.99.39.255 and 2001:db8::0 .. ::9c3f.
	if _, err := pool.Exec(ctx, `
		INSERT INTO hosts (site_id, ip_address)
		SELECT $1::uuid, '10.99.0.0'::inet + g FROM generate_series(0, 10239) g
		UNION ALL
		SELECT $1::uuid, '2001:db8::'::inet + g FROM generate_series(0, 39999) g`, site); err != nil {
		t.Fatal(err)
	}
	// The lowest host of each queried network has two open ports and a
	// closed one; ListHosts reports them from hosts.open_ports.
	if _, err := pool.Exec(ctx, `
		INSERT INTO services (host_id, port, protocol, state)
		SELECT h.id, p.port, 'tcp', p.state
		FROM hosts h, (VALUES (22, 'open'), (80, 'open'), (25, 'closed')) p (port, state)
		WHERE h.ip_address IN ('10.99.7.0', '2001:db8::2300', '2001:db8::9b00')`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE hosts`); err != nil {
		t.Fatal(err)
	}
	q := &recordingDB{DB: scope.New(pool)}
	for _, tc := range []struct {
		name      string
		principal authz.Principal
		network   string
		first     string // lowest and highest host expected, 256 of them
		last      string
	}{
		{"all sites, /24", authz.Principal{Kind: authz.KindToken, Role: authz.RoleAdmin}, "10.99.7.0/24", "10.99.7.0", "10.99.7.255"},
		{"all sites, /120", authz.Principal{Kind: authz.KindToken, Role: authz.RoleAdmin}, "2001:db8::2300/120", "2001:db8::2300", "2001:db8::23ff"},
		{"scoped to the site, /120", authz.Principal{Kind: authz.KindToken, Role: authz.RoleAdmin, Sites: []uuid.UUID{site}},
			"2001:db8::9b00/120", "2001:db8::9b00", "2001:db8::9bff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pctx := authz.NewContext(ctx, tc.principal)
			nw := netip.MustParsePrefix(tc.network)
			rows, err := db.New(q).ListHosts(pctx, db.ListHostsParams{
				SiteID: uuid.NullUUID{UUID: site, Valid: true}, Network: &nw, AfterIp: netip.IPv4Unspecified(), RowLimit: 1000,
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 256 || rows[0].Host.IpAddress.String() != tc.first || rows[255].Host.IpAddress.String() != tc.last {
				got := make([]string, 0, len(rows))
				for _, r := range rows {
					got = append(got, r.Host.IpAddress.String())
				}
				t.Fatalf("ListHosts %s returned %d hosts %v, want 256 from %s to %s", tc.network, len(rows), got, tc.first, tc.last)
			}
			for i, r := range rows {
				if want := map[bool]int32{true: 2, false: 0}[i == 0]; r.Host.OpenPorts != want {
					t.Errorf("%s: open_ports %d, want %d", r.Host.IpAddress, r.Host.OpenPorts, want)
				}
			}
			plan, err := q.DB.Query(pctx, "EXPLAIN "+q.sql, q.args...)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(plan, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			bounded := slices.ContainsFunc(lines, func(l string) bool {
				return strings.Contains(l, "Index Cond:") && strings.Contains(l, "ip_address >=") && strings.Contains(l, "ip_address <=")
			})
			if !bounded {
				t.Fatalf("ListHosts network=%s: no index condition bounds ip_address:\n%s", tc.network, strings.Join(lines, "\n"))
			}
			// Open ports come with the hosts rows: the plan reads no
			// services (it did once per listed host, 256 lookups a page).
			if slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "services") }) {
				t.Fatalf("ListHosts network=%s reads services:\n%s", tc.network, strings.Join(lines, "\n"))
			}
		})
	}
}
