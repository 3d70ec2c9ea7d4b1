-- name: CreateProfile :one
INSERT INTO scan_profiles (
    name, description, scan_type, ports, top_ports, service_detection, version_intensity,
    version_light, os_detection, timing, host_timeout_seconds, min_rate, max_rate, max_retries,
    scripts, skip_host_discovery, ping_methods, created_by
) VALUES (
    @name, @description, @scan_type, @ports, @top_ports, @service_detection, @version_intensity,
    @version_light, @os_detection, @timing, @host_timeout_seconds, @min_rate, @max_rate, @max_retries,
    @scripts, @skip_host_discovery, @ping_methods, @created_by
)
RETURNING *;

-- name: GetProfileByName :one
SELECT * FROM scan_profiles WHERE name = @name;

-- name: GetProfileByID :one
SELECT * FROM scan_profiles WHERE id = @id;

-- name: ListProfiles :many
SELECT * FROM scan_profiles
WHERE name > @after_name
ORDER BY name
LIMIT @row_limit;

-- name: DeleteProfile :execrows
DELETE FROM scan_profiles WHERE name = @name AND NOT builtin;
