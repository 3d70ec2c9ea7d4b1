// Package ingest owns the results path from an agent's stream to committed
// rows. Host batches are validated as they arrive; a small job's rows wait in
// a bounded buffer, a large job's are COPYed into per-session TEMP staging
// tables, so the controller never holds a whole job in memory and never
// keeps a transaction open while a scan runs. When the summary arrives, one
// statement (ingest_commit) verifies the lease under FOR UPDATE, merges the
// rows into hosts, port_scans, services and host_history, and completes the
// job: all rows or none. A stream that breaks, a controller that dies, or a
// database error before that commit writes nothing.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/events"
	"github.com/scanorama/scanorama/controller/internal/afterconnect"
	"github.com/scanorama/scanorama/controller/leasing"
	"github.com/scanorama/scanorama/controller/metrics"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
	"github.com/scanorama/scanorama/sql/staging"
)

// maxHostsPerJob bounds the per-stream duplicate check; the controller
// shards targets far below it.
const maxHostsPerJob = 1 << 20

// Staging sizes (rows) above which the merge first gathers statistics, and
// the staging tables are emptied with TRUNCATE rather than DELETE.
const (
	analyzeThreshold  = 10_000
	truncateThreshold = 50_000
)

// ConfigurePool makes every connection of the pool carry the session's
// staging tables, so a results stream never runs DDL.
func ConfigurePool(cfg *pgxpool.Config) {
	afterconnect.Add(cfg, func(ctx context.Context, conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, staging.DDL); err != nil {
			return fmt.Errorf("create staging tables: %w", err)
		}
		return nil
	})
}

// Receiver is the receiving half of a results stream.
type Receiver interface {
	Recv() (*pb.StreamResultsRequest, error)
}

// Result describes a finished stream.
type Result struct {
	JobID            uuid.UUID
	AlreadyCommitted bool
	Hosts            int64
	PortRows         int64
	// Partial: the job was cancelled while the caller held it; the hosts
	// committed are those its scan had finished, and the job stays cancelled.
	Partial bool
	// Changes counts the host_history rows the commit recorded.
	Changes int64
}

// sqlstateLeaseLost is raised by ingest_commit when the caller no longer
// holds the lease (sql/migrations/0006_ingest_commit.sql).
const sqlstateLeaseLost = "SCL01"

// ErrIncomplete means the stream ended before its summary: nothing was
// written. The API says ABORTED: the sender may send the whole stream again.
var ErrIncomplete = apierr.Sentinel(codes.Aborted, "results stream ended before its summary; nothing was written")

// Publisher sends job events to watchers off the request path.
type Publisher interface {
	Publish(payload string)
}

// Ingester commits results streams.
type Ingester struct {
	pool      *pgxpool.Pool
	q         *db.Queries
	pub       Publisher
	committer *committer
	log       hclog.Logger
	// OnCommit, when set, runs after a job commits (e.g. to refresh dashboards).
	OnCommit func(jobID uuid.UUID)
	metrics  *metrics.Controller
}

// New returns an Ingester that announces committed jobs through pub. Its
// group committers run until ctx ends; streams committing after that fail
// with ctx's error and nothing written.
func New(ctx context.Context, pool *pgxpool.Pool, pub Publisher, log hclog.Logger) *Ingester {
	return NewWithMetrics(ctx, pool, pub, nil, log)
}

// NewWithMetrics is New reporting streams, rows, commit latencies, group
// commit sizes and rejections into m (nil reports nothing).
func NewWithMetrics(ctx context.Context, pool *pgxpool.Pool, pub Publisher, m *metrics.Controller, log hclog.Logger) *Ingester {
	log = log.Named("ingest")
	c := newCommitter(pool, log)
	c.metrics = m
	c.start(ctx)
	return &Ingester{pool: pool, q: db.New(pool), pub: pub, committer: c, log: log, metrics: m}
}

// Ingest consumes one results stream from agentID. Errors are gRPC-ready
// where they are the agent's fault (INVALID_ARGUMENT naming the row) and
// wrap leasing.ErrLeaseLost when the agent no longer holds the lease.
func (in *Ingester) Ingest(ctx context.Context, agentID string, r Receiver) (Result, error) {
	res, err := in.ingest(ctx, agentID, r)
	in.count(res, err)
	return res, err
}

