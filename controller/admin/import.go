package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/scanorama/scanorama/agent/nmaprun"
	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/ingest"
	"github.com/scanorama/scanorama/controller/jobs"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Importer commits imported results (ingest.Ingester).
type Importer interface {
	Import(ctx context.Context, job ingest.ImportJob, src ingest.HostSource) (ingest.Result, []ingest.ImportedJob, error)
}

// WithImporter enables ImportResults, committing through in.
func (s *Server) WithImporter(in Importer) *Server {
	s.importer = in
	return s
}

// ImportResults implements AdminService.ImportResults.
func (s *Server) ImportResults(stream pb.AdminService_ImportResultsServer) error {
	ctx := stream.Context()
	if s.importer == nil {
		return status.Error(codes.Unimplemented, "this controller does not import results")
	}
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return apierr.InvalidField("start", "required: the first message names the site")
	}
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return apierr.InvalidField("start", "the first message must be start {site, target_id}")
	}
	site, err := s.siteByName(ctx, s.q, "start.site", start.GetSite())
	if err != nil {
		return err
	}
	targets, err := s.importTargets(ctx, site, start.GetTargetId())
	if err != nil {
		return err
	}
	by := actor(ctx)
	job := ingest.ImportJob{Where: fmt.Sprintf("site %q", site.Name)}
	for _, target := range targets {
		excl, err := jobs.Exclusions(ctx, s.q, target)
		if err != nil {
			return s.internal("read exclusions", err)
		}
		job.Targets = append(job.Targets, ingest.ImportTarget{
			ID: target.ID, Network: target.Network, Exclusions: excl,
			Create: func(ctx context.Context, q *db.Queries, inner []netip.Prefix) (uuid.UUID, error) {
				id, err := q.InsertImportJob(ctx, db.InsertImportJobParams{
					TargetID: target.ID, SiteID: site.ID, ProfileID: target.ProfileID, Network: target.Network,
					Exclusions: append(slices.Clip(excl), inner...), WorkerID: pgtype.Text{String: ingest.ImportWorker, Valid: true}, CreatedBy: by,
				})
				if err != nil {
					return id, fmt.Errorf("create import job: %w", err)
				}
				if err := q.InsertImportLease(ctx, db.InsertImportLeaseParams{JobID: id, WorkerID: ingest.ImportWorker}); err != nil {
					return id, fmt.Errorf("record import lease: %w", err)
				}
				return id, nil
			},
		})
	}
	r := &chunkReader{stream: stream}
	res, imported, err := s.importer.Import(ctx, job, func(ctx context.Context, stage func(*pb.HostResult) error) (*pb.ScanSummary, error) {
		sum, err := nmaprun.Decode(ctx, r, 0, importEvents{stage: stage})
		if err != nil {
			return nil, importErr(r, err)
		}
		return &pb.ScanSummary{
			HostsUp: int64(sum.HostsUp), HostsDown: int64(sum.HostsDown), Elapsed: durationpb.New(sum.Elapsed),
			NmapVersion: sum.NmapVersion, ScannedTcp: sum.ScannedTCP, ScannedUdp: sum.ScannedUDP,
		}, nil
	})
	if err != nil {
		return s.internal("import results", err)
	}
	resp := &pb.ImportResultsResponse{JobId: res.JobID.String(), Hosts: res.Hosts, PortRows: res.PortRows, Changes: res.Changes}
	for _, j := range imported {
		resp.Jobs = append(resp.Jobs, &pb.ImportedJob{JobId: j.JobID.String(), TargetId: j.TargetID.String(),
			Hosts: j.Hosts, PortRows: j.PortRows, Changes: j.Changes})
	}
	s.log.Info("results imported", "site", site.Name, "jobs", len(imported), "job_id", res.JobID,
		"hosts", res.Hosts, "port_rows", res.PortRows, "changes", res.Changes, "by", by)
	return stream.SendAndClose(resp)
}

// importTargets resolves the targets an import may land in: the one named,
// which must belong to the site, or else the site's targets in use (neither
// archived nor being purged), most specific network first: each host then
// goes to the first that contains its address.
func (s *Server) importTargets(ctx context.Context, site db.Site, targetID string) ([]db.ScanTarget, error) {
	if targetID == "" {
		ts, err := s.q.SiteImportTargets(ctx, site.ID)
		if err != nil {
			return nil, s.internal("list targets", err)
		}
		if len(ts) == 0 {
			return nil, apierr.InvalidField("start.target_id",
				"site %q has no target; create one with CreateTarget (its network bounds what may be imported)", site.Name)
		}
		return ts, nil
	}
	id, err := parseID("start.target_id", targetID)
	if err != nil {
		return nil, err
	}
	t, err := s.q.GetTarget(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apierr.NotFound("start.target_id", "no target %s", id)
	}
	if err != nil {
		return nil, s.internal("read target", err)
	}
	if t.ScanTarget.SiteID != site.ID {
		return nil, apierr.InvalidField("start.target_id", "target %s belongs to site %q, not %q", id, t.SiteName, site.Name)
	}
	return []db.ScanTarget{t.ScanTarget}, nil
}

// importErr turns a decode failure into the status the client sees: the
// stream's own error, a host's validation error as is, or INVALID_ARGUMENT
// naming what in the file is wrong.
func importErr(r *chunkReader, err error) error {
	if r.err != nil {
		return r.err
	}
	var st interface{ GRPCStatus() *status.Status }
	if errors.As(err, &st) {
		return st.GRPCStatus().Err()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	msg := err.Error()
	switch {
	case errors.Is(err, nmaprun.ErrTruncated):
		msg = "the nmap XML ends before </nmaprun> (an interrupted scan?): " + msg
	case strings.Contains(msg, "no run statistics"):
		msg = "the nmap XML has no <runstats> (an interrupted scan?)"
	}
	return apierr.InvalidField("data", "%s", msg)
}

// importEvents hands each decoded host to the ingest path.
type importEvents struct {
	stage func(*pb.HostResult) error
}

func (e importEvents) Host(_ context.Context, h nmaprun.Host) error {
	return e.stage(nmaprun.HostResult(h))
}
func (importEvents) Progress(int) {}

// chunkReader reads the data messages of an ImportResults stream as one
// byte stream.
type chunkReader struct {
	stream pb.AdminService_ImportResultsServer
	buf    []byte
	err    error // the stream's own failure, or a misplaced message
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		msg, err := r.stream.Recv()
		if errors.Is(err, io.EOF) {
			return 0, io.EOF
		}
		if err != nil {
			r.err = err
			return 0, err
		}
		if msg.GetStart() != nil {
			r.err = apierr.InvalidField("start", "only the first message may be start; the rest carry data")
			return 0, r.err
		}
		r.buf = msg.GetData()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
