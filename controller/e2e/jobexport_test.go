package e2e_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/scanorama/scanorama/controller/nmapxml"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// nmapDoc writes hosts as an nmap -oX document (the export's own writer:
// what the import reads back), a TCP scan of ports.
func nmapDoc(ports string, hosts []nmapxml.Host) []byte {
	var (
		w   nmapxml.Writer
		buf bytes.Buffer
	)
	start := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	run := nmapxml.Run{Version: "7.93", Start: start, End: start.Add(time.Minute), Elapsed: time.Minute,
		ScanInfo: []nmapxml.ScanInfo{{Type: "syn", Protocol: "tcp", Services: ports}}}
	w.Header(&buf, run)
	for _, h := range hosts {
		w.Host(&buf, h)
	}
	w.Footer(&buf, run)
	return buf.Bytes()
}

// exportedHosts reads an nmap XML document back: address -> "status
// hostname | port/proto state service ...", ports in document order.
func exportedHosts(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Hosts []struct {
			Status struct {
				State  string `xml:"state,attr"`
				Reason string `xml:"reason,attr"`
			} `xml:"status"`
			Addr []struct {
				Addr string `xml:"addr,attr"`
			} `xml:"address"`
			Names []struct {
				Name string `xml:"name,attr"`
			} `xml:"hostnames>hostname"`
			Ports []struct {
				Proto string `xml:"protocol,attr"`
				ID    int    `xml:"portid,attr"`
				State struct {
					State string `xml:"state,attr"`
				} `xml:"state"`
				Service struct {
					Name string `xml:"name,attr"`
				} `xml:"service"`
			} `xml:"ports>port"`
		} `xml:"host"`
	}
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = false // <!DOCTYPE nmaprun> names no DTD to fetch
	if err := d.Decode(&doc); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	out := map[string]string{}
	for _, h := range doc.Hosts {
		line := h.Status.State + " " + h.Status.Reason
		for _, n := range h.Names {
			line += " " + n.Name
		}
		for _, p := range h.Ports {
			line += fmt.Sprintf(" | %d/%s %s %s", p.ID, p.Proto, p.State.State, p.Service.Name)
		}
		out[h.Addr[0].Addr] = strings.TrimSpace(line)
	}
	return out
}

func sortedLines(m map[string]string) string {
	var lines []string
	for k, v := range m {
		lines = append(lines, k+": "+v)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// Two jobs over the same hosts with different results (imports of two nmap
// runs; addresses are only data, nothing is probed): the export of each job
// shows exactly that job's results, whatever the later job changed in the
// hosts' current state: a host the first job saw up without ports stays in
// its export, names are the ones each job saw, the host the second job
// found silent is down in its export and up in the first's. Both exports
// are valid per nmap.dtd.
func TestNmapXMLJobExportShowsThatJobsResults(t *testing.T) {
	t.Parallel()
	needTools(t, "xmllint", "xsltproc")
	s := newStack(t)
	ctx := s.ctx()
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: "net", Network: "10.99.7.0/24", Ports: "22,80,443,8080"}); err != nil {
		t.Fatal(err)
	}
	a, b, c := netip.MustParseAddr("10.99.7.1"), netip.MustParseAddr("10.99.7.2"), netip.MustParseAddr("10.99.7.3")
	open := func(port int32, name string) nmapxml.Port {
		return nmapxml.Port{Protocol: "tcp", Port: port, State: "open", Reason: "syn-ack", Service: name}
	}
	first := nmapDoc("22,80,443,8080", []nmapxml.Host{
		{Addr: a, Status: "up", Reason: "echo-reply", Hostname: "a-old.lab", Ports: []nmapxml.Port{open(22, "ssh")}},
		{Addr: b, Status: "up", Reason: "echo-reply"}, // up, every port filtered: no port rows
		{Addr: c, Status: "up", Reason: "echo-reply", Ports: []nmapxml.Port{open(80, "http")}},
	})
	second := nmapDoc("22,80,443,8080", []nmapxml.Host{
		{Addr: a, Status: "up", Reason: "echo-reply", Hostname: "a-new.lab", Ports: []nmapxml.Port{
			{Protocol: "tcp", Port: 22, State: "closed", Reason: "reset"}, open(443, "https")}},
		{Addr: b, Status: "up", Reason: "echo-reply", Ports: []nmapxml.Port{open(8080, "http-proxy")}},
		// c does not answer: the commit marks it down.
	})
	r1, err := importFile(ctx, s.admin, &pb.ImportStart{Site: "lab"}, first)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := importFile(ctx, s.admin, &pb.ImportStart{Site: "lab"}, second)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		r1.GetJobId(): {
			"10.99.7.1": "up echo-reply a-old.lab | 22/tcp open ssh",
			"10.99.7.2": "up echo-reply",
			"10.99.7.3": "up echo-reply | 80/tcp open http",
		},
		r2.GetJobId(): {
			"10.99.7.1": "up echo-reply a-new.lab | 22/tcp closed  | 443/tcp open https",
			"10.99.7.2": "up echo-reply | 8080/tcp open http-proxy",
			"10.99.7.3": "down no-response",
		},
	}
	for i, job := range []string{r1.GetJobId(), r2.GetJobId()} {
		path := export(t, s, &pb.ExportResultsRequest{JobId: job, Format: pb.ExportFormat_EXPORT_FORMAT_NMAP_XML}, fmt.Sprintf("job%d.xml", i+1))
		checkWithNmapTools(t, path)
		if got, w := sortedLines(exportedHosts(t, path)), sortedLines(want[job]); got != w {
			t.Errorf("export of job %d:\n%s\nwant:\n%s", i+1, got, w)
		}
	}
}
