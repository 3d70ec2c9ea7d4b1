package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// PinnedVerifier returns a tls.Config.VerifyPeerCertificate function for an
// agent's first contact, when it has no CA yet: the controller must present
// a chain holding a CA certificate whose fingerprint is pin (from the
// enrollment token), and its leaf must verify against that CA for server
// authentication. Use it with InsecureSkipVerify, which only turns off the
// default verification this replaces.
func PinnedVerifier(pin string) func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	return func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		_, err := VerifyPinned(rawCerts, pin, time.Now())
		return err
	}
}

// VerifyPinned checks a presented chain against the pinned CA fingerprint
// and returns that CA.
func VerifyPinned(rawCerts [][]byte, pin string, now time.Time) (*x509.Certificate, error) {
	if len(rawCerts) == 0 {
		return nil, errors.New("controller presented no certificate")
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return nil, fmt.Errorf("controller certificate %d: %w", i, err)
		}
		certs[i] = c
	}
	var ca *x509.Certificate
	for _, c := range certs {
		if c.IsCA && Fingerprint(c) == pin {
			ca = c
			break
		}
	}
	if ca == nil {
		return nil, fmt.Errorf("controller's CA does not match the enrollment token's fingerprint %s (got %s)", short(pin), short(Fingerprint(certs[len(certs)-1])))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, fmt.Errorf("controller certificate not issued by the pinned CA: %w", err)
	}
	return ca, nil
}

func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16] + "…"
	}
	return fp
}
