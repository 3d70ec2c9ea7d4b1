package e2e_test

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scanorama/scanorama/controller/nmapxml"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// An import that names no target, into a site with several: each host goes
// to the target containing its address (the most specific when targets
// nest), one import job per target, all committed together; an address in
// no target, or a file without hosts, refuses the import and writes nothing.
// Addresses are only data: nothing is probed.
func TestImportWithoutTargetMatchesHostsToTargets(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := s.ctx()
	target := func(site, name, network string) string {
		t.Helper()
		r, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: site, Name: name, Network: network, Ports: "22,80"})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetTarget().GetId()
	}
	for _, name := range []string{"two", "nested"} {
		if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	dmz, office := target("two", "dmz", "10.99.1.0/24"), target("two", "office", "10.99.2.0/24")
	wide, inner := target("nested", "wide", "10.99.0.0/16"), target("nested", "inner", "10.99.1.0/24")
	up := func(addr string, ports ...int32) nmapxml.Host {
		h := nmapxml.Host{Addr: netip.MustParseAddr(addr), Status: "up", Reason: "echo-reply"}
		for _, p := range ports {
			h.Ports = append(h.Ports, nmapxml.Port{Protocol: "tcp", Port: p, State: "open", Reason: "syn-ack"})
		}
		return h
	}
	rows := func() int {
		return s.count(`SELECT (SELECT count(*) FROM scan_jobs) + (SELECT count(*) FROM hosts) + (SELECT count(*) FROM port_scans)
			+ (SELECT count(*) FROM host_history) + (SELECT count(*) FROM job_hosts)`)
	}

	// Refused, naming the first address in no target, or the empty file.
	before := rows()
	for _, c := range []struct {
		name, field, msg string
		doc              []byte
	}{
		{"address in no target", "hosts[2].address", "10.99.3.9 is in no target of site \"two\"",
			nmapDoc("22,80", []nmapxml.Host{up("10.99.1.5", 22), up("10.99.2.7"), up("10.99.3.9"), up("10.99.4.1")})},
		{"no hosts", "data", "reports no host", nmapDoc("22,80", nil)},
	} {
		_, err := importFile(ctx, s.admin, &pb.ImportStart{Site: "two"}, c.doc)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), c.field+":") || !strings.Contains(st.Message(), c.msg) {
			t.Errorf("%s: %v; want InvalidArgument naming %s (%q)", c.name, err, c.field, c.msg)
		}
	}
	if after := rows(); after != before {
		t.Fatalf("refused imports wrote %d rows", after-before)
	}

	// Two disjoint targets, through the import command: a job each.
	file := filepath.Join(t.TempDir(), "two.xml")
	if err := os.WriteFile(file, nmapDoc("22,80", []nmapxml.Host{up("10.99.1.5", 22), up("10.99.2.7", 80), up("10.99.1.6")}), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(binDir, "scanorama-controller"), "import", "--controller", s.addr, "--site", "two", file).CombinedOutput()
	if err != nil {
		t.Fatalf("scanorama-controller import: %v\n%s", err, out)
	}
	mustContain(t, string(out), "imported as job ")
	mustContain(t, string(out), "(target "+dmz+"): 2 hosts, 1 port rows")
	mustContain(t, string(out), "(target "+office+"): 1 hosts, 1 port rows")
	for _, c := range []struct {
		target string
		hosts  int
	}{{dmz, 2}, {office, 1}} {
		if n := s.count(`SELECT count(*) FROM job_hosts jh JOIN scan_jobs j ON j.id = jh.job_id
			WHERE j.kind = 'import' AND j.status = 'completed' AND j.target_id = $1 AND jh.ip_address <<= j.network`, c.target); n != c.hosts {
			t.Errorf("target %s: %d imported hosts in its network, want %d", c.target, n, c.hosts)
		}
	}

	// Nested targets: the narrower one takes its addresses, and each job
	// says which hosts of its own network did not answer: 10.99.1.9, up
	// before, goes down once, in the inner target's job.
	if _, err := importFile(ctx, s.admin, &pb.ImportStart{Site: "nested", TargetId: inner}, nmapDoc("22,80", []nmapxml.Host{up("10.99.1.9")})); err != nil {
		t.Fatal(err)
	}
	resp, err := importFile(ctx, s.admin, &pb.ImportStart{Site: "nested"}, nmapDoc("22,80", []nmapxml.Host{up("10.99.5.5", 22), up("10.99.1.5", 80)}))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, j := range resp.GetJobs() {
		got[j.GetTargetId()] = j.GetHosts()
	}
	if len(resp.GetJobs()) != 2 || got[inner] != 1 || got[wide] != 1 || resp.GetHosts() != 2 || resp.GetJobId() != resp.GetJobs()[0].GetJobId() {
		t.Fatalf("nested import: %v; want a job of one host in each target", resp)
	}
	if n := s.count(`SELECT count(*) FROM host_history hh JOIN hosts h ON h.id = hh.host_id JOIN scan_jobs j ON j.id = hh.job_id
		WHERE h.ip_address = '10.99.1.9' AND hh.event = 'host_down' AND j.target_id = $1`, inner); n != 1 {
		t.Errorf("10.99.1.9 went down %d times in the inner target's job, want once", n)
	}
	if n := s.count(`SELECT count(*) FROM host_history hh JOIN hosts h ON h.id = hh.host_id WHERE h.ip_address = '10.99.1.9' AND hh.event = 'host_down'`); n != 1 {
		t.Errorf("10.99.1.9 went down %d times, want once", n)
	}

	// Hosts all in one target: a single job there.
	resp, err = importFile(ctx, s.admin, &pb.ImportStart{Site: "nested"}, nmapDoc("22,80", []nmapxml.Host{up("10.99.7.7", 22)}))
	if err != nil || len(resp.GetJobs()) != 1 || resp.GetJobs()[0].GetTargetId() != wide {
		t.Fatalf("import into one of several targets: %v, %v", resp, err)
	}
}
