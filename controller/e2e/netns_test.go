package e2e_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Two sites whose networks overlap (both are 10.99.0.0/24 and both have a
// 10.99.0.10), each in its own network namespaces with different real
// listeners, each scanned by a real agent running inside the site, both
// reporting to one controller: the hosts stay separate per site.
func TestOverlappingSitesStaySeparate(t *testing.T) {
	t.Parallel()
	requireNetns(t)
	guardForwarding(t)
	logf := elapsedLogger(t)
	const (
		macA    = "02:99:00:00:0a:10"
		macB    = "02:99:00:00:0b:10"
		bannerA = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
		bannerB = "SSH-2.0-OpenSSH_8.4p1 Debian-5+deb11u3"
		ports   = "2201,2202,8080,9090"
	)
	a := newNSSite(t, []string{"10.99.0.10"}, macA)
	b := newNSSite(t, []string{"10.99.0.10", "10.99.0.11"}, macB)
	logf("sites built: A %s (uplink %s), B %s (uplink %s)", a.agentNS, a.hostAddr, b.agentNS, b.hostAddr)
	// One controller, on site A's uplink; site B reaches it by a host route.
	s := newStackOn(t, a.hostAddr)
	b.routeTo(a.hostAddr)
	logf("controller on %s", s.addr)
	a.listen("-ssh", "10.99.0.10:2201", "-ssh-banner", bannerA, "-http", "10.99.0.10:8080", "-server", "nginx/1.22.1")
	b.listen("-ssh", "10.99.0.10:2202", "-ssh-banner", bannerB, "-http", "10.99.0.10:9090,10.99.0.11:8080", "-server", "Apache/2.4.57 (Debian)")
	logf("listeners ready")

	ctx := s.ctx()
	for _, name := range []string{"site-a", "site-b"} {
		if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	procA := s.nsAgent(a, "agent-a", "site-a", "10.99.0.0/24")
	procB := s.nsAgent(b, "agent-b", "site-b", "10.99.0.0/24")
	idA := s.waitAgent("site-a", "agent-a", procA).GetId()
	idB := s.waitAgent("site-b", "agent-b", procB).GetId()
	logf("agents registered: site-a %s, site-b %s", idA, idB)

	// The same target, name included, in both sites; 10.99.0.1 is the agent's own address.
	jobOf := map[string]string{}
	for _, site := range []string{"site-a", "site-b"} {
		tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{
			Site: site, Name: "lan", Network: "10.99.0.0/28", Ports: ports, Exclusions: []string{"10.99.0.1/32"},
		})
		if err != nil {
			t.Fatalf("CreateTarget %s: %v", site, err)
		}
		scan, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if len(scan.GetJobs()) != 1 {
			t.Fatalf("ScanNow %s made %d jobs, want 1", site, len(scan.GetJobs()))
		}
		jobOf[site] = scan.GetJobs()[0].GetId()
	}
	logf("jobs queued: %v", jobOf)
	for site, agentID := range map[string]string{"site-a": idA, "site-b": idB} {
		job := s.waitJob(jobOf[site], 2*time.Minute)
		if job.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED {
			t.Fatalf("%s job %s: %s", site, job.GetStatus(), job.GetErrorMessage())
		}
		logf("%s job completed in %s", site, job.GetCompletedAt().AsTime().Sub(job.GetStartedAt().AsTime()).Round(time.Millisecond))
		if job.GetWorkerId() != agentID || job.GetSite() != site || job.GetAttempt() != 1 {
			t.Errorf("%s job: worker %q site %q attempt %d; want worker %q (its own site's agent), attempt 1",
				site, job.GetWorkerId(), job.GetSite(), job.GetAttempt(), agentID)
		}
		if n := s.count(`SELECT count(*) FROM scan_job_leases WHERE job_id = $1 AND worker_id <> $2`, jobOf[site], agentID); n != 0 {
			t.Errorf("%s job was leased %d times to another site's agent", site, n)
		}
	}

	// What nmap -sV must have read from each site's own listeners.
	type svc struct{ name, product, version string }
	sshA := svc{"ssh", "OpenSSH", "9.2p1"}
	sshB := svc{"ssh", "OpenSSH", "8.4p1"}
	httpA := svc{"http", "nginx", "1.22.1"}
	httpB := svc{"http", "Apache httpd", "2.4.57"}
	for _, w := range []struct {
		site, ip, mac string
		open          map[int32]svc
	}{
		{"site-a", "10.99.0.10", macA, map[int32]svc{2201: sshA, 8080: httpA}},
		{"site-b", "10.99.0.10", macB, map[int32]svc{2202: sshB, 9090: httpB}},
		{"site-b", "10.99.0.11", macB, map[int32]svc{8080: httpB}},
	} {
		resp, err := s.admin.GetHost(ctx, &pb.GetHostRequest{Site: w.site, IpAddress: w.ip})
		if err != nil {
			t.Errorf("GetHost %s %s: %v", w.site, w.ip, err)
			continue
		}
		h := resp.GetHost()
		got := map[int32]svc{}
		for _, p := range h.GetPorts() {
			if p.GetState() == "open" && p.GetProtocol() == "tcp" {
				got[p.GetPort()] = svc{p.GetServiceName(), p.GetServiceProduct(), p.GetServiceVersion()}
			}
		}
		ok := len(got) == len(w.open)
		for port, want := range w.open {
			g, found := got[port]
			ok = ok && found && g.name == want.name && g.product == want.product && strings.HasPrefix(g.version, want.version)
		}
		if !ok {
			t.Errorf("%s %s: open ports %v; want exactly %v (all ports: %v)", w.site, w.ip, got, w.open, h.GetPorts())
		}
		if int(h.GetOpenPorts()) != len(w.open) || h.GetStatus() != "up" || h.GetSite() != w.site {
			t.Errorf("%s %s: open_ports %d status %q site %q", w.site, w.ip, h.GetOpenPorts(), h.GetStatus(), h.GetSite())
		}
		// The MAC nmap saw proves which wire the row came from.
		if !strings.EqualFold(h.GetMacAddress(), w.mac) {
			t.Errorf("%s %s: mac %q; want %s (the site's own target namespace)", w.site, w.ip, h.GetMacAddress(), w.mac)
		}
	}
	if _, err := s.admin.GetHost(ctx, &pb.GetHostRequest{Site: "site-a", IpAddress: "10.99.0.11"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetHost site-a 10.99.0.11 (exists only in site B): %v; want NotFound", err)
	}

	hostsOf := func(req *pb.ListHostsRequest) []string {
		t.Helper()
		resp, err := s.admin.ListHosts(ctx, req)
		if err != nil {
			t.Fatalf("ListHosts %v: %v", req, err)
		}
		var out []string
		for _, h := range resp.GetHosts() {
			out = append(out, h.GetSite()+"/"+h.GetIpAddress())
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		req  *pb.ListHostsRequest
		want []string
	}{
		{&pb.ListHostsRequest{Site: "site-a"}, []string{"site-a/10.99.0.10"}},
		{&pb.ListHostsRequest{Site: "site-b"}, []string{"site-b/10.99.0.10", "site-b/10.99.0.11"}},
		{&pb.ListHostsRequest{OpenPort: 8080}, []string{"site-a/10.99.0.10", "site-b/10.99.0.11"}},
		{&pb.ListHostsRequest{OpenPort: 2202}, []string{"site-b/10.99.0.10"}},
		{&pb.ListHostsRequest{Site: "site-a", OpenPort: 9090}, nil},
	} {
		if got := hostsOf(tc.req); !slices.Equal(got, tc.want) {
			t.Errorf("ListHosts{site %q open_port %d} = %v; want %v", tc.req.GetSite(), tc.req.GetOpenPort(), got, tc.want)
		}
	}

	// In the tables: one row per (site, 10.99.0.10), and every result row
	// hangs off a host of the same site as the job that produced it.
	if n := s.count(`SELECT count(*) FROM hosts WHERE ip_address = '10.99.0.10'::inet`); n != 2 {
		t.Errorf("hosts rows for 10.99.0.10 = %d, want 2 (one per site)", n)
	}
	if n := s.count(`SELECT count(DISTINCT site_id) FROM hosts WHERE ip_address = '10.99.0.10'::inet`); n != 2 {
		t.Errorf("sites with a 10.99.0.10 host = %d, want 2", n)
	}
	for what, q := range map[string]string{
		"port_scans": `SELECT count(*) FROM port_scans ps JOIN hosts h ON h.id = ps.host_id JOIN scan_jobs j ON j.id = ps.job_id WHERE h.site_id <> j.site_id`,
		"services":   `SELECT count(*) FROM services sv JOIN hosts h ON h.id = sv.host_id JOIN scan_jobs j ON j.id = sv.last_job_id WHERE h.site_id <> j.site_id`,
		"history":    `SELECT count(*) FROM host_history hh JOIN hosts h ON h.id = hh.host_id WHERE hh.site_id <> h.site_id`,
	} {
		if n := s.count(q); n != 0 {
			t.Errorf("%s: %d rows mix up sites", what, n)
		}
	}
	if n := s.count(`SELECT count(*) FROM port_scans ps JOIN hosts h ON h.id = ps.host_id
		JOIN sites st ON st.id = h.site_id WHERE ps.state = 'open' AND
		((st.name = 'site-a' AND ps.port IN (2202, 9090)) OR (st.name = 'site-b' AND h.ip_address = '10.99.0.10'::inet AND ps.port IN (2201, 8080)))`); n != 0 {
		t.Errorf("%d open port rows carry the other site's ports", n)
	}
}

// An agent is leased only jobs of its own site whose network lies inside its
// --scope: wider or disjoint networks of its site, and its scope's network in
// another site, stay pending while it sits idle.
func TestAgentIsNeverLeasedOutOfScopeJobs(t *testing.T) {
	t.Parallel()
	requireNetns(t)
	guardForwarding(t)
	logf := elapsedLogger(t)
	// 10.99.0.200 is reachable from the agent but outside its scope.
	site := newNSSite(t, []string{"10.99.0.10", "10.99.0.200"}, "02:99:00:00:0c:10")
	logf("site built: %s (uplink %s)", site.agentNS, site.hostAddr)
	s := newStackOn(t, site.hostAddr)
	logf("controller on %s", s.addr)
	site.listen("-ssh", "10.99.0.10:2201", "-http", "10.99.0.200:8080")
	ctx := s.ctx()
	for _, name := range []string{"site-a", "site-b"} {
		if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	scanNow := func(site, name, network string, excl ...string) string {
		t.Helper()
		tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: site, Name: name, Network: network, Ports: "2201,8080", Exclusions: excl})
		if err != nil {
			t.Fatalf("CreateTarget %s %s: %v", site, network, err)
		}
		resp, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetJobs()) != 1 {
			t.Fatalf("ScanNow %s made %d jobs, want 1", network, len(resp.GetJobs()))
		}
		return resp.GetJobs()[0].GetId()
	}
	// Created before the agent exists and before the in-scope job, so they
	// are first in line if leasing ignored scope or site.
	never := map[string]string{
		scanNow("site-a", "upper-half", "10.99.0.128/25"):               "disjoint from the scope",
		scanNow("site-a", "wider", "10.99.0.0/27", "10.99.0.1/32"):      "wider than the scope",
		scanNow("site-b", "other-site", "10.99.0.0/28", "10.99.0.1/32"): "in scope but another site",
	}

	p := s.nsAgent(site, "agent-a", "site-a", "10.99.0.0/28")
	agent := s.waitAgent("site-a", "agent-a", p)
	logf("agent registered: %s", agent.GetId())
	if !slices.Equal(agent.GetScope(), []string{"10.99.0.0/28"}) {
		t.Errorf("ListAgents scope = %v; want [10.99.0.0/28]", agent.GetScope())
	}

	// The agent is alive and leasing: an in-scope job completes.
	inside := scanNow("site-a", "inside", "10.99.0.0/28", "10.99.0.1/32")
	job := s.waitJob(inside, 2*time.Minute)
	if job.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED || job.GetWorkerId() != agent.GetId() {
		t.Fatalf("in-scope job: %s worker %q (%s); want completed by %s", job.GetStatus(), job.GetWorkerId(), job.GetErrorMessage(), agent.GetId())
	}
	logf("in-scope job completed in %s", job.GetCompletedAt().AsTime().Sub(job.GetStartedAt().AsTime()).Round(time.Millisecond))
	// ... and then sits idle, long-polling, while the others stay pending.
	// Longer than the leaser's 5 s recheck, so its query runs again meanwhile.
	idle := time.Now().Add(6 * time.Second)
	for time.Now().Before(idle) {
		for id, why := range never {
			j, err := s.admin.GetJob(ctx, &pb.GetJobRequest{Id: id})
			if err != nil {
				t.Fatal(err)
			}
			if j := j.GetJob(); j.GetStatus() != pb.JobStatus_JOB_STATUS_PENDING || j.GetWorkerId() != "" || j.GetAttempt() != 0 {
				t.Fatalf("job for %s (%s): %s worker %q attempt %d; want pending and never leased",
					j.GetNetwork(), why, j.GetStatus(), j.GetWorkerId(), j.GetAttempt())
			}
		}
		select {
		case <-p.Done():
			t.Fatalf("agent exited:\n%s", p.Output())
		case <-time.After(250 * time.Millisecond):
		}
	}
	if n := s.count(`SELECT count(*) FROM scan_job_leases WHERE job_id <> $1`, inside); n != 0 {
		t.Errorf("%d leases granted for out-of-scope jobs", n)
	}
	if out := p.Output(); strings.Contains(out, "refusing job") {
		t.Errorf("the agent had to refuse a job the controller should never have leased:\n%s", out)
	}
	resp, err := s.admin.ListAgents(ctx, &pb.ListAgentsRequest{Site: "site-a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetAgents()) != 1 || resp.GetAgents()[0].GetActiveLeases() != 0 ||
		!slices.Equal(resp.GetAgents()[0].GetScope(), []string{"10.99.0.0/28"}) {
		t.Errorf("ListAgents site-a = %v; want one idle agent with scope [10.99.0.0/28]", resp.GetAgents())
	}

	// Only the in-scope address was ever probed.
	if h, err := s.admin.GetHost(ctx, &pb.GetHostRequest{Site: "site-a", IpAddress: "10.99.0.10"}); err != nil || h.GetHost().GetOpenPorts() != 1 {
		t.Errorf("GetHost site-a 10.99.0.10: %v %v; want up with 2201 open", h, err)
	}
	if _, err := s.admin.GetHost(ctx, &pb.GetHostRequest{Site: "site-a", IpAddress: "10.99.0.200"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetHost 10.99.0.200 (outside the agent's scope): %v; want NotFound", err)
	}
	if n := s.count(`SELECT count(*) FROM hosts`); n != 1 {
		t.Errorf("hosts rows = %d, want 1", n)
	}
}
