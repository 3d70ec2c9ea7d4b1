package e2e_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/scanorama/scanorama/agent/enroll"
	"github.com/scanorama/scanorama/controller/pgtest"
	"github.com/scanorama/scanorama/controller/pki"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// caStack is a controller with the built-in CA (ca init) on its own database.
type caStack struct {
	*stack
	dataDir string
	ca      *x509.Certificate
}

// runCLI runs a controller subcommand to completion and returns its stdout.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "scanorama-controller"), args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), &cliError{err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

type cliError struct {
	err    error
	stderr string
}

func (e *cliError) Error() string { return e.err.Error() + ": " + e.stderr }

// caInit runs "ca init" for dataDir against dbURL.
func caInit(t *testing.T, dataDir, dbURL string) string {
	t.Helper()
	out, err := runCLI(t, "ca", "init", "--data-dir", dataDir, "--database-url", dbURL)
	if err != nil {
		t.Fatalf("ca init: %v", err)
	}
	return out
}

// newCAStack runs ca init and starts a controller that serves TLS with its
// own certificate from that CA; the test's clients trust the CA.
func newCAStack(t *testing.T, controllerArgs ...string) *caStack {
	t.Helper()
	dbURL := pgtest.NewDatabase(t)
	dataDir := t.TempDir()
	caInit(t, dataDir, dbURL)
	return startCAStack(t, dbURL, dataDir, controllerArgs...)
}

func startCAStack(t *testing.T, dbURL, dataDir string, controllerArgs ...string) *caStack {
	t.Helper()
	certFile, _ := pki.Paths(dataDir)
	caPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCertPEM(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	s := &stack{t: t, dbURL: dbURL, addr: freePort(t), extra: append([]string{"--data-dir", dataDir}, controllerArgs...),
		creds: credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool})}
	// With the built-in CA people use bearer tokens: the test's admin has one.
	s.token = s.createToken("--role", "admin", "--name", "e2e-ca-stack")
	s.startController()
	s.connect()
	return &caStack{stack: s, dataDir: dataDir, ca: ca}
}

// token runs "agent enroll" and returns the token: the last line of stdout.
func (s *caStack) token(site string, extra ...string) string {
	s.t.Helper()
	out, err := runCLI(s.t, append([]string{"agent", "enroll", "--site", site, "--database-url", s.dbURL, "--data-dir", s.dataDir}, extra...)...)
	if err != nil {
		s.t.Fatalf("agent enroll: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// createSite makes a site whose enrolled agents may scan scopes.
func (s *caStack) createSite(name string, scopes ...string) {
	s.t.Helper()
	if _, err := s.admin.CreateSite(s.ctx(), &pb.CreateSiteRequest{Name: name, Scopes: scopes}); err != nil {
		s.t.Fatal(err)
	}
}

// enrollClient enrolls in-process as a raw client (what a forged agent
// would do) and returns an AgentService client holding that certificate.
func (s *caStack) enrollClient(name, token string, addrs ...string) (pb.AgentServiceClient, *enroll.Credentials) {
	s.t.Helper()
	if len(addrs) == 0 {
		addrs = []string{s.addr}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	creds, err := enroll.Enroll(ctx, enroll.Request{Controllers: addrs, Token: token, Name: name, Dir: s.t.TempDir()}, nil)
	if err != nil {
		s.t.Fatalf("enroll %s: %v", name, err)
	}
	return s.agentClient(creds, addrs[0]), creds
}

// agentClient dials addr with an enrolled agent's certificate.
func (s *caStack) agentClient(creds *enroll.Credentials, addr string) pb.AgentServiceClient {
	s.t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(creds.TLSConfig(""))))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { conn.Close() })
	return pb.NewAgentServiceClient(conn)
}

// enrolledAgent starts the agent binary with an enrollment token (or, with
// token "", on the identity already in dataDir).
func (s *caStack) enrolledAgent(name, site, scope, token, dataDir string, extra ...string) *proc {
	s.t.Helper()
	args := []string{"--data-dir", dataDir}
	if token != "" {
		args = append(args, "--enroll-token", token)
	}
	return s.agent(name, site, scope, append(args, extra...)...)
}
