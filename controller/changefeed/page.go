package changefeed

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/scanorama/scanorama/gen/db"
)

// The feed read for bulk consumers (the webhook builder), without joins and
// scanned by hand: sqlc's :many grows its result slice row by row (about
// 3.5 times a page's size allocated and copied, with write barriers, for
// 4,000 rows: a sixth of the controller's CPU in a 50,000-change burst;
// sqlc-dev/sqlc#4031), and this page is scanned straight into the rows the
// caller reads, into a buffer it may reuse. host_history_site_feed (site)
// and host_history_feed (every site) are walked in order under
// enable_sort = off. The statements are exercised against the schema by
// this package's and the webhooks package's tests.
const (
	pageColumns = `id, host_id, site_id, job_id, event, port, protocol, old_value, new_value, changed_at, feed_seq`
	pageSite    = `SELECT ` + pageColumns + ` FROM host_history
		WHERE site_id = $1 AND feed_seq > $2 ORDER BY feed_seq LIMIT $3`
	pageAllSites = `SELECT ` + pageColumns + ` FROM host_history
		WHERE feed_seq > $1 ORDER BY feed_seq LIMIT $2`
)

// ReadPage reads up to limit changes after after, of site (uuid.Nil: every
// site), into buf when it has room, with their host's address and name,
// their site's name and, when withTarget, their job's target: each looked
// up once per page (a burst of 50,000 changes comes from a few hundred
// hosts), not probed per change. It reads in tx, which should be
// repeatable read, so the lookups see the page's snapshot and a row reads
// as it would joined; it turns enable_sort off for the rest of tx (after a
// burst the statistics say few rows lie past the cursor, and the planner
// would rather fetch them by a bitmap and sort than walk the feed index in
// order). Unlike Read it does not fill changed_by and change_reason.
func ReadPage(ctx context.Context, tx pgx.Tx, site uuid.UUID, after int64, limit int32, withTarget bool, buf []Row) ([]Row, error) {
	if _, err := tx.Exec(ctx, "SET LOCAL enable_sort = off"); err != nil {
		return nil, err
	}
	rows, err := scanPage(ctx, tx, site, after, limit, buf)
	if err != nil {
		return nil, fmt.Errorf("read the feed: %w", err)
	}
	return rows, joinPage(ctx, db.New(tx), withTarget, rows)
}

// scanPage reads the page's changes into buf, or into new rows with room
// for limit when buf has not.
func scanPage(ctx context.Context, tx pgx.Tx, site uuid.UUID, after int64, limit int32, buf []Row) ([]Row, error) {
	var (
		res pgx.Rows
		err error
	)
	if site != uuid.Nil {
		res, err = tx.Query(ctx, pageSite, site, after, limit)
	} else {
		res, err = tx.Query(ctx, pageAllSites, after, limit)
	}
	if err != nil {
		return nil, err
	}
	defer res.Close()
	rows := buf[:0]
	if cap(rows) < int(limit) {
		rows = make([]Row, 0, limit)
	}
	// One set of scan targets for the page, pointed at each row in turn:
	// Scan's variadic arguments would otherwise be a fresh slice of 11
	// interfaces per row on the heap.
	var (
		seen                                = make(map[string]string)
		ev                                  pgtype.Text
		event, protocol, oldValue, newValue = &sharedText{seen: seen}, &sharedText{seen: seen}, &sharedText{seen: seen}, &sharedText{seen: seen}
		dest                                = make([]any, 11)
	)
	event.dst = &ev
	for res.Next() {
		rows = append(rows, Row{})
		h := &rows[len(rows)-1].HostHistory
		protocol.dst, oldValue.dst, newValue.dst = &h.Protocol, &h.OldValue, &h.NewValue
		dest[0], dest[1], dest[2], dest[3], dest[4], dest[5] = &h.ID, &h.HostID, &h.SiteID, &h.JobID, event, &h.Port
		dest[6], dest[7], dest[8], dest[9], dest[10] = protocol, oldValue, newValue, &h.ChangedAt, &h.FeedSeq
		if err := res.Scan(dest...); err != nil {
			return nil, err
		}
		if !ev.Valid {
			return nil, fmt.Errorf("change %d: event is NULL", h.ID)
		}
		h.Event = ev.String
	}
	return rows, res.Err()
}

