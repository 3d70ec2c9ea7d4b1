-- name: NotifyJobsAvailable :exec
SELECT pg_notify('scanorama_jobs', @site_id::text);

-- name: GetJob :one
SELECT sqlc.embed(j), s.name AS site_name, p.name AS profile_name
FROM scan_jobs j
JOIN sites s ON s.id = j.site_id
JOIN scan_profiles p ON p.id = j.profile_id
WHERE j.id = @id;

-- name: GetJobsByIDs :many
-- The jobs a call just created, read back in one statement (ScanNow of a
-- 512-shard target read them one round trip each: 2.5 s under load).
SELECT sqlc.embed(j), s.name AS site_name, p.name AS profile_name
FROM scan_jobs j
JOIN sites s ON s.id = j.site_id
JOIN scan_profiles p ON p.id = j.profile_id
WHERE j.id = ANY (@ids::uuid[]);

-- name: ListJobs :many
SELECT sqlc.embed(j), s.name AS site_name, p.name AS profile_name
FROM scan_jobs j
JOIN sites s ON s.id = j.site_id
JOIN scan_profiles p ON p.id = j.profile_id
WHERE (sqlc.narg(status)::text IS NULL OR j.status = sqlc.narg(status))
  AND (sqlc.narg(target_id)::uuid IS NULL OR j.target_id = sqlc.narg(target_id))
  AND (sqlc.narg(site_id)::uuid IS NULL OR j.site_id = sqlc.narg(site_id))
  AND (sqlc.narg(created_after)::timestamptz IS NULL OR j.created_at >= sqlc.narg(created_after))
  AND (sqlc.narg(created_before)::timestamptz IS NULL OR j.created_at < sqlc.narg(created_before))
  AND (j.created_at, j.id) < (@before_created::timestamptz, @before_id::uuid)
ORDER BY j.created_at DESC, j.id DESC
LIMIT @row_limit;

-- name: AcquireJob :one
-- One statement: pick the oldest eligible pending job of the agent's site
-- whose network lies inside the agent's scope and whose needs the agent can
-- meet, skip rows other acquirers hold, lease it with a fresh fencing token
-- and record the lease.
WITH candidate AS (
    SELECT c.id
    FROM scan_jobs c
    WHERE c.status = 'pending'
      AND c.site_id = @site_id
      AND c.scheduled_at <= now()
      AND c.attempt < c.max_attempts
      AND c.network <<= ANY (@scope::cidr[])
      AND (NOT c.requires_raw OR @raw_sockets::boolean)
      -- Authoritative drain check: the caller's view of the agent may be cached.
      AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = CAST(@worker_id::text AS uuid) AND a.state IN ('draining', 'revoked', 'pending_approval'))
      -- Emergency stop (PauseScanning), checked here so every controller obeys at once.
      -- Keyed on the parameter, not on c.site_id (the same value): uncorrelated,
      -- it is one InitPlan run once per statement. Correlated, the planner
      -- made it an anti join whose estimate (an empty, never analyzed
      -- scan_pauses is assumed to hold ~700 rows) left "1 candidate", so it
      -- read every row of scan_jobs and sorted them instead of walking
      -- scan_jobs_pending in order for the first row: 365 buffers and most
      -- of the 6.6 ms a lease took at 2,000 jobs, growing with the table.
      AND NOT EXISTS (SELECT 1 FROM scan_pauses sp WHERE sp.site_id IS NULL OR sp.site_id = @site_id)
    ORDER BY c.priority DESC, c.scheduled_at, c.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE scan_jobs j
    SET status = 'leased',
        worker_id = @worker_id::text,
        attempt = j.attempt + 1,
        lease_token = j.lease_token + 1,
        timeout_at = now() + make_interval(secs => @ttl_seconds::float8),
        progress_percent = 0,
        started_at = now(),
        error_message = NULL,
        -- The rules current at lease time: exclusions and ignored hosts
        -- added while the job was queued apply too. The job's own
        -- (creation-time) exclusions stay: shards and remainders are carved
        -- out of their network by them. Ingest re-checks results against
        -- this set.
        exclusions = ARRAY(
            SELECT x.n FROM unnest(j.exclusions) AS x (n)
            UNION
            SELECT e.network FROM scan_exclusions e
            WHERE (e.target_id = j.target_id
                   OR (e.target_id IS NULL AND e.site_id = j.site_id)
                   OR (e.target_id IS NULL AND e.site_id IS NULL))
              AND e.network && j.network
            UNION
            SELECT set_masklen(h.ip_address, CASE WHEN family(h.ip_address) = 4 THEN 32 ELSE 128 END)::cidr
            FROM hosts h
            WHERE h.site_id = j.site_id AND h.ignore_scanning AND h.ip_address <<= j.network
            ORDER BY 1)
    FROM candidate
    WHERE j.id = candidate.id
    RETURNING j.*
), recorded AS (
    INSERT INTO scan_job_leases (job_id, lease_token, worker_id)
    SELECT leased.id, leased.lease_token, leased.worker_id FROM leased
)
SELECT leased.*, s.name AS site_name FROM leased JOIN sites s ON s.id = leased.site_id;

