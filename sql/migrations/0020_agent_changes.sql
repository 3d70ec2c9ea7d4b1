-- Each agent row records the transaction that last changed it, last_seen
-- aside (a liveness touch is no change), so that a controller re-reads only
-- the rows that changed since its last look instead of every cached agent
-- each second (agentapi/cache.go). Rows that existed before stay at 0: the
-- controllers' first look after a start reads every agent it holds.
ALTER TABLE agents ADD COLUMN changed_xid bigint NOT NULL DEFAULT 0;
ALTER TABLE agents ALTER COLUMN changed_xid SET DEFAULT pg_current_xact_id()::text::bigint;
CREATE INDEX agents_changed_xid ON agents (changed_xid);

CREATE FUNCTION agents_stamp_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    before_row agents := OLD;
BEGIN
    -- Compare whole rows so a column added later counts as a change too.
    before_row.last_seen := NEW.last_seen;
    before_row.changed_xid := NEW.changed_xid;
    IF before_row IS DISTINCT FROM NEW THEN
        NEW.changed_xid := pg_current_xact_id()::text::bigint;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER agents_stamp_change BEFORE UPDATE ON agents
    FOR EACH ROW EXECUTE FUNCTION agents_stamp_change();
