package e2e_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/scanorama/scanorama/agent/enroll"
	"github.com/scanorama/scanorama/controller/pki"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// An agent enrolls with a one-time token, stores its identity 0600, scans
// a loopback listener this test opened, and after a restart needs no token.
// Reusing the token, or an expired one, fails.
func TestEnrolledAgentScans(t *testing.T) {
	t.Parallel()
	s := newCAStack(t)
	ctx := s.ctx()
	s.createSite("lab", "127.0.0.1/32")
	tok := s.token("lab")
	if _, err := pki.ParseToken(tok); err != nil {
		t.Fatalf("last line of agent enroll is not a token: %q: %v", tok, err)
	}
	secret := strings.Split(tok, ".")[2]
	if n := s.count(`SELECT count(*) FROM enrollment_tokens t WHERE t::text LIKE '%' || $1 || '%'`, secret); n != 0 {
		t.Fatal("the token's secret is stored in clear")
	}
	if n := s.count(`SELECT count(*) FROM enrollment_tokens`); n != 1 {
		t.Fatalf("enrollment_tokens rows = %d, want 1", n)
	}
	dir := t.TempDir()
	agent := s.enrolledAgent("agent-1", "lab", "127.0.0.1/32", tok, dir)
	port := listener(t, false)
	tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: "loopback", Network: "127.0.0.1/32", Ports: fmt.Sprint(port), Profile: "quick"})
	if err != nil {
		t.Fatal(err)
	}
	scan := func() *pb.Job {
		t.Helper()
		resp, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()})
		if err != nil {
			t.Fatal(err)
		}
		return s.waitJob(resp.GetJobs()[0].GetId(), 90*time.Second)
	}
	job := scan()
	if job.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED {
		t.Fatalf("job of the enrolled agent: %s %s", job.GetStatus(), job.GetErrorMessage())
	}
	if n := s.count(`SELECT count(*) FROM port_scans WHERE port = $1 AND state = 'open'`, port); n != 1 {
		t.Fatalf("port_scans rows = %d, want 1", n)
	}
	for _, f := range []string{enroll.KeyFile, enroll.CertFile, enroll.CAFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	creds, err := enroll.Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if id := creds.Identity(); id.Site != "lab" || id.AgentID.String() != job.GetWorkerId() {
		t.Errorf("certificate identity %v; want site lab and the job's worker %s", id, job.GetWorkerId())
	}
	// The token's creation and the enrollment are on record, the secret is not.
	if n := s.count(`SELECT count(*) FROM audit_log WHERE action = 'enrollment_token.create' AND actor LIKE 'cli%'`); n != 1 {
		t.Errorf("audit rows of the token's creation = %d, want 1", n)
	}
	if n := s.count(`SELECT count(*) FROM audit_log WHERE action = 'agent.enroll' AND $1 = ANY (object_ids)`, job.GetWorkerId()); n != 1 {
		t.Errorf("audit rows of the enrollment = %d, want 1", n)
	}
	if n := s.count(`SELECT count(*) FROM audit_log a WHERE a::text LIKE '%' || $1 || '%'`, secret); n != 0 {
		t.Error("the enrollment token's secret is in the audit log")
	}

	// Restart without a token: the identity on disk is enough.
	agent.stop(t)
	s.enrolledAgent("agent-1", "", "127.0.0.1/32", "", dir)
	if job := scan(); job.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED || job.GetWorkerId() != creds.Identity().AgentID.String() {
		t.Fatalf("after restart: %s by %s (%s)", job.GetStatus(), job.GetWorkerId(), job.GetErrorMessage())
	}

	// A conflicting --site is refused, naming the flag.
	bad := s.enrolledAgent("agent-1", "other", "127.0.0.1/32", "", dir)
	<-bad.Done()
	if bad.ExitCode() == 0 || !strings.Contains(bad.Output(), "--site") {
		t.Errorf("conflicting --site: exit %d\n%s", bad.ExitCode(), bad.Output())
	}

	// The single-use token is spent; an expired one never works.
	reuse := s.enrolledAgent("agent-2", "", "127.0.0.1/32", tok, t.TempDir())
	<-reuse.Done()
	if reuse.ExitCode() == 0 || !strings.Contains(reuse.Output(), "already used") {
		t.Errorf("reused token: exit %d\n%s", reuse.ExitCode(), reuse.Output())
	}
	short := s.token("lab", "--ttl", "1s")
	time.Sleep(1500 * time.Millisecond)
	expired := s.enrolledAgent("agent-3", "", "127.0.0.1/32", short, t.TempDir())
	<-expired.Done()
	if expired.ExitCode() == 0 || !strings.Contains(expired.Output(), "expired") {
		t.Errorf("expired token: exit %d\n%s", expired.ExitCode(), expired.Output())
	}
	if n := s.count(`SELECT count(*) FROM agents WHERE name IN ('agent-2', 'agent-3')`); n != 0 {
		t.Errorf("refused enrollments created %d agents", n)
	}
	out, err := runCLI(t, "agent", "tokens", "--database-url", s.dbURL)
	if err != nil || !strings.Contains(out, "used") || !strings.Contains(out, "expired") || strings.Contains(out, tok) {
		t.Errorf("agent tokens: %v\n%s", err, out)
	}
}

