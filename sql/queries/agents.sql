-- name: UpsertAgent :one
-- One statement (one commit) per registration, protocol version included:
-- a fleet of ten thousand registering at once after a controller restart.
INSERT INTO agents (site_id, name, scope, nmap_version, raw_sockets, version, hostname, state, last_seen, protocol_version)
VALUES (@site_id, @name, @scope, @nmap_version, @raw_sockets, @version, @hostname, 'active', now(), @protocol_version)
ON CONFLICT (site_id, name) DO UPDATE
SET scope = EXCLUDED.scope, nmap_version = EXCLUDED.nmap_version, raw_sockets = EXCLUDED.raw_sockets,
    version = EXCLUDED.version, hostname = EXCLUDED.hostname, protocol_version = EXCLUDED.protocol_version,
    state = CASE WHEN agents.state IN ('draining', 'revoked', 'pending_approval') THEN agents.state ELSE 'active' END,
    last_seen = now()
RETURNING *;

-- name: GetAgent :one
SELECT * FROM agents WHERE id = @id;

-- name: TouchAgent :one
UPDATE agents SET last_seen = now(), state = CASE WHEN state = 'lost' THEN 'active' ELSE state END
WHERE id = @id
RETURNING *;

-- name: MarkAgentOffline :exec
UPDATE agents SET state = 'offline', last_seen = now() WHERE id = @id AND state NOT IN ('revoked', 'pending_approval');

-- name: MarkLostAgents :many
-- Agents that stopped heartbeating; their leases expire through the reaper.
UPDATE agents SET state = 'lost'
WHERE state IN ('active', 'draining') AND last_seen < now() - make_interval(secs => @silence_seconds::float8)
RETURNING id, name;

-- name: ListAgents :many
SELECT sqlc.embed(a), s.name AS site_name,
       (SELECT count(*) FROM scan_jobs j
         WHERE j.worker_id = a.id::text AND j.status IN ('leased', 'running'))::int AS active_leases
FROM agents a
JOIN sites s ON s.id = a.site_id
WHERE (sqlc.narg(site_id)::uuid IS NULL OR a.site_id = sqlc.narg(site_id))
  AND (s.name, a.name) > (@after_site::text, @after_name::text)
ORDER BY s.name, a.name
LIMIT @row_limit;

-- name: SetAgentDraining :one
UPDATE agents
SET state = CASE WHEN state IN ('revoked', 'pending_approval') THEN state
                 WHEN @drain::boolean THEN 'draining' ELSE 'active' END
WHERE site_id = @site_id AND name = @name
RETURNING *;
