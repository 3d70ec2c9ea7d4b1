package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// genNmapXML writes an nmap -oX document of hosts in 198.18.0.0/15, each
// with five ports, until at least size bytes are written. It returns the
// number of hosts.
func genNmapXML(w io.Writer, size int64) (int, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := &countingWriter{w: bw}
	fmt.Fprint(cw, `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<nmaprun scanner="nmap" args="nmap -n -sS -p 22,80,443,3306,8080 198.18.0.0/15" start="1796187418" startstr="Wed Dec  2 04:56:58 2026" version="7.93" xmloutputversion="1.05">
<scaninfo type="syn" protocol="tcp" numservices="5" services="22,80,443,3306,8080"/>
<verbose level="0"/>
<debugging level="0"/>
`)
	addr := netip.MustParseAddr("198.18.0.1")
	hosts := 0
	for cw.n < size {
		fmt.Fprintf(cw, `<host starttime="1796187420" endtime="1796187421"><status state="up" reason="syn-ack" reason_ttl="63"/>
<address addr="%s" addrtype="ipv4"/>
<hostnames>
</hostnames>
<ports><port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="63"/><service name="ssh" product="OpenSSH" version="9.2p1 Debian 2+deb12u3" extrainfo="protocol 2.0" ostype="Linux" method="probed" conf="10"><cpe>cpe:/a:openbsd:openssh:9.2p1</cpe></service></port>
<port protocol="tcp" portid="80"><state state="open" reason="syn-ack" reason_ttl="63"/><service name="http" product="nginx" version="1.22.1" method="probed" conf="10"/></port>
<port protocol="tcp" portid="443"><state state="closed" reason="reset" reason_ttl="63"/><service name="https" method="table" conf="3"/></port>
<port protocol="tcp" portid="3306"><state state="filtered" reason="no-response" reason_ttl="0"/><service name="mysql" method="table" conf="3"/></port>
<port protocol="tcp" portid="8080"><state state="open" reason="syn-ack" reason_ttl="63"/><service name="http-proxy" method="table" conf="3"/></port>
</ports>
<times srtt="312" rttvar="104" to="100000"/>
</host>
`, addr)
		hosts++
		addr = addr.Next()
	}
	fmt.Fprintf(cw, `<runstats><finished time="1796187500" timestr="Wed Dec  2 04:58:20 2026" summary="Nmap done" elapsed="82.00" exit="success"/><hosts up="%d" down="0" total="%d"/>
</runstats>
</nmaprun>
`, hosts, hosts)
	return hosts, bw.Flush()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// procKB reads one "Name: N kB" line of /proc/PID/status.
func procKB(t *testing.T, pid int, name string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", name, pid)
	return 0
}

// A generated nmap XML file far larger than what the controller may hold
// streams through ImportResults in bounded memory: the controller's peak
// RSS while importing grows by much less than the file's size. The file is
// generated while it is sent and never exists whole, in the test or on
// disk. SCANORAMA_IMPORT_TEST_MB sets its size (default 6, small enough
// for make test on a loaded machine; the note on the issue records larger runs).
func TestImportLargeFileBoundedMemory(t *testing.T) {
	t.Parallel()
	size := int64(6)
	if v := os.Getenv("SCANORAMA_IMPORT_TEST_MB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > 110 {
			t.Fatalf("SCANORAMA_IMPORT_TEST_MB=%q: want 1..110", v)
		}
		size = n
	}
	size <<= 20
	s := newStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: "big", Network: "198.18.0.0/15", Ports: "22,80,443,3306,8080"})
	if err != nil {
		t.Fatal(err)
	}
	pid := s.ctrl.PID()
	// Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
	before := procKB(t, pid, "VmRSS")

	began := time.Now()
	st, err := s.admin.ImportResults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.ImportResultsRequest{Msg: &pb.ImportResultsRequest_Start{Start: &pb.ImportStart{Site: "lab", TargetId: tgt.GetTarget().GetId()}}}); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	gen := make(chan int, 1)
	go func() {
		n, err := genNmapXML(pw, size)
		pw.CloseWithError(err)
		gen <- n
	}()
	buf := make([]byte, 256<<10)
	for {
		n, err := io.ReadFull(pr, buf)
		if n > 0 {
			if serr := st.Send(&pb.ImportResultsRequest{Msg: &pb.ImportResultsRequest_Data{Data: append([]byte(nil), buf[:n]...)}}); serr != nil {
				break // the server ended the stream; CloseAndRecv says why
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	resp, err := st.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("import took %s", time.Since(began).Round(time.Millisecond))
	hosts := <-gen
	peak := procKB(t, pid, "VmHWM")
	growthMB := float64(peak-before) / 1024
	t.Logf("imported %d MB: %d hosts, %d port rows; controller RSS %.1f MB before, peak %.1f MB (growth %.1f MB)",
		size>>20, resp.GetHosts(), resp.GetPortRows(), float64(before)/1024, float64(peak)/1024, growthMB)
	if resp.GetHosts() != int64(hosts) || resp.GetPortRows() != 5*int64(hosts) {
		t.Fatalf("import: %d hosts, %d port rows; the file had %d hosts with 5 ports each", resp.GetHosts(), resp.GetPortRows(), hosts)
	}
	if n := s.count(`SELECT count(*) FROM services WHERE state = 'open'`); n != 3*hosts {
		t.Errorf("open services = %d, want %d", n, 3*hosts)
	}
	// Holding the file, or its rows, would grow the heap by a multiple of
	// its size. Streaming costs a fixed amount (the race detector's shadow
	// memory, gRPC and pgx buffers, one staging buffer, GC headroom: about
	// 30 MB here) plus the per-job duplicate set, a few bytes per host.
	if limit := 48 + float64(size>>20)/4; growthMB > limit {
		t.Errorf("controller peak RSS grew by %.1f MB importing a %d MB file; want < %.0f MB", growthMB, size>>20, limit)
	}
}
