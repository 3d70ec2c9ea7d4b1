-- Never destroy history by accident (issue #10): archived and purging
-- sites and targets, a bounded background purge, and bounded retention of
-- everything that grows (host_history, finished jobs with their leases and
-- runs, archived port_scans months).
--
-- archived_at: the object no longer scans and is hidden from lists by
-- default; every job, result and change stays.
-- purge_requested_at: the object is gone from the API; purge_step (run by
-- the controllers' maintenance loop) deletes its rows in small batches,
-- children first, the object's own row last. The rows with
-- purge_requested_at set are the purge queue.
ALTER TABLE sites
    ADD COLUMN archived_at        timestamptz,
    ADD COLUMN purge_requested_at timestamptz;
ALTER TABLE scan_targets
    ADD COLUMN archived_at        timestamptz,
    ADD COLUMN purge_requested_at timestamptz;
CREATE INDEX sites_purge_queue ON sites (purge_requested_at, id) WHERE purge_requested_at IS NOT NULL;
CREATE INDEX scan_targets_purge_queue ON scan_targets (purge_requested_at, id) WHERE purge_requested_at IS NOT NULL;

-- Deleting a job (purge, retention) sets host_history.job_id to NULL or
-- deletes the job's history: both look rows up by job_id.
CREATE INDEX host_history_job ON host_history (job_id) WHERE job_id IS NOT NULL;
-- Retention walks finished jobs and runs in time order.
CREATE INDEX scan_jobs_finished ON scan_jobs (completed_at, id) WHERE status IN ('completed', 'failed', 'cancelled');
CREATE INDEX scan_runs_created ON scan_runs (created_at, id);

-- archived_port_scans lists the months moved to the archive schema. Their
-- tables keep the partition's foreign keys (to scan_jobs and hosts, ON
-- DELETE CASCADE), so deleting a job or host reaches into them too.
CREATE FUNCTION archived_port_scans() RETURNS SETOF regclass
LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'archive' AND c.relkind = 'r' AND c.relname ~ '^port_scans_[0-9]{4}_[0-9]{2}$'
    ORDER BY c.relname
$$;

-- purge_step does one bounded piece of the purge queue in the caller's
-- (short) transaction and reports what it did: at most p_batch rows of one
-- table, or the final delete of the object's row (finished = true). No row
-- returned: nothing to purge, or another controller is purging right now.
-- Targets go before sites; a target's port_scans rows (live and archived),
-- its jobs' host_history, jobs (with their leases), runs, then the target.
-- A site's targets are queued with it; then its history, services, hosts,
-- and the site (agents and exclusions go with it).
CREATE FUNCTION purge_step(p_batch integer)
RETURNS TABLE (kind text, object_id uuid, deleted bigint, finished boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_id  uuid;
    n     bigint;
    rel   regclass;
BEGIN
    IF NOT pg_try_advisory_xact_lock(24871805598) THEN -- 0x5ca79a29e: one purger at a time
        RETURN;
    END IF;
    SELECT t.id INTO v_id FROM scan_targets t
    WHERE t.purge_requested_at IS NOT NULL
    ORDER BY t.purge_requested_at, t.id LIMIT 1;
    IF FOUND THEN
        DELETE FROM port_scans p
        WHERE (p.job_id, p.host_id, p.protocol, p.port, p.scanned_at) IN (
            SELECT ps.job_id, ps.host_id, ps.protocol, ps.port, ps.scanned_at
            FROM port_scans ps
            WHERE ps.job_id IN (SELECT j.id FROM scan_jobs j WHERE j.target_id = v_id)
            LIMIT p_batch);
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n > 0 THEN
            RETURN QUERY SELECT 'target'::text, v_id, n, false;
            RETURN;
        END IF;
        FOR rel IN SELECT * FROM archived_port_scans() LOOP
            EXECUTE format(
                'DELETE FROM %1$s p WHERE (p.job_id, p.host_id, p.protocol, p.port, p.scanned_at) IN ('
                'SELECT ps.job_id, ps.host_id, ps.protocol, ps.port, ps.scanned_at FROM %1$s ps '
                'WHERE ps.job_id IN (SELECT j.id FROM scan_jobs j WHERE j.target_id = $1) LIMIT $2)', rel)
            USING v_id, p_batch;
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n > 0 THEN
                RETURN QUERY SELECT 'target'::text, v_id, n, false;
                RETURN;
            END IF;
        END LOOP;
        DELETE FROM host_history h
        WHERE h.id IN (SELECT hh.id FROM host_history hh
                       WHERE hh.job_id IN (SELECT j.id FROM scan_jobs j WHERE j.target_id = v_id)
                       LIMIT p_batch);
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n = 0 THEN
            DELETE FROM scan_jobs s
            WHERE s.id IN (SELECT j.id FROM scan_jobs j WHERE j.target_id = v_id LIMIT p_batch);
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;
        IF n = 0 THEN
            DELETE FROM scan_runs r
            WHERE r.id IN (SELECT rr.id FROM scan_runs rr WHERE rr.target_id = v_id LIMIT p_batch);
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;
        IF n > 0 THEN
            RETURN QUERY SELECT 'target'::text, v_id, n, false;
            RETURN;
        END IF;
        DELETE FROM scan_targets t WHERE t.id = v_id;
        RETURN QUERY SELECT 'target'::text, v_id, 1::bigint, true;
        RETURN;
    END IF;

    SELECT s.id INTO v_id FROM sites s
    WHERE s.purge_requested_at IS NOT NULL
    ORDER BY s.purge_requested_at, s.id LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- Targets created in the site since (none should be) join the queue.
    UPDATE scan_targets t SET purge_requested_at = now(), enabled = false, next_run_at = NULL
    WHERE t.site_id = v_id AND t.purge_requested_at IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        DELETE FROM host_history h
        WHERE h.id IN (SELECT hh.id FROM host_history hh WHERE hh.site_id = v_id LIMIT p_batch);
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;
    IF n = 0 THEN
        DELETE FROM services sv
        WHERE (sv.host_id, sv.protocol, sv.port) IN (
            SELECT s2.host_id, s2.protocol, s2.port
            FROM hosts h JOIN services s2 ON s2.host_id = h.id
            WHERE h.site_id = v_id LIMIT p_batch);
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;
    IF n = 0 THEN
        -- port_scans rows of the site's hosts went with its targets' jobs.
        DELETE FROM hosts h
        WHERE h.id IN (SELECT hh.id FROM hosts hh WHERE hh.site_id = v_id LIMIT greatest(p_batch / 10, 1));
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;
    IF n > 0 THEN
        RETURN QUERY SELECT 'site'::text, v_id, n, false;
        RETURN;
    END IF;
    DELETE FROM sites s WHERE s.id = v_id;
    RETURN QUERY SELECT 'site'::text, v_id, 1::bigint, true;
END $$;

-- retention_delete_jobs deletes, in one bounded step, the finished jobs
-- completed before p_cutoff that no port_scans row references any more
-- (live or archived): a job lives as long as its raw results, so job
-- retention never cuts into port_scans history (that is --retention-months
-- and --archive-retention's business). Their leases go with them
-- (ON DELETE CASCADE) and host_history keeps its rows with job_id NULL.
-- It walks at most p_batch jobs after the cursor (p_after_completed,
-- p_after_id) in completion order and returns the new cursor.
CREATE FUNCTION retention_delete_jobs(p_cutoff timestamptz, p_batch integer,
                                      p_after_completed timestamptz, p_after_id uuid)
RETURNS TABLE (scanned integer, deleted bigint, last_completed timestamptz, last_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    cond  text := '';
    rel   regclass;
    ids   uuid[];
    n     bigint;
    c     record;
BEGIN
    SELECT count(*)::int AS k,
           (array_agg(x.completed_at ORDER BY x.completed_at DESC, x.id DESC))[1] AS lc,
           (array_agg(x.id ORDER BY x.completed_at DESC, x.id DESC))[1] AS li
    INTO c
    FROM (SELECT j.completed_at, j.id FROM scan_jobs j
          WHERE j.status IN ('completed', 'failed', 'cancelled')
            AND j.completed_at < p_cutoff
            AND (j.completed_at, j.id) > (p_after_completed, p_after_id)
          ORDER BY j.completed_at, j.id
          LIMIT p_batch) x;
    IF c.k = 0 THEN
        RETURN QUERY SELECT 0, 0::bigint, p_after_completed, p_after_id;
        RETURN;
    END IF;
    FOR rel IN SELECT * FROM archived_port_scans() LOOP
        cond := cond || format(' AND NOT EXISTS (SELECT 1 FROM %s a WHERE a.job_id = j.id)', rel);
    END LOOP;
    EXECUTE 'SELECT array_agg(j.id) FROM scan_jobs j'
            ' WHERE j.status IN (''completed'', ''failed'', ''cancelled'') AND j.completed_at < $1'
            ' AND (j.completed_at, j.id) > ($2, $3) AND (j.completed_at, j.id) <= ($4, $5)'
            ' AND NOT EXISTS (SELECT 1 FROM port_scans p WHERE p.job_id = j.id)' || cond
    INTO ids
    USING p_cutoff, p_after_completed, p_after_id, c.lc, c.li;
    DELETE FROM scan_jobs j WHERE j.id = ANY (coalesce(ids, '{}'));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN QUERY SELECT c.k, n, c.lc, c.li;
END $$;

-- drop_oldest_archived_port_scans drops the oldest archived month that
-- ended on or before p_cutoff and returns its name (NULL: none left).
-- One table per call, so each DROP holds its locks for a moment only.
CREATE FUNCTION drop_oldest_archived_port_scans(p_cutoff timestamptz)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    rel   regclass;
    name  text;
BEGIN
    FOR rel IN SELECT * FROM archived_port_scans() LOOP
        SELECT c.relname INTO name FROM pg_class c WHERE c.oid = rel;
        IF (to_date(substr(name, 12), 'YYYY_MM')::timestamp AT TIME ZONE 'UTC') + interval '1 month' <= p_cutoff THEN
            EXECUTE format('DROP TABLE %s', rel);
            RETURN 'archive.' || name;
        END IF;
        RETURN NULL;
    END LOOP;
    RETURN NULL;
END $$;
