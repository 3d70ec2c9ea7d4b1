package agentapi

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scanorama/scanorama/controller/pgtest"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// TestCachedAgentsRefreshTogether checks that a change to a cached agent's
// row (a drain, a revocation, a deletion) reaches its next call through
// the fleet-wide refresh, without that call reading the row itself: the
// refresh that reads only changed rows sees a drain and a revocation; a
// deletion leaves no changed row and waits for the full refresh.
func TestCachedAgentsRefreshTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	id := agentSeenMinuteAgo(t, pool, "active")
	s := New(pool, testLeaser(pool), nil, hclog.NewNullLogger())
	// Rows never expire here, so "not seen before the refresh" does not
	// depend on how fast this test runs.
	s.agents = newAgentCache(time.Hour)
	hb := func() (*pb.HeartbeatResponse, error) {
		return s.Heartbeat(ctx, &pb.HeartbeatRequest{AgentId: id.String()})
	}
	resp, err := hb()
	if err != nil || resp.GetDraining() {
		t.Fatalf("first heartbeat: draining %v, error %v; want active", resp.GetDraining(), err)
	}

	s.refreshAgents(ctx, s.q) // the first refresh reads every row and sets the horizon
	steps := []struct {
		name  string
		sql   string
		full  bool
		check func(*pb.HeartbeatResponse, error) string
	}{
		{"drained", "UPDATE agents SET state = 'draining' WHERE id = $1", false, func(r *pb.HeartbeatResponse, err error) string {
			if err != nil || !r.GetDraining() {
				return "want draining"
			}
			return ""
		}},
		{"revoked", "UPDATE agents SET state = 'revoked', revoked_at = now() WHERE id = $1", false, func(_ *pb.HeartbeatResponse, err error) string {
			if status.Code(err) != codes.PermissionDenied {
				return "want PermissionDenied"
			}
			return ""
		}},
		{"deleted", "DELETE FROM agents WHERE id = $1", true, func(_ *pb.HeartbeatResponse, err error) string {
			if status.Code(err) != codes.Unauthenticated {
				return "want Unauthenticated"
			}
			return ""
		}},
	}
	for _, st := range steps {
		if _, err := pool.Exec(ctx, st.sql, id); err != nil {
			t.Fatal(err)
		}
		// Within the TTL the cached row still answers: the change waits
		// for the refresh, not for a read per call.
		if resp, err := hb(); st.check(resp, err) == "" {
			t.Fatalf("%s: seen before any refresh; the call read the row itself", st.name)
		}
		s.refreshAgents(ctx, s.q)
		if st.full {
			if resp, err := hb(); st.check(resp, err) == "" {
				t.Fatalf("%s: seen by a refresh of changed rows; want it seen by the full one only", st.name)
			}
			s.agents.mu.Lock()
			s.agents.lastFull = time.Time{}
			s.agents.mu.Unlock()
			s.refreshAgents(ctx, s.q)
		}
		if resp, err := hb(); st.check(resp, err) != "" {
			t.Fatalf("%s after a refresh: draining %v, error %v; %s", st.name, resp.GetDraining(), err, st.check(resp, err))
		}
	}
}

// TestMissingAgentsLoadTogether checks that calls of agents missing from
// the cache wait for one batched read instead of reading a row each, and
// that an unknown agent still gets Unauthenticated.
func TestMissingAgentsLoadTogether(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := pgtest.NewPool(t)
	q := db.New(pool)
	var site uuid.UUID
	if err := pool.QueryRow(ctx, "INSERT INTO sites (name) VALUES ('load') RETURNING id").Scan(&site); err != nil {
		t.Fatal(err)
	}
	const n = 20
	ids := make([]string, 0, n+1)
	for i := range n {
		a, err := q.UpsertAgent(ctx, db.UpsertAgentParams{SiteID: site, Name: fmt.Sprintf("a%d", i), Scope: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16")}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID.String())
	}
	unknown := uuid.New().String()
	ids = append(ids, unknown)

	s := New(pool, testLeaser(pool), nil, hclog.NewNullLogger())
	// Calls queue for a batch while no loader runs yet; then one starts.
	s.loader.running.Store(true)
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Heartbeat(ctx, &pb.HeartbeatRequest{AgentId: id})
		}()
	}
	for queued := 0; queued < len(ids); time.Sleep(5 * time.Millisecond) {
		s.loader.mu.Lock()
		if b := s.loader.next; b != nil {
			queued = len(b.ids)
		}
		s.loader.mu.Unlock()
	}
	go s.runLoader(ctx, s.q)
	wg.Wait()
	for i, err := range errs {
		want := codes.OK
		if ids[i] == unknown {
			want = codes.Unauthenticated
		}
		if status.Code(err) != want {
			t.Errorf("agent %s: %v; want %s", ids[i], err, want)
		}
	}
	if b := s.loader.batches.Load(); b != 1 {
		t.Errorf("%d statements read %d agents; want 1", b, len(ids))
	}
}

// TestChangeStamp checks the stamp the refresh reads changed rows by:
// a liveness touch (last_seen) leaves it, any other change moves it.
func TestChangeStamp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	id := agentSeenMinuteAgo(t, pool, "active")
	stamp := func() int64 {
		var x int64
		if err := pool.QueryRow(ctx, "SELECT changed_xid FROM agents WHERE id = $1", id).Scan(&x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	steps := []struct {
		name  string
		sql   string
		moves bool
	}{
		{"touched", "UPDATE agents SET last_seen = now() WHERE id = $1", false},
		{"batched touch", "UPDATE agents SET last_seen = now(), state = CASE WHEN state = 'lost' THEN 'active' ELSE state END WHERE id = ANY(ARRAY[$1::uuid])", false},
		{"drained", "UPDATE agents SET state = 'draining' WHERE id = $1", true},
		{"scope changed", "UPDATE agents SET scope = '{10.99.1.0/24}' WHERE id = $1", true},
		{"same scope again", "UPDATE agents SET scope = '{10.99.1.0/24}' WHERE id = $1", false},
	}
	for _, st := range steps {
		before := stamp()
		if _, err := pool.Exec(ctx, st.sql, id); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if moved := stamp() > before; moved != st.moves {
			t.Errorf("%s: stamp moved %v, want %v", st.name, moved, st.moves)
		}
	}
}

// TestStaleRowsExpire checks that a row read before a refresh began and
// stored after it does not count as current as that refresh: the refresh
// may have missed a change the read did not see.
func TestStaleRowsExpire(t *testing.T) {
	t.Parallel()
	const ttl = time.Minute
	tests := []struct {
		name   string
		readAt time.Duration // before the refresh began (negative) or after
		want   bool          // still served one TTL after the read
	}{
		{"read before the refresh began", -time.Second, false},
		{"read after the refresh began", time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newAgentCache(ttl)
			begin, _, _ := c.begin()
			a := db.Agent{ID: uuid.New()}
			read := begin.Add(tt.readAt)
			c.loaded(read, []db.Agent{a})
			c.changed(begin, 1, nil)
			// One TTL after the read, a later refresh that found no change
			// vouches only for rows that were not stale.
			c.mu.Lock()
			c.fresh = read.Add(ttl).Add(-time.Millisecond)
			c.m[a.ID].loaded = read.Add(-ttl)
			c.mu.Unlock()
			if _, ok := c.get(a.ID); ok != tt.want {
				t.Fatalf("served %v, want %v", ok, tt.want)
			}
		})
	}
}
