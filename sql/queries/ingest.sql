-- Merge queries: run in one transaction, in this order, over the session's
-- staging tables (ingest_hosts, ingest_ports) after the job's lease has been
-- verified under FOR UPDATE.
--
-- The staging tables have no statistics worth trusting, so the queries are
-- written to drive from them into hosts and services through LATERAL index
-- lookups (LIMIT/OFFSET keep the planner from flattening them into hash
-- joins): a seq scan of a site's hosts or of all services per job would make
-- every commit cost as much as the database is large.

-- name: MergeHosts :one
-- Upserts every host reported up (and refreshes known hosts reported down),
-- recording discovered/up/down/OS changes against the state before the scan.
WITH prev AS (
    SELECT h.id, h.ip_address, h.status, h.os_name
    FROM ingest_hosts i
    CROSS JOIN LATERAL (
        SELECT h.id, h.ip_address, h.status, h.os_name FROM hosts h
        WHERE h.site_id = @site_id::uuid AND h.ip_address = i.ip LIMIT 1) h
), upserted AS (
    INSERT INTO hosts AS h (site_id, ip_address, hostname, mac_address, vendor, os_family, os_name,
                            os_confidence, status, discovery_count, first_seen, last_seen, last_job_id)
    SELECT @site_id::uuid, i.ip, NULLIF(i.hostname, ''), i.mac_address, NULLIF(i.vendor, ''),
           NULLIF(i.os_family, ''), NULLIF(i.os_name, ''), NULLIF(i.os_confidence, 0), i.status,
           CASE WHEN i.status = 'up' THEN 1 ELSE 0 END, @now::timestamptz, @now::timestamptz, @job_id::uuid
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
    RETURNING h.id, h.ip_address, h.status, h.os_name
), events AS (
    INSERT INTO host_history (host_id, site_id, job_id, event, old_value, new_value, changed_at, changed_by, change_reason)
    SELECT u.id, @site_id::uuid, @job_id::uuid,
           CASE WHEN p.id IS NULL THEN 'host_discovered' WHEN u.status = 'up' THEN 'host_up' ELSE 'host_down' END,
           p.status, u.status, @now::timestamptz, @changed_by::text, @change_reason::text
    FROM upserted u
    LEFT JOIN prev p ON p.id = u.id
    WHERE (p.id IS NULL AND u.status = 'up') OR (p.id IS NOT NULL AND p.status IS DISTINCT FROM u.status)
    UNION ALL
    SELECT u.id, @site_id::uuid, @job_id::uuid, 'os_changed', p.os_name, u.os_name, @now::timestamptz,
           @changed_by::text, @change_reason::text
    FROM upserted u
    JOIN prev p ON p.id = u.id
    WHERE p.os_name IS NOT NULL AND u.os_name IS DISTINCT FROM p.os_name
    RETURNING 1
)
SELECT (SELECT count(*) FROM upserted)::bigint AS hosts,
       (SELECT count(*) FROM upserted WHERE status = 'up')::bigint AS hosts_up,
       (SELECT count(*) FROM events)::bigint AS events;

-- name: MapStagedHosts :execrows
WITH m AS (
    SELECT i.ip, h.id
    FROM ingest_hosts i
    CROSS JOIN LATERAL (SELECT h.id FROM hosts h WHERE h.site_id = @site_id::uuid AND h.ip_address = i.ip LIMIT 1) h
)
UPDATE ingest_hosts i
SET host_id = m.id,
    has_services = EXISTS (SELECT 1 FROM services s WHERE s.host_id = m.id OFFSET 0)
FROM m
WHERE m.ip = i.ip;

-- name: MarkMissingHostsDown :execrows
-- Hosts that were up inside the scanned network but did not answer this
-- scan are down now. Only for jobs that covered their whole network.
WITH gone AS (
    UPDATE hosts h
    SET status = 'down', last_job_id = @job_id::uuid
    WHERE h.site_id = @site_id::uuid
      AND h.status = 'up'
      AND h.ip_address <<= @network::cidr
      AND NOT h.ip_address <<= ANY (@exclusions::cidr[])
      AND NOT EXISTS (SELECT 1 FROM ingest_hosts i WHERE i.ip = h.ip_address AND i.status = 'up')
    RETURNING h.id
)
INSERT INTO host_history (host_id, site_id, job_id, event, old_value, new_value, changed_at, changed_by, change_reason)
SELECT gone.id, @site_id::uuid, @job_id::uuid, 'host_down', 'up', 'down', @now::timestamptz, @changed_by::text,
       'no reply to this scan'
