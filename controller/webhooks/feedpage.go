package webhooks

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/controller/changefeed"
	"github.com/scanorama/scanorama/gen/db"
)

// The feed page a build reads, by hand rather than through sqlc: sqlc's
// :many grows its result slice row by row (about 3.5 times a page's size
// allocated and copied, with write barriers, for 4,000 rows: a sixth of
// the controller's CPU in a 50,000-change burst; sqlc-dev/sqlc#4031), and
// this page is scanned straight into the rows the builder reads, with room
// for all of them. The statements are exercised against the schema by the
// dispatcher's tests. host_history_site_feed (site) and host_history_feed
// (every site) are walked in order under enable_sort = off.
const (
	feedPageColumns = `id, host_id, site_id, job_id, event, port, protocol, old_value, new_value, changed_at, feed_seq`
	feedPageSite    = `SELECT ` + feedPageColumns + ` FROM host_history
		WHERE site_id = $1 AND feed_seq > $2 ORDER BY feed_seq LIMIT $3`
	feedPageAllSites = `SELECT ` + feedPageColumns + ` FROM host_history
		WHERE feed_seq > $1 ORDER BY feed_seq LIMIT $2`
)

// readPage reads up to limit feed rows after after for w, with what a
// payload and the webhook's filters need of their hosts, sites and jobs:
// each looked up once per page (a burst of 50,000 changes comes from a few
// hundred hosts) in the page's snapshot (a repeatable-read transaction), so
// a row reads as it would joined. enable_sort is off: after a burst the
// statistics say few rows lie past the cursor, and the planner would rather
// fetch them by a bitmap and sort than walk the feed index in order. The
// page is read into buf when it has room.
func (d *Dispatcher) readPage(ctx context.Context, w db.Webhook, after int64, limit int32, buf []changefeed.Row) (rows []changefeed.Row, err error) {
	err = pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL enable_sort = off"); err != nil {
			return err
		}
		if rows, err = scanFeedPage(ctx, tx, w, after, limit, buf); err != nil {
			return fmt.Errorf("read the feed: %w", err)
		}
		return d.joinPage(ctx, d.q.WithTx(tx), w, rows)
	})
	return rows, err
}

// scanFeedPage reads the page's changes into buf, or into new rows with
// room for limit when buf has not.
func scanFeedPage(ctx context.Context, tx pgx.Tx, w db.Webhook, after int64, limit int32, buf []changefeed.Row) ([]changefeed.Row, error) {
	var (
		res pgx.Rows
		err error
	)
	if w.SiteID.Valid {
		res, err = tx.Query(ctx, feedPageSite, w.SiteID.UUID, after, limit)
	} else {
		res, err = tx.Query(ctx, feedPageAllSites, after, limit)
	}
	if err != nil {
		return nil, err
	}
	defer res.Close()
	rows := buf[:0]
	if cap(rows) < int(limit) {
		rows = make([]changefeed.Row, 0, limit)
	}
	for res.Next() {
		rows = append(rows, changefeed.Row{})
		h := &rows[len(rows)-1].HostHistory
		if err := res.Scan(&h.ID, &h.HostID, &h.SiteID, &h.JobID, &h.Event, &h.Port, &h.Protocol,
			&h.OldValue, &h.NewValue, &h.ChangedAt, &h.FeedSeq); err != nil {
			return nil, err
		}
	}
	return rows, res.Err()
}

// joinPage fills in the page's rows their host's address and name, their
// site's name and, for a webhook that filters by target, their job's
// target. Every change has its host and site: the feed's foreign keys
// delete a change with either, and the lookups read the page's snapshot.
func (d *Dispatcher) joinPage(ctx context.Context, q *db.Queries, w db.Webhook, rows []changefeed.Row) error {
	if len(rows) == 0 {
		return nil
	}
	var hostIDs, siteIDs, jobIDs []uuid.UUID
	seen := make(map[uuid.UUID]struct{})
	distinct := func(ids []uuid.UUID, id uuid.UUID) []uuid.UUID {
		if _, ok := seen[id]; ok {
			return ids
		}
		seen[id] = struct{}{}
		return append(ids, id)
	}
	for i := range rows {
		h := &rows[i].HostHistory
		hostIDs = distinct(hostIDs, h.HostID)
		siteIDs = distinct(siteIDs, h.SiteID)
		if w.TargetID.Valid && h.JobID.Valid {
			jobIDs = distinct(jobIDs, h.JobID.UUID)
		}
	}
	hosts, err := q.WebhookFeedHosts(ctx, hostIDs)
	if err != nil {
		return fmt.Errorf("read the page's hosts: %w", err)
	}
	byHost := make(map[uuid.UUID]*db.WebhookFeedHostsRow, len(hosts))
	for i := range hosts {
		byHost[hosts[i].ID] = &hosts[i]
	}
	sites, err := q.WebhookFeedSites(ctx, siteIDs)
	if err != nil {
		return fmt.Errorf("read the page's sites: %w", err)
	}
	siteName := make(map[uuid.UUID]string, len(sites))
	for _, s := range sites {
		siteName[s.ID] = s.Name
	}
	target := make(map[uuid.UUID]uuid.UUID)
	if len(jobIDs) > 0 {
		jobs, err := q.WebhookFeedJobTargets(ctx, jobIDs)
		if err != nil {
			return fmt.Errorf("read the page's jobs: %w", err)
		}
		for _, j := range jobs {
			target[j.ID] = j.TargetID
		}
	}
	for i := range rows {
		r := &rows[i]
		h := &r.HostHistory
		host, ok := byHost[h.HostID]
		site, sok := siteName[h.SiteID]
		if !ok || !sok {
			return fmt.Errorf("change %d: host %s or site %s not found", h.ID, h.HostID, h.SiteID)
		}
		r.SiteName, r.IpAddress, r.Hostname = site, host.IpAddress, host.Hostname
		if t, ok := target[h.JobID.UUID]; ok && h.JobID.Valid {
			r.TargetID = uuid.NullUUID{UUID: t, Valid: true}
		}
	}
	return nil
}
