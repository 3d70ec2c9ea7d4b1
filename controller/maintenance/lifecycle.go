package maintenance

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/scanorama/scanorama/gen/db"
)

// DefaultBatch bounds every purge and retention step: each deletes at most
// this many rows of one table in its own short transaction, so no lock is
// held for long and replication and vacuum keep up.
const DefaultBatch = 5000

// PurgeStats is what one Purge call removed.
type PurgeStats struct {
	Rows     int64
	Targets  int
	Sites    int
	Steps    int
	Finished []uuid.UUID
}

// Purge works through the purge queue (targets and sites deleted with
// purge: true) until it is empty, one bounded step per transaction. Steps
// are serialized across controllers by an advisory lock inside purge_step:
// a controller that finds another purging returns at once.
func (m *Maintainer) Purge(ctx context.Context) (PurgeStats, error) {
	var st PurgeStats
	for ctx.Err() == nil {
		rows, err := m.q.PurgeStep(ctx, int32(m.batch()))
		if err != nil {
			return st, fmt.Errorf("purge step: %w", err)
		}
		if len(rows) == 0 {
			break
		}
		r := rows[0]
		st.Steps++
		st.Rows += r.Deleted
		if r.Finished {
			st.Finished = append(st.Finished, r.ObjectID)
			if r.Kind == "site" {
				st.Sites++
			} else {
				st.Targets++
			}
			m.log.Info("purge finished", "kind", r.Kind, "id", r.ObjectID)
		}
	}
	return st, ctx.Err()
}

// Retention says how long each growing table keeps its rows; zero keeps
// them forever.
type Retention struct {
	// History: host_history rows (the change feed) older than this are
	// deleted, oldest first in feed order (prune_change_feed_step).
	History time.Duration
	// Jobs: finished scan_jobs (with their leases) and scan_runs older than
	// this are deleted, except jobs whose port_scans rows (live or
	// archived) still exist: a job lives as long as its raw results.
	Jobs time.Duration
	// Archive: archived port_scans months (schema "archive") are dropped
	// once they ended longer ago than this.
	Archive time.Duration
	// Deliveries: webhook deliveries delivered longer ago than this are
	// deleted (pending and dead ones stay).
	Deliveries time.Duration
}

// RetentionStats is what one retention pass removed.
type RetentionStats struct {
	DroppedArchives []string
	Jobs            int64
	Runs            int64
	History         int64
	Deliveries      int64
}

// RetentionPass applies m.Retention once, in bounded batches: archived
// months first (which frees their jobs), then jobs, runs and history.
func (m *Maintainer) RetentionPass(ctx context.Context) (RetentionStats, error) {
	var st RetentionStats
	now := m.Now()
	if d := m.Retention.Archive; d > 0 {
		for {
			var dropped string
			// A DROP waits for no long lock: if a long query holds the
			// table, this pass gives up and the next one tries again.
			err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '5s'"); err != nil {
					return err
				}
				var err error
				dropped, err = m.q.WithTx(tx).DropOldestArchivedPortScans(ctx, now.Add(-d))
				return err
			})
			if err != nil {
				return st, fmt.Errorf("drop archived port_scans: %w", err)
			}
			if dropped == "" {
				break
			}
			m.log.Info("dropped archived port_scans month", "table", dropped, "archive_retention", d)
			st.DroppedArchives = append(st.DroppedArchives, dropped)
		}
	}
	if d := m.Retention.Jobs; d > 0 {
		after := db.RetentionDeleteJobsParams{Cutoff: now.Add(-d), Batch: int32(m.batch()), AfterCompleted: time.Unix(0, 0).UTC()}
		for {
			r, err := m.q.RetentionDeleteJobs(ctx, after)
			if err != nil {
				return st, fmt.Errorf("delete old jobs: %w", err)
			}
			st.Jobs += r.Deleted
			if r.Scanned < after.Batch {
				break
			}
			after.AfterCompleted, after.AfterID = r.LastCompleted, r.LastID
		}
		runs := db.RetentionDeleteRunsParams{Cutoff: now.Add(-d), Batch: int32(m.batch()), AfterCreated: time.Unix(0, 0).UTC()}
		for {
			r, err := m.q.RetentionDeleteRuns(ctx, runs)
			if err != nil {
				return st, fmt.Errorf("delete old runs: %w", err)
			}
			st.Runs += r.Deleted
			if r.Scanned < runs.Batch {
				break
			}
			runs.AfterCreated, runs.AfterID = r.LastCreated, r.LastID
		}
	}
	if d := m.Retention.History; d > 0 {
		// host_history is the change feed: it is pruned from its oldest
		// end in feed order, recording how far, so that a WatchChanges
		// cursor older than what went gets OutOfRange rather than a gap.
		for {
			n, err := m.q.PruneChangeFeedStep(ctx, db.PruneChangeFeedStepParams{Cutoff: now.Add(-d), Batch: int32(m.batch())})
			if err != nil {
				return st, fmt.Errorf("prune the change feed (host_history): %w", err)
			}
			st.History += n
			if n < int64(m.batch()) {
				break
			}
		}
	}
	if d := m.Retention.Deliveries; d > 0 {
		cutoff := pgtype.Timestamptz{Time: now.Add(-d), Valid: true}
		for {
			n, err := m.q.RetentionDeleteDeliveries(ctx, db.RetentionDeleteDeliveriesParams{Cutoff: cutoff, Batch: int32(m.batch())})
			if err != nil {
				return st, fmt.Errorf("delete delivered webhook deliveries: %w", err)
			}
			st.Deliveries += n
			if n < int64(m.batch()) {
				break
			}
		}
	}
	if st.Jobs+st.Runs+st.History+st.Deliveries > 0 || len(st.DroppedArchives) > 0 {
		m.log.Info("retention pass", "jobs", st.Jobs, "runs", st.Runs, "host_history", st.History,
			"webhook_deliveries", st.Deliveries, "archives_dropped", len(st.DroppedArchives))
	}
	return st, nil
}

func (m *Maintainer) batch() int {
	if m.Batch > 0 {
		return m.Batch
	}
	return DefaultBatch
}
