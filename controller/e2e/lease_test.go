package e2e_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// setupTarget creates site "lab" and a target, then runs it; it returns the jobs.
func setupTarget(t *testing.T, s *stack, network, ports string) []*pb.Job {
	t.Helper()
	ctx := s.ctx()
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil && status.Code(err) != codes.AlreadyExists {
		t.Fatal(err)
	}
	tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: network, Network: network, Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetJobs()
}

func firstAddr(network string, offset int) string {
	a := netip.MustParsePrefix(network).Addr()
	for range offset {
		a = a.Next()
	}
	return a.String()
}

// 50 agents on two controllers race for 2048 jobs: every job completes
// exactly once and no job is ever held by two agents at once.
func TestConcurrentAgentsCompleteEveryJobExactlyOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	// A second controller on the same database.
	second := &stack{t: t, dbURL: s.dbURL, addr: freePort(t), extra: s.extra, agentArgs: s.agentArgs}
	second.startController()
	second.connect()
	clients := []pb.AgentServiceClient{s.agentc, second.agentc}

	jobs := setupTarget(t, s, "2001:db8:96::/109", "22")
	if len(jobs) != 2048 {
		t.Fatalf("ScanNow made %d jobs, want 2048 /120 shards", len(jobs))
	}
	const agents = 50
	var done atomic.Int64
	var wg sync.WaitGroup
	for i := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := register(t, clients[i%2], "lab", "sim-"+string(rune('a'+i/26))+string(rune('a'+i%26)), "2001:db8:96::/109")
			for done.Load() < int64(len(jobs)) {
				l := a.acquire(500 * time.Millisecond)
				if l == nil {
					continue
				}
				resp, err := a.send(context.Background(), l, [][]*pb.HostResult{{host(firstAddr(l.GetNetwork(), 10), 22)}}, false)
				if err != nil {
					t.Errorf("commit %s: %v", l.GetJobId(), err)
					return
				}
				if resp.GetAlreadyCommitted() || resp.GetPortRows() != 1 {
					t.Errorf("commit %s: %+v", l.GetJobId(), resp)
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if n := s.count(`SELECT count(*) FROM scan_jobs WHERE status = 'completed' AND attempt = 1`); n != len(jobs) {
		t.Errorf("completed on first attempt: %d of %d", n, len(jobs))
	}
	if n := s.count(`SELECT count(*) FROM port_scans`); n != len(jobs) {
		t.Errorf("port_scans rows = %d, want %d (one per job)", n, len(jobs))
	}
	if n := s.count(`SELECT count(*) FROM scan_job_leases`); n != len(jobs) {
		t.Errorf("leases granted = %d, want %d", n, len(jobs))
	}
	// From the lease history: no two leases of one job ever overlap in time.
	if n := s.count(`SELECT count(*) FROM scan_job_leases a JOIN scan_job_leases b
		ON a.job_id = b.job_id AND a.lease_token < b.lease_token
		AND tstzrange(a.leased_at, a.ended_at) && tstzrange(b.leased_at, b.ended_at)`); n != 0 {
		t.Errorf("%d overlapping leases", n)
	}
	if n := s.count(`SELECT count(DISTINCT worker_id) FROM scan_job_leases`); n < 10 {
		t.Errorf("only %d agents got work; leasing is not spreading jobs", n)
	}
}

// An agent whose lease expired and was leased again can neither renew nor
// commit; nothing it sends is written.
func TestZombieAgentIsFenced(t *testing.T) {
	t.Parallel()
	s := newStack(t, "--lease-ttl", "1s")
	jobs := setupTarget(t, s, "10.99.1.0/24", "22")
	zombie := register(t, s.agentc, "lab", "zombie", "10.99.0.0/16")
	healthy := register(t, s.agentc, "lab", "healthy", "10.99.0.0/16")

	stale := zombie.acquire(5 * time.Second)
	if stale == nil || stale.GetJobId() != jobs[0].GetId() {
		t.Fatalf("zombie did not get the job: %v", stale)
	}
	// The zombie stalls; after the TTL the reaper frees the job and the healthy agent takes it.
	fresh := healthy.acquire(10 * time.Second)
	if fresh == nil || fresh.GetJobId() != stale.GetJobId() || fresh.GetLeaseToken() <= stale.GetLeaseToken() {
		t.Fatalf("healthy agent got %v; want the same job with a newer token than %d", fresh, stale.GetLeaseToken())
	}
	if st := zombie.heartbeat(stale, 50); st != pb.LeaseState_LEASE_STATE_LOST {
		t.Errorf("zombie heartbeat: %s, want LOST", st)
	}
	_, err := zombie.send(context.Background(), stale, [][]*pb.HostResult{{host("10.99.1.10", 22, 80)}}, false)
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("zombie commit: %v; want FailedPrecondition", err)
	}
	if n := s.count(`SELECT count(*) FROM port_scans`) + s.count(`SELECT count(*) FROM hosts`); n != 0 {
		t.Fatalf("zombie wrote %d rows", n)
	}
	if _, err := healthy.send(context.Background(), fresh, [][]*pb.HostResult{{host("10.99.1.10", 22)}}, false); err != nil {
		t.Fatal(err)
	}
	job := s.waitJob(fresh.GetJobId(), 5*time.Second)
	if job.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED || job.GetAttempt() != 2 {
		t.Fatalf("job %s attempt %d; want completed on attempt 2", job.GetStatus(), job.GetAttempt())
	}
	if n := s.count(`SELECT count(*) FROM port_scans`); n != 1 {
		t.Fatalf("port_scans rows = %d, want 1", n)
	}
	if n := s.count(`SELECT count(*) FROM scan_job_leases WHERE outcome = 'expired'`); n != 1 {
		t.Errorf("expired leases recorded = %d, want 1", n)
	}
}