// A site-A agent cannot act for site B: not by naming site B, not by naming
// a site-B agent's id, not by heartbeating or committing a site-B lease.
func TestEnrolledAgentIsBoundToItsSite(t *testing.T) {
	t.Parallel()
	s := newCAStack(t)
	ctx := s.ctx()
	s.createSite("site-a", "127.0.0.1/32")
	s.createSite("site-b", "127.0.0.1/32")
	s.createSite("site-c") // no scopes
	a, aCreds := s.enrollClient("agent-a", s.token("site-a"))
	b, bCreds := s.enrollClient("agent-b", s.token("site-b"))
	c, _ := s.enrollClient("agent-c", s.token("site-c"))
	aID, bID := aCreds.Identity().AgentID.String(), bCreds.Identity().AgentID.String()

	if _, err := a.Register(ctx, &pb.RegisterRequest{Site: "site-b", Name: "agent-a"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Register naming site B with A's certificate: %v; want PermissionDenied", err)
	}
	reg, err := a.Register(ctx, &pb.RegisterRequest{Name: "agent-a", Scope: []string{"0.0.0.0/0"}})
	if err != nil || reg.GetAgentId() != aID {
		t.Fatalf("Register with A's certificate: %v (id %s, want %s)", err, reg.GetAgentId(), aID)
	}
	if _, err := b.Register(ctx, &pb.RegisterRequest{Name: "agent-b"}); err != nil {
		t.Fatal(err)
	}
	jobs := func(site string) string {
		tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: site, Name: "t", Network: "127.0.0.1/32", Ports: "9"})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetJobs()[0].GetId()
	}
	jobB := jobs("site-b")

	// A's own acquire finds nothing (the job is B's); naming B's id is refused.
	if resp, err := a.AcquireJob(ctx, &pb.AcquireJobRequest{AgentId: aID, Wait: durationpb.New(time.Second)}); err != nil || resp.GetLease() != nil {
		t.Errorf("A acquiring: lease %v, err %v; want none", resp.GetLease(), err)
	}
	if _, err := a.AcquireJob(ctx, &pb.AcquireJobRequest{AgentId: bID, Wait: durationpb.New(time.Second)}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("A acquiring as B: %v; want PermissionDenied", err)
	}
	lease, err := b.AcquireJob(ctx, &pb.AcquireJobRequest{Wait: durationpb.New(5 * time.Second)})
	if err != nil || lease.GetLease().GetJobId() != jobB {
		t.Fatalf("B acquiring its job: %v %v", lease.GetLease(), err)
	}
	l := lease.GetLease()
	progress := []*pb.LeaseProgress{{JobId: l.GetJobId(), LeaseToken: l.GetLeaseToken(), ProgressPercent: 50}}
	if _, err := a.Heartbeat(ctx, &pb.HeartbeatRequest{AgentId: bID, Leases: progress}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("A heartbeating as B: %v; want PermissionDenied", err)
	}
	if hb, err := a.Heartbeat(ctx, &pb.HeartbeatRequest{AgentId: aID, Leases: progress}); err != nil || hb.GetLeases()[0].GetState() != pb.LeaseState_LEASE_STATE_LOST {
		t.Errorf("A heartbeating B's lease as itself: %v %v; want LOST", hb, err)
	}
	for _, agentID := range []string{bID, aID} {
		stream, err := a.StreamResults(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = stream.Send(&pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Open{Open: &pb.ResultsOpen{AgentId: agentID, JobId: l.GetJobId(), LeaseToken: l.GetLeaseToken()}}})
		if err == nil {
			// The verdict is CloseAndRecv's; a refused send shows there too.
			_ = stream.Send(&pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Summary{Summary: &pb.ScanSummary{}}})
		}
		_, err = stream.CloseAndRecv()
		if c := status.Code(err); c != codes.PermissionDenied && c != codes.FailedPrecondition {
			t.Errorf("A committing B's job as %s: %v; want PermissionDenied or FailedPrecondition", agentID, err)
		}
	}
	if _, err := a.FailJob(ctx, &pb.FailJobRequest{AgentId: bID, JobId: l.GetJobId(), LeaseToken: l.GetLeaseToken()}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("A failing B's job as B: %v; want PermissionDenied", err)
	}
	if _, err := a.ReleaseJob(ctx, &pb.ReleaseJobRequest{AgentId: bID, JobId: l.GetJobId(), LeaseToken: l.GetLeaseToken()}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("A releasing B's job as B: %v; want PermissionDenied", err)
	}
	if n := s.count(`SELECT count(*) FROM scan_jobs WHERE id = $1 AND status = 'leased' AND worker_id = $2 AND progress_percent = 0`, jobB, bID); n != 1 {
		t.Errorf("B's job changed under A's forged calls")
	}
	if n := s.count(`SELECT count(*) FROM port_scans`); n != 0 {
		t.Errorf("forged commits wrote %d rows", n)
	}

	// A site without scopes leases nothing to enrolled agents, and says so.
	jobs("site-c")
	if _, err := c.Register(ctx, &pb.RegisterRequest{Name: "agent-c"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.AcquireJob(ctx, &pb.AcquireJobRequest{Wait: durationpb.New(time.Second)})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "scopes") {
		t.Errorf("acquire in a site without scopes: %v; want FailedPrecondition naming scopes", err)
	}
	if _, err := s.admin.UpdateSite(ctx, &pb.UpdateSiteRequest{Name: "site-c", Scopes: []string{"127.0.0.0/8"}}); err != nil {
		t.Fatal(err)
	}
	if resp, err := c.AcquireJob(ctx, &pb.AcquireJobRequest{Wait: durationpb.New(5 * time.Second)}); err != nil || resp.GetLease() == nil {
		t.Errorf("acquire after UpdateSite{scopes}: %v %v", resp.GetLease(), err)
	}
	if _, err := s.admin.UpdateSite(ctx, &pb.UpdateSiteRequest{Name: "site-c", Scopes: []string{"127.0.0.1" + "/8"}}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "scopes[0]") {
		t.Errorf("UpdateSite with host bits: %v; want InvalidArgument naming scopes[0]", err)
	}

	// Without a certificate only Enroll answers; a bad token writes nothing.
	conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(s.transport()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	anon := pb.NewAgentServiceClient(conn)
	if _, err := anon.Register(ctx, &pb.RegisterRequest{Site: "site-a", Name: "x"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Register without a certificate: %v; want Unauthenticated", err)
	}
	if _, err := anon.Enroll(ctx, &pb.EnrollRequest{Token: "nope", Name: "x", CsrDer: []byte{1}}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "token") {
		t.Errorf("Enroll with a malformed token: %v; want InvalidArgument naming token", err)
	}
}

// RevokeAgent: the agent's next call fails within one heartbeat, its lease
// returns to pending at once and another agent of the site finishes the job.
func TestRevokedAgentIsCutOff(t *testing.T) {
	t.Parallel()
	s := newCAStack(t, "--lease-ttl", "3s")
	ctx := s.ctx()
	s.createSite("lab", "127.0.0.1/32")
	port := listener(t, true)
	tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: "slow", Network: "127.0.0.1/32", Ports: fmt.Sprint(port)})
	if err != nil {
		t.Fatal(err)
	}
	scan, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	jobID := scan.GetJobs()[0].GetId()
	dir1 := t.TempDir()
	s.enrolledAgent("first", "", "127.0.0.1/32", s.token("lab"), dir1)
	running := s.waitStatus(jobID, pb.JobStatus_JOB_STATUS_RUNNING, 60*time.Second)
	creds, err := enroll.Load(dir1, nil)
	if err != nil {
		t.Fatal(err)
	}
	firstID := creds.Identity().AgentID.String()
	if running.GetWorkerId() != firstID {
		t.Fatalf("job runs on %s, want the first agent %s", running.GetWorkerId(), firstID)
	}
	first := s.agentClient(creds, s.addr)
	reg, err := first.Register(ctx, &pb.RegisterRequest{Scope: []string{"127.0.0.1/32"}})
	if err != nil {
		t.Fatal(err)
	}
	heartbeat := reg.GetHeartbeatInterval().AsDuration()

	rev, err := s.admin.RevokeAgent(ctx, &pb.RevokeAgentRequest{Id: firstID})
	if err != nil {
		t.Fatal(err)
	}
	if rev.GetAgent().GetState() != "revoked" || len(rev.GetReleasedJobIds()) != 1 || rev.GetReleasedJobIds()[0] != jobID {
		t.Fatalf("RevokeAgent: %v", rev)
	}
	if n := s.count(`SELECT count(*) FROM scan_jobs WHERE id = $1 AND status = 'pending' AND worker_id IS NULL`, jobID); n != 1 {
		t.Errorf("the revoked agent's job did not return to pending at once")
	}
	time.Sleep(heartbeat)
	if _, err := first.Heartbeat(ctx, &pb.HeartbeatRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("heartbeat one interval after revocation: %v; want PermissionDenied", err)
	}
	if _, err := first.Renew(ctx, &pb.RenewRequest{CsrDer: []byte{1}}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("renew after revocation: %v; want PermissionDenied", err)
	}
	agents, err := s.admin.ListAgents(ctx, &pb.ListAgentsRequest{Site: "lab"})
	if err != nil || len(agents.GetAgents()) != 1 || agents.GetAgents()[0].GetState() != "revoked" {
		t.Errorf("ListAgents after revocation: %v %v", agents, err)
	}

	// Another agent of the site takes the job over.
	dir2 := t.TempDir()
	s.enrolledAgent("second", "", "127.0.0.1/32", s.token("lab"), dir2)
	job := s.waitJob(jobID, 120*time.Second)
	second, err := enroll.Load(dir2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if job.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED || job.GetWorkerId() != second.Identity().AgentID.String() {
		t.Fatalf("job after revocation: %s by %s (%s); want completed by the second agent", job.GetStatus(), job.GetWorkerId(), job.GetErrorMessage())
	}
	if n := s.count(`SELECT count(*) FROM scan_job_leases WHERE job_id = $1 AND worker_id = $2 AND outcome = 'released'`, jobID, firstID); n != 1 {
		t.Errorf("the revoked agent's lease was not ended as released")
	}
}

// With a 20 s certificate the agent renews at ~13 s over mTLS without a
// restart, and keeps working after its first certificate expired (the
// controller refuses expired certificates even on open connections).
func TestAgentCertificateRenewal(t *testing.T) {
	t.Parallel()
	s := newCAStack(t, "--agent-cert-ttl", "20s")
	ctx := s.ctx()
	s.createSite("lab", "127.0.0.1/32")
	dir := t.TempDir()
	agent := s.enrolledAgent("agent-1", "", "127.0.0.1/32", s.token("lab"), dir)
	var first *enroll.Credentials
	eventually(t, "enrolled", 30*time.Second, func() bool {
		c, err := enroll.Load(dir, nil)
		first = c
		return err == nil
	})
	expires := first.NotAfter()
	if life := time.Until(expires); life > 21*time.Second {
		t.Fatalf("certificate lives %s, want --agent-cert-ttl 20s", life)
	}
	eventually(t, "certificate renewed on disk", 40*time.Second, func() bool {
		c, err := enroll.Load(dir, nil)
		return err == nil && c.NotAfter().After(expires)
	})
	// Past the first certificate's end, the agent still works.
	time.Sleep(time.Until(expires) + time.Second)
	port := listener(t, false)
	tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: "loopback", Network: "127.0.0.1/32", Ports: fmt.Sprint(port), Profile: "quick"})
	if err != nil {
		t.Fatal(err)
	}
	scan, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if job := s.waitJob(scan.GetJobs()[0].GetId(), 90*time.Second); job.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED {
		t.Fatalf("job after the first certificate expired: %s %s", job.GetStatus(), job.GetErrorMessage())
	}
	select {
	case <-agent.Done():
		t.Fatalf("the agent exited:\n%s", agent.Output())
	default:
	}
	mustContain(t, agent.Output(), "agent certificate renewed")
	// The expired certificate itself is refused.
	old := s.agentClient(first, s.addr)
	if _, err := old.Heartbeat(ctx, &pb.HeartbeatRequest{}); err == nil {
		t.Error("a call with the expired certificate succeeded")
	}
}

