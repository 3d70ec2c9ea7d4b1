-- Data of a Scanorama database at an older release (see README.md). Fixed
-- ids and addresses so the upgrade tests can check every row survived.
INSERT INTO sites (id, name, description) VALUES ('00000000-0000-0000-0000-0000000000a1', 'lab', 'upgraded site');
INSERT INTO scan_targets (id, site_id, name, network, profile_id, scan_interval_seconds, next_run_at)
  SELECT '00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'web', '10.99.7.0/24', id, 3600,
         now() + interval '1 hour'
  FROM scan_profiles WHERE name = 'quick';
INSERT INTO scan_target_ports (target_id, protocol, port_start, port_end)
  VALUES ('00000000-0000-0000-0000-0000000000b1', 'tcp', 22, 22), ('00000000-0000-0000-0000-0000000000b1', 'tcp', 80, 80);
INSERT INTO scan_runs (id, target_id, scheduled_for, outcome, jobs, created_by)
  VALUES ('00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000b1', now() - interval '1 hour', 'created', 1, 'scheduler');
INSERT INTO scan_jobs (id, target_id, site_id, profile_id, network, ports, options, status, attempt, worker_id, lease_token,
                       started_at, completed_at, progress_percent, scan_stats, run_id)
  SELECT '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1',
         id, '10.99.7.0/24', '22,80', '{"scan_type": "connect"}', 'completed', 1, 'agent-1', 1,
         now() - interval '50 minutes', now() - interval '49 minutes', 100, '{"hosts_up": 2}', '00000000-0000-0000-0000-0000000000e1'
  FROM scan_profiles WHERE name = 'quick';
INSERT INTO scan_job_leases (job_id, lease_token, worker_id, leased_at, ended_at, outcome)
  VALUES ('00000000-0000-0000-0000-0000000000c1', 1, 'agent-1', now() - interval '50 minutes', now() - interval '49 minutes', 'completed');
INSERT INTO hosts (id, site_id, ip_address, hostname, status, discovery_count, first_seen, last_seen, last_job_id)
  VALUES ('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-0000000000a1', '10.99.7.10', 'web1', 'up', 1,
          now() - interval '49 minutes', now() - interval '49 minutes', '00000000-0000-0000-0000-0000000000c1'),
         ('00000000-0000-0000-0000-0000000000d2', '00000000-0000-0000-0000-0000000000a1', '10.99.7.11', 'web2', 'up', 1,
          now() - interval '49 minutes', now() - interval '49 minutes', '00000000-0000-0000-0000-0000000000c1');
INSERT INTO port_scans (job_id, host_id, port, protocol, state, service_name, scanned_at)
  SELECT '00000000-0000-0000-0000-0000000000c1', h, p, 'tcp', 'open', CASE p WHEN 22 THEN 'ssh' ELSE 'http' END,
         date_trunc('second', now() - interval '49 minutes')
  FROM unnest(ARRAY['00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-0000000000d2']::uuid[]) h,
       unnest(ARRAY[22, 80]) p;
INSERT INTO services (host_id, port, protocol, state, service_name, first_seen, last_seen, last_job_id)
  SELECT host_id, port, protocol, state, service_name, scanned_at, scanned_at, job_id FROM port_scans;
INSERT INTO host_history (host_id, site_id, job_id, event, port, protocol, old_value, new_value, changed_at, changed_by, change_reason)
  SELECT id, site_id, last_job_id, 'host_discovered', NULL, NULL, NULL, 'up', first_seen, 'agent:agent-1', 'scan job' FROM hosts
  UNION ALL
  SELECT host_id, '00000000-0000-0000-0000-0000000000a1', job_id, 'port_opened', port, protocol, NULL, 'open', scanned_at,
         'agent:agent-1', 'scan job' FROM port_scans;
REFRESH MATERIALIZED VIEW host_summary;
