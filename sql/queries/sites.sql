-- name: CreateSite :one
INSERT INTO sites (name, description, created_by, scopes)
VALUES (@name, @description, @created_by, COALESCE(@scopes::cidr[], '{}'))
RETURNING *;

-- name: GetSiteByName :one
SELECT * FROM sites WHERE name = @name AND purge_requested_at IS NULL;

-- name: GetSiteByID :one
SELECT * FROM sites WHERE id = @id;

-- name: ListSites :many
SELECT * FROM sites
WHERE name > @after_name
  AND purge_requested_at IS NULL
  AND (@include_archived::boolean OR archived_at IS NULL)
ORDER BY name
LIMIT @row_limit;

-- name: DeleteSite :execrows
DELETE FROM sites WHERE name = @name;
