package agentapi

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scanorama/scanorama/controller/pgtest"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// TestCachedAgentsRefreshTogether checks that a change to a cached agent's
// row (a drain, a revocation, a deletion) reaches its next call through
// the fleet-wide refresh, without that call reading the row itself.
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

	steps := []struct {
		name  string
		sql   string
		check func(*pb.HeartbeatResponse, error) string
	}{
		{"drained", "UPDATE agents SET state = 'draining' WHERE id = $1", func(r *pb.HeartbeatResponse, err error) string {
			if err != nil || !r.GetDraining() {
				return "want draining"
			}
			return ""
		}},
		{"revoked", "UPDATE agents SET state = 'revoked', revoked_at = now() WHERE id = $1", func(_ *pb.HeartbeatResponse, err error) string {
			if status.Code(err) != codes.PermissionDenied {
				return "want PermissionDenied"
			}
			return ""
		}},
		{"deleted", "DELETE FROM agents WHERE id = $1", func(_ *pb.HeartbeatResponse, err error) string {
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
		if resp, err := hb(); st.check(resp, err) != "" {
			t.Fatalf("%s after a refresh: draining %v, error %v; %s", st.name, resp.GetDraining(), err, st.check(resp, err))
		}
	}
}
