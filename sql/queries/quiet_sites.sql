-- name: SitesWithPendingJobs :many
-- The sites where a long-poll could find work now or within the horizon
-- (events.Hub.Quiet): long-polls of the other sites park without looking.
-- One index probe per site (scan_jobs_pending), looked up every recheck.
-- Scopes, capabilities, pauses and drains are left out on purpose: they
-- can only make a site look busy, never quiet while it has work.
SELECT s.id::text AS site_id
FROM sites s
WHERE EXISTS (SELECT 1 FROM scan_jobs j
              WHERE j.site_id = s.id AND j.status = 'pending' AND j.attempt < j.max_attempts
                AND j.scheduled_at <= now() + make_interval(secs => @horizon_seconds::float8));
