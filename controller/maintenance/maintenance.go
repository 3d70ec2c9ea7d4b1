// Package maintenance owns the controller's housekeeping loops: keeping
// monthly port_scans partitions ahead of time, archiving old months of
// port_scans, retention of everything that grows, and the background purge of
// deleted targets and sites. Schedules are the scheduler package's. Every loop
// is safe to run on several controllers at once.
package maintenance

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/gen/db"
)

// PartitionMonthsAhead is how many monthly partitions exist beyond the current one.
const PartitionMonthsAhead = 3

// Maintainer runs the housekeeping loops.
type Maintainer struct {
	pool *pgxpool.Pool
	q    *db.Queries
	log  hclog.Logger
	// RetentionMonths keeps this many whole months of port_scans live
	// (plus the current one); older months move to the archive schema.
	// Zero keeps everything.
	RetentionMonths int
	// Retention bounds host_history, finished jobs and runs, and archived
	// months (see RetentionPass).
	Retention Retention
	// RetentionEvery is how often RetentionPass runs; PurgeEvery how often
	// the purge queue is looked at.
	RetentionEvery time.Duration
	PurgeEvery     time.Duration
	// Batch bounds each purge and retention step (rows); 0 is DefaultBatch.
	Batch int
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// New returns a Maintainer.
func New(pool *pgxpool.Pool, log hclog.Logger) *Maintainer {
	return &Maintainer{pool: pool, q: db.New(pool), log: log.Named("maintenance"),
		RetentionEvery: time.Hour, PurgeEvery: 2 * time.Second, Now: time.Now}
}

// EnsurePartitions creates the partitions for last month through
// PartitionMonthsAhead months from now.
func (m *Maintainer) EnsurePartitions(ctx context.Context) error {
	made, err := m.q.EnsurePortScanPartitions(ctx, db.EnsurePortScanPartitionsParams{
		FromTs: time.Now().AddDate(0, -1, 0), Months: PartitionMonthsAhead + 2,
	})
	if err != nil {
		return err
	}
	if made > 0 {
		m.log.Info("created port_scans partitions", "count", made)
	}
	return nil
}

// Run loops until ctx ends.
func (m *Maintainer) Run(ctx context.Context) {
	partitions := time.NewTicker(6 * time.Hour)
	defer partitions.Stop()
	retention := time.NewTicker(m.RetentionEvery)
	defer retention.Stop()
	purge := time.NewTicker(m.PurgeEvery)
	defer purge.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-purge.C:
			if _, err := m.Purge(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("purge failed; will retry", "error", err)
			}
		case <-retention.C:
			if _, err := m.RetentionPass(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("retention pass failed; will retry", "error", err)
			}
		case <-partitions.C:
			if err := m.EnsurePartitions(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("create port_scans partitions failed; will retry", "error", err)
			}
			if _, err := m.Archive(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("archiving old port_scans failed; will retry", "error", err)
			}
		}
	}
}

// RetentionCutoff is the first instant still kept live: the start of the
// month RetentionMonths before the current one (UTC).
func (m *Maintainer) RetentionCutoff() time.Time {
	now := m.Now().UTC()
	return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -m.RetentionMonths, 0)
}

// Archive detaches the monthly port_scans partitions older than the
// retention period into the archive schema and returns their names.
func (m *Maintainer) Archive(ctx context.Context) ([]string, error) {
	if m.RetentionMonths <= 0 {
		return nil, nil
	}
	moved, err := m.q.ArchivePortScansBefore(ctx, m.RetentionCutoff())
	if err != nil {
		return nil, err
	}
	for _, p := range moved {
		m.log.Info("archived port_scans partition", "partition", p, "schema", "archive")
	}
	return moved, nil
}
