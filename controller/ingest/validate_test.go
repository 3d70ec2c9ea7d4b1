package ingest

import (
	"net/netip"
	"strings"
	"testing"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

func TestValidateHost(t *testing.T) {
	t.Parallel()
	sc := scope{
		network:    netip.MustParsePrefix("10.99.60.0/24"),
		exclusions: []netip.Prefix{netip.MustParsePrefix("10.99.60.128/25")},
	}
	host := func(mod func(h *pb.HostResult)) *pb.HostResult {
		h := &pb.HostResult{
			Address: "10.99.60.10", Status: "up", Reason: "syn-ack", OsAccuracy: 90,
			Ports: []*pb.PortResult{{Protocol: "tcp", Port: 22, State: "open", ServiceName: "ssh"}},
		}
		if mod != nil {
			mod(h)
		}
		return h
	}
	tests := []struct {
		name      string
		host      *pb.HostResult
		wantField string // "" means valid
		wantText  string
	}{
		{"valid", host(nil), "", ""},
		{"valid udp", host(func(h *pb.HostResult) { h.Ports[0].Protocol = "udp" }), "", ""},
		{"valid down without ports", host(func(h *pb.HostResult) { h.Status, h.Ports = "down", nil }), "", ""},
		{"valid MAC", host(func(h *pb.HostResult) { h.MacAddress = "02:00:5e:10:00:01" }), "", ""},
		{"IPv4-mapped IPv6 is the IPv4 address", host(func(h *pb.HostResult) { h.Address = "::ffff:10.99.60.10" }), "", ""},
		{"not an address", host(func(h *pb.HostResult) { h.Address = "10.99.60" }), "hosts[3].address", "not an IP address"},
		{"outside the network", host(func(h *pb.HostResult) { h.Address = "10.99.61.1" }), "hosts[3].address", "outside the job's network"},
		{"excluded", host(func(h *pb.HostResult) { h.Address = "10.99.60.200" }), "hosts[3].address", "excluded"},
		{"bad status", host(func(h *pb.HostResult) { h.Status = "maybe" }), "hosts[3].status", "up or down"},
		{"down with ports", host(func(h *pb.HostResult) { h.Status = "down" }), "hosts[3].ports", "down has no ports"},
		{"short MAC", host(func(h *pb.HostResult) { h.MacAddress = "02:00:5e" }), "hosts[3].mac_address", "48-bit"},
		{"os accuracy over 100", host(func(h *pb.HostResult) { h.OsAccuracy = 101 }), "hosts[3].os_accuracy", "0..100"},
		{"hostname too long", host(func(h *pb.HostResult) { h.Hostname = strings.Repeat("h", 256) }), "hosts[3].hostname", "longer than"},
		{"reason not UTF-8", host(func(h *pb.HostResult) { h.Reason = "\xff" }), "hosts[3].reason", "UTF-8"},
		{"sctp is not scanned by any profile", host(func(h *pb.HostResult) { h.Ports[0].Protocol = "sctp" }), "hosts[3].ports[0].protocol", "tcp or udp"},
		{"port 0", host(func(h *pb.HostResult) { h.Ports[0].Port = 0 }), "hosts[3].ports[0].port", "1..65535"},
		{"port 65536", host(func(h *pb.HostResult) { h.Ports[0].Port = 65536 }), "hosts[3].ports[0].port", "1..65535"},
		{"bad state", host(func(h *pb.HostResult) { h.Ports[0].State = "ajar" }), "hosts[3].ports[0].state", "unknown state"},
		{"same port twice", host(func(h *pb.HostResult) {
			h.Ports = append(h.Ports, &pb.PortResult{Protocol: "tcp", Port: 22, State: "closed"})
		}), "hosts[3].ports[1].port", "reported twice"},
		{"same number on tcp and udp", host(func(h *pb.HostResult) {
			h.Ports = append(h.Ports, &pb.PortResult{Protocol: "udp", Port: 22, State: "open|filtered"})
		}), "", ""},
		{"script output too long", host(func(h *pb.HostResult) {
			h.Ports[0].Scripts = []*pb.ScriptResult{{Id: "banner", Output: strings.Repeat("x", maxScriptOut+1)}}
		}), "hosts[3].ports[0].scripts[0].output", "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			row, ports, fe := validateHost(3, tt.host, sc)
			if tt.wantField == "" {
				if fe != nil {
					t.Fatalf("unexpected error %v", fe)
				}
				if !sc.network.Contains(row.ip) || row.ip.Is4In6() {
					t.Errorf("row address %s", row.ip)
				}
				if len(ports) != len(tt.host.GetPorts()) {
					t.Errorf("%d port rows for %d ports", len(ports), len(tt.host.GetPorts()))
				}
				return
			}
			if fe == nil {
				t.Fatalf("accepted; want an error on %s", tt.wantField)
			}
			if fe.Field != tt.wantField || !strings.Contains(fe.Description, tt.wantText) {
				t.Errorf("error %q: %q; want %q containing %q", fe.Field, fe.Description, tt.wantField, tt.wantText)
			}
		})
	}
}
