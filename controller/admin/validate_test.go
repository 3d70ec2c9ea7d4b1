package admin

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

var (
	connectProfile = db.ScanProfile{Name: "default", ScanType: "connect", ServiceDetection: true, VersionLight: true}
	portsProfile   = db.ScanProfile{Name: "quick", ScanType: "connect", Ports: "22,80"}
	pingProfile    = db.ScanProfile{Name: "discovery", ScanType: "ping"}
)

// fields lists the field names of violations, in order.
func fields(bad []*apierr.FieldError) []string {
	var out []string
	for _, b := range bad {
		out = append(out, b.Field)
	}
	return out
}

func TestValidateTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		target     string
		profile    db.ScanProfile
		network    string
		ports      string
		interval   *durationpb.Duration
		exclusions []string
		want       []string // fields named, in order
	}{
		{name: "valid", target: "lab", profile: connectProfile, network: "10.99.0.0/24", ports: "22,80,8000-8100", want: nil},
		{name: "valid with interval and exclusion", target: "lab", profile: connectProfile, network: "10.99.0.0/24", ports: "22",
			interval: durationpb.New(time.Hour), exclusions: []string{"10.99.0.1/32"}, want: nil},
		{name: "ports from the profile", target: "lab", profile: portsProfile, network: "10.99.0.0/24", want: nil},
		{name: "a discovery profile needs no ports", target: "lab", profile: pingProfile, network: "10.99.0.0/24", want: nil},
		{name: "IPv6", target: "lab", profile: connectProfile, network: "2001:db8::/120", ports: "22", want: nil},
		{name: "name missing", profile: connectProfile, network: "10.99.0.0/24", ports: "22", want: []string{"name"}},
		{name: "name too long", target: strings.Repeat("n", 129), profile: connectProfile, network: "10.99.0.0/24", ports: "22", want: []string{"name"}},
		{name: "network not a CIDR", target: "lab", profile: connectProfile, network: "10.99.0.0/33", ports: "22", want: []string{"network"}},
		{name: "network too large to shard", target: "lab", profile: connectProfile, network: "2001:db8::/100", ports: "22", want: []string{"network"}},
		{name: "port 0", target: "lab", profile: connectProfile, network: "10.99.0.0/24", ports: "0", want: []string{"ports"}},
		{name: "no ports anywhere", target: "lab", profile: connectProfile, network: "10.99.0.0/24", want: []string{"ports"}},
		{name: "interval under a minute", target: "lab", profile: connectProfile, network: "10.99.0.0/24", ports: "22",
			interval: durationpb.New(30 * time.Second), want: []string{"interval"}},
		{name: "interval over a year", target: "lab", profile: connectProfile, network: "10.99.0.0/24", ports: "22",
			interval: durationpb.New(400 * 24 * time.Hour), want: []string{"interval"}},
		{name: "exclusion not a CIDR", target: "lab", profile: connectProfile, network: "10.99.0.0/24", ports: "22",
			exclusions: []string{"10.99.0.1/32", "nope"}, want: []string{"exclusions[1]"}},
		{name: "exclusion outside the network", target: "lab", profile: connectProfile, network: "10.99.0.0/24", ports: "22",
			exclusions: []string{"10.99.1.0/24"}, want: []string{"exclusions[0]"}},
		{name: "every violation at once", profile: connectProfile, network: "x", ports: "0",
			interval: durationpb.New(time.Second), exclusions: []string{"y"}, want: []string{"name", "network", "ports", "interval", "exclusions[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := &targetSpec{name: tt.target, profile: tt.profile}
			got := fields(validateTarget(spec, tt.network, tt.ports, tt.interval, tt.exclusions))
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("violations %v, want %v", got, tt.want)
			}
			if tt.want == nil && tt.interval != nil && (!spec.interval.Valid || spec.interval.Int32 != int32(tt.interval.AsDuration()/time.Second)) {
				t.Errorf("interval %+v not applied", spec.interval)
			}
		})
	}
}

