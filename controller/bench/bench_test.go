package bench

import (
	"math"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scanorama/scanorama/controller/jobs"
)

func TestJobNetworks(t *testing.T) {
	for _, n := range []int{1, 3, 4096, 4097, 10000, 65536} {
		nets, err := jobNetworks(n)
		if err != nil {
			t.Fatalf("jobNetworks(%d): %v", n, err)
		}
		total := 0
		next := leaseScope.Addr()
		for _, p := range nets {
			shards, err := jobs.Shard(p)
			if err != nil {
				t.Fatalf("jobNetworks(%d): %s does not shard: %v", n, p, err)
			}
			if p.Addr() != next || p.Masked() != p || !leaseScope.Contains(p.Addr()) {
				t.Fatalf("jobNetworks(%d): %s is not the next aligned block after the previous one (want %s)", n, p, next)
			}
			total += len(shards)
			next = lastAddr(p).Next()
		}
		if total != n {
			t.Fatalf("jobNetworks(%d) covers %d shards: %v", n, total, nets)
		}
	}
	if _, err := jobNetworks(1<<16 + 1); err == nil {
		t.Fatal("jobNetworks accepted more than 65536 jobs")
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func TestPercentile(t *testing.T) {
	s := make([]float64, 100)
	for i := range s {
		s[i] = float64(i + 1)
	}
	if p := percentile(s, 50); p != 50 {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(s, 99); p != 99 {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile([]float64{7}, 99); p != 7 {
		t.Errorf("p99 of one = %v", p)
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of nothing is not NaN")
	}
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}

func TestMet(t *testing.T) {
	cases := []struct {
		r    Result
		want string
	}{
		{Result{Value: f64(20), Baseline: f64(15), Ratio: f64(1.33), Goal: "≤ 1.5"}, "yes"},
		{Result{Value: f64(20), Baseline: f64(10), Ratio: f64(2), Goal: "≤ 1.5"}, "NO"},
		{Result{Value: f64(44), Baseline: f64(800), Ratio: f64(0.055), Goal: "≥ 0.5"}, "NO"},
		{Result{Value: f64(35), Goal: "< 200"}, "yes"},
		{Result{Value: f64(50), Goal: "< 50"}, "NO"},
		{Result{Value: f64(7), Goal: "-"}, "-"},
		{Result{Goal: "< 64"}, "-"},
	}
	for _, c := range cases {
		if got := c.r.Met(); got != c.want {
			t.Errorf("%+v: Met() = %q, want %q", c.r, got, c.want)
		}
	}
}

func TestSelect(t *testing.T) {
	all, err := Select("")
	if err != nil || len(all) != len(Groups()) {
		t.Fatalf("Select(all) = %v, %v", all, err)
	}
	sel, err := Select("dispatch_latency_p99_ms, ingest")
	if err != nil {
		t.Fatal(err)
	}
	if len(sel) != 2 || sel[0].Group.Name != "ingest" || len(sel[0].Metrics) != 2 ||
		sel[1].Group.Name != "dispatch" || strings.Join(sel[1].Metrics, ",") != "dispatch_latency_p99_ms" {
		t.Fatalf("Select = %+v", sel)
	}
	if _, err := Select("no_such_case"); err == nil || !strings.Contains(err.Error(), "ingest_vs_copy") {
		t.Fatalf("unknown case: %v", err)
	}
	for _, g := range Groups() {
		for _, m := range g.Metrics {
			if _, ok := metricMeta[m]; !ok {
				t.Errorf("no unit and goal for %s", m)
			}
		}
	}
}

func TestPortGen(t *testing.T) {
	g := portGen{hosts: 3, ports: 4000}
	a, b := g.host(1), g.host(1)
	if len(a) != 4000 || a[1234] != b[1234] {
		t.Fatal("host results are not deterministic")
	}
	open := 0
	for _, p := range a {
		if p.state == "open" {
			open++
		}
	}
	if open < 40 || open > 400 {
		t.Fatalf("%d of 4000 ports open; want a few percent", open)
	}
	r := g.results()
	if len(r.Batches) != 3 || r.Summary.GetHostsSent() != 3 || r.Summary.GetScannedTcp() != "1-4000" {
		t.Fatalf("results: %d batches, summary %v", len(r.Batches), r.Summary)
	}
}

func TestWriteJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench", "results.json")
	if err := WriteJSON(path, []Result{{Name: "x", Value: f64(1), Unit: "s", Goal: "< 2"}}); err != nil {
		t.Fatal(err)
	}
}

func TestMonthStarts(t *testing.T) {
	m := monthStarts(time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC), scaleMonths)
	if len(m) != 12 || !m[0].Equal(time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)) || !m[11].Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("monthStarts = %v", m)
	}
	for _, n := range scaleIngestNets {
		if o := n.Addr().As4()[2]; int(o) < scaleHoleLo || int(o) > scaleHoleHi || !scaleNetwork.Contains(n.Addr()) {
			t.Fatalf("ingest network %s is not in the dataset's hole", n)
		}
	}
}
