package worker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/scanorama/scanorama/agent/metrics"
	"github.com/scanorama/scanorama/agent/nmaprun"
	"github.com/scanorama/scanorama/agent/scanspec"
	"github.com/scanorama/scanorama/agent/scanspec/specpb"
	"github.com/scanorama/scanorama/agent/spool"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Reasons a scan stops early.
var (
	errCancelled = errors.New("job cancelled by an operator")
	errLeaseLost = errors.New("lease lost")
	errSpool     = errors.New("agent spool failed")
	// errNothingToScan: exclusions added while the job was queued cover its
	// whole network; the job completes with no hosts instead of failing.
	errNothingToScan = errors.New("every address of the job is excluded")
)

// job is one lease being worked on.
type job struct {
	a        *Agent
	lease    *pb.Lease
	log      hclog.Logger
	progress atomic.Int32
	cancel   context.CancelCauseFunc
}

// runJob runs one lease to its end: results delivered, failed, released or abandoned.
func (a *Agent) runJob(ctx context.Context, l *pb.Lease) {
	j := &job{a: a, lease: l, log: a.log.With("job_id", l.GetJobId(), "lease_token", l.GetLeaseToken(), "network", l.GetNetwork())}
	j.log.Info("lease acquired", "attempt", l.GetAttempt())

	args, hosts, err := j.plan()
	if errors.Is(err, errNothingToScan) {
		j.log.Info("every address is excluded; completing the job without scanning")
		j.completeEmpty(ctx)
		return
	}
	if err != nil {
		a.cfg.Metrics.JobRefused()
		j.log.Error("refusing job", "error", err)
		j.fail(ctx, err.Error(), false)
		return
	}
	scanCtx, cancel := context.WithCancelCause(ctx)
	j.cancel = cancel
	defer cancel(nil)

	// Heartbeats run until the results are delivered, not just while nmap
	// runs: a slow delivery must not let the lease expire.
	hbCtx, stopHB := context.WithCancel(context.Background())
	var hbDone sync.WaitGroup
	hbDone.Add(1)
	go func() { defer hbDone.Done(); j.heartbeats(hbCtx) }()
	defer func() { stopHB(); hbDone.Wait() }()

	w, err := a.spool.Create(j.open())
	if err != nil {
		j.log.Error("cannot spool results; giving the job back", "error", err)
		j.fail(ctx, "agent spool: "+err.Error(), true)
		return
	}
	live := newLiveStream(scanCtx, a.client, j.open(), j.log)
	pipe := newHostPipe(w, live)
	ev := &events{j: j, pipe: pipe}
	began := time.Now()
	sum, err := a.runner.Run(scanCtx, nmaprun.Job{Args: args, ExpectedHosts: hosts}, ev)
	ran := time.Since(began)
	sent, spoolErr := pipe.close()
	if err == nil && spoolErr != nil {
		err = spoolErr
	}
	if err != nil {
		live.abort()
		cause := context.Cause(scanCtx)
		if errors.Is(cause, errCancelled) && spoolErr == nil {
			// The hosts nmap had finished are spooled: commit them.
			j.log.Info("scan stopped: job cancelled; committing the hosts it finished", "hosts", sent)
			j.finishPartial(ctx, w, sent, sum)
			return
		}
		_ = w.Close()
		j.discard()
		switch {
		case errors.Is(cause, errCancelled):
			a.cfg.Metrics.Run(metrics.RunCancelled, ran)
			j.log.Info("scan stopped: job cancelled")
		case errors.Is(cause, errLeaseLost):
			a.cfg.Metrics.Run(metrics.RunLeaseLost, ran)
			j.log.Warn("scan stopped: lease lost")
		case ctx.Err() != nil:
			a.cfg.Metrics.Run(metrics.RunShutdown, ran)
			j.release()
		default:
			a.cfg.Metrics.Run(metrics.RunFailed, ran)
			j.log.Error("scan failed", "error", err)
			j.fail(ctx, "nmap: "+err.Error(), true)
		}
		return
	}
	summary := &pb.ScanSummary{
		HostsUp: int64(sum.HostsUp), HostsDown: int64(sum.HostsDown), HostsSent: sent,
		Elapsed: durationpb.New(sum.Elapsed), NmapVersion: sum.NmapVersion,
		ScannedTcp: sum.ScannedTCP, ScannedUdp: sum.ScannedUDP,
	}
	if err := w.Finish(summary); err != nil {
		a.cfg.Metrics.Run(metrics.RunFailed, ran)
		_ = w.Close()
		j.discard()
		j.log.Error("cannot spool the summary; giving the job back", "error", err)
		j.fail(ctx, "agent spool: "+err.Error(), true)
		return
	}
	_ = w.Close()
	a.cfg.Metrics.Run(metrics.RunCompleted, ran)
	j.progress.Store(100)
	ack, err := live.finish(summary)
	if err == nil {
		a.cfg.Metrics.Delivered("live")
		j.log.Info("results committed", "hosts", ack.GetHosts(), "port_rows", ack.GetPortRows(), "already_committed", ack.GetAlreadyCommitted())
		j.discard()
		return
	}
	if final(err) {
		j.rejected(ctx, err)
		return
	}
	j.log.Warn("live results stream broke; delivering from the spool", "error", err)
	a.deliverEntry(scanCtx, spool.Entry{JobID: l.GetJobId(), LeaseToken: l.GetLeaseToken(), Complete: true}, j)
}