func TestValidateSchedule(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	yes := true
	tests := []struct {
		name    string
		profile db.ScanProfile
		in      scheduleInput
		want    []string
		check   func(t *testing.T, s *targetSpec)
	}{
		{name: "nothing given keeps UTC and no schedule", profile: connectProfile, in: scheduleInput{},
			check: func(t *testing.T, s *targetSpec) {
				if s.loc != time.UTC || s.cron != nil || s.window != nil {
					t.Errorf("spec %+v", s)
				}
			}},
		{name: "cron in a zone", profile: connectProfile, in: scheduleInput{cron: str("30 2 * * mon-fri"), timeZone: str("Europe/Berlin")},
			check: func(t *testing.T, s *targetSpec) {
				if s.cron == nil || s.loc.String() != "Europe/Berlin" {
					t.Errorf("cron %v loc %v", s.cron, s.loc)
				}
			}},
		{name: "bad zone", profile: connectProfile, in: scheduleInput{timeZone: str("Mars/Olympus")}, want: []string{"time_zone"}},
		{name: "bad cron", profile: connectProfile, in: scheduleInput{cron: str("61 * * * *")}, want: []string{"cron"}},
		{name: "cron and interval", profile: connectProfile, in: scheduleInput{cron: str("0 * * * *"), intervalSet: true}, want: []string{"cron"}},
		{name: "window across midnight", profile: connectProfile,
			in: scheduleInput{window: &pb.ScanWindow{Days: "mon-fri", Start: "22:00", End: "06:00"}},
			check: func(t *testing.T, s *targetSpec) {
				if s.window == nil {
					t.Error("window not applied")
				}
			}},
		{name: "window with bad parts", profile: connectProfile,
			in:   scheduleInput{window: &pb.ScanWindow{Days: "someday", Start: "25:00", End: "xx"}},
			want: []string{"window.days", "window.start", "window.end"}},
		{name: "window always open", profile: connectProfile,
			in: scheduleInput{window: &pb.ScanWindow{Days: "mon-sun", Start: "00:00", End: "24:00"}}, want: []string{"window"}},
		{name: "empty window removes it", profile: connectProfile, in: scheduleInput{window: &pb.ScanWindow{}},
			check: func(t *testing.T, s *targetSpec) {
				if s.window != nil {
					t.Error("window kept")
				}
			}},
		{name: "max duration under a minute", profile: connectProfile, in: scheduleInput{maxDuration: durationpb.New(time.Second)}, want: []string{"max_duration"}},
		{name: "max duration over a month", profile: connectProfile, in: scheduleInput{maxDuration: durationpb.New(32 * 24 * time.Hour)}, want: []string{"max_duration"}},
		{name: "max duration zero removes it", profile: connectProfile, in: scheduleInput{maxDuration: durationpb.New(0)},
			check: func(t *testing.T, s *targetSpec) {
				if s.maxDuration.Valid {
					t.Error("limit kept")
				}
			}},
		{name: "discovery first on a discovery profile", profile: pingProfile, in: scheduleInput{discoveryFirst: &yes}, want: []string{"discovery_first"}},
		{name: "discovery first on a port scan", profile: connectProfile, in: scheduleInput{discoveryFirst: &yes},
			check: func(t *testing.T, s *targetSpec) {
				if !s.discoveryFirst {
					t.Error("discovery_first not applied")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := &targetSpec{name: "lab", profile: tt.profile}
			got := fields(validateSchedule(spec, tt.in))
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("violations %v, want %v", got, tt.want)
			}
			if tt.check != nil {
				tt.check(t, spec)
			}
		})
	}
}

func TestPageSizeAndTokens(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in      int32
		want    int32
		wantErr bool
	}{{-1, 0, true}, {0, defaultPageSize, false}, {10, 10, false}, {maxPageSize + 1, maxPageSize, false}} {
		got, err := pageSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("pageSize(%d) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	in := nameCursor{Name: "lab"}
	var out nameCursor
	if err := decodeToken(encodeToken(in), &out); err != nil || out != in {
		t.Errorf("round trip: %+v, %v", out, err)
	}
	for _, bad := range []string{"!!!", "bm90IGpzb24"} {
		if err := decodeToken(bad, &out); err == nil || !strings.Contains(err.Error(), "page_token") {
			t.Errorf("decodeToken(%q) = %v; want an error naming page_token", bad, err)
		}
	}
}
