package e2e_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// A partly scanned segment for the interrupted-scan tests: the target
// network 10.99.0.16/29 whose first four addresses (.16-.19) live in the
// target namespace (closed ports answer at once, port 1000 listens) and
// whose last four (.20-.23) are silent: the agent namespace has a permanent
// neighbour entry for each pointing at a MAC nobody owns, so every probe to
// them is dropped on the wire and nmap waits for its timeouts.
//
// The scan profile (connect scan, -Pn, ports 1-1100) makes nmap finish the
// fast hosts first: with more than 1000 TCP ports at the default timing,
// nmap scans a first host group of four ("quick results for the very first
// batch") and prints those hosts when that group is done, long before the
// silent group of four ends.
const (
	partialNetwork = "10.99.0.16/29"
	partialPorts   = "1-1100"
	partialOpen    = 1000
)

var (
	partialFast   = []string{"10.99.0.16", "10.99.0.17", "10.99.0.18", "10.99.0.19"}
	partialSilent = []string{"10.99.0.20", "10.99.0.21", "10.99.0.22", "10.99.0.23"}
)

// newPartialSite builds the segment, its listener, a controller on its
// uplink and the site "lab" with the profile "slow-tail".
func newPartialSite(t *testing.T, controllerArgs ...string) (*stack, *nsSite) {
	t.Helper()
	site := newNSSite(t, partialFast, "02:99:00:00:0d:10")
	for _, a := range partialSilent {
		mustIP(t, "-n", site.agentNS, "neigh", "add", a, "lladdr", "02:99:00:00:0d:ee", "dev", "lan0", "nud", "permanent")
	}
	var listen []string
	for _, a := range partialFast {
		listen = append(listen, fmt.Sprintf("%s:%d", a, partialOpen))
	}
	site.listen("-http", strings.Join(listen, ","))
	s := newStackOn(t, site.hostAddr, controllerArgs...)
	ctx := s.ctx()
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.admin.CreateProfile(ctx, &pb.CreateProfileRequest{Name: "slow-tail", Options: &pb.ScanOptions{
		ScanType: pb.ScanType_SCAN_TYPE_CONNECT, Ports: partialPorts, SkipHostDiscovery: true,
	}}); err != nil {
		t.Fatal(err)
	}
	// Hosts seen up by an earlier scan that the interrupted one never
	// finishes: they must not be marked down.
	for _, a := range partialSilent {
		if _, err := s.pool.Exec(ctx, `INSERT INTO hosts (site_id, ip_address, status)
			SELECT id, $1::text::inet, 'up' FROM sites WHERE name = 'lab'`, a); err != nil {
			t.Fatal(err)
		}
	}
	return s, site
}

// finishedHosts is the set of addresses the agent logged as finished.
func finishedHosts(agentLog string) map[string]bool {
	got := map[string]bool{}
	for _, line := range strings.Split(agentLog, "\n") {
		if !strings.Contains(line, "host finished") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if a, ok := strings.CutPrefix(f, "address="); ok {
				got[a] = true
			}
		}
	}
	return got
}

// checkPartialCommit checks what an interrupted scan of the segment left:
// the four fast hosts committed once, the job cancelled and partial with
// hosts_finished 4, the silent hosts still up.
func checkPartialCommit(t *testing.T, s *stack, jobID string) *pb.GetJobResponse {
	t.Helper()
	var got *pb.GetJobResponse
	eventually(t, "partial commit", 30*time.Second, func() bool {
		j, err := s.admin.GetJob(s.ctx(), &pb.GetJobRequest{Id: jobID})
		got = j
		return err == nil && j.GetJob().GetPartial()
	})
	job := got.GetJob()
	if job.GetStatus() != pb.JobStatus_JOB_STATUS_CANCELLED || job.GetHostsFinished() != int64(len(partialFast)) {
		t.Fatalf("job %s partial=%v hosts_finished=%d; want cancelled, partial, %d",
			job.GetStatus(), job.GetPartial(), job.GetHostsFinished(), len(partialFast))
	}
	if n := s.count(`SELECT count(*) FROM port_scans WHERE job_id = $1 AND port = $2 AND state = 'open'`, jobID, partialOpen); n != len(partialFast) {
		t.Fatalf("open port rows of the job = %d, want %d (one per finished host)", n, len(partialFast))
	}
	if n := s.count(`SELECT count(*) FROM port_scans WHERE job_id = $1 AND host_id IN
		(SELECT id FROM hosts WHERE ip_address = ANY($2::text[]::inet[]))`, jobID, partialSilent); n != 0 {
		t.Fatalf("%d port rows for hosts the scan never finished", n)
	}
	if n := s.count(`SELECT count(*) FROM hosts WHERE ip_address = ANY($1::text[]::inet[]) AND status = 'up'`, partialFast); n != len(partialFast) {
		t.Fatalf("finished hosts up = %d, want %d", n, len(partialFast))
	}
	if n := s.count(`SELECT count(*) FROM hosts WHERE ip_address = ANY($1::text[]::inet[]) AND status = 'up'`, partialSilent); n != len(partialSilent) {
		t.Fatalf("hosts the scan never finished: %d still up, want %d (none marked down)", n, len(partialSilent))
	}
	if n := s.count(`SELECT count(*) FROM host_history WHERE job_id = $1 AND host_id IN
		(SELECT id FROM hosts WHERE ip_address = ANY($2::text[]::inet[]))`, jobID, partialSilent); n != 0 {
		t.Fatalf("%d history rows for hosts the scan never finished", n)
	}
	var finished string
	if err := s.pool.QueryRow(s.ctx(), `SELECT array_to_string(array(SELECT host(x) FROM unnest(finished_hosts) x ORDER BY x), ',')
		FROM scan_jobs WHERE id = $1`, jobID).Scan(&finished); err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(partialFast, ","); finished != want {
		t.Fatalf("finished_hosts = %s, want %s", finished, want)
	}
	return got
}

