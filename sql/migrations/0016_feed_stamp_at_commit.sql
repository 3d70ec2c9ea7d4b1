-- The change feed's order is stamped at commit, not at the first change.
--
-- 0013 drew feed_seq in a BEFORE INSERT row trigger under a transaction
-- advisory lock, so a committer held the feed's lock from its first
-- host_history row until its commit: every ingest that wrote a change waited
-- for every other one's whole commit function (the lease benchmark measured
-- 270 ms per lock wait at 40 connections), and two commits touching the same
-- host could deadlock (one holding the lock and waiting for a host row, the
-- other holding the host row and waiting for the lock).
--
-- Now a row is inserted with a provisional, negative feed_seq (unique, from
-- its own sequence; no reader ever asks for feed_seq <= 0). A deferred
-- constraint trigger runs once per transaction at COMMIT, after every other
-- statement has taken its row locks: it takes the feed lock and renumbers
-- the transaction's own rows from host_history_feed_seq in id order. The
-- lock is still held until the commit is visible (PostgreSQL releases locks
-- after the commit record), so the guarantee of 0013 is unchanged: every
-- committed row with a smaller feed_seq is visible before any row with a
-- larger one. What shrinks is how long it is held (the renumbering and the
-- commit's WAL flush) and the deadlock: the feed lock is the last lock a
-- committer takes, and the renumbering touches only rows no one else can
-- see.
DROP TRIGGER host_history_feed_stamp ON host_history;
DROP FUNCTION host_history_feed_stamp();

CREATE SEQUENCE host_history_feed_pending_seq AS bigint;
ALTER TABLE host_history ALTER COLUMN feed_seq SET DEFAULT -nextval('host_history_feed_pending_seq');

-- Only rows of transactions still running (or aborted, until vacuum) are
-- pending; the index keeps the renumbering from scanning the table.
CREATE INDEX host_history_feed_pending ON host_history (id) WHERE feed_seq < 0;

CREATE FUNCTION host_history_feed_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- One firing per row is queued; the first renumbers them all.
    IF current_setting('scanorama.feed_stamped', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(1935893281, 1);
    UPDATE host_history h SET feed_seq = o.seq
    FROM (SELECT p.id, nextval('host_history_feed_seq') AS seq
          FROM (SELECT id FROM host_history WHERE feed_seq < 0 ORDER BY id) p) o
    WHERE h.id = o.id;
    PERFORM set_config('scanorama.feed_stamped', 'on', true);
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER host_history_feed_stamp AFTER INSERT ON host_history
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION host_history_feed_stamp();
