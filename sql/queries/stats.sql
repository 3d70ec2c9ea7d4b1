-- name: JobCountsByStatus :many
SELECT status, count(*)::bigint AS jobs
FROM scan_jobs
WHERE sqlc.narg(site_id)::uuid IS NULL OR site_id = sqlc.narg(site_id)
GROUP BY status;

-- name: QueueHealth :one
-- The oldest due pending job's wait, and leases past their timeout that the
-- reaper has not returned yet (a persistent count means no reaper runs).
SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(scheduled_at) FILTER (
           WHERE status = 'pending' AND scheduled_at <= now())), -1)::float8 AS oldest_pending_seconds,
       count(*) FILTER (WHERE status IN ('leased', 'running') AND timeout_at < now())::bigint AS expired_leases
FROM scan_jobs
WHERE status IN ('pending', 'leased', 'running')
  AND (sqlc.narg(site_id)::uuid IS NULL OR site_id = sqlc.narg(site_id));

-- name: AgentCountsByState :many
SELECT state, count(*)::bigint AS agents
FROM agents
WHERE sqlc.narg(site_id)::uuid IS NULL OR site_id = sqlc.narg(site_id)
GROUP BY state;

-- name: HostCounts :one
SELECT (SELECT count(*) FROM hosts h
         WHERE sqlc.narg(site_id)::uuid IS NULL OR h.site_id = sqlc.narg(site_id))::bigint AS hosts,
       (SELECT count(*) FROM hosts h
         WHERE h.status = 'up' AND (sqlc.narg(site_id)::uuid IS NULL OR h.site_id = sqlc.narg(site_id)))::bigint AS hosts_up,
       (SELECT count(*) FROM services s JOIN hosts h ON h.id = s.host_id
         WHERE s.state = 'open' AND (sqlc.narg(site_id)::uuid IS NULL OR h.site_id = sqlc.narg(site_id)))::bigint AS open_services;

-- name: PortScanPartitions :many
-- Live partitions of port_scans and the months moved to the archive schema.
SELECT CASE WHEN n.nspname = 'public' THEN c.relname::text ELSE n.nspname || '.' || c.relname END::text AS name,
       (n.nspname = 'archive')::boolean AS archived,
       GREATEST(c.reltuples, 0)::bigint AS rows_estimate,
       pg_total_relation_size(c.oid)::bigint AS bytes
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND ((n.nspname = 'public' AND c.relname LIKE 'port\_scans\_%')
       OR (n.nspname = 'archive' AND c.relname LIKE 'port\_scans\_%'))
ORDER BY archived, c.relname;

-- name: DatabaseBytes :one
SELECT pg_database_size(current_database())::bigint AS bytes;
