-- name: TouchAgents :exec
-- last_seen of every agent a controller heard from since its last flush,
-- in one statement instead of a commit per heartbeat (agentapi/touch.go).
UPDATE agents SET last_seen = now(), state = CASE WHEN state = 'lost' THEN 'active' ELSE state END
WHERE id = ANY(@ids::uuid[]);
