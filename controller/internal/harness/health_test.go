package harness

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// serveHealth runs a gRPC health server on a loopback listener this test
// opens, reporting status.
func serveHealth(t *testing.T, status healthpb.HealthCheckResponse_ServingStatus) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", status)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return l.Addr().String()
}

func TestWaitServing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		status  healthpb.HealthCheckResponse_ServingStatus
		script  string
		cancel  bool
		within  time.Duration
		wantErr string
	}{
		{"serving", healthpb.HealthCheckResponse_SERVING, "exec sleep 60", false, 30 * time.Second, ""},
		{"process exits first", healthpb.HealthCheckResponse_NOT_SERVING, "exit 0", false, 30 * time.Second, "exited during start-up"},
		{"never serving", healthpb.HealthCheckResponse_NOT_SERVING, "exec sleep 60", false, 300 * time.Millisecond, "not healthy after"},
		{"context ends", healthpb.HealthCheckResponse_NOT_SERVING, "exec sleep 60", true, 30 * time.Second, context.Canceled.Error()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			addr := serveHealth(t, c.status)
			p, err := Start("child", exec.Command("sh", "-c", c.script), Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Kill)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if c.cancel {
				cancel()
			}
			err = WaitServing(ctx, p, addr, insecure.NewCredentials(), c.within, 20*time.Millisecond)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("WaitServing: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("WaitServing = %v, want %q", err, c.wantErr)
			case c.cancel && !errors.Is(err, context.Canceled):
				t.Fatalf("WaitServing = %v, want context.Canceled", err)
			}
		})
	}
}
