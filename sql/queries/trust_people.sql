-- name: CreateAPIToken :one
INSERT INTO api_tokens (id, name, role, site_ids, secret_sha256, created_by, expires_at)
VALUES (@id, @name, @role, @site_ids::uuid[], @secret_sha256, @created_by, sqlc.narg(expires_at))
RETURNING *;

-- name: GetAPIToken :one
SELECT * FROM api_tokens WHERE id = @id;

-- name: ListAPITokens :many
SELECT sqlc.embed(t), coalesce((SELECT array_agg(s.name ORDER BY s.name) FROM sites s WHERE s.id = ANY (t.site_ids)), '{}')::text[] AS site_names
FROM api_tokens t
WHERE (sqlc.narg(after_created)::timestamptz IS NULL
       OR (t.created_at, t.id) < (sqlc.narg(after_created)::timestamptz, @after_id::text))
ORDER BY t.created_at DESC, t.id DESC
LIMIT @row_limit;

-- name: RevokeAPIToken :one
UPDATE api_tokens SET revoked_at = now(), revoked_by = @revoked_by
WHERE id = @id AND revoked_at IS NULL
RETURNING *;

-- name: SiteIDsByName :many
SELECT id, name FROM sites WHERE name = ANY (@names::text[]);

-- name: InsertAuditEvent :exec
INSERT INTO audit_log (actor, role, action, site_id, object_ids, request, peer, outcome, message)
VALUES (@actor, @role, @action, sqlc.narg(site_id), @object_ids::text[], sqlc.narg(request), @peer, @outcome, @message);

-- name: ListAuditEvents :many
SELECT sqlc.embed(a), coalesce(s.name, '')::text AS site_name
FROM audit_log a
LEFT JOIN sites s ON s.id = a.site_id
WHERE (sqlc.narg(since)::timestamptz IS NULL OR a.at >= sqlc.narg(since)::timestamptz)
  AND (sqlc.narg(actor)::text IS NULL OR a.actor = sqlc.narg(actor)::text)
  AND (sqlc.narg(site_id)::uuid IS NULL OR a.site_id = sqlc.narg(site_id)::uuid)
  AND (sqlc.narg(before_id)::bigint IS NULL OR a.id < sqlc.narg(before_id)::bigint)
ORDER BY a.id DESC
LIMIT @row_limit;
