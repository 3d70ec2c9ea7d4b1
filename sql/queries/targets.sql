-- name: CreateTarget :one
-- An empty time_zone means UTC.
INSERT INTO scan_targets (site_id, name, network, profile_id, scan_interval_seconds, cron_expr, time_zone,
                          window_days, window_start_minute, window_end_minute, max_duration_seconds,
                          discovery_first, enabled, next_run_at, created_by, modified_by)
VALUES (@site_id, @name, @network, @profile_id, @scan_interval_seconds, @cron_expr, COALESCE(NULLIF(@time_zone::text, ''), 'UTC'),
        @window_days, @window_start_minute, @window_end_minute, @max_duration_seconds,
        @discovery_first, @enabled, @next_run_at, @created_by, @created_by)
RETURNING *;

-- name: UpdateTarget :one
UPDATE scan_targets
SET name = @name, network = @network, profile_id = @profile_id, scan_interval_seconds = @scan_interval_seconds,
    cron_expr = @cron_expr, time_zone = COALESCE(NULLIF(@time_zone::text, ''), 'UTC'),
    window_days = @window_days, window_start_minute = @window_start_minute, window_end_minute = @window_end_minute,
    max_duration_seconds = @max_duration_seconds, discovery_first = @discovery_first,
    enabled = @enabled, next_run_at = @next_run_at, updated_at = now(), modified_by = @modified_by
WHERE id = @id
RETURNING *;

-- name: GetTarget :one
SELECT sqlc.embed(t), s.name AS site_name, p.name AS profile_name
FROM scan_targets t
JOIN sites s ON s.id = t.site_id
JOIN scan_profiles p ON p.id = t.profile_id
WHERE t.id = @id;

-- name: GetTargetForUpdate :one
SELECT * FROM scan_targets WHERE id = @id FOR UPDATE;

-- name: ListTargets :many
SELECT sqlc.embed(t), s.name AS site_name, p.name AS profile_name
FROM scan_targets t
JOIN sites s ON s.id = t.site_id
JOIN scan_profiles p ON p.id = t.profile_id
WHERE (sqlc.narg(site_id)::uuid IS NULL OR t.site_id = sqlc.narg(site_id))
  AND (t.created_at, t.id) > (@after_created::timestamptz, @after_id::uuid)
  AND t.purge_requested_at IS NULL
  AND (@include_archived::boolean OR t.archived_at IS NULL)
ORDER BY t.created_at, t.id
LIMIT @row_limit;

-- name: DeleteTarget :execrows
DELETE FROM scan_targets WHERE id = @id;

-- name: DeleteTargetPorts :exec
DELETE FROM scan_target_ports WHERE target_id = @target_id;

-- name: InsertTargetPortRange :exec
INSERT INTO scan_target_ports (target_id, protocol, port_start, port_end)
VALUES (@target_id, @protocol, @port_start, @port_end);

-- name: ListTargetPorts :many
SELECT protocol, port_start, port_end FROM scan_target_ports
WHERE target_id = @target_id
ORDER BY protocol, port_start;

-- name: DeleteTargetExclusions :exec
DELETE FROM scan_exclusions WHERE target_id = @target_id::uuid;

-- name: InsertTargetExclusion :exec
INSERT INTO scan_exclusions (site_id, target_id, network, created_by)
VALUES (NULL, @target_id::uuid, @network, @created_by);

-- name: ListTargetExclusions :many
SELECT network FROM scan_exclusions WHERE target_id = @target_id::uuid ORDER BY network;

-- name: EffectiveExclusions :many
-- Global, site and target exclusions that overlap the network being scanned.
SELECT DISTINCT network FROM scan_exclusions
WHERE (target_id = @target_id
       OR (target_id IS NULL AND site_id = @site_id)
       OR (target_id IS NULL AND site_id IS NULL))
  AND network && @network::cidr
ORDER BY network;

-- name: IgnoredHostsIn :many
SELECT ip_address FROM hosts
WHERE site_id = @site_id AND ignore_scanning AND ip_address <<= @network::cidr
ORDER BY ip_address;
