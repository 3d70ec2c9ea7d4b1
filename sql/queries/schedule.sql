-- name: LockDueTargets :many
-- Targets whose next run is due, locked so that concurrent schedulers on
-- other controllers skip them instead of creating the same run.
SELECT * FROM scan_targets
WHERE enabled AND (scan_interval_seconds IS NOT NULL OR cron_expr IS NOT NULL) AND next_run_at <= @now::timestamptz
ORDER BY next_run_at
LIMIT @row_limit
FOR UPDATE SKIP LOCKED;

-- name: ActiveRunWork :one
-- What is still going for a target: unfinished jobs, and runs waiting for
-- their discovery phase to end (which may have no unfinished job for a moment).
SELECT (SELECT count(*) FROM scan_jobs j
        WHERE j.target_id = @target_id AND j.status IN ('pending', 'leased', 'running'))::int AS active_jobs,
       (SELECT count(*) FROM scan_runs r
        WHERE r.target_id = @target_id AND r.phase = 'discovery')::int AS discovering_runs;

-- name: InsertRun :one
-- A scheduled run is recorded once per (target, scheduled_for): a second
-- insert returns no row. ScanNow runs are not unique by time.
INSERT INTO scan_runs (target_id, scheduled_for, origin, outcome, reason, phase, cancel_at, cancel_reason, created_by)
VALUES (@target_id, @scheduled_for, @origin, @outcome, @reason, @phase, @cancel_at, @cancel_reason, @created_by)
ON CONFLICT (target_id, scheduled_for) WHERE origin = 'schedule' DO NOTHING
RETURNING *;

-- name: SetRunPhase :exec
UPDATE scan_runs
SET phase = @phase, jobs = jobs + @added_jobs::int, reason = @reason, updated_at = now()
WHERE id = @id;

-- name: InsertRunJobs :many
-- All jobs of one run in one statement, one row per element of @networks
-- with that element's exclusions (a cidr[] literal each: arrays of arrays
-- must be rectangular), returned in @networks' order. One round trip
-- whatever the shard count: row by row, a 512-shard ScanNow took 2.4 s on
-- a loaded controller, its jobs invisible until the last one was written.
INSERT INTO scan_jobs (target_id, site_id, profile_id, network, ports, exclusions, options, requires_raw,
                       max_attempts, priority, created_by, execution_context, run_id)
SELECT @target_id::uuid, @site_id::uuid, @profile_id::uuid, n.network, @ports::text, x.exclusions::cidr[],
       @options::jsonb, @requires_raw::boolean, @max_attempts::integer, @priority::smallint, @created_by::text,
       sqlc.narg(execution_context)::jsonb, sqlc.narg(run_id)::uuid
FROM unnest(@networks::cidr[]) WITH ORDINALITY AS n (network, ord)
JOIN unnest(@exclusions::text[]) WITH ORDINALITY AS x (exclusions, ord) USING (ord)
ORDER BY n.ord
RETURNING *;

-- name: LockRunsAwaitingPortScan :many
-- Discovery-first runs whose discovery jobs are all final, locked so that
-- one controller alone creates their port-scan jobs.
SELECT r.* FROM scan_runs r
WHERE r.phase = 'discovery'
  AND NOT EXISTS (SELECT 1 FROM scan_jobs j WHERE j.run_id = r.id AND j.status IN ('pending', 'leased', 'running'))
ORDER BY r.created_at
LIMIT @row_limit
FOR UPDATE OF r SKIP LOCKED;

-- name: RunJobCounts :one
SELECT count(*) FILTER (WHERE status = 'completed')::int AS completed,
       count(*) FILTER (WHERE status = 'failed')::int AS failed,
       count(*) FILTER (WHERE status = 'cancelled')::int AS cancelled,
       count(*)::int AS total
FROM scan_jobs WHERE run_id = @run_id;

-- name: RunUpHosts :many
-- Hosts up now inside what a run's completed jobs covered. A discovery
-- commit marks every silent host of its network down, so after it "up"
-- inside that network means "answered this discovery" (or a later scan).
SELECT DISTINCT h.ip_address
FROM hosts h
JOIN scan_jobs j ON j.run_id = @run_id AND j.status = 'completed'
                AND h.ip_address <<= j.network AND NOT (h.ip_address <<= ANY (j.exclusions))
WHERE h.site_id = @site_id AND h.status = 'up' AND NOT h.ignore_scanning
ORDER BY h.ip_address;

-- name: CancelOverdueJobs :many
-- Unfinished jobs of runs past their deadline (scan window closed,
-- max_duration elapsed) are cancelled like CancelJob does: final at once,
-- the lease ended as 'cancelled' (worker_id and lease_token stay, so the
-- holder learns of it at its next heartbeat). cancelled_by_deadline marks
-- them for the carry-over step (scheduler.CarryOver).
WITH overdue AS (
    SELECT j.id, r.cancel_reason
    FROM scan_jobs j
    JOIN scan_runs r ON r.id = j.run_id
    WHERE j.status IN ('pending', 'leased', 'running')
      AND r.cancel_at <= @now::timestamptz
    ORDER BY r.cancel_at, j.id
    LIMIT @row_limit
    FOR UPDATE OF j SKIP LOCKED
), cancelled AS (
    UPDATE scan_jobs j
    SET status = 'cancelled', completed_at = now(), timeout_at = NULL, error_message = overdue.cancel_reason,
        cancelled_by_deadline = true
    FROM overdue
    WHERE j.id = overdue.id
    RETURNING j.id, j.site_id, j.lease_token, j.progress_percent, j.error_message
), ended AS (
    UPDATE scan_job_leases l SET ended_at = clock_timestamp(), outcome = 'cancelled'
    FROM cancelled c
    WHERE l.job_id = c.id AND l.lease_token = c.lease_token AND l.ended_at IS NULL
)
SELECT id, site_id, progress_percent, error_message FROM cancelled;

-- name: SetNextRun :exec
UPDATE scan_targets SET next_run_at = @next_run_at WHERE id = @id;

-- name: ListRuns :many
SELECT * FROM scan_runs WHERE target_id = @target_id ORDER BY scheduled_for DESC LIMIT @row_limit;
