package enroll

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/controller/pki"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Credentials are an enrolled agent's key, current certificate and CA.
// Every TLS handshake reads the current certificate, so a renewal takes
// effect on the next connection; Renewing closes the connections made with
// the old one so that happens at once.
type Credentials struct {
	dir string
	log hclog.Logger

	mu  sync.RWMutex
	cur *material

	connsMu sync.Mutex
	conns   map[net.Conn]struct{}
}

// Load reads the identity under dir. It returns ErrNotEnrolled when there
// is none.
func Load(dir string, log hclog.Logger) (*Credentials, error) {
	m, err := load(dir)
	if err != nil {
		return nil, err
	}
	return newCredentials(dir, m, log), nil
}

func newCredentials(dir string, m *material, log hclog.Logger) *Credentials {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Credentials{dir: dir, log: log.Named("identity"), cur: m, conns: map[net.Conn]struct{}{}}
}

// Identity is the agent id and site of the certificate.
func (c *Credentials) Identity() pki.Identity {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cur.id
}

// NotAfter is when the current certificate expires.
func (c *Credentials) NotAfter() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cur.leaf.NotAfter
}

// TLSConfig verifies controllers against the controller CA and presents
// the current certificate. serverName, if set, overrides the name checked
// (default: each controller address's host).
func (c *Credentials) TLSConfig(serverName string) *tls.Config {
	c.mu.RLock()
	pool := x509.NewCertPool()
	pool.AddCert(c.cur.ca)
	c.mu.RUnlock()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    pool,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c.mu.RLock()
			defer c.mu.RUnlock()
			return c.cur.tlsCert(), nil
		},
	}
}

// Dialer dials controllers and remembers the connections, so a renewal can
// close those that authenticated with the previous certificate.
func (c *Credentials) Dialer() func(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: conn, c: c}
		c.connsMu.Lock()
		c.conns[tc] = struct{}{}
		c.connsMu.Unlock()
		return tc, nil
	}
}

type trackedConn struct {
	net.Conn
	c    *Credentials
	once sync.Once
}

func (t *trackedConn) Close() error {
	t.once.Do(func() {
		t.c.connsMu.Lock()
		delete(t.c.conns, t)
		t.c.connsMu.Unlock()
	})
	return t.Conn.Close()
}

func (c *Credentials) closeConns() {
	c.connsMu.Lock()
	conns := make([]net.Conn, 0, len(c.conns))
	for conn := range c.conns {
		conns = append(conns, conn)
	}
	c.connsMu.Unlock()
	for _, conn := range conns {
		_ = conn.Close()
	}
}

// renewAt is when a certificate is renewed: at two thirds of its lifetime.
func renewAt(leaf *x509.Certificate) time.Time {
	return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
}

// Renewing renews the certificate at two thirds of its lifetime, over
// client (which must use this Credentials' TLSConfig), until ctx ends. A
// failed renewal is retried with backoff until the certificate expires;
// after that only a new enrollment helps, and the log says so.
func (c *Credentials) Renewing(ctx context.Context, client pb.AgentServiceClient) {
	retry := time.Second
	for {
		c.mu.RLock()
		leaf := c.cur.leaf
		c.mu.RUnlock()
		wait := time.Until(renewAt(leaf))
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(wait, 0)):
		}
		if time.Now().After(leaf.NotAfter) {
			c.log.Error("agent certificate expired before it could be renewed; enroll again with a new --enroll-token after removing the identity files",
				"not_after", leaf.NotAfter, "dir", c.dir)
		}
		if err := c.renew(ctx, client); err != nil {
			c.log.Warn("certificate renewal failed; retrying", "error", err, "expires", leaf.NotAfter, "retry_in", retry)
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
			retry = min(retry*2, time.Minute)
			continue
		}
		retry = time.Second
	}
}

func (c *Credentials) renew(ctx context.Context, client pb.AgentServiceClient) error {
	c.mu.RLock()
	old := c.cur
	c.mu.RUnlock()
	csr, err := pki.NewCSR(old.key, old.id.AgentID.String())
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := client.Renew(rctx, &pb.RenewRequest{CsrDer: csr})
	if err != nil {
		return err
	}
	m, err := verifyIssued(resp.GetCertDer(), resp.GetCaDer(), old.key, old.ca)
	if err != nil {
		return err
	}
	if m.id != old.id {
		return fmt.Errorf("controller renewed another identity (%s, want %s)", m.id, old.id)
	}
	if err := m.save(c.dir); err != nil {
		return fmt.Errorf("save renewed certificate: %w", err)
	}
	c.mu.Lock()
	c.cur = m
	c.mu.Unlock()
	c.log.Info("agent certificate renewed", "agent_id", m.id.AgentID, "not_after", m.leaf.NotAfter)
	// Connections authenticated with the old certificate would outlive it:
	// reconnect now with the new one.
	c.closeConns()
	return nil
}

// verifyIssued checks a certificate the controller issued: for our key,
// signed by the CA we expect (at enrollment, the CA we pinned).
func verifyIssued(certDER, caDER []byte, key *ecdsa.PrivateKey, wantCA *x509.Certificate) (*material, error) {
	leaf, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("controller sent a bad certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("controller sent a bad CA certificate: %w", err)
	}
	if wantCA != nil && !ca.Equal(wantCA) {
		return nil, errors.New("controller sent another CA than the pinned one")
	}
	id, err := pki.VerifyAgent(ca, leaf, time.Now())
	if err != nil {
		return nil, fmt.Errorf("controller sent a certificate that does not verify: %w", err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, errors.New("controller sent a certificate for another key")
	}
	return &material{key: key, leaf: leaf, ca: ca, id: id}, nil
}
