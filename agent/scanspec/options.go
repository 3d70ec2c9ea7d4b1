package scanspec

import (
	"fmt"
	"time"
)

// ScanType selects nmap's scan technique.
type ScanType string

// Supported scan types.
const (
	// ScanConnect is a TCP connect() scan (nmap -sT). It needs no privileges.
	ScanConnect ScanType = "connect"
	// ScanSYN is a TCP SYN ("half-open") scan (nmap -sS). It needs raw sockets.
	ScanSYN ScanType = "syn"
	// ScanUDP is a UDP scan (nmap -sU). It needs raw sockets.
	ScanUDP ScanType = "udp"
	// ScanPing is host discovery only, without any port scan (nmap -sn).
	ScanPing ScanType = "ping"
)

// PingMethod selects one nmap host discovery probe. Methods that take a port
// list in nmap use nmap's default ports.
type PingMethod string

// Supported host discovery methods.
const (
	PingICMPEcho PingMethod = "icmp-echo" // nmap -PE
	PingTCPSYN   PingMethod = "tcp-syn"   // nmap -PS
	PingTCPACK   PingMethod = "tcp-ack"   // nmap -PA
	PingUDP      PingMethod = "udp"       // nmap -PU
	PingARP      PingMethod = "arp"       // nmap -PR
)

// ScanTypes lists every scan type; scan_profiles.scan_type allows exactly these.
func ScanTypes() []ScanType { return []ScanType{ScanConnect, ScanSYN, ScanUDP, ScanPing} }

// PingMethods lists every host discovery method.
func PingMethods() []PingMethod {
	return []PingMethod{PingICMPEcho, PingTCPSYN, PingTCPACK, PingUDP, PingARP}
}

// Unset is the sentinel for the optional integer fields of [Options] whose
// zero value is meaningful (VersionIntensity, Timing, MaxRetries).
const Unset = -1

// Limits enforced by [Options.Validate].
const (
	MaxTopPorts    = 65535
	MaxRetries     = 50
	MaxTiming      = 5
	MaxIntensity   = 9
	MinHostTimeout = time.Second
)

// Options describes one scan. The zero value is NOT a sensible default,
// because Timing, VersionIntensity and MaxRetries use 0 as a real value (for
// Timing, 0 is nmap's extremely slow "paranoid" template); start from
// [DefaultOptions] instead.
type Options struct {
	ScanType ScanType `json:"scan_type"`
	// Ports to scan. Mutually exclusive with TopPorts; both must be unset for
	// ScanPing. Connect and SYN scans take only TCP ports, UDP scans only UDP
	// ports.
	Ports PortSpec `json:"ports"`
	// TopPorts scans nmap's N most common ports (0 = unset).
	TopPorts int `json:"top_ports,omitempty"`
	// ServiceDetection enables version detection (nmap -sV).
	ServiceDetection bool `json:"service_detection,omitempty"`
	// VersionIntensity is 0..9, or Unset for nmap's default. Requires
	// ServiceDetection; exclusive with VersionLight.
	VersionIntensity int `json:"version_intensity"`
	// VersionLight selects --version-light. Requires ServiceDetection.
	VersionLight bool `json:"version_light,omitempty"`
	// OSDetection enables OS fingerprinting (nmap -O). Needs raw sockets.
	OSDetection bool `json:"os_detection,omitempty"`
	// Timing is the nmap timing template 0..5, or Unset for nmap's default (3).
	Timing int `json:"timing"`
	// HostTimeout gives up on a host after this long (0 = no limit). Must be
	// at least one second; it is passed to nmap with millisecond precision.
	HostTimeout time.Duration `json:"host_timeout,omitempty"`
	// MinRate and MaxRate bound the packet rate per second (0 = unset).
	MinRate int `json:"min_rate,omitempty"`
	MaxRate int `json:"max_rate,omitempty"`
	// MaxRetries caps port scan probe retransmissions, 0..50, or Unset.
	MaxRetries int `json:"max_retries"`
	// Scripts are NSE script names from the allow-list (see [AllowedScripts]).
	Scripts []string `json:"scripts,omitempty"`
	// SkipHostDiscovery treats every target as up (nmap -Pn).
	SkipHostDiscovery bool `json:"skip_host_discovery,omitempty"`
	// PingMethods replaces nmap's default host discovery probes.
	PingMethods []PingMethod `json:"ping_methods,omitempty"`
}

// DefaultOptions returns a TCP connect scan of nmap's top 1000 ports with
// every optional integer setting Unset.
func DefaultOptions() Options {
	return Options{
		ScanType:         ScanConnect,
		TopPorts:         1000,
		VersionIntensity: Unset,
		Timing:           Unset,
		MaxRetries:       Unset,
	}
}

// RequiresRawSockets reports whether nmap needs raw socket access (root or
// CAP_NET_RAW) to run the scan as described: SYN and UDP scans, OS detection,
// and the ICMP echo, UDP and ARP discovery probes. Connect scans and TCP
// discovery probes fall back to connect() without privileges.
func (o Options) RequiresRawSockets() bool {
	if o.ScanType == ScanSYN || o.ScanType == ScanUDP || o.OSDetection {
		return true
	}
	for _, m := range o.PingMethods {
		switch m {
		case PingICMPEcho, PingUDP, PingARP:
			return true
		}
	}
	return false
}

// pingFlags maps each known ping method to its nmap flag.
var pingFlags = map[PingMethod]string{
	PingICMPEcho: "-PE",
	PingTCPSYN:   "-PS",
	PingTCPACK:   "-PA",
	PingUDP:      "-PU",
	PingARP:      "-PR",
}

// scanFlags maps each known scan type to its nmap flag.
var scanFlags = map[ScanType]string{
	ScanConnect: "-sT",
	ScanSYN:     "-sS",
	ScanUDP:     "-sU",
	ScanPing:    "-sn",
}

// FieldError reports an invalid [Options] field. Field is the snake_case
// name used in the JSON encoding.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
