package bench

import (
	"fmt"
	"net/netip"
)

// The scale dataset's sites and where their hosts live. A million hosts do
// not fit in the IPv4 test ranges, so the first site ("bench") keeps the
// IPv4 /16 the ingest case streams into and every other site holds its
// hosts in its own /108 of the IPv6 documentation prefix 2001:db8::/32
// (rows only: nothing is ever probed). A /108 is the largest IPv6 target
// the product accepts (4096 shards of /120, jobs.Shard), so each IPv6 site
// is one target whose jobs are /120s of 256 hosts, as a /24 is for IPv4.
//
// Hosts have a dense global index g (0..hosts-1, site after site) that
// drives every per-host pattern of the generator (which ports are open,
// which changes happen), and a local index l inside their site that maps
// to an address offset from the site's base address.

const (
	scaleMaxV4Hosts = 1<<16 - 4*256 // 10.99.0.0/16 minus the four ingest /24s
	scaleMaxV6Hosts = 1 << 20       // one /108
	scaleBlock      = 256           // hosts of one job (a /24 or a /120)
	scaleV6Bits     = 108
	// scaleHoleFirst is the local index of the first host after the
	// ingest /24s' place (10.99.20.0/24 .. 10.99.23.0/24).
	scaleHoleFirst = scaleHoleLo * 256
	scaleHoleSize  = (scaleHoleHi - scaleHoleLo + 1) * 256
)

// scaleSite is one site of the dataset.
type scaleSite struct {
	No     int          // 0-based; 0 is the IPv4 site
	Name   string       // site name
	Target netip.Prefix // the target whose jobs scanned the hosts
	First  int64        // global index of the site's first host
	Hosts  int64
}

// V4 reports whether the site is the IPv4 one (whose addresses skip the
// ingest /24s).
func (s scaleSite) V4() bool { return s.Target.Addr().Is4() }

// JobBits is the prefix length of one job's network (/24 or /120).
func (s scaleSite) JobBits() int {
	if s.V4() {
		return 24
	}
	return 120
}

// Offset is local host l's address offset from the site's base address;
// the SQL twin is scaleOffsetSQL.
func (s scaleSite) Offset(l int64) int64 {
	if s.V4() && l >= scaleHoleFirst {
		return l + scaleHoleSize
	}
	return l
}

// Addr is local host l's address.
func (s scaleSite) Addr(l int64) netip.Addr {
	return addrAdd(s.Target.Addr(), uint64(s.Offset(l)))
}

// Blocks is the number of jobs a month of the site's hosts takes.
func (s scaleSite) Blocks() int64 { return (s.Hosts + scaleBlock - 1) / scaleBlock }

// BlockPrefix is block b's job network (block b holds local hosts
// b*256 .. b*256+255).
func (s scaleSite) BlockPrefix(b int64) netip.Prefix {
	return netip.PrefixFrom(s.Addr(b*scaleBlock), s.JobBits())
}

// FullBlocks are the job networks that hold 256 hosts (what the ListHosts
// read asks for).
func (s scaleSite) FullBlocks() []netip.Prefix {
	out := make([]netip.Prefix, 0, s.Hosts/scaleBlock)
	for b := range s.Hosts / scaleBlock {
		out = append(out, s.BlockPrefix(b))
	}
	return out
}

// scaleOffsetSQL is Offset in SQL, for local index expression l of a row
// of bench_scale_sites s.
func scaleOffsetSQL(l string) string {
	return fmt.Sprintf("(CASE WHEN s.v4 AND (%[1]s) >= %[2]d THEN (%[1]s) + %[3]d ELSE (%[1]s) END)", l, scaleHoleFirst, scaleHoleSize)
}

// scaleLayout spreads hosts over sites: the IPv4 site gets an even share
// (at most what its /16 holds), the IPv6 sites the rest, evenly.
func scaleLayout(hosts, sites int) ([]scaleSite, error) {
	switch {
	case sites < 1 || sites > 256:
		return nil, fmt.Errorf("--scale-sites must be 1..256, got %d", sites)
	case hosts < scaleBlock*sites:
		return nil, fmt.Errorf("--scale-hosts must be at least %d (256 a site for %d sites), got %d", scaleBlock*sites, sites, hosts)
	case sites == 1 && hosts > scaleMaxV4Hosts:
		return nil, fmt.Errorf("--scale-hosts %d needs more than one site: one site (IPv4 10.99.0.0/16) holds at most %d", hosts, scaleMaxV4Hosts)
	case sites > 1 && int64(hosts) > scaleMaxV4Hosts+int64(sites-1)*scaleMaxV6Hosts:
		return nil, fmt.Errorf("--scale-hosts %d does not fit in %d sites (at most %d)", hosts, sites, scaleMaxV4Hosts+int64(sites-1)*scaleMaxV6Hosts)
	}
	n0 := min(int64(hosts/sites), scaleMaxV4Hosts)
	if sites == 1 {
		n0 = int64(hosts)
	}
	out := []scaleSite{{No: 0, Name: "bench", Target: scaleNetwork, First: 0, Hosts: n0}}
	rest, next := int64(hosts)-n0, n0
	for k := 1; k < sites; k++ {
		n := rest / int64(sites-1)
		if int64(k-1) < rest%int64(sites-1) {
			n++
		}
		// 2001:db8:0:k::/108
		base := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, byte(k >> 8), byte(k)})
		out = append(out, scaleSite{No: k, Name: fmt.Sprintf("bench-v6-%d", k), Target: netip.PrefixFrom(base, scaleV6Bits), First: next, Hosts: n})
		next += n
	}
	return out, nil
}

// addrAdd is a + n (no wrap check: callers stay inside their prefix).
func addrAdd(a netip.Addr, n uint64) netip.Addr {
	b := a.As16()
	carry := n
	for i := 15; i >= 0 && carry > 0; i-- {
		sum := uint64(b[i]) + carry&0xff
		b[i] = byte(sum)
		carry = carry>>8 + sum>>8
	}
	out := netip.AddrFrom16(b)
	if a.Is4() {
		return out.Unmap()
	}
	return out
}
