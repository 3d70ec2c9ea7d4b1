package nmapxml

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func sampleDoc() []byte {
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	run := Run{
		Args: "nmap -sS -p 22,80,443 10.99.0.0/24", Version: "7.93", Start: start,
		ScanInfo: []ScanInfo{{Type: "syn", Protocol: "tcp", Services: "22,80,440-443"}},
		End:      start.Add(12340 * time.Millisecond), Elapsed: 12340 * time.Millisecond,
	}
	var w Writer
	var b bytes.Buffer
	w.Header(&b, run)
	w.Host(&b, Host{
		Addr: netip.MustParseAddr("10.99.0.5"), Status: "up", Reason: "arp-response", MAC: "02:00:5e:10:00:01",
		Vendor: "ACME & Sons", Hostname: "db<1>.example", OSName: "Linux 5.X", OSAccuracy: 95,
		Ports: []Port{
			{Protocol: "tcp", Port: 22, State: "open", Reason: "syn-ack", Service: "ssh", Product: "OpenSSH", Version: "9.2p1", ExtraInfo: `protocol "2.0"`},
			{Protocol: "tcp", Port: 80, State: "closed", Reason: "", Service: "http"},
			{Protocol: "tcp", Port: 443, State: "filtered", Reason: "no-response"},
		},
	})
	w.Host(&b, Host{Addr: netip.MustParseAddr("10.99.0.6"), Status: "down", Ports: []Port{{Protocol: "tcp", Port: 22, State: "open"}}})
	w.Host(&b, Host{Addr: netip.MustParseAddr("2001:db8::7"), Status: "up"})
	w.Footer(&b, run)
	return b.Bytes()
}

func TestWriterGolden(t *testing.T) {
	t.Parallel()
	got := sampleDoc()
	golden := filepath.Join("testdata", "sample.xml")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("writer output differs from %s (run with -update after checking):\n%s", golden, got)
	}
}

// TestWriterValidatesAgainstNmapDTD checks the golden document with nmap's
// own DTD and stylesheet (deploy/scripts/ensure-deps.sh installs the tools).
func TestWriterValidatesAgainstNmapDTD(t *testing.T) {
	t.Parallel()
	const dtd = "/usr/share/nmap/nmap.dtd"
	for _, tool := range []string{"xmllint", "xsltproc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed; run deploy/scripts/ensure-deps.sh", tool)
		}
	}
	path := filepath.Join(t.TempDir(), "doc.xml")
	if err := os.WriteFile(path, sampleDoc(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("xmllint", "--noout", "--dtdvalid", dtd, path).CombinedOutput(); err != nil {
		t.Fatalf("xmllint --dtdvalid: %v\n%s", err, out)
	}
	html, err := exec.Command("xsltproc", "/usr/share/nmap/nmap.xsl", path).Output()
	if err != nil {
		t.Fatalf("xsltproc: %v", err)
	}
	for _, want := range []string{"10.99.0.5", "OpenSSH", "9.2p1", "Linux 5.X"} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("rendered HTML lacks %q", want)
		}
	}
}

func TestCountPorts(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want int
	}{{"", 0}, {"22", 1}, {"22,80", 2}, {"1-1024", 1024}, {"22,8000-8009,443", 12}} {
		if got := countPorts(c.in); got != c.want {
			t.Errorf("countPorts(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}
