package migrate_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgtest"
)

// hosts.open_ports equals the host's services rows in state 'open' after
// every kind of write to services (migration 0021's triggers): inserts,
// upserts, state changes both ways, other updates, deletes, a host's
// cascade, TRUNCATE, and concurrent commits on one host.
func TestHostOpenPortsFollowServices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	if _, err := migrate.UpURL(ctx, url, hclog.NewNullLogger()); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	const (
		a = "00000000-0000-0000-0000-0000000000d1"
		b = "00000000-0000-0000-0000-0000000000d2"
	)
	if _, err := pool.Exec(ctx, `
		INSERT INTO sites (id, name) VALUES ('00000000-0000-0000-0000-0000000000a1', 'lab');
		INSERT INTO hosts (id, site_id, ip_address) VALUES
		    ('`+a+`', '00000000-0000-0000-0000-0000000000a1', '10.99.0.1'),
		    ('`+b+`', '00000000-0000-0000-0000-0000000000a1', '10.99.0.2')`); err != nil {
		t.Fatal(err)
	}
	// Each step runs in order on the same rows; want is each host's count after it.
	steps := []struct {
		name string
		sql  string
		want map[string]int
	}{
		{"insert open and closed ports", `INSERT INTO services (host_id, port, protocol, state) VALUES
			('` + a + `', 22, 'tcp', 'open'), ('` + a + `', 80, 'tcp', 'open'), ('` + a + `', 443, 'tcp', 'open'),
			('` + a + `', 25, 'tcp', 'closed'), ('` + b + `', 53, 'udp', 'open')`, map[string]int{a: 3, b: 1}},
		{"one port opens, another closes, in one statement", `UPDATE services SET state = CASE port WHEN 25 THEN 'open' ELSE 'filtered' END
			WHERE host_id = '` + a + `' AND port IN (25, 443)`, map[string]int{a: 3, b: 1}},
		{"one port closes", `UPDATE services SET state = 'closed' WHERE host_id = '` + a + `' AND port = 22`, map[string]int{a: 2, b: 1}},
		{"update that leaves the state", `UPDATE services SET last_seen = now(), service_name = 'x'`, map[string]int{a: 2, b: 1}},
		{"upsert: a new open port and a known one closing", `INSERT INTO services AS s (host_id, port, protocol, state) VALUES
			('` + b + `', 8080, 'tcp', 'open'), ('` + b + `', 53, 'udp', 'closed')
			ON CONFLICT (host_id, protocol, port) DO UPDATE SET state = EXCLUDED.state`, map[string]int{a: 2, b: 1}},
		{"upsert reopening a port", `INSERT INTO services AS s (host_id, port, protocol, state) VALUES ('` + a + `', 22, 'tcp', 'open')
			ON CONFLICT (host_id, protocol, port) DO UPDATE SET state = EXCLUDED.state`, map[string]int{a: 3, b: 1}},
		{"delete an open and a closed port", `DELETE FROM services WHERE host_id = '` + a + `' AND port IN (22, 443)`, map[string]int{a: 2, b: 1}},
		{"host deleted: its services go by cascade", `DELETE FROM hosts WHERE id = '` + b + `'`, map[string]int{a: 2}},
		{"truncate", `TRUNCATE services`, map[string]int{a: 0}},
	}
	check := func(t *testing.T, want map[string]int) {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT h.id::text, h.open_ports,
			(SELECT count(*) FROM services s WHERE s.host_id = h.id AND s.state = 'open')::int FROM hosts h`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		seen := 0
		for rows.Next() {
			var id string
			var kept, counted int
			if err := rows.Scan(&id, &kept, &counted); err != nil {
				t.Fatal(err)
			}
			seen++
			if kept != counted || kept != want[id] {
				t.Errorf("host %s: open_ports %d, services has %d open, want %d", id, kept, counted, want[id])
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if seen != len(want) {
			t.Errorf("%d hosts, want %d", seen, len(want))
		}
	}
	for _, s := range steps {
		if _, err := pool.Exec(ctx, s.sql); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		t.Run(s.name, func(t *testing.T) { check(t, s.want) })
	}

	// Concurrent transactions opening ports of the same host each add
	// their own: none overwrites another's count.
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := pool.Exec(ctx, fmt.Sprintf(`INSERT INTO services (host_id, port, protocol, state)
				SELECT '%s', 1000 + %d * 10 + g, 'tcp', CASE WHEN g = 0 THEN 'open' ELSE 'closed' END
				FROM generate_series(0, 2) g`, a, i))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Run("concurrent writers", func(t *testing.T) { check(t, map[string]int{a: writers}) })
}
