-- Retention: whole months of port_scans history leave the live table by
-- detaching their partition and moving it to the "archive" schema. That is a
-- catalog change, not a copy: it takes milliseconds whatever the month's
-- size, and the archived table stays queryable (and can be dumped and
-- dropped by the operator). services and host_history are not touched: they
-- describe the present and its changes, not the raw history.
CREATE SCHEMA IF NOT EXISTS archive;

-- archive_port_scans_before moves every monthly partition that ends on or
-- before cutoff into the archive schema and returns the names it moved.
CREATE FUNCTION archive_port_scans_before(cutoff timestamptz)
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    part   record;
    upper  timestamptz;
    moved  text[] := '{}';
BEGIN
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE i.inhparent = 'port_scans'::regclass
          AND c.relname ~ '^port_scans_[0-9]{4}_[0-9]{2}$'
        ORDER BY c.relname
    LOOP
        upper := (to_date(substr(part.relname, 12), 'YYYY_MM')::timestamp AT TIME ZONE 'UTC') + interval '1 month';
        IF upper <= cutoff THEN
            EXECUTE format('ALTER TABLE port_scans DETACH PARTITION %I', part.relname);
            EXECUTE format('ALTER TABLE %I SET SCHEMA archive', part.relname);
            moved := moved || part.relname;
        END IF;
    END LOOP;
    RETURN moved;
END $$;
