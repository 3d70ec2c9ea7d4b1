package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// TLSFiles names the controller's certificate files. With CertFile and
// KeyFile the gRPC API speaks TLS; with ClientCAFile as well, every caller
// (agents, grpcurl) must present a certificate that CA signed. With
// AdminCAFile too, the two roles are told apart: AdminService takes only
// certificates of AdminCAFile's CAs, AgentService only those of
// ClientCAFile's, so an agent's key, which lives on a host in a scanned
// segment, cannot create targets or read other sites' results.
type TLSFiles struct {
	CertFile     string
	KeyFile      string
	ClientCAFile string
	AdminCAFile  string
}

// Enabled reports whether any TLS file is set.
func (f TLSFiles) Enabled() bool {
	return f.CertFile != "" || f.KeyFile != "" || f.ClientCAFile != "" || f.AdminCAFile != ""
}

// Config builds the server's TLS configuration, checking every file now so
// a bad one stops the controller at start with the flag named. The key pair
// is read again when its files change (checked at most every reloadEvery),
// so a renewed certificate takes effect without a restart.
//
// Roles is non-nil when AdminCAFile is set; the server must then install
// its interceptors.
func (f TLSFiles) Config() (*tls.Config, *Roles, error) {
	switch {
	case f.CertFile == "":
		return nil, nil, errors.New("--tls-cert: required with --tls-key, --tls-client-ca or --tls-admin-ca")
	case f.KeyFile == "":
		return nil, nil, errors.New("--tls-key: required with --tls-cert")
	case f.AdminCAFile != "" && f.ClientCAFile == "":
		return nil, nil, errors.New("--tls-client-ca: required with --tls-admin-ca (it names the agents' CA)")
	}
	kp := &keyPair{certFile: f.CertFile, keyFile: f.KeyFile}
	if err := kp.load(); err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return kp.get(), nil
		},
	}
	if f.ClientCAFile == "" {
		return cfg, nil, nil
	}
	// The CA bundles are re-read when their files change, like the key
	// pair: adding or rotating a client CA needs no restart.
	agentCAs := &caBundle{file: f.ClientCAFile}
	if err := agentCAs.load(); err != nil {
		return nil, nil, fmt.Errorf("--tls-client-ca: %w", err)
	}
	var adminCAs *caBundle
	if f.AdminCAFile != "" {
		adminCAs = &caBundle{file: f.AdminCAFile}
		if err := adminCAs.load(); err != nil {
			return nil, nil, fmt.Errorf("--tls-admin-ca: %w", err)
		}
	}
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = clientPool(agentCAs, adminCAs)
	base := cfg.Clone()
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.ClientCAs = clientPool(agentCAs, adminCAs)
		return c, nil
	}
	if adminCAs == nil {
		return cfg, nil, nil
	}
	return cfg, &Roles{agentCAs: agentCAs, adminCAs: adminCAs}, nil
}

func clientPool(bundles ...*caBundle) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, b := range bundles {
		if b == nil {
			continue
		}
		for _, c := range b.get() {
			pool.AddCert(c)
		}
	}
	return pool
}

// caBundle is a PEM CA file re-read when it changes (checked at most every
// reloadEvery). A bad new version keeps the previous CAs.
type caBundle struct {
	file string

	mu      sync.Mutex
	certs   []*x509.Certificate
	modTime time.Time
	checked time.Time
}

func (b *caBundle) load() error {
	certs, err := loadCAs(b.file)
	if err != nil {
		return err
	}
	b.certs, b.checked = certs, time.Now()
	if st, err := os.Stat(b.file); err == nil {
		b.modTime = st.ModTime()
	}
	return nil
}

func (b *caBundle) get() []*x509.Certificate {
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Since(b.checked) < reloadEvery {
		return b.certs
	}
	b.checked = time.Now()
	if st, err := os.Stat(b.file); err == nil && st.ModTime().After(b.modTime) {
		if certs, err := loadCAs(b.file); err == nil {
			b.certs, b.modTime = certs, st.ModTime()
		}
	}
	return b.certs
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

// loadCAs reads every certificate of a PEM bundle.
func loadCAs(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return out, nil
}
