package e2e_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// testCA issues certificates for one test.
type testCA struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	ca := &testCA{t: t, dir: t.TempDir()}
	ca.cert, ca.key = ca.issue(&x509.Certificate{
		Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	ca.file = ca.write(name+"-ca.pem", "CERTIFICATE", ca.cert.Raw)
	return ca
}

// issue signs tmpl with parent (self-signed when parent is nil).
func (ca *testCA) issue(tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		ca.t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		ca.t.Fatal(err)
	}
	return cert, key
}

// leaf issues a server or client certificate and returns its cert and key files.
func (ca *testCA) leaf(name string, server bool) (certFile, keyFile string) {
	ca.t.Helper()
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: name}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	cert, key := ca.issue(tmpl, ca.cert, ca.key)
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return ca.write(name+".pem", "CERTIFICATE", cert.Raw), ca.write(name+"-key.pem", "EC PRIVATE KEY", der)
}

// serverLeaf issues a server certificate for ips (127.0.0.1 when none).
func (ca *testCA) serverLeaf(name string, ips ...net.IP) (certFile, keyFile string) {
	ca.t.Helper()
	if len(ips) == 0 {
		ips = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: name}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: ips}
	cert, key := ca.issue(tmpl, ca.cert, ca.key)
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return ca.write(name+".pem", "CERTIFICATE", cert.Raw), ca.write(name+"-key.pem", "EC PRIVATE KEY", der)
}

func (ca *testCA) write(name, kind string, der []byte) string {
	ca.t.Helper()
	p := filepath.Join(ca.dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return p
}

// clientCreds trusts ca for the server and presents certFile/keyFile (none if empty).
func clientCreds(t *testing.T, ca *testCA, certFile, keyFile string) credentials.TransportCredentials {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return credentials.NewTLS(cfg)
}

// With --tls-client-ca the controller serves only callers holding a
// certificate of that CA: a real agent with one scans end to end; plaintext,
// certificate-less and foreign-CA callers are turned away at the handshake.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "scanorama-test")
	srvCert, srvKey := ca.leaf("controller", true)
	adminCert, adminKey := ca.leaf("admin", false)
	agentCert, agentKey := ca.leaf("agent-1", false)
	rogue := newTestCA(t, "rogue")
	rogueCert, rogueKey := rogue.leaf("intruder", false)

	s := newStackWith(t, netip.MustParseAddr("127.0.0.1"), clientCreds(t, ca, adminCert, adminKey),
		"--tls-cert", srvCert, "--tls-key", srvKey, "--tls-client-ca", ca.file)

	refused := []struct {
		name  string
		creds credentials.TransportCredentials
	}{
		{"plaintext", insecure.NewCredentials()},
		{"TLS without a client certificate", clientCreds(t, ca, "", "")},
		{"a certificate of another CA", clientCreds(t, ca, rogueCert, rogueKey)},
	}
	for _, tc := range refused {
		conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(tc.creds))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		conn.Close()
		if err == nil {
			t.Errorf("%s: the controller answered", tc.name)
		}
	}

	// grpcurl as the README shows it: with the admin certificate it works,
	// without one the handshake fails.
	grpcurl, err := filepath.Abs("../../bin/grpcurl")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(grpcurl, "-cacert", ca.file, "-cert", adminCert, "-key", adminKey, s.addr, "list").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "scanorama.v1.AdminService") {
		t.Errorf("grpcurl with the admin certificate: %v\n%s", err, out)
	}
	if out, err := exec.Command(grpcurl, "-cacert", ca.file, s.addr, "list").CombinedOutput(); err == nil {
		t.Errorf("grpcurl without a client certificate succeeded:\n%s", out)
	}

	port := listener(t, false)
	ctx := s.ctx()
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	s.agent("agent-1", "lab", "127.0.0.1/32", "--tls-ca", ca.file, "--tls-cert", agentCert, "--tls-key", agentKey)
	tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{
		Site: "lab", Name: "loopback", Network: "127.0.0.1/32", Ports: fmt.Sprint(port), Profile: "quick",
	})
	if err != nil {
		t.Fatal(err)
	}
	scan, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	job := s.waitJob(scan.GetJobs()[0].GetId(), 90*time.Second)
	if job.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED {
		t.Fatalf("job over mutual TLS: %s %s", job.GetStatus(), job.GetErrorMessage())
	}
	if n := s.count(`SELECT count(*) FROM port_scans WHERE port = $1 AND state = 'open'`, port); n != 1 {
		t.Fatalf("port_scans rows = %d, want 1", n)
	}
}

// With --tls-admin-ca as well, the CA behind a client certificate decides
// its role: an agent's certificate cannot call AdminService (it lives on a
// host in a scanned segment), an admin's cannot pose as an agent.
func TestMutualTLSRoles(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "scanorama-server")
	srvCert, srvKey := ca.leaf("controller", true)
	agents := newTestCA(t, "scanorama-agents")
	agentCert, agentKey := agents.leaf("agent-1", false)
	admins := newTestCA(t, "scanorama-admins")
	adminCert, adminKey := admins.leaf("alice", false)

	s := newStackWith(t, netip.MustParseAddr("127.0.0.1"), clientCreds(t, ca, adminCert, adminKey),
		"--tls-cert", srvCert, "--tls-key", srvKey, "--tls-client-ca", agents.file, "--tls-admin-ca", admins.file)
	ctx := s.ctx()
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatalf("admin certificate on AdminService: %v", err)
	}
	if _, err := s.agentc.Register(ctx, &pb.RegisterRequest{Site: "lab", Name: "impostor"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("admin certificate on AgentService: %v; want PermissionDenied", err)
	}

	conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(clientCreds(t, ca, agentCert, agentKey)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := pb.NewAgentServiceClient(conn).Register(ctx, &pb.RegisterRequest{Site: "lab", Name: "agent-1"}); err != nil {
		t.Errorf("agent certificate on AgentService: %v", err)
	}
	if _, err := pb.NewAdminServiceClient(conn).ListSites(ctx, &pb.ListSitesRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("agent certificate on AdminService: %v; want PermissionDenied", err)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("agent certificate on health: %v", err)
	}
	if n := s.count(`SELECT count(*) FROM agents WHERE name = 'impostor'`); n != 0 {
		t.Errorf("the refused Register wrote an agent")
	}
}
