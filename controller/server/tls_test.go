package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate named cn and its key.
func selfSigned(t *testing.T, cert, key, cn string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func commonName(t *testing.T, c *tls.Certificate) string {
	t.Helper()
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x.Subject.CommonName
}

func TestTLSKeyPairReloadsWhenRenewed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	selfSigned(t, cert, key, "first")
	cfg, _, err := TLSFiles{CertFile: cert, KeyFile: key}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := cfg.GetCertificate(nil); err != nil || commonName(t, c) != "first" {
		t.Fatalf("Config serves %v, %v; want first", c, err)
	}
	kp := &keyPair{certFile: cert, keyFile: key}
	if err := kp.load(); err != nil {
		t.Fatal(err)
	}
	selfSigned(t, cert, key, "renewed")
	later := time.Now().Add(time.Minute)
	for _, f := range []string{cert, key} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if got := commonName(t, kp.get()); got != "first" {
		t.Fatalf("reloaded within reloadEvery: serving %q", got)
	}
	kp.mu.Lock()
	kp.checked = time.Now().Add(-reloadEvery) // as if reloadEvery had passed
	kp.mu.Unlock()
	if got := commonName(t, kp.get()); got != "renewed" {
		t.Fatalf("after renewal: serving %q, want renewed", got)
	}
}

func TestTLSFilesNameTheFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	selfSigned(t, cert, key, "x")
	tests := []struct {
		files TLSFiles
		flag  string
	}{
		{TLSFiles{KeyFile: key}, "--tls-cert"},
		{TLSFiles{CertFile: cert}, "--tls-key"},
		{TLSFiles{ClientCAFile: cert}, "--tls-cert"},
		{TLSFiles{CertFile: key, KeyFile: key}, "--tls-cert/--tls-key"},
		{TLSFiles{CertFile: cert, KeyFile: key, ClientCAFile: key}, "--tls-client-ca"},
		{TLSFiles{CertFile: cert, KeyFile: key, ClientCAFile: filepath.Join(dir, "missing.pem")}, "--tls-client-ca"},
		{TLSFiles{CertFile: cert, KeyFile: key, AdminCAFile: cert}, "--tls-client-ca"},
		{TLSFiles{CertFile: cert, KeyFile: key, ClientCAFile: cert, AdminCAFile: filepath.Join(dir, "missing.pem")}, "--tls-admin-ca"},
	}
	for _, tc := range tests {
		_, _, err := tc.files.Config()
		if err == nil || !strings.HasPrefix(err.Error(), tc.flag) {
			t.Errorf("%+v: %v; want an error starting with %s", tc.files, err, tc.flag)
		}
	}
}

func TestTLSClientCAReloadsWhenChanged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	selfSigned(t, cert, key, "server")
	ca, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	selfSigned(t, ca, caKey, "first CA")
	_, _, err := TLSFiles{CertFile: cert, KeyFile: key, ClientCAFile: ca}.Config()
	if err != nil {
		t.Fatal(err)
	}
	b := &caBundle{file: ca}
	if err := b.load(); err != nil {
		t.Fatal(err)
	}
	selfSigned(t, ca, caKey, "second CA")
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(ca, later, later); err != nil {
		t.Fatal(err)
	}
	if got := b.get()[0].Subject.CommonName; got != "first CA" {
		t.Fatalf("reloaded within reloadEvery: %q", got)
	}
	b.mu.Lock()
	b.checked = time.Now().Add(-reloadEvery)
	b.mu.Unlock()
	if got := b.get()[0].Subject.CommonName; got != "second CA" {
		t.Fatalf("after the change: %q, want second CA", got)
	}
	// A broken file keeps the CAs in use.
	if err := os.WriteFile(ca, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	evenLater := later.Add(time.Minute)
	if err := os.Chtimes(ca, evenLater, evenLater); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.checked = time.Now().Add(-reloadEvery)
	b.mu.Unlock()
	if got := b.get()[0].Subject.CommonName; got != "second CA" {
		t.Fatalf("after a broken write: %q, want second CA kept", got)
	}
}
