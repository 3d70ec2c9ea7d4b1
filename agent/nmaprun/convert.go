package nmaprun

import (
	"net/netip"
	"strings"
	"time"

	nmap "github.com/Ullaakut/nmap/v3"
)

// convertHost reduces a decoded nmap host to a [Host]. It reports false when
// the element carries no parseable IPv4 or IPv6 address.
func convertHost(nh *nmap.Host) (Host, bool) {
	var h Host
	for _, a := range nh.Addresses {
		switch strings.ToLower(a.AddrType) {
		case "ipv4", "ipv6":
			if h.Address.IsValid() {
				continue
			}
			if addr, err := netip.ParseAddr(strings.TrimSpace(a.Addr)); err == nil {
				h.Address = addr
			}
		case "mac":
			if h.MAC == "" {
				h.MAC = cleanField(a.Addr)
				h.Vendor = cleanField(a.Vendor)
			}
		}
	}
	if !h.Address.IsValid() {
		return Host{}, false
	}

	h.Status = cleanField(nh.Status.State)
	h.Reason = cleanField(nh.Status.Reason)
	for _, hn := range nh.Hostnames {
		if name := cleanField(hn.Name); name != "" {
			h.Hostname = name
			break
		}
	}
	h.OSName, h.OSFamily, h.OSAccuracy = bestOS(nh.OS.Matches)
	h.StartTime = unixTime(nh.StartTime)
	h.EndTime = unixTime(nh.EndTime)
	h.Scripts = convertScripts(nh.HostScripts)

	if len(nh.Ports) > 0 {
		h.Ports = make([]Port, 0, len(nh.Ports))
	}
	for _, p := range nh.Ports {
		h.Ports = append(h.Ports, Port{
			Protocol:    cleanField(strings.ToLower(p.Protocol)),
			Port:        p.ID,
			State:       cleanField(p.State.State),
			Reason:      cleanField(p.State.Reason),
			ServiceName: cleanField(p.Service.Name),
			Product:     cleanField(p.Service.Product),
			Version:     cleanField(p.Service.Version),
			ExtraInfo:   cleanField(p.Service.ExtraInfo),
			Tunnel:      cleanField(p.Service.Tunnel),
			Scripts:     convertScripts(p.Scripts),
		})
	}
	return h, true
}

// bestOS returns the name, family and accuracy of the most accurate OS
// match (the first one on ties, which is nmap's own order). The family comes
// from the match's most accurate OS class.
func bestOS(ms []nmap.OSMatch) (name, family string, accuracy int) {
	best := -1
	for i, m := range ms {
		if best < 0 || m.Accuracy > ms[best].Accuracy {
			best = i
		}
	}
	if best < 0 {
		return "", "", 0
	}
	m := ms[best]
	bestClass := -1
	for i, c := range m.Classes {
		if bestClass < 0 || c.Accuracy > m.Classes[bestClass].Accuracy {
			bestClass = i
		}
	}
	if bestClass >= 0 {
		family = cleanField(m.Classes[bestClass].Family)
	}
	return cleanField(m.Name), family, min(max(m.Accuracy, 0), 100)
}

func convertScripts(ss []nmap.Script) []Script {
	if len(ss) == 0 {
		return nil
	}
	out := make([]Script, 0, min(len(ss), maxScripts))
	for _, s := range ss[:min(len(ss), maxScripts)] {
		out = append(out, Script{ID: cleanField(s.ID), Output: cleanOutput(s.Output)})
	}
	return out
}

func unixTime(ts nmap.Timestamp) time.Time {
	t := time.Time(ts)
	if t.IsZero() || t.Unix() <= 0 {
		return time.Time{}
	}
	return t.UTC()
}
