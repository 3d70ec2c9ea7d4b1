package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/scanorama/scanorama/controller/authz"
	"github.com/scanorama/scanorama/controller/pgtest"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// newSecureStack starts a controller as deployments run it: TLS (a test CA)
// and no --insecure, so every AdminService call needs credentials. The
// stack's own clients send an admin token made with "token create".
func newSecureStack(t *testing.T) *stack {
	t.Helper()
	ca := newTestCA(t, "scanorama-people")
	cert, key := ca.serverLeaf("controller")
	s := &stack{t: t, dbURL: pgtest.NewDatabase(t), addr: freePortOn(t, netip.MustParseAddr("127.0.0.1")),
		creds: clientCreds(t, ca, "", ""), extra: []string{"--tls-cert", cert, "--tls-key", key}, agentArgs: []string{"--tls-ca", ca.file}}
	s.token = s.createToken("--role", "admin", "--name", "e2e-admin")
	s.startController()
	s.connect()
	return s
}

// client dials the stack's TLS with token ("" sends none).
func (s *stack) client(token string) pb.AdminServiceClient {
	s.t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(s.transport())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	conn, err := grpc.NewClient(s.addr, opts...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { conn.Close() })
	return pb.NewAdminServiceClient(conn)
}

// fingerprint sums up what refused calls must never change.
func (s *stack) fingerprint() string {
	s.t.Helper()
	var fp string
	err := s.pool.QueryRow(context.Background(), `SELECT concat_ws(',',
  (SELECT count(*) FROM sites), (SELECT count(*) FROM scan_targets), (SELECT max(updated_at)::text FROM scan_targets),
  (SELECT count(*) FROM scan_exclusions), (SELECT count(*) FROM scan_profiles), (SELECT count(*) FROM scan_jobs),
  (SELECT count(*) FROM scan_jobs WHERE status = 'cancelled'), (SELECT count(*) FROM scan_runs),
  (SELECT count(*) FROM hosts WHERE ignore_scanning), (SELECT count(*) FROM agents WHERE state = 'draining'),
  (SELECT count(*) FROM api_tokens), (SELECT count(*) FROM api_tokens WHERE revoked_at IS NOT NULL),
  (SELECT count(*) FROM audit_log))`).Scan(&fp)
	if err != nil {
		s.t.Fatal(err)
	}
	return fp
}

