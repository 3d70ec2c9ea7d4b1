// Package nmapxml owns Scanorama's nmap XML output: the <nmaprun> document
// ExportResults writes, shaped after nmap.dtd (nmap's data directory) so
// that nmap's own tools read it: xmllint --dtdvalid accepts it, nmap.xsl
// renders it, ndiff compares two of them.
//
// Only what Scanorama stored is claimed. Where the DTD requires a value that
// was never recorded, the writer uses the value nmap itself writes when it
// knows nothing: reason "unknown" and reason_ttl "0".
package nmapxml

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// XMLOutputVersion is the version of nmap's XML format the writer follows
// (nmap 7.x writes 1.05).
const XMLOutputVersion = "1.05"

// Run describes the scan (or the view of a site) a document reports.
type Run struct {
	// Args is the nmap command line the typed profile stands for, shown as
	// nmap shows its own; empty when the document is no single scan.
	Args    string
	Version string // nmap's version, when known
	Start   time.Time
	// ScanInfo lists what was scanned per protocol (nmap's <scaninfo>).
	ScanInfo []ScanInfo
	// End and Elapsed describe the end of the run (<runstats><finished>).
	End     time.Time
	Elapsed time.Duration
}

// ScanInfo is one <scaninfo>: the scan type and the ports of one protocol.
type ScanInfo struct {
	Type     string // syn, connect, udp, ... (nmap.dtd's scan_types)
	Protocol string // tcp, udp, sctp
	Services string // nmap's condensed port list, e.g. "22,80,8000-8100"
}

// Host is one host and its ports.
type Host struct {
	Addr       netip.Addr
	Status     string // up or down
	Reason     string
	MAC        string
	Vendor     string
	Hostname   string
	OSName     string
	OSAccuracy int
	Ports      []Port
}

// Port is one port of a host.
type Port struct {
	Protocol  string
	Port      int32
	State     string
	Reason    string
	Service   string
	Product   string
	Version   string
	ExtraInfo string
}

// Writer writes one document; it counts hosts for <runstats>.
type Writer struct {
	up, down int
}

// nmap's time format in startstr/timestr (C's ctime without the newline).
const ctime = "Mon Jan _2 15:04:05 2006"

