package bench

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// startPGStats forgets the statement statistics gathered so far, so that
// logPGStats reports one timed phase only. A no-op unless Env.PGStats.
func (e *Env) startPGStats(ctx context.Context) error {
	if !e.PGStats {
		return nil
	}
	pg, err := e.Postgres(ctx)
	if err != nil {
		return err
	}
	return e.adminExec(ctx, pg, "SELECT pg_stat_statements_reset()")
}

// logPGStats logs the n statements of the phase that took PostgreSQL the most
// execution time, with calls and time per call: where a case's time goes.
func (e *Env) logPGStats(ctx context.Context, phase string, n int) {
	if !e.PGStats {
		return
	}
	pg, err := e.Postgres(ctx)
	if err != nil {
		return
	}
	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		e.Log.Warn("pg_stat_statements", "error", err)
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Statements on a session's TEMP tables get one entry per session (the
	// table OIDs differ): group by text.
	rows, err := conn.Query(ctx, `
		SELECT sum(calls)::bigint, sum(total_exec_time), sum(total_plan_time), sum(rows)::bigint,
		       left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS q
		FROM pg_stat_statements
		WHERE query NOT ILIKE '%pg_stat_statements%'
		GROUP BY q
		ORDER BY sum(total_exec_time) + sum(total_plan_time) DESC
		LIMIT $1`, n)
	if err != nil {
		e.Log.Warn("pg_stat_statements", "error", err)
		return
	}
	defer rows.Close()
	var b strings.Builder
	var sum float64
	for rows.Next() {
		var calls, nrows int64
		var exec, plan float64
		var q string
		if err := rows.Scan(&calls, &exec, &plan, &nrows, &q); err != nil {
			e.Log.Warn("pg_stat_statements", "error", err)
			return
		}
		sum += exec + plan
		fmt.Fprintf(&b, "\n  %8d calls %8d rows %9.0f ms exec %7.0f ms plan %7.3f ms/call  %s", calls, nrows, exec, plan, (exec+plan)/float64(max(calls, 1)), q)
	}
	e.Log.Info("PostgreSQL statements by time: " + phase + fmt.Sprintf(" (top %d: %.0f ms)", n, sum) + b.String())
}
