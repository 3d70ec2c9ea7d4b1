-- CANONICAL SOURCE of ingest_commit and ingest_commit_many.
--
-- This file is the one place to read and edit these functions. It must
-- always hold exactly the definitions the latest migration that defines
-- them leaves in the database; controller/migrate's
-- TestIngestCommitMatchesCanonicalSource checks that, function by function
-- (pg_get_functiondef of a migrated database against a scratch database
-- where this file ran).
--
-- To change the functions: edit them here, AND add a new migration
-- (sql/migrations/NNNN_*.sql) carrying the same CREATE OR REPLACE FUNCTION
-- text. Never edit a released migration: controllers refuse to start when
-- an applied migration's checksum differs from the embedded file.
--
-- Defined by: port_in_scanned_set (0007_ingest_commit_v2.sql), ingest_commit (0018_feed_webhooks.sql), ingest_commit_many (0006_ingest_commit.sql).

-- Inlined by the planner (a single SQL expression, STABLE like the casts in
-- it): as cheap as the expression it replaces.
CREATE OR REPLACE FUNCTION port_in_scanned_set(p_protocol text, p_port integer, p_scanned_tcp text, p_scanned_udp text)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (p_protocol = 'tcp' AND p_port <@ CAST(p_scanned_tcp AS int4multirange))
        OR (p_protocol = 'udp' AND p_port <@ CAST(p_scanned_udp AS int4multirange))
$$;