// sharedTextLimit bounds the distinct values a page's sharedText keeps.
const sharedTextLimit = 4096

// sharedText scans a text column into dst, sharing one string among the
// page's rows that hold the same value: a page's events, protocols and
// port states are a handful of values, where pgx would allocate a string
// for each text column of each row.
type sharedText struct {
	dst  *pgtype.Text
	seen map[string]string
}

// ScanBytes is given the column's bytes, valid during the call only.
func (t *sharedText) ScanBytes(v []byte) error {
	if v == nil {
		*t.dst = pgtype.Text{}
		return nil
	}
	s, ok := t.seen[string(v)]
	if !ok {
		s = string(v)
		if len(t.seen) < sharedTextLimit {
			t.seen[s] = s
		}
	}
	*t.dst = pgtype.Text{String: s, Valid: true}
	return nil
}

// distinct is a set of ids kept in the order first seen.
type distinct struct {
	seen map[uuid.UUID]struct{}
	ids  []uuid.UUID
}

func (d *distinct) add(id uuid.UUID) {
	// A page comes host by host from each commit: most rows repeat the
	// row before.
	if n := len(d.ids); n > 0 && d.ids[n-1] == id {
		return
	}
	if _, ok := d.seen[id]; ok {
		return
	}
	if d.seen == nil {
		d.seen = make(map[uuid.UUID]struct{})
	}
	d.seen[id] = struct{}{}
	d.ids = append(d.ids, id)
}

// joinPage fills in the page's rows their host's address and name, their
// site's name and, when withTarget, their job's target. Every change has
// its host and site: the feed's foreign keys delete a change with either,
// and the lookups read the page's snapshot.
func joinPage(ctx context.Context, q *db.Queries, withTarget bool, rows []Row) error {
	if len(rows) == 0 {
		return nil
	}
	var hostIDs, siteIDs, jobIDs distinct
	for i := range rows {
		h := &rows[i].HostHistory
		hostIDs.add(h.HostID)
		siteIDs.add(h.SiteID)
		if withTarget && h.JobID.Valid {
			jobIDs.add(h.JobID.UUID)
		}
	}
	hosts, err := q.FeedPageHosts(ctx, hostIDs.ids)
	if err != nil {
		return fmt.Errorf("read the page's hosts: %w", err)
	}
	byHost := make(map[uuid.UUID]*db.FeedPageHostsRow, len(hosts))
	for i := range hosts {
		byHost[hosts[i].ID] = &hosts[i]
	}
	sites, err := q.FeedPageSites(ctx, siteIDs.ids)
	if err != nil {
		return fmt.Errorf("read the page's sites: %w", err)
	}
	siteName := make(map[uuid.UUID]string, len(sites))
	for _, s := range sites {
		siteName[s.ID] = s.Name
	}
	target := make(map[uuid.UUID]uuid.UUID)
	if len(jobIDs.ids) > 0 {
		jobs, err := q.FeedPageJobTargets(ctx, jobIDs.ids)
		if err != nil {
			return fmt.Errorf("read the page's jobs: %w", err)
		}
		for _, j := range jobs {
			target[j.ID] = j.TargetID
		}
	}
	var (
		host   *db.FeedPageHostsRow
		site   string
		siteOK bool
	)
	for i := range rows {
		r := &rows[i]
		h := &r.HostHistory
		if i == 0 || h.HostID != rows[i-1].HostHistory.HostID {
			host = byHost[h.HostID]
		}
		if i == 0 || h.SiteID != rows[i-1].HostHistory.SiteID {
			site, siteOK = siteName[h.SiteID]
		}
		if host == nil || !siteOK {
			return fmt.Errorf("change %d: host %s or site %s not found", h.ID, h.HostID, h.SiteID)
		}
		r.SiteName, r.IpAddress, r.Hostname = site, host.IpAddress, host.Hostname
		if t, ok := target[h.JobID.UUID]; ok && h.JobID.Valid {
			r.TargetID = uuid.NullUUID{UUID: t, Valid: true}
		}
	}
	return nil
}
