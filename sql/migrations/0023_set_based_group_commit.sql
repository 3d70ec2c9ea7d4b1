-- A group commit merged set-based: ingest_commit_many runs each merge step
-- of ingest_commit once for all the jobs of a group instead of once per job
-- (see the comment on the function, and docs/DESIGN.md "Open performance
-- work"). The per-job loop stays, as the fallback whenever the set-based
-- pass raises and for single jobs. Same text as sql/functions/ingest_commit.sql.

-- ingest_commit_many commits several small jobs in one transaction: the
-- controller's committer gathers the commits that arrive while the previous
-- batch runs (group commit, as riverqueue's batch completer does), so many
-- agents finishing at once cost one transaction and one WAL flush instead of
-- one each, and the database sees a few committing sessions instead of one
-- per agent. Rows come flattened, job after job; p_host_counts and
-- p_port_counts say how many belong to each job. Output rows are in input
-- order (idx, from 1).
--
-- Since *_set_based_group_commit.sql a group of two or more jobs is merged
-- set-based: every merge step of ingest_commit runs once for all the
-- group's jobs instead of once per job (about 15 statements a job, each an
-- index probe or two, were the cost). The jobs are locked and fenced in one
-- statement, in id order; each staged row carries its job's ordinal (k), so
-- every step writes exactly what ingest_commit would for that job. Jobs
-- that could touch the same host (same site, and one's reported hosts or,
-- unless partial, its network meet the other's) go to successive passes
-- (b), in input order: a host's history is computed against the state the
-- earlier job left, as the per-job loop does. host_history rows are
-- inserted job by job in each step, so each job's events keep
-- ingest_commit's order (host status, OS, silent hosts down, ports opened,
-- services changed, ports closed) and a host's events keep the jobs' order.
-- Anything unexpected (an error in any step, a job twice in one group,
-- counts that do not add up) rolls the set-based pass back and runs the
-- per-job loop below, where each job runs ingest_commit in a subtransaction
-- of its own: a job whose lease was lost, or that fails for any other
-- reason, writes nothing and is reported in its row, and the others still
-- commit. A single job, or a session with scanorama.commit_many =
-- 'per_job', takes the per-job loop directly. The session setting
-- scanorama.commit_many_path says which path the last call took:
-- 'set:<passes>', 'per_job' or 'fallback:<SQLSTATE>: <message>'.
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
    n        integer := coalesce(array_length(p_job_id, 1), 0);
    h0       integer := 1;
    p0       integer := 1;
    h1       integer;
    p1       integer;
    r        record;
    nil_site CONSTANT uuid := '00000000-0000-0000-0000-000000000000';
    v_now    timestamptz := statement_timestamp();
    v_level  integer[];
    v_pair   record;
    v_passes integer := 0;
    v_done   boolean := false;
BEGIN
    IF n > 1 AND current_setting('scanorama.commit_many', true) IS DISTINCT FROM 'per_job' THEN
        BEGIN
            IF (SELECT count(DISTINCT j) FROM unnest(p_job_id) j) <> n
               OR coalesce(array_length(p_host_counts, 1), 0) <> n OR coalesce(array_length(p_port_counts, 1), 0) <> n
               OR (SELECT sum(c) FROM unnest(p_host_counts) c) <> coalesce(array_length(p_h_ip, 1), 0)
               OR (SELECT sum(c) FROM unnest(p_port_counts) c) <> coalesce(array_length(p_p_ip, 1), 0) THEN
                RAISE EXCEPTION 'group not suited to the set-based merge' USING ERRCODE = 'SCL02';
            END IF;
            -- Session tables of the set-based pass, made on first use; each
            -- call leaves them empty.
            IF to_regclass('pg_temp.ingest_many_jobs') IS NULL THEN
                CREATE TEMP TABLE ingest_many_jobs (
                    k integer NOT NULL, job_id uuid NOT NULL, worker_id text, lease_token bigint,
                    scanned_tcp text, scanned_udp text, stats jsonb,
                    site_id uuid, network cidr, exclusions cidr[], partial boolean,
                    result text, msg text, b integer,
                    n_hosts bigint NOT NULL DEFAULT 0, n_up bigint NOT NULL DEFAULT 0,
                    n_events bigint NOT NULL DEFAULT 0, n_down bigint NOT NULL DEFAULT 0,
                    n_rows bigint NOT NULL DEFAULT 0, n_ports bigint NOT NULL DEFAULT 0);
                CREATE TEMP TABLE ingest_many_hosts (
                    k integer NOT NULL, ip inet NOT NULL, status text NOT NULL, reason text, mac_address macaddr,
                    vendor text, hostname text, os_name text, os_family text, os_confidence smallint,
                    host_id uuid, has_services boolean);
                CREATE TEMP TABLE ingest_many_ports (
                    k integer NOT NULL, ip inet NOT NULL, protocol text NOT NULL, port integer NOT NULL,
                    state text NOT NULL, reason text, service_name text, service_product text,
                    service_version text, service_extra_info text, scripts jsonb);
                -- The tables are never analyzed and the plans are generic:
                -- whatever the planner assumes of their size, every join
                -- between them is an index probe, not a nested loop over a
                -- whole table (a group holds up to 128 jobs and 8,192 rows).
                CREATE INDEX ON ingest_many_jobs (k);
                CREATE INDEX ON ingest_many_jobs (job_id);
                CREATE INDEX ON ingest_many_hosts (k, ip);
                CREATE INDEX ON ingest_many_ports (k, ip, protocol, port);
            END IF;

            INSERT INTO ingest_many_jobs (k, job_id, worker_id, lease_token, scanned_tcp, scanned_udp, stats, result, msg)
            SELECT u.k, u.job_id, u.worker_id, u.lease_token, u.tcp, u.udp, u.stats,
                   'lease_lost', format('job %s no longer exists', u.job_id)
            FROM unnest(p_job_id, p_worker_id, p_lease_token, p_scanned_tcp, p_scanned_udp, p_stats)
                 WITH ORDINALITY AS u(job_id, worker_id, lease_token, tcp, udp, stats, k);
            INSERT INTO ingest_many_hosts (k, ip, status, reason, mac_address, vendor, hostname, os_name, os_family,
                                           os_confidence)
            SELECT c.k, u.ip, u.status, u.reason, u.mac, u.vendor, u.hostname, u.os_name, u.os_family, u.os_conf
            FROM unnest(p_h_ip, p_h_status, p_h_reason, p_h_mac, p_h_vendor, p_h_hostname, p_h_os_name,
                        p_h_os_family, p_h_os_conf)
                 WITH ORDINALITY AS u(ip, status, reason, mac, vendor, hostname, os_name, os_family, os_conf, x)
            JOIN (SELECT c.k, sum(c.cnt) OVER (ORDER BY c.k) AS hi, c.cnt
                  FROM unnest(p_host_counts) WITH ORDINALITY AS c(cnt, k)) c ON u.x > c.hi - c.cnt AND u.x <= c.hi;
            INSERT INTO ingest_many_ports (k, ip, protocol, port, state, reason, service_name, service_product,
                                           service_version, service_extra_info, scripts)
            SELECT c.k, u.ip, u.protocol, u.port, u.state, u.reason, u.name, u.product, u.version, u.extra, u.scripts
            FROM unnest(p_p_ip, p_p_protocol, p_p_port, p_p_state, p_p_reason, p_p_name, p_p_product, p_p_version,
                        p_p_extra, p_p_scripts)
                 WITH ORDINALITY AS u(ip, protocol, port, state, reason, name, product, version, extra, scripts, x)
            JOIN (SELECT c.k, sum(c.cnt) OVER (ORDER BY c.k) AS hi, c.cnt
                  FROM unnest(p_port_counts) WITH ORDINALITY AS c(cnt, k)) c ON u.x > c.hi - c.cnt AND u.x <= c.hi;

            -- Lock and fence every job at once, in id order (two group
            -- commits lock shared jobs in the same order), with
            -- ingest_commit's checks, messages and precedence. result NULL:
            -- the job commits.
            WITH locked AS (
                SELECT s.id, s.status, s.worker_id, s.lease_token, s.site_id, s.network, s.exclusions, s.partial
                FROM scan_jobs s
                WHERE s.id = ANY (p_job_id)
                ORDER BY s.id
                FOR UPDATE
            )
            UPDATE ingest_many_jobs m
            SET site_id = l.site_id, network = l.network, exclusions = l.exclusions,
                partial = l.status = 'cancelled',
                result = CASE
                    WHEN l.worker_id IS DISTINCT FROM m.worker_id OR l.lease_token <> m.lease_token THEN 'lease_lost'
                    WHEN l.status = 'completed' OR (l.status = 'cancelled' AND l.partial) THEN 'already_committed'
                    WHEN l.status NOT IN ('leased', 'running', 'cancelled') THEN 'lease_lost'
                    END,
                msg = CASE
                    WHEN l.worker_id IS DISTINCT FROM m.worker_id OR l.lease_token <> m.lease_token THEN
                        format('job %s was leased again (token %s, yours %s) while results streamed',
                               m.job_id, l.lease_token, coalesce(m.lease_token::text, '<NULL>'))
                    WHEN l.status = 'completed' OR (l.status = 'cancelled' AND l.partial) THEN ''
                    WHEN l.status NOT IN ('leased', 'running', 'cancelled') THEN
                        format('job %s became %s while results streamed', m.job_id, l.status)
                    END
            FROM locked l
            WHERE l.id = m.job_id;

            -- Passes: a job goes one pass after the latest earlier job it
            -- may share a host with. A job may touch its reported hosts and,
            -- unless partial, every host of its network (silent hosts go
            -- down); two jobs of one site conflict when what they may touch
            -- overlaps.
            v_level := array_fill(1, ARRAY[n]);
            FOR v_pair IN
                WITH live AS (
                    SELECT m.k, m.site_id, m.network, m.partial FROM ingest_many_jobs m WHERE m.result IS NULL
                ), touch AS (
                    SELECT l.k, l.site_id, l.network::inet AS net FROM live l WHERE NOT l.partial
                    UNION ALL
                    SELECT l.k, l.site_id, i.ip FROM live l JOIN ingest_many_hosts i ON i.k = l.k
                )
                SELECT DISTINCT a.k AS ka, c.k AS kc
                FROM touch a
                JOIN touch c ON a.k < c.k AND a.site_id = c.site_id AND a.net && c.net
                ORDER BY kc, ka
            LOOP
                v_level[v_pair.kc] := greatest(v_level[v_pair.kc], v_level[v_pair.ka] + 1);
            END LOOP;
            UPDATE ingest_many_jobs m SET b = v_level[m.k] WHERE m.result IS NULL;
            SELECT coalesce(max(m.b), 0) INTO v_passes FROM ingest_many_jobs m;

            FOR v_b IN 1 .. v_passes LOOP
                -- Hosts and their status/OS history, as ingest_commit.
                WITH prev AS (
                    SELECT i.k, h.id, h.ip_address, h.status, h.os_name
                    FROM ingest_many_hosts i
                    JOIN ingest_many_jobs j ON j.k = i.k AND j.b = v_b
                    CROSS JOIN LATERAL (
                        SELECT h.id, h.ip_address, h.status, h.os_name FROM hosts h
                        WHERE h.site_id = j.site_id AND h.ip_address = i.ip LIMIT 1) h
                ), upserted AS (
                    INSERT INTO hosts AS h (site_id, ip_address, hostname, mac_address, vendor, os_family, os_name,
                                            os_confidence, status, discovery_count, first_seen, last_seen, last_job_id)
                    SELECT j.site_id, i.ip, NULLIF(i.hostname, ''), i.mac_address, NULLIF(i.vendor, ''),
                           NULLIF(i.os_family, ''), NULLIF(i.os_name, ''), NULLIF(i.os_confidence, 0), i.status,
                           CASE WHEN i.status = 'up' THEN 1 ELSE 0 END, v_now, v_now, j.job_id
                    FROM ingest_many_hosts i
                    JOIN ingest_many_jobs j ON j.k = i.k AND j.b = v_b
                    WHERE i.status = 'up' OR EXISTS (SELECT 1 FROM prev WHERE prev.k = i.k AND prev.ip_address = i.ip)
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
                    RETURNING h.id, h.last_job_id AS job_id, h.status, h.os_name, (h.xmax = 0) AS inserted
                ), events AS (
                    INSERT INTO host_history (host_id, site_id, job_id, event, old_value, new_value, changed_at,
                                              changed_by, change_reason)
                    SELECT e.host_id, j.site_id, j.job_id, e.event, e.old_value, e.new_value, v_now,
                           'agent:' || j.worker_id, 'scan job ' || j.job_id::text
                    FROM (
                        SELECT 1 AS branch, u.job_id, u.id AS host_id,
                               CASE WHEN p.id IS NULL THEN 'host_discovered' WHEN u.status = 'up' THEN 'host_up' ELSE 'host_down' END AS event,
                               p.status AS old_value, u.status AS new_value
                        FROM upserted u
                        LEFT JOIN prev p ON p.id = u.id
                        WHERE (p.id IS NULL AND u.inserted AND u.status = 'up') OR (p.id IS NOT NULL AND p.status IS DISTINCT FROM u.status)
                        UNION ALL
                        SELECT 2, u.job_id, u.id, 'os_changed', p.os_name, u.os_name
                        FROM upserted u
                        JOIN prev p ON p.id = u.id
                        WHERE p.os_name IS NOT NULL AND u.os_name IS DISTINCT FROM p.os_name
                    ) e
                    JOIN ingest_many_jobs j ON j.job_id = e.job_id
                    ORDER BY j.k, e.branch
                    RETURNING job_id
                )
                UPDATE ingest_many_jobs m
                SET n_hosts  = (SELECT count(*) FROM upserted u WHERE u.job_id = m.job_id),
                    n_up     = (SELECT count(*) FROM upserted u WHERE u.job_id = m.job_id AND u.status = 'up'),
                    n_events = (SELECT count(*) FROM events e WHERE e.job_id = m.job_id)
                WHERE m.b = v_b;

                UPDATE ingest_many_hosts i
                SET host_id = m.id,
                    has_services = EXISTS (SELECT 1 FROM services s WHERE s.host_id = m.id OFFSET 0)
                FROM (
                    SELECT x.k, x.ip, h.id
                    FROM ingest_many_hosts x
                    JOIN ingest_many_jobs j ON j.k = x.k AND j.b = v_b
                    CROSS JOIN LATERAL (SELECT h.id FROM hosts h WHERE h.site_id = j.site_id AND h.ip_address = x.ip LIMIT 1) h
                ) m
                WHERE m.k = i.k AND m.ip = i.ip;

                INSERT INTO job_hosts (job_id, ip_address, host_id, status, reason, hostname, mac_address, vendor,
                                       os_name, os_confidence)
                SELECT j.job_id, i.ip, i.host_id, i.status, NULLIF(i.reason, ''), NULLIF(i.hostname, ''), i.mac_address,
                       NULLIF(i.vendor, ''), NULLIF(i.os_name, ''), NULLIF(i.os_confidence, 0)
                FROM ingest_many_hosts i
                JOIN ingest_many_jobs j ON j.k = i.k AND j.b = v_b
                WHERE i.host_id IS NOT NULL;

                -- Hosts up inside a (non-partial) job's network that did not
                -- answer it are down. Jobs of one pass share no host.
                WITH gone AS (
                    UPDATE hosts h
                    SET status = 'down', last_job_id = g.job_id
                    FROM (
                        SELECT j.k, j.job_id, x.id
                        FROM ingest_many_jobs j
                        CROSS JOIN LATERAL (
                            SELECT h.id FROM hosts h
                            WHERE h.site_id = j.site_id
                              AND h.status = 'up'
                              AND h.ip_address <<= j.network
                              AND NOT h.ip_address <<= ANY (j.exclusions)
                              AND NOT EXISTS (SELECT 1 FROM ingest_many_hosts i
                                              WHERE i.k = j.k AND i.ip = h.ip_address AND i.status = 'up')
                            OFFSET 0) x
                        WHERE j.b = v_b AND NOT j.partial
                    ) g
                    WHERE h.id = g.id
                    RETURNING h.id, h.ip_address, g.k, g.job_id
                ), recorded AS (
                    INSERT INTO job_hosts (job_id, ip_address, host_id, status, reason)
                    SELECT gone.job_id, gone.ip_address, gone.id, 'down', 'no-response' FROM gone
                ), hist AS (
                    INSERT INTO host_history (host_id, site_id, job_id, event, old_value, new_value, changed_at,
                                              changed_by, change_reason)
                    SELECT gone.id, j.site_id, gone.job_id, 'host_down', 'up', 'down', v_now, 'agent:' || j.worker_id,
                           'no reply to this scan'
                    FROM gone
                    JOIN ingest_many_jobs j ON j.k = gone.k
                    ORDER BY gone.k
                    RETURNING job_id
                )
                UPDATE ingest_many_jobs m
                SET n_down = (SELECT count(*) FROM hist WHERE hist.job_id = m.job_id)
                WHERE m.b = v_b;

                WITH ins AS (
                    INSERT INTO port_scans (job_id, host_id, port, protocol, state, reason, service_name, service_product,
                                            service_version, service_extra_info, scripts, scanned_at)
                    SELECT j.job_id, i.host_id, p.port, p.protocol, p.state, NULLIF(p.reason, ''), NULLIF(p.service_name, ''),
                           NULLIF(p.service_product, ''), NULLIF(p.service_version, ''), NULLIF(p.service_extra_info, ''),
                           p.scripts, v_now
                    FROM ingest_many_ports p
                    JOIN ingest_many_hosts i ON i.k = p.k AND i.ip = p.ip
                    JOIN ingest_many_jobs j ON j.k = p.k AND j.b = v_b
                    WHERE i.host_id IS NOT NULL
                    RETURNING job_id
                )
                UPDATE ingest_many_jobs m
                SET n_rows = (SELECT count(*) FROM ins WHERE ins.job_id = m.job_id)
                WHERE m.b = v_b;

                -- Port opened / service changed / port closed, as ingest_commit.
                WITH scanned_hosts AS (
                    SELECT i.k, i.host_id AS id, i.ip AS ip_address, i.has_services
                    FROM ingest_many_hosts i
                    JOIN ingest_many_jobs j ON j.k = i.k AND j.b = v_b
                    WHERE i.status = 'up' AND i.host_id IS NOT NULL
                ), now_open AS (
                    SELECT sh.k, sh.id AS host_id, sh.has_services, p.protocol, p.port, p.state, p.service_name,
                           p.service_product, p.service_version
                    FROM ingest_many_ports p
                    JOIN scanned_hosts sh ON sh.k = p.k AND sh.ip_address = p.ip
                    WHERE p.state = 'open'
                ), opened AS (
                    SELECT np.k, np.host_id, np.port, np.protocol, s.state AS old_state, np.state AS new_state
                    FROM now_open np
                    LEFT JOIN LATERAL (
                        SELECT s.state FROM services s
                        WHERE np.has_services AND s.host_id = np.host_id AND s.protocol = np.protocol AND s.port = np.port LIMIT 1) s ON true
                    WHERE s.state IS NULL OR s.state <> 'open'
                ), changed AS (
                    SELECT np.k, np.host_id, np.port, np.protocol,
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
                    SELECT sh.k, s.host_id, s.port, s.protocol,
                           COALESCE((SELECT p.state FROM ingest_many_ports p
                                     WHERE p.k = sh.k AND p.ip = sh.ip_address AND p.protocol = s.protocol AND p.port = s.port),
                                    'closed') AS new_state
                    FROM scanned_hosts sh
                    JOIN ingest_many_jobs j ON j.k = sh.k
                    CROSS JOIN LATERAL (
                        SELECT s.host_id, s.port, s.protocol FROM services s
                        WHERE sh.has_services AND s.host_id = sh.id AND s.state = 'open' OFFSET 0) s
                    WHERE NOT EXISTS (SELECT 1 FROM now_open np
                                      WHERE np.host_id = s.host_id AND np.protocol = s.protocol AND np.port = s.port)
                      AND port_in_scanned_set(s.protocol, s.port, j.scanned_tcp, j.scanned_udp)
                ), ins AS (
                    INSERT INTO host_history (host_id, site_id, job_id, event, port, protocol, old_value, new_value,
                                              changed_at, changed_by, change_reason)
                    SELECT e.host_id, j.site_id, j.job_id, e.event, e.port, e.protocol, e.old_value, e.new_value, v_now,
                           'agent:' || j.worker_id, 'scan job ' || j.job_id::text
                    FROM (
                        SELECT 1 AS branch, k, host_id, 'port_opened' AS event, port, protocol, old_state AS old_value,
                               new_state AS new_value FROM opened
                        UNION ALL
                        SELECT 2, k, host_id, 'service_changed', port, protocol, old_service, new_service FROM changed
                        UNION ALL
                        SELECT 3, k, host_id, 'port_closed', port, protocol, 'open', new_state FROM closed
                    ) e
                    JOIN ingest_many_jobs j ON j.k = e.k
                    ORDER BY e.k, e.branch
                    RETURNING job_id
                )
                UPDATE ingest_many_jobs m
                SET n_ports = (SELECT count(*) FROM ins WHERE ins.job_id = m.job_id)
                WHERE m.b = v_b;

                -- Ports open before and scanned again but not reported at all.
                -- The ANY (ARRAY(...)) keeps services reached by index
                -- whichever join order the planner picks.
                UPDATE services s
                SET state = 'closed', last_seen = v_now, last_job_id = j.job_id
                FROM ingest_many_hosts i
                JOIN ingest_many_jobs j ON j.k = i.k AND j.b = v_b
                WHERE i.status = 'up' AND i.has_services
                  AND s.host_id = ANY (ARRAY(SELECT x.host_id FROM ingest_many_hosts x
                                             JOIN ingest_many_jobs y ON y.k = x.k AND y.b = v_b
                                             WHERE x.status = 'up' AND x.has_services))
                  AND s.host_id = i.host_id
                  AND s.state = 'open'
                  AND NOT EXISTS (SELECT 1 FROM ingest_many_ports p
                                  WHERE p.k = i.k AND p.ip = i.ip AND p.protocol = s.protocol AND p.port = s.port)
                  AND port_in_scanned_set(s.protocol, s.port, j.scanned_tcp, j.scanned_udp);

                INSERT INTO services AS s (host_id, port, protocol, state, service_name, service_product, service_version,
                                           service_extra_info, first_seen, last_seen, last_job_id)
                SELECT i.host_id, p.port, p.protocol, p.state, NULLIF(p.service_name, ''), NULLIF(p.service_product, ''),
                       NULLIF(p.service_version, ''), NULLIF(p.service_extra_info, ''), v_now, v_now, j.job_id
                FROM ingest_many_ports p
                JOIN ingest_many_hosts i ON i.k = p.k AND i.ip = p.ip
                JOIN ingest_many_jobs j ON j.k = p.k AND j.b = v_b
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
            END LOOP;

            UPDATE scan_jobs s
            SET status = CASE WHEN m.partial THEN 'cancelled' ELSE 'completed' END,
                completed_at = CASE WHEN m.partial THEN s.completed_at ELSE v_now END,
                progress_percent = CASE WHEN m.partial THEN s.progress_percent ELSE 100 END,
                timeout_at = NULL,
                error_message = CASE WHEN m.partial THEN s.error_message END,
                partial = m.partial,
                hosts_finished = CASE WHEN m.partial THEN (SELECT count(*) FROM ingest_many_hosts i WHERE i.k = m.k) END,
                finished_hosts = CASE WHEN m.partial THEN ARRAY(SELECT i.ip FROM ingest_many_hosts i WHERE i.k = m.k ORDER BY i.ip) END,
                scan_stats = COALESCE(m.stats, '{}'::jsonb)
                             || jsonb_build_object('hosts_up', m.n_up, 'port_rows', m.n_rows,
                                                   'changes', m.n_events + m.n_ports + m.n_down)
                             || CASE WHEN m.partial THEN jsonb_build_object('partial', true, 'hosts_finished',
                                                                            (SELECT count(*) FROM ingest_many_hosts i WHERE i.k = m.k))
                                ELSE '{}'::jsonb END
            FROM ingest_many_jobs m
            WHERE s.id = m.job_id AND m.result IS NULL;

            UPDATE scan_job_leases l
            SET ended_at = clock_timestamp(), outcome = 'completed'
            FROM ingest_many_jobs m
            WHERE m.result IS NULL AND l.job_id = m.job_id AND l.lease_token = m.lease_token AND l.ended_at IS NULL;

            v_done := true;
        EXCEPTION WHEN OTHERS THEN
            -- Everything the set-based pass wrote is rolled back: the
            -- per-job loop below commits each job it can.
            PERFORM set_config('scanorama.commit_many_path', 'fallback:' || SQLSTATE || ': ' || SQLERRM, false);
        END;
        IF v_done THEN
            PERFORM set_config('scanorama.commit_many_path', 'set:' || v_passes, false);
            RETURN QUERY
                SELECT m.k, coalesce(m.result, 'committed'), coalesce(m.msg, ''),
                       CASE WHEN m.result = 'lease_lost' THEN nil_site ELSE m.site_id END,
                       CASE WHEN m.result IS NULL THEN m.n_hosts ELSE 0 END,
                       CASE WHEN m.result IS NULL THEN m.n_up ELSE 0 END,
                       CASE WHEN m.result IS NULL THEN m.n_rows ELSE 0 END,
                       CASE WHEN m.result IS NULL THEN m.n_events + m.n_ports + m.n_down ELSE 0 END
                FROM ingest_many_jobs m
                ORDER BY m.k;
            DELETE FROM ingest_many_jobs;
            DELETE FROM ingest_many_hosts;
            DELETE FROM ingest_many_ports;
            RETURN;
        END IF;
    ELSE
        PERFORM set_config('scanorama.commit_many_path', 'per_job', false);
    END IF;

    FOR i IN 1 .. n LOOP
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
