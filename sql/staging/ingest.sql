-- Per-session staging tables for result ingestion. The controller creates
-- them as TEMP tables on the connection that serves one results stream, COPYs
-- each host batch into them as it arrives, and merges them into the real
-- tables in one transaction when the stream's summary arrives. They are not
-- part of the migrated schema; sqlc reads this file to type the merge queries.
CREATE TEMP TABLE IF NOT EXISTS ingest_hosts (
    ip            inet     NOT NULL,
    status        text     NOT NULL,
    reason        text     NOT NULL,
    mac_address   macaddr,
    vendor        text     NOT NULL,
    hostname      text     NOT NULL,
    os_name       text     NOT NULL,
    os_family     text     NOT NULL,
    os_confidence smallint NOT NULL,
    -- Filled by ingest_commit once hosts are merged, so every later merge
    -- step joins the staging tables with each other and reaches the big
    -- tables only through index lookups by host id.
    host_id       uuid,
    has_services  boolean
);

CREATE TEMP TABLE IF NOT EXISTS ingest_ports (
    ip                 inet    NOT NULL,
    protocol           text    NOT NULL,
    port               integer NOT NULL,
    state              text    NOT NULL,
    reason             text    NOT NULL,
    service_name       text    NOT NULL,
    service_product    text    NOT NULL,
    service_version    text    NOT NULL,
    service_extra_info text    NOT NULL,
    scripts            jsonb
);
