package nmaprun

import (
	"os"
	"os/exec"
	"regexp"
	"testing"
)

func TestHasRawSockets(t *testing.T) {
	t.Parallel()
	const (
		rootCaps  = "Name:\tagent\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n"
		netRaw    = "CapEff:\t0000000000002000\n" // only CAP_NET_RAW (bit 13)
		netAdmin  = "CapEff:\t0000000000001000\n" // only CAP_NET_ADMIN (bit 12)
		noCaps    = "CapEff:\t0000000000000000\n"
		garbage   = "CapEff:\tnot-hex\n"
		noCapLine = "Name:\tagent\n"
	)
	tests := []struct {
		name   string
		euid   int
		status string
		want   bool
	}{
		{"root with full caps", 0, rootCaps, true},
		{"unprivileged user with CAP_NET_RAW", 1000, netRaw, true},
		{"unprivileged user with other caps", 1000, netAdmin, false},
		{"unprivileged user without caps", 1000, noCaps, false},
		{"root whose CAP_NET_RAW was dropped", 0, noCaps, false},
		{"root, no procfs", 0, "", true},
		{"user, no procfs", 1000, "", false},
		{"root, unparseable CapEff", 0, garbage, true},
		{"user, no CapEff line", 1000, noCapLine, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := hasRawSockets(tt.euid, tt.status); got != tt.want {
				t.Fatalf("hasRawSockets(%d, %q) = %v, want %v", tt.euid, tt.status, got, tt.want)
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		out, want string
		ok        bool
	}{
		{"Nmap version 7.93 ( https://nmap.org )\nPlatform: x86_64-pc-linux-gnu\n", "7.93", true},
		{"\nNmap version 7.95SVN ( https://nmap.org )\n", "7.95SVN", true},
		{"Starting Nmap 7.93\n", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := parseVersion(tt.out)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("parseVersion(%q) = %q, %v; want %q, ok=%v", tt.out, got, err, tt.want, tt.ok)
		}
	}
}

func TestDetectCapabilities(t *testing.T) {
	t.Parallel()
	path := requireNmap(t)
	caps, err := DetectCapabilities(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\d+\.\d+`).MatchString(caps.NmapVersion) {
		t.Errorf("NmapVersion = %q", caps.NmapVersion)
	}
	status, _ := os.ReadFile("/proc/self/status")
	if want := hasRawSockets(os.Geteuid(), string(status)); caps.RawSockets != want {
		t.Errorf("RawSockets = %v, want %v", caps.RawSockets, want)
	}
	if _, err := DetectCapabilities(t.Context(), "/nonexistent/nmap"); err == nil {
		t.Error("want error for missing binary")
	}
}

// requireNmap returns the nmap binary's path or skips the test.
func requireNmap(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("nmap")
	if err != nil {
		t.Skipf("SKIPPED: nmap binary not found in PATH (%v); install nmap to run this test", err)
	}
	return path
}
