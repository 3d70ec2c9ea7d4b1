package ingest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"unicode/utf8"

	"github.com/scanorama/scanorama/controller/apierr"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Bounds on what one result row may carry. The schema enforces the same
// limits; checking here names the offending row instead of failing the commit.
const (
	maxReason    = 64
	maxShortText = 255
	maxOSFamily  = 100
	maxExtraInfo = 1024
	maxScriptID  = 64
	maxScriptOut = 64 << 10
)

var (
	// Only what scan profiles scan: ingest_commit closes ports by the job's
	// scanned tcp and udp sets (port_in_scanned_set), and an open sctp port
	// would stay open forever for want of a scanned set that closes it.
	knownProtocols = map[string]bool{"tcp": true, "udp": true}
	knownStates    = map[string]bool{
		"open": true, "closed": true, "filtered": true, "unfiltered": true,
		"open|filtered": true, "closed|filtered": true,
	}
)

// scope is what a job may report on: its network minus its exclusions.
type scope struct {
	network    netip.Prefix
	exclusions []netip.Prefix
}

func (s scope) check(a netip.Addr) string {
	if !s.network.Contains(a) {
		return fmt.Sprintf("address %s is outside the job's network %s", a, s.network)
	}
	for _, e := range s.exclusions {
		if e.Contains(a) {
			return fmt.Sprintf("address %s is excluded from scanning (%s)", a, e)
		}
	}
	return ""
}

type hostRow struct {
	ip                                 netip.Addr
	status                             string
	reason                             string
	mac                                net.HardwareAddr
	vendor, hostname, osName, osFamily string
	osAccuracy                         int16
}

type portRow struct {
	ip                            netip.Addr
	protocol                      string
	port                          int32
	state, reason                 string
	name, product, version, extra string
	scripts                       []byte
}

// text checks one bounded string. The field name is built only when the
// value is bad: this runs for every text field of every port row.
func text(field func() string, v string, limit int) *apierr.FieldError {
	if len(v) > limit {
		return apierr.Field(field(), "longer than %d bytes", limit)
	}
	if !utf8.ValidString(v) {
		return apierr.Field(field(), "not valid UTF-8")
	}
	return nil
}

// validateHost checks one host result and converts it to staging rows.
// idx is the host's position in the stream, used to name the field.
func validateHost(idx int, h *pb.HostResult, sc scope) (hostRow, []portRow, *apierr.FieldError) {
	f := func(name string) string { return fmt.Sprintf("hosts[%d].%s", idx, name) }
	addr, err := netip.ParseAddr(h.GetAddress())
	if err != nil {
		return hostRow{}, nil, apierr.Field(f("address"), "not an IP address: %q", h.GetAddress())
	}
	addr = addr.Unmap()
	if msg := sc.check(addr); msg != "" {
		return hostRow{}, nil, apierr.Field(f("address"), "%s", msg)
	}
	if h.GetStatus() != "up" && h.GetStatus() != "down" {
		return hostRow{}, nil, apierr.Field(f("status"), "must be up or down, got %q", h.GetStatus())
	}
	row := hostRow{
		ip: addr, status: h.GetStatus(), reason: h.GetReason(), vendor: h.GetVendor(),
		hostname: h.GetHostname(), osName: h.GetOsName(), osFamily: h.GetOsFamily(),
	}
	if h.GetMacAddress() != "" {
		mac, err := net.ParseMAC(h.GetMacAddress())
		if err != nil || len(mac) != 6 {
			return hostRow{}, nil, apierr.Field(f("mac_address"), "not a 48-bit MAC address: %q", h.GetMacAddress())
		}
		row.mac = mac
	}
	if a := h.GetOsAccuracy(); a < 0 || a > 100 {
		return hostRow{}, nil, apierr.Field(f("os_accuracy"), "must be 0..100, got %d", a)
	}
	row.osAccuracy = int16(h.GetOsAccuracy())
	for _, c := range []struct {
		name, v string
		limit   int
	}{
		{"reason", row.reason, maxReason}, {"vendor", row.vendor, maxShortText},
		{"hostname", row.hostname, maxShortText}, {"os_name", row.osName, maxShortText},
		{"os_family", row.osFamily, maxOSFamily},
	} {
		if fe := text(func() string { return f(c.name) }, c.v, c.limit); fe != nil {
			return hostRow{}, nil, fe
		}
	}
	if row.status == "down" && len(h.GetPorts()) > 0 {
		return hostRow{}, nil, apierr.Field(f("ports"), "a host that is down has no ports")
	}
	ports := make([]portRow, 0, len(h.GetPorts()))
	seen := make(map[[2]int32]bool, len(h.GetPorts()))
	for j, p := range h.GetPorts() {
		pf := func(name string) string { return fmt.Sprintf("hosts[%d].ports[%d].%s", idx, j, name) }
		if !knownProtocols[p.GetProtocol()] {
			return hostRow{}, nil, apierr.Field(pf("protocol"), "unknown protocol %q (tcp or udp)", p.GetProtocol())
		}
		if p.GetPort() < 1 || p.GetPort() > 65535 {
			return hostRow{}, nil, apierr.Field(pf("port"), "must be 1..65535, got %d", p.GetPort())
		}
		if !knownStates[p.GetState()] {
			return hostRow{}, nil, apierr.Field(pf("state"), "unknown state %q", p.GetState())
		}
		key := [2]int32{protoKey(p.GetProtocol()), p.GetPort()}
		if seen[key] {
			return hostRow{}, nil, apierr.Field(pf("port"), "%s/%d reported twice", p.GetProtocol(), p.GetPort())
		}
		seen[key] = true
		for _, c := range []struct {
			name, v string
			limit   int
		}{
			{"reason", p.GetReason(), maxReason}, {"service_name", p.GetServiceName(), maxShortText},
			{"service_product", p.GetServiceProduct(), maxShortText},
			{"service_version", p.GetServiceVersion(), maxShortText},
			{"service_extra_info", p.GetServiceExtraInfo(), maxExtraInfo},
		} {
			if fe := text(func() string { return pf(c.name) }, c.v, c.limit); fe != nil {
				return hostRow{}, nil, fe
			}
		}
		var scripts []byte
		if len(p.GetScripts()) > 0 {
			m := make(map[string]string, len(p.GetScripts()))
			for k, s := range p.GetScripts() {
				sf := func(part string) func() string {
					return func() string { return fmt.Sprintf("hosts[%d].ports[%d].scripts[%d].%s", idx, j, k, part) }
				}
				if fe := text(sf("id"), s.GetId(), maxScriptID); fe != nil {
					return hostRow{}, nil, fe
				}
				if fe := text(sf("output"), s.GetOutput(), maxScriptOut); fe != nil {
					return hostRow{}, nil, fe
				}
				m[s.GetId()] = s.GetOutput()
			}
			scripts, _ = json.Marshal(m)
		}
		ports = append(ports, portRow{
			ip: addr, protocol: p.GetProtocol(), port: p.GetPort(), state: p.GetState(), reason: p.GetReason(),
			name: p.GetServiceName(), product: p.GetServiceProduct(), version: p.GetServiceVersion(),
			extra: p.GetServiceExtraInfo(), scripts: scripts,
		})
	}
	return row, ports, nil
}

func protoKey(p string) int32 {
	switch p {
	case "tcp":
		return 0
	case "udp":
		return 1
	default:
		return 2
	}
}
