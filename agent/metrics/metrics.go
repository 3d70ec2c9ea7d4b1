// Package metrics owns the agent's Prometheus metrics: a private registry
// with the Go and process collectors, gRPC client metrics (go-grpc-middleware's
// prometheus provider), nmap runs and their durations by outcome, hosts
// streamed, delivery retries, heartbeat failures, lease losses, and the
// spool's files and bytes read from its directory at scrape time. Every
// method is safe on a nil *Agent.
package metrics

import (
	"os"
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "scanorama_agent"

// Outcomes of one nmap run (scanorama_agent_nmap_runs_total).
const (
	RunCompleted = "completed" // nmap finished and its results were spooled
	RunFailed    = "failed"    // nmap or the spool failed; the job was failed back
	RunCancelled = "cancelled" // an operator cancelled the job
	RunLeaseLost = "lease_lost"
	RunShutdown  = "shutdown" // the agent stopped; the lease was released
)

// Agent is the agent's metrics.
type Agent struct {
	reg  *prometheus.Registry
	grpc *grpcprom.ClientMetrics

	runs          *prometheus.CounterVec
	runSeconds    *prometheus.HistogramVec
	hosts         prometheus.Counter
	delivered     *prometheus.CounterVec
	retries       prometheus.Counter
	hbFailures    prometheus.Counter
	leaseLosses   prometheus.Counter
	jobsRefused   prometheus.Counter
	spoolFiles    *prometheus.Desc
	spoolBytes    *prometheus.Desc
	spoolDir      string
	spoolReadErrs prometheus.Counter
}

// New registers every agent metric on a fresh registry; site labels the
// agent's own series, spoolDir is read at scrape time.
func New(site, spoolDir string) *Agent {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	constLabels := prometheus.Labels{"site": site}
	m := &Agent{
		reg: reg,
		grpc: grpcprom.NewClientMetrics(
			grpcprom.WithClientCounterOptions(grpcprom.WithNamespace("scanorama_agent"), grpcprom.WithConstLabels(constLabels)),
			grpcprom.WithClientHandlingTimeHistogram(grpcprom.WithHistogramNamespace("scanorama_agent"),
				grpcprom.WithHistogramConstLabels(constLabels),
				grpcprom.WithHistogramBuckets([]float64{0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10, 30, 60}))),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "nmap_runs_total", ConstLabels: constLabels,
			Help: "nmap runs, by outcome: completed, failed, cancelled, lease_lost, shutdown.",
		}, []string{"outcome"}),
		runSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "nmap_run_duration_seconds", ConstLabels: constLabels,
			Help:    "Wall time of one nmap run, by outcome.",
			Buckets: []float64{0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400},
		}, []string{"outcome"}),
		hosts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "hosts_streamed_total", ConstLabels: constLabels,
			Help: "Hosts nmap reported, spooled and sent to the controller.",
		}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "results_delivered_total", ConstLabels: constLabels,
			Help: "Jobs whose results the controller acknowledged, by path: live (the stream that ran with nmap) or spool (a redelivery).",
		}, []string{"path"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "delivery_retries_total", ConstLabels: constLabels,
			Help: "Failed deliveries of spooled results that are retried after a backoff.",
		}),
		hbFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "heartbeat_failures_total", ConstLabels: constLabels,
			Help: "Heartbeat calls that failed (the controller was unreachable or erred).",
		}),
		leaseLosses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "lease_losses_total", ConstLabels: constLabels,
			Help: "Leases the controller reported lost (another agent may hold the job now).",
		}),
		jobsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "jobs_refused_total", ConstLabels: constLabels,
			Help: "Leases refused before nmap ran (outside the scope, invalid options, missing capability).",
		}),
		spoolReadErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "spool_read_errors_total", ConstLabels: constLabels,
			Help: "Scrapes that could not list the spool directory.",
		}),
		spoolFiles: prometheus.NewDesc(namespace+"_spool_files", "Result files in the spool (being written or waiting for the controller's acknowledgement).", nil, constLabels),
		spoolBytes: prometheus.NewDesc(namespace+"_spool_bytes", "Bytes of the result files in the spool.", nil, constLabels),
		spoolDir:   spoolDir,
	}
	for _, o := range []string{RunCompleted, RunFailed, RunCancelled, RunLeaseLost, RunShutdown} {
		m.runs.WithLabelValues(o)
	}
	for _, p := range []string{"live", "spool"} {
		m.delivered.WithLabelValues(p)
	}
	reg.MustRegister(m.grpc, m.runs, m.runSeconds, m.hosts, m.delivered, m.retries, m.hbFailures, m.leaseLosses,
		m.jobsRefused, m.spoolReadErrs, spoolCollector{m})
	return m
}

// Registry is what /metrics serves.
func (m *Agent) Registry() *prometheus.Registry { return m.reg }

// GRPC is the gRPC client metrics provider; its interceptors go on the
// agent's connection.
func (m *Agent) GRPC() *grpcprom.ClientMetrics { return m.grpc }

// Run observes one nmap run's end.
func (m *Agent) Run(outcome string, d time.Duration) {
	if m != nil {
		m.runs.WithLabelValues(outcome).Inc()
		m.runSeconds.WithLabelValues(outcome).Observe(d.Seconds())
	}
}

// HostStreamed counts one host spooled and sent.
func (m *Agent) HostStreamed() {
	if m != nil {
		m.hosts.Inc()
	}
}

// Delivered counts one job's results acknowledged; path is "live" or "spool".
func (m *Agent) Delivered(path string) {
	if m != nil {
		m.delivered.WithLabelValues(path).Inc()
	}
}

// DeliveryRetry counts one failed delivery that will be retried.
func (m *Agent) DeliveryRetry() {
	if m != nil {
		m.retries.Inc()
	}
}

// HeartbeatFailed counts one failed heartbeat call.
func (m *Agent) HeartbeatFailed() {
	if m != nil {
		m.hbFailures.Inc()
	}
}

// LeaseLost counts one lease the controller reported lost.
func (m *Agent) LeaseLost() {
	if m != nil {
		m.leaseLosses.Inc()
	}
}

// JobRefused counts one lease refused before nmap ran.
func (m *Agent) JobRefused() {
	if m != nil {
		m.jobsRefused.Inc()
	}
}

// spoolSuffix is the spool's file suffix (agent/spool/names.go).
const spoolSuffix = ".spool"

// spoolCollector lists the spool directory at scrape time: a stat per
// file, never a read of their contents.
type spoolCollector struct{ m *Agent }

func (c spoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.m.spoolFiles
	ch <- c.m.spoolBytes
}

func (c spoolCollector) Collect(ch chan<- prometheus.Metric) {
	des, err := os.ReadDir(c.m.spoolDir)
	if err != nil {
		c.m.spoolReadErrs.Inc()
		return
	}
	var files, bytes float64
	for _, de := range des {
		if !de.Type().IsRegular() || !strings.HasSuffix(de.Name(), spoolSuffix) {
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue // removed since the listing
		}
		files++
		bytes += float64(info.Size())
	}
	ch <- prometheus.MustNewConstMetric(c.m.spoolFiles, prometheus.GaugeValue, files)
	ch <- prometheus.MustNewConstMetric(c.m.spoolBytes, prometheus.GaugeValue, bytes)
}
