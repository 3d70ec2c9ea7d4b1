package harness

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// WaitServing polls the gRPC health service at addr (dialled with creds)
// every interval until it answers SERVING. It fails early when p exits or
// ctx ends, and after within; callers add the output they want to show.
func WaitServing(ctx context.Context, p *Proc, addr string, creds credentials.TransportCredentials, within, every time.Duration) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited during start-up", p.Name)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
	return fmt.Errorf("%s not healthy after %s", p.Name, within)
}
