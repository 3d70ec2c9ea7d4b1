-- name: CreateExclusion :one
INSERT INTO scan_exclusions (site_id, target_id, network, reason, created_by)
VALUES (sqlc.narg(site_id), NULL, @network, @reason, @created_by)
RETURNING *;

-- name: ListExclusions :many
-- Global and site exclusions (target exclusions belong to their target).
SELECT e.*, COALESCE(s.name, '')::text AS site_name
FROM scan_exclusions e
LEFT JOIN sites s ON s.id = e.site_id
WHERE e.target_id IS NULL
  AND (sqlc.narg(site_id)::uuid IS NULL OR e.site_id = sqlc.narg(site_id))
  AND (e.created_at, e.id) > (@after_created::timestamptz, @after_id::uuid)
ORDER BY e.created_at, e.id
LIMIT @row_limit;

-- name: DeleteExclusion :execrows
DELETE FROM scan_exclusions WHERE id = @id AND target_id IS NULL;
