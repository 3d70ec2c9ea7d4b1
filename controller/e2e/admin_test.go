package e2e_test

import (
	"encoding/csv"
	"encoding/xml"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

func TestExclusionsAndIgnoredHostsReachJobs(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := s.ctx()
	first := setupTarget(t, s, "10.99.6.0/24", "22")
	a := register(t, s.agentc, "lab", "a", "10.99.0.0/16")
	l := a.acquire(5 * time.Second)
	if _, err := a.send(ctx, l, [][]*pb.HostResult{{host("10.99.6.10", 22)}}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.admin.UpdateHost(ctx, &pb.UpdateHostRequest{Site: "lab", IpAddress: "10.99.6.10", IgnoreScanning: true}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*pb.CreateExclusionRequest{{Network: "10.99.6.254/32"}, {Site: "lab", Network: "10.99.6.128/25"}, {Network: "198.18.0.0/16"}} {
		if _, err := s.admin.CreateExclusion(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.admin.UpdateTarget(ctx, &pb.UpdateTargetRequest{Id: first[0].GetTargetId(), Exclusions: []string{"10.99.6.1/32"}, UpdateExclusions: true}); err != nil {
		t.Fatal(err)
	}
	run, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: first[0].GetTargetId()})
	if err != nil {
		t.Fatal(err)
	}
	got := run.GetJobs()[0].GetExclusions()
	want := []string{"10.99.6.1/32", "10.99.6.10/32", "10.99.6.128/25", "10.99.6.254/32"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("job exclusions %v, want %v (target, ignored host, site, global; not the unrelated 198.18/16)", got, want)
	}
	l2 := a.acquire(5 * time.Second)
	_, err = a.send(ctx, l2, [][]*pb.HostResult{{host("10.99.6.200", 22)}}, false)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "excluded") {
		t.Fatalf("result for an excluded address: %v; want InvalidArgument", err)
	}
}

type nmapXML struct {
	Hosts []struct {
		Addresses []struct {
			Addr string `xml:"addr,attr"`
		} `xml:"address"`
		Ports []struct {
			Protocol string `xml:"protocol,attr"`
			PortID   int    `xml:"portid,attr"`
			State    struct {
				State string `xml:"state,attr"`
			} `xml:"state"`
			Service struct {
				Name string `xml:"name,attr"`
			} `xml:"service"`
		} `xml:"ports>port"`
	} `xml:"host"`
}

func TestExportResultsFormats(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := s.ctx()
	jobs := setupTarget(t, s, "10.99.7.0/24", "1-2000")
	a := register(t, s.agentc, "lab", "a", "10.99.0.0/16")
	l := a.acquire(5 * time.Second)
	ports := make([]int, 1500) // more rows than one export page
	for i := range ports {
		ports[i] = i + 1
	}
	if _, err := a.send(ctx, l, [][]*pb.HostResult{{host("10.99.7.10", 22, 80), host("10.99.7.11", ports...)}}, false); err != nil {
		t.Fatal(err)
	}
	read := func(req *pb.ExportResultsRequest) string {
		st, err := s.admin.ExportResults(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for {
			m, err := st.Recv()
			if err == io.EOF {
				return b.String()
			}
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString(m.GetData())
		}
	}
	jsonl := read(&pb.ExportResultsRequest{JobId: jobs[0].GetId(), Format: pb.ExportFormat_EXPORT_FORMAT_JSONL})
	if n := strings.Count(jsonl, "\n"); n != 1502 {
		t.Errorf("JSONL lines = %d, want 1502", n)
	}
	recs, err := csv.NewReader(strings.NewReader(read(&pb.ExportResultsRequest{Site: "lab", Format: pb.ExportFormat_EXPORT_FORMAT_CSV}))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1503 || recs[0][1] != "ip_address" || recs[1][1] != "10.99.7.10" {
		t.Errorf("CSV: %d records, header %v, first %v", len(recs), recs[0], recs[1])
	}
	var x nmapXML
	if err := xml.Unmarshal([]byte(read(&pb.ExportResultsRequest{JobId: jobs[0].GetId(), Format: pb.ExportFormat_EXPORT_FORMAT_NMAP_XML})), &x); err != nil {
		t.Fatal(err)
	}
	if len(x.Hosts) != 2 || len(x.Hosts[0].Ports) != 2 || len(x.Hosts[1].Ports) != 1500 || x.Hosts[0].Ports[0].Service.Name != "ssh" {
		t.Errorf("XML: %d hosts", len(x.Hosts))
	}
}

func TestDrainAgent(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := s.ctx()
	setupTarget(t, s, "10.99.8.0/24", "22")
	a := register(t, s.agentc, "lab", "a", "10.99.0.0/16")
	resp, err := s.admin.DrainAgent(ctx, &pb.DrainAgentRequest{Site: "lab", Name: "a", Drain: true})
	if err != nil || resp.GetAgent().GetState() != "draining" {
		t.Fatalf("drain: %v %v", resp, err)
	}
	if l := a.acquire(time.Second); l != nil {
		t.Fatalf("a draining agent got %v", l)
	}
	if _, err := s.admin.DrainAgent(ctx, &pb.DrainAgentRequest{Site: "lab", Name: "a", Drain: false}); err != nil {
		t.Fatal(err)
	}
	if l := a.acquire(5 * time.Second); l == nil {
		t.Fatal("an undrained agent got no work")
	}
}

// Every class of user mistake gets its own code, names the field, and
// writes nothing.
func TestAdminErrors(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := s.ctx()
	jobs := setupTarget(t, s, "10.99.9.0/24", "22")
	before := s.count(`SELECT (SELECT count(*) FROM sites) + (SELECT count(*) FROM scan_targets) + (SELECT count(*) FROM scan_profiles) + (SELECT count(*) FROM scan_jobs) + (SELECT count(*) FROM scan_exclusions)`)
	cases := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"GetJob id not a UUID", func() error { _, err := s.admin.GetJob(ctx, &pb.GetJobRequest{Id: "42"}); return err }, codes.InvalidArgument, "id"},
		{"GetJob unknown", func() error {
			_, err := s.admin.GetJob(ctx, &pb.GetJobRequest{Id: "00000000-0000-0000-0000-000000000001"})
			return err
		}, codes.NotFound, "id"},
		{"ListJobs bad page token", func() error { _, err := s.admin.ListJobs(ctx, &pb.ListJobsRequest{PageToken: "nope"}); return err }, codes.InvalidArgument, "page_token"},
		{"ListJobs negative page size", func() error { _, err := s.admin.ListJobs(ctx, &pb.ListJobsRequest{PageSize: -1}); return err }, codes.InvalidArgument, "page_size"},
		{"ListJobs unknown status", func() error { _, err := s.admin.ListJobs(ctx, &pb.ListJobsRequest{Status: 42}); return err }, codes.InvalidArgument, "status"},
		{"ListHosts bad network", func() error {
			_, err := s.admin.ListHosts(ctx, &pb.ListHostsRequest{Network: "10.99.0.0/40"})
			return err
		}, codes.InvalidArgument, "network"},
		{"ListHosts bad status", func() error { _, err := s.admin.ListHosts(ctx, &pb.ListHostsRequest{Status: "sideways"}); return err }, codes.InvalidArgument, "status"},
		{"ListHosts unknown site", func() error { _, err := s.admin.ListHosts(ctx, &pb.ListHostsRequest{Site: "mars"}); return err }, codes.NotFound, "site"},
		{"GetHost bad address", func() error {
			_, err := s.admin.GetHost(ctx, &pb.GetHostRequest{Site: "lab", IpAddress: "10.99.9"})
			return err
		}, codes.InvalidArgument, "ip_address"},
		{"GetHost unknown", func() error {
			_, err := s.admin.GetHost(ctx, &pb.GetHostRequest{Site: "lab", IpAddress: "10.99.9.9"})
			return err
		}, codes.NotFound, "ip_address"},
		{"ListHostChanges address without site", func() error {
			_, err := s.admin.ListHostChanges(ctx, &pb.ListHostChangesRequest{IpAddress: "10.99.9.9"})
			return err
		}, codes.InvalidArgument, "site"},
		{"CreateSite duplicate", func() error { _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); return err }, codes.AlreadyExists, ""},
		{"CreateSite bad name", func() error { _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "Lab One"}); return err }, codes.InvalidArgument, "name"},
		{"CreateProfile timing 7", func() error {
			timing := int32(7)
			_, err := s.admin.CreateProfile(ctx, &pb.CreateProfileRequest{Name: "p", Options: &pb.ScanOptions{ScanType: pb.ScanType_SCAN_TYPE_CONNECT, TopPorts: 10, Timing: &timing}})
			return err
		}, codes.InvalidArgument, "options.timing"},
		{"CreateProfile script not allowed", func() error {
			_, err := s.admin.CreateProfile(ctx, &pb.CreateProfileRequest{Name: "p", Options: &pb.ScanOptions{ScanType: pb.ScanType_SCAN_TYPE_CONNECT, TopPorts: 10, Scripts: []string{"exploit"}}})
			return err
		}, codes.InvalidArgument, "options.scripts"},
		{"CreateProfile no scan type", func() error {
			_, err := s.admin.CreateProfile(ctx, &pb.CreateProfileRequest{Name: "p", Options: &pb.ScanOptions{TopPorts: 10}})
			return err
		}, codes.InvalidArgument, "options.scan_type"},
		{"DeleteProfile built in", func() error {
			_, err := s.admin.DeleteProfile(ctx, &pb.DeleteProfileRequest{Name: "default"})
			return err
		}, codes.FailedPrecondition, "name"},
		{"DeleteSite with targets", func() error { _, err := s.admin.DeleteSite(ctx, &pb.DeleteSiteRequest{Name: "lab"}); return err }, codes.FailedPrecondition, ""},
		{"CancelJob unknown", func() error {
			_, err := s.admin.CancelJob(ctx, &pb.CancelJobRequest{Id: "00000000-0000-0000-0000-000000000001"})
			return err
		}, codes.NotFound, "id"},
		{"ScanNow unknown target", func() error {
			_, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: "00000000-0000-0000-0000-000000000001"})
			return err
		}, codes.NotFound, "target_id"},
		{"ExportResults job and site", func() error {
			st, err := s.admin.ExportResults(ctx, &pb.ExportResultsRequest{JobId: jobs[0].GetId(), Site: "lab"})
			if err == nil {
				_, err = st.Recv()
			}
			return err
		}, codes.InvalidArgument, "job_id"},
		{"CreateExclusion bad CIDR", func() error {
			_, err := s.admin.CreateExclusion(ctx, &pb.CreateExclusionRequest{Network: "everything"})
			return err
		}, codes.InvalidArgument, "network"},
		{"UpdateTarget bad ports", func() error {
			ports := "0-10"
			_, err := s.admin.UpdateTarget(ctx, &pb.UpdateTargetRequest{Id: jobs[0].GetTargetId(), Ports: &ports})
			return err
		}, codes.InvalidArgument, "ports"},
		{"UpdateTarget interval too short", func() error {
			_, err := s.admin.UpdateTarget(ctx, &pb.UpdateTargetRequest{Id: jobs[0].GetTargetId(), Interval: durationpb.New(time.Second)})
			return err
		}, codes.InvalidArgument, "interval"},
		{"DrainAgent unknown", func() error {
			_, err := s.admin.DrainAgent(ctx, &pb.DrainAgentRequest{Site: "lab", Name: "ghost", Drain: true})
			return err
		}, codes.NotFound, "name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := status.Convert(tc.call())
			if st.Code() != tc.code {
				t.Fatalf("code %s (%s), want %s", st.Code(), st.Message(), tc.code)
			}
			if tc.field != "" && !strings.Contains(st.Message(), tc.field+":") {
				t.Fatalf("message %q does not name %s", st.Message(), tc.field)
			}
		})
	}
	after := s.count(`SELECT (SELECT count(*) FROM sites) + (SELECT count(*) FROM scan_targets) + (SELECT count(*) FROM scan_profiles) + (SELECT count(*) FROM scan_jobs) + (SELECT count(*) FROM scan_exclusions)`)
	if after != before {
		t.Fatalf("bad requests changed the row count %d -> %d", before, after)
	}
}

