package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgtest"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// nmapScanning reports whether an nmap process is scanning port.
func nmapScanning(port int) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "nmap" {
			continue
		}
		for i, a := range args {
			if a == "-p" && i+1 < len(args) && args[i+1] == fmt.Sprint(port) {
				return true
			}
		}
	}
	return false
}

func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slowScan creates site lab and a target whose scan takes several seconds
// (service detection against a port that never answers) and runs it.
func slowScan(t *testing.T, s *stack) (jobID string, port int) {
	t.Helper()
	port = listener(t, true)
	jobs := setupTarget(t, s, "127.0.0.1/32", fmt.Sprint(port))
	return jobs[0].GetId(), port
}

// kill -9 an agent mid-scan: its nmap dies with it, and after the lease
// expires another agent of the site runs the job to completion, once.
func TestKillAgentMidScan(t *testing.T) {
	t.Parallel()
	s := newStack(t, "--lease-ttl", "2s")
	jobID, port := slowScan(t, s)
	first := s.agent("first", "lab", "127.0.0.1/32")
	s.waitStatus(jobID, pb.JobStatus_JOB_STATUS_RUNNING, 30*time.Second)
	eventually(t, "nmap started", 10*time.Second, func() bool { return nmapScanning(port) })

	// SIGKILL the agent alone, not its process group: nmap must die with it.
	if err := first.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.Done()
	eventually(t, "orphan nmap gone", 2*time.Second, func() bool { return !nmapScanning(port) })

	second := s.agent("second", "lab", "127.0.0.1/32")
	job := s.waitJob(jobID, 90*time.Second)
	if job.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED || job.GetAttempt() != 2 {
		t.Fatalf("job %s on attempt %d (%s); want completed on attempt 2", job.GetStatus(), job.GetAttempt(), job.GetErrorMessage())
	}
	agents, err := s.admin.ListAgents(s.ctx(), &pb.ListAgentsRequest{Site: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range agents.GetAgents() {
		if a.GetName() == "second" && a.GetId() != job.GetWorkerId() {
			t.Errorf("job finished by %s, want the second agent %s", job.GetWorkerId(), a.GetId())
		}
	}
	if n := s.count(`SELECT count(*) FROM port_scans WHERE job_id = $1`, jobID); n != 1 {
		t.Errorf("port_scans rows = %d, want 1", n)
	}
	if n := s.count(`SELECT count(*) FROM scan_job_leases WHERE job_id = $1 AND outcome = 'expired'`, jobID); n != 1 {
		t.Errorf("expired leases = %d, want 1", n)
	}
	second.stop(t)
}

// CancelJob reaches the running agent at its next heartbeat; nmap stops
// within seconds and nothing is written.
func TestCancelStopsRunningScan(t *testing.T) {
	t.Parallel()
	s := newStack(t, "--lease-ttl", "3s")
	jobID, port := slowScan(t, s)
	a := s.agent("a", "lab", "127.0.0.1/32")
	s.waitStatus(jobID, pb.JobStatus_JOB_STATUS_RUNNING, 30*time.Second)
	eventually(t, "nmap started", 10*time.Second, func() bool { return nmapScanning(port) })
	resp, err := s.admin.CancelJob(s.ctx(), &pb.CancelJobRequest{Id: jobID, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetJob().GetStatus() != pb.JobStatus_JOB_STATUS_CANCELLED {
		t.Fatalf("CancelJob returned %s", resp.GetJob().GetStatus())
	}
	// One heartbeat (TTL/3 = 1 s) plus the 2 s kill budget.
	eventually(t, "nmap stopped after cancel", 3*time.Second, func() bool { return !nmapScanning(port) })
	eventually(t, "agent logged the cancel", 5*time.Second, func() bool { return strings.Contains(a.Output(), "job cancelled") })
	if n := s.count(`SELECT count(*) FROM port_scans`) + s.count(`SELECT count(*) FROM hosts`); n != 0 {
		t.Fatalf("a cancelled job wrote %d rows", n)
	}
	if _, err := s.admin.CancelJob(s.ctx(), &pb.CancelJobRequest{Id: jobID}); err == nil {
		t.Error("cancelling a cancelled job succeeded; want FailedPrecondition")
	}
}

// kill -9 the controller while a results stream is open: nothing partial
// is written, and the agent's retry against the restarted controller
// commits the job exactly once.
func TestKillControllerDuringResultsStream(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	setupTarget(t, s, "10.99.4.0/24", "1-1000")
	a := register(t, s.agentc, "lab", "sim", "10.99.0.0/16")
	l := a.acquire(5 * time.Second)
	if l == nil {
		t.Fatal("no lease")
	}
	var batches [][]*pb.HostResult
	for h := range 100 {
		ports := make([]int, 200)
		for i := range ports {
			ports[i] = i + 1
		}
		batches = append(batches, []*pb.HostResult{host(firstAddr("10.99.4.0/24", h+1), ports...)})
	}
	// Stream most of the job, then kill the controller before the summary.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	streamErr := make(chan error, 1)
	var sent atomic.Int32
	go func() {
		stream, err := a.c.StreamResults(ctx)
		if err != nil {
			streamErr <- err
			return
		}
		if err := stream.Send(&pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Open{Open: &pb.ResultsOpen{
			AgentId: a.id, JobId: l.GetJobId(), LeaseToken: l.GetLeaseToken()}}}); err != nil {
			streamErr <- err
			return
		}
		for _, b := range batches {
			if err := stream.Send(&pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Hosts{Hosts: &pb.HostBatch{Hosts: b}}}); err != nil {
				_, err = stream.CloseAndRecv()
				streamErr <- err
				return
			}
			sent.Add(1)
		}
		<-ctx.Done()
		streamErr <- ctx.Err()
	}()
	eventually(t, "half the batches sent", 30*time.Second, func() bool { return sent.Load() >= 50 })
	s.ctrl.kill()
	select {
	case err := <-streamErr:
		if err == nil {
			t.Fatal("stream survived a dead controller")
		}
	case <-time.After(30 * time.Second):
		cancel()
	}
	if n := s.count(`SELECT count(*) FROM port_scans`) + s.count(`SELECT count(*) FROM hosts`) + s.count(`SELECT count(*) FROM host_history`); n != 0 {
		t.Fatalf("a stream cut by a controller crash wrote %d rows", n)
	}
	s.startController()
	resp, err := a.send(context.Background(), l, batches, false)
	if err != nil {
		t.Fatalf("retry after restart: %v", err)
	}
	if resp.GetAlreadyCommitted() || resp.GetPortRows() != 100*200 {
		t.Fatalf("retry: %+v", resp)
	}
	if n := s.count(`SELECT count(*) FROM port_scans`); n != 100*200 {
		t.Fatalf("port_scans = %d, want %d", n, 100*200)
	}
}

// The controller goes away mid-scan; the agent finishes, keeps its results
// in the spool, is itself killed and restarted, and delivers them once the
// controller is back: the job completes on its first attempt.
func TestSpooledResultsSurviveControllerOutageAndAgentRestart(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	jobID, port := slowScan(t, s)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	args := []string{"--spool-dir", spoolDir}
	a := s.agent("a", "lab", "127.0.0.1/32", args...)
	s.waitStatus(jobID, pb.JobStatus_JOB_STATUS_RUNNING, 30*time.Second)
	s.ctrl.kill()
	// nmap finishes while the controller is down; the agent retries delivery.
	eventually(t, "agent retrying delivery", 60*time.Second, func() bool {
		return strings.Contains(a.Output(), "delivering results failed")
	})
	a.kill()
	files, _ := filepath.Glob(filepath.Join(spoolDir, "*.spool"))
	if len(files) != 1 {
		t.Fatalf("spool holds %v; want one file", files)
	}
	s.startController()
	s.agent("a", "lab", "127.0.0.1/32", args...)
	job := s.waitJob(jobID, 60*time.Second)
	if job.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED || job.GetAttempt() != 1 {
		t.Fatalf("job %s attempt %d (%s); want completed on attempt 1", job.GetStatus(), job.GetAttempt(), job.GetErrorMessage())
	}
	if n := s.count(`SELECT count(*) FROM port_scans WHERE port = $1`, port); n != 1 {
		t.Fatalf("port_scans rows = %d, want 1", n)
	}
	eventually(t, "spool emptied", 10*time.Second, func() bool {
		files, _ := filepath.Glob(filepath.Join(spoolDir, "*.spool"))
		return len(files) == 0
	})
}

// PostgreSQL restarts while agents commit: the controller reconnects and
// every job whose commit was acknowledged is in the database; retried
// commits complete the rest exactly once.
func TestPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	pg := pgtest.NewPrivateCluster(t)
	ctx := context.Background()
	if err := pg.EnsureDatabase(ctx, "scanorama"); err != nil {
		t.Fatal(err)
	}
	url := pg.URL("scanorama")
	if _, err := migrate.UpURL(ctx, url, hclog.NewNullLogger()); err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, dbURL: url, addr: freePort(t), extra: []string{"--insecure"}, agentArgs: []string{"--insecure"}}
	s.startController()
	s.connect()
	jobs := setupTarget(t, s, "10.99.64.0/18", "22")

	var acked sync.Map
	var wg sync.WaitGroup
	var restarted atomic.Bool
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var a *simAgent
			for a == nil {
				resp, err := s.agentc.Register(ctx, &pb.RegisterRequest{Site: "lab", Name: fmt.Sprint("sim-", i), Scope: []string{"10.99.0.0/16"}})
				if err == nil {
					a = &simAgent{t: t, c: s.agentc, id: resp.GetAgentId()}
				} else {
					time.Sleep(100 * time.Millisecond)
				}
			}
			deadline := time.Now().Add(2 * time.Minute)
			for time.Now().Before(deadline) {
				resp, err := a.c.AcquireJob(ctx, &pb.AcquireJobRequest{AgentId: a.id})
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				l := resp.GetLease()
				if l == nil {
					if restarted.Load() {
						return
					}
					continue
				}
				for time.Now().Before(deadline) {
					if _, err := a.send(ctx, l, [][]*pb.HostResult{{host(firstAddr(l.GetNetwork(), 7), 22)}}, false); err == nil {
						acked.Store(l.GetJobId(), true)
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
	}
	eventually(t, "some commits before the restart", 60*time.Second, func() bool {
		n := 0
		acked.Range(func(any, any) bool { n++; return true })
		return n >= 10
	})
	if err := pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	restarted.Store(true)
	wg.Wait()
	missing := 0
	acked.Range(func(k, _ any) bool {
		if s.count(`SELECT count(*) FROM scan_jobs WHERE id = $1 AND status = 'completed'`, k) != 1 {
			missing++
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d acknowledged jobs are not completed in the database", missing)
	}
	if n := s.count(`SELECT count(*) FROM scan_jobs WHERE status = 'completed'`); n != len(jobs) {
		t.Errorf("completed %d of %d jobs after the restart", n, len(jobs))
	}
	if n := s.count(`SELECT count(*) FROM port_scans`); n != len(jobs) {
		t.Errorf("port_scans = %d, want exactly one per job (%d)", n, len(jobs))
	}
}
