-- Safe deletes (archive, purge) and retention; see migration 0008.

-- name: TargetResultCounts :one
-- What deleting a target would destroy: its jobs, their live port_scans
-- rows and the host changes they recorded.
SELECT (SELECT count(*) FROM scan_jobs j WHERE j.target_id = @target_id)::bigint AS jobs,
       (SELECT count(*) FROM port_scans p
         WHERE p.job_id IN (SELECT j.id FROM scan_jobs j WHERE j.target_id = @target_id))::bigint AS port_rows,
       (SELECT count(*) FROM host_history h
         WHERE h.job_id IN (SELECT j.id FROM scan_jobs j WHERE j.target_id = @target_id))::bigint AS changes;

-- name: SiteResultCounts :one
SELECT (SELECT count(*) FROM scan_jobs j WHERE j.site_id = @site_id)::bigint AS jobs,
       (SELECT count(*) FROM port_scans p
         WHERE p.job_id IN (SELECT j.id FROM scan_jobs j WHERE j.site_id = @site_id))::bigint AS port_rows,
       (SELECT count(*) FROM hosts h WHERE h.site_id = @site_id)::bigint AS hosts,
       (SELECT count(*) FROM host_history h WHERE h.site_id = @site_id)::bigint AS changes;

-- name: ArchiveTargets :execrows
-- Archive one target (target_id) or every target of a site (site_id): no
-- more runs; kept with everything it found.
UPDATE scan_targets
SET archived_at = COALESCE(archived_at, now()), enabled = false, next_run_at = NULL,
    updated_at = now(), modified_by = @modified_by
WHERE purge_requested_at IS NULL
  AND (id = sqlc.narg(target_id) OR site_id = sqlc.narg(site_id));

-- name: ArchiveSite :execrows
UPDATE sites SET archived_at = COALESCE(archived_at, now())
WHERE id = @id AND purge_requested_at IS NULL;

-- name: CancelQueuedJobs :execrows
-- Jobs of an archived (only pending ones: running scans finish and keep
-- their results) or purged (every unfinished one) target or site.
WITH cancelled AS (
    UPDATE scan_jobs
    SET status = 'cancelled', completed_at = GREATEST(now(), started_at), timeout_at = NULL, error_message = @reason::text
    WHERE (target_id = sqlc.narg(target_id) OR site_id = sqlc.narg(site_id))
      AND (status = 'pending' OR (@running::boolean AND status IN ('leased', 'running')))
    RETURNING id, lease_token
)
UPDATE scan_job_leases l
SET ended_at = clock_timestamp(), outcome = 'cancelled'
FROM cancelled c
WHERE l.job_id = c.id AND l.lease_token = c.lease_token AND l.ended_at IS NULL;

-- name: QueueTargetPurge :execrows
-- The target leaves the API at once (its name is free again); purge_step
-- deletes its rows in the background.
UPDATE scan_targets
SET purge_requested_at = now(), enabled = false, next_run_at = NULL, name = 'purging-' || id::text,
    updated_at = now(), modified_by = @modified_by
WHERE purge_requested_at IS NULL
  AND (id = sqlc.narg(target_id) OR site_id = sqlc.narg(site_id));

-- name: QueueSitePurge :execrows
UPDATE sites SET purge_requested_at = now(), name = 'purging-' || id::text
WHERE id = @id AND purge_requested_at IS NULL;

-- name: ProfileUsage :one
SELECT (SELECT count(*) FROM scan_targets t WHERE t.profile_id = @profile_id)::bigint AS targets,
       (SELECT count(*) FROM scan_jobs j WHERE j.profile_id = @profile_id)::bigint AS jobs;

-- name: PurgeStep :many
SELECT kind::text AS kind, object_id::uuid AS object_id, deleted::bigint AS deleted, finished::boolean AS finished
FROM purge_step(@batch::int);

-- name: DropOldestArchivedPortScans :one
SELECT COALESCE(drop_oldest_archived_port_scans(@cutoff::timestamptz), '')::text AS dropped;

-- name: RetentionDeleteJobs :one
SELECT scanned::int AS scanned, deleted::bigint AS deleted,
       last_completed::timestamptz AS last_completed, last_id::uuid AS last_id
FROM retention_delete_jobs(@cutoff::timestamptz, @batch::int, @after_completed::timestamptz, @after_id::uuid);

-- name: RetentionDeleteRuns :one
-- Runs created before the cutoff that no job refers to any more, walked
-- in creation order from the cursor.
WITH cand AS (
    SELECT r.id, r.created_at FROM scan_runs r
    WHERE r.created_at < @cutoff::timestamptz
      AND (r.created_at, r.id) > (@after_created::timestamptz, @after_id::uuid)
    ORDER BY r.created_at, r.id
    LIMIT @batch::int
), del AS (
    DELETE FROM scan_runs r USING cand c
    WHERE r.id = c.id AND NOT EXISTS (SELECT 1 FROM scan_jobs j WHERE j.run_id = c.id)
    RETURNING r.id
)
SELECT (SELECT count(*) FROM cand)::int AS scanned,
       (SELECT count(*) FROM del)::bigint AS deleted,
       COALESCE((SELECT c.created_at FROM cand c ORDER BY c.created_at DESC, c.id DESC LIMIT 1), @after_created)::timestamptz AS last_created,
       COALESCE((SELECT c.id FROM cand c ORDER BY c.created_at DESC, c.id DESC LIMIT 1), @after_id)::uuid AS last_id;
