package specpb

import (
	"slices"
	"strings"
	"testing"

	"github.com/scanorama/scanorama/agent/scanspec"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// TestScanTypesEveryValue walks every ScanType the API declares and every
// scanspec constant, both ways.
func TestScanTypesEveryValue(t *testing.T) {
	t.Parallel()
	mapped := 0
	for n, name := range pb.ScanType_name {
		p := pb.ScanType(n)
		got, err := ScanTypeFromPB(p)
		if n == 0 {
			if err == nil {
				t.Errorf("%s -> %q with no error", name, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		mapped++
		if back, err := ScanTypeToPB(got); err != nil || back != p {
			t.Errorf("%s -> %q -> %s, %v", name, got, back, err)
		}
		// The database spelling is the API name's tail, lower case.
		if want := strings.ToLower(strings.TrimPrefix(name, "SCAN_TYPE_")); string(got) != want {
			t.Errorf("%s -> %q, want %q", name, got, want)
		}
		if !slices.Contains(scanspec.ScanTypes(), got) {
			t.Errorf("%s -> %q, not in scanspec.ScanTypes()", name, got)
		}
	}
	if mapped != len(scanspec.ScanTypes()) {
		t.Errorf("%d API scan types, %d scanspec constants", mapped, len(scanspec.ScanTypes()))
	}
	for _, st := range scanspec.ScanTypes() {
		if _, err := ScanTypeToPB(st); err != nil {
			t.Errorf("%q: %v", st, err)
		}
	}
	for _, bad := range []scanspec.ScanType{"", "CONNECT", "tcp", "connect "} {
		if p, err := ScanTypeToPB(bad); err == nil {
			t.Errorf("%q -> %s with no error", bad, p)
		}
	}
	if _, err := ScanTypeFromPB(pb.ScanType(99)); err == nil {
		t.Error("undeclared value 99 mapped")
	}
}

// TestPingMethodsEveryValue is the same for ping methods, whose database
// spelling uses '-' where the API name has '_'.
func TestPingMethodsEveryValue(t *testing.T) {
	t.Parallel()
	mapped := 0
	for n, name := range pb.PingMethod_name {
		p := pb.PingMethod(n)
		got, err := PingMethodFromPB(p)
		if n == 0 {
			if err == nil {
				t.Errorf("%s -> %q with no error", name, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		mapped++
		if back, err := PingMethodToPB(got); err != nil || back != p {
			t.Errorf("%s -> %q -> %s, %v", name, got, back, err)
		}
		want := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "PING_METHOD_")), "_", "-")
		if string(got) != want {
			t.Errorf("%s -> %q, want %q", name, got, want)
		}
		if !slices.Contains(scanspec.PingMethods(), got) {
			t.Errorf("%s -> %q, not in scanspec.PingMethods()", name, got)
		}
	}
	if mapped != len(scanspec.PingMethods()) {
		t.Errorf("%d API ping methods, %d scanspec constants", mapped, len(scanspec.PingMethods()))
	}
	for _, bad := range []scanspec.PingMethod{"", "icmp_echo", "ICMP-ECHO", "tcp"} {
		if p, err := PingMethodToPB(bad); err == nil {
			t.Errorf("%q -> %s with no error", bad, p)
		}
	}
	if _, err := PingMethodFromPB(pb.PingMethod(99)); err == nil {
		t.Error("undeclared value 99 mapped")
	}
}