// Paging by keyset is stable while rows are inserted: every job that
// existed before the listing started appears exactly once.
func TestListJobsPagingUnderInserts(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := s.ctx()
	jobs := setupTarget(t, s, "10.99.16.0/21", "22") // 8 jobs
	for range 4 {
		if _, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: jobs[0].GetTargetId()}); err != nil {
			t.Fatal(err)
		}
	}
	var existing []string
	list, err := s.admin.ListJobs(ctx, &pb.ListJobsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range list.GetJobs() {
		existing = append(existing, j.GetId())
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: jobs[0].GetTargetId()}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	seen := map[string]int{}
	token := ""
	for {
		page, err := s.admin.ListJobs(ctx, &pb.ListJobsRequest{PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page.GetJobs() {
			seen[j.GetId()]++
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	close(stop)
	wg.Wait()
	for _, id := range existing {
		if seen[id] != 1 {
			t.Errorf("job %s listed %d times", id, seen[id])
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("job %s listed %d times", id, n)
		}
	}
	if len(existing) != 40 {
		t.Errorf("expected 40 jobs before listing, got %d", len(existing))
	}
}

// GetStats adds up: the queue, agents, hosts and services it reports are
// what the test put there, and storage lists the port_scans partitions.
func TestGetStats(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	jobs := setupTarget(t, s, "10.99.6.0/23", "22")
	if len(jobs) != 2 {
		t.Fatalf("%d jobs, want 2", len(jobs))
	}
	a := register(t, s.agentc, "lab", "a", "10.99.0.0/16")
	l := a.acquire(5 * time.Second)
	if l == nil {
		t.Fatal("no lease")
	}
	n := netip.MustParsePrefix(l.GetNetwork())
	if _, err := a.send(s.ctx(), l, [][]*pb.HostResult{{host(n.Addr().Next().String(), 22), host(n.Addr().Next().Next().String())}}, false); err != nil {
		t.Fatal(err)
	}
	st, err := s.admin.GetStats(s.ctx(), &pb.GetStatsRequest{Site: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetJobs()["completed"] != 1 || st.GetJobs()["pending"] != 1 || len(st.GetJobs()) != 2 {
		t.Errorf("jobs = %v, want 1 completed and 1 pending", st.GetJobs())
	}
	if st.GetOldestPendingAge() == nil || st.GetOldestPendingAge().AsDuration() < 0 {
		t.Errorf("oldest_pending_age = %v, want the pending job's wait", st.GetOldestPendingAge())
	}
	if st.GetAgents()["active"] != 1 || st.GetExpiredLeases() != 0 {
		t.Errorf("agents = %v, expired leases = %d", st.GetAgents(), st.GetExpiredLeases())
	}
	if st.GetHosts() != 2 || st.GetHostsUp() != 2 || st.GetOpenServices() != 1 {
		t.Errorf("hosts %d, up %d, open services %d; want 2, 2, 1", st.GetHosts(), st.GetHostsUp(), st.GetOpenServices())
	}
	month := "port_scans_" + time.Now().UTC().Format("2006_01")
	var sawMonth bool
	for _, p := range st.GetPartitions() {
		sawMonth = sawMonth || (p.GetName() == month && !p.GetArchived() && p.GetBytes() > 0)
	}
	if !sawMonth || st.GetDatabaseBytes() <= 0 {
		t.Errorf("storage: partitions %v, database %d bytes; want %s listed", st.GetPartitions(), st.GetDatabaseBytes(), month)
	}
	if _, err := s.admin.GetStats(s.ctx(), &pb.GetStatsRequest{Site: "nowhere"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown site: %v; want NotFound", err)
	}
}

// ListHosts and ListHostChanges page through everything exactly once, across
// sites that reuse the same addresses, newest change first.
func TestHostsAndChangesPageCompletely(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := s.ctx()
	for _, site := range []string{"lab", "branch"} {
		if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: site}); err != nil {
			t.Fatal(err)
		}
		tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: site, Name: "net", Network: "10.99.8.0/24", Ports: "22"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()}); err != nil {
			t.Fatal(err)
		}
		a := register(t, s.agentc, site, "a", "10.99.0.0/16")
		l := a.acquire(5 * time.Second)
		if l == nil {
			t.Fatal("no lease")
		}
		n := map[string]int{"lab": 23, "branch": 9}[site]
		var hosts []*pb.HostResult
		for i := range n {
			hosts = append(hosts, host(fmt.Sprintf("10.99.8.%d", 10+i), 22))
		}
		if _, err := a.send(ctx, l, [][]*pb.HostResult{hosts}, false); err != nil {
			t.Fatal(err)
		}
	}
	listHosts := func(site string) []string {
		var out []string
		token := ""
		for {
			page, err := s.admin.ListHosts(ctx, &pb.ListHostsRequest{Site: site, PageSize: 5, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range page.GetHosts() {
				out = append(out, h.GetSite()+"/"+h.GetIpAddress())
			}
			if token = page.GetNextPageToken(); token == "" {
				return out
			}
		}
	}
	for site, want := range map[string]int{"": 32, "lab": 23, "branch": 9} {
		got := listHosts(site)
		if len(got) != want || len(got) != len(slices.Compact(slices.Sorted(slices.Values(got)))) {
			t.Errorf("ListHosts(site %q) paged %d hosts (%d distinct), want %d", site, len(got), len(slices.Compact(slices.Sorted(slices.Values(got)))), want)
		}
	}
	var changes []*pb.HostChange
	token := ""
	for {
		page, err := s.admin.ListHostChanges(ctx, &pb.ListHostChangesRequest{Site: "lab", PageSize: 7, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, page.GetChanges()...)
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	ids := map[int64]bool{}
	for i, c := range changes {
		ids[c.GetId()] = true
		if c.GetSite() != "lab" {
			t.Fatalf("change of site %q in site lab's list", c.GetSite())
		}
		if i > 0 && c.GetChangedAt().AsTime().After(changes[i-1].GetChangedAt().AsTime()) {
			t.Fatalf("changes not newest first at %d", i)
		}
	}
	// Each of lab's 23 hosts was discovered with port 22 open.
	if len(changes) != 46 || len(ids) != 46 {
		t.Fatalf("paged %d changes (%d distinct), want 46", len(changes), len(ids))
	}
}