func TestResultsStreamIsAtomicAndIdempotent(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	jobs := setupTarget(t, s, "10.99.2.0/24", "22,80")
	a := register(t, s.agentc, "lab", "a", "10.99.0.0/16")
	l := a.acquire(5 * time.Second)
	if l == nil {
		t.Fatal("no lease")
	}
	batches := [][]*pb.HostResult{{host("10.99.2.10", 22), host("10.99.2.11", 22, 80)}, {host("10.99.2.12")}}
	rows := s.resultRows

	// A stream that breaks before its summary writes nothing.
	if _, err := a.send(context.Background(), l, batches, true); err == nil {
		t.Fatal("aborted stream reported success")
	}
	if n := rows(); n != 0 {
		t.Fatalf("a broken stream wrote %d rows", n)
	}

	bad := []struct {
		name  string
		hosts []*pb.HostResult
		field string
	}{
		{"outside the network", []*pb.HostResult{host("10.99.3.10", 22)}, "hosts[1].address"},
		{"port 0", []*pb.HostResult{host("10.99.2.10", 0)}, "hosts[1].ports[0].port"},
		{"unknown state", []*pb.HostResult{{Address: "10.99.2.10", Status: "up", Ports: []*pb.PortResult{{Protocol: "tcp", Port: 22, State: "ajar"}}}}, "hosts[1].ports[0].state"},
		{"duplicate host", []*pb.HostResult{host("10.99.2.10"), host("10.99.2.10")}, "hosts[2].address"},
		{"not an address", []*pb.HostResult{host("ten.ninety-nine")}, "hosts[1].address"},
	}
	for _, tc := range bad {
		_, err := a.send(context.Background(), l, [][]*pb.HostResult{{host("10.99.2.20", 443)}, tc.hosts}, false)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v; want InvalidArgument", tc.name, err)
			continue
		}
		mustContain(t, status.Convert(err).Message(), tc.field)
	}
	if n := rows(); n != 0 {
		t.Fatalf("rejected results wrote %d rows", n)
	}

	s.commitThenResend(a, l, jobs[0].GetId(), batches, 3, 3, nil)
}

// A job larger than the controller's in-memory buffer is COPYed into the
// staging tables as it arrives. Broken and rejected streams must leave those
// tables empty for the next stream on the same connection, and the commit
// must take the COPYed rows and the buffered remainder exactly once.
func TestLargeStreamIsStagedAndCommittedOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	jobs := setupTarget(t, s, "10.99.4.0/24", "1-100")
	a := register(t, s.agentc, "lab", "a", "10.99.0.0/16")
	l := a.acquire(5 * time.Second)
	if l == nil {
		t.Fatal("no lease")
	}
	ports := make([]int, 100)
	for i := range ports {
		ports[i] = i + 1
	}
	// 4 batches of 10 hosts × 100 ports: 4,040 rows, so at least one COPY
	// of a full buffer and a remainder that is still in memory at the summary.
	var batches [][]*pb.HostResult
	for b := range 4 {
		var hs []*pb.HostResult
		for h := range 10 {
			hs = append(hs, host(fmt.Sprintf("10.99.4.%d", 10+b*10+h), ports...))
		}
		batches = append(batches, hs)
	}
	rows := s.resultRows
	if _, err := a.send(context.Background(), l, batches, true); err == nil {
		t.Fatal("aborted stream reported success")
	}
	badLast := append(append([][]*pb.HostResult{}, batches[:3]...), []*pb.HostResult{host("10.99.5.1", 22)})
	if _, err := a.send(context.Background(), l, badLast, false); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad row after a COPY: %v; want InvalidArgument", err)
	}
	if n := rows(); n != 0 {
		t.Fatalf("broken and rejected streams wrote %d rows", n)
	}
	s.commitThenResend(a, l, jobs[0].GetId(), batches, 40, 4000, map[string]int{
		`SELECT count(*) FROM port_scans`:                                   4000,
		`SELECT count(DISTINCT (host_id, port)) FROM port_scans`:            4000,
		`SELECT count(*) FROM hosts`:                                        40,
		`SELECT count(*) FROM services WHERE state = 'open'`:                4000,
		`SELECT count(*) FROM host_history WHERE event = 'host_discovered'`: 40,
		`SELECT count(*) FROM host_history WHERE event = 'port_opened'`:     4000,
	})
}

