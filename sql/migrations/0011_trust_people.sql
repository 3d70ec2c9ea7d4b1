-- People: bearer tokens with roles and site scopes, the audit log, and
-- row-level security that confines a site-scoped caller to its sites.
--
-- Who runs as what:
--  * AdminService queries run inside transactions that switch to the
--    NOLOGIN role scanorama_admin_api (SET LOCAL ROLE, controller/scope):
--    not a superuser, not BYPASSRLS, owning no table, so the policies below
--    always apply to it. Each such transaction also sets scanorama.scope
--    ('all' or 'sites') and scanorama.sites (comma-separated site ids).
--  * The agent path (leasing, ingest_commit), the scheduler, maintenance,
--    migrations, token verification and audit writes keep the connecting
--    (owning) role: they act for the system, not for a person, and must see
--    every site. Row-level security is enabled but not FORCEd, so the owner
--    is not filtered.
--  * Missing or unknown scanorama.scope means no rows (fail closed): a
--    scoped request that somehow lost its setting sees nothing, never all.
--
-- A new table holding site data needs a policy here (or in a later
-- migration) and a GRANT to scanorama_admin_api before AdminService can
-- read it; controller/scope's tests fail for a table with a site_id, host_id,
-- target_id or job_id column and no row-level security.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'scanorama_admin_api') THEN
        CREATE ROLE scanorama_admin_api NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- another database of this cluster created it at the same moment
END $$;

-- The connecting role must be allowed to SET ROLE to it (a superuser may anyway).
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT scanorama_admin_api TO %I', current_user);
    END IF;
END $$;

