package webhooks

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrate.Template)
	pgtest.Main(m)
}

// burstReceiver fails chosen requests and checks what every attempt of a
// delivery carried.
type burstReceiver struct {
	t        *testing.T
	secret   string
	mu       sync.Mutex
	requests int
	fail     map[int]bool      // request numbers answered 503
	delay    time.Duration     // before answering each request
	bodies   map[string][]byte // by delivery id, as first POSTed
	accepted map[string]bool
	// events: event ids of the accepted deliveries, in acceptance order.
	events []int64
}

func (r *burstReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	time.Sleep(r.delay)
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := req.Header.Get(HeaderDelivery)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if !Verify(r.secret, body, req.Header.Get(HeaderSignature)) {
		r.t.Errorf("delivery %s: signature does not verify", id)
	}
	if prev, seen := r.bodies[id]; seen && string(prev) != string(body) {
		r.t.Errorf("delivery %s: a repeat carried another body", id)
	}
	r.bodies[id] = body
	if r.fail[r.requests] {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if !r.accepted[id] {
		r.accepted[id] = true
		var p Payload
		if err := json.Unmarshal(body, &p); err != nil {
			r.t.Errorf("delivery %s: %v", id, err)
		}
		for _, e := range p.Events {
			r.events = append(r.events, e.ID)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *burstReceiver) received() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// A burst of several feed pages (read ahead of the builder, sent while
// later pages are built, marked delivered behind the POSTs) reaches the
// receiver in full and in feed order, through failed attempts in the
// middle, each delivery with one id and one body on every attempt, the
// body it was stored with. With a slow receiver the builder waits for the
// sender (buildAhead) and encodes into the buffers of bodies sent.
func TestDispatcherDeliversABurstInOrderThroughFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		changes int
		fail    map[int]bool // request numbers answered 503
		delay   time.Duration
	}{
		{"failures in the middle", 2*readAhead + 1234, map[int]bool{2: true, 9: true, 10: true, 17: true}, 0},
		{"slow receiver", 3*readAhead + 500, nil, 2 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			deliverBurst(t, tc.changes, tc.fail, tc.delay)
		})
	}
}

func deliverBurst(t *testing.T, changes int, fail map[int]bool, delay time.Duration) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	if _, err := pool.Exec(ctx, `
		INSERT INTO sites (id, name) VALUES ('00000000-0000-0000-0000-00000000005e', 'lab');
		INSERT INTO hosts (site_id, ip_address, hostname, status)
		SELECT '00000000-0000-0000-0000-00000000005e', ('10.99.7.' || g)::inet, 'h' || g || '.bücher.example', 'up'
		FROM generate_series(1, 40) g;
		INSERT INTO webhooks (id, name, url, site_id, secret, created_by)
		VALUES ('00000000-0000-0000-0000-0000000000e1', 'burst', 'http://127.0.0.1:9/', '00000000-0000-0000-0000-00000000005e',
		        'sixteen-chars-secret', 'test');
		INSERT INTO webhook_cursors (webhook_id, feed_seq) VALUES ('00000000-0000-0000-0000-0000000000e1', 0);`); err != nil {
		t.Fatal(err)
	}
	// One commit, as an agent's results arrive.
	if _, err := pool.Exec(ctx, `
		INSERT INTO host_history (host_id, site_id, event, port, protocol, new_value, changed_by)
		SELECT h.id, h.site_id, 'port_opened', 1 + g / 40, 'tcp', 'open', 'test'
		FROM generate_series(0, $1 - 1) g
		JOIN LATERAL (SELECT * FROM hosts ORDER BY ip_address OFFSET g % 40 LIMIT 1) h ON true`, changes); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT id FROM host_history ORDER BY feed_seq`)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(want) != changes {
		t.Fatalf("history: %d rows, %v", len(want), err)
	}

	recv := &burstReceiver{t: t, secret: "sixteen-chars-secret", fail: fail, delay: delay,
		bodies: map[string][]byte{}, accepted: map[string]bool{}}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	if _, err := pool.Exec(ctx, `UPDATE webhooks SET url = $1`, srv.URL); err != nil {
		t.Fatal(err)
	}
	d := New(pool, nil, Options{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxAttempts: 10,
		Timeout: 10 * time.Second, PollEvery: 10 * time.Millisecond}, hclog.NewNullLogger())
	for stop := time.Now().Add(2 * time.Minute); recv.received() < changes; {
		if time.Now().After(stop) {
			t.Fatalf("received %d of %d changes", recv.received(), changes)
		}
		if _, _, err := d.Cycle(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if !slices.Equal(recv.events, want) {
		t.Fatalf("received %d events, want %d in feed order", len(recv.events), len(want))
	}
	var pending, delivered int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state <> 'delivered'), count(*) FILTER (WHERE state = 'delivered')
		FROM webhook_deliveries`).Scan(&pending, &delivered); err != nil {
		t.Fatal(err)
	}
	if pending != 0 || delivered != len(recv.accepted) {
		t.Fatalf("%d deliveries still pending, %d delivered; the receiver accepted %d", pending, delivered, len(recv.accepted))
	}
	for id, body := range recv.bodies {
		var stored []byte
		if err := pool.QueryRow(ctx, `SELECT body FROM webhook_deliveries WHERE id = $1`, id).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if string(stored) != string(body) {
			t.Errorf("delivery %s: POSTed body differs from the stored one", id)
		}
	}
}

