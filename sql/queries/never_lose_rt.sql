-- Interrupted scans and safe deletes, second round (issue #10); see
-- migration 0017.

-- name: TargetArchivedPortRows :one
-- Result rows of a target's jobs that live in archived months.
SELECT archived_port_scan_rows(array(SELECT j.id FROM scan_jobs j WHERE j.target_id = @target_id))::bigint AS port_rows;

-- name: SiteArchivedPortRows :one
SELECT archived_port_scan_rows(array(SELECT j.id FROM scan_jobs j WHERE j.site_id = @site_id))::bigint AS port_rows;

-- name: UnarchiveTarget :one
-- Back from the archive: listed and editable again; it stays disabled
-- (archiving disabled it) until UpdateTarget enables it.
UPDATE scan_targets
SET archived_at = NULL, updated_at = now(), modified_by = @modified_by
WHERE id = @id AND archived_at IS NOT NULL AND purge_requested_at IS NULL
RETURNING id;

-- name: UnarchiveSite :one
UPDATE sites SET archived_at = NULL
WHERE id = @id AND archived_at IS NOT NULL AND purge_requested_at IS NULL
RETURNING id;

-- name: UnarchiveSiteTargets :execrows
-- The targets DeleteSite{archive} archived with the site (same archived_at,
-- one transaction); targets archived on their own before stay archived.
UPDATE scan_targets
SET archived_at = NULL, updated_at = now(), modified_by = @modified_by
WHERE site_id = @site_id AND archived_at = @archived_at::timestamptz AND purge_requested_at IS NULL;
