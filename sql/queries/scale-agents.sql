-- name: GetAgentsByIDs :many
-- The rows of every agent a controller holds in its cache, re-read in one
-- statement each refresh instead of one read per agent call
-- (agentapi/cache.go). An id missing from the result was deleted.
SELECT * FROM agents WHERE id = ANY(@ids::uuid[]);
