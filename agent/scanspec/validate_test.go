package scanspec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func mustPorts(t testing.TB, s string) PortSpec {
	t.Helper()
	p, err := ParsePorts(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tcp22 := mustPorts(t, "22")
	udp53 := mustPorts(t, "U:53")
	ping := Options{ScanType: ScanPing, VersionIntensity: Unset, Timing: Unset, MaxRetries: Unset}
	with := func(base Options, f func(*Options)) Options { f(&base); return base }
	def := DefaultOptions()

	tests := []struct {
		name    string
		o       Options
		wantErr []string // substrings; empty means valid
	}{
		{"default", def, nil},
		{"ports instead of top", with(def, func(o *Options) { o.TopPorts, o.Ports = 0, tcp22 }), nil},
		{"syn", with(def, func(o *Options) { o.ScanType = ScanSYN }), nil},
		{"udp ports", with(def, func(o *Options) { o.ScanType, o.TopPorts, o.Ports = ScanUDP, 0, udp53 }), nil},
		{"udp top ports", with(def, func(o *Options) { o.ScanType = ScanUDP }), nil},
		{"ping", ping, nil},
		{"ping with methods", with(ping, func(o *Options) { o.PingMethods = []PingMethod{PingICMPEcho, PingARP} }), nil},
		{"full featured", with(def, func(o *Options) {
			o.ServiceDetection, o.VersionIntensity, o.OSDetection = true, 9, true
			o.Timing, o.HostTimeout, o.MinRate, o.MaxRate, o.MaxRetries = 4, time.Minute, 10, 10, 0
			o.Scripts = []string{"banner", "ssl-cert"}
		}), nil},
		{"version light", with(def, func(o *Options) { o.ServiceDetection, o.VersionLight = true, true }), nil},

		{"zero value", Options{}, []string{"scan_type: required", "version_intensity: requires service_detection"}},
		{"unknown scan type", with(def, func(o *Options) { o.ScanType = "foo" }), []string{`scan_type: unknown "foo"`}},
		{"ports and top ports", with(def, func(o *Options) { o.Ports = tcp22 }), []string{"ports: mutually exclusive with top_ports"}},
		{"neither ports nor top", with(def, func(o *Options) { o.TopPorts = 0 }), []string{"ports: one of ports or top_ports is required"}},
		{"top ports range", with(def, func(o *Options) { o.TopPorts = 70000 }), []string{"top_ports: 70000 out of range 1-65535"}},
		{"negative top ports", with(def, func(o *Options) { o.TopPorts = -1 }), []string{"top_ports: -1 out of range"}},
		{"udp ports on connect", with(def, func(o *Options) { o.TopPorts, o.Ports = 0, udp53 }), []string{"ports: UDP ports require scan_type udp"}},
		{"tcp ports on udp", with(def, func(o *Options) { o.ScanType, o.TopPorts, o.Ports = ScanUDP, 0, tcp22 }), []string{"ports: TCP ports not allowed with scan_type udp"}},
		{"hand-built bad range", with(def, func(o *Options) { o.TopPorts, o.Ports = 0, PortSpec{TCP: []PortRange{{0, 5}}} }), []string{"ports: invalid range 0-5"}},
		{"ping with ports", with(ping, func(o *Options) { o.Ports = tcp22 }), []string{"ports: not allowed with scan_type ping"}},
		{"ping with top ports", with(ping, func(o *Options) { o.TopPorts = 10 }), []string{"top_ports: not allowed with scan_type ping"}},
		{"ping with detection", with(ping, func(o *Options) { o.ServiceDetection, o.OSDetection = true, true }), []string{"service_detection: not allowed", "os_detection: not allowed"}},
		{"ping with scripts", with(ping, func(o *Options) { o.Scripts = []string{"banner"} }), []string{"scripts: not allowed with scan_type ping"}},
		{"ping with -Pn", with(ping, func(o *Options) { o.SkipHostDiscovery = true }), []string{"skip_host_discovery: not allowed"}},
		{"intensity range", with(def, func(o *Options) { o.ServiceDetection, o.VersionIntensity = true, 10 }), []string{"version_intensity: 10 out of range 0-9"}},
		{"intensity without -sV", with(def, func(o *Options) { o.VersionIntensity = 5 }), []string{"version_intensity: requires service_detection"}},
		{"light without -sV", with(def, func(o *Options) { o.VersionLight = true }), []string{"version_light: requires service_detection"}},
		{"light and intensity", with(def, func(o *Options) { o.ServiceDetection, o.VersionLight, o.VersionIntensity = true, true, 2 }), []string{"version_light: mutually exclusive"}},
		{"timing high", with(def, func(o *Options) { o.Timing = 7 }), []string{"timing: 7 out of range 0-5"}},
		{"timing low", with(def, func(o *Options) { o.Timing = -2 }), []string{"timing: -2 out of range 0-5"}},
		{"host timeout negative", with(def, func(o *Options) { o.HostTimeout = -time.Second }), []string{"host_timeout:"}},
		{"host timeout tiny", with(def, func(o *Options) { o.HostTimeout = time.Millisecond }), []string{"host_timeout: 1ms is not 0 or at least 1s"}},
		{"rates inverted", with(def, func(o *Options) { o.MinRate, o.MaxRate = 100, 10 }), []string{"min_rate: greater than max_rate"}},
		{"rates negative", with(def, func(o *Options) { o.MinRate, o.MaxRate = -1, -1 }), []string{"min_rate: -1 is negative", "max_rate: -1 is negative"}},
		{"retries", with(def, func(o *Options) { o.MaxRetries = 51 }), []string{"max_retries: 51 out of range 0-50"}},
		{"script not allowed", with(def, func(o *Options) { o.Scripts = []string{"foo"} }), []string{`scripts: "foo" not in allow-list`}},
		{"script bad name", with(def, func(o *Options) { o.Scripts = []string{"http-title --script-args x"} }), []string{"is not a valid script name"}},
		{"script category", with(def, func(o *Options) { o.Scripts = []string{"vuln"} }), []string{`scripts: "vuln" not in allow-list`}},
		{"script path", with(def, func(o *Options) { o.Scripts = []string{"/tmp/x.nse"} }), []string{"is not a valid script name"}},
		{"script twice", with(def, func(o *Options) { o.Scripts = []string{"banner", "banner"} }), []string{`"banner" listed twice`}},
		{"ping method unknown", with(def, func(o *Options) { o.PingMethods = []PingMethod{"icmp-timestamp"} }), []string{`ping_methods: unknown "icmp-timestamp"`}},
		{"ping method twice", with(def, func(o *Options) { o.PingMethods = []PingMethod{PingUDP, PingUDP} }), []string{`"udp" listed twice`}},
		{"ping methods with -Pn", with(def, func(o *Options) { o.SkipHostDiscovery, o.PingMethods = true, []PingMethod{PingUDP} }), []string{"ping_methods: not allowed with skip_host_discovery"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.o.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Errorf("Validate() error %v is not a *FieldError", err)
			}
		})
	}
}