// Two controllers on one database share the CA: an agent enrolled on one is
// accepted by the other; a controller with another CA refuses to start.
func TestTwoControllersAcceptTheSameAgent(t *testing.T) {
	t.Parallel()
	s1 := newCAStack(t)
	ctx := s1.ctx()
	dir2 := t.TempDir()
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
		data, err := os.ReadFile(filepath.Join(s1.dataDir, pki.CADir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir2, pki.CADir), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir2, pki.CADir, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// ca init on the copy is idempotent: nothing overwritten.
	if out := caInit(t, dir2, s1.dbURL); !strings.Contains(out, "already exists") {
		t.Errorf("ca init on an existing CA: %s", out)
	}
	s2 := startCAStack(t, s1.dbURL, dir2)
	s1.createSite("lab", "127.0.0.1/32")

	_, creds := s1.enrollClient("agent-1", s1.token("lab"))
	for _, addr := range []string{s1.addr, s2.addr} {
		c := s1.agentClient(creds, addr)
		if reg, err := c.Register(ctx, &pb.RegisterRequest{}); err != nil || reg.GetAgentId() != creds.Identity().AgentID.String() {
			t.Errorf("Register on %s: %v %v", addr, reg, err)
		}
	}
	// Enrolling against the second controller works with a token of the first's CLI.
	if _, c2 := s1.enrollClient("agent-2", s1.token("lab"), s2.addr); c2.Identity().Site != "lab" {
		t.Errorf("enrolled on the second controller: %v", c2.Identity())
	}

	// A third data dir with its own CA: ca init refuses, serve refuses.
	dir3 := t.TempDir()
	if _, err := runCLI(t, "ca", "init", "--data-dir", dir3, "--database-url", s1.dbURL); err == nil || !strings.Contains(err.Error(), "already has controller CA") {
		t.Errorf("ca init of a second CA for the database: %v", err)
	}
	other, err := pki.NewCA("rogue")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Save(dir3); err != nil {
		t.Fatal(err)
	}
	p := start(t, "controller-3", "scanorama-controller", "serve", "--listen", freePort(t), "--database-url", s1.dbURL, "--data-dir", dir3)
	select {
	case <-p.Done():
		mustContain(t, p.Output(), "controller CA differs")
	case <-time.After(60 * time.Second):
		t.Fatal("a controller with another CA kept running")
	}
}

// --require-agent-approval: a new agent leases nothing until ApproveAgent.
func TestAgentApproval(t *testing.T) {
	t.Parallel()
	s := newCAStack(t, "--require-agent-approval")
	ctx := s.ctx()
	s.createSite("lab", "127.0.0.1/32")
	c, creds := s.enrollClient("agent-1", s.token("lab"))
	if _, err := c.Register(ctx, &pb.RegisterRequest{}); err != nil {
		t.Fatal(err)
	}
	agents, err := s.admin.ListAgents(ctx, &pb.ListAgentsRequest{Site: "lab"})
	if err != nil || agents.GetAgents()[0].GetState() != "pending_approval" {
		t.Fatalf("ListAgents: %v %v", agents, err)
	}
	if _, err := c.AcquireJob(ctx, &pb.AcquireJobRequest{Wait: durationpb.New(time.Second)}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("acquire while pending approval: %v; want FailedPrecondition", err)
	}
	ap, err := s.admin.ApproveAgent(ctx, &pb.ApproveAgentRequest{Id: creds.Identity().AgentID.String()})
	if err != nil || ap.GetAgent().GetState() != "active" {
		t.Fatalf("ApproveAgent: %v %v", ap, err)
	}
	eventually(t, "approved agent may acquire", 10*time.Second, func() bool {
		_, err := c.AcquireJob(ctx, &pb.AcquireJobRequest{Wait: durationpb.New(100 * time.Millisecond)})
		return err == nil
	})
	if _, err := s.admin.ApproveAgent(ctx, &pb.ApproveAgentRequest{Id: creds.Identity().AgentID.String()}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("approving twice: %v; want FailedPrecondition", err)
	}
}

func TestTrustFlagsNameTheBadFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		bin  string
		args []string
		flag string
	}{
		{"scanorama-controller", []string{"serve", "--agent-cert-ttl", "1s"}, "--agent-cert-ttl"},
		{"scanorama-controller", []string{"serve", "--advertise", "a b"}, "--advertise"},
		{"scanorama-controller", []string{"agent", "enroll"}, "--site"},
		{"scanorama-controller", []string{"agent", "enroll", "--site", "lab", "--uses", "0"}, "--uses"},
		{"scanorama-controller", []string{"agent", "enroll", "--site", "lab", "--ttl", "0s"}, "--ttl"},
		{"scanorama-controller", []string{"agent", "revoke-token"}, "--id"},
		{"scanorama-agent", []string{"--controller", "127.0.0.1:1", "--data-dir", dir, "--enroll-token", "garbage"}, "--enroll-token"},
		{"scanorama-agent", []string{"--controller", "127.0.0.1:1", "--site", "lab", "--enroll-token", "x", "--tls-cert", "a.pem", "--tls-key", "b.pem"}, "--enroll-token"},
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
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a refused token wrote %d files into --data-dir", len(entries))
	}
}

