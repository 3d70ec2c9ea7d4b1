-- name: GetAgentsByIDs :many
-- The rows of every agent a controller holds in its cache, re-read in one
-- statement each refresh instead of one read per agent call
-- (agentapi/cache.go). An id missing from the result was deleted.
SELECT * FROM agents WHERE id = ANY(@ids::uuid[]);

-- name: AgentChangeHorizon :one
-- The oldest transaction still running: every change by an older one is
-- visible to a read that starts after this. The next GetChangedAgents
-- passes it as since (agentapi/cache.go).
SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon;

-- name: GetChangedAgents :many
-- The agents changed (last_seen aside) by a transaction at or after since:
-- a refresh of the cache reads these instead of every row it holds.
SELECT * FROM agents WHERE changed_xid >= @since::bigint;
