-- Cron schedules in a time zone, weekly scan windows, run deadlines and
-- discovery-first runs (issue #5).
--
-- A target is scheduled by an interval or by a cron expression (never both),
-- evaluated in time_zone (an IANA name). A scan window (days bit set, Sunday
-- = bit 0, and wall-clock start/end minutes; end <= start crosses midnight)
-- limits when scheduled runs may start and run: a due run outside it waits
-- for the next opening (next_run_at moves there; no scan_runs row is written
-- for the wait), and jobs still unfinished when the window closes are
-- cancelled. max_duration_seconds bounds every run the same way.

ALTER TABLE scan_targets
    ADD COLUMN cron_expr            text     CHECK (length(cron_expr) BETWEEN 1 AND 256),
    ADD COLUMN time_zone            text     NOT NULL DEFAULT 'UTC' CHECK (length(time_zone) BETWEEN 1 AND 64),
    ADD COLUMN window_days          smallint CHECK (window_days BETWEEN 1 AND 127),
    ADD COLUMN window_start_minute  smallint CHECK (window_start_minute BETWEEN 0 AND 1439),
    ADD COLUMN window_end_minute    smallint CHECK (window_end_minute BETWEEN 0 AND 1439),
    ADD COLUMN max_duration_seconds integer  CHECK (max_duration_seconds >= 60),
    ADD COLUMN discovery_first      boolean  NOT NULL DEFAULT false,
    ADD CONSTRAINT scan_targets_one_schedule CHECK (scan_interval_seconds IS NULL OR cron_expr IS NULL),
    ADD CONSTRAINT scan_targets_window_whole CHECK (
        (window_days IS NULL) = (window_start_minute IS NULL) AND (window_days IS NULL) = (window_end_minute IS NULL));

DROP INDEX scan_targets_due;
CREATE INDEX scan_targets_due ON scan_targets (next_run_at)
    WHERE enabled AND (scan_interval_seconds IS NOT NULL OR cron_expr IS NOT NULL);

-- Runs now also come from ScanNow (origin 'scan_now', not unique per time)
-- and carry their phase: 'discovery' while the ping sweep of a
-- discovery-first run is going, 'port_scan' once the port-scan jobs exist
-- (the only phase of an ordinary run), 'finished' when nothing more will be
-- created (skipped runs; discovery found nothing, failed or was cancelled).
-- cancel_at is the run's deadline (window close or max_duration), fixed when
-- the run starts; cancel_reason becomes the cancelled jobs' error_message.
ALTER TABLE scan_runs
    ADD COLUMN origin        text        NOT NULL DEFAULT 'schedule' CHECK (origin IN ('schedule', 'scan_now')),
    ADD COLUMN phase         text        NOT NULL DEFAULT 'port_scan' CHECK (phase IN ('discovery', 'port_scan', 'finished')),
    ADD COLUMN cancel_at     timestamptz,
    ADD COLUMN cancel_reason text,
    ADD COLUMN updated_at    timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT scan_runs_deadline_reason CHECK ((cancel_at IS NULL) = (cancel_reason IS NULL));
UPDATE scan_runs SET phase = 'finished' WHERE outcome = 'skipped';

-- Still what stops two controllers from creating the same scheduled run.
ALTER TABLE scan_runs DROP CONSTRAINT scan_runs_once;
CREATE UNIQUE INDEX scan_runs_once ON scan_runs (target_id, scheduled_for) WHERE origin = 'schedule';
CREATE INDEX scan_runs_discovering ON scan_runs (created_at) WHERE phase = 'discovery';

ALTER TABLE scan_jobs ADD COLUMN run_id uuid REFERENCES scan_runs (id) ON DELETE SET NULL;
CREATE INDEX scan_jobs_run ON scan_jobs (run_id) WHERE run_id IS NOT NULL;
