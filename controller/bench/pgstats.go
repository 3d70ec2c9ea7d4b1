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
		       sum(wal_bytes)::bigint, sum(wal_fpi)::bigint, left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS q
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
		var calls, nrows, walBytes, fpi int64
		var exec, plan float64
		var q string
		if err := rows.Scan(&calls, &exec, &plan, &nrows, &walBytes, &fpi, &q); err != nil {
			e.Log.Warn("pg_stat_statements", "error", err)
			return
		}
		sum += exec + plan
		fmt.Fprintf(&b, "\n  %8d calls %8d rows %9.0f ms exec %7.0f ms plan %7.3f ms/call %7.1f MB WAL %7d FPI  %s",
			calls, nrows, exec, plan, (exec+plan)/float64(max(calls, 1)), float64(walBytes)/(1<<20), fpi, q)
	}
	e.Log.Info("PostgreSQL statements by time: " + phase + fmt.Sprintf(" (top %d: %.0f ms)", n, sum) + b.String())
}

// clusterWAL is a reading of the cluster-wide WAL and checkpoint counters
// (pg_stat_wal, pg_stat_bgwriter): the difference of two readings says how
// much WAL a timed phase wrote, how much of it was full-page images, and
// whether a checkpoint ran meanwhile (each one makes the next change of
// every page log that page whole).
type clusterWAL struct {
	records, fpi, bytes, buffersFull int64
	checkpoints, backendWrites       int64
}

func (e *Env) readWAL(ctx context.Context) (clusterWAL, error) {
	var w clusterWAL
	pg, err := e.Postgres(ctx)
	if err != nil {
		return w, err
	}
	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		return w, fmt.Errorf("connect to benchmark PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = conn.QueryRow(ctx, `
		SELECT w.wal_records, w.wal_fpi, w.wal_bytes::bigint, w.wal_buffers_full,
		       b.checkpoints_timed + b.checkpoints_req, b.buffers_backend
		FROM pg_stat_wal w, pg_stat_bgwriter b`).Scan(&w.records, &w.fpi, &w.bytes, &w.buffersFull, &w.checkpoints, &w.backendWrites)
	if err != nil {
		return w, fmt.Errorf("read pg_stat_wal: %w", err)
	}
	return w, nil
}

// since is the activity between an earlier reading and w, for notes.
func (w clusterWAL) since(before clusterWAL) string {
	return fmt.Sprintf("WAL %.0f MB (%d records, %d full-page images), %d checkpoints, %d buffers written by backends",
		float64(w.bytes-before.bytes)/(1<<20), w.records-before.records, w.fpi-before.fpi,
		w.checkpoints-before.checkpoints, w.backendWrites-before.backendWrites)
}
