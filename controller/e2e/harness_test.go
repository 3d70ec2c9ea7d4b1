// Package e2e_test runs the real controller and agent binaries against a
// real PostgreSQL and real nmap, on loopback only, and kills them for real.
package e2e_test

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/scanorama/scanorama/controller/internal/harness"
	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgtest"
	listen "github.com/scanorama/scanorama/deploy/listener"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "scanorama-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	for _, pkg := range []string{"controller/cmd/scanorama-controller", "agent/cmd/scanorama-agent"} {
		out, err := exec.Command("go", "build", "-race", "-o", filepath.Join(dir, filepath.Base(pkg)), "../../"+pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	pgtest.SetTemplate(migrate.Template)
	defer os.RemoveAll(dir)
	pgtest.Main(m)
}

// proc is a child process whose output is kept in memory for failure
// reports; kill and stop are the tests' names for the harness's Kill/Stop.
type proc struct{ *harness.Proc }

// procGrace is how long stop waits after SIGTERM.
const procGrace = 20 * time.Second

func start(t *testing.T, name string, bin string, args ...string) *proc {
	t.Helper()
	return startCmd(t, name, exec.Command(filepath.Join(binDir, bin), args...), harness.Options{})
}

// startCmd starts cmd, kills it at cleanup and logs its output if the test
// failed.
func startCmd(t *testing.T, name string, cmd *exec.Cmd, opts harness.Options) *proc {
	t.Helper()
	hp, err := harness.Start(name, cmd, opts)
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{hp}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, p.Output())
		}
	})
	return p
}

// kill sends SIGKILL to the process group (the agent's nmap included) and waits.
func (p *proc) kill() { p.Kill() }

// stop asks for a clean shutdown and waits up to 20 s.
func (p *proc) stop(t *testing.T) {
	if err := p.Stop(procGrace); err != nil {
		t.Error(err)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	return freePortOn(t, netip.MustParseAddr("127.0.0.1"))
}

func freePortOn(t *testing.T, host netip.Addr) string {
	t.Helper()
	addr, err := harness.FreeAddr(host)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// stack is a controller on its own database.
type stack struct {
	t      *testing.T
	dbURL  string
	addr   string
	ctrl   *proc
	conn   *grpc.ClientConn
	admin  pb.AdminServiceClient
	agentc pb.AgentServiceClient
	pool   *pgxpool.Pool
	extra  []string
	creds  credentials.TransportCredentials // how the test's clients dial; plaintext unless set
	// token, when set, is sent by the test's clients as authorization: Bearer.
	token string
	// agentArgs are the transport flags every agent gets: --insecure for an
	// --insecure controller, --tls-ca for one serving TLS with a test CA.
	agentArgs []string
}

// newStack starts a controller on loopback with a fresh database.
func newStack(t *testing.T, controllerArgs ...string) *stack {
	t.Helper()
	return newStackOn(t, netip.MustParseAddr("127.0.0.1"), controllerArgs...)
}

// newStackOn starts a controller listening on host with a fresh database.
// On loopback it serves --insecure (plaintext, every caller an admin, as
// tests and demos on one machine); elsewhere (a network namespace's veth)
// it serves TLS with a test CA, and the test's clients send an admin
// bearer token created with "token create".
func newStackOn(t *testing.T, host netip.Addr, controllerArgs ...string) *stack {
	t.Helper()
	if host.IsLoopback() {
		s := newStackWith(t, host, insecure.NewCredentials(), append([]string{"--insecure"}, controllerArgs...)...)
		s.agentArgs = []string{"--insecure"}
		return s
	}
	ca := newTestCA(t, "scanorama-stack")
	cert, key := ca.serverLeaf("controller", net.IP(host.AsSlice()))
	s := &stack{t: t, dbURL: pgtest.NewDatabase(t), addr: freePortOn(t, host), creds: clientCreds(t, ca, "", ""),
		extra: append([]string{"--tls-cert", cert, "--tls-key", key}, controllerArgs...), agentArgs: []string{"--tls-ca", ca.file}}
	s.token = s.createToken("--role", "admin", "--name", "e2e-stack")
	s.startController()
	s.connect()
	return s
}

// newStackWith starts a controller whose test clients dial with creds.
func newStackWith(t *testing.T, host netip.Addr, creds credentials.TransportCredentials, controllerArgs ...string) *stack {
	t.Helper()
	s := &stack{t: t, dbURL: pgtest.NewDatabase(t), addr: freePortOn(t, host), extra: controllerArgs, creds: creds}
	s.startController()
	s.connect()
	return s
}

// createToken runs "scanorama-controller token create" on the stack's
// database and returns the token (the last line of its output).
func (s *stack) createToken(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "scanorama-controller"), append([]string{"token", "create", "--database-url", s.dbURL}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("token create %v: %v\n%s%s", args, err, out, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// bearer sends a token as authorization: Bearer on every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// dialOpts are how the test's clients dial the stack.
func (s *stack) dialOpts() []grpc.DialOption {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(s.transport())}
	if s.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(s.token)))
	}
	return opts
}

