// Package changefeed owns the change feed: host_history read in commit
// order. Every history row carries a feed_seq drawn at its transaction's
// commit under a lock held until the commit is visible
// (sql/migrations/0016_feed_stamp_at_commit.sql), so rows become visible in
// feed_seq order and a reader that pages with
// "feed_seq > last seen" never skips a row committed late nor sees one twice,
// whichever controller committed it and however commits interleave. Clients
// hold the position as an opaque cursor (see Scope). Live followers are
// woken by the controller's notifications (events.Hub) and then read the
// table, so a slow follower only falls behind; it never loses a change.
package changefeed

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/scanorama/scanorama/gen/db"
)

// PageSize is how many changes one read of the feed returns at most.
const PageSize = 500

// PollEvery bounds how long a caught-up follower waits without a wake-up:
// notifications are hints and can be lost (a dropped connection, a full
// publisher queue).
const PollEvery = time.Second

// Row is one change with what a reader shows of it. Its fields are named
// and typed as sqlc's rows of the same joins (db.DuePendingDownsRow), so
// those convert to it.
type Row struct {
	HostHistory db.HostHistory
	SiteName    string
	IpAddress   netip.Addr //nolint:revive // sqlc's spelling, for the conversion above
	Hostname    pgtype.Text
	TargetID    uuid.NullUUID
}

// Waker delivers a value whenever something may have committed.
type Waker interface {
	SubscribeEvents(buffer int) (<-chan string, func())
}

// OutOfRangeError is a cursor older than the oldest retained change.
type OutOfRangeError struct {
	Cursor, PrunedThrough int64
	PrunedAt              time.Time
	Oldest                int64 // 0 when the feed is empty
}

func (e *OutOfRangeError) Error() string {
	msg := fmt.Sprintf("cursor is at change %d but retention pruned changes up to %d", e.Cursor, e.PrunedThrough)
	if !e.PrunedAt.IsZero() {
		msg += " (at " + e.PrunedAt.UTC().Format(time.RFC3339) + ")"
	}
	msg += fmt.Sprintf("; the oldest available point is right after change %d", e.PrunedThrough)
	if e.Oldest > 0 {
		msg += fmt.Sprintf(" (oldest retained change %d)", e.Oldest)
	}
	return msg + ": start again with an empty cursor"
}

// Feed reads the change feed.
type Feed struct {
	q    *db.Queries
	wake Waker
}

// New returns a Feed reading through conn (the admin API passes its
// site-scoped DB, so row-level security confines what a caller follows);
// wake may be nil (then followers poll).
func New(conn db.DBTX, wake Waker) *Feed {
	return &Feed{q: db.New(conn), wake: wake}
}

// Scope returns the cursor scope of site (uuid.Nil: every site).
func (f *Feed) Scope(ctx context.Context, site uuid.UUID) (Scope, error) {
	st, err := f.q.GetChangeFeedState(ctx)
	if err != nil {
		return Scope{}, fmt.Errorf("read change feed state: %w", err)
	}
	return Scope{Epoch: st.Epoch, Site: site}, nil
}

// Start resolves where a follower begins: after the change a cursor names,
// after the tip (fromNow), or at the oldest retained change (neither). The
// cursor must have been decoded with the scope already; Start checks it
// against retention and the tip.
func (f *Feed) Start(ctx context.Context, seq int64, hasCursor, fromNow bool) (int64, error) {
	st, err := f.q.GetChangeFeedState(ctx)
	if err != nil {
		return 0, fmt.Errorf("read change feed state: %w", err)
	}
	switch {
	case fromNow:
		return st.Tip, nil
	case !hasCursor:
		return st.PrunedThrough, nil
	case seq < st.PrunedThrough:
		return 0, outOfRange(seq, st)
	case seq > st.Tip:
		// A cursor signed by this database always names a committed change.
		return 0, ErrBadCursor
	}
	return seq, nil
}

// Read returns up to limit changes after seq, in commit order; site
// uuid.Nil reads every site.
func (f *Feed) Read(ctx context.Context, site uuid.UUID, after int64, limit int32) ([]Row, error) {
	return ReadWith(ctx, f.q, site, after, limit)
}

// ReadWith is Read through q (for example inside a transaction).
func ReadWith(ctx context.Context, q *db.Queries, site uuid.UUID, after int64, limit int32) ([]Row, error) {
	rows, err := q.FeedPage(ctx, db.FeedPageParams{SiteID: uuid.NullUUID{UUID: site, Valid: site != uuid.Nil}, AfterSeq: after, RowLimit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]Row, len(rows))
	for i, r := range rows {
		out[i] = Row{
			HostHistory: db.HostHistory{
				ID: r.ID, HostID: r.HostID, SiteID: r.SiteID, JobID: r.JobID, Event: r.Event, Port: r.Port,
				Protocol: r.Protocol, OldValue: r.OldValue, NewValue: r.NewValue, ChangedAt: r.ChangedAt,
				ChangedBy: r.ChangedBy, ChangeReason: r.ChangeReason, FeedSeq: r.FeedSeq,
			},
			SiteName: r.SiteName, IpAddress: r.IpAddress, Hostname: r.Hostname, TargetID: r.TargetID,
		}
	}
	return out, nil
}

// Follow calls fn with every change after seq, in commit order, until ctx
// ends or fn fails; with stopAtTip it returns nil once it has caught up.
func (f *Feed) Follow(ctx context.Context, site uuid.UUID, after int64, stopAtTip bool, fn func(Row) error) error {
	var wake <-chan string
	if f.wake != nil && !stopAtTip {
		// Subscribe before the first read: a commit in between still wakes us.
		ch, unsubscribe := f.wake.SubscribeEvents(1)
		defer unsubscribe()
		wake = ch
	}
	poll := time.NewTimer(PollEvery)
	defer poll.Stop()
	for {
		rows, err := f.Read(ctx, site, after, PageSize)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read change feed: %w", err)
		}
		// Retention may have pruned past this follower while it lagged: the
		// rows it just read would then start after a gap. Checked after the
		// read, so a prune that ran before it is always seen.
		if err := f.stillRetained(ctx, after); err != nil {
			return err
		}
		for _, r := range rows {
			if err := fn(r); err != nil {
				return err
			}
			after = r.HostHistory.FeedSeq
		}
		if len(rows) == PageSize {
			continue
		}
		if stopAtTip {
			return nil
		}
		poll.Reset(PollEvery)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-poll.C:
		}
	}
}

// stillRetained returns an OutOfRangeError when retention has pruned
// changes after seq.
func (f *Feed) stillRetained(ctx context.Context, seq int64) error {
	st, err := f.q.GetChangeFeedState(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("read change feed state: %w", err)
	}
	if st.PrunedThrough <= seq {
		return nil
	}
	return outOfRange(seq, st)
}

func outOfRange(seq int64, st db.GetChangeFeedStateRow) *OutOfRangeError {
	e := &OutOfRangeError{Cursor: seq, PrunedThrough: st.PrunedThrough, Oldest: st.Oldest}
	if st.PrunedAt.Valid {
		e.PrunedAt = st.PrunedAt.Time
	}
	return e
}

// IsOutOfRange reports whether err is an OutOfRangeError.
func IsOutOfRange(err error) (*OutOfRangeError, bool) {
	var e *OutOfRangeError
	ok := errors.As(err, &e)
	return e, ok
}
