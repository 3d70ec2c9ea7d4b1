package agentapi

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestIntersectScopes(t *testing.T) {
	t.Parallel()
	p := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	tests := []struct {
		name        string
		agent, site []netip.Prefix
		want        []netip.Prefix
	}{
		{"agent inside site", p("10.99.1.0/24"), p("10.99.0.0/16"), p("10.99.1.0/24")},
		{"site inside agent", p("0.0.0.0/0", "::/0"), p("10.99.0.0/16", "198.18.0.0/15"), p("10.99.0.0/16", "198.18.0.0/15")},
		{"disjoint", p("10.99.0.0/16"), p("198.18.0.0/15"), nil},
		{"no site scopes", p("0.0.0.0/0"), nil, nil},
		{"families never mix", p("::/0"), p("10.99.0.0/16"), nil},
		{"several, deduplicated", p("10.99.0.0/16", "10.99.0.0/16"), p("10.99.1.0/24", "10.99.2.0/24"), p("10.99.1.0/24", "10.99.2.0/24")},
	}
	for _, tc := range tests {
		if got := intersectScopes(tc.agent, tc.site); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