-- ingest_commit as in 0007 (one discovery per new host, port_in_scanned_set),
-- changed only to accept one commit from the
-- holder of a lease cancelled while held (see v_partial): the job stays
-- cancelled, gets partial, hosts_finished and finished_hosts, and the "silent hosts are down"
-- step is skipped (hosts nmap never reached are not down). A second commit
-- of a partial job is 'already_committed'. Since 0016 it also records what
-- the job said of each host in job_hosts (reported hosts, and hosts it found
-- silent), so an export of the job shows that job's word, not what later
-- jobs changed.
CREATE OR REPLACE FUNCTION ingest_commit(
    p_job_id        uuid,
    p_worker_id     text,
    p_lease_token   bigint,
    p_scanned_tcp   text,
    p_scanned_udp   text,
    p_stats         jsonb,
    p_analyze       boolean,
    p_clear         boolean
) RETURNS TABLE (outcome text, job_site_id uuid, merged_hosts bigint, up_hosts bigint, port_rows bigint, changes bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    j        record;
    v_by     text := 'agent:' || p_worker_id;
    v_why    text := 'scan job ' || p_job_id::text;
    v_hosts  bigint;
    v_up     bigint;
    v_events bigint;
    v_down   bigint;
    v_rows   bigint;
    v_ports  bigint;
    v_now    timestamptz;
    v_partial boolean;
BEGIN
    SELECT s.status, s.worker_id, s.lease_token, s.site_id, s.network, s.exclusions, s.partial
    INTO j
    FROM scan_jobs s WHERE s.id = p_job_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % no longer exists', p_job_id USING ERRCODE = 'SCL01';
    END IF;
    IF j.worker_id IS DISTINCT FROM p_worker_id OR j.lease_token <> p_lease_token THEN
        RAISE EXCEPTION 'job % was leased again (token %, yours %) while results streamed',
            p_job_id, j.lease_token, p_lease_token USING ERRCODE = 'SCL01';
    END IF;
    IF j.status = 'completed' OR (j.status = 'cancelled' AND j.partial) THEN
        IF p_clear THEN
            DELETE FROM ingest_hosts;
            DELETE FROM ingest_ports;
        END IF;
        RETURN QUERY SELECT 'already_committed'::text, j.site_id, 0::bigint, 0::bigint, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    IF j.status NOT IN ('leased', 'running', 'cancelled') THEN
        RAISE EXCEPTION 'job % became % while results streamed', p_job_id, j.status USING ERRCODE = 'SCL01';
    END IF;
    -- The database's clock, not a controller's: controllers' clocks differ,
    -- and first_seen <= last_seen and started_at <= completed_at must hold
    -- whichever controller commits.
    v_now := statement_timestamp();
    -- A job cancelled while this lease held it (CancelJob, window close,
    -- max_duration, PauseScanning): the holder commits the hosts it had
    -- finished, once; the job stays cancelled.
    v_partial := j.status = 'cancelled';

    IF p_analyze THEN
        -- The planner knows nothing about fresh temp tables; without
        -- statistics it picks nested loops over a million rows.
        ANALYZE ingest_hosts, ingest_ports;
    END IF;

    -- Hosts: upsert every host reported up (and refresh known hosts reported
    -- down), recording discovered/up/down/OS changes against the state
    -- before the scan.
    WITH prev AS (
        SELECT h.id, h.ip_address, h.status, h.os_name
        FROM ingest_hosts i
        CROSS JOIN LATERAL (
            SELECT h.id, h.ip_address, h.status, h.os_name FROM hosts h
            WHERE h.site_id = j.site_id AND h.ip_address = i.ip LIMIT 1) h
    ), upserted AS (
        INSERT INTO hosts AS h (site_id, ip_address, hostname, mac_address, vendor, os_family, os_name,
                                os_confidence, status, discovery_count, first_seen, last_seen, last_job_id)
        SELECT j.site_id, i.ip, NULLIF(i.hostname, ''), i.mac_address, NULLIF(i.vendor, ''),
               NULLIF(i.os_family, ''), NULLIF(i.os_name, ''), NULLIF(i.os_confidence, 0), i.status,
               CASE WHEN i.status = 'up' THEN 1 ELSE 0 END, v_now, v_now, p_job_id
        FROM ingest_hosts i
        WHERE i.status = 'up' OR EXISTS (SELECT 1 FROM prev WHERE prev.ip_address = i.ip)
        ON CONFLICT (site_id, ip_address) DO UPDATE
        SET hostname        = COALESCE(EXCLUDED.hostname, h.hostname),
            mac_address     = COALESCE(EXCLUDED.mac_address, h.mac_address),
            vendor          = COALESCE(EXCLUDED.vendor, h.vendor),
            os_family       = COALESCE(EXCLUDED.os_family, h.os_family),
            os_name         = COALESCE(EXCLUDED.os_name, h.os_name),
            os_confidence   = COALESCE(EXCLUDED.os_confidence, h.os_confidence),
            status          = EXCLUDED.status,
            discovery_count = h.discovery_count + EXCLUDED.discovery_count,
            last_seen       = CASE WHEN EXCLUDED.status = 'up' THEN EXCLUDED.last_seen ELSE h.last_seen END,
            last_job_id     = EXCLUDED.last_job_id
        RETURNING h.id, h.ip_address, h.status, h.os_name, (h.xmax = 0) AS inserted
    ), events AS (
        -- A host is discovered by the commit that inserted it. Two commits
        -- racing on a new host both miss it in prev; the second one's insert
        -- waits for the first and turns into an update (xmax <> 0), which is
        -- neither a discovery nor, with no state seen before, a change.
        INSERT INTO host_history (host_id, site_id, job_id, event, old_value, new_value, changed_at, changed_by, change_reason)
        SELECT u.id, j.site_id, p_job_id,
               CASE WHEN p.id IS NULL THEN 'host_discovered' WHEN u.status = 'up' THEN 'host_up' ELSE 'host_down' END,
               p.status, u.status, v_now, v_by, v_why
        FROM upserted u
        LEFT JOIN prev p ON p.id = u.id
        WHERE (p.id IS NULL AND u.inserted AND u.status = 'up') OR (p.id IS NOT NULL AND p.status IS DISTINCT FROM u.status)
        UNION ALL
        SELECT u.id, j.site_id, p_job_id, 'os_changed', p.os_name, u.os_name, v_now, v_by, v_why
        FROM upserted u
        JOIN prev p ON p.id = u.id
        WHERE p.os_name IS NOT NULL AND u.os_name IS DISTINCT FROM p.os_name
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM upserted), (SELECT count(*) FROM upserted WHERE status = 'up'),
           (SELECT count(*) FROM events)
    INTO v_hosts, v_up, v_events;

    -- From here on the staging tables carry each host's id, so every later
    -- step joins them with each other and reaches the big tables only
    -- through index lookups by host id.
    WITH m AS (
        SELECT i.ip, h.id
        FROM ingest_hosts i
        CROSS JOIN LATERAL (SELECT h.id FROM hosts h WHERE h.site_id = j.site_id AND h.ip_address = i.ip LIMIT 1) h
    )
    UPDATE ingest_hosts i
    SET host_id = m.id,
        has_services = EXISTS (SELECT 1 FROM services s WHERE s.host_id = m.id OFFSET 0)
    FROM m
    WHERE m.ip = i.ip;

    INSERT INTO job_hosts (job_id, ip_address, host_id, status, reason, hostname, mac_address, vendor, os_name, os_confidence)
    SELECT p_job_id, i.ip, i.host_id, i.status, NULLIF(i.reason, ''), NULLIF(i.hostname, ''), i.mac_address,
           NULLIF(i.vendor, ''), NULLIF(i.os_name, ''), NULLIF(i.os_confidence, 0)
    FROM ingest_hosts i
    WHERE i.host_id IS NOT NULL;

    -- Hosts that were up inside the scanned network but did not answer
    -- this scan are down now.
    WITH gone AS (
        UPDATE hosts h
        SET status = 'down', last_job_id = p_job_id
        WHERE h.site_id = j.site_id
          AND h.status = 'up'
          AND h.ip_address <<= j.network
          AND NOT h.ip_address <<= ANY (j.exclusions)
          AND NOT v_partial -- unscanned hosts of a partial scan are not down
          AND NOT EXISTS (SELECT 1 FROM ingest_hosts i WHERE i.ip = h.ip_address AND i.status = 'up')
        RETURNING h.id, h.ip_address
    ), recorded AS (
        INSERT INTO job_hosts (job_id, ip_address, host_id, status, reason)
        SELECT p_job_id, gone.ip_address, gone.id, 'down', 'no-response' FROM gone
    )
    INSERT INTO host_history (host_id, site_id, job_id, event, old_value, new_value, changed_at, changed_by, change_reason)
    SELECT gone.id, j.site_id, p_job_id, 'host_down', 'up', 'down', v_now, v_by, 'no reply to this scan'
    FROM gone;
    GET DIAGNOSTICS v_down = ROW_COUNT;

    INSERT INTO port_scans (job_id, host_id, port, protocol, state, reason, service_name, service_product,
                            service_version, service_extra_info, scripts, scanned_at)
    SELECT p_job_id, i.host_id, p.port, p.protocol, p.state, NULLIF(p.reason, ''), NULLIF(p.service_name, ''),
           NULLIF(p.service_product, ''), NULLIF(p.service_version, ''), NULLIF(p.service_extra_info, ''),
           p.scripts, v_now
    FROM ingest_ports p
    JOIN ingest_hosts i ON i.ip = p.ip
    WHERE i.host_id IS NOT NULL;
    GET DIAGNOSTICS v_rows = ROW_COUNT;

    -- Port opened / service changed (compared with services before this
    -- scan), and port closed: a port open before, inside the scanned port
    -- set of a host that answered, that is not open now.
    WITH scanned_hosts AS (
        SELECT i.host_id AS id, i.ip AS ip_address, i.has_services
        FROM ingest_hosts i
        WHERE i.status = 'up' AND i.host_id IS NOT NULL
    ), now_open AS (
        SELECT sh.id AS host_id, sh.has_services, p.protocol, p.port, p.state, p.service_name, p.service_product, p.service_version
        FROM ingest_ports p
        JOIN scanned_hosts sh ON sh.ip_address = p.ip
        WHERE p.state = 'open'
    ), opened AS (
        SELECT np.host_id, np.port, np.protocol, s.state AS old_state, np.state AS new_state
        FROM now_open np
        LEFT JOIN LATERAL (
            SELECT s.state FROM services s
            WHERE np.has_services AND s.host_id = np.host_id AND s.protocol = np.protocol AND s.port = np.port LIMIT 1) s ON true
        WHERE s.state IS NULL OR s.state <> 'open'
    ), changed AS (
        SELECT np.host_id, np.port, np.protocol,
               concat_ws(' ', s.service_name, s.service_product, s.service_version) AS old_service,
               concat_ws(' ', NULLIF(np.service_name, ''), NULLIF(np.service_product, ''), NULLIF(np.service_version, '')) AS new_service
        FROM now_open np
        CROSS JOIN LATERAL (
            SELECT s.service_name, s.service_product, s.service_version FROM services s
            WHERE np.has_services AND s.host_id = np.host_id AND s.protocol = np.protocol AND s.port = np.port
              AND s.state = 'open' LIMIT 1) s
        WHERE np.service_name <> ''
          AND (s.service_name, s.service_product, s.service_version) IS DISTINCT FROM
              (NULLIF(np.service_name, ''), NULLIF(np.service_product, ''), NULLIF(np.service_version, ''))
    ), closed AS (
        SELECT s.host_id, s.port, s.protocol,
               COALESCE((SELECT p.state FROM ingest_ports p
                         WHERE p.ip = sh.ip_address AND p.protocol = s.protocol AND p.port = s.port), 'closed') AS new_state
        FROM scanned_hosts sh
        CROSS JOIN LATERAL (
            SELECT s.host_id, s.port, s.protocol FROM services s
            WHERE sh.has_services AND s.host_id = sh.id AND s.state = 'open' OFFSET 0) s
        WHERE NOT EXISTS (SELECT 1 FROM now_open np WHERE np.host_id = s.host_id AND np.protocol = s.protocol AND np.port = s.port)
          AND port_in_scanned_set(s.protocol, s.port, p_scanned_tcp, p_scanned_udp)
    )
    INSERT INTO host_history (host_id, site_id, job_id, event, port, protocol, old_value, new_value, changed_at, changed_by, change_reason)
    SELECT host_id, j.site_id, p_job_id, 'port_opened', port, protocol, old_state, new_state, v_now, v_by, v_why FROM opened
    UNION ALL
    SELECT host_id, j.site_id, p_job_id, 'service_changed', port, protocol, old_service, new_service, v_now, v_by, v_why FROM changed
    UNION ALL
    SELECT host_id, j.site_id, p_job_id, 'port_closed', port, protocol, 'open', new_state, v_now, v_by, v_why FROM closed;
    GET DIAGNOSTICS v_ports = ROW_COUNT;

    -- Ports open before and scanned again but not reported at all: nmap
    -- folds them into "not shown: closed/filtered", so they are no longer open.
    UPDATE services s
    SET state = 'closed', last_seen = v_now, last_job_id = p_job_id
    WHERE s.host_id = ANY (ARRAY(SELECT i.host_id FROM ingest_hosts i WHERE i.status = 'up' AND i.has_services))
      AND s.state = 'open'
      AND NOT EXISTS (SELECT 1 FROM ingest_ports p JOIN ingest_hosts i ON i.ip = p.ip
                      WHERE i.host_id = s.host_id AND p.protocol = s.protocol AND p.port = s.port)
      AND port_in_scanned_set(s.protocol, s.port, p_scanned_tcp, p_scanned_udp);

    -- Current state: every open port, plus any known port whose state changed.
    INSERT INTO services AS s (host_id, port, protocol, state, service_name, service_product, service_version,
                               service_extra_info, first_seen, last_seen, last_job_id)
    SELECT i.host_id, p.port, p.protocol, p.state, NULLIF(p.service_name, ''), NULLIF(p.service_product, ''),
           NULLIF(p.service_version, ''), NULLIF(p.service_extra_info, ''), v_now, v_now, p_job_id
    FROM ingest_ports p
    JOIN ingest_hosts i ON i.ip = p.ip
    WHERE i.host_id IS NOT NULL
      AND (p.state = 'open'
           OR (i.has_services AND EXISTS (SELECT 1 FROM services e
                                          WHERE e.host_id = i.host_id AND e.protocol = p.protocol AND e.port = p.port OFFSET 0)))
    ON CONFLICT (host_id, protocol, port) DO UPDATE
    SET state              = EXCLUDED.state,
        service_name       = COALESCE(EXCLUDED.service_name, s.service_name),
        service_product    = COALESCE(EXCLUDED.service_product, s.service_product),
        service_version    = COALESCE(EXCLUDED.service_version, s.service_version),
        service_extra_info = COALESCE(EXCLUDED.service_extra_info, s.service_extra_info),
        first_seen         = CASE WHEN s.state <> 'open' AND EXCLUDED.state = 'open' THEN EXCLUDED.first_seen ELSE s.first_seen END,
        last_seen          = EXCLUDED.last_seen,
        last_job_id        = EXCLUDED.last_job_id;

    UPDATE scan_jobs
    SET status = CASE WHEN v_partial THEN 'cancelled' ELSE 'completed' END,
        completed_at = CASE WHEN v_partial THEN completed_at ELSE v_now END,
        progress_percent = CASE WHEN v_partial THEN progress_percent ELSE 100 END,
        timeout_at = NULL,
        error_message = CASE WHEN v_partial THEN error_message END,
        partial = v_partial,
        hosts_finished = CASE WHEN v_partial THEN (SELECT count(*) FROM ingest_hosts) END,
        finished_hosts = CASE WHEN v_partial THEN ARRAY(SELECT i.ip FROM ingest_hosts i ORDER BY i.ip) END,
        scan_stats = COALESCE(p_stats, '{}'::jsonb)
                     || jsonb_build_object('hosts_up', v_up, 'port_rows', v_rows, 'changes', v_events + v_ports + v_down)
                     || CASE WHEN v_partial THEN jsonb_build_object('partial', true, 'hosts_finished', (SELECT count(*) FROM ingest_hosts))
                        ELSE '{}'::jsonb END
    WHERE id = p_job_id;

    UPDATE scan_job_leases
    SET ended_at = clock_timestamp(), outcome = 'completed'
    WHERE job_id = p_job_id AND lease_token = p_lease_token AND ended_at IS NULL;

    IF p_clear THEN
        -- DELETE, not TRUNCATE: TRUNCATE would force a synchronous commit
        -- for the new relation files. Large sets are truncated by the caller.
        DELETE FROM ingest_hosts;
        DELETE FROM ingest_ports;
    END IF;

    RETURN QUERY SELECT 'committed'::text, j.site_id, v_hosts, v_up, v_rows, v_events + v_ports + v_down;
END $$;

-- ingest_commit_many commits several small jobs in one transaction: the
-- controller's committer gathers the commits that arrive while the previous
-- batch runs (group commit, as riverqueue's batch completer does), so many
-- agents finishing at once cost one transaction and one WAL flush instead of
-- one each, and the database sees a few committing sessions instead of one
-- per agent. Each job runs ingest_commit in a subtransaction of its own: a
-- job whose lease was lost, or that fails for any other reason, writes
-- nothing and is reported in its row, and the others still commit. Rows come
-- flattened, job after job; p_host_counts and p_port_counts say how many
-- belong to each job. Output rows are in input order (idx, from 1).
CREATE OR REPLACE FUNCTION ingest_commit_many(
    p_job_id        uuid[],
    p_worker_id     text[],
    p_lease_token   bigint[],
    p_scanned_tcp   text[],
    p_scanned_udp   text[],
    p_stats         jsonb[],
    p_host_counts   integer[],
    p_port_counts   integer[],
    p_h_ip          inet[],
    p_h_status      text[],
    p_h_reason      text[],
    p_h_mac         macaddr[],
    p_h_vendor      text[],
    p_h_hostname    text[],
    p_h_os_name     text[],
    p_h_os_family   text[],
    p_h_os_conf     smallint[],
    p_p_ip          inet[],
    p_p_protocol    text[],
    p_p_port        integer[],
    p_p_state       text[],
    p_p_reason      text[],
    p_p_name        text[],
    p_p_product     text[],
    p_p_version     text[],
    p_p_extra       text[],
    p_p_scripts     jsonb[]
) RETURNS TABLE (idx integer, outcome text, message text, job_site_id uuid, merged_hosts bigint, up_hosts bigint,
                 port_rows bigint, changes bigint)
-- Small jobs run the same statements over and over with staging tables of a
-- few rows: generic plans, made once per session, instead of replanning each
-- statement for every job (custom plans won the plan cache's cost
-- comparison, and planning one of these statements took 0.3–1 ms here).
-- Large jobs call ingest_commit directly and keep custom plans, made for
-- their analyzed staging tables.
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    h0 integer := 1;
    p0 integer := 1;
    h1 integer;
    p1 integer;
    r  record;
    nil_site CONSTANT uuid := '00000000-0000-0000-0000-000000000000';
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_job_id, 1), 0) LOOP
        h1 := h0 + p_host_counts[i] - 1;
        p1 := p0 + p_port_counts[i] - 1;
        BEGIN
            INSERT INTO ingest_hosts (ip, status, reason, mac_address, vendor, hostname, os_name, os_family, os_confidence)
            SELECT * FROM unnest(p_h_ip[h0:h1], p_h_status[h0:h1], p_h_reason[h0:h1], p_h_mac[h0:h1],
                                 p_h_vendor[h0:h1], p_h_hostname[h0:h1], p_h_os_name[h0:h1], p_h_os_family[h0:h1],
                                 p_h_os_conf[h0:h1]);
            INSERT INTO ingest_ports (ip, protocol, port, state, reason, service_name, service_product,
                                      service_version, service_extra_info, scripts)
            SELECT * FROM unnest(p_p_ip[p0:p1], p_p_protocol[p0:p1], p_p_port[p0:p1], p_p_state[p0:p1],
                                 p_p_reason[p0:p1], p_p_name[p0:p1], p_p_product[p0:p1], p_p_version[p0:p1],
                                 p_p_extra[p0:p1], p_p_scripts[p0:p1]);
            SELECT * INTO r FROM ingest_commit(
                p_job_id[i], p_worker_id[i], p_lease_token[i], p_scanned_tcp[i], p_scanned_udp[i], p_stats[i],
                false, true);
            RETURN QUERY SELECT i, r.outcome, ''::text, r.job_site_id, r.merged_hosts, r.up_hosts, r.port_rows, r.changes;
        EXCEPTION
            WHEN SQLSTATE 'SCL01' THEN
                RETURN QUERY SELECT i, 'lease_lost'::text, SQLERRM, nil_site, 0::bigint, 0::bigint, 0::bigint, 0::bigint;
            WHEN OTHERS THEN
                RETURN QUERY SELECT i, 'error'::text, SQLSTATE || ': ' || SQLERRM, nil_site, 0::bigint, 0::bigint, 0::bigint, 0::bigint;
        END;
        h0 := h1 + 1;
        p0 := p1 + 1;
    END LOOP;
END $$;