// recvErr drains a server stream; a stream still open after its context's
// deadline ends with DeadlineExceeded.
func recvErr[T any](stream interface{ Recv() (T, error) }, err error) error {
	if err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// Every AdminService RPC, called with no credentials, and with a token of
// each role: Unauthenticated without credentials, PermissionDenied below the
// method's least role (writing nothing, not even an audit row), and never an
// auth error at or above it.
func TestEveryRPCEveryRole(t *testing.T) {
	t.Parallel()
	s := newSecureStack(t)
	ctx := s.ctx()
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: "net", Network: "10.99.0.0/24", Ports: "22"})
	if err != nil {
		t.Fatal(err)
	}
	targetID := tgt.GetTarget().GetId()
	scan, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: targetID})
	if err != nil {
		t.Fatal(err)
	}
	jobID := scan.GetJobs()[0].GetId()
	var n atomic.Int64
	uniq := func(p string) string { return fmt.Sprintf("%s-%d", p, n.Add(1)) }
	calls := map[string]func(context.Context, pb.AdminServiceClient) error{
		"CreateSite": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.CreateSite(ctx, &pb.CreateSiteRequest{Name: uniq("site")})
			return err
		},
		"ListSites": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ListSites(ctx, &pb.ListSitesRequest{})
			return err
		},
		"DeleteSite": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.DeleteSite(ctx, &pb.DeleteSiteRequest{Name: "no-such-site"})
			return err
		},
		"CreateExclusion": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.CreateExclusion(ctx, &pb.CreateExclusionRequest{Site: "lab", Network: "10.99.5.0/24"})
			return err
		},
		"ListExclusions": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ListExclusions(ctx, &pb.ListExclusionsRequest{})
			return err
		},
		"DeleteExclusion": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.DeleteExclusion(ctx, &pb.DeleteExclusionRequest{Id: uuid.NewString()})
			return err
		},
		"CreateTarget": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: uniq("t"), Network: "10.99.1.0/24", Ports: "22"})
			return err
		},
		"GetTarget": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.GetTarget(ctx, &pb.GetTargetRequest{Id: targetID})
			return err
		},
		"ListTargets": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ListTargets(ctx, &pb.ListTargetsRequest{})
			return err
		},
		"UpdateTarget": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.UpdateTarget(ctx, &pb.UpdateTargetRequest{Id: targetID, Ports: proto.String("22,80")})
			return err
		},
		"DeleteTarget": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.DeleteTarget(ctx, &pb.DeleteTargetRequest{Id: uuid.NewString()})
			return err
		},
		"CreateProfile": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.CreateProfile(ctx, &pb.CreateProfileRequest{Name: uniq("p"), Options: &pb.ScanOptions{ScanType: pb.ScanType_SCAN_TYPE_CONNECT, TopPorts: 10}})
			return err
		},
		"GetProfile": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.GetProfile(ctx, &pb.GetProfileRequest{Name: "quick"})
			return err
		},
		"ListProfiles": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ListProfiles(ctx, &pb.ListProfilesRequest{})
			return err
		},
		"DeleteProfile": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.DeleteProfile(ctx, &pb.DeleteProfileRequest{Name: "no-such-profile"})
			return err
		},
		"ScanNow": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ScanNow(ctx, &pb.ScanNowRequest{TargetId: targetID})
			return err
		},
		"GetJob": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.GetJob(ctx, &pb.GetJobRequest{Id: jobID})
			return err
		},
		"ListJobs": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ListJobs(ctx, &pb.ListJobsRequest{})
			return err
		},
		"CancelJob": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.CancelJob(ctx, &pb.CancelJobRequest{Id: uuid.NewString()})
			return err
		},
		"ListAgents": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ListAgents(ctx, &pb.ListAgentsRequest{})
			return err
		},
		"DrainAgent": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.DrainAgent(ctx, &pb.DrainAgentRequest{Site: "lab", Name: "nobody", Drain: true})
			return err
		},
		"ListHosts": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ListHosts(ctx, &pb.ListHostsRequest{})
			return err
		},
		"GetHost": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.GetHost(ctx, &pb.GetHostRequest{Site: "lab", IpAddress: "10.99.0.10"})
			return err
		},
		"ListHostChanges": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ListHostChanges(ctx, &pb.ListHostChangesRequest{})
			return err
		},
		"UpdateHost": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.UpdateHost(ctx, &pb.UpdateHostRequest{Site: "lab", IpAddress: "10.99.0.10", IgnoreScanning: true})
			return err
		},
		"ExportResults": func(ctx context.Context, c pb.AdminServiceClient) error {
			st, err := c.ExportResults(ctx, &pb.ExportResultsRequest{Site: "lab"})
			return recvErr[*pb.ExportResultsResponse](st, err)
		},
		"WatchEvents": func(ctx context.Context, c pb.AdminServiceClient) error {
			ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			st, err := c.WatchEvents(ctx, &pb.WatchEventsRequest{})
			return recvErr[*pb.WatchEventsResponse](st, err)
		},
		"GetStats": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.GetStats(ctx, &pb.GetStatsRequest{})
			return err
		},
		"CreateToken": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.CreateToken(ctx, &pb.CreateTokenRequest{Name: uniq("tok"), Role: pb.TokenRole_TOKEN_ROLE_VIEWER})
			return err
		},
		"ListTokens": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ListTokens(ctx, &pb.ListTokensRequest{})
			return err
		},
		"RevokeToken": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.RevokeToken(ctx, &pb.RevokeTokenRequest{Id: "00000000000000ff"})
			return err
		},
		"ListAuditEvents": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{})
			return err
		},
		"ImportResults": func(ctx context.Context, c pb.AdminServiceClient) error {
			st, err := c.ImportResults(ctx)
			if err != nil {
				return err
			}
			if err := st.Send(&pb.ImportResultsRequest{Msg: &pb.ImportResultsRequest_Start{Start: &pb.ImportStart{Site: "nosuchsite"}}}); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			_, err = st.CloseAndRecv()
			return err
		},
		"WatchChanges": func(ctx context.Context, c pb.AdminServiceClient) error {
			st, err := c.WatchChanges(ctx, &pb.WatchChangesRequest{StopAtTip: true})
			return recvErr[*pb.WatchChangesResponse](st, err)
		},
		"CreateWebhook": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.CreateWebhook(ctx, &pb.CreateWebhookRequest{Name: uniq("hook"), Url: "http://127.0.0.1:9/hook", Site: "nosuchsite"})
			return err
		},
		"ListWebhooks": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ListWebhooks(ctx, &pb.ListWebhooksRequest{})
			return err
		},
		"DeleteWebhook": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.DeleteWebhook(ctx, &pb.DeleteWebhookRequest{Id: uuid.NewString()})
			return err
		},
		"ListWebhookDeliveries": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ListWebhookDeliveries(ctx, &pb.ListWebhookDeliveriesRequest{WebhookId: uuid.NewString()})
			return err
		},
		"RetryWebhookDeliveries": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.RetryWebhookDeliveries(ctx, &pb.RetryWebhookDeliveriesRequest{WebhookId: uuid.NewString()})
			return err
		},
		"UpdateSite": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.UpdateSite(ctx, &pb.UpdateSiteRequest{Name: "nosuchsite", Scopes: []string{"10.99.0.0/16"}})
			return err
		},
		"PauseScanning": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.PauseScanning(ctx, &pb.PauseScanningRequest{Site: "nosuchsite"})
			return err
		},
		"ResumeScanning": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ResumeScanning(ctx, &pb.ResumeScanningRequest{Site: "nosuchsite"})
			return err
		},
		"UnarchiveTarget": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.UnarchiveTarget(ctx, &pb.UnarchiveTargetRequest{Id: uuid.NewString()})
			return err
		},
		"UnarchiveSite": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.UnarchiveSite(ctx, &pb.UnarchiveSiteRequest{Name: "no-such-site"})
			return err
		},
		"RevokeAgent": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.RevokeAgent(ctx, &pb.RevokeAgentRequest{Id: uuid.NewString()})
			return err
		},
		"ApproveAgent": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ApproveAgent(ctx, &pb.ApproveAgentRequest{Id: uuid.NewString()})
			return err
		},
		"CreateEnrollmentToken": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.CreateEnrollmentToken(ctx, &pb.CreateEnrollmentTokenRequest{Site: "nosuchsite"})
			return err
		},
		"ListEnrollmentTokens": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.ListEnrollmentTokens(ctx, &pb.ListEnrollmentTokensRequest{})
			return err
		},
		"RevokeEnrollmentToken": func(ctx context.Context, c pb.AdminServiceClient) error {
			_, err := c.RevokeEnrollmentToken(ctx, &pb.RevokeEnrollmentTokenRequest{Id: "00000000000000ff"})
			return err
		},
	}
	// The test must call every method AdminService has, now and later.
	for _, m := range pb.AdminService_ServiceDesc.Methods {
		if calls[m.MethodName] == nil {
			t.Errorf("no call for AdminService/%s in this test", m.MethodName)
		}
	}
	for _, m := range pb.AdminService_ServiceDesc.Streams {
		if calls[m.StreamName] == nil {
			t.Errorf("no call for AdminService/%s in this test", m.StreamName)
		}
	}
	callers := []struct {
		role   authz.Role
		client pb.AdminServiceClient
	}{
		{authz.RoleNone, s.client("")},
		{authz.RoleViewer, s.client(s.createToken("--role", "viewer", "--name", "matrix-viewer"))},
		{authz.RoleOperator, s.client(s.createToken("--role", "operator", "--name", "matrix-operator"))},
		{authz.RoleAdmin, s.client(s.createToken("--role", "admin", "--name", "matrix-admin"))},
		// A malformed and an unknown token are no better than none.
		{authz.RoleNone, s.client("scn_0123456789abcdef_" + strings.Repeat("0", 64))},
		{authz.RoleNone, s.client("not-a-token")},
	}
	for method, call := range calls {
		rule, ok := authz.RuleFor("/" + pb.AdminService_ServiceDesc.ServiceName + "/" + method)
		if !ok {
			t.Errorf("%s: no rule", method)
			continue
		}
		for _, caller := range callers {
			before := s.fingerprint()
			err := call(ctx, caller.client)
			code := status.Code(err)
			switch {
			case caller.role == authz.RoleNone:
				if code != codes.Unauthenticated {
					t.Errorf("%s without valid credentials: %v; want Unauthenticated", method, err)
				}
			case caller.role < rule.Least:
				if code != codes.PermissionDenied {
					t.Errorf("%s as %s (least %s): %v; want PermissionDenied", method, caller.role, rule.Least, err)
				}
			default:
				if code == codes.Unauthenticated || code == codes.PermissionDenied {
					t.Errorf("%s as %s (least %s): %v; want no auth error", method, caller.role, rule.Least, err)
				}
				continue
			}
			if after := s.fingerprint(); after != before {
				t.Errorf("%s refused for %s wrote something: %s -> %s", method, caller.role, before, after)
			}
		}
	}
}

