package scanspec

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxPortSpecLen bounds the length of a port specification string accepted by
// [ParsePorts]. The longest canonical spec (every other port listed) is far
// longer, but no sane administrator input is.
const MaxPortSpecLen = 16 << 10

// PortRange is an inclusive range of port numbers. A single port has
// Start == End.
type PortRange struct {
	Start, End uint16
}

// Count returns the number of ports in the range.
func (r PortRange) Count() int { return int(r.End) - int(r.Start) + 1 }

// String returns "N" for a single port and "A-B" otherwise.
func (r PortRange) String() string {
	if r.Start == r.End {
		return strconv.Itoa(int(r.Start))
	}
	return strconv.Itoa(int(r.Start)) + "-" + strconv.Itoa(int(r.End))
}

// PortSpec is a set of TCP and UDP ports. Values returned by [ParsePorts]
// hold each list sorted, merged and non-overlapping; the zero value is the
// empty set.
type PortSpec struct {
	TCP []PortRange
	UDP []PortRange
}

// ParsePorts parses an nmap-style port specification such as "22,80,8000-8100"
// or "T:22,U:53,161".
//
// Items are separated by commas; spaces around items are ignored. A "T:" or
// "U:" prefix (either case) selects the protocol for that item and every
// following item until the next prefix. Items before any prefix are TCP
// ports; use [ParsePortsFor] to treat them as UDP for UDP scans. Ports must
// lie in 1-65535; open-ended ranges ("1-", "-5"), reversed ranges and service
// names are rejected. The result is sorted and merged.
func ParsePorts(s string) (PortSpec, error) {
	return parsePorts(s, protoTCP)
}

// ParsePortsFor parses s like [ParsePorts], except that for [ScanUDP] items
// without a protocol prefix are UDP ports. For every other scan type it is
// identical to ParsePorts.
func ParsePortsFor(t ScanType, s string) (PortSpec, error) {
	if t == ScanUDP {
		return parsePorts(s, protoUDP)
	}
	return parsePorts(s, protoTCP)
}

type proto int

const (
	protoTCP proto = iota
	protoUDP
)

func parsePorts(s string, def proto) (PortSpec, error) {
	if len(s) > MaxPortSpecLen {
		return PortSpec{}, fmt.Errorf("port spec longer than %d bytes", MaxPortSpecLen)
	}
	if strings.TrimSpace(s) == "" {
		return PortSpec{}, fmt.Errorf("empty port spec")
	}
	var tcp, udp []PortRange
	cur := def
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if p, rest, ok := cutProtoPrefix(item); ok {
			cur, item = p, strings.TrimSpace(rest)
		} else if len(item) >= 2 && item[1] == ':' {
			return PortSpec{}, fmt.Errorf("unsupported protocol prefix %q in %q (use T: or U:)", item[:2], s)
		}
		if item == "" {
			return PortSpec{}, fmt.Errorf("empty item in %q", s)
		}
		r, err := parseRange(item, s)
		if err != nil {
			return PortSpec{}, err
		}
		if cur == protoUDP {
			udp = append(udp, r)
		} else {
			tcp = append(tcp, r)
		}
	}
	return PortSpec{TCP: mergeRanges(tcp), UDP: mergeRanges(udp)}, nil
}

func cutProtoPrefix(item string) (proto, string, bool) {
	if len(item) < 2 || item[1] != ':' {
		return 0, item, false
	}
	switch item[0] {
	case 'T', 't':
		return protoTCP, item[2:], true
	case 'U', 'u':
		return protoUDP, item[2:], true
	}
	return 0, item, false
}

func parseRange(item, spec string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(item, "-")
	if isRange && (lo == "" || hi == "") {
		return PortRange{}, fmt.Errorf("open-ended range %q in %q", item, spec)
	}
	start, err := parsePort(lo, spec)
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{Start: start, End: start}, nil
	}
	end, err := parsePort(hi, spec)
	if err != nil {
		return PortRange{}, err
	}
	if end < start {
		return PortRange{}, fmt.Errorf("reversed range %q in %q", item, spec)
	}
	return PortRange{Start: start, End: end}, nil
}

func parsePort(s, spec string) (uint16, error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("invalid port %q in %q", s, spec)
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %s out of range 1-65535 in %q", s, spec)
	}
	return uint16(n), nil
}

// mergeRanges sorts rs and merges overlapping and adjacent ranges. It returns
// nil for an empty input so that empty specs compare equal.
func mergeRanges(rs []PortRange) []PortRange {
	if len(rs) == 0 {
		return nil
	}
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b PortRange) int { return int(a.Start) - int(b.Start) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if int(r.Start) <= int(last.End)+1 {
			last.End = max(last.End, r.End)
			continue
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

// String returns the canonical form of the spec: "22,80,8000-8100" when only
// TCP ports are present, "U:53,161" when only UDP ports are, and
// "T:22,80,U:53" for both. The empty spec is "". The result parses back to an
// equal spec with [ParsePorts].
func (p PortSpec) String() string {
	tcp, udp := joinRanges(mergeRanges(p.TCP)), joinRanges(mergeRanges(p.UDP))
	switch {
	case udp == "":
		return tcp
	case tcp == "":
		return "U:" + udp
	default:
		return "T:" + tcp + ",U:" + udp
	}
}

func joinRanges(rs []PortRange) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(r.String())
	}
	return b.String()
}

// Count returns the number of distinct TCP plus UDP ports in the spec.
func (p PortSpec) Count() int {
	n := 0
	for _, r := range mergeRanges(p.TCP) {
		n += r.Count()
	}
	for _, r := range mergeRanges(p.UDP) {
		n += r.Count()
	}
	return n
}

// Empty reports whether the spec contains no port at all.
func (p PortSpec) Empty() bool { return len(p.TCP) == 0 && len(p.UDP) == 0 }

// Contains reports whether port is in the spec for proto, which is "tcp" or
// "udp" (case-insensitive). Other protocols contain nothing.
func (p PortSpec) Contains(proto string, port uint16) bool {
	var rs []PortRange
	switch strings.ToLower(proto) {
	case "tcp":
		rs = p.TCP
	case "udp":
		rs = p.UDP
	}
	for _, r := range rs {
		if r.Start <= port && port <= r.End {
			return true
		}
	}
	return false
}

// AsUDP returns a spec whose UDP set is the union of p's TCP and UDP sets and
// whose TCP set is empty. It converts a prefix-less spec parsed with
// [ParsePorts] for use with a UDP scan.
func (p PortSpec) AsUDP() PortSpec {
	return PortSpec{UDP: mergeRanges(append(slices.Clone(p.TCP), p.UDP...))}
}

// MarshalText implements [encoding.TextMarshaler] using the canonical form.
func (p PortSpec) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements [encoding.TextUnmarshaler]. Empty text yields the
// empty spec; anything else must be accepted by [ParsePorts].
func (p *PortSpec) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*p = PortSpec{}
		return nil
	}
	v, err := ParsePorts(string(text))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
