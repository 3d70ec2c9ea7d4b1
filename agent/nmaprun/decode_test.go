package nmaprun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.json golden files from the decoder's output")

// golden is what a testdata/NAME.json file holds for testdata/NAME.xml.
type golden struct {
	Hosts    []Host
	Summary  Summary
	Progress []int
	Error    string `json:",omitempty"`
}

func decodeFile(t *testing.T, path string) (golden, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := &recorder{}
	sum, err := Decode(t.Context(), f, 0, rec)
	g := golden{Hosts: rec.hosts, Summary: sum, Progress: rec.progress}
	if err != nil {
		g.Error = err.Error()
	}
	return g, err
}

// TestDecodeGolden decodes every testdata/*.xml file and compares the hosts,
// summary, progress and error with testdata/*.json (go test -update rewrites
// them; review the diff).
func TestDecodeGolden(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, xmlPath := range files {
		t.Run(filepath.Base(xmlPath), func(t *testing.T) {
			t.Parallel()
			got, _ := decodeFile(t, xmlPath)
			gotJSON, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			gotJSON = append(gotJSON, '\n')
			jsonPath := strings.TrimSuffix(xmlPath, ".xml") + ".json"
			if *update {
				if err := os.WriteFile(jsonPath, gotJSON, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(jsonPath)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(gotJSON, want) {
				t.Fatalf("decoded %s differs from %s:\n%s", xmlPath, jsonPath, gotJSON)
			}
		})
	}
}

// TestDecodeFiles checks the important facts of each testdata file
// explicitly, independent of the golden files.
func TestDecodeFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file      string
		wantErr   error // nil for success
		hosts     int
		check     func(t *testing.T, g golden)
		wantTotal int
	}{
		{file: "connect_open_closed.xml", hosts: 1, wantTotal: 1, check: func(t *testing.T, g golden) {
			h := g.Hosts[0]
			if h.Address != netip.MustParseAddr("127.0.0.1") || h.Status != "up" || h.Reason != "localhost-response" {
				t.Errorf("host = %+v", h)
			}
			states := map[string]int{}
			for _, p := range h.Ports {
				states[p.State]++
				if p.Protocol != "tcp" || p.Port == 0 {
					t.Errorf("port = %+v", p)
				}
			}
			if states["open"] != 2 || states["closed"] != 1 {
				t.Errorf("port states = %v", states)
			}
			if g.Summary.NmapVersion != "7.93" || g.Summary.ScannedTCP == "" || g.Summary.Exit != "success" {
				t.Errorf("summary = %+v", g.Summary)
			}
			if h.StartTime.IsZero() || h.EndTime.Before(h.StartTime) {
				t.Errorf("times = %v %v", h.StartTime, h.EndTime)
			}
		}},
		{file: "service_banner_script.xml", hosts: 1, wantTotal: 1, check: func(t *testing.T, g golden) {
			p := g.Hosts[0].Ports[0]
			if p.ServiceName != "ssh" || p.Product != "OpenSSH" || p.Version != "9.2p1 Debian 2+deb12u3" ||
				p.ExtraInfo != "protocol 2.0" || len(p.Scripts) != 1 || p.Scripts[0].ID != "banner" ||
				p.Scripts[0].Output != "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3" {
				t.Errorf("port = %+v", p)
			}
		}},
		{file: "ipv6_localhost.xml", hosts: 1, wantTotal: 1, check: func(t *testing.T, g golden) {
			if a := g.Hosts[0].Address; a != netip.IPv6Loopback() {
				t.Errorf("address = %v", a)
			}
		}},
		{file: "udp_open_filtered.xml", hosts: 1, wantTotal: 1, check: func(t *testing.T, g golden) {
			for _, p := range g.Hosts[0].Ports {
				if p.Protocol != "udp" || p.State != "open|filtered" {
					t.Errorf("port = %+v", p)
				}
			}
			if g.Summary.ScannedUDP == "" || g.Summary.ScannedTCP != "" {
				t.Errorf("summary = %+v", g.Summary)
			}
		}},
		{file: "multi_host.xml", hosts: 3, wantTotal: 3},
		{file: "no_open_ports.xml", hosts: 1, wantTotal: 1, check: func(t *testing.T, g golden) {
			for _, p := range g.Hosts[0].Ports {
				if p.State != "closed" {
					t.Errorf("port = %+v", p)
				}
			}
		}},
		{file: "progress_connect_scan_delay.xml", hosts: 1, wantTotal: 1, check: func(t *testing.T, g golden) {
			if len(g.Progress) < 5 {
				t.Errorf("expected intermediate progress, got %v", g.Progress)
			}
		}},
		{file: "progress_service_nse.xml", hosts: 1, wantTotal: 1},
		{file: "syn_os_mac_scripts.xml", hosts: 2, wantTotal: 2, check: func(t *testing.T, g golden) {
			h := g.Hosts[0]
			if h.MAC != "00:25:90:AB:CD:EF" || h.Vendor != "Super Micro Computer" || h.OSName != "Linux 4.15 - 5.6" ||
				h.OSFamily != "Linux" || h.OSAccuracy != 100 {
				t.Errorf("host = %+v", h)
			}
			if len(h.Scripts) != 1 || h.Scripts[0].ID != "smb-os-discovery" || !strings.Contains(h.Scripts[0].Output, "\n  Computer name: files") {
				t.Errorf("host scripts = %+v", h.Scripts)
			}
			if len(h.Ports) != 3 || h.Ports[1].Tunnel != "ssl" || h.Ports[1].Scripts[0].ID != "ssl-cert" {
				t.Errorf("ports = %+v", h.Ports)
			}
			if h2 := g.Hosts[1]; len(h2.Ports) != 0 || h2.OSName != "" || h2.Vendor != "Raspberry Pi Foundation" {
				t.Errorf("second host = %+v", h2)
			}
		}},
		{file: "ping_sweep_up_down.xml", hosts: 8, wantTotal: 8, check: func(t *testing.T, g golden) {
			up := 0
			for _, h := range g.Hosts {
				if h.Status == "up" {
					up++
				} else if h.Status != "down" || h.Reason != "no-response" {
					t.Errorf("host = %+v", h)
				}
			}
			if up != 3 || g.Summary.HostsUp != 3 || g.Summary.HostsDown != 5 {
				t.Errorf("up = %d, summary = %+v", up, g.Summary)
			}
		}},
		{file: "truncated_mid_host.xml", wantErr: ErrTruncated, hosts: 2, check: func(t *testing.T, g golden) {
			if g.Hosts[1].Address != netip.MustParseAddr("127.0.0.2") {
				t.Errorf("last complete host = %v", g.Hosts[1].Address)
			}
		}},
		{file: "nse_error.xml", wantErr: ErrNmapFailed, hosts: 0, check: func(t *testing.T, g golden) {
			if !strings.Contains(g.Error, "'nonexistent-script' did not match a category") {
				t.Errorf("error = %q", g.Error)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			g, err := decodeFile(t, filepath.Join("testdata", tt.file))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Decode error = %v, want %v", err, tt.wantErr)
			}
			if len(g.Hosts) != tt.hosts || g.Summary.HostsReported != tt.hosts {
				t.Fatalf("got %d hosts (reported %d), want %d", len(g.Hosts), g.Summary.HostsReported, tt.hosts)
			}
			if g.Summary.HostsTotal != tt.wantTotal {
				t.Errorf("HostsTotal = %d, want %d", g.Summary.HostsTotal, tt.wantTotal)
			}
			checkProgress(t, g.Progress, err == nil)
			if tt.check != nil {
				tt.check(t, g)
			}
		})
	}
}