func TestRequiresRawSockets(t *testing.T) {
	t.Parallel()
	def := DefaultOptions()
	with := func(f func(*Options)) Options { o := def; f(&o); return o }
	tests := []struct {
		name string
		o    Options
		want bool
	}{
		{"connect", def, false},
		{"syn", with(func(o *Options) { o.ScanType = ScanSYN }), true},
		{"udp", with(func(o *Options) { o.ScanType = ScanUDP }), true},
		{"ping default", with(func(o *Options) { o.ScanType = ScanPing }), false},
		{"os", with(func(o *Options) { o.OSDetection = true }), true},
		{"tcp pings", with(func(o *Options) { o.PingMethods = []PingMethod{PingTCPSYN, PingTCPACK} }), false},
		{"icmp ping", with(func(o *Options) { o.PingMethods = []PingMethod{PingTCPSYN, PingICMPEcho} }), true},
		{"udp ping", with(func(o *Options) { o.PingMethods = []PingMethod{PingUDP} }), true},
		{"arp ping", with(func(o *Options) { o.PingMethods = []PingMethod{PingARP} }), true},
		{"service detection", with(func(o *Options) { o.ServiceDetection = true }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.o.RequiresRawSockets(); got != tt.want {
				t.Fatalf("RequiresRawSockets() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAllowedScripts(t *testing.T) {
	t.Parallel()
	list := AllowedScripts()
	for i, s := range list {
		if !ScriptAllowed(s) {
			t.Errorf("%q on the list but not allowed", s)
		}
		if i > 0 && list[i-1] >= s {
			t.Errorf("allow-list not sorted at %q", s)
		}
	}
	list[0] = "vuln" // the returned slice is a copy
	if ScriptAllowed("vuln") || ScriptAllowed("Banner") || ScriptAllowed("") {
		t.Error("ScriptAllowed accepts names off the list")
	}
}
