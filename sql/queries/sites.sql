-- name: CreateSite :one
INSERT INTO sites (name, description, created_by, scopes)
VALUES (@name, @description, @created_by, COALESCE(@scopes::cidr[], '{}'))
RETURNING *;

-- name: GetSiteByName :one
SELECT * FROM sites WHERE name = @name;

-- name: GetSiteByID :one
SELECT * FROM sites WHERE id = @id;

-- name: ListSites :many
SELECT * FROM sites
WHERE name > @after_name
ORDER BY name
LIMIT @row_limit;

-- name: DeleteSite :execrows
DELETE FROM sites WHERE name = @name;