const minimalRun = `<?xml version="1.0"?><nmaprun args="nmap -sn" version="7.93">%s` +
	`<runstats><finished elapsed="1.50" exit="success"/><hosts up="1" down="0" total="1"/></runstats></nmaprun>`

func hostXML(addr string) string {
	return `<host><status state="up" reason="echo-reply"/><address addr="` + addr + `" addrtype="ipv4"/></host>`
}

func TestDecodeEdgeCases(t *testing.T) {
	t.Parallel()
	run := func(body string) string { return strings.Replace(minimalRun, "%s", body, 1) }
	tests := []struct {
		name      string
		in        string
		failAt    int
		wantHosts int
		wantErr   string
		wantIs    error
	}{
		{name: "minimal", in: run(hostXML("192.0.2.1")), wantHosts: 1},
		{name: "empty input", in: "", wantErr: "no nmap XML output"},
		{name: "not xml", in: "nmap: unrecognized option", wantErr: "no nmap XML output"},
		{name: "wrong root", in: "<html><body/></html>", wantErr: "unexpected root element <html>"},
		{name: "header only", in: `<?xml version="1.0"?><nmaprun>`, wantIs: ErrTruncated},
		{name: "no runstats", in: `<nmaprun></nmaprun>`, wantErr: "no run statistics"},
		{name: "exit error without message", in: `<nmaprun><runstats><finished exit="error"/></runstats></nmaprun>`, wantIs: ErrNmapFailed},
		{name: "host without address is skipped", in: run(`<host><status state="up"/></host>` + hostXML("192.0.2.2")), wantHosts: 1},
		{name: "host with mac only is skipped", in: run(`<host><address addr="00:11:22:33:44:55" addrtype="mac"/></host>`), wantHosts: 0},
		{name: "malformed address is skipped", in: run(`<host><address addr="999.1.1.1" addrtype="ipv4"/></host>`), wantHosts: 0},
		{name: "syntax error", in: run(`<host><address addr="x"></host>`), wantErr: "decoding <host>"},
		{name: "bad attribute value", in: run(`<taskprogress task="Ping Scan" percent="lots"/>`), wantErr: "decoding <taskprogress>"},
		{name: "trailing garbage after nmaprun ignored", in: run(hostXML("192.0.2.1")) + "\n<garbage", wantHosts: 1},
		{name: "unknown elements skipped", in: run(`<output type="interactive">hello</output><future><x/></future>` + hostXML("192.0.2.1")), wantHosts: 1},
		{name: "consumer aborts", in: run(hostXML("192.0.2.1") + hostXML("192.0.2.2") + hostXML("192.0.2.3")), failAt: 2, wantHosts: 1, wantIs: errAbort},
		{name: "oversized element", in: run(`<prescript>` + strings.Repeat("x", maxTokenBytes+64<<10) + `</prescript>`), wantIs: errTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{failAt: tt.failAt}
			_, err := Decode(t.Context(), strings.NewReader(tt.in), 0, rec)
			switch {
			case tt.wantErr == "" && tt.wantIs == nil:
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
			case err == nil:
				t.Fatalf("Decode succeeded, want error %q %v", tt.wantErr, tt.wantIs)
			case tt.wantIs != nil && !errors.Is(err, tt.wantIs):
				t.Fatalf("Decode error %v, want errors.Is %v", err, tt.wantIs)
			case !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Decode error %q, want it to contain %q", err, tt.wantErr)
			}
			if len(rec.hosts) != tt.wantHosts {
				t.Fatalf("got %d hosts, want %d", len(rec.hosts), tt.wantHosts)
			}
			checkProgress(t, rec.progress, err == nil)
		})
	}
}