// seedSite creates site name with a target, runs ScanNow and has a
// simulated agent of that site commit host ip with port 22 open.
func seedSite(t *testing.T, s *stack, name, ip string) (targetID, jobID string, agent *simAgent) {
	t.Helper()
	ctx := s.ctx()
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: name}); err != nil {
		t.Fatal(err)
	}
	tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: name, Name: "net", Network: ip + "/32", Ports: "22"})
	if err != nil {
		t.Fatal(err)
	}
	scan, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	a := register(t, s.agentc, name, "agent-"+name, ip+"/32")
	l := a.acquire(10 * time.Second)
	if l == nil {
		t.Fatalf("no lease for site %s", name)
	}
	if _, err := a.send(context.Background(), l, [][]*pb.HostResult{{host(ip, 22)}}, false); err != nil {
		t.Fatal(err)
	}
	return tgt.GetTarget().GetId(), scan.GetJobs()[0].GetId(), a
}

// A viewer token confined to site a never sees site b's data through
// ListSites, ListHosts, GetHost, ListJobs, GetJob, ExportResults,
// ListHostChanges, GetStats or WatchEvents (both sites hold the same
// address); a site-scoped admin cannot widen its reach.
func TestSiteScopedTokens(t *testing.T) {
	t.Parallel()
	s := newSecureStack(t)
	ctx := s.ctx()
	targetA, jobA, agentA := seedSite(t, s, "a", "10.99.0.10")
	targetB, jobB, agentB := seedSite(t, s, "b", "10.99.0.10")
	viewer := s.client(s.createToken("--role", "viewer", "--site", "a", "--name", "a-viewer"))

	sites, err := viewer.ListSites(ctx, &pb.ListSitesRequest{})
	if err != nil || len(sites.GetSites()) != 1 || sites.GetSites()[0].GetName() != "a" {
		t.Errorf("ListSites: %v %v", sites, err)
	}
	hosts, err := viewer.ListHosts(ctx, &pb.ListHostsRequest{})
	if err != nil || len(hosts.GetHosts()) != 1 || hosts.GetHosts()[0].GetSite() != "a" {
		t.Errorf("ListHosts: %v %v", hosts, err)
	}
	if _, err := viewer.ListHosts(ctx, &pb.ListHostsRequest{Site: "b"}); status.Code(err) != codes.NotFound {
		t.Errorf("ListHosts{site b}: %v; want NotFound", err)
	}
	if _, err := viewer.GetHost(ctx, &pb.GetHostRequest{Site: "a", IpAddress: "10.99.0.10"}); err != nil {
		t.Errorf("GetHost in a: %v", err)
	}
	if _, err := viewer.GetHost(ctx, &pb.GetHostRequest{Site: "b", IpAddress: "10.99.0.10"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetHost in b: %v; want NotFound", err)
	}
	jobs, err := viewer.ListJobs(ctx, &pb.ListJobsRequest{})
	if err != nil || len(jobs.GetJobs()) == 0 {
		t.Errorf("ListJobs: %v %v", jobs, err)
	}
	for _, j := range jobs.GetJobs() {
		if j.GetSite() != "a" || j.GetId() == jobB {
			t.Errorf("ListJobs shows %s of site %s", j.GetId(), j.GetSite())
		}
	}
	if _, err := viewer.GetJob(ctx, &pb.GetJobRequest{Id: jobB}); status.Code(err) != codes.NotFound {
		t.Errorf("GetJob of b: %v; want NotFound", err)
	}
	if _, err := viewer.GetTarget(ctx, &pb.GetTargetRequest{Id: targetB}); status.Code(err) != codes.NotFound {
		t.Errorf("GetTarget of b: %v; want NotFound", err)
	}
	if _, err := viewer.GetTarget(ctx, &pb.GetTargetRequest{Id: targetA}); err != nil {
		t.Errorf("GetTarget of a: %v", err)
	}
	export := func(req *pb.ExportResultsRequest) (string, error) {
		st, err := viewer.ExportResults(ctx, req)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for {
			m, err := st.Recv()
			if errors.Is(err, io.EOF) {
				return b.String(), nil
			}
			if err != nil {
				return b.String(), err
			}
			b.WriteString(m.GetData())
		}
	}
	for _, req := range []*pb.ExportResultsRequest{{Site: "b"}, {JobId: jobB}} {
		if out, err := export(req); status.Code(err) != codes.NotFound || strings.Contains(out, `"site":"b"`) {
			t.Errorf("ExportResults %v: %v %q; want NotFound", req, err, out)
		}
	}
	if out, err := export(&pb.ExportResultsRequest{JobId: jobA}); err != nil || !strings.Contains(out, "10.99.0.10") {
		t.Errorf("ExportResults of a's job: %v %q", err, out)
	}
	changes, err := viewer.ListHostChanges(ctx, &pb.ListHostChangesRequest{})
	if err != nil || len(changes.GetChanges()) == 0 {
		t.Errorf("ListHostChanges: %v %v", changes, err)
	}
	for _, c := range changes.GetChanges() {
		if c.GetSite() != "a" {
			t.Errorf("ListHostChanges shows a change of site %s", c.GetSite())
		}
	}
	stats, err := viewer.GetStats(ctx, &pb.GetStatsRequest{})
	if err != nil || stats.GetHosts() != 1 {
		t.Errorf("GetStats: hosts %d, %v; want 1 (site a's)", stats.GetHosts(), err)
	}

	// WatchEvents: a job of b runs and commits (a new open port), then a job
	// of a; events come in order, so a's first event arriving with none of
	// b's before it shows b's were withheld.
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	watch, err := viewer.WatchEvents(wctx, &pb.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The server subscribes before it sends anything; give the stream a moment to open.
	time.Sleep(500 * time.Millisecond)
	runJob := func(a *simAgent, targetID, ip string) string {
		t.Helper()
		sc, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: targetID})
		if err != nil {
			t.Fatal(err)
		}
		l := a.acquire(10 * time.Second)
		if l == nil || l.GetJobId() != sc.GetJobs()[0].GetId() {
			t.Fatalf("lease %v for job %s", l, sc.GetJobs()[0].GetId())
		}
		if _, err := a.send(ctx, l, [][]*pb.HostResult{{host(ip, 22, 80)}}, false); err != nil {
			t.Fatal(err)
		}
		return l.GetJobId()
	}
	bJob := runJob(agentB, targetB, "10.99.0.10")
	aJob := runJob(agentA, targetA, "10.99.0.10")
	for seen := map[string]bool{}; !seen[pb.JobStatus_JOB_STATUS_COMPLETED.String()] || !seen["port_opened"]; {
		ev, err := watch.Recv()
		if err != nil {
			t.Fatalf("WatchEvents after %v: %v", seen, err)
		}
		switch e := ev.GetEvent().(type) {
		case *pb.WatchEventsResponse_Job:
			if e.Job.GetJobId() == bJob {
				t.Fatalf("WatchEvents of a site-a viewer delivered site b's job %s", bJob)
			}
			if e.Job.GetJobId() == aJob {
				seen[e.Job.GetStatus().String()] = true
			}
		case *pb.WatchEventsResponse_HostChange:
			if e.HostChange.GetSite() != "a" {
				t.Fatalf("WatchEvents of a site-a viewer delivered a host change of site %s", e.HostChange.GetSite())
			}
			seen[e.HostChange.GetEvent()] = true
		}
	}

	// A site-scoped admin cannot mint an unscoped token, reach site b, or create sites.
	scopedAdmin := s.client(s.createToken("--role", "admin", "--site", "a", "--name", "a-admin"))
	if _, err := scopedAdmin.CreateToken(ctx, &pb.CreateTokenRequest{Name: "wide", Role: pb.TokenRole_TOKEN_ROLE_ADMIN}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("scoped admin CreateToken for every site: %v; want PermissionDenied", err)
	}
	if _, err := scopedAdmin.CreateToken(ctx, &pb.CreateTokenRequest{Name: "b", Role: pb.TokenRole_TOKEN_ROLE_VIEWER, Sites: []string{"b"}}); status.Code(err) != codes.NotFound {
		t.Errorf("scoped admin CreateToken for site b: %v; want NotFound", err)
	}
	if _, err := scopedAdmin.CreateToken(ctx, &pb.CreateTokenRequest{Name: "a2", Role: pb.TokenRole_TOKEN_ROLE_VIEWER, Sites: []string{"a"}}); err != nil {
		t.Errorf("scoped admin CreateToken for site a: %v", err)
	}
	if _, err := scopedAdmin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "c"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("scoped admin CreateSite: %v; want PermissionDenied", err)
	}
	if _, err := scopedAdmin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "b", Name: "x", Network: "10.99.3.0/24", Ports: "22"}); status.Code(err) != codes.NotFound {
		t.Errorf("scoped admin CreateTarget in b: %v; want NotFound", err)
	}
	if _, err := scopedAdmin.CancelJob(ctx, &pb.CancelJobRequest{Id: jobB}); status.Code(err) != codes.NotFound {
		t.Errorf("scoped admin CancelJob of b: %v; want NotFound", err)
	}
	toks, err := scopedAdmin.ListTokens(ctx, &pb.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks.GetTokens() {
		if len(tk.GetSites()) != 1 || tk.GetSites()[0] != "a" {
			t.Errorf("scoped admin lists token %s with sites %v", tk.GetName(), tk.GetSites())
		}
	}
}

