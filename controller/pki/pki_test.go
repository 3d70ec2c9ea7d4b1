package pki

import (
	"crypto/rand"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func newCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestSaveLoadRefusesOverwrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := LoadCA(dir); err == nil || !strings.Contains(err.Error(), ErrNoCA.Error()) {
		t.Fatalf("LoadCA of an empty dir: %v, want ErrNoCA", err)
	}
	ca := newCA(t)
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	_, keyFile := Paths(dir)
	st, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	got, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint() != ca.Fingerprint() {
		t.Errorf("loaded fingerprint %s, want %s", got.Fingerprint(), ca.Fingerprint())
	}
	if err := newCA(t).Save(dir); err == nil {
		t.Fatal("Save over an existing CA succeeded")
	}
	again, err := LoadCA(dir)
	if err != nil || again.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("CA changed after a refused overwrite: %v", err)
	}
}

func TestLoadCAMismatchedKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := newCA(t).Save(dir); err != nil {
		t.Fatal(err)
	}
	other := newCA(t)
	keyPEM, _ := EncodeKey(other.Key)
	_, keyFile := Paths(dir)
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(dir); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("LoadCA with another CA's key: %v", err)
	}
}

func TestIssueAndVerifyAgent(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	key, _ := NewKey()
	csr, err := NewCSR(key, "whatever the agent asks")
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{AgentID: uuid.New(), Site: "lab"}
	cert, err := ca.IssueAgent(csr, id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != id.AgentID.String() {
		t.Errorf("CN %q, want the agent id", cert.Subject.CommonName)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		t.Error("certificate is not for the CSR's key")
	}
	got, err := VerifyAgent(ca.Cert, cert, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got != id {
		t.Errorf("identity %+v, want %+v", got, id)
	}
	tests := []struct {
		name string
		ca   *x509.Certificate
		at   time.Time
	}{
		{"expired", ca.Cert, time.Now().Add(2 * time.Hour)},
		{"another CA", newCA(t).Cert, time.Now()},
	}
	for _, tc := range tests {
		if _, err := VerifyAgent(tc.ca, cert, tc.at); err == nil {
			t.Errorf("%s: VerifyAgent accepted it", tc.name)
		}
	}
}

func TestIssueAgentRejectsBadCSR(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	key, _ := NewKey()
	csr, _ := NewCSR(key, "a")
	csr[len(csr)-3] ^= 0xff // break the signature
	for name, der := range map[string][]byte{"garbage": []byte("nope"), "bad signature": csr} {
		if _, err := ca.IssueAgent(der, Identity{AgentID: uuid.New(), Site: "lab"}, time.Hour); err == nil || !strings.Contains(err.Error(), "csr_der") {
			t.Errorf("%s: err %v, want one naming csr_der", name, err)
		}
	}
}

func TestIdentityNeedsMatchingCN(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	key, _ := NewKey()
	csr, _ := NewCSR(key, "a")
	cert, err := ca.IssueAgent(csr, Identity{AgentID: uuid.New(), Site: "lab"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert.Subject.CommonName = uuid.NewString()
	if _, err := IdentityOf(cert); err == nil {
		t.Fatal("an identity whose CN and URI disagree was accepted")
	}
}

func TestPinnedVerifier(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	srv, err := ca.IssueServer([]string{"127.0.0.1", "controller.test"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyPinned(srv.Certificate, ca.Fingerprint(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(ca.Cert) {
		t.Error("VerifyPinned returned another CA")
	}
	// A man in the middle with his own CA presenting a look-alike chain.
	evil := newCA(t)
	evilSrv, _ := evil.IssueServer([]string{"127.0.0.1"}, time.Hour)
	// A chain that carries the real CA but a leaf the attacker signed.
	mixed := [][]byte{evilSrv.Certificate[0], ca.Cert.Raw}
	tests := []struct {
		name  string
		chain [][]byte
		pin   string
		at    time.Time
	}{
		{"other CA", evilSrv.Certificate, ca.Fingerprint(), time.Now()},
		{"real CA, foreign leaf", mixed, ca.Fingerprint(), time.Now()},
		{"wrong pin", srv.Certificate, evil.Fingerprint(), time.Now()},
		{"leaf only", srv.Certificate[:1], ca.Fingerprint(), time.Now()},
		{"expired", srv.Certificate, ca.Fingerprint(), time.Now().Add(2 * time.Hour)},
		{"empty", nil, ca.Fingerprint(), time.Now()},
	}
	for _, tc := range tests {
		if _, err := VerifyPinned(tc.chain, tc.pin, tc.at); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if err := PinnedVerifier(ca.Fingerprint())(srv.Certificate, nil); err != nil {
		t.Errorf("PinnedVerifier: %v", err)
	}
}

func TestTokenRoundTrip(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	tok, err := NewToken(ca.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseToken(tok.String())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != tok.ID || string(got.SecretHash()) != string(tok.SecretHash()) || got.CAFingerprint != ca.Fingerprint() {
		t.Errorf("round trip changed the token")
	}
	s := tok.String()
	bad := []string{"", "scn1", strings.Replace(s, "scn1.", "scn2.", 1), s[:len(s)-1], s + "x",
		strings.Replace(s, tok.ID, "XYZ", 1)}
	for _, b := range bad {
		_, err := ParseToken(b)
		if err == nil {
			t.Errorf("ParseToken(%q) accepted", b)
			continue
		}
		if strings.Contains(err.Error(), tok.String()[20:40]) {
			t.Errorf("error repeats the secret: %v", err)
		}
	}
}

func TestFingerprintIsSPKI(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	if len(ca.Fingerprint()) != 64 {
		t.Fatalf("fingerprint %q", ca.Fingerprint())
	}
	// Same key, new certificate: same pin (kubeadm-style SPKI hash).
	tmpl := *ca.Cert
	tmpl.SerialNumber = serial()
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &ca.Key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := x509.ParseCertificate(der)
	if Fingerprint(again) != ca.Fingerprint() {
		t.Error("re-issued CA certificate with the same key changed the pin")
	}
	if newCA(t).Fingerprint() == ca.Fingerprint() {
		t.Error("two CAs share a pin")
	}
}

// The renewal point (2/3 of NotBefore..NotAfter) of a short certificate
// must lie well before its end, backdating or not.
func TestShortCertificateRenewalPoint(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	key, _ := NewKey()
	csr, _ := NewCSR(key, "a")
	cert, err := ca.IssueAgent(csr, Identity{AgentID: uuid.New(), Site: "lab"}, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	renew := cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) * 2 / 3)
	if left := cert.NotAfter.Sub(renew); left < 5*time.Second {
		t.Errorf("renewal point leaves %s before expiry, want a third of 20s", left)
	}
}
