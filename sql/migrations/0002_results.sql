-- Results: hosts, port_scans history (partitioned by month), services (what
-- is true now), host_history (what changed) and the host_summary view.

CREATE TABLE hosts (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id         uuid        NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    ip_address      inet        NOT NULL CHECK (masklen(ip_address) = CASE WHEN family(ip_address) = 4 THEN 32 ELSE 128 END),
    hostname        text        CHECK (length(hostname) <= 255),
    mac_address     macaddr,
    vendor          text        CHECK (length(vendor) <= 255),
    os_family       text        CHECK (length(os_family) <= 100),
    os_name         text        CHECK (length(os_name) <= 255),
    os_confidence   smallint    CHECK (os_confidence BETWEEN 0 AND 100),
    status          text        NOT NULL DEFAULT 'up' CHECK (status IN ('up', 'down', 'unknown')),
    discovery_count integer     NOT NULL DEFAULT 0 CHECK (discovery_count >= 0),
    ignore_scanning boolean     NOT NULL DEFAULT false,
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    last_job_id     uuid,
    CONSTRAINT hosts_site_ip UNIQUE (site_id, ip_address),
    CONSTRAINT hosts_seen_order CHECK (last_seen >= first_seen)
);
CREATE INDEX hosts_ip_gist ON hosts USING gist (ip_address inet_ops);
CREATE INDEX hosts_status_last_seen ON hosts (status, last_seen) WHERE status = 'up';
CREATE INDEX hosts_last_seen ON hosts (last_seen);
CREATE INDEX hosts_os_family ON hosts (os_family) WHERE os_family IS NOT NULL;

-- One row per (job, host, port, protocol). All rows of one job share the
-- job's commit time as scanned_at, so the primary key (which must contain
-- the partition key) still makes (job, host, port, protocol) unique.
CREATE TABLE port_scans (
    job_id             uuid        NOT NULL REFERENCES scan_jobs (id) ON DELETE CASCADE,
    host_id            uuid        NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    port               integer     NOT NULL CHECK (port BETWEEN 1 AND 65535),
    protocol           text        NOT NULL CHECK (protocol IN ('tcp', 'udp', 'sctp')),
    state              text        NOT NULL CHECK (state IN ('open', 'closed', 'filtered', 'unfiltered',
                                                             'open|filtered', 'closed|filtered')),
    reason             text        CHECK (length(reason) <= 64),
    service_name       text        CHECK (length(service_name) <= 255),
    service_product    text        CHECK (length(service_product) <= 255),
    service_version    text        CHECK (length(service_version) <= 255),
    service_extra_info text        CHECK (length(service_extra_info) <= 1024),
    scripts            jsonb,
    scanned_at         timestamptz NOT NULL,
    PRIMARY KEY (job_id, host_id, protocol, port, scanned_at)
) PARTITION BY RANGE (scanned_at);
CREATE INDEX port_scans_host_time ON port_scans (host_id, scanned_at DESC);
CREATE INDEX port_scans_open ON port_scans (host_id, port, state) WHERE state = 'open';

-- Rows outside every monthly partition land here instead of failing an ingest.
CREATE TABLE port_scans_default PARTITION OF port_scans DEFAULT;

-- ensure_port_scan_partitions creates monthly partitions from the month of
-- "from" for "months" months. Idempotent; the controller runs it at start and daily.
CREATE FUNCTION ensure_port_scan_partitions(from_ts timestamptz, months integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    m      date := date_trunc('month', from_ts AT TIME ZONE 'UTC')::date;
    made   integer := 0;
    part   text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        part := format('port_scans_%s', to_char(m, 'YYYY_MM'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF port_scans FOR VALUES FROM (%L) TO (%L)',
                           part, (m::timestamp AT TIME ZONE 'UTC'), ((m + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
            made := made + 1;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN made;
END $$;

SELECT ensure_port_scan_partitions(now() - interval '1 month', 4);

-- What is true now for each (host, port, protocol).
CREATE TABLE services (
    host_id            uuid        NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    port               integer     NOT NULL CHECK (port BETWEEN 1 AND 65535),
    protocol           text        NOT NULL CHECK (protocol IN ('tcp', 'udp', 'sctp')),
    state              text        NOT NULL CHECK (state IN ('open', 'closed', 'filtered', 'unfiltered',
                                                             'open|filtered', 'closed|filtered')),
    service_name       text        CHECK (length(service_name) <= 255),
    service_product    text        CHECK (length(service_product) <= 255),
    service_version    text        CHECK (length(service_version) <= 255),
    service_extra_info text        CHECK (length(service_extra_info) <= 1024),
    first_seen         timestamptz NOT NULL DEFAULT now(),
    last_seen          timestamptz NOT NULL DEFAULT now(),
    last_job_id        uuid,
    PRIMARY KEY (host_id, protocol, port),
    CONSTRAINT services_seen_order CHECK (last_seen >= first_seen)
);
CREATE INDEX services_open_port ON services (port, protocol) WHERE state = 'open';
CREATE INDEX services_name ON services (service_name) WHERE state = 'open';

CREATE TABLE host_history (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host_id       uuid        NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    site_id       uuid        NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    job_id        uuid        REFERENCES scan_jobs (id) ON DELETE SET NULL,
    event         text        NOT NULL CHECK (event IN ('host_discovered', 'host_up', 'host_down', 'port_opened',
                                                       'port_closed', 'service_changed', 'os_changed')),
    port          integer     CHECK (port BETWEEN 1 AND 65535),
    protocol      text        CHECK (protocol IN ('tcp', 'udp', 'sctp')),
    old_value     text,
    new_value     text,
    changed_at    timestamptz NOT NULL DEFAULT now(),
    changed_by    text        NOT NULL,
    change_reason text
);
CREATE INDEX host_history_host_time ON host_history (host_id, changed_at DESC, id DESC);
CREATE INDEX host_history_site_time ON host_history (site_id, changed_at DESC, id DESC);
CREATE INDEX host_history_time ON host_history (changed_at DESC, id DESC);

-- Dashboard summary; refreshed CONCURRENTLY by the controller after commits.
CREATE MATERIALIZED VIEW host_summary AS
SELECT h.id          AS host_id,
       h.site_id,
       h.ip_address,
       h.status,
       h.last_seen,
       count(s.port) FILTER (WHERE s.state = 'open') AS open_ports,
       max(s.last_seen)                              AS last_scanned
FROM hosts h
LEFT JOIN services s ON s.host_id = h.id
GROUP BY h.id, h.site_id, h.ip_address, h.status, h.last_seen;
CREATE UNIQUE INDEX host_summary_host ON host_summary (host_id);
CREATE INDEX host_summary_site_ip ON host_summary (site_id, ip_address);
