package nmaprun

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// writeLargeRun writes an nmap -oX document of at least size bytes: hosts
// in 198.18.0.0/15 with five ports each.
func writeLargeRun(w io.Writer, size int) error {
	bw := bufio.NewWriter(w)
	n, _ := fmt.Fprint(bw, `<?xml version="1.0"?><nmaprun scanner="nmap" args="nmap -sS 198.18.0.0/15" version="7.93" xmloutputversion="1.05">`+
		`<scaninfo type="syn" protocol="tcp" numservices="5" services="22,80,443,3306,8080"/>`+"\n")
	addr := netip.MustParseAddr("198.18.0.1")
	hosts := 0
	for n < size {
		m, err := fmt.Fprintf(bw, `<host><status state="up" reason="syn-ack" reason_ttl="63"/><address addr="%s" addrtype="ipv4"/><hostnames></hostnames><ports>`+
			`<port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="63"/><service name="ssh" product="OpenSSH" version="9.2p1" method="probed" conf="10"/></port>`+
			`<port protocol="tcp" portid="80"><state state="open" reason="syn-ack" reason_ttl="63"/><service name="http" product="nginx" version="1.22.1" method="probed" conf="10"/></port>`+
			`<port protocol="tcp" portid="443"><state state="closed" reason="reset" reason_ttl="63"/></port>`+
			`<port protocol="tcp" portid="3306"><state state="filtered" reason="no-response" reason_ttl="0"/></port>`+
			`<port protocol="tcp" portid="8080"><state state="open" reason="syn-ack" reason_ttl="63"/><service name="http-proxy" method="table" conf="3"/></port>`+
			"</ports></host>\n", addr)
		if err != nil {
			return err
		}
		n += m
		hosts++
		addr = addr.Next()
	}
	fmt.Fprintf(bw, `<runstats><finished time="1" elapsed="1.00" exit="success"/><hosts up="%d" down="0" total="%d"/></runstats></nmaprun>`+"\n", hosts, hosts)
	return bw.Flush()
}

type countHosts struct{ n int }

func (c *countHosts) Host(context.Context, Host) error { c.n++; return nil }
func (c *countHosts) Progress(int)                     {}

// Decode holds one host at a time: decoding a document many times larger
// than any host grows the live heap by a small fixed amount, not by the
// document's size. (This is what keeps an ImportResults of a 100 MB file
// bounded on the controller.)
// Not parallel: the heap is the process's, and parallel tests wait until
// the sequential ones are done.
func TestDecodeLargeInputBoundedHeap(t *testing.T) {
	const size = 16 << 20
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeLargeRun(pw, size)) }()
	var c countHosts
	sum, err := Decode(t.Context(), pr, 0, &c)
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	if c.n != sum.HostsUp || c.n < 10000 {
		t.Fatalf("decoded %d hosts, runstats say %d", c.n, sum.HostsUp)
	}
	growth := float64(int64(peak.Load())-int64(base.HeapInuse)) / (1 << 20)
	t.Logf("decoded %d MB, %d hosts: heap in use %.1f MB before, peak %.1f MB (growth %.1f MB)",
		size>>20, c.n, float64(base.HeapInuse)/(1<<20), float64(peak.Load())/(1<<20), growth)
	// GC lets garbage reach about twice the live heap (GOGC=100); live data
	// here is one host plus the decoder's buffers.
	if growth > 8 {
		t.Errorf("heap grew by %.1f MB decoding a %d MB document; want < 8 MB", growth, size>>20)
	}
}
