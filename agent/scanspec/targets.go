package scanspec

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
)

// Limits enforced on target lists by [ValidateTargets] and [Args].
const (
	// MaxTargetEntries bounds the number of target or exclusion prefixes in
	// one call, which keeps the nmap command line well below ARG_MAX.
	MaxTargetEntries = 4096
	// MaxScanAddresses bounds the number of addresses one nmap run may
	// cover (an IPv4 /8). It stops an IPv6 /64 from turning into a scan that
	// can never finish.
	MaxScanAddresses = 1 << 24
)

// ValidateTargets checks a target list and its exclusions: at least one
// target, all prefixes valid, one address family only (IPv4-mapped IPv6
// addresses are rejected; use the IPv4 form), and between 1 and
// [MaxScanAddresses] addresses left after exclusions.
func ValidateTargets(targets, exclude []netip.Prefix) error {
	if len(targets) == 0 {
		return errors.New("targets: at least one target is required")
	}
	if len(targets) > MaxTargetEntries {
		return fmt.Errorf("targets: %d entries exceed the limit of %d", len(targets), MaxTargetEntries)
	}
	if len(exclude) > MaxTargetEntries {
		return fmt.Errorf("exclude: %d entries exceed the limit of %d", len(exclude), MaxTargetEntries)
	}
	is6 := targets[0].Addr().Is6()
	check := func(field string, ps []netip.Prefix) error {
		for _, p := range ps {
			switch {
			case !p.IsValid():
				return fmt.Errorf("%s: invalid prefix %q", field, p)
			case p.Addr().Is4In6():
				return fmt.Errorf("%s: IPv4-mapped address %s not supported, use the IPv4 form", field, p)
			case p.Addr().Is6() != is6:
				return fmt.Errorf("%s: %s mixes IPv4 and IPv6 (one nmap run scans one family)", field, p)
			}
		}
		return nil
	}
	if err := check("targets", targets); err != nil {
		return err
	}
	if err := check("exclude", exclude); err != nil {
		return err
	}
	n := HostCount(targets, exclude)
	if n == 0 {
		return errors.New("targets: every address is excluded")
	}
	if n > MaxScanAddresses {
		return fmt.Errorf("targets: %d addresses exceed the limit of %d", n, uint64(MaxScanAddresses))
	}
	return nil
}

// HostCount returns the number of distinct addresses covered by targets and
// not covered by exclude, saturating at math.MaxUint64. Invalid prefixes are
// ignored. Network and broadcast addresses count like any other address, as
// they do for nmap.
func HostCount(targets, exclude []netip.Prefix) uint64 {
	ts, xs := maximal(targets), maximal(exclude)
	var total uint64
	for _, t := range ts {
		size := prefixSize(t)
		for _, x := range xs {
			if !t.Overlaps(x) {
				continue
			}
			if x.Bits() <= t.Bits() { // x covers all of t
				size = 0
				break
			}
			size -= prefixSize(x) // x lies inside t; excludes are disjoint
		}
		total = satAdd(total, size)
	}
	return total
}

// maximal returns the masked valid prefixes of ps that are not contained in
// another one, sorted by address. CIDR blocks are either nested or disjoint,
// so the result is a set of pairwise disjoint prefixes covering the same
// addresses.
func maximal(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if p.IsValid() {
			out = append(out, p.Masked())
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
	kept := out[:0]
	for _, p := range out {
		if n := len(kept); n > 0 && kept[n-1].Bits() <= p.Bits() && kept[n-1].Contains(p.Addr()) {
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

func prefixSize(p netip.Prefix) uint64 {
	host := p.Addr().BitLen() - p.Bits()
	if host >= 64 {
		return math.MaxUint64
	}
	return 1 << host
}

func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

// formatPrefix renders a prefix as nmap expects it: a plain address for a
// single host, CIDR notation otherwise, with host bits cleared.
func formatPrefix(p netip.Prefix) string {
	p = p.Masked()
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}