// count reports one ended stream: its outcome and, if it committed, its rows.
func (in *Ingester) count(res Result, err error) {
	if in.metrics == nil {
		return
	}
	outcome := metrics.StreamCommitted
	switch {
	case err == nil && res.AlreadyCommitted:
		outcome = metrics.StreamAlreadyCommitted
	case err == nil:
	case errors.Is(err, leasing.ErrLeaseLost):
		outcome = metrics.StreamLeaseLost
		in.metrics.Fenced(metrics.FencedCommit)
	case errors.Is(err, ErrIncomplete):
		outcome = metrics.StreamIncomplete
	case status.Code(err) == codes.InvalidArgument:
		outcome = metrics.StreamInvalid
		in.metrics.Rejected(rejectReason(err))
	default:
		outcome = metrics.StreamError
	}
	in.metrics.Stream(outcome, res.Hosts, res.PortRows)
}

// indexRe matches the element indices of a field path ("hosts[3]").
var indexRe = regexp.MustCompile(`\[[0-9]+\]`)

// rejectReason names an invalid results message by its field path without
// indices ("hosts.ports.port"): a label of bounded values, never the
// offending data.
func rejectReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return indexRe.ReplaceAllString(br.GetFieldViolations()[0].GetField(), "")
		}
	}
	return "unknown"
}

func (in *Ingester) ingest(ctx context.Context, agentID string, r Receiver) (Result, error) {
	first, err := r.Recv()
	if err != nil {
		return Result{}, fmt.Errorf("receive open: %w", err)
	}
	open := first.GetOpen()
	if open == nil {
		return Result{}, apierr.InvalidField("open", "the first message of a results stream must be open")
	}
	if open.GetAgentId() != agentID {
		return Result{}, apierr.InvalidField("open.agent_id", "does not match the calling agent")
	}
	jobID, err := uuid.Parse(open.GetJobId())
	if err != nil {
		return Result{}, apierr.InvalidField("open.job_id", "not a UUID: %q", open.GetJobId())
	}
	ref := leasing.LeaseRef{JobID: jobID, WorkerID: agentID, Token: open.GetLeaseToken()}
	log := in.log.With("job_id", jobID, "agent_id", agentID, "lease_token", ref.Token)

	s := &stream{pool: in.pool, q: in.q, pub: in.pub, committer: in.committer, ref: ref, log: log, metrics: in.metrics}
	defer s.close()

	job, done, err := s.checkLease(ctx)
	if err != nil || done {
		return Result{JobID: jobID, AlreadyCommitted: done}, err
	}
	s.prepare()
	sc := scope{network: job.Network, exclusions: job.Exclusions}
	var summary *pb.ScanSummary
	for summary == nil {
		msg, err := r.Recv()
		if errors.Is(err, io.EOF) {
			return Result{}, ErrIncomplete
		}
		if err != nil {
			return Result{}, fmt.Errorf("receive results: %w", err)
		}
		switch m := msg.GetMsg().(type) {
		case *pb.StreamResultsRequest_Hosts:
			if err := s.stage(ctx, m.Hosts.GetHosts(), sc); err != nil {
				return Result{}, err
			}
		case *pb.StreamResultsRequest_Summary:
			summary = m.Summary
		default:
			return Result{}, apierr.InvalidField("msg", "expected hosts or summary after open")
		}
	}
	if summary.GetHostsSent() != int64(s.hosts) {
		return Result{}, apierr.InvalidField("summary.hosts_sent",
			"summary says %d hosts were sent but the stream carried %d", summary.GetHostsSent(), s.hosts)
	}
	res, err := s.commit(ctx, job, summary)
	if err != nil {
		return Result{}, err
	}
	log.Info("job committed", "hosts", res.Hosts, "port_rows", res.PortRows, "already_committed", res.AlreadyCommitted,
		"partial", res.Partial, "stopped_early", summary.GetPartial())
	if in.OnCommit != nil && !res.AlreadyCommitted {
		in.OnCommit(jobID)
	}
	return res, nil
}

// stream is one results stream. It borrows pooled connections statement by
// statement and takes one of its own only once it has to COPY: the TEMP
// staging tables belong to a session. A small job therefore holds no
// connection while its agent scans, however long that takes.
type stream struct {
	pool      *pgxpool.Pool
	conn      *pgxpool.Conn // the stream's own connection, from the first COPY on
	q         *db.Queries   // on pool, or on conn once there is one
	pub       Publisher
	committer *committer
	ref       leasing.LeaseRef
	log       hclog.Logger
	hosts     int
	portRows  int64
	openPorts int64
	seen      map[netip.Addr]struct{}
	buf       rowBuffer
	// dirty: the staging tables may hold rows of this stream.
	dirty   bool
	metrics *metrics.Controller
}

