package scanspec

import (
	"math"
	"net/netip"
	"strings"
	"testing"
)

func prefixes(t testing.TB, ss ...string) []netip.Prefix {
	t.Helper()
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		if !strings.Contains(s, "/") {
			a := netip.MustParseAddr(s)
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestHostCount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		targets, exclude []string
		want             uint64
	}{
		{"single", []string{"127.0.0.1"}, nil, 1},
		{"slash24", []string{"10.99.0.0/24"}, nil, 256},
		{"unmasked", []string{"10.99.0.77/24"}, nil, 256},
		{"duplicates", []string{"10.99.0.0/24", "10.99.0.0/24", "10.99.0.5"}, nil, 256},
		{"nested", []string{"10.99.0.0/25", "10.99.0.0/24", "10.99.1.0/24"}, nil, 512},
		{"exclude inside", []string{"10.99.0.0/24"}, []string{"10.99.0.0/26", "10.99.0.1", "10.99.0.200"}, 191},
		{"exclude covering", []string{"10.99.0.0/24", "10.99.1.0/30"}, []string{"10.99.0.0/16"}, 0},
		{"exclude elsewhere", []string{"10.99.0.0/30"}, []string{"198.18.0.0/16"}, 4},
		{"exclude across two", []string{"10.99.0.0/30", "10.99.0.4/30"}, []string{"10.99.0.0/29"}, 0},
		{"ipv6", []string{"::1", "2001:db8::/120"}, []string{"2001:db8::/124"}, 1 + 256 - 16},
		{"ipv6 huge saturates", []string{"2001:db8::/32", "2001:db9::/32"}, nil, math.MaxUint64},
		{"ipv4 all", []string{"0.0.0.0/0"}, nil, 1 << 32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := HostCount(prefixes(t, tt.targets...), prefixes(t, tt.exclude...)); got != tt.want {
				t.Fatalf("HostCount = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestValidateTargets(t *testing.T) {
	t.Parallel()
	many := make([]string, MaxTargetEntries+1)
	for i := range many {
		many[i] = "127.0.0.1"
	}
	tests := []struct {
		name             string
		targets, exclude []netip.Prefix
		wantErr          string
	}{
		{"ok", prefixes(t, "127.0.0.1", "10.99.0.0/9"), nil, ""},
		{"at limit", prefixes(t, "10.99.0.0/8"), nil, ""},
		{"ok v6", prefixes(t, "::1", "fd00::/104"), prefixes(t, "fd00::1"), ""},
		{"none", nil, nil, "at least one target"},
		{"zero prefix", []netip.Prefix{{}}, nil, "invalid prefix"},
		{"mixed", prefixes(t, "127.0.0.1", "::1"), nil, "mixes IPv4 and IPv6"},
		{"mixed exclude", prefixes(t, "127.0.0.1"), prefixes(t, "::1"), "exclude: ::1/128 mixes"},
		{"mapped", prefixes(t, "::ffff:127.0.0.1"), nil, "IPv4-mapped"},
		{"all excluded", prefixes(t, "127.0.0.1"), prefixes(t, "127.0.0.0/8"), "every address is excluded"},
		{"too large v4", prefixes(t, "10.99.0.0/7"), nil, "exceed the limit"},
		{"too large v6", prefixes(t, "fd00::/64"), nil, "exceed the limit"},
		{"too many entries", prefixes(t, many...), nil, "entries exceed the limit"},
		{"too many excludes", prefixes(t, "10.99.0.0/8"), prefixes(t, many...), "exclude: 4097 entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateTargets(tt.targets, tt.exclude)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateTargets = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ValidateTargets = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
