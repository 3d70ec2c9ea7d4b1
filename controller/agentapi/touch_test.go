package agentapi

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/leasing"
	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgtest"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrate.Template)
	pgtest.Main(m)
}

// agentSeenMinuteAgo registers an agent whose last contact was a minute ago
// in state.
func agentSeenMinuteAgo(t *testing.T, pool *pgxpool.Pool, state string) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	var site uuid.UUID
	if err := pool.QueryRow(ctx, "INSERT INTO sites (name) VALUES ('touch') RETURNING id").Scan(&site); err != nil {
		t.Fatal(err)
	}
	a, err := db.New(pool).UpsertAgent(ctx, db.UpsertAgentParams{SiteID: site, Name: "a1", Scope: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "UPDATE agents SET last_seen = now() - interval '1 minute', state = $2 WHERE id = $1", a.ID, state); err != nil {
		t.Fatal(err)
	}
	return a.ID
}

func lastContact(t *testing.T, pool *pgxpool.Pool, id uuid.UUID) (time.Duration, string) {
	t.Helper()
	var ago float64
	var state string
	if err := pool.QueryRow(context.Background(), "SELECT extract(epoch FROM now() - last_seen)::float8, state FROM agents WHERE id = $1", id).Scan(&ago, &state); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ago * float64(time.Second)), state
}

func TestHeartbeatTouchIsBatched(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	id := agentSeenMinuteAgo(t, pool, "active")
	s := New(pool, testLeaser(pool), nil, hclog.NewNullLogger())
	for range 3 {
		if _, err := s.Heartbeat(context.Background(), &pb.HeartbeatRequest{AgentId: id.String()}); err != nil {
			t.Fatal(err)
		}
	}
	if ago, _ := lastContact(t, pool, id); ago < 50*time.Second {
		t.Fatalf("last_seen written by the heartbeat itself (%s ago); want it batched", ago)
	}
	s.FlushTouches(context.Background())
	if ago, st := lastContact(t, pool, id); ago > 30*time.Second || st != "active" {
		t.Fatalf("after the flush: last_seen %s ago, state %s; want recent, active", ago, st)
	}
	if ids := s.touched.take(); len(ids) != 0 {
		t.Fatalf("flushed agents still queued: %v", ids)
	}
}

func TestLostAgentIsBackAtItsFirstCall(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	id := agentSeenMinuteAgo(t, pool, "lost")
	s := New(pool, testLeaser(pool), nil, hclog.NewNullLogger())
	if _, err := s.Heartbeat(context.Background(), &pb.HeartbeatRequest{AgentId: id.String()}); err != nil {
		t.Fatal(err)
	}
	if ago, st := lastContact(t, pool, id); ago > 30*time.Second || st != "active" {
		t.Fatalf("last_seen %s ago, state %s; want recent, active without waiting for a flush", ago, st)
	}
}

// nopWaker and nopPublisher stand in for the notification hub: these tests
// lease nothing.
type nopWaker struct{}

func (nopWaker) SubscribeJobs(string) (<-chan struct{}, func()) { return nil, func() {} }
func (nopWaker) WakeSite(string)                                {}
func (nopWaker) WakeOne(string)                                 {}

type nopPublisher struct{}

func (nopPublisher) Publish(string) {}

func testLeaser(pool *pgxpool.Pool) *leasing.Leaser {
	return leasing.New(pool, nopWaker{}, nopPublisher{}, leasing.DefaultConfig(), hclog.NewNullLogger())
}

// TestTouchMovesCachedLastSeen checks that a flushed touch moves the
// cached last_seen (the refresh no longer re-reads rows whose only change
// is last_seen), never backwards.
func TestTouchMovesCachedLastSeen(t *testing.T) {
	t.Parallel()
	c := newAgentCache(time.Minute)
	old, later := time.Now().Add(-time.Minute), time.Now()
	a, b := uuid.New(), uuid.New()
	c.loaded(time.Now(), []db.Agent{{ID: a, LastSeen: old}, {ID: b, LastSeen: later}})
	at := old.Add(time.Second)
	c.touchedAt(at, []uuid.UUID{a, b})
	if got := c.m[a].a.LastSeen; !got.Equal(at) {
		t.Errorf("touched agent's last_seen %s, want %s", got, at)
	}
	if got := c.m[b].a.LastSeen; !got.Equal(later) {
		t.Errorf("last_seen moved back to %s, want %s", got, later)
	}
}
