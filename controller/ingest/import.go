package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/events"
	"github.com/scanorama/scanorama/controller/leasing"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// ImportWorker is the worker_id of import jobs. An import job is inserted
// already leased to it (lease token 1) inside the transaction that commits
// its results, so no agent ever sees it and a failed import leaves no row.
const ImportWorker = "import"

// ImportTarget is a target imported results may land in.
type ImportTarget struct {
	ID uuid.UUID
	// Network and Exclusions bound the addresses its hosts may carry,
	// exactly as a job's do for an agent.
	Network    netip.Prefix
	Exclusions []netip.Prefix
	// Create inserts the target's import job row (kind import, running,
	// worker_id ImportWorker, lease token 1) and returns its id. It runs
	// inside the commit's transaction, just before ingest_commit. inner
	// lists the networks of more specific targets that got jobs of their
	// own in the same import: the job excludes them (their jobs, not this
	// one, say which of their hosts did not answer).
	Create func(ctx context.Context, q *db.Queries, inner []netip.Prefix) (uuid.UUID, error)
}

// ImportJob describes where imported results go.
type ImportJob struct {
	// Targets, most specific network first. With one, every host must lie
	// in it. With several, each host goes to the first whose network
	// contains its address, and the import becomes one job per target that
	// got hosts, all committed in one transaction; a host in none of them
	// refuses the whole import.
	Targets []ImportTarget
	// Where names the targets in errors (e.g. `site "lab"`).
	Where string
}

// HostSource produces the hosts of an import: it calls stage once per host,
// in file order, and returns the run's summary. An error from stage must
// end the source and be returned (wrapped or not).
type HostSource func(ctx context.Context, stage func(*pb.HostResult) error) (*pb.ScanSummary, error)

// ImportedJob is one job an import created.
type ImportedJob struct {
	JobID, TargetID uuid.UUID
	Hosts, PortRows int64
	Changes         int64
}

// importPart is what an import staged for one target.
type importPart struct {
	target              *ImportTarget
	hosts, down         int64
	portRows, openPorts int64
}

// Import commits the results of a scan made elsewhere as new jobs: the
// same validation, staging, ingest_commit merge and job events as an
// agent's results stream. Hosts are staged as src produces them, so memory
// stays bounded whatever the size of the source. Nothing is written unless
// every host is valid and every job commits. Result.JobID is the first
// job's; jobs lists them all.
func (in *Ingester) Import(ctx context.Context, job ImportJob, src HostSource) (Result, []ImportedJob, error) {
	if len(job.Targets) == 0 {
		return Result{}, nil, errors.New("import: no target")
	}
	s := &stream{
		pool: in.pool, q: in.q, pub: in.pub, committer: in.committer,
		ref: leasing.LeaseRef{WorkerID: ImportWorker, Token: 1}, log: in.log.With("import", true),
		metrics: in.metrics,
	}
	defer s.close()
	s.prepare()
	parts := make([]importPart, len(job.Targets))
	for i := range job.Targets {
		parts[i].target = &job.Targets[i]
	}
	one := make([]*pb.HostResult, 1)
	sum, err := src(ctx, func(h *pb.HostResult) error {
		p, err := pickTarget(parts, s.hosts, h, job.Where)
		if err != nil {
			return err
		}
		hosts, rows, open := s.hosts, s.portRows, s.openPorts
		one[0] = h
		if err := s.stage(ctx, one, scope{network: p.target.Network, exclusions: p.target.Exclusions}); err != nil {
			return err
		}
		p.hosts += int64(s.hosts - hosts)
		p.portRows += s.portRows - rows
		p.openPorts += s.openPorts - open
		if h.GetStatus() == "down" {
			p.down++
		}
		return nil
	})
	if err != nil {
		return Result{}, nil, err
	}
	if sum == nil {
		sum = &pb.ScanSummary{}
	}
	used := parts[:0:0]
	for _, p := range parts {
		if p.hosts > 0 {
			used = append(used, p)
		}
	}
	if len(used) == 0 {
		if len(parts) > 1 {
			return Result{}, nil, apierr.InvalidField("data",
				"the file reports no host, so no target of %s is its own: name one with target_id; nothing was imported", job.Where)
		}
		// A file without hosts still records the run (its silent hosts are down).
		used = parts
	}
	if len(used) == 1 && len(parts) == 1 {
		// Every host counts, as nmap's own summary says.
		used[0].down = sum.GetHostsDown()
	}
	res, jobs, err := s.commitImport(ctx, used, sum)
	if err != nil {
		return Result{}, nil, err
	}
	for _, j := range jobs {
		s.log.Info("import committed", "job_id", j.JobID, "target_id", j.TargetID, "hosts", j.Hosts, "port_rows", j.PortRows, "changes", j.Changes)
		if in.OnCommit != nil {
			in.OnCommit(j.JobID)
		}
	}
	return res, jobs, nil
}

