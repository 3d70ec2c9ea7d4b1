package nmaprun

import (
	"context"
	"net/netip"
	"time"
)

// Host is one scanned host as reported by nmap, reduced to the fields the
// agent stores. Every string is valid UTF-8 and length-bounded.
type Host struct {
	Address  netip.Addr
	Status   string // "up" or "down" (down hosts are reported when nmap runs with -v)
	Reason   string // why nmap considers the host up or down, e.g. "syn-ack"
	MAC      string
	Vendor   string // MAC vendor
	Hostname string

	// OSName, OSFamily and OSAccuracy describe nmap's best OS match, if any.
	OSName     string
	OSFamily   string
	OSAccuracy int

	Ports   []Port   // ports nmap lists individually, in nmap's order
	Scripts []Script // host-level NSE script results (<hostscript>)

	StartTime, EndTime time.Time // zero when nmap does not report them (ping scans)
}

// Port is one port of a [Host].
type Port struct {
	Protocol    string // "tcp" or "udp"
	Port        uint16
	State       string // "open", "closed", "filtered", "open|filtered", ...
	Reason      string
	ServiceName string
	Product     string
	Version     string
	ExtraInfo   string
	Tunnel      string // "ssl" when the service runs over TLS
	Scripts     []Script
}

// Script is the output of one NSE script.
type Script struct {
	ID     string
	Output string
}

// Summary describes a finished (or aborted) nmap run.
type Summary struct {
	NmapVersion string
	// Args is the argument vector nmap reported in its XML header, without the
	// program name. [Runner.Run] replaces it with the exact vector it ran.
	Args []string
	// ScannedTCP and ScannedUDP are the port lists from <scaninfo services>,
	// in nmap's condensed syntax (e.g. "1-1024,8080").
	ScannedTCP, ScannedUDP string

	HostsUp, HostsDown, HostsTotal int // from <runstats><hosts>
	// HostsReported counts the hosts delivered to [Events.Host]; hosts whose
	// element carries no usable IP address are skipped and not counted.
	HostsReported int
	Elapsed       time.Duration // from <runstats><finished elapsed>
	Exit          string        // "success" or "error"; empty if nmap never finished
	ErrorMsg      string        // nmap's own error message when Exit is "error"
}

// Events receives the results of a run. Both methods are called
// synchronously from the goroutine running [Decode] or [Runner.Run], so a
// slow consumer slows nmap down (through the pipe) rather than growing memory.
type Events interface {
	// Host is called once for each host nmap finishes, in nmap's output
	// order. Returning an error aborts the run; the error is returned
	// wrapped by Decode and Run.
	Host(ctx context.Context, h Host) error
	// Progress reports the overall completion percentage. Values are
	// strictly increasing within a run; 100 is reported only once nmap has
	// finished successfully.
	Progress(percent int)
}

// Job is one nmap invocation.
type Job struct {
	// Args is nmap's argument vector without the program name, normally
	// built by scanspec.Args. It must make nmap write XML to stdout (-oX -).
	Args []string
	// ExpectedHosts is the number of addresses nmap will consider
	// (scanspec.HostCount), or 0 if unknown. It is used only to estimate
	// progress across nmap's host groups.
	ExpectedHosts uint64
}