// finishPartial ends the spool file of a cancelled scan with a partial
// summary and delivers it: the controller commits the finished hosts once and
// leaves the job cancelled.
func (j *job) finishPartial(ctx context.Context, w *spool.Writer, sent int64, sum nmaprun.Summary) {
	summary := &pb.ScanSummary{
		HostsSent: sent, Elapsed: durationpb.New(sum.Elapsed), NmapVersion: sum.NmapVersion,
		ScannedTcp: sum.ScannedTCP, ScannedUdp: sum.ScannedUDP, Partial: true,
	}
	err := w.Finish(summary)
	_ = w.Close()
	if err != nil {
		j.discard()
		j.log.Error("cannot spool the partial summary; the finished hosts are dropped", "error", err)
		return
	}
	j.a.deliverEntry(ctx, spool.Entry{JobID: j.lease.GetJobId(), LeaseToken: j.lease.GetLeaseToken(), Complete: true}, j)
}

// completeEmpty delivers a result with no hosts: nothing was left to scan.
func (j *job) completeEmpty(ctx context.Context) {
	w, err := j.a.spool.Create(j.open())
	if err != nil {
		j.fail(ctx, "agent spool: "+err.Error(), true)
		return
	}
	err = w.Finish(&pb.ScanSummary{Elapsed: durationpb.New(0)})
	_ = w.Close()
	if err != nil {
		j.discard()
		j.fail(ctx, "agent spool: "+err.Error(), true)
		return
	}
	j.a.deliverEntry(ctx, spool.Entry{JobID: j.lease.GetJobId(), LeaseToken: j.lease.GetLeaseToken(), Complete: true}, j)
}

func (j *job) open() *pb.ResultsOpen {
	return &pb.ResultsOpen{AgentId: j.a.id(), JobId: j.lease.GetJobId(), LeaseToken: j.lease.GetLeaseToken()}
}

// plan re-validates everything the controller sent: the agent is the last
// line of defence for what gets probed.
func (j *job) plan() ([]string, uint64, error) {
	opts, err := specpb.FromPB(j.lease.GetOptions())
	if err != nil {
		return nil, 0, fmt.Errorf("invalid scan options: %w", err)
	}
	network, err := netip.ParsePrefix(j.lease.GetNetwork())
	if err != nil {
		return nil, 0, fmt.Errorf("invalid network %q: %w", j.lease.GetNetwork(), err)
	}
	if !j.a.inScope(network) {
		return nil, 0, fmt.Errorf("network %s is outside this agent's scope %v", network, j.a.cfg.Scope)
	}
	excl := make([]netip.Prefix, 0, len(j.lease.GetExclusions()))
	for _, e := range j.lease.GetExclusions() {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return nil, 0, fmt.Errorf("invalid exclusion %q: %w", e, err)
		}
		excl = append(excl, p)
	}
	if scanspec.HostCount([]netip.Prefix{network}, excl) == 0 {
		return nil, 0, errNothingToScan
	}
	if opts.RequiresRawSockets() && !j.a.caps.RawSockets {
		return nil, 0, fmt.Errorf("agent %s cannot run this %s scan: it needs raw sockets (root or CAP_NET_RAW) and has none", j.a.cfg.Name, opts.ScanType)
	}
	args, err := scanspec.Args(opts, []netip.Prefix{network}, excl)
	if err != nil {
		return nil, 0, fmt.Errorf("build nmap arguments: %w", err)
	}
	switch {
	case opts.RequiresRawSockets() && os.Geteuid() != 0:
		// Not root but granted CAP_NET_RAW: nmap uses raw sockets only when told.
		args = append([]string{"--privileged"}, args...)
	case !j.a.caps.RawSockets:
		// Root without CAP_NET_RAW (a locked-down container): nmap would
		// assume raw sockets from the uid and fail even connect scans.
		args = append([]string{"--unprivileged"}, args...)
	}
	return args, scanspec.HostCount([]netip.Prefix{network}, excl), nil
}

