-- name: CommitJob :one
-- The whole merge of a staged job and the job's completion, in one statement
-- (see ingest_commit in sql/migrations/0006_ingest_commit.sql).
SELECT r.outcome::text AS outcome, r.job_site_id::uuid AS job_site_id, r.merged_hosts::bigint AS merged_hosts,
       r.up_hosts::bigint AS up_hosts, r.port_rows::bigint AS port_rows, r.changes::bigint AS changes
FROM ingest_commit(
    @job_id::uuid, @worker_id::text, @lease_token::bigint,
    @scanned_tcp::text, @scanned_udp::text, @stats::jsonb, @run_analyze::boolean, @clear_staging::boolean) AS r;

-- name: ClearStagedHosts :exec
-- Small staging sets are cleared with DELETE: TRUNCATE would force a
-- synchronous commit for the new relation files.
DELETE FROM ingest_hosts;

-- name: ClearStagedPorts :exec
DELETE FROM ingest_ports;

-- name: CommitJobs :many
-- Several small jobs in one transaction, each all or nothing (see
-- ingest_commit_many). Rows are flattened job after job.
SELECT r.idx::integer AS idx, r.outcome::text AS outcome, r.message::text AS message,
       r.job_site_id::uuid AS job_site_id, r.merged_hosts::bigint AS merged_hosts, r.up_hosts::bigint AS up_hosts,
       r.port_rows::bigint AS port_rows, r.changes::bigint AS changes
FROM ingest_commit_many(
    @job_ids::uuid[], @worker_ids::text[], @lease_tokens::bigint[],
    @scanned_tcp::text[], @scanned_udp::text[], @stats::jsonb[], @host_counts::integer[], @port_counts::integer[],
    @h_ip::inet[], @h_status::text[], @h_reason::text[], @h_mac::macaddr[], @h_vendor::text[], @h_hostname::text[],
    @h_os_name::text[], @h_os_family::text[], @h_os_conf::smallint[],
    @p_ip::inet[], @p_protocol::text[], @p_port::integer[], @p_state::text[], @p_reason::text[], @p_name::text[],
    @p_product::text[], @p_version::text[], @p_extra::text[], @p_scripts::jsonb[]) AS r;
