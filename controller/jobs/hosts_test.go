package jobs

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/scanorama/scanorama/agent/scanspec"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestHostJob(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		shard   string
		up      []netip.Addr
		excl    []netip.Prefix
		network string
		ex      []netip.Prefix
		none    bool
	}{
		{"one host", "10.99.0.0/24", addrs("10.99.0.7"), nil, "10.99.0.7/32", []netip.Prefix{}, false},
		{"two neighbours", "10.99.0.0/24", addrs("10.99.0.6", "10.99.0.7"), nil, "10.99.0.6/31", []netip.Prefix{}, false},
		{"spread", "10.99.0.0/24", addrs("10.99.0.10", "10.99.0.20"), nil, "10.99.0.0/27",
			prefixes("10.99.0.0/29", "10.99.0.8/31", "10.99.0.11/32", "10.99.0.12/30", "10.99.0.16/30", "10.99.0.21/32", "10.99.0.22/31", "10.99.0.24/29"), false},
		{"ends of the shard", "10.99.0.0/24", addrs("10.99.0.0", "10.99.0.255"), nil, "10.99.0.0/24",
			prefixes("10.99.0.1/32", "10.99.0.2/31", "10.99.0.4/30", "10.99.0.8/29", "10.99.0.16/28", "10.99.0.32/27", "10.99.0.64/26",
				"10.99.0.128/26", "10.99.0.192/27", "10.99.0.224/28", "10.99.0.240/29", "10.99.0.248/30", "10.99.0.252/31", "10.99.0.254/32"), false},
		{"excluded host dropped", "10.99.0.0/24", addrs("10.99.0.7", "10.99.0.9"), prefixes("10.99.0.8/30"), "10.99.0.7/32", []netip.Prefix{}, false},
		{"all excluded", "10.99.0.0/24", addrs("10.99.0.7"), prefixes("10.99.0.0/24"), "", nil, true},
		{"IPv6", "2001:db8::/120", addrs("2001:db8::1", "2001:db8::3"), nil, "2001:db8::/126", prefixes("2001:db8::/128", "2001:db8::2/128"), false},
	}
	for _, tc := range cases {
		network, ex, ok := hostJob(netip.MustParsePrefix(tc.shard), tc.up, tc.excl)
		if ok == tc.none {
			t.Errorf("%s: ok = %v", tc.name, ok)
			continue
		}
		if tc.none {
			continue
		}
		if network.String() != tc.network || !slices.Equal(ex, tc.ex) {
			t.Errorf("%s: %s minus %v; want %s minus %v", tc.name, network, ex, tc.network, tc.ex)
		}
		// What is left to scan is exactly the kept hosts.
		want := 0
		for _, a := range tc.up {
			if !slices.ContainsFunc(tc.excl, func(e netip.Prefix) bool { return e.Contains(a) }) {
				want++
			}
		}
		if n := scanspec.HostCount([]netip.Prefix{network}, ex); n != uint64(want) {
			t.Errorf("%s: job covers %d addresses, want %d", tc.name, n, want)
		}
	}
}

func TestHostsIn(t *testing.T) {
	t.Parallel()
	hosts := addrs("10.99.0.1", "10.99.0.255", "10.99.1.0", "10.99.1.9", "10.99.2.1")
	got := hostsIn(hosts, netip.MustParsePrefix("10.99.1.0/24"))
	if !slices.Equal(got, addrs("10.99.1.0", "10.99.1.9")) {
		t.Fatalf("hostsIn = %v", got)
	}
	if got := hostsIn(hosts, netip.MustParsePrefix("10.99.3.0/24")); len(got) != 0 {
		t.Fatalf("hostsIn of an empty shard = %v", got)
	}
}
