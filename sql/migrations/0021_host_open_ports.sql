-- Each host carries its number of open ports (services rows in state
-- 'open'), kept by statement-level triggers on services, so that a page of
-- ListHosts reads only hosts rows. Counting per listed host cost 256
-- services_pkey lookups a page: host ids are random uuids, so each lookup
-- lands on its own index leaf, 15-22 ms of a 58 ms p99 at a million hosts.
--
-- The triggers see every writer of services (ingest_commit, imports, a
-- host's ON DELETE CASCADE, tests and the bench generator writing rows
-- directly), and a transition table gives each statement one UPDATE of the
-- hosts it touched, not one per row. Two commits touching the same host
-- serialize on its row, and each adds its own difference to the newest
-- version, so the count stays exact under concurrency.
--
-- The existing hosts get their counts by a column type change with USING,
-- which rewrites the table once, in place order, with fresh indexes. An
-- UPDATE of every host would leave a dead version of each row behind (a
-- million-host table twice its size until a VACUUM, and the admin reads
-- pruning it on the way).
ALTER TABLE hosts ADD COLUMN open_ports integer NOT NULL DEFAULT 0;
CREATE FUNCTION scanorama_tmp_host_open_ports(host uuid) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT count(*)::int FROM services WHERE host_id = host AND state = 'open'
$$;
ALTER TABLE hosts ALTER COLUMN open_ports TYPE integer USING scanorama_tmp_host_open_ports(id);
DROP FUNCTION scanorama_tmp_host_open_ports(uuid);

CREATE FUNCTION services_count_open_ports() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Each branch names only the transition tables its trigger declares.
    IF TG_OP = 'INSERT' THEN
        UPDATE hosts h SET open_ports = h.open_ports + d.n
        FROM (SELECT host_id, count(*)::int AS n FROM new_services WHERE state = 'open' GROUP BY host_id) d
        WHERE h.id = d.host_id;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE hosts h SET open_ports = h.open_ports + d.n
        FROM (SELECT host_id, sum(n)::int AS n
              FROM (SELECT host_id, 1 AS n FROM new_services WHERE state = 'open'
                    UNION ALL
                    SELECT host_id, -1 FROM old_services WHERE state = 'open') x
              GROUP BY host_id
              HAVING sum(n) <> 0) d
        WHERE h.id = d.host_id;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE hosts h SET open_ports = h.open_ports - d.n
        FROM (SELECT host_id, count(*)::int AS n FROM old_services WHERE state = 'open' GROUP BY host_id) d
        WHERE h.id = d.host_id;
    ELSE -- TRUNCATE
        UPDATE hosts SET open_ports = 0 WHERE open_ports <> 0;
    END IF;
    RETURN NULL;
END
$$;

-- Transition tables allow one event per trigger.
CREATE TRIGGER services_open_ports_insert AFTER INSERT ON services
    REFERENCING NEW TABLE AS new_services
    FOR EACH STATEMENT EXECUTE FUNCTION services_count_open_ports();
CREATE TRIGGER services_open_ports_update AFTER UPDATE ON services
    REFERENCING OLD TABLE AS old_services NEW TABLE AS new_services
    FOR EACH STATEMENT EXECUTE FUNCTION services_count_open_ports();
CREATE TRIGGER services_open_ports_delete AFTER DELETE ON services
    REFERENCING OLD TABLE AS old_services
    FOR EACH STATEMENT EXECUTE FUNCTION services_count_open_ports();
CREATE TRIGGER services_open_ports_truncate AFTER TRUNCATE ON services
    FOR EACH STATEMENT EXECUTE FUNCTION services_count_open_ports();
