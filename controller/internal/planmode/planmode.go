// Package planmode owns one decision: which queries are sent as unnamed
// statements, so PostgreSQL plans them for each call's values and the
// transaction's settings instead of reusing a plan pgx prepared and cached
// on a pooled connection.
//
// A cached statement goes wrong two ways here. After five executions
// PostgreSQL may switch it to a generic plan, which for a query whose
// filters are all optional ("$1 IS NULL OR col = $1") cannot bound an index
// scan by them (ListHosts at 1M hosts). And a cached plan is not redone when
// a setting such as enable_sort changes (why the change feed's reads carry
// theirs in the function feed_page, migration 0022).
package planmode

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Marker in a query's text asks for a plan made for each call's values.
const Marker = "-- scanorama:custom-plan"

// Args returns args led by the unnamed-statement mode when sql carries
// Marker, else args unchanged.
func Args(sql string, args []any) []any {
	if !strings.Contains(sql, Marker) {
		return args
	}
	return append([]any{pgx.QueryExecModeExec}, args...)
}

// Marked is a transaction that sends the queries carrying Marker as
// unnamed statements and the others as usual (prepared and cached), as
// scope.DB does for single statements.
type Marked struct{ pgx.Tx }

// Query runs sql in the transaction, unnamed when it carries Marker.
func (m Marked) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return m.Tx.Query(ctx, sql, Args(sql, args)...)
}

// QueryRow runs sql in the transaction, unnamed when it carries Marker.
func (m Marked) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return m.Tx.QueryRow(ctx, sql, Args(sql, args)...)
}
