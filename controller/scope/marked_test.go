package scope_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/controller/authz"
	"github.com/scanorama/scanorama/controller/internal/planmode"
	"github.com/scanorama/scanorama/controller/pgtest"
	"github.com/scanorama/scanorama/controller/scope"
)

// A request's scoped transaction (admin's read) sends queries carrying
// planmode.Marker as unnamed statements, planned for each call's values,
// however often they run; the other queries are prepared and cached.
func TestMarkedTransactionKeepsCustomPlanQueriesUnnamed(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	ctx := authz.NewContext(context.Background(), authz.Principal{Kind: authz.KindToken, Role: authz.RoleAdmin})
	const (
		marked   = "SELECT count(*) FROM hosts WHERE ip_address >= $1::inet\n -- scanorama:custom-plan (test)\n"
		unmarked = "SELECT count(*) FROM hosts WHERE ip_address <= $1::inet"
	)
	err := pgx.BeginTxFunc(ctx, scope.New(pool), pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		m := planmode.Marked{Tx: tx}
		for range 7 { // past the five executions after which a cached statement may go generic
			for _, sql := range []string{marked, unmarked} {
				var n int
				if err := m.QueryRow(ctx, sql, "10.99.0.0").Scan(&n); err != nil {
					return err
				}
				rows, err := m.Query(ctx, sql, "10.99.0.0")
				if err != nil {
					return err
				}
				rows.Close()
				if err := rows.Err(); err != nil {
					return err
				}
			}
		}
		for _, c := range []struct {
			sql  string
			want int
		}{{marked, 0}, {unmarked, 1}} {
			var n int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
				pgx.QueryExecModeSimpleProtocol, c.sql).Scan(&n); err != nil {
				return err
			}
			if n != c.want {
				t.Errorf("%d prepared statements of %q, want %d", n, c.sql, c.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
