-- Change feed and webhooks.
--
-- host_history.feed_seq orders changes by commit. ids and changed_at are
-- assigned while a transaction runs, so two committers can make rows
-- visible out of their id order: a reader paging by id would step over the
-- rows of the transaction that committed last. feed_seq is drawn only while
-- the writing transaction holds the change feed's lock (a transaction-level
-- advisory lock, released after the commit is visible), so every committed
-- row with a smaller feed_seq is visible before any row with a larger one:
-- a reader that has seen feed_seq N never sees a row <= N appear later, and
-- can page with "feed_seq > cursor" without a gap or a duplicate. Rows of
-- an aborted transaction or subtransaction leave holes in the numbering;
-- holes are harmless to such a reader.
--
-- The lock is taken by a row trigger on host_history, so ingest_commit is
-- unchanged and a commit that changes nothing takes no lock. Committers that
-- write changes queue on the lock from their first history row until they
-- commit.
CREATE SEQUENCE host_history_feed_seq AS bigint;

-- The advisory lock key: (class, object) = ('scanorama' feed, 1).
CREATE FUNCTION host_history_feed_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1935893281, 1);
    NEW.feed_seq := nextval('host_history_feed_seq');
    RETURN NEW;
END $$;

ALTER TABLE host_history ADD COLUMN feed_seq bigint;
UPDATE host_history SET feed_seq = o.seq
FROM (SELECT id, nextval('host_history_feed_seq') AS seq FROM (SELECT id FROM host_history ORDER BY id) s) o
WHERE o.id = host_history.id;
ALTER TABLE host_history ALTER COLUMN feed_seq SET NOT NULL;
CREATE UNIQUE INDEX host_history_feed ON host_history (feed_seq);
CREATE INDEX host_history_site_feed ON host_history (site_id, feed_seq);

CREATE TRIGGER host_history_feed_stamp BEFORE INSERT ON host_history
FOR EACH ROW EXECUTE FUNCTION host_history_feed_stamp();

-- One row: the feed's identity (cursors of another database are refused)
-- and how far retention has pruned it (older cursors are out of range).
CREATE TABLE change_feed (
    id             boolean     PRIMARY KEY DEFAULT true CHECK (id),
    epoch          uuid        NOT NULL DEFAULT gen_random_uuid(),
    pruned_through bigint      NOT NULL DEFAULT 0,
    pruned_at      timestamptz
);
INSERT INTO change_feed DEFAULT VALUES;

-- prune_change_feed deletes the changes committed before cutoff and records
-- the highest feed_seq it removed; returns how many rows went.
CREATE FUNCTION prune_change_feed(cutoff timestamptz) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    upto bigint;
    n    bigint;
BEGIN
    SELECT max(feed_seq) INTO upto FROM host_history WHERE changed_at < cutoff;
    IF upto IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM host_history WHERE feed_seq <= upto;
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE change_feed SET pruned_through = greatest(pruned_through, upto), pruned_at = now();
    RETURN n;
END $$;

-- Webhooks: each follows the change feed with its own cursor and turns what
-- it reads into deliveries (an outbox) that are POSTed in order.
CREATE TABLE webhooks (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name             text        NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    url              text        NOT NULL CHECK (length(url) <= 2048),
    site_id          uuid        REFERENCES sites (id) ON DELETE CASCADE,
    target_id        uuid        REFERENCES scan_targets (id) ON DELETE CASCADE,
    events           text[]      NOT NULL DEFAULT '{}',
    secret           text        NOT NULL CHECK (length(secret) BETWEEN 16 AND 256),
    down_after_scans integer     NOT NULL DEFAULT 1 CHECK (down_after_scans BETWEEN 1 AND 100),
    format           text        NOT NULL DEFAULT 'json' CHECK (format IN ('json', 'slack')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text        NOT NULL
);

-- Where each webhook is in the feed. Kept apart from webhooks so that a
-- dispatcher's claim on the webhooks row does not block its own updates.
CREATE TABLE webhook_cursors (
    webhook_id uuid   PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    feed_seq   bigint NOT NULL
);

-- host_down changes held back until down_after_scans scans missed the host.
CREATE TABLE webhook_pending_downs (
    webhook_id uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    host_id    uuid        NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    history_id bigint      NOT NULL,
    feed_seq   bigint      NOT NULL,
    since      timestamptz NOT NULL,
    PRIMARY KEY (webhook_id, host_id)
);

CREATE TABLE webhook_deliveries (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    webhook_id      uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    seq             bigint      NOT NULL GENERATED ALWAYS AS IDENTITY,
    first_feed_seq  bigint      NOT NULL,
    last_feed_seq   bigint      NOT NULL,
    event_count     integer     NOT NULL CHECK (event_count > 0),
    body            bytea       NOT NULL,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    last_status     integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (webhook_id, seq);
CREATE INDEX webhook_deliveries_open ON webhook_deliveries (webhook_id, seq) WHERE state <> 'delivered';