// transport is how the test's clients dial: s.creds, or plaintext.
func (s *stack) transport() credentials.TransportCredentials {
	if s.creds == nil {
		return insecure.NewCredentials()
	}
	return s.creds
}

// connect opens the gRPC clients and a database pool for assertions.
func (s *stack) connect() {
	s.t.Helper()
	conn, err := grpc.NewClient(s.addr, s.dialOpts()...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { conn.Close() })
	s.conn, s.admin, s.agentc = conn, pb.NewAdminServiceClient(conn), pb.NewAgentServiceClient(conn)
	pool, err := pgxpool.New(context.Background(), s.dbURL)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(pool.Close)
	s.pool = pool
}

func (s *stack) startController() {
	s.t.Helper()
	if s.creds == nil && !slices.Contains(s.extra, "--insecure") {
		// Clients that dial plaintext need a controller serving --insecure
		// (loopback only), and agents that speak it.
		s.extra = append([]string{"--insecure"}, s.extra...)
		if len(s.agentArgs) == 0 {
			s.agentArgs = []string{"--insecure"}
		}
	}
	args := append([]string{"serve", "--listen", s.addr, "--database-url", s.dbURL, "--log-level", "debug"}, s.extra...)
	s.ctrl = start(s.t, "controller", "scanorama-controller", args...)
	s.waitHealthy()
	if s.conn != nil {
		s.waitConnReady()
	}
}

// waitConnReady brings the test's own client connection back after a
// restart. The health check dials a fresh connection; this one may still
// sit in its reconnect backoff, and calls on it (not WaitForReady) would
// fail with the refusals it saw while the controller was down.
func (s *stack) waitConnReady() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s.conn.ResetConnectBackoff()
	s.conn.Connect()
	for st := s.conn.GetState(); st != connectivity.Ready; st = s.conn.GetState() {
		if !s.conn.WaitForStateChange(ctx, st) {
			s.t.Fatalf("client connection to the restarted controller at %s: still %v after 60 s", s.addr, st)
		}
		if s.conn.GetState() == connectivity.TransientFailure {
			s.conn.ResetConnectBackoff()
		}
	}
}

func (s *stack) waitHealthy() {
	s.t.Helper()
	if err := harness.WaitServing(context.Background(), s.ctrl.Proc, s.addr, s.transport(), 60*time.Second, 200*time.Millisecond); err != nil {
		s.t.Fatalf("%v:\n%s", err, s.ctrl.Output())
	}
}

func (s *stack) agent(name, site string, scope string, extra ...string) *proc {
	s.t.Helper()
	args := append([]string{"--controller", s.addr, "--site", site, "--name", name, "--scope", scope,
		"--spool-dir", filepath.Join(s.t.TempDir(), "spool"), "--log-level", "debug"}, s.agentArgs...)
	args = append(args, extra...)
	return start(s.t, "agent "+name, "scanorama-agent", args...)
}

func (s *stack) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	s.t.Cleanup(cancel)
	return ctx
}

// waitJob polls until the job reaches a final status.
func (s *stack) waitJob(id string, within time.Duration) *pb.Job {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := s.admin.GetJob(s.ctx(), &pb.GetJobRequest{Id: id})
		if err != nil {
			s.t.Fatalf("GetJob: %v", err)
		}
		switch resp.GetJob().GetStatus() {
		case pb.JobStatus_JOB_STATUS_COMPLETED, pb.JobStatus_JOB_STATUS_FAILED, pb.JobStatus_JOB_STATUS_CANCELLED:
			return resp.GetJob()
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("job %s still %s after %s", id, resp.GetJob().GetStatus(), within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitStatus polls until the job is in want.
func (s *stack) waitStatus(id string, want pb.JobStatus, within time.Duration) *pb.Job {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := s.admin.GetJob(s.ctx(), &pb.GetJobRequest{Id: id})
		if err != nil {
			s.t.Fatalf("GetJob: %v", err)
		}
		if resp.GetJob().GetStatus() == want {
			return resp.GetJob()
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("job %s is %s after %s; want %s", id, resp.GetJob().GetStatus(), within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *stack) count(sql string, args ...any) int {
	s.t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// listener opens a loopback TCP port. silent listeners accept and never
// answer, which keeps nmap's service detection waiting (a slow scan).
func listener(t *testing.T, silent bool) int {
	t.Helper()
	if !silent {
		port, _ := closableListener(t, "127.0.0.1:0")
		return port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				time.Sleep(time.Minute)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// closableListener answers like an SSH server (deploy/listener's -ssh, in
// this process) at addr until closed; it returns the port and the close.
func closableListener(t *testing.T, addr string) (int, func()) {
	t.Helper()
	ls, err := listen.Listen([]string{"-ssh", addr})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ls.Serve() }()
	var once sync.Once
	closeFn := func() { once.Do(ls.Close) }
	t.Cleanup(closeFn)
	return ls.Addrs()[0].(*net.TCPAddr).Port, closeFn
}

func mustContain(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}
