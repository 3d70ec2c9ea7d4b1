-- name: GetHost :one
SELECT sqlc.embed(h), s.name AS site_name
FROM hosts h
JOIN sites s ON s.id = h.site_id
WHERE h.site_id = @site_id AND h.ip_address = @ip_address;

-- name: ListHostServices :many
SELECT * FROM services WHERE host_id = @host_id ORDER BY protocol, port;

-- name: ListHosts :many
-- h.open_ports is kept by triggers on services (migration 0021): counting
-- here cost a services_pkey lookup per listed host.
SELECT sqlc.embed(h), s.name AS site_name
       -- scanorama:custom-plan (controller/scope): with every filter
       -- optional, a cached generic plan cannot bound the index scan by
       -- site or network and reads the whole table (2.1 s at 1M hosts).
FROM hosts h
JOIN sites s ON s.id = h.site_id
WHERE (sqlc.narg(site_id)::uuid IS NULL OR h.site_id = sqlc.narg(site_id))
  -- The bounds repeat what PostgreSQL derives from <<= by itself, because
  -- under row-level security (the admin role) it does not: <<= is not
  -- leakproof, so it may only filter rows after the policy, never bound an
  -- index scan; >= and <= are leakproof and bound the hosts_site_ip scan to
  -- the network (a /120 of a 311,829-host site: 1 ms instead of 740).
  AND (sqlc.narg(network)::cidr IS NULL OR (h.ip_address <<= sqlc.narg(network)
       AND h.ip_address >= network(sqlc.narg(network)::cidr)
       AND h.ip_address <= set_masklen(broadcast(sqlc.narg(network)::cidr), -1)))
  AND (sqlc.narg(status)::text IS NULL OR h.status = sqlc.narg(status))
  AND (sqlc.narg(os_family)::text IS NULL OR h.os_family = sqlc.narg(os_family))
  AND (sqlc.narg(seen_after)::timestamptz IS NULL OR h.last_seen >= sqlc.narg(seen_after))
  AND (sqlc.narg(seen_before)::timestamptz IS NULL OR h.last_seen < sqlc.narg(seen_before))
  AND (sqlc.narg(open_port)::int IS NULL OR EXISTS (
        SELECT 1 FROM services sv WHERE sv.host_id = h.id AND sv.state = 'open' AND sv.port = sqlc.narg(open_port)))
  AND (sqlc.narg(service_name)::text IS NULL OR EXISTS (
        SELECT 1 FROM services sv WHERE sv.host_id = h.id AND sv.state = 'open' AND sv.service_name = sqlc.narg(service_name)))
  -- Keyset paging on (site_id, ip_address), the hosts_site_ip index: a page
  -- costs the same whatever the page and however many hosts a site has
  -- (ordering by site name would sort the whole site on every page).
  AND (h.site_id, h.ip_address) > (@after_site_id::uuid, @after_ip::inet)
ORDER BY h.site_id, h.ip_address
LIMIT @row_limit;

-- name: ListHostChanges :many
SELECT sqlc.embed(hh), s.name AS site_name, h.ip_address
FROM host_history hh
JOIN hosts h ON h.id = hh.host_id
JOIN sites s ON s.id = hh.site_id
WHERE (sqlc.narg(site_id)::uuid IS NULL OR hh.site_id = sqlc.narg(site_id))
  AND (sqlc.narg(host_id)::uuid IS NULL OR hh.host_id = sqlc.narg(host_id))
  AND (sqlc.narg(since)::timestamptz IS NULL OR hh.changed_at >= sqlc.narg(since))
  AND (sqlc.narg(until)::timestamptz IS NULL OR hh.changed_at < sqlc.narg(until))
  -- Newest first, keyset-paged on (changed_at, id): the order of the
  -- host_history_host_time, _site_time and _time indexes, so a page of one
  -- host's or one small site's changes never walks other sites' history.
  AND (hh.changed_at, hh.id) < (@before_at::timestamptz, @before_id::bigint)
ORDER BY hh.changed_at DESC, hh.id DESC
LIMIT @row_limit;

-- name: EnsurePortScanPartitions :one
SELECT ensure_port_scan_partitions(@from_ts::timestamptz, @months::int)::int;

-- name: ListJobHostChanges :many
SELECT sqlc.embed(hh), s.name AS site_name, h.ip_address
FROM host_history hh
JOIN hosts h ON h.id = hh.host_id
JOIN sites s ON s.id = hh.site_id
WHERE hh.job_id = @job_id
ORDER BY hh.id
LIMIT @row_limit;

-- name: SetHostIgnored :one
UPDATE hosts SET ignore_scanning = @ignore_scanning
WHERE site_id = @site_id AND ip_address = @ip_address
RETURNING *;

-- name: ExportJobResults :many
-- One page of a job's port results, in address order.
SELECT h.ip_address, h.hostname, h.mac_address, ps.port, ps.protocol, ps.state, ps.reason, ps.service_name,
       ps.service_product, ps.service_version, ps.service_extra_info, ps.scanned_at AS seen_at
FROM port_scans ps
JOIN hosts h ON h.id = ps.host_id
WHERE ps.job_id = @job_id
  AND (h.ip_address, ps.protocol, ps.port) > (@after_ip::inet, @after_protocol::text, @after_port::int)
ORDER BY h.ip_address, ps.protocol, ps.port
LIMIT @row_limit;

-- name: ExportSiteResults :many
-- One page of a site's current port states, in address order.
SELECT h.ip_address, h.hostname, h.mac_address, s.port, s.protocol, s.state, ''::text AS reason, s.service_name,
       s.service_product, s.service_version, s.service_extra_info, s.last_seen AS seen_at
FROM services s
JOIN hosts h ON h.id = s.host_id
WHERE h.site_id = @site_id
  AND (h.ip_address, s.protocol, s.port) > (@after_ip::inet, @after_protocol::text, @after_port::int)
ORDER BY h.ip_address, s.protocol, s.port
LIMIT @row_limit;
