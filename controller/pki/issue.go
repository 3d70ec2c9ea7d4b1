package pki

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Identity is who an enrolled agent is: its id and its site.
type Identity struct {
	AgentID uuid.UUID
	Site    string
}

// URI is the identity's URI SAN: scanorama://site/<site>/agent/<id>.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: "scanorama", Host: "site", Path: "/" + id.Site + "/agent/" + id.AgentID.String()}
}

func (id Identity) String() string { return id.URI().String() }

// IdentityOf reads the agent identity of a certificate. It does not verify
// the certificate: callers pass only verified chains' leaves.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	for _, u := range cert.URIs {
		if u.Scheme != "scanorama" || u.Host != "site" {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
		if len(parts) != 3 || parts[1] != "agent" || parts[0] == "" {
			continue
		}
		id, err := uuid.Parse(parts[2])
		if err != nil || id.String() != cert.Subject.CommonName {
			continue
		}
		return Identity{AgentID: id, Site: parts[0]}, nil
	}
	return Identity{}, errors.New("certificate carries no scanorama agent identity")
}

// IssueAgent signs an agent's CSR with the identity id. The CSR's own
// subject and names are ignored: the controller decides the identity.
func (ca *CA) IssueAgent(csrDER []byte, id Identity, ttl time.Duration) (*x509.Certificate, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("csr_der: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr_der: signature: %w", err)
	}
	if _, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, errors.New("csr_der: the key must be ECDSA")
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: id.AgentID.String(), OrganizationalUnit: []string{id.Site}, Organization: []string{"Scanorama agents"}},
		// Backdated a little for clock skew, but not so much that the
		// agent's renewal point (2/3 from NotBefore) moves past expiry.
		NotBefore:   now.Add(-min(clockSkew, ttl/10)),
		NotAfter:    now.Add(ttl),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{id.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign agent certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// IssueServer creates a key and a server certificate for hosts (DNS names
// or IP addresses). The chain presented holds the CA too, so an enrolling
// agent can pin it.
func (ca *CA) IssueServer(hosts []string, ttl time.Duration) (*tls.Certificate, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "scanorama-controller", Organization: []string{"Scanorama"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// NewCSR makes a certificate request signed by key.
func NewCSR(key *ecdsa.PrivateKey, name string) ([]byte, error) {
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
}

// VerifyAgent checks that cert was issued by ca for client authentication
// and is valid at now, and returns its identity.
func VerifyAgent(ca, cert *x509.Certificate, now time.Time) (Identity, error) {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return Identity{}, err
	}
	return IdentityOf(cert)
}
