-- nmap XML import: results of an nmap run made elsewhere (an -oX file) enter
-- a site as a job of kind 'import'. Such a job is created already leased to
-- the pseudo-worker 'import' in the transaction that commits its results
-- through ingest_commit, so it is never pending and no agent can lease it.
ALTER TABLE scan_jobs
    ADD COLUMN kind text NOT NULL DEFAULT 'scan' CHECK (kind IN ('scan', 'import'));