// CancelJob while a real agent's real nmap has finished the first host
// group of a segment but not the second: the finished hosts commit once,
// the job ends cancelled and partial with hosts_finished 4, and the hosts
// nmap never finished are not marked down.
func TestCancelMidScanCommitsFinishedHosts(t *testing.T) {
	t.Parallel()
	requireNetns(t)
	guardForwarding(t)
	logf := elapsedLogger(t)
	s, site := newPartialSite(t, "--lease-ttl", "3s")
	logf("site %s, controller on %s", site.agentNS, s.addr)
	ctx := s.ctx()
	tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: "seg", Network: partialNetwork,
		Ports: partialPorts, Profile: "slow-tail"})
	if err != nil {
		t.Fatal(err)
	}
	scan, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()})
	if err != nil || len(scan.GetJobs()) != 1 {
		t.Fatalf("ScanNow: %v %v", scan, err)
	}
	jobID := scan.GetJobs()[0].GetId()
	a := s.nsAgent(site, "agent", "lab", "10.99.0.0/24")
	s.waitStatus(jobID, pb.JobStatus_JOB_STATUS_RUNNING, 30*time.Second)
	eventually(t, "nmap finished the first host group", 40*time.Second, func() bool {
		return len(finishedHosts(a.Output())) == len(partialFast)
	})
	logf("first host group finished: %v", finishedHosts(a.Output()))
	if _, err := s.admin.CancelJob(ctx, &pb.CancelJobRequest{Id: jobID, Reason: "operator stop"}); err != nil {
		t.Fatal(err)
	}
	got := checkPartialCommit(t, s, jobID)
	logf("partial commit: %d hosts", got.GetJob().GetHostsFinished())
	for _, silent := range partialSilent {
		if finishedHosts(a.Output())[silent] {
			t.Fatalf("nmap finished the silent host %s; the test proves nothing", silent)
		}
	}
	mustContain(t, a.Output(), "committing the hosts it finished")
	// Once: a single lease, one commit, no remainder for an operator's cancel.
	if n := s.count(`SELECT count(*) FROM scan_job_leases WHERE job_id = $1`, jobID); n != 1 {
		t.Fatalf("leases = %d, want 1", n)
	}
	if n := s.count(`SELECT count(*) FROM scan_jobs WHERE remainder_of = $1`, jobID); n != 0 {
		t.Fatalf("an operator's cancel got %d remainder jobs", n)
	}
	if run := got.GetRun(); run == nil || run.GetHostsTotal() != 8 || run.GetHostsDone() != 4 || run.GetJobsPartial() != 1 {
		t.Fatalf("run progress: %v; want 4 of 8 hosts done by one partial job", run)
	}
}

