-- 0007_scale: drop what no query reads but every write pays for, at a
-- million hosts and twenty million port_scans rows (issue 12).

-- host_summary was refreshed (a full join of hosts and services) after
-- results committed, and nothing read it: GetStats counts from the tables.
DROP MATERIALIZED VIEW IF EXISTS host_summary;

-- No query filters port_scans by open state per host (a host's ports are
-- read from services, exports by job); every ingested open port paid an
-- index entry in its month's partition.
DROP INDEX IF EXISTS port_scans_open;

-- Targets are read by id, by site and by schedule, never by network
-- containment (exclusions are, and keep their own indexes).
DROP INDEX IF EXISTS scan_targets_network_gist;
