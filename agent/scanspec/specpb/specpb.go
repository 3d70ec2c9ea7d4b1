// Package specpb converts between the API's ScanOptions message and the
// scanspec vocabulary. The controller uses it to validate what operators
// send; the agent uses it to re-validate what it leased before building an
// nmap command line from it.
package specpb

import (
	"fmt"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/scanorama/scanorama/agent/scanspec"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

var scanTypes = map[pb.ScanType]scanspec.ScanType{
	pb.ScanType_SCAN_TYPE_CONNECT: scanspec.ScanConnect,
	pb.ScanType_SCAN_TYPE_SYN:     scanspec.ScanSYN,
	pb.ScanType_SCAN_TYPE_UDP:     scanspec.ScanUDP,
	pb.ScanType_SCAN_TYPE_PING:    scanspec.ScanPing,
}

var pingMethods = map[pb.PingMethod]scanspec.PingMethod{
	pb.PingMethod_PING_METHOD_ICMP_ECHO: scanspec.PingICMPEcho,
	pb.PingMethod_PING_METHOD_TCP_SYN:   scanspec.PingTCPSYN,
	pb.PingMethod_PING_METHOD_TCP_ACK:   scanspec.PingTCPACK,
	pb.PingMethod_PING_METHOD_UDP:       scanspec.PingUDP,
	pb.PingMethod_PING_METHOD_ARP:       scanspec.PingARP,
}

// ScanTypeToPB is the API's value of a scan type (as stored in
// scan_profiles.scan_type); an unknown type is an error, never UNSPECIFIED.
func ScanTypeToPB(t scanspec.ScanType) (pb.ScanType, error) {
	for k, v := range scanTypes {
		if v == t {
			return k, nil
		}
	}
	return pb.ScanType_SCAN_TYPE_UNSPECIFIED, fmt.Errorf("unknown scan type %q", string(t))
}

// ScanTypeFromPB is the scan type of an API value; UNSPECIFIED and unknown
// numbers are errors.
func ScanTypeFromPB(p pb.ScanType) (scanspec.ScanType, error) {
	if t, ok := scanTypes[p]; ok {
		return t, nil
	}
	return "", fmt.Errorf("no scan type for %s", p)
}

// PingMethodToPB is the API's value of a ping method (as stored in
// scan_profiles.ping_methods); an unknown method is an error.
func PingMethodToPB(m scanspec.PingMethod) (pb.PingMethod, error) {
	for k, v := range pingMethods {
		if v == m {
			return k, nil
		}
	}
	return pb.PingMethod_PING_METHOD_UNSPECIFIED, fmt.Errorf("unknown ping method %q", string(m))
}

// PingMethodFromPB is the ping method of an API value; UNSPECIFIED and
// unknown numbers are errors.
func PingMethodFromPB(p pb.PingMethod) (scanspec.PingMethod, error) {
	if m, ok := pingMethods[p]; ok {
		return m, nil
	}
	return "", fmt.Errorf("no ping method for %s", p)
}

// FieldError names the invalid ScanOptions field (snake_case, as in the API).
type FieldError = scanspec.FieldError

// FromPB converts and validates. Errors are *FieldError where a field is at fault.
func FromPB(in *pb.ScanOptions) (scanspec.Options, error) {
	o := scanspec.DefaultOptions()
	o.TopPorts = 0
	if in == nil {
		return o, &FieldError{Field: "scan_type", Reason: "options are required"}
	}
	st, ok := scanTypes[in.GetScanType()]
	if !ok {
		return o, &FieldError{Field: "scan_type", Reason: fmt.Sprintf("must be one of SCAN_TYPE_CONNECT, SCAN_TYPE_SYN, SCAN_TYPE_UDP, SCAN_TYPE_PING, got %s", in.GetScanType())}
	}
	o.ScanType = st
	if in.GetPorts() != "" {
		ports, err := scanspec.ParsePortsFor(st, in.GetPorts())
		if err != nil {
			return o, &FieldError{Field: "ports", Reason: err.Error()}
		}
		o.Ports = ports
	}
	o.TopPorts = int(in.GetTopPorts())
	o.ServiceDetection = in.GetServiceDetection()
	if in.VersionIntensity != nil {
		o.VersionIntensity = int(in.GetVersionIntensity())
	}
	o.VersionLight = in.GetVersionLight()
	o.OSDetection = in.GetOsDetection()
	if in.Timing != nil {
		o.Timing = int(in.GetTiming())
	}
	if in.GetHostTimeout() != nil {
		if err := in.GetHostTimeout().CheckValid(); err != nil {
			return o, &FieldError{Field: "host_timeout", Reason: err.Error()}
		}
		o.HostTimeout = in.GetHostTimeout().AsDuration()
	}
	o.MinRate = int(in.GetMinRate())
	o.MaxRate = int(in.GetMaxRate())
	if in.MaxRetries != nil {
		o.MaxRetries = int(in.GetMaxRetries())
	}
	o.Scripts = append([]string(nil), in.GetScripts()...)
	o.SkipHostDiscovery = in.GetSkipHostDiscovery()
	for i, m := range in.GetPingMethods() {
		pm, ok := pingMethods[m]
		if !ok {
			return o, &FieldError{Field: fmt.Sprintf("ping_methods[%d]", i), Reason: fmt.Sprintf("unknown ping method %s", m)}
		}
		o.PingMethods = append(o.PingMethods, pm)
	}
	if err := o.Validate(); err != nil {
		return o, err
	}
	return o, nil
}

// ToPB converts options (assumed valid) to the API message.
func ToPB(o scanspec.Options) *pb.ScanOptions {
	out := &pb.ScanOptions{
		TopPorts:          int32(o.TopPorts),
		ServiceDetection:  o.ServiceDetection,
		VersionLight:      o.VersionLight,
		OsDetection:       o.OSDetection,
		MinRate:           int32(o.MinRate),
		MaxRate:           int32(o.MaxRate),
		Scripts:           append([]string(nil), o.Scripts...),
		SkipHostDiscovery: o.SkipHostDiscovery,
	}
	if !o.Ports.Empty() {
		out.Ports = o.Ports.String()
	}
	out.ScanType, _ = ScanTypeToPB(o.ScanType) // valid options: known
	for _, m := range o.PingMethods {
		if p, err := PingMethodToPB(m); err == nil {
			out.PingMethods = append(out.PingMethods, p)
		}
	}
	if o.VersionIntensity != scanspec.Unset {
		v := int32(o.VersionIntensity)
		out.VersionIntensity = &v
	}
	if o.Timing != scanspec.Unset {
		v := int32(o.Timing)
		out.Timing = &v
	}
	if o.MaxRetries != scanspec.Unset {
		v := int32(o.MaxRetries)
		out.MaxRetries = &v
	}
	if o.HostTimeout > 0 {
		out.HostTimeout = durationpb.New(o.HostTimeout)
	}
	return out
}
