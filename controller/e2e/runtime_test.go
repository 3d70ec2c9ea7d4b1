package e2e_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scanorama/scanorama/agent/protocol"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// The only controller is SIGKILLed while an agent scans and stays down for
// more than 3 TTLs; the agent finishes the scan meanwhile. When a controller
// comes back on the same database the lease clocks have stood still for the
// outage: the spooled results commit on attempt 1, once, and no lease was
// reaped.
func TestLongControllerOutageCommitsOnFirstAttempt(t *testing.T) {
	t.Parallel()
	const ttl = 4 * time.Second
	s := newStack(t, "--lease-ttl", ttl.String())
	jobID, port := slowScan(t, s)
	a := s.agent("a", "lab", "127.0.0.1/32")
	s.waitStatus(jobID, pb.JobStatus_JOB_STATUS_RUNNING, 30*time.Second)
	eventually(t, "nmap started", 10*time.Second, func() bool { return nmapScanning(port) })
	s.ctrl.kill()
	down := time.Now()
	// nmap finishes while no controller is reachable; the agent keeps
	// retrying delivery from its spool.
	eventually(t, "agent retrying delivery", 90*time.Second, func() bool {
		return strings.Contains(a.Output(), "delivering results failed")
	})
	if wait := 6*ttl - time.Since(down); wait > 0 {
		time.Sleep(wait)
	}
	outage := time.Since(down)
	s.startController()
	job := s.waitJob(jobID, 60*time.Second)
	if job.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED || job.GetAttempt() != 1 {
		t.Fatalf("after a %s outage (TTL %s) the job is %s on attempt %d (%s); want completed on attempt 1",
			outage.Round(time.Second), ttl, job.GetStatus(), job.GetAttempt(), job.GetErrorMessage())
	}
	if n := s.count(`SELECT count(*) FROM port_scans WHERE job_id = $1 AND port = $2`, jobID, port); n != 1 {
		t.Fatalf("port_scans rows = %d, want 1", n)
	}
	if n := s.count(`SELECT count(*) FROM scan_job_leases WHERE job_id = $1`, jobID); n != 1 {
		t.Fatalf("leases granted = %d, want 1", n)
	}
	if n := s.count(`SELECT count(*) FROM scan_job_leases WHERE job_id = $1 AND outcome = 'completed'`, jobID); n != 1 {
		t.Fatalf("the one lease did not end completed")
	}
	mustContain(t, s.ctrl.Output(), "lease clocks stopped for the outage")
}

// Fencing stays exact across an outage: a lease that another agent was
// given is not revived by the clock, and its stale holder cannot commit.
func TestOutageDoesNotReviveReassignedLease(t *testing.T) {
	t.Parallel()
	s := newStack(t, "--lease-ttl", "2s")
	setupTarget(t, s, "10.99.7.0/30", "22")
	first := register(t, s.agentc, "lab", "first", "10.99.0.0/16")
	stale := first.acquire(5 * time.Second)
	if stale == nil {
		t.Fatal("no lease")
	}
	// The lease expires and goes to a second agent while controllers live.
	second := register(t, s.agentc, "lab", "second", "10.99.0.0/16")
	var fresh *pb.Lease
	eventually(t, "job leased again", 30*time.Second, func() bool {
		fresh = second.acquire(time.Second)
		return fresh != nil
	})
	s.ctrl.kill()
	time.Sleep(8 * time.Second) // > 3 TTLs without a controller
	s.startController()
	if _, err := first.send(s.ctx(), stale, [][]*pb.HostResult{{host("10.99.7.1", 22)}}, false); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("stale holder's commit after the outage: %v; want FailedPrecondition", err)
	}
	if _, err := second.send(s.ctx(), fresh, [][]*pb.HostResult{{host("10.99.7.1", 22)}}, false); err != nil {
		t.Fatalf("current holder's commit after the outage: %v", err)
	}
	if n := s.count(`SELECT count(*) FROM port_scans`); n != 1 {
		t.Fatalf("port_scans = %d, want 1", n)
	}
}

