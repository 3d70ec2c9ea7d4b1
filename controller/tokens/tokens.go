// Package tokens owns people's bearer tokens: minting ("scn_<id>_<secret>",
// a 256-bit random secret of which only the SHA-256 is stored), parsing,
// verification into an authz.Principal, listing and revocation. The
// secret is returned once, at creation, and never logged.
package tokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/scanorama/scanorama/controller/authz"
	"github.com/scanorama/scanorama/gen/db"
)

// Prefix starts every token, so scanners of leaked secrets can spot them.
const Prefix = "scn_"

var tokenRe = regexp.MustCompile(`^scn_([0-9a-f]{16})_([0-9a-f]{64})$`)

// Spec describes a token to mint.
type Spec struct {
	Name  string
	Role  authz.Role
	Sites []uuid.UUID
	// TTL: zero never expires.
	TTL       time.Duration
	CreatedBy string
}

// Validate checks s, naming the field at fault.
func (s Spec) Validate() (field string, err error) {
	switch {
	case s.Name == "" || len(s.Name) > 128:
		return "name", errors.New("required, at most 128 characters")
	case s.Role < authz.RoleViewer || s.Role > authz.RoleAdmin:
		return "role", errors.New("admin, operator or viewer")
	case s.TTL < 0:
		return "ttl", errors.New("must not be negative")
	case s.TTL > 0 && s.TTL < time.Minute:
		return "ttl", errors.New("at least 1m")
	}
	return "", nil
}

// Create mints a token and stores its hash with q. It returns the stored
// row and the bearer token, which exists nowhere else.
func Create(ctx context.Context, q *db.Queries, s Spec) (db.ApiToken, string, error) {
	if field, err := s.Validate(); err != nil {
		return db.ApiToken{}, "", fmt.Errorf("%s: %w", field, err)
	}
	var idb [8]byte
	var secret [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return db.ApiToken{}, "", err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return db.ApiToken{}, "", err
	}
	id, sec := hex.EncodeToString(idb[:]), hex.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(sec))
	var expires pgtype.Timestamptz
	if s.TTL > 0 {
		expires = pgtype.Timestamptz{Time: time.Now().Add(s.TTL), Valid: true}
	}
	sites := s.Sites
	if sites == nil {
		sites = []uuid.UUID{}
	}
	row, err := q.CreateAPIToken(ctx, db.CreateAPITokenParams{
		ID: id, Name: s.Name, Role: s.Role.String(), SiteIds: sites, SecretSha256: sum[:],
		CreatedBy: s.CreatedBy, ExpiresAt: expires,
	})
	if err != nil {
		return db.ApiToken{}, "", err
	}
	return row, Prefix + id + "_" + sec, nil
}

// Parse splits a bearer token into its id and secret.
func Parse(token string) (id, secret string, ok bool) {
	m := tokenRe.FindStringSubmatch(token)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// Verifier checks bearer tokens against the database (as the owning role:
// it must see every token to verify it).
type Verifier struct {
	q   *db.Queries
	now func() time.Time
}

// NewVerifier returns a Verifier reading through dbtx.
func NewVerifier(dbtx db.DBTX) *Verifier {
	return &Verifier{q: db.New(dbtx), now: time.Now}
}

// NewVerifierAt is NewVerifier with a clock (for expiry tests).
func NewVerifierAt(dbtx db.DBTX, now func() time.Time) *Verifier {
	return &Verifier{q: db.New(dbtx), now: now}
}

// Verify implements authz.Verifier.
func (v *Verifier) Verify(ctx context.Context, token string) (authz.Principal, error) {
	id, secret, ok := Parse(token)
	if !ok {
		return authz.Principal{}, authz.ErrInvalidToken
	}
	row, err := v.q.GetAPIToken(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return authz.Principal{}, authz.ErrInvalidToken
	}
	if err != nil {
		return authz.Principal{}, fmt.Errorf("look up token: %w", err)
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], row.SecretSha256) != 1 || row.RevokedAt.Valid ||
		(row.ExpiresAt.Valid && !v.now().Before(row.ExpiresAt.Time)) {
		return authz.Principal{}, authz.ErrInvalidToken
	}
	role, err := authz.ParseRole(row.Role)
	if err != nil {
		return authz.Principal{}, authz.ErrInvalidToken
	}
	return authz.Principal{Kind: authz.KindToken, ID: row.ID, Name: row.Name, Role: role, Sites: row.SiteIds}, nil
}
