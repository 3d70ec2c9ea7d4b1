// Package admin serves AdminService, the operator API used through grpcurl.
// It validates every request completely before writing anything, so bad
// input fails with INVALID_ARGUMENT naming the field (google.rpc.BadRequest)
// and leaves the database untouched.
package admin

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/authz"
	"github.com/scanorama/scanorama/controller/internal/planmode"
	"github.com/scanorama/scanorama/controller/scope"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Subscriber streams raw event payloads for WatchEvents.
type Subscriber interface {
	SubscribeEvents(buffer int) (<-chan string, func())
}

// Server implements pb.AdminServiceServer.
type Server struct {
	pb.UnimplementedAdminServiceServer
	// pool and q run every statement as the caller (controller/scope):
	// as scanorama_admin_api, under the caller's site scope.
	pool     *scope.DB
	q        *db.Queries
	events   Subscriber
	importer Importer
	log      hclog.Logger
}

// New returns an AdminService implementation.
func New(pool *pgxpool.Pool, events Subscriber, log hclog.Logger) *Server {
	sdb := scope.New(pool)
	return &Server{pool: sdb, q: db.New(sdb), events: events, log: log.Named("admin")}
}

// actor names who made a change, for the audit columns: the caller's
// identity as authz established it (token, certificate or insecure peer).
func actor(ctx context.Context) string {
	if p, ok := authz.FromContext(ctx); ok {
		return p.Identity()
	}
	if p := peerAddr(ctx); p != "" {
		return "unauthenticated@" + p
	}
	return "unauthenticated"
}

func parseID(field, s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		if s == "" {
			return id, apierr.InvalidField(field, "required")
		}
		return id, apierr.InvalidField(field, "not a UUID: %q", s)
	}
	return id, nil
}

func parseCIDR(field, s string) (netip.Prefix, *apierr.FieldError) {
	if s == "" {
		return netip.Prefix{}, apierr.Field(field, "required, e.g. \"10.99.0.0/24\"")
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		// A bare address is a common shorthand for a single host.
		if a, aerr := netip.ParseAddr(strings.TrimSpace(s)); aerr == nil {
			return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
		}
		return netip.Prefix{}, apierr.Field(field, "not a CIDR: %q", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, apierr.Field(field, "use the IPv4 form, not %q", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, apierr.Field(field, "%q has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

func (s *Server) siteByName(ctx context.Context, q *db.Queries, field, name string) (db.Site, error) {
	if name == "" {
		return db.Site{}, apierr.InvalidField(field, "required")
	}
	site, err := q.GetSiteByName(ctx, name)
	if errors.Is(err, pgx.ErrNoRows) {
		return site, apierr.NotFound(field, "no site named %q", name)
	}
	if err != nil {
		return site, s.internal("look up site", err)
	}
	return site, nil
}

// optionalSite resolves a site filter; empty means all sites.
func (s *Server) optionalSite(ctx context.Context, name string) (uuid.NullUUID, error) {
	return s.optionalSiteIn(ctx, s.q, name)
}

// optionalSiteIn is optionalSite read through q (a request's transaction).
func (s *Server) optionalSiteIn(ctx context.Context, q *db.Queries, name string) (uuid.NullUUID, error) {
	if name == "" {
		return uuid.NullUUID{}, nil
	}
	site, err := s.siteByName(ctx, q, "site", name)
	if err != nil {
		return uuid.NullUUID{}, err
	}
	return uuid.NullUUID{UUID: site.ID, Valid: true}, nil
}

// internal maps unexpected errors (apierr.People): constraint violations
// that slipped past validation still come back as the caller's mistake, not
// INTERNAL.
func (s *Server) internal(what string, err error) error {
	return apierr.People.Err(s.log, what, err)
}

// read runs fn's queries in one read-only transaction with the caller's
// scope: one role/scope setup and one snapshot for a request's several
// reads, instead of a transaction (BEGIN, setup, query, COMMIT) each.
// Queries marked for a custom plan stay unnamed (planmode).
func (s *Server) read(ctx context.Context, fn func(q *db.Queries) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		return fn(s.q.WithTx(planmode.Marked{Tx: tx}))
	})
}