// An idle agent connected to a controller with a short TTL is never marked
// lost, although its own long-poll request (25 s) outlasts 3 TTLs; a
// registered agent that stops calling is.
func TestIdleAgentIsNeverLost(t *testing.T) {
	t.Parallel()
	s := newStack(t, "--lease-ttl", "3s")
	if _, err := s.admin.CreateSite(s.ctx(), &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	a := s.agent("idle", "lab", "127.0.0.1/32")
	s.waitAgent("lab", "idle", a)
	register(t, s.agentc, "lab", "silent", "127.0.0.1/32")
	silentLost := false
	deadline := time.Now().Add(35 * time.Second) // > 3 × the agent's 25 s poll request... at least one whole poll and 11 TTLs
	for time.Now().Before(deadline) {
		resp, err := s.admin.ListAgents(s.ctx(), &pb.ListAgentsRequest{Site: "lab"})
		if err != nil {
			t.Fatal(err)
		}
		for _, ag := range resp.GetAgents() {
			switch {
			case ag.GetName() == "idle" && ag.GetState() != "active":
				t.Fatalf("idle connected agent is %s after %s", ag.GetState(), 35*time.Second-time.Until(deadline))
			case ag.GetName() == "silent" && ag.GetState() == "lost":
				silentLost = true
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !silentLost {
		t.Fatal("an agent that stopped calling was never marked lost; the check above proves nothing")
	}
}

// PauseScanning stops leasing on every controller of the database at once;
// cancel_running cancels held leases (the holder learns at its heartbeat);
// ResumeScanning lets queued work go. ListSites and GetStats show it.
func TestPauseAndResumeScanning(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	second := &stack{t: t, dbURL: s.dbURL, addr: freePort(t)}
	second.startController()
	second.connect()
	jobs := setupTarget(t, s, "10.99.8.0/23", "22")
	if len(jobs) != 2 {
		t.Fatalf("ScanNow made %d jobs, want 2", len(jobs))
	}
	a := register(t, s.agentc, "lab", "a", "10.99.0.0/16")
	held := a.acquire(5 * time.Second)
	if held == nil {
		t.Fatal("no lease")
	}
	if _, err := s.admin.PauseScanning(s.ctx(), &pb.PauseScanningRequest{Site: "nosuch"}); status.Code(err) != codes.NotFound {
		t.Fatalf("pause of an unknown site: %v; want NotFound", err)
	}
	if _, err := s.admin.PauseScanning(s.ctx(), &pb.PauseScanningRequest{Reason: strings.Repeat("x", 1025)}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("pause with a long reason: %v; want InvalidArgument", err)
	}
	if n := s.count(`SELECT count(*) FROM scan_pauses`); n != 0 {
		t.Fatalf("refused pauses wrote %d rows", n)
	}
	resp, err := s.admin.PauseScanning(s.ctx(), &pb.PauseScanningRequest{Site: "lab", Reason: "incident 42"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetCancelledJobs() != 0 {
		t.Fatalf("pause without cancel_running cancelled %d jobs", resp.GetCancelledJobs())
	}
	b := register(t, second.agentc, "lab", "b", "10.99.0.0/16")
	if l := b.acquire(2 * time.Second); l != nil {
		t.Fatalf("the other controller leased %s during the pause", l.GetJobId())
	}
	if st := a.heartbeat(held, 10); st != pb.LeaseState_LEASE_STATE_ACTIVE {
		t.Fatalf("running job is %s after a pause without cancel_running", st)
	}
	sites, err := second.admin.ListSites(s.ctx(), &pb.ListSitesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sites.GetSites()) != 1 || !sites.GetSites()[0].GetPaused() {
		t.Fatalf("ListSites: %v; want lab paused", sites.GetSites())
	}
	stats, err := s.admin.GetStats(s.ctx(), &pb.GetStatsRequest{Site: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	if len(stats.GetPauses()) != 1 || stats.GetPauses()[0].GetSite() != "lab" || stats.GetPauses()[0].GetReason() != "incident 42" {
		t.Fatalf("GetStats pauses: %v", stats.GetPauses())
	}

	// Everything, cancelling what runs.
	resp, err = second.admin.PauseScanning(s.ctx(), &pb.PauseScanningRequest{CancelRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetCancelledJobs() != 1 {
		t.Fatalf("cancel_running cancelled %d jobs, want 1", resp.GetCancelledJobs())
	}
	if st := a.heartbeat(held, 20); st != pb.LeaseState_LEASE_STATE_CANCELLED {
		t.Fatalf("held lease is %s after PauseScanning{cancel_running}; want cancelled", st)
	}
	if r, err := s.admin.ResumeScanning(s.ctx(), &pb.ResumeScanningRequest{Site: "lab"}); err != nil || !r.GetResumed() {
		t.Fatalf("resume lab: %v %v", r, err)
	}
	// The global pause still holds.
	if l := b.acquire(time.Second); l != nil {
		t.Fatalf("leased %s while everything is paused", l.GetJobId())
	}
	if r, err := s.admin.ResumeScanning(s.ctx(), &pb.ResumeScanningRequest{}); err != nil || !r.GetResumed() {
		t.Fatalf("resume all: %v %v", r, err)
	}
	// Announced, not left to the next recheck (5 s): b's empty look during
	// the pause would answer for its site until then.
	if l := b.acquire(2 * time.Second); l == nil {
		t.Fatal("nothing leased within 2 s of ResumeScanning")
	}
	if r, err := s.admin.ResumeScanning(s.ctx(), &pb.ResumeScanningRequest{}); err != nil || r.GetResumed() {
		t.Fatalf("second resume: %v %v; want resumed=false", r, err)
	}
}

// listenPair opens listeners on 127.0.0.2 and 127.0.0.3 on one port.
func listenPair(t *testing.T) int {
	t.Helper()
	for range 20 {
		l2, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l2.Addr().(*net.TCPAddr).Port
		l3, err := net.Listen("tcp", fmt.Sprintf("127.0.0.3:%d", port))
		if err != nil {
			l2.Close()
			continue
		}
		for _, l := range []net.Listener{l2, l3} {
			t.Cleanup(func() { l.Close() })
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
		return port
	}
	t.Fatal("no port free on both 127.0.0.2 and 127.0.0.3")
	return 0
}

// An exclusion and an ignored host added while a job is queued apply to it:
// the lease carries the rules current at lease time, the agent does not
// scan those addresses, and ingest refuses rows for them.
func TestLateExclusionsApplyToQueuedJobs(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	port := listenPair(t)
	jobs := setupTarget(t, s, "127.0.0.2/31", fmt.Sprint(port))
	if len(jobs) != 1 || len(jobs[0].GetExclusions()) != 0 {
		t.Fatalf("queued jobs: %v", jobs)
	}
	if _, err := s.admin.CreateExclusion(s.ctx(), &pb.CreateExclusionRequest{Network: "127.0.0.3/32", Reason: "late rule"}); err != nil {
		t.Fatal(err)
	}
	a := s.agent("a", "lab", "127.0.0.0/8")
	job := s.waitJob(jobs[0].GetId(), 90*time.Second)
	if job.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED {
		t.Fatalf("job %s (%s)", job.GetStatus(), job.GetErrorMessage())
	}
	if got := job.GetExclusions(); len(got) != 1 || got[0] != "127.0.0.3/32" {
		t.Fatalf("job exclusions at lease time = %v, want [127.0.0.3/32]", got)
	}
	if n := s.count(`SELECT count(*) FROM hosts WHERE ip_address = '127.0.0.2'`); n != 1 {
		t.Fatalf("hosts for 127.0.0.2 = %d, want 1", n)
	}
	if n := s.count(`SELECT count(*) FROM hosts WHERE ip_address = '127.0.0.3'`); n != 0 {
		t.Fatalf("the excluded address was stored (%d hosts)", n)
	}
	a.stop(t)

	// A host marked ignored while a job is queued: the lease carries it and
	// ingest refuses rows for it.
	tgt, err := s.admin.ListTargets(s.ctx(), &pb.ListTargetsRequest{Site: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	queued, err := s.admin.ScanNow(s.ctx(), &pb.ScanNowRequest{TargetId: tgt.GetTargets()[0].GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got := queued.GetJobs()[0].GetExclusions(); len(got) != 1 {
		t.Fatalf("queued job's exclusions = %v, want only the rule", got)
	}
	if _, err := s.admin.UpdateHost(s.ctx(), &pb.UpdateHostRequest{Site: "lab", IpAddress: "127.0.0.2", IgnoreScanning: true}); err != nil {
		t.Fatal(err)
	}
	sim := register(t, s.agentc, "lab", "sim", "127.0.0.0/8")
	l := sim.acquire(5 * time.Second)
	if l == nil {
		t.Fatal("no lease")
	}
	if got := strings.Join(l.GetExclusions(), ","); got != "127.0.0.2/32,127.0.0.3/32" {
		t.Fatalf("lease exclusions = %s, want the ignored host and the rule", got)
	}
	before := s.count(`SELECT count(*) FROM port_scans`)
	_, err = sim.send(s.ctx(), l, [][]*pb.HostResult{{host("127.0.0.2", port)}}, false)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("rows for an address ignored at lease time: %v; want InvalidArgument", err)
	}
	if n := s.count(`SELECT count(*) FROM port_scans`); n != before {
		t.Fatalf("refused rows were stored (%d port_scans, was %d)", n, before)
	}
}

// Agents report their protocol version at Register; a controller refuses
// one it does not speak, naming both versions, and ListAgents shows them.
func TestAgentProtocolVersion(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	if _, err := s.admin.CreateSite(s.ctx(), &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	_, err := s.agentc.Register(s.ctx(), &pb.RegisterRequest{Site: "lab", Name: "future", ProtocolVersion: 99})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("register with protocol 99: %v; want FailedPrecondition", err)
	}
	msg := status.Convert(err).Message()
	mustContain(t, msg, "protocol version 99")
	mustContain(t, msg, fmt.Sprintf("versions %d to %d", protocol.Min, protocol.Version))
	if n := s.count(`SELECT count(*) FROM agents`); n != 0 {
		t.Fatalf("a refused agent was stored")
	}
	a := s.agent("real", "lab", "127.0.0.1/32")
	got := s.waitAgent("lab", "real", a)
	if got.GetProtocolVersion() != protocol.Version {
		t.Fatalf("ListAgents protocol_version = %d, want %d", got.GetProtocolVersion(), protocol.Version)
	}
	register(t, s.agentc, "lab", "legacy", "127.0.0.1/32") // sends no version
	resp, err := s.admin.ListAgents(s.ctx(), &pb.ListAgentsRequest{Site: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ag := range resp.GetAgents() {
		if ag.GetName() == "legacy" && ag.GetProtocolVersion() != 0 {
			t.Fatalf("legacy agent shows protocol %d, want 0 (unreported)", ag.GetProtocolVersion())
		}
	}
}

// CancelJob while an agent holds the job: the holder learns at its
// heartbeat and commits the hosts it had finished; they are stored once,
// the job stays cancelled with partial set and the count, hosts the scan
// never reached are not marked down, and a resend is acknowledged as
// already committed.
func TestCancelKeepsFinishedHosts(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	jobs := setupTarget(t, s, "10.99.9.0/24", "22")
	a := register(t, s.agentc, "lab", "sim", "10.99.0.0/16")
	// A host up from an earlier scan, which the interrupted scan never reached.
	if _, err := s.pool.Exec(s.ctx(), `INSERT INTO hosts (site_id, ip_address, status)
		SELECT id, '10.99.9.200', 'up' FROM sites WHERE name = 'lab'`); err != nil {
		t.Fatal(err)
	}
	l := a.acquire(5 * time.Second)
	if l == nil || l.GetJobId() != jobs[0].GetId() {
		t.Fatalf("lease: %v", l)
	}
	if _, err := s.admin.CancelJob(s.ctx(), &pb.CancelJobRequest{Id: l.GetJobId(), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if st := a.heartbeat(l, 40); st != pb.LeaseState_LEASE_STATE_CANCELLED {
		t.Fatalf("heartbeat after cancel: %s", st)
	}
	finished := [][]*pb.HostResult{{host("10.99.9.1", 22), host("10.99.9.2", 22), {Address: "10.99.9.3", Status: "down", Reason: "no-response"}}}
	resp, err := a.send(s.ctx(), l, finished, false)
	if err != nil {
		t.Fatalf("partial commit: %v", err)
	}
	if resp.GetAlreadyCommitted() || resp.GetPortRows() != 2 {
		t.Fatalf("partial commit: %+v", resp)
	}
	if resp, err := a.send(s.ctx(), l, finished, false); err != nil || !resp.GetAlreadyCommitted() {
		t.Fatalf("resend: %+v %v; want already committed", resp, err)
	}
	got, err := s.admin.GetJob(s.ctx(), &pb.GetJobRequest{Id: l.GetJobId()})
	if err != nil {
		t.Fatal(err)
	}
	job := got.GetJob()
	if job.GetStatus() != pb.JobStatus_JOB_STATUS_CANCELLED || !job.GetPartial() || job.GetHostsFinished() != 3 {
		t.Fatalf("job %s partial=%v hosts_finished=%d; want cancelled, partial, 3", job.GetStatus(), job.GetPartial(), job.GetHostsFinished())
	}
	mustContain(t, job.GetErrorMessage(), "cancelled by")
	if n := s.count(`SELECT count(*) FROM port_scans WHERE job_id = $1`, l.GetJobId()); n != 2 {
		t.Fatalf("port_scans = %d, want 2", n)
	}
	if n := s.count(`SELECT count(*) FROM hosts WHERE ip_address = '10.99.9.200' AND status = 'up'`); n != 1 {
		t.Fatal("a host the interrupted scan never reached was marked down")
	}
	if run := got.GetRun(); run == nil || run.GetHostsTotal() != 256 || run.GetHostsDone() != 3 || run.GetJobsPartial() != 1 {
		t.Fatalf("run progress: %v; want 3 of 256 hosts done by one partial job", run)
	}
	// A job cancelled while pending has no holder: nobody can commit it.
	jobs = setupTarget(t, s, "10.99.10.0/24", "22")
	if _, err := s.admin.CancelJob(s.ctx(), &pb.CancelJobRequest{Id: jobs[0].GetId()}); err != nil {
		t.Fatal(err)
	}
	stale := &pb.Lease{JobId: jobs[0].GetId(), LeaseToken: 1}
	if _, err := a.send(s.ctx(), stale, [][]*pb.HostResult{{host("10.99.10.1", 22)}}, false); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("commit to a job cancelled while pending: %v; want FailedPrecondition", err)
	}
}

// A real agent whose job is cancelled mid-scan stops nmap and commits what
// it had finished (here nothing: the one host was still in service
// detection); the job ends cancelled and partial, nothing is stored.
func TestCancelledAgentCommitsPartial(t *testing.T) {
	t.Parallel()
	s := newStack(t, "--lease-ttl", "3s")
	jobID, port := slowScan(t, s)
	a := s.agent("a", "lab", "127.0.0.1/32")
	s.waitStatus(jobID, pb.JobStatus_JOB_STATUS_RUNNING, 30*time.Second)
	eventually(t, "nmap started", 10*time.Second, func() bool { return nmapScanning(port) })
	if _, err := s.admin.CancelJob(s.ctx(), &pb.CancelJobRequest{Id: jobID}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "partial commit", 20*time.Second, func() bool {
		j, err := s.admin.GetJob(s.ctx(), &pb.GetJobRequest{Id: jobID})
		return err == nil && j.GetJob().GetPartial()
	})
	eventually(t, "nmap stopped", 5*time.Second, func() bool { return !nmapScanning(port) })
	mustContain(t, a.Output(), "committing the hosts it finished")
	if n := s.count(`SELECT count(*) FROM port_scans`); n != 0 {
		t.Fatalf("port_scans = %d, want 0", n)
	}
}

// A job whose whole network was excluded while it was queued completes
// with no hosts; nmap never runs.
func TestFullyExcludedQueuedJobCompletesEmpty(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	// A listener of our own, so that even a broken exclusion probes only it.
	l, err := net.Listen("tcp", "127.0.0.4:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	jobs := setupTarget(t, s, "127.0.0.4/32", fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
	if _, err := s.admin.CreateExclusion(s.ctx(), &pb.CreateExclusionRequest{Network: "127.0.0.4/32", Reason: "late rule"}); err != nil {
		t.Fatal(err)
	}
	a := s.agent("a", "lab", "127.0.0.0/8")
	job := s.waitJob(jobs[0].GetId(), 60*time.Second)
	if job.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED || job.GetAttempt() != 1 {
		t.Fatalf("job %s attempt %d (%s); want completed on attempt 1", job.GetStatus(), job.GetAttempt(), job.GetErrorMessage())
	}
	mustContain(t, a.Output(), "every address is excluded; completing the job without scanning")
	if n := s.count(`SELECT count(*) FROM hosts`) + s.count(`SELECT count(*) FROM port_scans`); n != 0 {
		t.Fatalf("an excluded job wrote %d rows", n)
	}
}
