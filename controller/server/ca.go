package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/controller/agentapi"
	"github.com/scanorama/scanorama/controller/pki"
	"github.com/scanorama/scanorama/gen/db"
)

// ErrCAMismatch means this controller's CA files and the database's CA
// differ: controllers on one database must serve and verify with one CA.
var ErrCAMismatch = errors.New("controller CA differs from the database's")

// RegisterCA stores ca in the database if it holds none yet, and otherwise
// checks that the database's CA is the same certificate.
func RegisterCA(ctx context.Context, q *db.Queries, ca *pki.CA) error {
	row, err := q.InsertControllerCA(ctx, db.InsertControllerCAParams{CertDer: ca.Cert.Raw, Fingerprint: ca.Fingerprint()})
	if err != nil {
		return fmt.Errorf("store controller CA: %w", err)
	}
	if !bytes.Equal(row.CertDer, ca.Cert.Raw) {
		return fmt.Errorf("%w: files have %s, database has %s; copy ca.pem and ca-key.pem of the database's CA into --data-dir/ca",
			ErrCAMismatch, ca.Fingerprint(), row.Fingerprint)
	}
	return nil
}

// DatabaseCA returns the fingerprint of the database's CA, or "" if none.
func DatabaseCA(ctx context.Context, q *db.Queries) (string, error) {
	row, err := q.GetControllerCA(ctx)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read controller CA: %w", err)
	}
	return row.Fingerprint, nil
}

// serverCertTTL is the lifetime of the certificate a controller issues
// itself; it is re-issued at two thirds of it, without a restart.
const serverCertTTL = 30 * 24 * time.Hour

// CATLSConfig is the TLS configuration of a controller with the built-in
// CA: a server certificate for hosts issued from ca (chain includes the CA,
// which enrolling agents pin), and client certificates of ca verified when
// given. Enroll is reachable without one; agentapi's interceptor requires
// one on every other agent call.
func CATLSConfig(ca *pki.CA, hosts []string) (*tls.Config, error) {
	sc := &serverCert{ca: ca, hosts: hosts}
	if _, err := sc.get(); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return sc.get() },
		ClientCAs:      pool,
		ClientAuth:     tls.VerifyClientCertIfGiven,
	}, nil
}

// ServerHosts are the names a controller's own certificate carries: the
// --advertise names and the listen host unless it is a wildcard.
//
//nolint:revive // exported name stutters; renaming it is an API change for another day.
func ServerHosts(listen string, advertise []string) ([]string, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	hosts := append([]string(nil), advertise...)
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		hosts = append(hosts, host)
	}
	if len(hosts) == 0 {
		return nil, errors.New("--advertise: required when --listen is a wildcard address (the names agents dial, e.g. --advertise 10.99.0.1,controller.lab)")
	}
	return hosts, nil
}

type serverCert struct {
	ca    *pki.CA
	hosts []string

	mu    sync.Mutex
	cert  *tls.Certificate
	renew time.Time
}

func (s *serverCert) get() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cert != nil && time.Now().Before(s.renew) {
		return s.cert, nil
	}
	c, err := s.ca.IssueServer(s.hosts, serverCertTTL)
	if err != nil {
		if s.cert != nil {
			return s.cert, nil
		}
		return nil, err
	}
	s.cert = c
	s.renew = c.Leaf.NotBefore.Add(c.Leaf.NotAfter.Sub(c.Leaf.NotBefore) * 2 / 3)
	return c, nil
}

// builtinCA sets up the transport of a controller started without
// --tls-cert: TLS with the built-in CA when --data-dir holds one, else
// plaintext — unless the database already has a CA, which means other
// controllers serve enrolled agents and this one must not serve them
// unauthenticated.
func builtinCA(ctx context.Context, q *db.Queries, cfg Config) (*tls.Config, *agentapi.Trust, error) {
	if cfg.CA == nil {
		fp, err := DatabaseCA(ctx, q)
		if err != nil {
			return nil, nil, err
		}
		if fp != "" {
			return nil, nil, fmt.Errorf("--data-dir %s: the database has controller CA %s but this controller has no CA files; "+
				"copy ca/ca.pem and ca/ca-key.pem from another controller's --data-dir", cfg.DataDir, fp)
		}
		return nil, nil, nil
	}
	if err := RegisterCA(ctx, q, cfg.CA); err != nil {
		return nil, nil, err
	}
	hosts, err := ServerHosts(cfg.Listen, cfg.Advertise)
	if err != nil {
		return nil, nil, err
	}
	tlsCfg, err := CATLSConfig(cfg.CA, hosts)
	if err != nil {
		return nil, nil, err
	}
	return tlsCfg, &agentapi.Trust{CA: cfg.CA, CertTTL: cfg.AgentCertTTL, RequireApproval: cfg.RequireAgentApproval}, nil
}
