package e2e_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

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
		return len(finishedHosts(a.out.String())) == len(partialFast)
	})
	logf("first host group finished: %v", finishedHosts(a.out.String()))
	if _, err := s.admin.CancelJob(ctx, &pb.CancelJobRequest{Id: jobID, Reason: "operator stop"}); err != nil {
		t.Fatal(err)
	}
	got := checkPartialCommit(t, s, jobID)
	logf("partial commit: %d hosts", got.GetJob().GetHostsFinished())
	for _, silent := range partialSilent {
		if finishedHosts(a.out.String())[silent] {
			t.Fatalf("nmap finished the silent host %s; the test proves nothing", silent)
		}
	}
	mustContain(t, a.out.String(), "committing the hosts it finished")
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