var secretRe = regexp.MustCompile(`scn_([0-9a-f]{16})_([0-9a-f]{64})`)

// Mutations are audited with the caller's identity (also in created_by),
// refused calls are not, a revoked token stops working, and no token
// secret appears in the controller's log, the audit log, any error or any
// listing.
func TestAuditAndNoSecretLeaks(t *testing.T) {
	t.Parallel()
	s := newSecureStack(t)
	ctx := s.ctx()
	adminID := secretRe.FindStringSubmatch(s.token)[1]
	secrets := []string{secretRe.FindStringSubmatch(s.token)[2]}

	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	created, err := s.admin.CreateToken(ctx, &pb.CreateTokenRequest{Name: "ops", Role: pb.TokenRole_TOKEN_ROLE_OPERATOR, Sites: []string{"lab"}, Ttl: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	m := secretRe.FindStringSubmatch(created.GetSecret())
	if m == nil || m[1] != created.GetToken().GetId() {
		t.Fatalf("CreateToken secret %q does not carry id %s", created.GetSecret(), created.GetToken().GetId())
	}
	secrets = append(secrets, m[2])
	ops := s.client(created.GetSecret())
	tgt, err := ops.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: "net", Network: "10.99.0.0/24", Ports: "22"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ops.CreateSite(ctx, &pb.CreateSiteRequest{Name: "denied"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("operator CreateSite: %v", err)
	}
	// A token with the right id and a wrong secret, and its error message.
	forged := "scn_" + m[1] + "_" + strings.Repeat("a", 64)
	_, err = s.client(forged).ListSites(ctx, &pb.ListSitesRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("forged secret: %v", err)
	}
	errText := err.Error()
	if _, err := s.admin.RevokeToken(ctx, &pb.RevokeTokenRequest{Id: m[1]}); err != nil {
		t.Fatal(err)
	}
	_, err = ops.ListSites(ctx, &pb.ListSitesRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("revoked token: %v; want Unauthenticated", err)
	}
	errText += err.Error()

	// Audit rows: who, what, which site and objects, outcome; no refused call.
	adminActor := "token:e2e-admin/" + adminID
	opsActor := "token:ops/" + m[1]
	events, err := s.admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/scanorama.v1.AdminService/CreateSite":   adminActor,
		"/scanorama.v1.AdminService/CreateToken":  adminActor,
		"/scanorama.v1.AdminService/CreateTarget": opsActor,
		"/scanorama.v1.AdminService/RevokeToken":  adminActor,
	}
	for _, e := range events.GetEvents() {
		if e.GetOutcome() != "OK" {
			t.Errorf("audit row of a refused or failed call: %v", e)
		}
		if actor, ok := want[e.GetAction()]; ok && actor == e.GetActor() && strings.HasPrefix(e.GetPeer(), "127.0.0.1:") {
			if e.GetAction() == "/scanorama.v1.AdminService/CreateTarget" &&
				(e.GetSite() != "lab" || !contains(e.GetObjectIds(), tgt.GetTarget().GetId()) || !strings.Contains(e.GetRequestJson(), "10.99.0.0/24")) {
				t.Errorf("CreateTarget audit row: %v", e)
			}
			delete(want, e.GetAction())
		}
	}
	if len(want) > 0 {
		t.Errorf("no audit rows for %v in %v", want, events.GetEvents())
	}
	byActor, err := s.admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{Actor: opsActor, Site: "lab"})
	if err != nil || len(byActor.GetEvents()) != 1 {
		t.Errorf("ListAuditEvents{actor, site}: %v %v", byActor, err)
	}
	if n := s.count(`SELECT count(*) FROM sites WHERE name = 'lab' AND created_by = $1`, adminActor); n != 1 {
		t.Errorf("sites.created_by is not %s", adminActor)
	}
	if n := s.count(`SELECT count(*) FROM scan_targets WHERE created_by = $1 AND modified_by = $1`, opsActor); n != 1 {
		t.Errorf("scan_targets.created_by/modified_by are not %s", opsActor)
	}

	// Nothing anywhere holds a secret.
	list, err := s.admin.ListTokens(ctx, &pb.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var auditRows strings.Builder
	rows, err := s.pool.Query(context.Background(), `SELECT a::text FROM audit_log a UNION ALL SELECT t::text FROM api_tokens t`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		auditRows.WriteString(r + "\n")
	}
	rows.Close()
	places := map[string]string{
		"controller output": s.ctrl.Output(), "audit_log and api_tokens rows": auditRows.String(),
		"error messages": errText, "ListTokens": fmt.Sprint(list), "ListAuditEvents": fmt.Sprint(events),
	}
	for where, text := range places {
		for _, sec := range secrets {
			if strings.Contains(text, sec) {
				t.Errorf("a token secret appears in the %s", where)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
