-- Interrupted jobs are recognised by a column, not by text: a job the
-- scheduler cancelled because its run's deadline passed (the scan window
-- closed, or max_duration elapsed) has cancelled_by_deadline set. Before,
-- the carry-over step compared the job's error_message with the run's
-- cancel_reason, which an operator's reason could match by accident and
-- which tied the message's wording to the bookkeeping.
ALTER TABLE scan_jobs ADD COLUMN cancelled_by_deadline boolean NOT NULL DEFAULT false;

-- Jobs the deadline cancelled before this column existed.
UPDATE scan_jobs j
SET cancelled_by_deadline = true
FROM scan_runs r
WHERE r.id = j.run_id AND j.status = 'cancelled'
  AND r.cancel_reason IS NOT NULL AND j.error_message = r.cancel_reason;

-- archived_port_scan_rows counts the rows of the archived port_scans months
-- (see archived_port_scans in 0008) written by the given jobs: what a
-- delete refusal must name besides the live rows. The archive schema is
-- not granted to scanorama_admin_api, so the function runs as its owner;
-- the caller picks the jobs under its own row-level security (the job ids
-- come from a scan_jobs query in the API's transaction) and learns only a
-- count.
CREATE FUNCTION archived_port_scan_rows(p_job_ids uuid[])
RETURNS bigint LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
DECLARE
    rel   regclass;
    n     bigint;
    total bigint := 0;
BEGIN
    IF cardinality(p_job_ids) IS NULL OR cardinality(p_job_ids) = 0 THEN
        RETURN 0;
    END IF;
    FOR rel IN SELECT * FROM archived_port_scans() LOOP
        EXECUTE format('SELECT count(*) FROM %s ps WHERE ps.job_id = ANY ($1)', rel)
        INTO n USING p_job_ids;
        total := total + n;
    END LOOP;
    RETURN total;
END $$;