func TestDecodeSummary(t *testing.T) {
	t.Parallel()
	in := strings.Replace(minimalRun, "%s", `<scaninfo type="udp" protocol="udp" services="53,161"/>`, 1)
	sum, err := Decode(t.Context(), strings.NewReader(in), 0, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Elapsed != 1500*time.Millisecond || sum.NmapVersion != "7.93" || sum.ScannedUDP != "53,161" ||
		sum.HostsUp != 1 || sum.HostsTotal != 1 || len(sum.Args) != 1 || sum.Args[0] != "-sn" {
		t.Fatalf("summary = %+v", sum)
	}
}

func TestDecodeContextCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	body := strings.Repeat(hostXML("192.0.2.1"), 5)
	rec := &recorder{onHost: func(Host) { cancel() }}
	_, err := Decode(ctx, strings.NewReader(strings.Replace(minimalRun, "%s", body, 1)), 0, rec)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Decode error = %v, want context.Canceled", err)
	}
	if len(rec.hosts) != 1 {
		t.Fatalf("decoded %d hosts after cancel, want 1", len(rec.hosts))
	}
}

func TestDecodeNilEvents(t *testing.T) {
	t.Parallel()
	if _, err := Decode(t.Context(), strings.NewReader(""), 0, nil); err == nil {
		t.Fatal("want error for nil Events")
	}
}

// hostStream generates an endless-looking nmap document with n hosts
// without holding it in memory.
type hostStream struct {
	n, i int
	buf  []byte
}

func (s *hostStream) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		switch {
		case s.i == 0:
			s.buf = []byte(`<nmaprun args="nmap -sn" version="7.93">`)
		case s.i <= s.n:
			s.buf = []byte(hostXML(netip.AddrFrom4([4]byte{10, byte(s.i >> 16), byte(s.i >> 8), byte(s.i)}).String()))
		case s.i == s.n+1:
			s.buf = []byte(`<runstats><finished exit="success"/><hosts up="1" total="1"/></runstats></nmaprun>`)
		default:
			return 0, io.EOF
		}
		s.i++
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// TestDecodeStreamsHosts checks that hosts are handed over one at a time
// while the input is read: the decoder must not buffer the document.
func TestDecodeStreamsHosts(t *testing.T) {
	t.Parallel()
	const n = 100_000
	src := &hostStream{n: n}
	ev := &streamEvents{t: t, src: src}
	if _, err := Decode(t.Context(), src, n, ev); err != nil {
		t.Fatal(err)
	}
	if ev.hosts != n {
		t.Fatalf("delivered %d hosts, want %d", ev.hosts, n)
	}
	checkProgress(t, ev.progress, true)
	if len(ev.progress) < 90 {
		t.Fatalf("progress too coarse for a known host count: %v", ev.progress)
	}
}

// streamEvents counts hosts without keeping them and checks how far the
// source has been read ahead of the delivered hosts.
type streamEvents struct {
	t        *testing.T
	src      *hostStream
	hosts    int
	progress []int
}

func (s *streamEvents) Host(context.Context, Host) error {
	s.hosts++
	if ahead := s.src.i - s.hosts; ahead > 100 {
		s.t.Fatalf("decoder read %d hosts ahead of delivery", ahead)
	}
	return nil
}

func (s *streamEvents) Progress(p int) { s.progress = append(s.progress, p) }
