// Package scope runs AdminService's queries as the caller: every statement
// (or explicit transaction) runs in a transaction that first switches to
// the database role scanorama_admin_api (not a superuser, not BYPASSRLS,
// owning no table) and sets the caller's site scope, so PostgreSQL's
// row-level security policies (sql/migrations/0011_trust_people.sql)
// confine a site-scoped caller to its sites. It is the one place that does
// this; the admin package reaches the database only through DB.
//
// Without a principal in the context DB refuses to query at all: a request
// that lost its caller must never run unscoped.
package scope

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/authz"
	"github.com/scanorama/scanorama/controller/internal/planmode"
)

// Role is the database role admin transactions run as.
const Role = "scanorama_admin_api"

// ErrNoPrincipal is returned for a query whose context carries no caller.
var ErrNoPrincipal = errors.New("scope: no caller in the context; refusing to query")

// DB is a db.DBTX whose statements run with the caller's scope, and a
// transaction starter (for pgx.BeginFunc/BeginTxFunc) whose transactions do.
type DB struct {
	pool *pgxpool.Pool
}

// New wraps pool.
func New(pool *pgxpool.Pool) *DB { return &DB{pool: pool} }

// Settings returns the values of scanorama.scope and scanorama.sites for p.
func Settings(p authz.Principal) (scope, sites string) {
	if !p.Scoped() {
		return "all", ""
	}
	ids := make([]string, len(p.Sites))
	for i, s := range p.Sites {
		ids[i] = s.String()
	}
	return "sites", strings.Join(ids, ",")
}

// SetupSQL switches the current transaction to the admin role and scope;
// its parameters are the role, scanorama.scope and scanorama.sites.
const SetupSQL = `SELECT set_config('role', $1, true), set_config('scanorama.scope', $2, true), set_config('scanorama.sites', $3, true)`

// Apply sets p's scope on tx (which must be a transaction: the settings
// are transaction-local).
func Apply(ctx context.Context, tx pgx.Tx, p authz.Principal) error {
	scope, sites := Settings(p)
	if _, err := tx.Exec(ctx, SetupSQL, Role, scope, sites); err != nil {
		return fmt.Errorf("set caller scope: %w", err)
	}
	return nil
}

// Begin starts a read-committed transaction with the caller's scope.
func (d *DB) Begin(ctx context.Context) (pgx.Tx, error) {
	return d.BeginTx(ctx, pgx.TxOptions{})
}

// BeginTx starts a transaction with opts and the caller's scope.
func (d *DB) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	p, ok := authz.FromContext(ctx)
	if !ok {
		return nil, ErrNoPrincipal
	}
	tx, err := d.pool.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := Apply(ctx, tx, p); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, err
	}
	return tx, nil
}

// Exec runs one statement in its own scoped transaction.
func (d *DB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tx, err := d.Begin(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := tx.Exec(ctx, sql, args...)
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return tag, err
	}
	return tag, tx.Commit(ctx)
}

// Query runs one statement in its own scoped transaction, committed when
// the rows are exhausted or closed.
func (d *DB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	tx, err := d.Begin(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, sql, planmode.Args(sql, args)...)
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, err
	}
	return &txRows{Rows: rows, tx: tx, ctx: ctx}, nil
}

// QueryRow runs one statement in its own scoped transaction, committed
// when the row is scanned.
func (d *DB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	tx, err := d.Begin(ctx)
	if err != nil {
		return errRow{err}
	}
	return &txRow{row: tx.QueryRow(ctx, sql, args...), tx: tx, ctx: ctx}
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type txRow struct {
	row pgx.Row
	tx  pgx.Tx
	ctx context.Context
}

func (r *txRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		_ = r.tx.Rollback(context.WithoutCancel(r.ctx))
		return err
	}
	if cerr := r.tx.Commit(r.ctx); cerr != nil {
		return cerr
	}
	return err
}

// txRows ends its transaction when the rows are done: sqlc's generated
// code checks Err after Next returned false and closes afterwards.
type txRows struct {
	pgx.Rows
	tx   pgx.Tx
	ctx  context.Context
	done bool
	err  error
}

func (r *txRows) finish() {
	if r.done {
		return
	}
	r.done = true
	r.Rows.Close()
	if err := r.Rows.Err(); err != nil {
		_ = r.tx.Rollback(context.WithoutCancel(r.ctx))
		return
	}
	r.err = r.tx.Commit(r.ctx)
}

func (r *txRows) Next() bool {
	if r.done {
		return false
	}
	if r.Rows.Next() {
		return true
	}
	r.finish()
	return false
}

func (r *txRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

func (r *txRows) Close() { r.finish() }
