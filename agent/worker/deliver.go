package worker

import (
	"context"
	"errors"
	"io"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scanorama/scanorama/agent/spool"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// final reports a rejection that no retry can change.
func final(err error) bool {
	switch status.Code(err) {
	case codes.FailedPrecondition, codes.InvalidArgument, codes.NotFound:
		return true
	}
	return false
}

func invalid(err error) bool { return status.Code(err) == codes.InvalidArgument }

// liveStream sends hosts as nmap finishes them. When it breaks, the job's
// results are delivered again, in full, from the spool.
type liveStream struct {
	stream pb.AgentService_StreamResultsClient
	cancel context.CancelFunc
	err    error
	// early is the controller's answer when it ended the stream before the
	// summary (a job already committed under this lease is acknowledged at
	// open): nothing more is sent and finish returns it.
	early *pb.StreamResultsResponse
	log   hclog.Logger
}

func newLiveStream(ctx context.Context, c pb.AgentServiceClient, open *pb.ResultsOpen, log hclog.Logger) *liveStream {
	ctx, cancel := context.WithCancel(ctx)
	l := &liveStream{cancel: cancel, log: log}
	l.stream, l.err = c.StreamResults(ctx)
	if l.err == nil {
		l.sendMsg(&pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Open{Open: open}})
	}
	return l
}

func (l *liveStream) sendMsg(m *pb.StreamResultsRequest) {
	if l.err != nil || l.early != nil {
		return
	}
	if err := l.stream.Send(m); err != nil {
		// io.EOF means the server ended the stream; its status says why.
		if errors.Is(err, io.EOF) {
			l.early, err = l.stream.CloseAndRecv()
		}
		l.err = err
		l.log.Debug("live results stream ended by the controller", "error", err)
	}
}

func (l *liveStream) send(b *pb.HostBatch) {
	l.sendMsg(&pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Hosts{Hosts: b}})
}

func (l *liveStream) finish(s *pb.ScanSummary) (*pb.StreamResultsResponse, error) {
	defer l.cancel()
	l.sendMsg(&pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Summary{Summary: s}})
	if l.err != nil {
		return nil, l.err
	}
	if l.early != nil {
		return l.early, nil
	}
	return l.stream.CloseAndRecv()
}

func (l *liveStream) abort() { l.cancel() }

// replay sends one spooled job on a fresh stream.
func (a *Agent) replay(ctx context.Context, e spool.Entry) (*pb.StreamResultsResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.client.StreamResults(ctx)
	if err != nil {
		return nil, err
	}
	replayErr := a.spool.Replay(e, stream.Send)
	if replayErr != nil && !errors.Is(replayErr, io.EOF) {
		return nil, replayErr
	}
	return stream.CloseAndRecv()
}

// deliverEntry retries one complete spool file until the controller
// acknowledges it, rejects it for good, or ctx ends (the file then stays
// for the next start).
func (a *Agent) deliverEntry(ctx context.Context, e spool.Entry, j *job) {
	bo := newBackoff(a.cfg.RetryMin, a.cfg.RetryMax)
	for {
		ack, err := a.replay(ctx, e)
		if err == nil {
			a.cfg.Metrics.Delivered("spool")
			j.log.Info("results committed from spool", "hosts", ack.GetHosts(), "port_rows", ack.GetPortRows(), "already_committed", ack.GetAlreadyCommitted())
			j.discard()
			return
		}
		var corrupt *spool.CorruptError
		if errors.As(err, &corrupt) {
			j.log.Error("spool file is damaged; giving the job back", "error", err)
			j.fail(ctx, "agent spool damaged: "+err.Error(), true)
			j.discard()
			return
		}
		if final(err) {
			j.rejected(ctx, err)
			return
		}
		a.cfg.Metrics.DeliveryRetry()
		j.log.Warn("delivering results failed; retrying", "error", err)
		if !bo.wait(ctx) {
			j.log.Warn("stopping with results still spooled; they are sent again at the next start")
			return
		}
	}
}

// redeliver sends what a previous run of this agent left in the spool.
func (a *Agent) redeliver(ctx context.Context) {
	entries, err := a.spool.Pending()
	if err != nil {
		a.log.Error("cannot list the spool", "error", err)
		return
	}
	for _, e := range entries {
		j := &job{a: a, lease: &pb.Lease{JobId: e.JobID, LeaseToken: e.LeaseToken},
			log: a.log.With("job_id", e.JobID, "lease_token", e.LeaseToken)}
		j.cancel = func(error) {}
		switch {
		case e.Complete:
			j.log.Info("resending spooled results")
			a.deliverEntry(ctx, e, j)
		default:
			// A scan interrupted by a crash cannot be finished: give the job
			// back now rather than waiting for the lease to expire.
			j.log.Warn("found results of an interrupted scan; giving the job back", "error", e.Err)
			j.fail(ctx, "agent restarted during the scan", true)
			j.discard()
		}
	}
}
