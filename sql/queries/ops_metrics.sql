-- Queries of the metrics collector and the doctor command (ops-metrics).

-- name: MetricsJobsBySiteStatus :many
-- Jobs per status; the metrics collector caches the answer for a few
-- seconds, so scrapes never hammer the database.
SELECT s.name::text AS site, j.status::text AS status, count(*)::bigint AS jobs
FROM scan_jobs j
JOIN sites s ON s.id = j.site_id
GROUP BY s.name, j.status;

-- name: MetricsOldestPendingJobAge :one
-- Seconds the oldest due pending job has waited (0 when none is due).
SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(scheduled_at)), 0)::float8 AS seconds
FROM scan_jobs
WHERE status = 'pending' AND scheduled_at <= now();

-- name: MetricsAgentsBySiteState :many
SELECT s.name::text AS site, a.state::text AS state, count(*)::bigint AS agents
FROM agents a
JOIN sites s ON s.id = a.site_id
GROUP BY s.name, a.state;

-- name: ExpiredLeaseBacklog :one
-- Leases expired for longer than @grace_seconds and still held: a running
-- reaper keeps this at zero.
SELECT count(*)::bigint AS jobs,
       COALESCE(EXTRACT(EPOCH FROM now() - min(timeout_at)), 0)::float8 AS oldest_seconds
FROM scan_jobs
WHERE status IN ('leased', 'running')
  AND timeout_at < now() - make_interval(secs => @grace_seconds::float8);

-- name: PortScanPartitionMonthsAhead :one
-- Consecutive months after the current one that have a port_scans partition.
SELECT count(*)::int AS months
FROM generate_series(1, 12) AS g(n)
WHERE to_regclass(format('port_scans_%s', to_char(date_trunc('month', now()) + make_interval(months => g.n), 'YYYY_MM'))) IS NOT NULL
  AND g.n <= (SELECT COALESCE(min(m.n) - 1, 12)
              FROM generate_series(1, 12) AS m(n)
              WHERE to_regclass(format('port_scans_%s', to_char(date_trunc('month', now()) + make_interval(months => m.n), 'YYYY_MM'))) IS NULL);

-- name: ServerVersion :one
SELECT current_setting('server_version')::text AS version, now()::timestamptz AS now;
