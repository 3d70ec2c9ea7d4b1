package scanspec

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func r(a, b uint16) PortRange { return PortRange{Start: a, End: b} }

func TestParsePorts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    PortSpec
		wantStr string
	}{
		{"22", PortSpec{TCP: []PortRange{r(22, 22)}}, "22"},
		{"22,80,8000-8100", PortSpec{TCP: []PortRange{r(22, 22), r(80, 80), r(8000, 8100)}}, "22,80,8000-8100"},
		{"1-65535", PortSpec{TCP: []PortRange{r(1, 65535)}}, "1-65535"},
		{"T:22,U:53,161", PortSpec{TCP: []PortRange{r(22, 22)}, UDP: []PortRange{r(53, 53), r(161, 161)}}, "T:22,U:53,161"},
		{"U:53", PortSpec{UDP: []PortRange{r(53, 53)}}, "U:53"},
		{"u:53,t:22", PortSpec{TCP: []PortRange{r(22, 22)}, UDP: []PortRange{r(53, 53)}}, "T:22,U:53"},
		{" 80 , 22 ,\t443 ", PortSpec{TCP: []PortRange{r(22, 22), r(80, 80), r(443, 443)}}, "22,80,443"},
		{"80,22,22,79,81", PortSpec{TCP: []PortRange{r(22, 22), r(79, 81)}}, "22,79-81"},
		{"10-20,15-30,31", PortSpec{TCP: []PortRange{r(10, 31)}}, "10-31"},
		{"T:22,T:23,U:1,U:2", PortSpec{TCP: []PortRange{r(22, 23)}, UDP: []PortRange{r(1, 2)}}, "T:22-23,U:1-2"},
		{"5-5", PortSpec{TCP: []PortRange{r(5, 5)}}, "5"},
		{"0080", PortSpec{TCP: []PortRange{r(80, 80)}}, "80"},
		{"U: 53", PortSpec{UDP: []PortRange{r(53, 53)}}, "U:53"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePorts(tt.in)
			if err != nil {
				t.Fatalf("ParsePorts(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParsePorts(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.wantStr {
				t.Fatalf("String() = %q, want %q", s, tt.wantStr)
			}
			again, err := ParsePorts(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip of %q: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParsePortsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, wantErr string
	}{
		{"", "empty port spec"},
		{"   ", "empty port spec"},
		{"0,22", `port 0 out of range 1-65535 in "0,22"`},
		{"65536", `port 65536 out of range 1-65535 in "65536"`},
		{"99999999999999999999999", "out of range 1-65535"},
		{"1-", `open-ended range "1-" in "1-"`},
		{"-5", `open-ended range "-5" in "-5"`},
		{"-", `open-ended range "-"`},
		{"10-5", `reversed range "10-5" in "10-5"`},
		{"http", `invalid port "http" in "http"`},
		{"22a", `invalid port "22a"`},
		{"+22", `invalid port "+22"`},
		{"22 80", `invalid port "22 80"`},
		{"22,,80", `empty item in "22,,80"`},
		{"22,", `empty item in "22,"`},
		{"T:", `empty item in "T:"`},
		{"S:22", `unsupported protocol prefix "S:"`},
		{"T:U:22", `invalid port "U:22"`},
		{"1-2-3", `invalid port "2-3"`},
		{strings.Repeat("1,", MaxPortSpecLen), "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePorts(tt.in)
			if err == nil {
				t.Fatalf("ParsePorts(%q) = %v, want error", tt.in, got)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParsePorts(%q) error %q, want it to contain %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestParsePortsFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ  ScanType
		in   string
		want string
	}{
		{ScanUDP, "53,161", "U:53,161"},
		{ScanUDP, "U:53", "U:53"},
		{ScanUDP, "T:22,U:53", "T:22,U:53"},
		{ScanConnect, "53", "53"},
		{ScanSYN, "U:53", "U:53"},
	}
	for _, tt := range tests {
		t.Run(string(tt.typ)+"/"+tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePortsFor(tt.typ, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPortSpecMethods(t *testing.T) {
	t.Parallel()
	spec, err := ParsePorts("T:22,80-90,U:53,1000-1001")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		proto string
		port  uint16
		want  bool
	}{
		{"tcp", 22, true},
		{"TCP", 85, true},
		{"tcp", 91, false},
		{"tcp", 53, false},
		{"udp", 53, true},
		{"udp", 1001, true},
		{"udp", 22, false},
		{"sctp", 22, false},
	}
	for _, tt := range tests {
		if got := spec.Contains(tt.proto, tt.port); got != tt.want {
			t.Errorf("Contains(%q, %d) = %v, want %v", tt.proto, tt.port, got, tt.want)
		}
	}
	if got := spec.Count(); got != 1+11+1+2 {
		t.Errorf("Count() = %d, want 15", got)
	}
	if spec.Empty() || !(PortSpec{}).Empty() {
		t.Error("Empty() wrong")
	}
	if got := spec.AsUDP().String(); got != "U:22,53,80-90,1000-1001" {
		t.Errorf("AsUDP() = %q", got)
	}
	if got := (PortSpec{}).String(); got != "" {
		t.Errorf("empty String() = %q", got)
	}
	if got := (PortSpec{TCP: []PortRange{r(1, 65535)}}).Count(); got != 65535 {
		t.Errorf("full Count() = %d", got)
	}
}

func TestPortSpecJSON(t *testing.T) {
	t.Parallel()
	type wrap struct {
		Ports PortSpec `json:"ports"`
	}
	in := wrap{Ports: PortSpec{TCP: []PortRange{r(22, 22)}, UDP: []PortRange{r(53, 53)}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"ports":"T:22,U:53"}` {
		t.Fatalf("Marshal = %s", b)
	}
	var out wrap
	if err := json.Unmarshal(b, &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("Unmarshal = %+v, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"ports":""}`), &out); err != nil || !out.Ports.Empty() {
		t.Fatalf("empty Unmarshal = %+v, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"ports":"0"}`), &out); err == nil {
		t.Fatal("want error for port 0")
	}
}

func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"22", "T:22,U:53,161", "1-65535", "10-5", " 1 , 2 ", "u:1-3,t:4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParsePorts(s)
		if err != nil {
			return
		}
		again, err := ParsePorts(spec.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", spec.String(), s, err)
		}
		if !reflect.DeepEqual(again, spec) {
			t.Fatalf("round trip of %q: %+v != %+v", s, again, spec)
		}
	})
}
