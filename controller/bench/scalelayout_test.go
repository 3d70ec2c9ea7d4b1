package bench

import (
	"net/netip"
	"strings"
	"testing"
)

func TestScaleLayout(t *testing.T) {
	t.Parallel()
	type site struct {
		name   string
		target string
		first  int64
		hosts  int64
	}
	for _, tc := range []struct {
		name         string
		hosts, sites int
		want         []site
		err          string
	}{
		{name: "designed size", hosts: 1_000_000, sites: 4, want: []site{
			{"bench", "10.99.0.0/16", 0, 64512},
			{"bench-v6-1", "2001:db8:0:1::/108", 64512, 311830},
			{"bench-v6-2", "2001:db8:0:2::/108", 376342, 311829},
			{"bench-v6-3", "2001:db8:0:3::/108", 688171, 311829},
		}},
		{name: "quick check", hosts: 20000, sites: 3, want: []site{
			{"bench", "10.99.0.0/16", 0, 6666},
			{"bench-v6-1", "2001:db8:0:1::/108", 6666, 6667},
			{"bench-v6-2", "2001:db8:0:2::/108", 13333, 6667},
		}},
		{name: "one IPv4 site, full", hosts: 64512, sites: 1, want: []site{{"bench", "10.99.0.0/16", 0, 64512}}},
		{name: "one site cannot hold more than its /16", hosts: 64513, sites: 1, err: "--scale-hosts 64513 needs more than one site"},
		{name: "no sites", hosts: 1000, sites: 0, err: "--scale-sites must be 1..256"},
		{name: "too few hosts for a full block a site", hosts: 511, sites: 2, err: "--scale-hosts must be at least 512"},
		{name: "more than the sites hold", hosts: 64512 + 1<<20 + 1, sites: 2, err: "does not fit in 2 sites"},
		{name: "exactly what two sites hold", hosts: 64512 + 1<<20, sites: 2, want: []site{
			{"bench", "10.99.0.0/16", 0, 64512},
			{"bench-v6-1", "2001:db8:0:1::/108", 64512, 1 << 20},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := scaleLayout(tc.hosts, tc.sites)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("scaleLayout(%d, %d) error %v, want %q", tc.hosts, tc.sites, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d sites, want %d", len(got), len(tc.want))
			}
			var sum int64
			for i, w := range tc.want {
				g := got[i]
				if g.No != i || g.Name != w.name || g.Target.String() != w.target || g.First != w.first || g.Hosts != w.hosts {
					t.Errorf("site %d = %+v, want %+v", i, g, w)
				}
				sum += g.Hosts
				// Every host address lies in the site's target, inside
				// the test/documentation ranges.
				for _, l := range []int64{0, g.Hosts - 1} {
					a := g.Addr(l)
					if !g.Target.Contains(a) {
						t.Errorf("site %s host %d: %s outside %s", g.Name, l, a, g.Target)
					}
				}
			}
			if sum != int64(tc.hosts) {
				t.Errorf("sites hold %d hosts, want %d", sum, tc.hosts)
			}
		})
	}
}

func TestScaleSiteAddr(t *testing.T) {
	t.Parallel()
	v4 := scaleSite{Name: "bench", Target: scaleNetwork, Hosts: scaleMaxV4Hosts}
	v6 := scaleSite{No: 1, Name: "bench-v6-1", Target: netip.MustParsePrefix("2001:db8:0:1::/108"), Hosts: 1 << 20}
	for _, tc := range []struct {
		site  scaleSite
		l     int64
		addr  string
		block string // the job network of l's block
	}{
		{v4, 0, "10.99.0.0", "10.99.0.0/24"},
		{v4, 255, "10.99.0.255", "10.99.0.0/24"},
		{v4, 256, "10.99.1.0", "10.99.1.0/24"},
		{v4, scaleHoleFirst - 1, "10.99.19.255", "10.99.19.0/24"},
		// the ingest /24s 10.99.20-23.0/24 hold no hosts
		{v4, scaleHoleFirst, "10.99.24.0", "10.99.24.0/24"},
		{v4, scaleMaxV4Hosts - 1, "10.99.255.255", "10.99.255.0/24"},
		{v6, 0, "2001:db8:0:1::", "2001:db8:0:1::/120"},
		{v6, 255, "2001:db8:0:1::ff", "2001:db8:0:1::/120"},
		{v6, 256, "2001:db8:0:1::100", "2001:db8:0:1::100/120"},
		{v6, 65536, "2001:db8:0:1::1:0", "2001:db8:0:1::1:0/120"},
		{v6, 1<<20 - 1, "2001:db8:0:1::f:ffff", "2001:db8:0:1::f:ff00/120"},
	} {
		t.Run(tc.site.Name+"/"+tc.addr, func(t *testing.T) {
			t.Parallel()
			if got := tc.site.Addr(tc.l); got.String() != tc.addr {
				t.Errorf("Addr(%d) = %s, want %s", tc.l, got, tc.addr)
			}
			if got := tc.site.BlockPrefix(tc.l / scaleBlock); got.String() != tc.block {
				t.Errorf("BlockPrefix(%d) = %s, want %s", tc.l/scaleBlock, got, tc.block)
			}
			for _, n := range scaleIngestNets {
				if n.Contains(tc.site.Addr(tc.l)) {
					t.Errorf("Addr(%d) = %s is inside the ingest network %s", tc.l, tc.site.Addr(tc.l), n)
				}
			}
		})
	}
}

func TestScaleSiteBlocks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		hosts      int64
		blocks     int64
		fullBlocks int
	}{
		{256, 1, 1},
		{257, 2, 1},
		{6666, 27, 26},
		{scaleMaxV4Hosts, 252, 252},
	} {
		s := scaleSite{Name: "bench", Target: scaleNetwork, Hosts: tc.hosts}
		if got := s.Blocks(); got != tc.blocks {
			t.Errorf("%d hosts: Blocks() = %d, want %d", tc.hosts, got, tc.blocks)
		}
		full := s.FullBlocks()
		if len(full) != tc.fullBlocks {
			t.Errorf("%d hosts: %d full blocks, want %d", tc.hosts, len(full), tc.fullBlocks)
		}
		for _, p := range full {
			for _, n := range scaleIngestNets {
				if p.Overlaps(n) {
					t.Errorf("%d hosts: full block %s overlaps the ingest network %s", tc.hosts, p, n)
				}
			}
		}
	}
}
