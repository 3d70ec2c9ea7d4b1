package authz

import (
	"context"
	"slices"

	"github.com/google/uuid"
)

// Kind says how a caller proved who it is.
type Kind string

// Kinds of principals.
const (
	KindToken       Kind = "token"
	KindCertificate Kind = "cert"
	KindInsecure    Kind = "insecure"
	KindCLI         Kind = "cli"
)

// Principal is the authenticated caller of one AdminService call.
type Principal struct {
	Kind Kind
	// ID is the token id for KindToken; empty otherwise.
	ID string
	// Name is the token's name, the certificate's subject, or the peer.
	Name string
	Role Role
	// Sites confines the caller to these sites; empty means every site.
	Sites []uuid.UUID
	// Peer is the caller's address.
	Peer string
}

// Identity is how the caller is recorded in created_by/modified_by/
// changed_by columns and the audit log. It never contains a secret.
func (p Principal) Identity() string {
	switch p.Kind {
	case KindToken:
		return "token:" + p.Name + "/" + p.ID
	case KindCertificate:
		return "cert:" + p.Name
	case KindInsecure:
		if p.Peer == "" {
			return "insecure"
		}
		return "insecure@" + p.Peer
	case KindCLI:
		return "cli:" + p.Name
	}
	return "unknown"
}

// Scoped reports whether the caller is confined to some sites.
func (p Principal) Scoped() bool { return len(p.Sites) > 0 }

// SeesSite reports whether the caller may see the site.
func (p Principal) SeesSite(id uuid.UUID) bool {
	return !p.Scoped() || slices.Contains(p.Sites, id)
}

type principalKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the call's principal; ok is false outside an
// authorized AdminService call.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
