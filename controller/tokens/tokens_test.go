package tokens_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/scanorama/scanorama/controller/authz"
	"github.com/scanorama/scanorama/controller/pgtest"
	"github.com/scanorama/scanorama/controller/tokens"
	"github.com/scanorama/scanorama/gen/db"
)

// A token verifies until it expires or is revoked; a wrong secret, a
// malformed token or an unknown id never does. Only the hash is stored.
func TestVerifyLifecycle(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	q := db.New(pool)
	row, tok, err := tokens.Create(ctx, q, tokens.Spec{Name: "ops", Role: authz.RoleOperator, TTL: time.Hour, CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	id, secret, ok := tokens.Parse(tok)
	if !ok || id != row.ID || len(secret) != 64 {
		t.Fatalf("token %q does not parse into id %s and a 256-bit secret", tok, row.ID)
	}
	var stored string
	if err := pool.QueryRow(ctx, `SELECT t::text FROM api_tokens t`).Scan(&stored); err != nil || strings.Contains(stored, secret) {
		t.Fatalf("stored row %q holds the secret (%v)", stored, err)
	}
	v := tokens.NewVerifier(pool)
	p, err := v.Verify(ctx, tok)
	if err != nil || p.Role != authz.RoleOperator || p.ID != row.ID || p.Identity() != "token:ops/"+row.ID {
		t.Fatalf("Verify: %+v %v", p, err)
	}
	bad := []string{
		"", "scn_", tok + "0", strings.ToUpper(tok),
		"scn_" + id + "_" + strings.Repeat("0", 64),
		"scn_" + strings.Repeat("f", 16) + "_" + secret,
	}
	for _, b := range bad {
		if _, err := v.Verify(ctx, b); !errors.Is(err, authz.ErrInvalidToken) {
			t.Errorf("Verify(%q): %v; want ErrInvalidToken", b, err)
		}
	}
	later := tokens.NewVerifierAt(pool, func() time.Time { return time.Now().Add(2 * time.Hour) })
	if _, err := later.Verify(ctx, tok); !errors.Is(err, authz.ErrInvalidToken) {
		t.Errorf("expired token: %v", err)
	}
	if _, err := q.RevokeAPIToken(ctx, db.RevokeAPITokenParams{ID: id, RevokedBy: pgtype.Text{String: "test", Valid: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, tok); !errors.Is(err, authz.ErrInvalidToken) {
		t.Errorf("revoked token: %v", err)
	}
}

func TestSpecValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		spec  tokens.Spec
		field string
	}{
		{tokens.Spec{Role: authz.RoleAdmin}, "name"},
		{tokens.Spec{Name: "x"}, "role"},
		{tokens.Spec{Name: "x", Role: authz.RoleViewer, TTL: time.Second}, "ttl"},
		{tokens.Spec{Name: "x", Role: authz.RoleViewer, TTL: -time.Hour}, "ttl"},
		{tokens.Spec{Name: "x", Role: authz.RoleViewer}, ""},
	} {
		if field, _ := tc.spec.Validate(); field != tc.field {
			t.Errorf("%+v: field %q, want %q", tc.spec, field, tc.field)
		}
	}
}