FROM gone;

-- name: InsertPortScans :execrows
INSERT INTO port_scans (job_id, host_id, port, protocol, state, reason, service_name, service_product,
                        service_version, service_extra_info, scripts, scanned_at)
SELECT @job_id::uuid, i.host_id, p.port, p.protocol, p.state, NULLIF(p.reason, ''), NULLIF(p.service_name, ''),
       NULLIF(p.service_product, ''), NULLIF(p.service_version, ''), NULLIF(p.service_extra_info, ''),
       p.scripts, @now::timestamptz
FROM ingest_ports p
JOIN ingest_hosts i ON i.ip = p.ip
WHERE i.host_id IS NOT NULL;

-- name: RecordPortChanges :execrows
-- Port opened / service changed (compared with services before this scan),
-- and port closed: a port open before, inside the scanned port set of a host
-- that answered, that is not open now.
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
      AND ((s.protocol = 'tcp' AND s.port <@ CAST(@scanned_tcp::text AS int4multirange))
           OR (s.protocol = 'udp' AND s.port <@ CAST(@scanned_udp::text AS int4multirange)))
)
INSERT INTO host_history (host_id, site_id, job_id, event, port, protocol, old_value, new_value, changed_at, changed_by, change_reason)
SELECT host_id, @site_id::uuid, @job_id::uuid, 'port_opened', port, protocol, old_state, new_state, @now::timestamptz, @changed_by::text, @change_reason::text FROM opened
UNION ALL
SELECT host_id, @site_id::uuid, @job_id::uuid, 'service_changed', port, protocol, old_service, new_service, @now::timestamptz, @changed_by::text, @change_reason::text FROM changed
UNION ALL
SELECT host_id, @site_id::uuid, @job_id::uuid, 'port_closed', port, protocol, 'open', new_state, @now::timestamptz, @changed_by::text, @change_reason::text FROM closed;

-- name: CloseMissingServices :execrows
-- Ports open before and scanned again but not reported at all: nmap folds
-- them into "not shown: closed/filtered", so they are no longer open.
UPDATE services s
SET state = 'closed', last_seen = @now::timestamptz, last_job_id = @job_id::uuid
WHERE s.host_id = ANY (ARRAY(SELECT i.host_id FROM ingest_hosts i WHERE i.status = 'up' AND i.has_services))
  AND s.state = 'open'
  AND NOT EXISTS (SELECT 1 FROM ingest_ports p JOIN ingest_hosts i ON i.ip = p.ip
                  WHERE i.host_id = s.host_id AND p.protocol = s.protocol AND p.port = s.port)
  AND ((s.protocol = 'tcp' AND s.port <@ CAST(@scanned_tcp::text AS int4multirange))
       OR (s.protocol = 'udp' AND s.port <@ CAST(@scanned_udp::text AS int4multirange)));

-- name: UpsertServices :execrows
-- Current state: every open port, plus any known port whose state changed.
INSERT INTO services AS s (host_id, port, protocol, state, service_name, service_product, service_version,
                           service_extra_info, first_seen, last_seen, last_job_id)
SELECT i.host_id, p.port, p.protocol, p.state, NULLIF(p.service_name, ''), NULLIF(p.service_product, ''),
       NULLIF(p.service_version, ''), NULLIF(p.service_extra_info, ''), @now::timestamptz, @now::timestamptz, @job_id::uuid
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

-- name: NotifyJobEvent :exec
SELECT pg_notify('scanorama_events', @payload::text);

-- name: ClearStagedHosts :exec
-- Small staging sets are cleared with DELETE inside the commit: TRUNCATE
-- would force a synchronous commit for the new relation files.
DELETE FROM ingest_hosts;

-- name: ClearStagedPorts :exec
DELETE FROM ingest_ports;
