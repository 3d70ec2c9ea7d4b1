package worker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// TLS says how the agent reaches its controllers. The zero value is
// plaintext (a controller on the same host or a private network).
type TLS struct {
	// Enabled speaks TLS, verifying the controller against CAFile, or the
	// system's roots without one.
	Enabled bool
	// CAFile is a PEM bundle of the CAs that may sign the controller's
	// certificate.
	CAFile string
	// CertFile and KeyFile are the agent's client certificate, for a
	// controller that requires one (--tls-client-ca).
	CertFile, KeyFile string
	// ServerName overrides the name checked against the controller's
	// certificate (default: the host of --controller).
	ServerName string
	// Config, when set, is used as is (an enrolled agent's identity, see
	// agent/enroll); the file fields are ignored.
	Config *tls.Config
}

// Credentials builds the transport credentials, reading every file now so
// a bad one stops the agent at start with its flag named.
func (t TLS) Credentials() (credentials.TransportCredentials, error) {
	if t.Config != nil {
		return credentials.NewTLS(t.Config), nil
	}
	if !t.Enabled {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca: %s holds no PEM certificate", t.CAFile)
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		return nil, errors.New("--tls-key: required with --tls-cert")
	case t.KeyFile != "" && t.CertFile == "":
		return nil, errors.New("--tls-cert: required with --tls-key")
	case t.CertFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}
