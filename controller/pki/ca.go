package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// File names of the CA under a controller's --data-dir.
const (
	CADir      = "ca"
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

// caLifetime is long: rotating the CA means re-enrolling every agent.
const caLifetime = 10 * 365 * 24 * time.Hour

// clockSkew backdates NotBefore so a peer whose clock is slightly behind
// still accepts a fresh certificate.
const clockSkew = 5 * time.Minute

// ErrNoCA means the directory holds no CA.
var ErrNoCA = errors.New("no controller CA")

// CA is the controller CA: its certificate and private key.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA creates a self-signed CA.
func NewCA(commonName string) (*CA, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Scanorama"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Fingerprint is the CA's pin: sha256 of its SubjectPublicKeyInfo.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.Cert) }

// Fingerprint is sha256 of cert's SubjectPublicKeyInfo, lower-case hex (as
// kubeadm's discovery-token-ca-cert-hash, without the "sha256:" prefix).
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// Paths returns the CA's certificate and key file under dataDir.
func Paths(dataDir string) (certFile, keyFile string) {
	d := filepath.Join(dataDir, CADir)
	return filepath.Join(d, CACertFile), filepath.Join(d, CAKeyFile)
}

// Save writes the CA under dataDir (key 0600) and never overwrites: an
// existing file is an error.
func (ca *CA) Save(dataDir string) error {
	certFile, keyFile := Paths(dataDir)
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return err
	}
	keyPEM, err := EncodeKey(ca.Key)
	if err != nil {
		return err
	}
	if err := writeNew(keyFile, keyPEM); err != nil {
		return err
	}
	if err := writeNew(certFile, EncodeCert(ca.Cert.Raw)); err != nil {
		_ = os.Remove(keyFile)
		return err
	}
	return nil
}

// LoadCA reads the CA from dataDir. It returns an error wrapping ErrNoCA
// when neither file exists.
func LoadCA(dataDir string) (*CA, error) {
	certFile, keyFile := Paths(dataDir)
	certPEM, cerr := os.ReadFile(certFile)
	keyPEM, kerr := os.ReadFile(keyFile)
	switch {
	case errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist):
		return nil, fmt.Errorf("%w under %s", ErrNoCA, filepath.Dir(certFile))
	case cerr != nil:
		return nil, cerr
	case kerr != nil:
		return nil, kerr
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s does not match %s", keyFile, certFile)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", certFile)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// NewKey generates an ECDSA P-256 key.
func NewKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// EncodeCert PEM-encodes a DER certificate.
func EncodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// EncodeKey PEM-encodes a private key (PKCS#8).
func EncodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCertPEM parses the first certificate of a PEM block.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// ParseKeyPEM parses an ECDSA private key (PKCS#8 or SEC 1).
func ParseKeyPEM(data []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM private key")
	}
	if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an ECDSA private key")
	}
	return ek, nil
}

func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return n.Add(n, big.NewInt(1))
}
