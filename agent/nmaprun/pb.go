package nmaprun

import pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"

// HostResult converts a host to the wire form results travel in: an
// agent's results stream, and the controller's import of nmap XML files.
func HostResult(h Host) *pb.HostResult {
	out := &pb.HostResult{
		Address: h.Address.String(), Status: h.Status, Reason: h.Reason, MacAddress: h.MAC, Vendor: h.Vendor,
		Hostname: h.Hostname, OsName: h.OSName, OsFamily: h.OSFamily, OsAccuracy: int32(h.OSAccuracy),
	}
	for _, p := range h.Ports {
		pr := &pb.PortResult{
			Protocol: p.Protocol, Port: int32(p.Port), State: p.State, Reason: p.Reason,
			ServiceName: p.ServiceName, ServiceProduct: p.Product, ServiceVersion: p.Version, ServiceExtraInfo: p.ExtraInfo,
		}
		for _, s := range p.Scripts {
			pr.Scripts = append(pr.Scripts, &pb.ScriptResult{Id: s.ID, Output: s.Output})
		}
		out.Ports = append(out.Ports, pr)
	}
	return out
}
