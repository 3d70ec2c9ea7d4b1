package metrics

import (
	"context"
	"net"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	agentmetrics "github.com/scanorama/scanorama/agent/metrics"
)

// Serve serves reg's /metrics on addr until ctx ends, exactly as the agent
// does (agent/metrics.Serve: the agent side owns what both binaries share,
// since agent packages never import controller ones).
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, log hclog.Logger) (net.Addr, error) {
	return agentmetrics.Serve(ctx, addr, reg, log)
}
