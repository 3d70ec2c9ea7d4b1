-- name: TickLeaseClock :one
-- One reaper tick of the lease clock, run in a transaction: lock the clock
-- row (a second controller waits here and then sees no gap), and when no
-- controller stamped it for longer than outage_seconds, move every held
-- lease's timeout on by the gap, and to at least now + fresh_seconds: like
-- Nomad after a leader failover, every holder gets a fresh span to reconnect
-- (its connection backoff grew during the outage). Returns the gap in
-- seconds (0 without an outage) and how many leases were extended. Fencing
-- is untouched: only timeouts of leases still held move; tokens and holders
-- stay.
WITH clock AS (
    SELECT c.last_alive FROM lease_clock c WHERE c.id FOR UPDATE
), gap AS (
    SELECT CASE
        WHEN clock.last_alive IS NOT NULL
         AND now() - clock.last_alive > make_interval(secs => @outage_seconds::float8)
        THEN now() - clock.last_alive
        ELSE interval '0'
    END AS d
    FROM clock
), extended AS (
    UPDATE scan_jobs j
    SET timeout_at = GREATEST(j.timeout_at + gap.d, now() + make_interval(secs => @fresh_seconds::float8))
    FROM gap
    WHERE gap.d > interval '0' AND j.status IN ('leased', 'running')
    RETURNING j.id
), stamped AS (
    UPDATE lease_clock SET last_alive = now() WHERE id
)
SELECT extract(epoch FROM gap.d)::float8 AS gap_seconds,
       (SELECT count(*) FROM extended)::bigint AS extended
FROM gap;

-- name: PauseScanning :one
INSERT INTO scan_pauses (site_id, cancel_running, reason, paused_by)
VALUES (sqlc.narg(site_id), @cancel_running, @reason, @paused_by)
ON CONFLICT ON CONSTRAINT scan_pauses_site DO UPDATE
SET cancel_running = EXCLUDED.cancel_running, reason = EXCLUDED.reason,
    paused_at = now(), paused_by = EXCLUDED.paused_by
RETURNING *;

-- name: ResumeScanning :execrows
DELETE FROM scan_pauses WHERE site_id IS NOT DISTINCT FROM sqlc.narg(site_id);

-- name: ListPauses :many
SELECT p.*, COALESCE(s.name, '')::text AS site_name
FROM scan_pauses p LEFT JOIN sites s ON s.id = p.site_id
ORDER BY s.name NULLS FIRST;

-- name: CancelRunningJobs :many
-- An emergency stop with cancel_running: every held lease in the site (or
-- everywhere) is cancelled and its lease ended; agents learn it at their
-- next heartbeat.
WITH cancelled AS (
    UPDATE scan_jobs
    SET status = 'cancelled', completed_at = now(), timeout_at = NULL,
        error_message = @reason::text
    WHERE status IN ('leased', 'running')
      AND (sqlc.narg(site_id)::uuid IS NULL OR site_id = sqlc.narg(site_id))
    RETURNING id, site_id, lease_token, progress_percent
), ended AS (
    UPDATE scan_job_leases l SET ended_at = clock_timestamp(), outcome = 'cancelled'
    FROM cancelled c
    WHERE l.job_id = c.id AND l.lease_token = c.lease_token AND l.ended_at IS NULL
)
SELECT id, site_id, progress_percent FROM cancelled;

-- name: LockInterruptedJobs :many
-- Jobs of scheduled runs with a scan window that the run's deadline
-- cancelled (cancelled_by_deadline, set by CancelOverdueJobs) and that are settled:
-- their holder committed the hosts it finished (partial), nobody held them,
-- or the holder stayed silent since settled_before. Only once every job of
-- the run that was due has ended, so moving the run's deadline to the next
-- window cannot let a job of this window run on.
SELECT sqlc.embed(j), sqlc.embed(t)
FROM scan_jobs j
JOIN scan_runs r ON r.id = j.run_id
JOIN scan_targets t ON t.id = j.target_id
WHERE j.status = 'cancelled' AND NOT j.carried_over
  AND j.cancelled_by_deadline AND r.origin = 'schedule'
  AND t.window_days IS NOT NULL
  AND (j.partial OR j.worker_id IS NULL OR j.completed_at < @settled_before::timestamptz)
  AND NOT EXISTS (SELECT 1 FROM scan_jobs x
                  WHERE x.run_id = j.run_id AND x.status IN ('pending', 'leased', 'running')
                    AND x.scheduled_at <= @now::timestamptz)
ORDER BY j.completed_at, j.id
LIMIT @row_limit
FOR UPDATE OF j SKIP LOCKED;

-- name: InsertRemainderJob :one
-- The rest of an interrupted job: same target, network, options and run,
-- with the hosts already finished excluded, leasable from scheduled_at.
INSERT INTO scan_jobs (target_id, site_id, profile_id, network, ports, exclusions, options, requires_raw,
                       max_attempts, priority, created_by, execution_context, run_id, scheduled_at, remainder_of)
SELECT j.target_id, j.site_id, j.profile_id, j.network, j.ports, @exclusions::cidr[], j.options, j.requires_raw,
       j.max_attempts, j.priority, 'scheduler', j.execution_context, j.run_id, @scheduled_at::timestamptz, j.id
FROM scan_jobs j WHERE j.id = @id
RETURNING id;

-- name: MarkCarriedOver :exec
UPDATE scan_jobs SET carried_over = true WHERE id = @id;

-- name: ExtendRunDeadline :exec
-- A run with a remainder job lives on until the window the remainder runs in
-- closes; the reason its jobs get then names that close.
UPDATE scan_runs
SET cancel_at = GREATEST(cancel_at, @cancel_at::timestamptz),
    cancel_reason = CASE WHEN @cancel_at::timestamptz > cancel_at THEN @cancel_reason::text ELSE cancel_reason END,
    jobs = jobs + 1, updated_at = now()
WHERE id = @id;

-- name: RunJobsProgress :many
-- Every job of a run, for its progress across windows.
SELECT network, exclusions, status, partial, hosts_finished, remainder_of
FROM scan_jobs WHERE run_id = @run_id;
