package scanspec

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// StatsInterval is how often nmap reports progress (--stats-every).
const StatsInterval = "1s"

// Args validates o, targets and exclude and returns the nmap argument vector
// (without the program name) for one run.
//
// The vector always contains, in this order:
//
//	-oX -                 XML on stdout; nothing is written to disk
//	-n                    never resolve names
//	-v                    taskbegin/taskend elements and reports of down hosts
//	--stats-every 1s      taskprogress elements while phases run
//	-6                    only for IPv6 targets
//
// followed by the scan type, ports, detection, timing, script and discovery
// flags derived from o, then "--exclude a,b" when exclusions are given, then
// "--" and the targets (single addresses without a prefix length). The "--"
// guarantees nmap never reads a target as an option.
func Args(o Options, targets, exclude []netip.Prefix) ([]string, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("invalid scan options: %w", err)
	}
	if err := ValidateTargets(targets, exclude); err != nil {
		return nil, fmt.Errorf("invalid scan targets: %w", err)
	}

	args := []string{"-oX", "-", "-n", "-v", "--stats-every", StatsInterval}
	if targets[0].Addr().Is6() {
		args = append(args, "-6")
	}
	args = append(args, scanFlags[o.ScanType])

	switch {
	case !o.Ports.Empty():
		args = append(args, "-p", o.Ports.String())
	case o.TopPorts > 0:
		args = append(args, "--top-ports", strconv.Itoa(o.TopPorts))
	}

	if o.ServiceDetection {
		args = append(args, "-sV")
		if o.VersionIntensity != Unset {
			args = append(args, "--version-intensity", strconv.Itoa(o.VersionIntensity))
		}
		if o.VersionLight {
			args = append(args, "--version-light")
		}
	}
	if o.OSDetection {
		args = append(args, "-O")
	}

	if o.Timing != Unset {
		args = append(args, "-T"+strconv.Itoa(o.Timing))
	}
	if o.HostTimeout > 0 {
		args = append(args, "--host-timeout", formatDuration(o.HostTimeout))
	}
	if o.MinRate > 0 {
		args = append(args, "--min-rate", strconv.Itoa(o.MinRate))
	}
	if o.MaxRate > 0 {
		args = append(args, "--max-rate", strconv.Itoa(o.MaxRate))
	}
	if o.MaxRetries != Unset {
		args = append(args, "--max-retries", strconv.Itoa(o.MaxRetries))
	}

	if len(o.Scripts) > 0 {
		args = append(args, "--script", strings.Join(o.Scripts, ","))
	}

	if o.SkipHostDiscovery {
		args = append(args, "-Pn")
	}
	for _, m := range o.PingMethods {
		args = append(args, pingFlags[m])
	}

	if len(exclude) > 0 {
		args = append(args, "--exclude", joinPrefixes(exclude))
	}
	args = append(args, "--")
	for _, t := range targets {
		args = append(args, formatPrefix(t))
	}
	return args, nil
}

// formatDuration renders d in whole seconds when possible and in
// milliseconds otherwise, the units nmap's time options accept.
func formatDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = formatPrefix(p)
	}
	return strings.Join(s, ",")
}