// A scheduled scan's window closes while a real agent's real nmap is in the
// middle of a segment (the first host group done, the silent one not): the
// scheduler cancels the job at the close, the agent commits the finished
// hosts, and what is left becomes a job of the same run that starts at the
// window's next opening; GetJob.run shows the progress. The window is one
// real minute long (windows have minute granularity; the controller runs
// on the wall clock).
func TestWindowCloseMidScanCarriesRemainderOver(t *testing.T) {
	t.Parallel()
	requireNetns(t)
	guardForwarding(t)
	logf := elapsedLogger(t)
	s, site := newPartialSite(t, "--lease-ttl", "3s")
	ctx := s.ctx()
	a := s.nsAgent(site, "agent", "lab", "10.99.0.0/24")
	s.waitAgent("lab", "agent", a)
	// The window is the current UTC minute; with under 25 s of it left, the next one.
	now := time.Now().UTC()
	if now.Second() >= 35 {
		time.Sleep(time.Until(now.Truncate(time.Minute).Add(time.Minute + 200*time.Millisecond)))
		now = time.Now().UTC()
	}
	opens := now.Truncate(time.Minute)
	closes := opens.Add(time.Minute)
	tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: "seg", Network: partialNetwork,
		Ports: partialPorts, Profile: "slow-tail", Interval: durationpb.New(time.Hour), TimeZone: "UTC",
		Window: &pb.ScanWindow{Days: "*", Start: opens.Format("15:04"), End: closes.Format("15:04")}})
	if err != nil {
		t.Fatal(err)
	}
	logf("target with window %s-%s UTC", opens.Format("15:04"), closes.Format("15:04"))
	var jobID string
	eventually(t, "the scheduler's run", 20*time.Second, func() bool {
		return s.pool.QueryRow(ctx, `SELECT id::text FROM scan_jobs WHERE target_id = $1`, tgt.GetTarget().GetId()).Scan(&jobID) == nil
	})
	s.waitStatus(jobID, pb.JobStatus_JOB_STATUS_RUNNING, 30*time.Second)
	eventually(t, "nmap finished the first host group", 40*time.Second, func() bool {
		return len(finishedHosts(a.Output())) == len(partialFast)
	})
	if time.Now().After(closes) {
		t.Fatalf("the first host group finished after the window closed; the test proves nothing")
	}
	logf("first host group finished; window closes in %s", time.Until(closes).Round(time.Second))
	eventually(t, "cancelled at the window's close", time.Until(closes)+30*time.Second, func() bool {
		j, err := s.admin.GetJob(ctx, &pb.GetJobRequest{Id: jobID})
		return err == nil && j.GetJob().GetStatus() == pb.JobStatus_JOB_STATUS_CANCELLED
	})
	got := checkPartialCommit(t, s, jobID)
	logf("partial commit: %d hosts", got.GetJob().GetHostsFinished())
	for _, silent := range partialSilent {
		if finishedHosts(a.Output())[silent] {
			t.Fatalf("nmap finished the silent host %s before the close; the test proves nothing", silent)
		}
	}
	if j := got.GetJob(); !j.GetCancelledByDeadline() || !strings.Contains(j.GetErrorMessage(), "scan window closed") {
		t.Fatalf("job cancelled_by_deadline=%v (%s); want the window's close", j.GetCancelledByDeadline(), j.GetErrorMessage())
	}

	// The remainder: the same run, the silent hosts only, from the next opening.
	var remID string
	eventually(t, "remainder job", 20*time.Second, func() bool {
		return s.pool.QueryRow(ctx, `SELECT id::text FROM scan_jobs WHERE remainder_of = $1`, jobID).Scan(&remID) == nil
	})
	rem, err := s.admin.GetJob(ctx, &pb.GetJobRequest{Id: remID})
	if err != nil {
		t.Fatal(err)
	}
	if j := rem.GetJob(); j.GetStatus() != pb.JobStatus_JOB_STATUS_PENDING || j.GetRemainderOf() != jobID ||
		j.GetRunId() != got.GetJob().GetRunId() || j.GetNetwork() != partialNetwork {
		t.Fatalf("remainder job %v; want pending, remainder_of %s, same run and network", j, jobID)
	}
	var excluded string
	var notBefore, runDeadline time.Time
	if err := s.pool.QueryRow(ctx, `SELECT array_to_string(array(SELECT host(x) FROM unnest(j.exclusions) x ORDER BY x), ','),
		j.scheduled_at, r.cancel_at FROM scan_jobs j JOIN scan_runs r ON r.id = j.run_id WHERE j.id = $1`, remID).
		Scan(&excluded, &notBefore, &runDeadline); err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(partialFast, ","); excluded != want {
		t.Fatalf("remainder excludes %s, want the finished hosts %s", excluded, want)
	}
	if want := opens.Add(24 * time.Hour); !notBefore.Equal(want) {
		t.Fatalf("remainder starts %s, want the next opening %s", notBefore, want)
	}
	if want := closes.Add(24 * time.Hour); !runDeadline.Equal(want) {
		t.Fatalf("run deadline %s, want the next close %s", runDeadline, want)
	}
	run := rem.GetRun()
	if run.GetHostsTotal() != 8 || run.GetHostsDone() != 4 || run.GetJobsPartial() != 1 || run.GetRemainderJobs() != 1 {
		t.Fatalf("run progress: %v; want 4 of 8 hosts done, one partial job, one remainder", run)
	}
	// Not leased before its window: the idle agent stays idle.
	time.Sleep(2 * time.Second)
	if n := s.count(`SELECT count(*) FROM scan_job_leases WHERE job_id = $1`, remID); n != 0 {
		t.Fatalf("the remainder was leased %d times before the next window", n)
	}
}
