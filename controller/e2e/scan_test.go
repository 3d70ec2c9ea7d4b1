package e2e_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// The walking skeleton, end to end: real PostgreSQL, the real binaries, real
// nmap against a loopback listener this test opened.
func TestScanEndToEnd(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	port := listener(t, false)
	ctx := s.ctx()
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	s.agent("agent-1", "lab", "127.0.0.1/32")
	tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{
		Site: "lab", Name: "loopback", Network: "127.0.0.1/32", Ports: fmt.Sprint(port),
	})
	if err != nil {
		t.Fatal(err)
	}
	scan, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if len(scan.GetJobs()) != 1 {
		t.Fatalf("ScanNow made %d jobs, want 1", len(scan.GetJobs()))
	}
	job := s.waitJob(scan.GetJobs()[0].GetId(), 90*time.Second)
	if job.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED {
		t.Fatalf("job %s: %s", job.GetStatus(), job.GetErrorMessage())
	}
	if job.GetProgressPercent() != 100 || job.GetAttempt() != 1 || job.GetWorkerId() == "" {
		t.Errorf("completed job: progress %d attempt %d worker %q", job.GetProgressPercent(), job.GetAttempt(), job.GetWorkerId())
	}

	host, err := s.admin.GetHost(ctx, &pb.GetHostRequest{Site: "lab", IpAddress: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	var found *pb.HostPort
	for _, p := range host.GetHost().GetPorts() {
		if p.GetPort() == int32(port) && p.GetProtocol() == "tcp" {
			found = p
		}
	}
	if found == nil || found.GetState() != "open" {
		t.Fatalf("port %d not open in GetHost: %v", port, host.GetHost().GetPorts())
	}
	if found.GetServiceName() != "ssh" {
		t.Errorf("service = %q, want ssh (nmap -sV on our banner)", found.GetServiceName())
	}
	// The rows committed with the job, in one transaction: the row's job
	// exists and is completed, and the row's time is the job's commit time.
	n := s.count(`SELECT count(*) FROM port_scans ps JOIN scan_jobs j ON j.id = ps.job_id
		WHERE ps.port = $1 AND ps.state = 'open' AND j.status = 'completed' AND ps.scanned_at = j.completed_at`, port)
	if n != 1 {
		t.Fatalf("port_scans rows for the completed job = %d, want 1", n)
	}
	if n := s.count(`SELECT count(*) FROM scan_job_leases WHERE outcome = 'completed'`); n != 1 {
		t.Errorf("completed leases = %d, want 1", n)
	}
	if n := s.count(`SELECT count(*) FROM host_history WHERE event IN ('host_discovered', 'port_opened')`); n != 2 {
		t.Errorf("history events = %d, want host_discovered + port_opened", n)
	}

	// A second scan of an unchanged host adds history rows but no change events.
	scan2, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if j := s.waitJob(scan2.GetJobs()[0].GetId(), 90*time.Second); j.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED {
		t.Fatalf("second job: %s %s", j.GetStatus(), j.GetErrorMessage())
	}
	if n := s.count(`SELECT count(*) FROM port_scans WHERE port = $1`, port); n != 2 {
		t.Errorf("port_scans rows after two scans = %d, want 2", n)
	}
	if n := s.count(`SELECT count(*) FROM host_history`); n != 2 {
		t.Errorf("history events after an unchanged rescan = %d, want still 2", n)
	}
}

func TestCreateTargetRejectsBadInput(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := s.ctx()
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	valid := func(mod func(r *pb.CreateTargetRequest)) *pb.CreateTargetRequest {
		r := &pb.CreateTargetRequest{Site: "lab", Name: "t", Network: "127.0.0.1/32", Ports: "22"}
		mod(r)
		return r
	}
	cases := []struct {
		name  string
		req   *pb.CreateTargetRequest
		code  codes.Code
		field string
	}{
		{"malformed CIDR", valid(func(r *pb.CreateTargetRequest) { r.Network = "10.99.0.0/33" }), codes.InvalidArgument, "network"},
		{"not an address", valid(func(r *pb.CreateTargetRequest) { r.Network = "lab-net" }), codes.InvalidArgument, "network"},
		{"host bits set", valid(func(r *pb.CreateTargetRequest) { r.Network = "10.99.0.1/24" }), codes.InvalidArgument, "network"},
		{"port 0", valid(func(r *pb.CreateTargetRequest) { r.Ports = "0" }), codes.InvalidArgument, "ports"},
		{"port 65536", valid(func(r *pb.CreateTargetRequest) { r.Ports = "65536" }), codes.InvalidArgument, "ports"},
		{"open range", valid(func(r *pb.CreateTargetRequest) { r.Ports = "1-" }), codes.InvalidArgument, "ports"},
		{"letters", valid(func(r *pb.CreateTargetRequest) { r.Ports = "http" }), codes.InvalidArgument, "ports"},
		{"unknown site", valid(func(r *pb.CreateTargetRequest) { r.Site = "nowhere" }), codes.NotFound, "site"},
		{"unknown profile", valid(func(r *pb.CreateTargetRequest) { r.Profile = "nmap -A" }), codes.NotFound, "profile"},
		{"exclusion outside network", valid(func(r *pb.CreateTargetRequest) { r.Exclusions = []string{"10.99.9.0/24"} }), codes.InvalidArgument, "exclusions[0]"},
		{"interval too short", valid(func(r *pb.CreateTargetRequest) { r.Interval = durationpb.New(time.Second) }), codes.InvalidArgument, "interval"},
		{"network too large", valid(func(r *pb.CreateTargetRequest) { r.Network = "2001:db8::/32" }), codes.InvalidArgument, "network"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.admin.CreateTarget(ctx, tc.req)
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("code = %s (%v), want %s", st.Code(), err, tc.code)
			}
			if !strings.HasPrefix(st.Message(), tc.field+":") && !strings.Contains(st.Message(), tc.field+":") {
				t.Fatalf("message %q does not name field %q", st.Message(), tc.field)
			}
		})
	}
	if n := s.count(`SELECT count(*) FROM scan_targets`) + s.count(`SELECT count(*) FROM scan_target_ports`); n != 0 {
		t.Fatalf("bad input wrote %d rows", n)
	}
}