// A revoked enrollment token is refused, saying so.
func TestRevokedEnrollmentToken(t *testing.T) {
	t.Parallel()
	s := newCAStack(t)
	s.createSite("lab", "127.0.0.1/32")
	tok := s.token("lab", "--uses", "5")
	id := strings.Split(tok, ".")[1]
	if out, err := runCLI(t, "agent", "revoke-token", "--id", id, "--database-url", s.dbURL); err != nil || !strings.Contains(out, id) {
		t.Fatalf("agent revoke-token: %v %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := enroll.Enroll(ctx, enroll.Request{Controllers: []string{s.addr}, Token: tok, Name: "x", Dir: t.TempDir()}, nil)
	if err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("enroll with a revoked token: %v", err)
	}
	if n := s.count(`SELECT count(*) FROM agents`); n != 0 {
		t.Errorf("a refused enrollment created %d agents", n)
	}
	if n := s.count(`SELECT uses FROM enrollment_tokens WHERE id = $1`, id); n != 0 {
		t.Errorf("a refused enrollment used the token (%d uses)", n)
	}
}

// Enrollment tokens through AdminService: made, used, listed, revoked; bad
// input names the field and writes nothing.
func TestEnrollmentTokenRPCs(t *testing.T) {
	t.Parallel()
	s := newCAStack(t)
	ctx := s.ctx()
	s.createSite("lab", "127.0.0.1/32")
	for _, tc := range []struct {
		req   *pb.CreateEnrollmentTokenRequest
		field string
	}{
		{&pb.CreateEnrollmentTokenRequest{}, "site"},
		{&pb.CreateEnrollmentTokenRequest{Site: "lab", Uses: -1}, "uses"},
		{&pb.CreateEnrollmentTokenRequest{Site: "lab", Ttl: durationpb.New(time.Millisecond)}, "ttl"},
	} {
		if _, err := s.admin.CreateEnrollmentToken(ctx, tc.req); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("CreateEnrollmentToken(%v): %v; want InvalidArgument naming %s", tc.req, err, tc.field)
		}
	}
	if _, err := s.admin.CreateEnrollmentToken(ctx, &pb.CreateEnrollmentTokenRequest{Site: "nowhere"}); status.Code(err) != codes.NotFound {
		t.Errorf("CreateEnrollmentToken for a missing site: %v; want NotFound", err)
	}
	if n := s.count(`SELECT count(*) FROM enrollment_tokens`); n != 0 {
		t.Fatalf("refused calls wrote %d tokens", n)
	}
	made, err := s.admin.CreateEnrollmentToken(ctx, &pb.CreateEnrollmentTokenRequest{Site: "lab", Uses: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, c := s.enrollClient("agent-1", made.GetToken()); c.Identity().Site != "lab" {
		t.Errorf("enrolled with an AdminService token: %v", c.Identity())
	}
	list, err := s.admin.ListEnrollmentTokens(ctx, &pb.ListEnrollmentTokensRequest{})
	if err != nil || len(list.GetTokens()) != 1 || list.GetTokens()[0].GetUses() != 1 || list.GetTokens()[0].GetMaxUses() != 2 {
		t.Fatalf("ListEnrollmentTokens: %v %v", list, err)
	}
	if strings.Contains(list.String(), strings.Split(made.GetToken(), ".")[2]) {
		t.Error("ListEnrollmentTokens shows the secret")
	}
	id := made.GetEnrollmentToken().GetId()
	if _, err := s.admin.RevokeEnrollmentToken(ctx, &pb.RevokeEnrollmentTokenRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.admin.RevokeEnrollmentToken(ctx, &pb.RevokeEnrollmentTokenRequest{Id: "x"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("RevokeEnrollmentToken with a bad id: %v", err)
	}
	_, err = enroll.Enroll(ctx, enroll.Request{Controllers: []string{s.addr}, Token: made.GetToken(), Name: "agent-2", Dir: t.TempDir()}, nil)
	if err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("enroll with the revoked token's second use: %v", err)
	}
}