// checkLease verifies the lease before any row is staged. done reports a
// job already committed under this very lease (a retry after a lost ack).
func (s *stream) checkLease(ctx context.Context) (db.GetJobLeaseStateRow, bool, error) {
	job, err := s.q.GetJobLeaseState(ctx, s.ref.JobID)
	if errors.Is(err, pgx.ErrNoRows) {
		return job, false, apierr.NotFound("open.job_id", "no job %s", s.ref.JobID)
	}
	if err != nil {
		return job, false, fmt.Errorf("read job: %w", err)
	}
	if job.WorkerID.String != s.ref.WorkerID || job.LeaseToken != s.ref.Token {
		return job, false, fmt.Errorf("%w: job %s is now at lease token %d (yours: %d)", leasing.ErrLeaseLost, s.ref.JobID, job.LeaseToken, s.ref.Token)
	}
	switch state.JobStatus(job.Status) {
	case state.JobCompleted:
		return job, true, nil
	case state.JobLeased, state.JobRunning:
	case state.JobCancelled:
		// Cancelled while this lease held it (a cancel of a pending job
		// leaves no holder): the holder commits what it finished, once.
		if job.Partial {
			return job, true, nil
		}
	default:
		return job, false, fmt.Errorf("%w: job %s is %s", leasing.ErrLeaseLost, s.ref.JobID, job.Status)
	}
	return job, false, nil
}

func (s *stream) prepare() {
	// The staging tables exist on every pooled connection (ConfigurePool)
	// and are empty whenever a connection is released (close).
	s.seen = make(map[netip.Addr]struct{})
}

// stage validates a batch and adds it to the buffer, COPYing the buffer
// into the staging tables whenever it fills.
func (s *stream) stage(ctx context.Context, hosts []*pb.HostResult, sc scope) error {
	for _, h := range hosts {
		hr, prs, fe := validateHost(s.hosts, h, sc)
		if fe != nil {
			return apierr.Invalid(fe)
		}
		if _, dup := s.seen[hr.ip]; dup {
			return apierr.InvalidField(fmt.Sprintf("hosts[%d].address", s.hosts), "host %s reported twice in one job", hr.ip)
		}
		if len(s.seen) >= maxHostsPerJob {
			return apierr.InvalidField("hosts", "more than %d hosts in one job", maxHostsPerJob)
		}
		s.seen[hr.ip] = struct{}{}
		s.hosts++
		s.buf.addHost(hr)
		for _, p := range prs {
			s.buf.addPort(p)
			if p.state == "open" {
				s.openPorts++
			}
		}
		s.portRows += int64(len(prs))
	}
	if s.buf.len() >= memoryRows {
		return s.flush(ctx)
	}
	return nil
}

// flush COPYs the buffered rows into the staging tables.
func (s *stream) flush(ctx context.Context) error {
	if s.conn == nil {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("acquire connection: %w", err)
		}
		s.conn, s.q = conn, db.New(conn)
	}
	s.dirty = true
	if len(s.buf.hIP) > 0 {
		if _, err := s.conn.CopyFrom(ctx, pgx.Identifier{"ingest_hosts"}, hostColumns, s.buf.hostSource()); err != nil {
			return fmt.Errorf("stage hosts: %w", err)
		}
	}
	if len(s.buf.pIP) > 0 {
		if _, err := s.conn.CopyFrom(ctx, pgx.Identifier{"ingest_ports"}, portColumns, s.buf.portSource()); err != nil {
			return fmt.Errorf("stage ports: %w", err)
		}
	}
	s.buf.reset()
	return nil
}

// jobStats is what the controller knows of a job's scan_stats;
// ingest_commit adds hosts_up, port_rows and changes, which it counts.
type jobStats struct {
	HostsDown   int64   `json:"hosts_down"`
	HostsSent   int64   `json:"hosts_sent"`
	OpenPorts   int64   `json:"open_ports"`
	ElapsedSec  float64 `json:"elapsed_seconds"`
	NmapVersion string  `json:"nmap_version,omitempty"`
	ScannedTCP  string  `json:"scanned_tcp,omitempty"`
	ScannedUDP  string  `json:"scanned_udp,omitempty"`
}

// committed is what ingest_commit reports of one job.
type committed struct {
	outcome string
	siteID  uuid.UUID
	hosts   int64
	rows    int64
	changes int64
}

