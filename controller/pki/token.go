package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
)

// tokenPrefix versions the enrollment token format:
// scn1.<id: 16 hex>.<secret: 43 base64url>.<CA fingerprint: 64 hex>.
const tokenPrefix = "scn1"

var (
	tokenIDRe = regexp.MustCompile(`^[0-9a-f]{16}$`)
	fpRe      = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Token is a one-time enrollment token. Only ID and the secret's hash are
// stored by the controller; CAFingerprint lets the agent pin the controller.
type Token struct {
	ID            string
	Secret        []byte
	CAFingerprint string
}

// NewToken makes a token for the CA with fingerprint caFP.
func NewToken(caFP string) (Token, error) {
	id := make([]byte, 8)
	secret := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return Token{}, err
	}
	if _, err := rand.Read(secret); err != nil {
		return Token{}, err
	}
	return Token{ID: hex.EncodeToString(id), Secret: secret, CAFingerprint: caFP}, nil
}

func (t Token) String() string {
	return strings.Join([]string{tokenPrefix, t.ID, base64.RawURLEncoding.EncodeToString(t.Secret), t.CAFingerprint}, ".")
}

// SecretHash is what the controller stores.
func (t Token) SecretHash() []byte {
	h := sha256.Sum256(t.Secret)
	return h[:]
}

// ParseToken parses a token; the error never repeats the token.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 4 || parts[0] != tokenPrefix {
		return Token{}, errors.New("not a scanorama enrollment token (scn1.<id>.<secret>.<ca-fingerprint>)")
	}
	secret, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(secret) != 32 {
		return Token{}, errors.New("enrollment token: malformed secret")
	}
	if !tokenIDRe.MatchString(parts[1]) {
		return Token{}, errors.New("enrollment token: malformed id")
	}
	if !fpRe.MatchString(parts[3]) {
		return Token{}, errors.New("enrollment token: malformed CA fingerprint")
	}
	return Token{ID: parts[1], Secret: secret, CAFingerprint: parts[3]}, nil
}
