-- One page of the change feed, for every reader (WatchChanges and the
-- webhook builder): the changes after a cursor in feed_seq order, read by
-- walking an index in that order and stopping at the limit.
--
-- Without sorts, that ordered index scan is the only plan. Right after a
-- big commit the statistics still describe the table before it, and the
-- planner then prefers a bitmap scan of every row after the cursor and a
-- sort, per page: a follower far behind a 50,000-change commit read and
-- sorted the rest of the commit for each page (measured: 127 ms instead of
-- 26 ms for 4,000 rows). The setting is the function's own (SET clause), so
-- it holds however the caller sends the query (a cached statement on a
-- pooled connection, a scoped transaction) and nowhere else.
--
-- SECURITY INVOKER (the default): row-level security still confines a
-- scoped caller to its sites.
CREATE FUNCTION feed_page(p_site uuid, p_after bigint, p_limit integer)
RETURNS SETOF host_history
LANGUAGE plpgsql STABLE
SET enable_sort = off
ROWS 500
AS $$
BEGIN
    IF p_site IS NULL THEN
        RETURN QUERY SELECT * FROM host_history WHERE feed_seq > p_after ORDER BY feed_seq LIMIT p_limit;
    ELSE
        RETURN QUERY SELECT * FROM host_history WHERE site_id = p_site AND feed_seq > p_after ORDER BY feed_seq LIMIT p_limit;
    END IF;
END
$$;

-- Delivery bodies are written once and read once or twice: lz4 compresses
-- and decompresses several times faster than the default pglz for about
-- the same size on this JSON, and a 50,000-change burst compresses about
-- 12 MB of bodies. Servers built without lz4 keep pglz.
DO $$
BEGIN
    ALTER TABLE webhook_deliveries ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 not available; webhook bodies stay compressed with pglz';
END
$$;