// A webhook on every site reads the feed of all sites, and one that filters
// by target sends only the changes of that target's jobs; each event
// carries its own host's address and name and its own site's name (the
// builder looks them up once per page, not per change).
func TestDispatcherReadsEverySiteAndFiltersByTarget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	if _, err := pool.Exec(ctx, `
		INSERT INTO sites (id, name) VALUES
		  ('00000000-0000-0000-0000-0000000000a1', 'east'), ('00000000-0000-0000-0000-0000000000b1', 'west');
		INSERT INTO hosts (site_id, ip_address, hostname, status)
		SELECT s, ('10.99.' || n || '.' || g)::inet, CASE WHEN g = 1 THEN NULL ELSE 'h' || g || '.' || n END, 'up'
		FROM (VALUES ('00000000-0000-0000-0000-0000000000a1'::uuid, 8), ('00000000-0000-0000-0000-0000000000b1'::uuid, 9)) v(s, n),
		     generate_series(1, 3) g;
		INSERT INTO scan_targets (id, site_id, name, network, profile_id)
		SELECT t, s, 'net-' || n, ('10.99.' || n || '.0/24')::cidr, (SELECT id FROM scan_profiles ORDER BY name LIMIT 1)
		FROM (VALUES ('00000000-0000-0000-0000-0000000000a2'::uuid, '00000000-0000-0000-0000-0000000000a1'::uuid, 8),
		             ('00000000-0000-0000-0000-0000000000b2'::uuid, '00000000-0000-0000-0000-0000000000b1'::uuid, 9)) v(t, s, n);
		INSERT INTO scan_jobs (id, target_id, site_id, profile_id, network, options, status)
		SELECT j, t.id, t.site_id, t.profile_id, t.network, '{}', 'pending'
		FROM (VALUES ('00000000-0000-0000-0000-0000000000a3'::uuid, '00000000-0000-0000-0000-0000000000a2'::uuid),
		             ('00000000-0000-0000-0000-0000000000b3'::uuid, '00000000-0000-0000-0000-0000000000b2'::uuid)) v(j, tid)
		JOIN scan_targets t ON t.id = v.tid;
		INSERT INTO webhooks (id, name, url, site_id, target_id, secret, created_by) VALUES
		  ('00000000-0000-0000-0000-0000000000e2', 'everywhere', 'http://127.0.0.1:9/', NULL, NULL, 'sixteen-chars-secret', 'test'),
		  ('00000000-0000-0000-0000-0000000000e3', 'east-net', 'http://127.0.0.1:9/', '00000000-0000-0000-0000-0000000000a1',
		   '00000000-0000-0000-0000-0000000000a2', 'sixteen-chars-secret', 'test');
		INSERT INTO webhook_cursors (webhook_id, feed_seq)
		VALUES ('00000000-0000-0000-0000-0000000000e2', 0), ('00000000-0000-0000-0000-0000000000e3', 0);`); err != nil {
		t.Fatal(err)
	}
	// Changes on both sites, by each site's job and (east) by no job, in
	// several commits, more than one page in all.
	const perCommit = 1500
	for round := range 4 {
		if _, err := pool.Exec(ctx, `
			INSERT INTO host_history (host_id, site_id, job_id, event, port, protocol, new_value, changed_by)
			SELECT h.id, h.site_id,
			       CASE WHEN g % 5 = 0 THEN NULL WHEN h.site_id = '00000000-0000-0000-0000-0000000000a1'
			            THEN '00000000-0000-0000-0000-0000000000a3'::uuid ELSE '00000000-0000-0000-0000-0000000000b3'::uuid END,
			       'port_opened', 1 + g, 'tcp', 'open', 'test'
			FROM generate_series(0, $1 - 1) g
			JOIN LATERAL (SELECT * FROM hosts ORDER BY ip_address OFFSET (g + $2) % 6 LIMIT 1) h ON true`, perCommit, round); err != nil {
			t.Fatal(err)
		}
	}
	type change struct {
		id                 int64
		site, ip, hostname string
		targeted           bool
	}
	rows, err := pool.Query(ctx, `
		SELECT hh.id, s.name, host(h.ip_address), coalesce(h.hostname, ''), coalesce(j.target_id = '00000000-0000-0000-0000-0000000000a2', false)
		FROM host_history hh JOIN hosts h ON h.id = hh.host_id JOIN sites s ON s.id = hh.site_id
		LEFT JOIN scan_jobs j ON j.id = hh.job_id ORDER BY hh.feed_seq`)
	if err != nil {
		t.Fatal(err)
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (c change, err error) {
		return c, r.Scan(&c.id, &c.site, &c.ip, &c.hostname, &c.targeted)
	})
	if err != nil {
		t.Fatal(err)
	}
	var targeted []change
	for _, c := range all {
		if c.targeted {
			targeted = append(targeted, c)
		}
	}
	if len(targeted) == 0 || len(targeted) == len(all) {
		t.Fatalf("%d of %d changes targeted: the test needs both kinds", len(targeted), len(all))
	}

	receivers := map[string]*burstReceiver{}
	for _, hook := range []string{"everywhere", "east-net"} {
		r := &burstReceiver{t: t, secret: "sixteen-chars-secret", bodies: map[string][]byte{}, accepted: map[string]bool{}}
		srv := httptest.NewServer(r)
		defer srv.Close()
		if _, err := pool.Exec(ctx, `UPDATE webhooks SET url = $1 WHERE name = $2`, srv.URL, hook); err != nil {
			t.Fatal(err)
		}
		receivers[hook] = r
	}
	d := New(pool, nil, Options{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxAttempts: 10,
		Timeout: 10 * time.Second, PollEvery: 10 * time.Millisecond}, hclog.NewNullLogger())
	for stop := time.Now().Add(time.Minute); receivers["everywhere"].received() < len(all) || receivers["east-net"].received() < len(targeted); {
		if time.Now().After(stop) {
			t.Fatalf("received %d of %d and %d of %d changes", receivers["everywhere"].received(), len(all),
				receivers["east-net"].received(), len(targeted))
		}
		if _, _, err := d.Cycle(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for hook, want := range map[string][]change{"everywhere": all, "east-net": targeted} {
		r := receivers[hook]
		r.mu.Lock()
		var got []change
		for _, body := range r.bodies {
			var p Payload
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Events {
				c := change{id: e.ID, site: e.Site, ip: e.IPAddress}
				if e.Hostname != nil {
					c.hostname = *e.Hostname
				}
				got = append(got, c)
			}
		}
		r.mu.Unlock()
		slices.SortFunc(got, func(a, b change) int { return int(a.id - b.id) })
		wantByID := slices.Clone(want)
		for i := range wantByID {
			wantByID[i].targeted = false // not in a payload
		}
		slices.SortFunc(wantByID, func(a, b change) int { return int(a.id - b.id) })
		if !slices.Equal(got, wantByID) {
			t.Errorf("%s: received %d changes, want %d with their own site, address and name", hook, len(got), len(want))
		}
		if ids := r.eventIDs(); !slices.EqualFunc(ids, want, func(id int64, c change) bool { return id == c.id }) {
			t.Errorf("%s: changes not received in feed order", hook)
		}
	}
	// What went out is what the outbox holds, byte for byte (sent from
	// memory, as built).
	for _, r := range receivers {
		r.mu.Lock()
		for id, body := range r.bodies {
			var stored []byte
			if err := pool.QueryRow(ctx, `SELECT body FROM webhook_deliveries WHERE id = $1`, id).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if string(stored) != string(body) {
				t.Errorf("delivery %s: POSTed body differs from the stored one", id)
			}
		}
		r.mu.Unlock()
	}
}

func (r *burstReceiver) eventIDs() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}
