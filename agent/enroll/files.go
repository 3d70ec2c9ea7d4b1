package enroll

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/scanorama/scanorama/controller/pki"
)

// File names under the agent's --data-dir.
const (
	CertFile = "agent.pem"
	KeyFile  = "agent-key.pem"
	CAFile   = "ca.pem"
)

// ErrNotEnrolled means the data directory holds no agent identity yet.
var ErrNotEnrolled = errors.New("not enrolled")

type material struct {
	key  *ecdsa.PrivateKey
	leaf *x509.Certificate
	ca   *x509.Certificate
	id   pki.Identity
}

func (m *material) tlsCert() *tls.Certificate {
	return &tls.Certificate{Certificate: [][]byte{m.leaf.Raw}, PrivateKey: m.key, Leaf: m.leaf}
}

func load(dir string) (*material, error) {
	certPEM, cerr := os.ReadFile(filepath.Join(dir, CertFile))
	keyPEM, kerr := os.ReadFile(filepath.Join(dir, KeyFile))
	caPEM, aerr := os.ReadFile(filepath.Join(dir, CAFile))
	if errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist) && errors.Is(aerr, os.ErrNotExist) {
		return nil, ErrNotEnrolled
	}
	if err := errors.Join(cerr, kerr, aerr); err != nil {
		return nil, fmt.Errorf("read agent identity: %w", err)
	}
	leaf, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CertFile, err)
	}
	key, err := pki.ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KeyFile, err)
	}
	ca, err := pki.ParseCertPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CAFile, err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("%s does not match %s", KeyFile, CertFile)
	}
	id, err := pki.IdentityOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CertFile, err)
	}
	return &material{key: key, leaf: leaf, ca: ca, id: id}, nil
}

// save writes key, certificate and CA (0600 each), each atomically: a
// crash leaves the old or the new file. Renewal keeps the key (it never
// leaves the agent), so only the certificate changes then and the pair on
// disk always matches.
func (m *material) save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	keyPEM, err := pki.EncodeKey(m.key)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{KeyFile, keyPEM}, {CertFile, pki.EncodeCert(m.leaf.Raw)}, {CAFile, pki.EncodeCert(m.ca.Raw)}} {
		if err := writeAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
