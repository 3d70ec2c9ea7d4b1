-- Scheduled runs: one row per (target, scheduled time), created or skipped.
-- The unique key is what stops two controllers from creating the same run.
CREATE TABLE scan_runs (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    target_id     uuid        NOT NULL REFERENCES scan_targets (id) ON DELETE CASCADE,
    scheduled_for timestamptz NOT NULL,
    outcome       text        NOT NULL CHECK (outcome IN ('created', 'skipped')),
    reason        text        NOT NULL DEFAULT '',
    jobs          integer     NOT NULL DEFAULT 0 CHECK (jobs >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text        NOT NULL,
    CONSTRAINT scan_runs_once UNIQUE (target_id, scheduled_for)
);
CREATE INDEX scan_runs_target_time ON scan_runs (target_id, scheduled_for DESC);
