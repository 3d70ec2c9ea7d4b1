// Package metrics owns the controller's Prometheus metrics: one private
// registry per process with the Go and process collectors, gRPC server
// metrics (go-grpc-middleware's prometheus provider), the counters and
// histograms the leasing, ingest, events and reaper code report into, and
// collectors that read the database (cached) and the connection pool at
// scrape time. Every method is safe on a nil *Controller, so components
// built without metrics (tests, tools) need no special case.
package metrics

import (
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "scanorama"

// Lease outcomes counted by scanorama_leases_total.
const (
	LeaseAcquired   = "acquired"
	LeaseRenewed    = "renewed"
	LeaseExpired    = "expired"
	LeaseReassigned = "reassigned"
)

// Writes refused because the writer no longer holds the lease, by operation
// (scanorama_lease_fenced_writes_total).
const (
	FencedHeartbeat = "heartbeat"
	FencedCommit    = "commit"
	FencedFail      = "fail"
	FencedRelease   = "release"
)

// Controller is the controller's metrics.
type Controller struct {
	reg  *prometheus.Registry
	grpc *grpcprom.ServerMetrics

	leases         *prometheus.CounterVec
	fenced         *prometheus.CounterVec
	streams        *prometheus.CounterVec
	hostsIngested  prometheus.Counter
	rowsIngested   prometheus.Counter
	commitSeconds  *prometheus.HistogramVec
	batchJobs      prometheus.Histogram
	batchRows      prometheus.Histogram
	rejected       *prometheus.CounterVec
	reaperRuns     *prometheus.CounterVec
	reaperSeconds  prometheus.Histogram
	agentsLostMark prometheus.Counter
}

// NewController registers every controller metric on a fresh registry.
func NewController() *Controller {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Controller{
		reg: reg,
		grpc: grpcprom.NewServerMetrics(
			grpcprom.WithServerCounterOptions(grpcprom.WithNamespace(namespace)),
			grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramNamespace(namespace),
				grpcprom.WithHistogramBuckets([]float64{0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10, 30, 60}))),
		leases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "leases_total",
			Help: "Lease events by outcome: acquired, renewed (heartbeat), expired (reaped), reassigned (a job leased again after an earlier attempt).",
		}, []string{"outcome"}),
		fenced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "lease_fenced_writes_total",
			Help: "Writes refused because the caller no longer holds the lease (fencing token mismatch), by operation.",
		}, []string{"operation"}),
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ingest_streams_total",
			Help: "Results streams ended, by outcome: committed, already_committed, invalid, lease_lost, incomplete, error.",
		}, []string{"outcome"}),
		hostsIngested: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "ingest_hosts_total",
			Help: "Hosts merged by committed results streams.",
		}),
		rowsIngested: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "ingest_port_rows_total",
			Help: "port_scans rows written by committed results streams.",
		}),
		commitSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "ingest_commit_duration_seconds",
			Help:    "Time of one commit statement: a group commit of small jobs (path=group) or a staged job's own commit (path=staged).",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"path"}),
		batchJobs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "ingest_group_commit_jobs",
			Help:    "Jobs per group commit statement.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "ingest_group_commit_rows",
			Help:    "Host and port rows per group commit statement.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ingest_rejected_batches_total",
			Help: "Result messages rejected as invalid (the stream fails with InvalidArgument), by reason.",
		}, []string{"reason"}),
		reaperRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "reaper_runs_total",
			Help: "Lease reaper passes, by result (ok, error).",
		}, []string{"result"}),
		reaperSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "reaper_run_duration_seconds",
			Help:    "Time of one lease reaper pass.",
			Buckets: []float64{0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10},
		}),
		agentsLostMark: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "agents_marked_lost_total",
			Help: "Agents the reaper marked lost after they stopped heartbeating.",
		}),
	}
	for _, o := range []string{LeaseAcquired, LeaseRenewed, LeaseExpired, LeaseReassigned} {
		m.leases.WithLabelValues(o)
	}
	for _, o := range []string{FencedHeartbeat, FencedCommit, FencedFail, FencedRelease} {
		m.fenced.WithLabelValues(o)
	}
	for _, o := range []string{StreamCommitted, StreamAlreadyCommitted, StreamInvalid, StreamLeaseLost, StreamIncomplete, StreamError} {
		m.streams.WithLabelValues(o)
	}
	for _, r := range []string{"ok", "error"} {
		m.reaperRuns.WithLabelValues(r)
	}
	reg.MustRegister(m.grpc, m.leases, m.fenced, m.streams, m.hostsIngested, m.rowsIngested, m.commitSeconds,
		m.batchJobs, m.batchRows, m.rejected, m.reaperRuns, m.reaperSeconds, m.agentsLostMark)
	return m
}

// Registry is where collectors register; the /metrics handler serves it.
func (m *Controller) Registry() *prometheus.Registry { return m.reg }

// GRPC is the gRPC server metrics provider: its interceptors go on the
// server, and InitializeMetrics(server) pre-creates every method's series.
func (m *Controller) GRPC() *grpcprom.ServerMetrics { return m.grpc }

// Lease counts one lease event (LeaseAcquired, ...).
func (m *Controller) Lease(outcome string) {
	if m != nil {
		m.leases.WithLabelValues(outcome).Inc()
	}
}

// LeasesExpired counts leases the reaper expired.
func (m *Controller) LeasesExpired(n int) {
	if m != nil && n > 0 {
		m.leases.WithLabelValues(LeaseExpired).Add(float64(n))
	}
}

// Fenced counts one write refused for a lost lease (FencedHeartbeat, ...).
func (m *Controller) Fenced(operation string) {
	if m != nil {
		m.fenced.WithLabelValues(operation).Inc()
	}
}

// Results stream outcomes (scanorama_ingest_streams_total).
const (
	StreamCommitted        = "committed"
	StreamAlreadyCommitted = "already_committed"
	StreamInvalid          = "invalid"
	StreamLeaseLost        = "lease_lost"
	StreamIncomplete       = "incomplete"
	StreamError            = "error"
)

// Stream counts one ended results stream and, when it committed, its rows.
func (m *Controller) Stream(outcome string, hosts, portRows int64) {
	if m == nil {
		return
	}
	m.streams.WithLabelValues(outcome).Inc()
	if outcome == StreamCommitted {
		m.hostsIngested.Add(float64(hosts))
		m.rowsIngested.Add(float64(portRows))
	}
}

// Commit observes one commit statement's duration; path is "group" or "staged".
func (m *Controller) Commit(path string, d time.Duration) {
	if m != nil {
		m.commitSeconds.WithLabelValues(path).Observe(d.Seconds())
	}
}

// GroupCommit observes one group commit's size.
func (m *Controller) GroupCommit(jobs, rows int) {
	if m != nil {
		m.batchJobs.Observe(float64(jobs))
		m.batchRows.Observe(float64(rows))
	}
}

// Rejected counts one results message rejected as invalid, by a bounded
// reason (the field family, never a value).
func (m *Controller) Rejected(reason string) {
	if m != nil {
		m.rejected.WithLabelValues(reason).Inc()
	}
}

// ReaperRun observes one reaper pass.
func (m *Controller) ReaperRun(d time.Duration, lost int, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.reaperRuns.WithLabelValues(result).Inc()
	m.reaperSeconds.Observe(d.Seconds())
	m.agentsLostMark.Add(float64(lost))
}
