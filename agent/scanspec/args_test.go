package scanspec

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	t.Parallel()
	def := DefaultOptions()
	with := func(base Options, f func(*Options)) Options { f(&base); return base }
	ping := with(def, func(o *Options) { o.ScanType, o.TopPorts = ScanPing, 0 })
	common := "-oX - -n -v --stats-every 1s"

	tests := []struct {
		name             string
		o                Options
		targets, exclude []string
		want             string // space separated; no argument contains a space
	}{
		{"default connect", def, []string{"127.0.0.1"}, nil,
			common + " -sT --top-ports 1000 -- 127.0.0.1"},
		{"ports and cidr", with(def, func(o *Options) { o.TopPorts, o.Ports = 0, mustPorts(t, "80,22,8000-8100") }),
			[]string{"10.99.0.0/24", "10.99.1.9"}, nil,
			common + " -sT -p 22,80,8000-8100 -- 10.99.0.0/24 10.99.1.9"},
		{"unmasked target is masked", def, []string{"10.99.0.77/24"}, nil,
			common + " -sT --top-ports 1000 -- 10.99.0.0/24"},
		{"syn with exclusions", with(def, func(o *Options) { o.ScanType, o.TopPorts = ScanSYN, 100 }),
			[]string{"10.99.0.0/24"}, []string{"10.99.0.1", "10.99.0.128/25"},
			common + " -sS --top-ports 100 --exclude 10.99.0.1,10.99.0.128/25 -- 10.99.0.0/24"},
		{"udp plain ports", with(def, func(o *Options) {
			o.ScanType, o.TopPorts = ScanUDP, 0
			o.Ports, _ = ParsePortsFor(ScanUDP, "53,161")
		}), []string{"127.0.0.1"}, nil,
			common + " -sU -p U:53,161 -- 127.0.0.1"},
		{"ping", ping, []string{"198.18.1.0/24"}, nil,
			common + " -sn -- 198.18.1.0/24"},
		{"ping methods", with(ping, func(o *Options) {
			o.PingMethods = []PingMethod{PingARP, PingICMPEcho, PingTCPSYN, PingTCPACK, PingUDP}
		}), []string{"198.18.1.0/24"}, nil,
			common + " -sn -PR -PE -PS -PA -PU -- 198.18.1.0/24"},
		{"ipv6", with(def, func(o *Options) { o.TopPorts, o.Ports = 0, mustPorts(t, "22") }),
			[]string{"::1", "2001:db8::/120"}, []string{"2001:db8::1"},
			common + " -6 -sT -p 22 --exclude 2001:db8::1 -- ::1 2001:db8::/120"},
		{"everything", with(def, func(o *Options) {
			o.ScanType, o.TopPorts, o.Ports = ScanSYN, 0, mustPorts(t, "1-1024")
			o.ServiceDetection, o.VersionIntensity, o.OSDetection = true, 7, true
			o.Timing, o.HostTimeout, o.MinRate, o.MaxRate, o.MaxRetries = 4, 90*time.Second, 100, 1000, 2
			o.Scripts = []string{"ssl-cert", "banner"}
			o.SkipHostDiscovery = true
		}), []string{"10.99.2.3"}, nil,
			common + " -sS -p 1-1024 -sV --version-intensity 7 -O -T4 --host-timeout 90s" +
				" --min-rate 100 --max-rate 1000 --max-retries 2 --script ssl-cert,banner -Pn -- 10.99.2.3"},
		{"version light, T0, zero retries, ms timeout", with(def, func(o *Options) {
			o.ServiceDetection, o.VersionLight = true, true
			o.Timing, o.MaxRetries, o.HostTimeout = 0, 0, 1500*time.Millisecond
		}), []string{"127.0.0.1"}, nil,
			common + " -sT --top-ports 1000 -sV --version-light -T0 --host-timeout 1500ms --max-retries 0 -- 127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Args(tt.o, prefixes(t, tt.targets...), prefixes(t, tt.exclude...))
			if err != nil {
				t.Fatalf("Args: %v", err)
			}
			want := strings.Fields(tt.want)
			if !slices.Equal(got, want) {
				t.Fatalf("Args =\n  %q\nwant\n  %q", got, want)
			}
		})
	}
}

func TestArgsRejects(t *testing.T) {
	t.Parallel()
	one := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	tests := []struct {
		name             string
		o                Options
		targets, exclude []netip.Prefix
		wantErr          string
	}{
		{"invalid options", Options{}, one, nil, "invalid scan options: scan_type: required"},
		{"no targets", DefaultOptions(), nil, nil, "invalid scan targets: targets: at least one"},
		{"mixed families", DefaultOptions(), append(one, netip.MustParsePrefix("::1/128")), nil, "mixes IPv4 and IPv6"},
		{"mixed exclude", DefaultOptions(), one, []netip.Prefix{netip.MustParsePrefix("::1/128")}, "mixes IPv4 and IPv6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Args(tt.o, tt.targets, tt.exclude)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Args = %q, %v; want error containing %q", got, err, tt.wantErr)
			}
		})
	}
}
