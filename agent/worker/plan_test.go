package worker

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/agent/nmaprun"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// plan is the agent's last line of defence: it re-validates everything a
// lease asks for before any probe is sent.
func TestPlanRefusesWhatTheAgentMustNotRun(t *testing.T) {
	t.Parallel()
	connect := &pb.ScanOptions{ScanType: pb.ScanType_SCAN_TYPE_CONNECT, Ports: "22,80"}
	syn := &pb.ScanOptions{ScanType: pb.ScanType_SCAN_TYPE_SYN, Ports: "22"}
	cases := []struct {
		name     string
		scope    []string
		raw      bool
		lease    *pb.Lease
		wantErr  string
		wantArgs []string
	}{
		{name: "inside scope", scope: []string{"10.99.0.0/16"}, lease: &pb.Lease{Network: "10.99.1.0/24", Options: connect},
			wantArgs: []string{"-sT", "-p", "22,80", "--", "10.99.1.0/24"}},
		{name: "exclusions passed to nmap", scope: []string{"10.99.0.0/16"}, lease: &pb.Lease{Network: "10.99.1.0/24", Exclusions: []string{"10.99.1.1/32"}, Options: connect},
			wantArgs: []string{"--exclude", "10.99.1.1"}},
		{name: "outside scope", scope: []string{"10.99.0.0/16"}, lease: &pb.Lease{Network: "198.19.1.0/24", Options: connect},
			wantErr: "outside this agent's scope"},
		{name: "wider than scope", scope: []string{"10.99.1.0/25"}, lease: &pb.Lease{Network: "10.99.1.0/24", Options: connect},
			wantErr: "outside this agent's scope"},
		{name: "SYN without raw sockets", scope: []string{"10.99.0.0/16"}, lease: &pb.Lease{Network: "10.99.1.0/24", Options: syn},
			wantErr: "needs raw sockets"},
		{name: "SYN with raw sockets", scope: []string{"10.99.0.0/16"}, raw: true, lease: &pb.Lease{Network: "10.99.1.0/24", Options: syn},
			wantArgs: []string{"-sS"}},
		{name: "options that do not validate", scope: []string{"10.99.0.0/16"}, lease: &pb.Lease{Network: "10.99.1.0/24",
			Options: &pb.ScanOptions{ScanType: pb.ScanType_SCAN_TYPE_CONNECT, Ports: "22", Scripts: []string{"../../etc/passwd"}}},
			wantErr: "invalid scan options"},
		{name: "no options", scope: []string{"10.99.0.0/16"}, lease: &pb.Lease{Network: "10.99.1.0/24"}, wantErr: "invalid scan options"},
		{name: "bad network", scope: []string{"10.99.0.0/16"}, lease: &pb.Lease{Network: "10.99.1.0/33", Options: connect}, wantErr: "invalid network"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var scope []netip.Prefix
			for _, s := range tc.scope {
				scope = append(scope, netip.MustParsePrefix(s))
			}
			a := &Agent{cfg: Config{Name: "test", Scope: scope}, caps: nmaprun.Capabilities{RawSockets: tc.raw}, log: hclog.NewNullLogger()}
			j := &job{a: a, lease: tc.lease, log: a.log}
			args, _, err := j.plan()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !containsRun(args, tc.wantArgs) {
				t.Fatalf("args %v do not contain %v", args, tc.wantArgs)
			}
			if !slices.Contains(args, "-n") {
				t.Errorf("args %v lack -n: the agent must never resolve names", args)
			}
		})
	}
}

func containsRun(args, run []string) bool {
	for i := 0; i+len(run) <= len(args); i++ {
		if slices.Equal(args[i:i+len(run)], run) {
			return true
		}
	}
	return false
}
