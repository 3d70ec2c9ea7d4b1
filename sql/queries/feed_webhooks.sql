-- Change feed retention, per-job host records and imports across targets.

-- name: PruneChangeFeedStep :one
SELECT prune_change_feed_step(@cutoff::timestamptz, @batch::int)::bigint AS deleted;

-- name: JobHasHostRecords :one
-- Whether ingest_commit recorded the job's hosts in job_hosts (jobs
-- committed before migration 0018 have none).
SELECT EXISTS (SELECT 1 FROM job_hosts WHERE job_id = @job_id)::boolean;

-- name: NmapXMLRecordedJobHosts :many
-- One page of what a job reported of its hosts, in address order.
SELECT jh.ip_address, jh.hostname, jh.mac_address, jh.vendor, jh.os_name, jh.os_confidence, jh.status, jh.reason
FROM job_hosts jh
WHERE jh.job_id = @job_id
  AND jh.ip_address > @after_ip::inet
ORDER BY jh.ip_address
LIMIT @row_limit;

-- name: SiteImportTargets :many
-- The targets an import without a target may land in: the site's, neither
-- archived nor being purged, most specific network first (an address in
-- several goes to the narrowest), then oldest.
SELECT * FROM scan_targets
WHERE site_id = @site_id AND archived_at IS NULL AND purge_requested_at IS NULL
ORDER BY masklen(network) DESC, created_at, id;
