-- name: InsertImportJob :one
-- An import job, born leased to the import pseudo-worker with lease token
-- 1; ingest_commit completes it in the same transaction.
INSERT INTO scan_jobs (kind, target_id, site_id, profile_id, network, ports, exclusions, options, status,
                       attempt, max_attempts, worker_id, lease_token, timeout_at, started_at, created_by)
VALUES ('import', @target_id, @site_id, @profile_id, @network, '', @exclusions, '{}', 'running',
        1, 1, @worker_id, 1, now() + interval '1 hour', now(), @created_by)
RETURNING id;

-- name: InsertImportLease :exec
INSERT INTO scan_job_leases (job_id, lease_token, worker_id) VALUES (@job_id, 1, @worker_id);

-- name: NmapXMLJob :one
-- What an nmap XML export of one job says about the run.
SELECT j.id, j.kind, j.site_id, j.network, j.ports, j.options, j.scan_stats, j.started_at, j.completed_at,
       j.created_at, p.scan_type
FROM scan_jobs j
JOIN scan_profiles p ON p.id = j.profile_id
WHERE j.id = @id;

-- name: NmapXMLJobHosts :many
-- One page of the hosts a job reported, in address order: every host with
-- port results in the job, and hosts whose last word came from the job.
SELECT h.ip_address, h.hostname, h.mac_address, h.vendor, h.os_name, h.os_confidence,
       CASE WHEN EXISTS (SELECT 1 FROM port_scans ps WHERE ps.job_id = @job_id AND ps.host_id = h.id)
            THEN 'up' ELSE h.status END::text AS status
FROM hosts h
WHERE h.site_id = @site_id
  AND h.ip_address > @after_ip::inet
  AND (h.last_job_id = @job_id
       OR EXISTS (SELECT 1 FROM port_scans ps WHERE ps.job_id = @job_id AND ps.host_id = h.id))
ORDER BY h.ip_address
LIMIT @row_limit;

-- name: NmapXMLSiteHosts :many
-- One page of a site's known hosts (up or down now), in address order.
SELECT h.ip_address, h.hostname, h.mac_address, h.vendor, h.os_name, h.os_confidence, h.status
FROM hosts h
WHERE h.site_id = @site_id
  AND h.status IN ('up', 'down')
  AND h.ip_address > @after_ip::inet
ORDER BY h.ip_address
LIMIT @row_limit;

-- name: NmapXMLSitePorts :many
-- One page of a site's current port states, in address order, with the
-- reason nmap gave in the scan that last saw each port.
SELECT h.ip_address, s.port, s.protocol, s.state,
       COALESCE((SELECT ps.reason FROM port_scans ps
                 WHERE ps.job_id = s.last_job_id AND ps.host_id = s.host_id
                   AND ps.protocol = s.protocol AND ps.port = s.port
                 LIMIT 1), '')::text AS reason,
       s.service_name, s.service_product, s.service_version, s.service_extra_info
FROM services s
JOIN hosts h ON h.id = s.host_id
WHERE h.site_id = @site_id
  AND (h.ip_address, s.protocol, s.port) > (@after_ip::inet, @after_protocol::text, @after_port::int)
ORDER BY h.ip_address, s.protocol, s.port
LIMIT @row_limit;
