package ingest

import (
	"context"
	"net/netip"

	"github.com/google/uuid"

	"github.com/scanorama/scanorama/controller/leasing"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// ImportWorker is the worker_id of import jobs. An import job is inserted
// already leased to it (lease token 1) inside the transaction that commits
// its results, so no agent ever sees it and a failed import leaves no row.
const ImportWorker = "import"

// ImportJob describes where imported results go.
type ImportJob struct {
	// Network and Exclusions bound the addresses the results may carry,
	// exactly as a job's do for an agent.
	Network    netip.Prefix
	Exclusions []netip.Prefix
	// Create inserts the job row (kind import, running, worker_id
	// ImportWorker, lease token 1) and returns its id. It runs inside the
	// commit's transaction, just before ingest_commit.
	Create func(ctx context.Context, q *db.Queries) (uuid.UUID, error)
}

// HostSource produces the hosts of an import: it calls stage once per host,
// in file order, and returns the run's summary. An error from stage must
// end the source and be returned (wrapped or not).
type HostSource func(ctx context.Context, stage func(*pb.HostResult) error) (*pb.ScanSummary, error)

// Import commits the results of a scan made elsewhere as a new job: the
// same validation, staging, ingest_commit merge and job event as an agent's
// results stream. Hosts are staged as src produces them, so memory stays
// bounded whatever the size of the source. Nothing is written unless every
// host is valid and the commit succeeds.
func (in *Ingester) Import(ctx context.Context, job ImportJob, src HostSource) (Result, error) {
	s := &stream{
		pool: in.pool, q: in.q, pub: in.pub, committer: in.committer,
		ref: leasing.LeaseRef{WorkerID: ImportWorker, Token: 1}, log: in.log.With("import", true),
		create: job.Create,
	}
	defer s.close()
	s.prepare()
	sc := scope{network: job.Network, exclusions: job.Exclusions}
	one := make([]*pb.HostResult, 1)
	sum, err := src(ctx, func(h *pb.HostResult) error {
		one[0] = h
		return s.stage(ctx, one, sc)
	})
	if err != nil {
		return Result{}, err
	}
	if sum == nil {
		sum = &pb.ScanSummary{}
	}
	sum.HostsSent = int64(s.hosts)
	res, err := s.commit(ctx, db.GetJobLeaseStateRow{}, sum)
	if err != nil {
		return Result{}, err
	}
	s.log.Info("import committed", "job_id", res.JobID, "hosts", res.Hosts, "port_rows", res.PortRows, "changes", res.Changes)
	if in.OnCommit != nil {
		in.OnCommit(res.JobID)
	}
	return res, nil
}
