package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// TLSFiles names the controller's certificate files. With CertFile and
// KeyFile the gRPC API speaks TLS; with ClientCAFile as well, every caller
// (agents, grpcurl) must present a certificate that CA signed.
type TLSFiles struct {
	CertFile     string
	KeyFile      string
	ClientCAFile string
}

// Enabled reports whether any TLS file is set.
func (f TLSFiles) Enabled() bool {
	return f.CertFile != "" || f.KeyFile != "" || f.ClientCAFile != ""
}

// Config builds the server's TLS configuration, checking every file now so
// a bad one stops the controller at start with the flag named. The key pair
// is read again when its files change (checked at most every reloadEvery),
// so a renewed certificate takes effect without a restart.
func (f TLSFiles) Config() (*tls.Config, error) {
	switch {
	case f.CertFile == "":
		return nil, errors.New("--tls-cert: required with --tls-key or --tls-client-ca")
	case f.KeyFile == "":
		return nil, errors.New("--tls-key: required with --tls-cert")
	}
	kp := &keyPair{certFile: f.CertFile, keyFile: f.KeyFile}
	if err := kp.load(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return kp.get(), nil
		},
	}
	if f.ClientCAFile != "" {
		pool, err := loadCAs(f.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// reloadEvery bounds how often the key pair's files are checked for changes.
const reloadEvery = 10 * time.Second

type keyPair struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
	checked time.Time
}

func (k *keyPair) load() error {
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	k.cert, k.modTime, k.checked = &cert, k.newest(), time.Now()
	return nil
}

// get returns the current certificate, reloading it if its files changed.
// A renewal caught half-written keeps the previous certificate until the
// next check.
func (k *keyPair) get() *tls.Certificate {
	k.mu.Lock()
	defer k.mu.Unlock()
	if time.Since(k.checked) < reloadEvery {
		return k.cert
	}
	k.checked = time.Now()
	if m := k.newest(); m.After(k.modTime) {
		if cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile); err == nil {
			k.cert, k.modTime = &cert, m
		}
	}
	return k.cert
}

func (k *keyPair) newest() time.Time {
	var t time.Time
	for _, f := range []string{k.certFile, k.keyFile} {
		if st, err := os.Stat(f); err == nil && st.ModTime().After(t) {
			t = st.ModTime()
		}
	}
	return t
}

func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