// Header writes the XML declaration, the stylesheet reference nmap writes,
// and everything of <nmaprun> before the first host.
func (w *Writer) Header(b *bytes.Buffer, r Run) {
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<!DOCTYPE nmaprun>` + "\n")
	b.WriteString(`<?xml-stylesheet href="file:///usr/share/nmap/nmap.xsl" type="text/xsl"?>` + "\n")
	b.WriteString(`<nmaprun scanner="nmap"`)
	if r.Args != "" {
		attr(b, "args", r.Args)
	}
	fmt.Fprintf(b, ` start="%d"`, r.Start.Unix())
	attr(b, "startstr", r.Start.UTC().Format(ctime))
	attr(b, "version", r.Version)
	attr(b, "xmloutputversion", XMLOutputVersion)
	b.WriteString(">\n")
	for _, si := range r.ScanInfo {
		b.WriteString(`<scaninfo`)
		attr(b, "type", si.Type)
		attr(b, "protocol", si.Protocol)
		fmt.Fprintf(b, ` numservices="%d"`, countPorts(si.Services))
		attr(b, "services", si.Services)
		b.WriteString("/>\n")
	}
	b.WriteString(`<verbose level="0"/>` + "\n")
	b.WriteString(`<debugging level="0"/>` + "\n")
}

// Host writes one <host>. A host that is down is written without ports, as
// nmap does.
func (w *Writer) Host(b *bytes.Buffer, h Host) {
	status := h.Status
	if status != "down" {
		status = "up"
		w.up++
	} else {
		w.down++
	}
	b.WriteString(`<host><status`)
	attr(b, "state", status)
	attr(b, "reason", orUnknown(h.Reason))
	b.WriteString(` reason_ttl="0"/>`)
	family := "ipv4"
	if h.Addr.Is6() {
		family = "ipv6"
	}
	b.WriteString(`<address`)
	attr(b, "addr", h.Addr.String())
	attr(b, "addrtype", family)
	b.WriteString(`/>`)
	if h.MAC != "" {
		b.WriteString(`<address`)
		attr(b, "addr", h.MAC)
		b.WriteString(` addrtype="mac"`)
		if h.Vendor != "" {
			attr(b, "vendor", h.Vendor)
		}
		b.WriteString(`/>`)
	}
	b.WriteString("\n<hostnames>")
	if h.Hostname != "" {
		b.WriteString(`<hostname`)
		attr(b, "name", h.Hostname)
		b.WriteString(` type="PTR"/>`)
	}
	b.WriteString("</hostnames>\n")
	if status == "up" {
		b.WriteString("<ports>")
		for _, p := range h.Ports {
			w.port(b, p)
		}
		b.WriteString("</ports>\n")
		if h.OSName != "" {
			// line (the match's line in nmap-os-db) is required by the DTD
			// and was not recorded: 0, no line.
			b.WriteString(`<os><osmatch`)
			attr(b, "name", h.OSName)
			fmt.Fprintf(b, ` accuracy="%d" line="0"/></os>`+"\n", h.OSAccuracy)
		}
	}
	b.WriteString("</host>\n")
}

func (w *Writer) port(b *bytes.Buffer, p Port) {
	b.WriteString(`<port`)
	attr(b, "protocol", p.Protocol)
	fmt.Fprintf(b, ` portid="%d"><state`, p.Port)
	attr(b, "state", p.State)
	attr(b, "reason", orUnknown(p.Reason))
	b.WriteString(` reason_ttl="0"/>`)
	if p.Service != "" || p.Product != "" || p.Version != "" || p.ExtraInfo != "" {
		// A product, version or extra info only ever comes from nmap's
		// version probes; a bare name is nmap's guess from nmap-services.
		method, conf := "table", "3"
		if p.Product != "" || p.Version != "" || p.ExtraInfo != "" {
			method, conf = "probed", "10"
		}
		b.WriteString(`<service`)
		attr(b, "name", p.Service)
		if p.Product != "" {
			attr(b, "product", p.Product)
		}
		if p.Version != "" {
			attr(b, "version", p.Version)
		}
		if p.ExtraInfo != "" {
			attr(b, "extrainfo", p.ExtraInfo)
		}
		attr(b, "method", method)
		attr(b, "conf", conf)
		b.WriteString(`/>`)
	}
	b.WriteString("</port>\n")
}

// Footer writes <runstats> and closes the document.
func (w *Writer) Footer(b *bytes.Buffer, r Run) {
	end := r.End.UTC()
	total := w.up + w.down
	elapsed := strconv.FormatFloat(r.Elapsed.Seconds(), 'f', 2, 64)
	addrs := "addresses"
	if total == 1 {
		addrs = "address"
	}
	hostsUp := "hosts"
	if w.up == 1 {
		hostsUp = "host"
	}
	b.WriteString(`<runstats><finished`)
	fmt.Fprintf(b, ` time="%d"`, end.Unix())
	attr(b, "timestr", end.Format(ctime))
	attr(b, "summary", fmt.Sprintf("Nmap done at %s; %d IP %s (%d %s up) scanned in %s seconds",
		end.Format(ctime), total, addrs, w.up, hostsUp, elapsed))
	attr(b, "elapsed", elapsed)
	b.WriteString(` exit="success"/>`)
	fmt.Fprintf(b, `<hosts up="%d" down="%d" total="%d"/>`, w.up, w.down, total)
	b.WriteString("</runstats>\n</nmaprun>\n")
}

func attr(b *bytes.Buffer, name, value string) {
	b.WriteByte(' ')
	b.WriteString(name)
	b.WriteString(`="`)
	_ = xml.EscapeText(b, []byte(value))
	b.WriteByte('"')
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// countPorts counts the ports of a condensed list such as "22,80,8000-8100".
func countPorts(list string) int {
	n := 0
	start := 0
	for i := 0; i <= len(list); i++ {
		if i < len(list) && list[i] != ',' {
			continue
		}
		item := list[start:i]
		start = i + 1
		if item == "" {
			continue
		}
		lo, hi, ok := cutRange(item)
		if ok && hi >= lo {
			n += hi - lo + 1
		}
	}
	return n
}

func cutRange(item string) (lo, hi int, ok bool) {
	for i := 0; i < len(item); i++ {
		if item[i] == '-' {
			a, err1 := strconv.Atoi(item[:i])
			b, err2 := strconv.Atoi(item[i+1:])
			return a, b, err1 == nil && err2 == nil
		}
	}
	a, err := strconv.Atoi(item)
	return a, a, err == nil
}
