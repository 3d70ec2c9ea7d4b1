-- Core schema: sites, profiles, targets, agents, jobs and leases.
-- Design notes (see ../../README.md and the seed analysis):
--  * hosts are unique per (site_id, ip_address): sites may reuse RFC1918 ranges.
--  * scan profiles are typed columns, never a free-form nmap argument string.
--  * every lease-holder write is fenced by (worker_id, lease_token).

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE sites (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text        NOT NULL UNIQUE
                            CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    description text        NOT NULL DEFAULT '' CHECK (length(description) <= 1024),
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL DEFAULT current_user
);

CREATE TABLE scan_profiles (
    id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name                 text        NOT NULL UNIQUE
                                     CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    description          text        NOT NULL DEFAULT '' CHECK (length(description) <= 1024),
    scan_type            text        NOT NULL CHECK (scan_type IN ('connect', 'syn', 'udp', 'ping')),
    ports                text        NOT NULL DEFAULT '' CHECK (length(ports) <= 4096),
    top_ports            integer     NOT NULL DEFAULT 0 CHECK (top_ports BETWEEN 0 AND 65535),
    service_detection    boolean     NOT NULL DEFAULT false,
    version_intensity    smallint    CHECK (version_intensity BETWEEN 0 AND 9),
    version_light        boolean     NOT NULL DEFAULT false,
    os_detection         boolean     NOT NULL DEFAULT false,
    timing               smallint    CHECK (timing BETWEEN 0 AND 5),
    host_timeout_seconds integer     NOT NULL DEFAULT 0 CHECK (host_timeout_seconds >= 0),
    min_rate             integer     NOT NULL DEFAULT 0 CHECK (min_rate >= 0),
    max_rate             integer     NOT NULL DEFAULT 0 CHECK (max_rate >= 0),
    max_retries          smallint    CHECK (max_retries BETWEEN 0 AND 50),
    scripts              text[]      NOT NULL DEFAULT '{}',
    skip_host_discovery  boolean     NOT NULL DEFAULT false,
    ping_methods         text[]      NOT NULL DEFAULT '{}',
    builtin              boolean     NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now(),
    created_by           text        NOT NULL DEFAULT current_user,
    CONSTRAINT scan_profiles_rate_order CHECK (max_rate = 0 OR min_rate <= max_rate),
    CONSTRAINT scan_profiles_ports_xor CHECK (NOT (ports <> '' AND top_ports > 0))
);

INSERT INTO scan_profiles (name, description, scan_type, top_ports, service_detection, version_light, timing, builtin) VALUES
    ('default', 'TCP connect scan of the target''s ports with light service detection; needs no privileges',
        'connect', 0, true, true, 4, true),
    ('quick', 'TCP connect scan of the 100 most common ports, no service detection',
        'connect', 100, false, false, 4, true),
    ('syn', 'SYN scan of the 1000 most common ports with service detection; needs raw sockets',
        'syn', 1000, true, false, 4, true),
    ('udp-common', 'UDP scan of the 50 most common UDP ports; needs raw sockets',
        'udp', 50, false, false, 4, true);
INSERT INTO scan_profiles (name, description, scan_type, timing, builtin) VALUES
    ('discovery', 'Host discovery ping sweep (-sn): which hosts are up, with MAC and vendor on local segments',
        'ping', 4, true);

CREATE TABLE scan_targets (
    id                    uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id               uuid        NOT NULL REFERENCES sites (id) ON DELETE RESTRICT,
    name                  text        NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    network               cidr        NOT NULL,
    profile_id            uuid        NOT NULL REFERENCES scan_profiles (id) ON DELETE RESTRICT,
    scan_interval_seconds integer     CHECK (scan_interval_seconds >= 60),
    enabled               boolean     NOT NULL DEFAULT true,
    next_run_at           timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    created_by            text        NOT NULL DEFAULT current_user,
    modified_by           text        NOT NULL DEFAULT current_user,
    CONSTRAINT scan_targets_site_name UNIQUE (site_id, name),
    CONSTRAINT scan_targets_updated_after_created CHECK (updated_at >= created_at)
);
CREATE INDEX scan_targets_network_gist ON scan_targets USING gist (network inet_ops);
CREATE INDEX scan_targets_due ON scan_targets (next_run_at) WHERE enabled AND scan_interval_seconds IS NOT NULL;

-- Ports are stored normalized as ranges (seed: Migration 003): "1-65535" is
-- one row, not 65535.
CREATE TABLE scan_target_ports (
    target_id  uuid    NOT NULL REFERENCES scan_targets (id) ON DELETE CASCADE,
    protocol   text    NOT NULL CHECK (protocol IN ('tcp', 'udp')),
    port_start integer NOT NULL CHECK (port_start BETWEEN 1 AND 65535),
    port_end   integer NOT NULL CHECK (port_end BETWEEN 1 AND 65535),
    PRIMARY KEY (target_id, protocol, port_start),
    CONSTRAINT scan_target_ports_order CHECK (port_end >= port_start)
);

