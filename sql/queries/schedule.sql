-- name: LockDueTargets :many
-- Targets whose next run is due, locked so that concurrent schedulers on
-- other controllers skip them instead of creating the same run.
SELECT * FROM scan_targets
WHERE enabled AND scan_interval_seconds IS NOT NULL AND next_run_at <= @now::timestamptz
ORDER BY next_run_at
LIMIT @row_limit
FOR UPDATE SKIP LOCKED;

-- name: ActiveJobsForTarget :one
SELECT count(*)::int FROM scan_jobs
WHERE target_id = @target_id AND status IN ('pending', 'leased', 'running');

-- name: RecordRun :execrows
INSERT INTO scan_runs (target_id, scheduled_for, outcome, reason, jobs, created_by)
VALUES (@target_id, @scheduled_for, @outcome, @reason, @jobs, @created_by)
ON CONFLICT (target_id, scheduled_for) DO NOTHING;

-- name: SetNextRun :exec
UPDATE scan_targets SET next_run_at = @next_run_at WHERE id = @id;

-- name: ListRuns :many
SELECT * FROM scan_runs WHERE target_id = @target_id ORDER BY scheduled_for DESC LIMIT @row_limit;
