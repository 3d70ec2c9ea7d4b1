package scanspec

import (
	"errors"
	"fmt"
	"slices"
)

// Validate checks o and returns nil or an error joining one [*FieldError]
// per problem found (use [errors.As] to inspect the first). Messages name the
// offending field, e.g. `timing: 7 out of range 0-5`.
func (o Options) Validate() error {
	var errs []error
	add := func(e *FieldError) { errs = append(errs, e) }

	if _, ok := scanFlags[o.ScanType]; !ok {
		if o.ScanType == "" {
			add(fieldErr("scan_type", "required"))
		} else {
			add(fieldErr("scan_type", "unknown %q", o.ScanType))
		}
	}
	for _, e := range o.validatePorts() {
		add(e)
	}
	for _, e := range o.validateDetection() {
		add(e)
	}
	for _, e := range o.validateTiming() {
		add(e)
	}
	for _, e := range o.validateScripts() {
		add(e)
	}
	for _, e := range o.validateDiscovery() {
		add(e)
	}
	return errors.Join(errs...)
}

func (o Options) validatePorts() []*FieldError {
	var errs []*FieldError
	if o.TopPorts < 0 || o.TopPorts > MaxTopPorts {
		errs = append(errs, fieldErr("top_ports", "%d out of range 1-%d", o.TopPorts, MaxTopPorts))
	}
	if err := o.Ports.check(); err != nil {
		errs = append(errs, fieldErr("ports", "%v", err))
	}
	switch o.ScanType {
	case ScanPing:
		if !o.Ports.Empty() {
			errs = append(errs, fieldErr("ports", "not allowed with scan_type ping"))
		}
		if o.TopPorts != 0 {
			errs = append(errs, fieldErr("top_ports", "not allowed with scan_type ping"))
		}
	case ScanConnect, ScanSYN, ScanUDP:
		switch {
		case !o.Ports.Empty() && o.TopPorts != 0:
			errs = append(errs, fieldErr("ports", "mutually exclusive with top_ports"))
		case o.Ports.Empty() && o.TopPorts == 0:
			errs = append(errs, fieldErr("ports", "one of ports or top_ports is required"))
		}
		if o.ScanType == ScanUDP && len(o.Ports.TCP) > 0 {
			errs = append(errs, fieldErr("ports", "TCP ports not allowed with scan_type udp"))
		}
		if o.ScanType != ScanUDP && len(o.Ports.UDP) > 0 {
			errs = append(errs, fieldErr("ports", "UDP ports require scan_type udp"))
		}
	}
	return errs
}

// check verifies that a (possibly hand-built) spec holds valid ranges.
func (p PortSpec) check() error {
	for _, rs := range [][]PortRange{p.TCP, p.UDP} {
		for _, r := range rs {
			if r.Start == 0 || r.End < r.Start {
				return fmt.Errorf("invalid range %d-%d", r.Start, r.End)
			}
		}
	}
	return nil
}

func (o Options) validateDetection() []*FieldError {
	var errs []*FieldError
	if o.VersionIntensity != Unset && (o.VersionIntensity < 0 || o.VersionIntensity > MaxIntensity) {
		errs = append(errs, fieldErr("version_intensity", "%d out of range 0-%d", o.VersionIntensity, MaxIntensity))
	}
	if !o.ServiceDetection {
		if o.VersionIntensity != Unset {
			errs = append(errs, fieldErr("version_intensity", "requires service_detection"))
		}
		if o.VersionLight {
			errs = append(errs, fieldErr("version_light", "requires service_detection"))
		}
	}
	if o.VersionLight && o.VersionIntensity != Unset {
		errs = append(errs, fieldErr("version_light", "mutually exclusive with version_intensity"))
	}
	if o.ScanType == ScanPing {
		if o.ServiceDetection {
			errs = append(errs, fieldErr("service_detection", "not allowed with scan_type ping"))
		}
		if o.OSDetection {
			errs = append(errs, fieldErr("os_detection", "not allowed with scan_type ping"))
		}
	}
	return errs
}

func (o Options) validateTiming() []*FieldError {
	var errs []*FieldError
	if o.Timing != Unset && (o.Timing < 0 || o.Timing > MaxTiming) {
		errs = append(errs, fieldErr("timing", "%d out of range 0-%d", o.Timing, MaxTiming))
	}
	if o.HostTimeout < 0 || (o.HostTimeout > 0 && o.HostTimeout < MinHostTimeout) {
		errs = append(errs, fieldErr("host_timeout", "%s is not 0 or at least %s", o.HostTimeout, MinHostTimeout))
	}
	if o.MinRate < 0 {
		errs = append(errs, fieldErr("min_rate", "%d is negative", o.MinRate))
	}
	if o.MaxRate < 0 {
		errs = append(errs, fieldErr("max_rate", "%d is negative", o.MaxRate))
	}
	if o.MinRate > 0 && o.MaxRate > 0 && o.MinRate > o.MaxRate {
		errs = append(errs, fieldErr("min_rate", "greater than max_rate"))
	}
	if o.MaxRetries != Unset && (o.MaxRetries < 0 || o.MaxRetries > MaxRetries) {
		errs = append(errs, fieldErr("max_retries", "%d out of range 0-%d", o.MaxRetries, MaxRetries))
	}
	return errs
}

func (o Options) validateScripts() []*FieldError {
	var errs []*FieldError
	if o.ScanType == ScanPing && len(o.Scripts) > 0 {
		errs = append(errs, fieldErr("scripts", "not allowed with scan_type ping"))
	}
	for i, s := range o.Scripts {
		switch {
		case !scriptNameRE.MatchString(s):
			errs = append(errs, fieldErr("scripts", "%q is not a valid script name", s))
		case !slices.Contains(allowedScripts, s):
			errs = append(errs, fieldErr("scripts", "%q not in allow-list", s))
		case slices.Contains(o.Scripts[:i], s):
			errs = append(errs, fieldErr("scripts", "%q listed twice", s))
		}
	}
	return errs
}

func (o Options) validateDiscovery() []*FieldError {
	var errs []*FieldError
	if o.SkipHostDiscovery && o.ScanType == ScanPing {
		errs = append(errs, fieldErr("skip_host_discovery", "not allowed with scan_type ping"))
	}
	if o.SkipHostDiscovery && len(o.PingMethods) > 0 {
		errs = append(errs, fieldErr("ping_methods", "not allowed with skip_host_discovery"))
	}
	for i, m := range o.PingMethods {
		switch {
		case pingFlags[m] == "":
			errs = append(errs, fieldErr("ping_methods", "unknown %q", m))
		case slices.Contains(o.PingMethods[:i], m):
			errs = append(errs, fieldErr("ping_methods", "%q listed twice", m))
		}
	}
	return errs
}