// pickTarget returns the part a host belongs to: the only target's, or the
// first whose network contains the address. An address that parses but
// lies in no target is refused here, naming the targets; anything else
// wrong with the host is validateHost's to name.
func pickTarget(parts []importPart, idx int, h *pb.HostResult, where string) (*importPart, error) {
	if len(parts) == 1 {
		return &parts[0], nil
	}
	a, err := netip.ParseAddr(h.GetAddress())
	if err != nil {
		return &parts[0], nil
	}
	a = a.Unmap()
	for i := range parts {
		if parts[i].target.Network.Contains(a) {
			return &parts[i], nil
		}
	}
	nets := make([]string, len(parts))
	for i, p := range parts {
		nets[i] = p.target.Network.String()
	}
	return nil, apierr.InvalidField(fmt.Sprintf("hosts[%d].address", idx),
		"address %s is in no target of %s (networks %s): name a target with target_id, or create one that covers it; nothing was imported",
		a, where, strings.Join(nets, ", "))
}

// Moving one target's staged rows aside and back: the rows of every target
// are staged together; each job's ingest_commit reads the staging tables
// whole, so they are refilled with one target's rows at a time.
const (
	importSetAside = `CREATE TEMP TABLE import_hosts ON COMMIT DROP AS TABLE ingest_hosts;
CREATE TEMP TABLE import_ports ON COMMIT DROP AS TABLE ingest_ports;
DELETE FROM ingest_hosts;
DELETE FROM ingest_ports`
	importTakeHosts = `WITH m AS (DELETE FROM import_hosts WHERE ip <<= $1 RETURNING *) INSERT INTO ingest_hosts SELECT * FROM m`
	importTakePorts = `WITH m AS (DELETE FROM import_ports WHERE ip <<= $1 RETURNING *) INSERT INTO ingest_ports SELECT * FROM m`
)

// commitImport creates the import jobs and commits their staged rows in one
// transaction on the stream's own connection: all of them or none.
func (s *stream) commitImport(ctx context.Context, parts []importPart, sum *pb.ScanSummary) (Result, []ImportedJob, error) {
	tcp, udp, err := scannedRanges(sum, "")
	if err != nil {
		return Result{}, nil, err
	}
	if err := s.flush(ctx); err != nil {
		return Result{}, nil, err
	}
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return Result{}, nil, fmt.Errorf("begin import commit: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	q := s.q.WithTx(tx)
	split := len(parts) > 1
	if split {
		if _, err := tx.Exec(ctx, importSetAside); err != nil {
			return Result{}, nil, fmt.Errorf("split staged import rows: %w", err)
		}
	}
	var (
		res  Result
		jobs []ImportedJob
		evs  []events.JobEvent
	)
	for i := range parts {
		p := &parts[i]
		if split {
			if _, err := tx.Exec(ctx, importTakeHosts, p.target.Network); err != nil {
				return Result{}, nil, fmt.Errorf("stage import rows of %s: %w", p.target.Network, err)
			}
			if _, err := tx.Exec(ctx, importTakePorts, p.target.Network); err != nil {
				return Result{}, nil, fmt.Errorf("stage import rows of %s: %w", p.target.Network, err)
			}
		}
		var inner []netip.Prefix
		for _, o := range parts[:i] {
			if n := o.target.Network; n.Bits() >= p.target.Network.Bits() && p.target.Network.Contains(n.Addr()) {
				inner = append(inner, n)
			}
		}
		jobID, err := p.target.Create(ctx, q, inner)
		if err != nil {
			return Result{}, nil, err
		}
		stats, err := json.Marshal(jobStats{
			HostsDown: p.down, HostsSent: p.hosts, OpenPorts: p.openPorts,
			ElapsedSec: sum.GetElapsed().AsDuration().Seconds(), NmapVersion: sum.GetNmapVersion(),
			ScannedTCP: sum.GetScannedTcp(), ScannedUDP: sum.GetScannedUdp(),
		})
		if err != nil {
			return Result{}, nil, fmt.Errorf("encode scan stats: %w", err)
		}
		arg := db.CommitJobParams{
			JobID: jobID, WorkerID: s.ref.WorkerID, LeaseToken: s.ref.Token,
			ScannedTcp: tcp, ScannedUdp: udp, Stats: stats,
			RunAnalyze: p.portRows+p.hosts >= analyzeThreshold,
			// Split parts empty the staging tables for the next target.
			ClearStaging: split || s.small(),
		}
		began := time.Now()
		row, err := q.CommitJob(ctx, arg)
		s.metrics.Commit("staged", time.Since(began))
		if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == sqlstateLeaseLost {
			return Result{}, nil, fmt.Errorf("%w: %s", leasing.ErrLeaseLost, pgErr.Message)
		}
		if err != nil {
			return Result{}, nil, fmt.Errorf("commit import job %s: %w", jobID, err)
		}
		j := ImportedJob{JobID: jobID, TargetID: p.target.ID, Hosts: row.MergedHosts, PortRows: row.PortRows, Changes: row.Changes}
		jobs = append(jobs, j)
		if i == 0 {
			res.JobID = j.JobID
		}
		res.Hosts += j.Hosts
		res.PortRows += j.PortRows
		res.Changes += j.Changes
		evs = append(evs, events.JobEvent{JobID: jobID, SiteID: row.JobSiteID, Status: state.JobCompleted, ProgressPercent: 100,
			WorkerID: s.ref.WorkerID, Changes: row.Changes})
	}
	if err := tx.Commit(ctx); err != nil {
		return Result{}, nil, fmt.Errorf("commit import: %w", err)
	}
	if split || s.small() {
		s.dirty = false
	}
	// After the commit, as for agents' jobs (see stream.commit).
	for _, ev := range evs {
		s.pub.Publish(ev.Payload())
	}
	return res, jobs, nil
}
