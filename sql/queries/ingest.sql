-- name: CommitJob :one
-- The whole merge and the job's completion, in one statement (see
-- ingest_commit in sql/migrations/0006_ingest_commit.sql). The host and port
-- arrays carry a small stream's rows, staged inside the same transaction;
-- NULL arrays mean the rows were already COPYed into the staging tables.
SELECT r.outcome::text AS outcome, r.job_site_id::uuid AS job_site_id, r.merged_hosts::bigint AS merged_hosts,
       r.up_hosts::bigint AS up_hosts, r.port_rows::bigint AS port_rows, r.changes::bigint AS changes
FROM ingest_commit(
    @job_id::uuid, @worker_id::text, @lease_token::bigint, @now::timestamptz,
    @scanned_tcp::text, @scanned_udp::text, @stats::jsonb, @run_analyze::boolean, @clear_staging::boolean,
    sqlc.narg(h_ip)::inet[], sqlc.narg(h_status)::text[], sqlc.narg(h_reason)::text[],
    sqlc.narg(h_mac)::macaddr[], sqlc.narg(h_vendor)::text[], sqlc.narg(h_hostname)::text[],
    sqlc.narg(h_os_name)::text[], sqlc.narg(h_os_family)::text[], sqlc.narg(h_os_conf)::smallint[],
    sqlc.narg(p_ip)::inet[], sqlc.narg(p_protocol)::text[], sqlc.narg(p_port)::integer[],
    sqlc.narg(p_state)::text[], sqlc.narg(p_reason)::text[], sqlc.narg(p_name)::text[],
    sqlc.narg(p_product)::text[], sqlc.narg(p_version)::text[], sqlc.narg(p_extra)::text[],
    sqlc.narg(p_scripts)::jsonb[]) AS r;

-- name: ClearStagedHosts :exec
-- Small staging sets are cleared with DELETE: TRUNCATE would force a
-- synchronous commit for the new relation files.
DELETE FROM ingest_hosts;

-- name: ClearStagedPorts :exec
DELETE FROM ingest_ports;