CREATE TABLE api_tokens (
    -- The public half of "scn_<id>_<secret>": lookup by id, then compare
    -- sha256(secret). The secret itself is never stored.
    id            text        PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    role          text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    -- Empty: every site. Otherwise only these.
    site_ids      uuid[]      NOT NULL DEFAULT '{}',
    secret_sha256 bytea       NOT NULL CHECK (length(secret_sha256) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text        NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    revoked_by    text,
    CONSTRAINT api_tokens_expiry_order CHECK (expires_at IS NULL OR expires_at > created_at),
    CONSTRAINT api_tokens_revoked_whole CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE INDEX api_tokens_created ON api_tokens (created_at DESC, id DESC);

CREATE TABLE audit_log (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Who: "token:<name>/<id>", "cert:<subject>", "insecure@<peer>",
    -- "cli:<os user>" or an agent's identity. Never a secret.
    actor      text        NOT NULL CHECK (length(actor) BETWEEN 1 AND 512),
    role       text        NOT NULL DEFAULT '',
    -- What: the RPC's full method name or a named action ("token.create").
    action     text        NOT NULL CHECK (length(action) BETWEEN 1 AND 256),
    -- The site the action concerned, when it names one (no foreign key: the
    -- record outlives the site).
    site_id    uuid,
    object_ids text[]      NOT NULL DEFAULT '{}',
    -- The request with secret fields removed.
    request    jsonb,
    -- From where: the caller's address.
    peer       text        NOT NULL DEFAULT '',
    -- The gRPC status code name ("OK", "InvalidArgument", ...).
    outcome    text        NOT NULL,
    message    text        NOT NULL DEFAULT '' CHECK (length(message) <= 1024)
);
CREATE INDEX audit_log_actor ON audit_log (actor, id DESC);
CREATE INDEX audit_log_site ON audit_log (site_id, id DESC);
CREATE INDEX audit_log_at ON audit_log (at);

-- scanorama_scope_all: the transaction's caller may see every site.
CREATE FUNCTION scanorama_scope_all() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('scanorama.scope', true) = 'all', false)
$$;

-- scanorama_scope_sites: the sites of a 'sites'-scoped caller; NULL otherwise.
CREATE FUNCTION scanorama_scope_sites() RETURNS uuid[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN current_setting('scanorama.scope', true) = 'sites'
                THEN string_to_array(nullif(current_setting('scanorama.sites', true), ''), ',')::uuid[]
           END
$$;

-- scanorama_site_visible: may the transaction's caller see site? Unset or
-- unknown scope: no.
CREATE FUNCTION scanorama_site_visible(site uuid) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE current_setting('scanorama.scope', true)
               WHEN 'all' THEN true
               WHEN 'sites' THEN coalesce(site = ANY (scanorama_scope_sites()), false)
               ELSE false
           END
$$;

ALTER TABLE sites ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON sites TO scanorama_admin_api
    USING (scanorama_site_visible(id)) WITH CHECK (scanorama_site_visible(id));

-- Profiles belong to no site: everyone reads them, only unscoped callers change them.
ALTER TABLE scan_profiles ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_all ON scan_profiles FOR SELECT TO scanorama_admin_api USING (true);
CREATE POLICY write_unscoped ON scan_profiles TO scanorama_admin_api
    USING (scanorama_scope_all()) WITH CHECK (scanorama_scope_all());

ALTER TABLE scan_targets ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON scan_targets TO scanorama_admin_api
    USING (scanorama_site_visible(site_id)) WITH CHECK (scanorama_site_visible(site_id));

ALTER TABLE scan_target_ports ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON scan_target_ports TO scanorama_admin_api
    USING (scanorama_scope_all() OR EXISTS (SELECT 1 FROM scan_targets t WHERE t.id = target_id))
    WITH CHECK (scanorama_scope_all() OR EXISTS (SELECT 1 FROM scan_targets t WHERE t.id = target_id));

-- Global exclusions (no site, no target) apply everywhere, so every caller
-- reads them; only unscoped callers write them.
ALTER TABLE scan_exclusions ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_global ON scan_exclusions FOR SELECT TO scanorama_admin_api
    USING (site_id IS NULL AND target_id IS NULL);
CREATE POLICY scoped ON scan_exclusions TO scanorama_admin_api
    USING (scanorama_scope_all()
           OR (site_id IS NOT NULL AND scanorama_site_visible(site_id))
           OR (site_id IS NULL AND target_id IS NOT NULL AND EXISTS (SELECT 1 FROM scan_targets t WHERE t.id = target_id)))
    WITH CHECK (scanorama_scope_all()
           OR (site_id IS NOT NULL AND scanorama_site_visible(site_id))
           OR (site_id IS NULL AND target_id IS NOT NULL AND EXISTS (SELECT 1 FROM scan_targets t WHERE t.id = target_id)));

ALTER TABLE agents ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON agents TO scanorama_admin_api
    USING (scanorama_site_visible(site_id)) WITH CHECK (scanorama_site_visible(site_id));

ALTER TABLE scan_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON scan_jobs TO scanorama_admin_api
    USING (scanorama_site_visible(site_id)) WITH CHECK (scanorama_site_visible(site_id));

ALTER TABLE scan_job_leases ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON scan_job_leases TO scanorama_admin_api
    USING (scanorama_scope_all() OR EXISTS (SELECT 1 FROM scan_jobs j WHERE j.id = job_id))
    WITH CHECK (scanorama_scope_all() OR EXISTS (SELECT 1 FROM scan_jobs j WHERE j.id = job_id));

ALTER TABLE hosts ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON hosts TO scanorama_admin_api
    USING (scanorama_site_visible(site_id)) WITH CHECK (scanorama_site_visible(site_id));

ALTER TABLE port_scans ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON port_scans TO scanorama_admin_api
    USING (scanorama_scope_all() OR EXISTS (SELECT 1 FROM hosts h WHERE h.id = host_id))
    WITH CHECK (scanorama_scope_all() OR EXISTS (SELECT 1 FROM hosts h WHERE h.id = host_id));

ALTER TABLE services ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON services TO scanorama_admin_api
    USING (scanorama_scope_all() OR EXISTS (SELECT 1 FROM hosts h WHERE h.id = host_id))
    WITH CHECK (scanorama_scope_all() OR EXISTS (SELECT 1 FROM hosts h WHERE h.id = host_id));

ALTER TABLE host_history ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON host_history TO scanorama_admin_api
    USING (scanorama_site_visible(site_id)) WITH CHECK (scanorama_site_visible(site_id));

ALTER TABLE scan_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON scan_runs TO scanorama_admin_api
    USING (scanorama_scope_all() OR EXISTS (SELECT 1 FROM scan_targets t WHERE t.id = target_id))
    WITH CHECK (scanorama_scope_all() OR EXISTS (SELECT 1 FROM scan_targets t WHERE t.id = target_id));

-- A scoped admin sees and mints only tokens confined to its own sites: it
-- can never create an unscoped token (site_ids = '{}').
ALTER TABLE api_tokens ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON api_tokens TO scanorama_admin_api
    USING (scanorama_scope_all() OR (site_ids <> '{}' AND site_ids <@ scanorama_scope_sites()))
    WITH CHECK (scanorama_scope_all() OR (site_ids <> '{}' AND site_ids <@ scanorama_scope_sites()));

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON audit_log FOR SELECT TO scanorama_admin_api
    USING (scanorama_scope_all() OR (site_id IS NOT NULL AND scanorama_site_visible(site_id)));

GRANT USAGE ON SCHEMA public TO scanorama_admin_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    sites, scan_profiles, scan_targets, scan_target_ports, scan_exclusions, agents,
    scan_jobs, scan_job_leases, hosts, services, host_history, scan_runs, api_tokens
    TO scanorama_admin_api;
GRANT SELECT ON port_scans TO scanorama_admin_api;
GRANT SELECT ON audit_log TO scanorama_admin_api;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO scanorama_admin_api;
