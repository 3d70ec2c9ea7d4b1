package e2e_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgserver"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// grpc.health.v1 follows the database: a controller whose PostgreSQL stops
// reports NOT_SERVING (overall and for both services) and SERVING again once
// it is back. The test runs a PostgreSQL cluster of its own, so stopping it
// disturbs no other test.
func TestHealthFollowsDatabase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pg, err := pgserver.Start(ctx, pgserver.Options{DataDir: filepath.Join(t.TempDir(), "pg"), Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Destroy(context.Background()) })
	url := pg.URL(pgserver.DefaultDatabase)
	if _, err := migrate.UpURL(ctx, url, hclog.NewNullLogger()); err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, dbURL: url, addr: freePort(t)}
	s.startController()
	s.connect()
	hc := healthpb.NewHealthClient(s.conn)
	services := []string{"", pb.AgentService_ServiceDesc.ServiceName, pb.AdminService_ServiceDesc.ServiceName}
	waitHealth := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for _, svc := range services {
			deadline := time.Now().Add(60 * time.Second)
			for {
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: svc}, grpc.WaitForReady(true))
				cancel()
				if err == nil && resp.GetStatus() == want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("health of %q: %v, %v; want %s", svc, resp.GetStatus(), err, want)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	waitHealth(healthpb.HealthCheckResponse_SERVING)

	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	mustContain(t, s.ctrl.Output(), "database unreachable; health is NOT_SERVING")

	if err := pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitHealth(healthpb.HealthCheckResponse_SERVING)
	mustContain(t, s.ctrl.Output(), "database reachable again; health is SERVING")
	// And it serves again: a database call through the controller works.
	if _, err := s.admin.CreateSite(s.ctx(), &pb.CreateSiteRequest{Name: "after-outage"}); err != nil {
		t.Fatalf("CreateSite after the database came back: %v", err)
	}
}
