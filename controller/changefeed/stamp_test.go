package changefeed_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/changefeed"
	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrate.Template)
	pgtest.Main(m)
}

// feedFixture is one site with two hosts, written as the owning role (the
// ingest path).
type feedFixture struct {
	pool         *pgxpool.Pool
	site         uuid.UUID
	hostA, hostB uuid.UUID
}

func newFeedFixture(t *testing.T) feedFixture {
	t.Helper()
	f := feedFixture{pool: pgtest.NewPool(t)}
	ctx := context.Background()
	if err := f.pool.QueryRow(ctx, `INSERT INTO sites (name) VALUES ('feed') RETURNING id`).Scan(&f.site); err != nil {
		t.Fatal(err)
	}
	for _, h := range []struct {
		ip string
		id *uuid.UUID
	}{{"10.99.0.1", &f.hostA}, {"10.99.0.2", &f.hostB}} {
		if err := f.pool.QueryRow(ctx, `INSERT INTO hosts (site_id, ip_address, status) VALUES ($1, $2, 'up') RETURNING id`,
			f.site, h.ip).Scan(h.id); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f feedFixture) begin(t *testing.T) pgx.Tx {
	t.Helper()
	tx, err := f.pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

// change writes one history row in tx and returns its id.
func (f feedFixture) change(t *testing.T, tx pgx.Tx, host uuid.UUID, event string) int64 {
	t.Helper()
	var id int64
	if err := tx.QueryRow(context.Background(), `
INSERT INTO host_history (host_id, site_id, event, changed_by) VALUES ($1, $2, $3, 'test') RETURNING id`,
		host, f.site, event).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// seqs returns feed_seq by history id, as committed.
func (f feedFixture) seqs(t *testing.T) map[int64]int64 {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT id, feed_seq FROM host_history`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (kv [2]int64, err error) {
		err = r.Scan(&kv[0], &kv[1])
		return kv, err
	})
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[int64]int64, len(out))
	for _, kv := range out {
		m[kv[0]] = kv[1]
	}
	return m
}

// TestFeedSeqFollowsCommitOrder: the transaction that wrote its changes
// first but committed last gets the larger feed_seq, so a reader paging by
// feed_seq cannot step over it; within a transaction the order is the
// insertion order.
func TestFeedSeqFollowsCommitOrder(t *testing.T) {
	t.Parallel()
	f := newFeedFixture(t)
	ctx := context.Background()

	early := f.begin(t)
	e1 := f.change(t, early, f.hostA, "port_opened")
	e2 := f.change(t, early, f.hostA, "service_changed")
	var pending int64
	if err := early.QueryRow(ctx, `SELECT feed_seq FROM host_history WHERE id = $1`, e1).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending >= 0 {
		t.Fatalf("feed_seq before commit = %d, want a provisional negative number", pending)
	}

	late := f.begin(t)
	l1 := f.change(t, late, f.hostB, "host_down")
	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// A reader at this point sees only the late transaction's row.
	if got := f.seqs(t); len(got) != 1 || got[l1] <= 0 {
		t.Fatalf("after the first commit the feed holds %v, want only row %d with a positive feed_seq", got, l1)
	}
	if err := early.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	got := f.seqs(t)
	if len(got) != 3 {
		t.Fatalf("feed holds %d rows, want 3: %v", len(got), got)
	}
	if got[l1] >= got[e1] || got[e1] >= got[e2] {
		t.Fatalf("feed_seq: late commit %d, early commit %d then %d; want late < early rows, in insertion order", got[l1], got[e1], got[e2])
	}
	// A rolled back transaction leaves nothing to renumber.
	aborted := f.begin(t)
	f.change(t, aborted, f.hostA, "host_up")
	if err := aborted.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var negative int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM host_history WHERE feed_seq <= 0`).Scan(&negative); err != nil {
		t.Fatal(err)
	}
	if negative != 0 {
		t.Fatalf("%d committed rows kept a provisional feed_seq", negative)
	}
}

// TestFeedLockCannotDeadlock is the interleaving that deadlocked when the
// feed lock was taken at a transaction's first change: A writes a change
// (and so held the lock), B locks a host row, A waits for that row, B
// writes a change (and waited for A's lock). With the lock taken at
// commit, B's change does not wait and A simply follows B's commit.
func TestFeedLockCannotDeadlock(t *testing.T) {
	t.Parallel()
	f := newFeedFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	a := f.begin(t)
	f.change(t, a, f.hostA, "port_opened")
	b := f.begin(t)
	if _, err := b.Exec(ctx, `UPDATE hosts SET status = 'down' WHERE id = $1`, f.hostB); err != nil {
		t.Fatal(err)
	}
	aDone := make(chan error, 1)
	go func() {
		_, err := a.Exec(ctx, `UPDATE hosts SET last_seen = now() WHERE id = $1`, f.hostB)
		if err == nil {
			err = a.Commit(ctx)
		}
		aDone <- err
	}()
	waitForLockWait(t, f.pool)
	f.change(t, b, f.hostB, "host_down")
	if err := b.Commit(ctx); err != nil {
		t.Fatalf("B's commit: %v", err)
	}
	if err := <-aDone; err != nil {
		t.Fatalf("A's update and commit: %v", err)
	}
	if got := f.seqs(t); len(got) != 2 {
		t.Fatalf("feed holds %v, want both changes", got)
	}
}

// waitForLockWait returns once some backend waits on a lock.
func waitForLockWait(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		err := pool.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no backend started waiting on a lock within 10s")
}

// TestFollowerPrunedPastGetsOutOfRange: a connected follower that retention
// overtakes (changes after its position deleted before it read them) gets
// an OutOfRangeError instead of silently skipping them.
func TestFollowerPrunedPastGetsOutOfRange(t *testing.T) {
	t.Parallel()
	f := newFeedFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	commitChanges := func(n int) {
		tx := f.begin(t)
		for range n {
			f.change(t, tx, f.hostA, "port_opened")
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	commitChanges(3)
	feed := changefeed.New(f.pool, nil)
	seen := 0
	err := feed.Follow(ctx, uuid.Nil, 0, false, func(changefeed.Row) error {
		if seen++; seen == 3 {
			// While the follower holds change 3: three more commit and
			// retention deletes all six before it reads again.
			commitChanges(3)
			if _, err := f.pool.Exec(ctx, `SELECT prune_change_feed_step(now() + interval '1 hour', 100)`); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	e, ok := changefeed.IsOutOfRange(err)
	if !ok {
		t.Fatalf("Follow returned %v after %d changes, want an OutOfRangeError", err, seen)
	}
	if seen != 3 || e.Cursor >= e.PrunedThrough {
		t.Fatalf("saw %d changes; error %+v: want 3 seen and the cursor behind what was pruned", seen, e)
	}
}
