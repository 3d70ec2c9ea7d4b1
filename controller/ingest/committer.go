package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/leasing"
	"github.com/scanorama/scanorama/controller/metrics"
	"github.com/scanorama/scanorama/gen/db"
)

// Group commit of small jobs. Streams whose rows fit in memory hand their
// commit to a few committer goroutines; each takes the first waiting commit
// plus whatever else is waiting (up to the limits below) and runs them as
// one ingest_commit_many statement. Nothing waits for a batch to fill: under
// light load a batch is one job, under heavy load the commits that queue
// while one batch runs form the next. The function merges a batch of two or
// more jobs set-based (each merge step once for the batch); should that
// raise, it commits job by job, a subtransaction each. Either way each job
// is all or nothing and hears its own outcome, and is acknowledged only
// after its batch's transaction has committed.
const (
	committers         = 2
	maxBatchJobs       = 128
	maxBatchRows       = 4 * memoryRows
	committerQueueSize = 1024
)

type commitRequest struct {
	job     commitJob
	rows    *rowBuffer
	replyTo chan commitReply
}

// commitJob is one job's part of a CommitJobs call, rows aside.
type commitJob struct {
	ref        leasing.LeaseRef
	scannedTCP string
	scannedUDP string
	stats      []byte
}

type commitReply struct {
	row db.CommitJobsRow
	err error
}

type committer struct {
	q       *db.Queries
	log     hclog.Logger
	in      chan *commitRequest
	metrics *metrics.Controller
}

func newCommitter(pool *pgxpool.Pool, log hclog.Logger) *committer {
	return &committer{q: db.New(pool), log: log.Named("committer"), in: make(chan *commitRequest, committerQueueSize)}
}

// start runs the committer goroutines until ctx ends.
func (c *committer) start(ctx context.Context) {
	for range committers {
		go c.run(ctx)
	}
}

// commit queues one job and waits for its batch. An error after the job
// was queued leaves its fate unknown to the caller, as a lost ack would:
// the agent retries and learns "already committed" or commits then.
func (c *committer) commit(ctx context.Context, job commitJob, rows *rowBuffer) (db.CommitJobsRow, error) {
	req := &commitRequest{job: job, rows: rows, replyTo: make(chan commitReply, 1)}
	select {
	case c.in <- req:
	case <-ctx.Done():
		return db.CommitJobsRow{}, ctx.Err()
	}
	select {
	case r := <-req.replyTo:
		return r.row, r.err
	case <-ctx.Done():
		return db.CommitJobsRow{}, ctx.Err()
	}
}

func (c *committer) run(ctx context.Context) {
	var batch []*commitRequest
	for {
		select {
		case <-ctx.Done():
			return
		case first := <-c.in:
			batch = c.gather(append(batch[:0], first))
			c.commitBatch(ctx, batch)
			clear(batch)
		}
	}
}

// gather adds the commits already waiting, within the batch limits.
func (c *committer) gather(batch []*commitRequest) []*commitRequest {
	rows := batch[0].rows.len()
	for len(batch) < maxBatchJobs && rows < maxBatchRows {
		select {
		case r := <-c.in:
			batch = append(batch, r)
			rows += r.rows.len()
		default:
			return batch
		}
	}
	return batch
}

func (c *committer) commitBatch(ctx context.Context, batch []*commitRequest) {
	var arg db.CommitJobsParams
	var all rowBuffer
	for _, r := range batch {
		arg.JobIds = append(arg.JobIds, r.job.ref.JobID)
		arg.WorkerIds = append(arg.WorkerIds, r.job.ref.WorkerID)
		arg.LeaseTokens = append(arg.LeaseTokens, r.job.ref.Token)
		arg.ScannedTcp = append(arg.ScannedTcp, r.job.scannedTCP)
		arg.ScannedUdp = append(arg.ScannedUdp, r.job.scannedUDP)
		arg.Stats = append(arg.Stats, r.job.stats)
		arg.HostCounts = append(arg.HostCounts, int32(len(r.rows.hIP)))
		arg.PortCounts = append(arg.PortCounts, int32(len(r.rows.pIP)))
		all.append(r.rows)
	}
	all.setManyArrays(&arg)
	began := time.Now()
	rows, err := c.q.CommitJobs(ctx, arg)
	c.metrics.Commit("group", time.Since(began))
	c.metrics.GroupCommit(len(batch), all.len())
	if err == nil && len(rows) != len(batch) {
		err = fmt.Errorf("commit of %d jobs returned %d rows", len(batch), len(rows))
	}
	if err != nil {
		c.log.Warn("group commit failed; the batch's agents will retry", "jobs", len(batch), "error", err)
		for _, r := range batch {
			r.replyTo <- commitReply{err: fmt.Errorf("commit job %s: %w", r.job.ref.JobID, err)}
		}
		return
	}
	if len(batch) > 1 {
		c.log.Trace("group commit", "jobs", len(batch), "rows", all.len())
	}
	for i, r := range batch {
		row := rows[i]
		switch row.Outcome {
		case "committed", "already_committed":
			r.replyTo <- commitReply{row: row}
		case "lease_lost":
			r.replyTo <- commitReply{err: fmt.Errorf("%w: %s", leasing.ErrLeaseLost, row.Message)}
		default:
			r.replyTo <- commitReply{err: fmt.Errorf("commit job %s: %w", r.job.ref.JobID, errors.New(row.Message))}
		}
	}
}