-- Exclusions: global (no site, no target), per site, or per target.
CREATE TABLE scan_exclusions (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id    uuid        REFERENCES sites (id) ON DELETE CASCADE,
    target_id  uuid        REFERENCES scan_targets (id) ON DELETE CASCADE,
    network    cidr        NOT NULL,
    reason     text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text        NOT NULL DEFAULT current_user
);
CREATE INDEX scan_exclusions_target ON scan_exclusions (target_id);
CREATE INDEX scan_exclusions_site ON scan_exclusions (site_id);

CREATE TABLE agents (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id       uuid        NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    scope         cidr[]      NOT NULL DEFAULT '{}',
    nmap_version  text        NOT NULL DEFAULT '',
    raw_sockets   boolean     NOT NULL DEFAULT false,
    version       text        NOT NULL DEFAULT '',
    hostname      text        NOT NULL DEFAULT '',
    state         text        NOT NULL DEFAULT 'active'
                              CHECK (state IN ('active', 'draining', 'lost', 'offline')),
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agents_site_name UNIQUE (site_id, name)
);

CREATE TABLE scan_jobs (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    target_id         uuid        NOT NULL REFERENCES scan_targets (id) ON DELETE CASCADE,
    site_id           uuid        NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    profile_id        uuid        NOT NULL REFERENCES scan_profiles (id) ON DELETE RESTRICT,
    -- What this job scans: the target network or a shard of it, frozen at creation.
    network           cidr        NOT NULL,
    ports             text        NOT NULL DEFAULT '',
    exclusions        cidr[]      NOT NULL DEFAULT '{}',
    -- The typed options the agent runs, frozen at creation (profile edits do not change queued work).
    options           jsonb       NOT NULL,
    requires_raw      boolean     NOT NULL DEFAULT false,
    status            text        NOT NULL DEFAULT 'pending'
                                  CHECK (status IN ('pending', 'leased', 'running', 'completed', 'failed', 'cancelled')),
    priority          smallint    NOT NULL DEFAULT 0,
    attempt           integer     NOT NULL DEFAULT 0,
    max_attempts      integer     NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    worker_id         text        CHECK (length(worker_id) <= 100),
    lease_token       bigint      NOT NULL DEFAULT 0,
    timeout_at        timestamptz,
    progress_percent  smallint    NOT NULL DEFAULT 0 CHECK (progress_percent BETWEEN 0 AND 100),
    scheduled_at      timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    completed_at      timestamptz,
    error_message     text,
    scan_stats        jsonb,
    execution_context jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    created_by        text        NOT NULL DEFAULT current_user,
    CONSTRAINT scan_jobs_attempts CHECK (attempt BETWEEN 0 AND max_attempts),
    CONSTRAINT scan_jobs_timing CHECK (completed_at IS NULL OR started_at IS NULL OR completed_at >= started_at),
    CONSTRAINT scan_jobs_lease_held CHECK (status NOT IN ('leased', 'running')
                                           OR (worker_id IS NOT NULL AND timeout_at IS NOT NULL AND lease_token > 0)),
    CONSTRAINT scan_jobs_final_has_time CHECK (status NOT IN ('completed', 'failed', 'cancelled') OR completed_at IS NOT NULL)
);
CREATE INDEX scan_jobs_pending ON scan_jobs (site_id, priority DESC, scheduled_at, id) WHERE status = 'pending';
CREATE INDEX scan_jobs_leased_timeout ON scan_jobs (timeout_at) WHERE status IN ('leased', 'running');
CREATE INDEX scan_jobs_worker ON scan_jobs (worker_id) WHERE status IN ('leased', 'running');
CREATE INDEX scan_jobs_status_created ON scan_jobs (status, created_at);
CREATE INDEX scan_jobs_target_created ON scan_jobs (target_id, created_at DESC);
CREATE INDEX scan_jobs_created ON scan_jobs (created_at DESC, id DESC);

-- Every lease ever granted: the audit trail that proves no job was held by two
-- agents at once, and the execution history operators ask for.
CREATE TABLE scan_job_leases (
    job_id      uuid        NOT NULL REFERENCES scan_jobs (id) ON DELETE CASCADE,
    lease_token bigint      NOT NULL,
    worker_id   text        NOT NULL,
    leased_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at    timestamptz,
    outcome     text        CHECK (outcome IN ('completed', 'failed', 'expired', 'released', 'cancelled')),
    PRIMARY KEY (job_id, lease_token)
);