// commit merges the rows and completes the job in one transaction: its own
// if part of the job is staged on the stream's connection, else a group
// commit shared with other small jobs.
func (s *stream) commit(ctx context.Context, job db.GetJobLeaseStateRow, sum *pb.ScanSummary) (Result, error) {
	res := Result{JobID: s.ref.JobID}
	tcp, udp, err := scannedRanges(sum, job.Ports)
	if err != nil {
		return res, err
	}
	stats, err := json.Marshal(jobStats{
		HostsDown: sum.GetHostsDown(), HostsSent: int64(s.hosts), OpenPorts: s.openPorts,
		ElapsedSec: sum.GetElapsed().AsDuration().Seconds(), NmapVersion: sum.GetNmapVersion(),
		ScannedTCP: sum.GetScannedTcp(), ScannedUDP: sum.GetScannedUdp(),
	})
	if err != nil {
		return res, fmt.Errorf("encode scan stats: %w", err)
	}
	var c committed
	if s.dirty {
		c, err = s.commitStaged(ctx, tcp, udp, stats)
	} else {
		var row db.CommitJobsRow
		row, err = s.committer.commit(ctx, commitJob{ref: s.ref, scannedTCP: tcp, scannedUDP: udp, stats: stats}, &s.buf)
		c = committed{outcome: row.Outcome, siteID: row.JobSiteID, hosts: row.MergedHosts, rows: row.PortRows, changes: row.Changes}
	}
	if err != nil {
		return res, err
	}
	res.JobID = s.ref.JobID
	if c.outcome == "already_committed" {
		res.AlreadyCommitted = true
		return res, nil
	}
	res.Hosts, res.PortRows, res.Changes = c.hosts, c.rows, c.changes
	ev := events.JobEvent{
		JobID: s.ref.JobID, SiteID: c.siteID, Status: state.JobCompleted, ProgressPercent: 100,
		WorkerID: s.ref.WorkerID, Changes: c.changes,
	}
	if state.JobStatus(job.Status) == state.JobCancelled {
		res.Partial = true
		ev.Status, ev.ProgressPercent = state.JobCancelled, 0
	}
	// Published after the commit, not in it: NOTIFY serializes every
	// committing transaction that sent one, fsync included. Watching is a
	// live view; a lost event never loses data.
	s.pub.Publish(ev.Payload())
	return res, nil
}

// commitStaged COPYs the rest of the rows and commits the staged job on the
// stream's own connection.
func (s *stream) commitStaged(ctx context.Context, tcp, udp string, stats []byte) (committed, error) {
	if err := s.flush(ctx); err != nil {
		return committed{}, err
	}
	q := s.q
	arg := db.CommitJobParams{
		JobID: s.ref.JobID, WorkerID: s.ref.WorkerID, LeaseToken: s.ref.Token,
		ScannedTcp: tcp, ScannedUdp: udp, Stats: stats,
		RunAnalyze:   s.portRows+int64(s.hosts) >= analyzeThreshold,
		ClearStaging: s.small(),
	}
	began := time.Now()
	row, err := q.CommitJob(ctx, arg)
	s.metrics.Commit("staged", time.Since(began))
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == sqlstateLeaseLost {
		return committed{}, fmt.Errorf("%w: %s", leasing.ErrLeaseLost, pgErr.Message)
	}
	if err != nil {
		return committed{}, fmt.Errorf("commit job %s: %w", s.ref.JobID, err)
	}
	if arg.ClearStaging {
		s.dirty = false
	}
	return committed{outcome: row.Outcome, siteID: row.JobSiteID, hosts: row.MergedHosts, rows: row.PortRows, changes: row.Changes}, nil
}

// close empties the staging tables so the pooled connection carries nothing
// into its next use; a connection that cannot be cleaned is discarded.
func (s *stream) close() {
	if s.conn == nil {
		return
	}
	if s.dirty {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		if s.small() {
			if err = s.q.ClearStagedHosts(ctx); err == nil {
				err = s.q.ClearStagedPorts(ctx)
			}
		} else {
			_, err = s.conn.Exec(ctx, "TRUNCATE ingest_hosts, ingest_ports")
		}
		if err != nil {
			s.log.Warn("could not clear staging tables; dropping the connection", "error", err)
			_ = s.conn.Conn().Close(ctx)
		}
	}
	s.conn.Release()
}

// small reports a staging set cheaper to DELETE than to TRUNCATE.
func (s *stream) small() bool { return s.portRows+int64(s.hosts) < truncateThreshold }