-- name: RenewLease :one
-- A heartbeat: only the current lease holder may extend it; progress never goes back.
UPDATE scan_jobs
SET timeout_at = now() + make_interval(secs => @ttl_seconds::float8),
    progress_percent = GREATEST(progress_percent, LEAST(@progress_percent::int, 99)),
    status = 'running'
WHERE id = @id AND worker_id = @worker_id::text AND lease_token = @lease_token
  AND status IN ('leased', 'running')
RETURNING timeout_at, progress_percent, site_id;

-- name: GetJobLeaseState :one
SELECT id, status, worker_id, lease_token, site_id, network, exclusions, ports, started_at, partial
FROM scan_jobs WHERE id = @id;

-- name: LockJobForCommit :one
SELECT id, status, worker_id, lease_token, site_id, network, exclusions, ports, started_at
FROM scan_jobs WHERE id = @id
FOR UPDATE;

-- name: CompleteJob :execrows
UPDATE scan_jobs
SET status = 'completed', completed_at = @completed_at, progress_percent = 100, timeout_at = NULL,
    scan_stats = @scan_stats, error_message = NULL
WHERE id = @id AND worker_id = @worker_id::text AND lease_token = @lease_token AND status IN ('leased', 'running');

-- name: FailJob :one
-- The lease holder gives up: retry while attempts remain (and the error is retryable), else fail.
UPDATE scan_jobs
SET status = CASE WHEN @retryable::boolean AND attempt < max_attempts THEN 'pending' ELSE 'failed' END,
    completed_at = CASE WHEN @retryable::boolean AND attempt < max_attempts THEN NULL ELSE now() END,
    started_at = CASE WHEN @retryable::boolean AND attempt < max_attempts THEN NULL ELSE started_at END,
    worker_id = CASE WHEN @retryable::boolean AND attempt < max_attempts THEN NULL ELSE worker_id END,
    timeout_at = NULL,
    progress_percent = CASE WHEN @retryable::boolean AND attempt < max_attempts THEN 0 ELSE progress_percent END,
    error_message = @error_message::text
WHERE id = @id AND worker_id = @worker_id::text AND lease_token = @lease_token AND status IN ('leased', 'running')
RETURNING status, site_id;

-- name: ReleaseJob :execrows
-- Clean shutdown: give the job back without using up the attempt.
UPDATE scan_jobs
SET status = 'pending', worker_id = NULL, timeout_at = NULL, started_at = NULL, progress_percent = 0,
    attempt = GREATEST(attempt - 1, 0)
WHERE id = @id AND worker_id = @worker_id::text AND lease_token = @lease_token AND status IN ('leased', 'running');

-- name: EndLease :exec
UPDATE scan_job_leases SET ended_at = clock_timestamp(), outcome = @outcome
WHERE job_id = @job_id AND lease_token = @lease_token AND ended_at IS NULL;

-- name: CancelJob :one
UPDATE scan_jobs
SET status = 'cancelled', completed_at = now(), timeout_at = NULL,
    error_message = @reason::text
WHERE id = @id AND status IN ('pending', 'leased', 'running')
RETURNING *;

-- name: ReapExpiredLeases :many
-- Expired leases go back to pending, or to failed once attempts are used up.
-- grace_seconds spares leases that expired only recently (see Reaper);
-- batch_size bounds one statement's locks and WAL (Reaper.Batch).
WITH expired AS (
    SELECT e.id
    FROM scan_jobs e
    WHERE e.status IN ('leased', 'running')
      AND e.timeout_at < now() - make_interval(secs => @grace_seconds::float8)
    ORDER BY e.timeout_at
    LIMIT @batch_size::int
    FOR UPDATE SKIP LOCKED
), reaped AS (
    UPDATE scan_jobs j
    SET status = CASE WHEN j.attempt >= j.max_attempts THEN 'failed' ELSE 'pending' END,
        completed_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
        started_at = CASE WHEN j.attempt >= j.max_attempts THEN j.started_at END,
        worker_id = CASE WHEN j.attempt >= j.max_attempts THEN j.worker_id END,
        timeout_at = NULL,
        progress_percent = CASE WHEN j.attempt >= j.max_attempts THEN j.progress_percent ELSE 0 END,
        error_message = CASE
            WHEN j.attempt >= j.max_attempts THEN
                format('lease of worker %s expired on attempt %s of %s; giving up', j.worker_id, j.attempt, j.max_attempts)
            ELSE format('lease of worker %s expired on attempt %s of %s; retrying', j.worker_id, j.attempt, j.max_attempts)
        END
    FROM expired
    WHERE j.id = expired.id
    RETURNING j.id, j.status, j.lease_token, j.site_id, j.error_message
), ended AS (
    UPDATE scan_job_leases l SET ended_at = clock_timestamp(), outcome = 'expired'
    FROM reaped
    WHERE l.job_id = reaped.id AND l.lease_token = reaped.lease_token AND l.ended_at IS NULL
)
SELECT id, status, site_id, error_message FROM reaped;

-- name: NextLeaseExpiry :one
SELECT min(timeout_at)::timestamptz FROM scan_jobs WHERE status IN ('leased', 'running');