// commitThenResend commits batches under lease l and checks the ack and the
// counts, then sends the same again, as an agent that lost the ack would:
// acknowledged as already committed, nothing new written, the job completed.
func (s *stack) commitThenResend(a *simAgent, l *pb.Lease, jobID string, batches [][]*pb.HostResult, hosts, portRows int64, counts map[string]int) {
	t := s.t
	t.Helper()
	resp, err := a.send(context.Background(), l, batches, false)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetHosts() != hosts || resp.GetPortRows() != portRows || resp.GetAlreadyCommitted() {
		t.Fatalf("commit: %+v; want %d hosts, %d port rows", resp, hosts, portRows)
	}
	for q, want := range counts {
		if got := s.count(q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
	before := s.resultRows()
	again, err := a.send(context.Background(), l, batches, false)
	if err != nil || !again.GetAlreadyCommitted() {
		t.Fatalf("resend: %+v, %v; want already_committed", again, err)
	}
	if after := s.resultRows(); after != before {
		t.Fatalf("resend changed row count %d -> %d", before, after)
	}
	if j := s.waitJob(jobID, time.Second); j.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED {
		t.Fatalf("job %s", j.GetStatus())
	}
}

// Consecutive scans of a host turn into change events: ports opened and
// closed, services changed, host down; services holds what is true now.
func TestConsecutiveScansRecordChanges(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	jobs := setupTarget(t, s, "10.99.10.0/24", "22,80,443")
	a := register(t, s.agentc, "lab", "a", "10.99.0.0/16")
	commit := func(hosts ...*pb.HostResult) {
		t.Helper()
		if _, err := s.admin.ScanNow(s.ctx(), &pb.ScanNowRequest{TargetId: jobs[0].GetTargetId()}); err != nil {
			t.Fatal(err)
		}
		l := a.acquire(5 * time.Second)
		if l == nil {
			t.Fatal("no lease")
		}
		if _, err := a.send(context.Background(), l, [][]*pb.HostResult{hosts}, false); err != nil {
			t.Fatal(err)
		}
	}
	// The first job from setupTarget is leased by the first commit's acquire.
	first := host("10.99.10.10", 22, 80)
	first.Ports[0].ServiceProduct, first.Ports[0].ServiceVersion = "OpenSSH", "9.2p1"
	l := a.acquire(5 * time.Second)
	if _, err := a.send(context.Background(), l, [][]*pb.HostResult{{first, host("10.99.10.11", 443)}}, false); err != nil {
		t.Fatal(err)
	}
	second := host("10.99.10.10", 22)
	second.Ports[0].ServiceProduct, second.Ports[0].ServiceVersion = "OpenSSH", "9.6p1"
	commit(second) // 80 closed, ssh upgraded, .11 gone
	events := map[string]int{}
	rows, err := s.pool.Query(context.Background(), `SELECT event || coalesce(':' || port, '') FROM host_history`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			t.Fatal(err)
		}
		events[e]++
	}
	want := map[string]int{"host_discovered": 2, "port_opened:22": 1, "port_opened:80": 1, "port_opened:443": 1,
		"port_closed:80": 1, "service_changed:22": 1, "host_down": 1}
	for k, v := range want {
		if events[k] != v {
			t.Errorf("%s: %d events, want %d (all: %v)", k, events[k], v, events)
		}
	}
	if n := s.count(`SELECT count(*) FROM services WHERE state = 'open'`); n != 2 {
		t.Errorf("open services now = %d, want 2 (22 on .10, 443 on the host that went down)", n)
	}
	if n := s.count(`SELECT count(*) FROM services WHERE port = 80 AND state = 'closed'`); n != 1 {
		t.Errorf("port 80 not recorded closed")
	}
	if n := s.count(`SELECT count(*) FROM hosts WHERE ip_address = '10.99.10.11' AND status = 'down'`); n != 1 {
		t.Errorf("10.99.10.11 not down")
	}
}

// resultRows counts every row results can write.
func (s *stack) resultRows() int {
	return s.count(`SELECT count(*) FROM port_scans`) + s.count(`SELECT count(*) FROM hosts`) +
		s.count(`SELECT count(*) FROM services`) + s.count(`SELECT count(*) FROM host_history`)
}