func (a *Agent) inScope(n netip.Prefix) bool {
	if len(a.cfg.Scope) == 0 {
		return true
	}
	for _, s := range a.cfg.Scope {
		if s.Bits() <= n.Bits() && s.Contains(n.Addr()) {
			return true
		}
	}
	return false
}

// heartbeats renews the lease and reports progress; a cancelled or lost
// lease stops the scan.
func (j *job) heartbeats(ctx context.Context) {
	t := time.NewTicker(j.a.heartbeatEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		callCtx, cancel := context.WithTimeout(ctx, j.a.heartbeatEvery())
		resp, err := j.a.client.Heartbeat(callCtx, &pb.HeartbeatRequest{AgentId: j.a.id(), Leases: []*pb.LeaseProgress{{
			JobId: j.lease.GetJobId(), LeaseToken: j.lease.GetLeaseToken(), ProgressPercent: j.progress.Load(),
		}}})
		cancel()
		if err != nil {
			if status.Code(err) == codes.PermissionDenied {
				// Revoked (or not this agent's lease to renew): the lease
				// is gone, and so is the point of scanning on.
				j.log.Error("controller refused the heartbeat; stopping the scan", "error", err)
				j.cancel(errLeaseLost)
				continue
			}
			if ctx.Err() == nil {
				j.a.cfg.Metrics.HeartbeatFailed()
				j.log.Warn("heartbeat failed; scan continues", "error", err)
			}
			continue
		}
		for _, st := range resp.GetLeases() {
			switch st.GetState() {
			case pb.LeaseState_LEASE_STATE_CANCELLED:
				j.cancel(errCancelled)
			case pb.LeaseState_LEASE_STATE_LOST:
				j.a.cfg.Metrics.LeaseLost()
				j.cancel(errLeaseLost)
			}
		}
	}
}

func (j *job) fail(ctx context.Context, msg string, retryable bool) {
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := j.a.client.FailJob(callCtx, &pb.FailJobRequest{
		AgentId: j.a.id(), JobId: j.lease.GetJobId(), LeaseToken: j.lease.GetLeaseToken(),
		ErrorMessage: msg, Retryable: retryable,
	}); err != nil {
		j.log.Warn("could not report the failure; the lease will expire instead", "error", err)
	}
}

func (j *job) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := j.a.client.ReleaseJob(ctx, &pb.ReleaseJobRequest{
		AgentId: j.a.id(), JobId: j.lease.GetJobId(), LeaseToken: j.lease.GetLeaseToken(),
	}); err != nil {
		j.log.Warn("could not release the lease; it will expire instead", "error", err)
		return
	}
	j.log.Info("shutting down: lease released")
}

func (j *job) discard() {
	e := spool.Entry{JobID: j.lease.GetJobId(), LeaseToken: j.lease.GetLeaseToken()}
	if err := j.a.spool.Remove(e); err != nil {
		j.log.Warn("could not remove spool file", "error", err)
	}
}

func (j *job) rejected(ctx context.Context, err error) {
	j.log.Error("controller rejected the results for good", "error", err)
	if invalid(err) {
		j.fail(ctx, "results rejected: "+err.Error(), false)
	}
	j.discard()
}

// events receives nmap's hosts and progress.
type events struct {
	j    *job
	pipe *hostPipe
}

func (e *events) Host(ctx context.Context, h nmaprun.Host) error {
	if err := e.pipe.put(ctx, nmaprun.HostResult(h)); err != nil {
		return fmt.Errorf("spool host %s: %w", h.Address, err)
	}
	e.j.a.cfg.Metrics.HostStreamed()
	// Operators (and the e2e tests) see which hosts a cancelled or
	// interrupted scan had finished.
	e.j.log.Debug("host finished", "address", h.Address, "status", h.Status)
	return nil
}

func (e *events) Progress(p int) { e.j.progress.Store(int32(p)) }
