// Package worker is the agent's main loop: it registers with a controller,
// long-polls for leases, runs each job's nmap scan within the agent's scope
// and capabilities, heartbeats while it works, spools every host to disk
// before sending it, and delivers the job's results until the controller
// acknowledges the commit or rejects them for good.
package worker

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/agent/metrics"
)

// Config configures an agent.
type Config struct {
	// Controllers are controller addresses (host:port), tried in order.
	Controllers []string
	// TLS secures the connection to them.
	TLS  TLS
	Site string
	Name string
	// Scope limits what the agent scans; empty means whatever its site's
	// targets say (the controller still matches jobs against it).
	Scope    []netip.Prefix
	SpoolDir string
	NmapPath string
	Version  string
	Logger   hclog.Logger
	// AcquireWait is one long-poll's length.
	AcquireWait time.Duration
	// Concurrency is how many jobs (nmap processes) run at once.
	Concurrency int
	// RetryMin and RetryMax bound the reconnect/redelivery backoff.
	RetryMin, RetryMax time.Duration
	// Dialer, when set, opens the TCP connections to controllers.
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
	// Metrics, when set, counts nmap runs, hosts, deliveries, heartbeat
	// failures and lease losses, and the gRPC calls to the controller.
	Metrics *metrics.Agent
}

func (c *Config) validate() error {
	switch {
	case len(c.Controllers) == 0:
		return errors.New("--controller: at least one address is required")
	case c.Site == "":
		return errors.New("--site: required")
	case c.Name == "":
		return errors.New("--name: required")
	case c.SpoolDir == "":
		return errors.New("--spool-dir: required")
	}
	if c.Concurrency < 0 || c.Concurrency > 64 {
		return errors.New("--concurrency: must be 1..64")
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.NmapPath == "" {
		c.NmapPath = "nmap"
	}
	if c.Logger == nil {
		c.Logger = hclog.Default()
	}
	if c.AcquireWait <= 0 {
		c.AcquireWait = 25 * time.Second
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 200 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 10 * time.Second
	}
	return nil
}
