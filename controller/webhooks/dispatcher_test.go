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
	bodies   map[string][]byte // by delivery id, as first POSTed
	accepted map[string]bool
	// events: event ids of the accepted deliveries, in acceptance order.
	events []int64
}

func (r *burstReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
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
// middle, each delivery with one id and one body on every attempt.
func TestDispatcherDeliversABurstInOrderThroughFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	const changes = 2*readAhead + 1234
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

	recv := &burstReceiver{t: t, secret: "sixteen-chars-secret", fail: map[int]bool{2: true, 9: true, 10: true, 17: true},
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
}