func TestBinariesNameTheBadFlag(t *testing.T) {
	t.Parallel()
	cases := []struct {
		bin  string
		args []string
		flag string
	}{
		{"scanorama-agent", []string{"--site", "lab"}, "--controller"},
		{"scanorama-agent", []string{"--controller", "127.0.0.1"}, "--controller"},
		{"scanorama-agent", []string{"--controller", "127.0.0.1:1"}, "--site"},
		{"scanorama-agent", []string{"--controller", "127.0.0.1:1", "--site", "lab", "--scope", "10.99.0.0/33"}, "--scope"},
		{"scanorama-agent", []string{"--controller", "127.0.0.1:1", "--site", "lab", "--log-level", "loud"}, "--log-level"},
		{"scanorama-controller", []string{"serve", "--listen", "nowhere"}, "--listen"},
		{"scanorama-controller", []string{"serve", "--lease-ttl", "1ms"}, "--lease-ttl"},
		{"scanorama-controller", []string{"serve", "--log-level", "loud"}, "--log-level"},
		{"scanorama-controller", []string{"serve", "--debug-listen", "0.0.0.0:6060"}, "--debug-listen"},
		{"scanorama-agent", []string{"--controller", "127.0.0.1:1", "--site", "lab", "--tls-ca", "/nonexistent/ca.pem"}, "--tls-ca"},
		{"scanorama-agent", []string{"--controller", "127.0.0.1:1", "--site", "lab", "--tls-cert", "/nonexistent/agent.pem"}, "--tls-key"},
		{"scanorama-controller", []string{"serve", "--tls-key", "/nonexistent/key.pem"}, "--tls-cert"},
		{"scanorama-controller", []string{"serve", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"}, "--tls-cert"},
		{"scanorama-controller", []string{"serve", "--tls-client-ca", "/nonexistent/ca.pem"}, "--tls-cert"},
		{"scanorama-controller", []string{"serve", "--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem", "--tls-admin-ca", "/nonexistent/ca.pem"}, "--tls-client-ca"},
		// Safe defaults: no plaintext without --insecure, and --insecure on loopback only.
		{"scanorama-controller", []string{"serve", "--listen", "127.0.0.1:1"}, "--insecure"},
		{"scanorama-controller", []string{"serve", "--listen", "127.0.0.1:1"}, "--tls-cert"},
		{"scanorama-controller", []string{"serve", "--insecure", "--listen", "10.99.0.1:7443"}, "--insecure"},
		{"scanorama-controller", []string{"serve", "--insecure", "--listen", "0.0.0.0:7443"}, "--insecure"},
		{"scanorama-controller", []string{"serve", "--insecure", "--listen", "[::]:7443"}, "--insecure"},
		{"scanorama-agent", []string{"--controller", "127.0.0.1:1", "--site", "lab"}, "--insecure"},
		{"scanorama-agent", []string{"--controller", "127.0.0.1:1", "--site", "lab", "--insecure", "--tls"}, "--insecure"},
		{"scanorama-controller", []string{"token", "create", "--role", "root"}, "--role"},
		{"scanorama-controller", []string{"token", "create"}, "--role"},
		{"scanorama-controller", []string{"token", "create", "--role", "viewer", "--ttl", "5s"}, "--ttl"},
		{"scanorama-controller", []string{"token", "revoke", "not-an-id"}, "ID"},
	}
	for _, tc := range cases {
		t.Run(tc.bin+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command(filepath.Join(binDir, tc.bin), tc.args...).CombinedOutput()
			if err == nil {
				t.Fatalf("exit 0; want an error naming %s", tc.flag)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.flag) {
				t.Fatalf("output %q: want one line naming %s", out, tc.flag)
			}
		})
	}
}
