-- AdminService runs as scanorama_admin_api under the caller's site scope
-- (0011_trust_people.sql). The tables that enrollment (0009), the emergency
-- stop (0010) and the change feed and webhooks (0013) added get the same
-- treatment: a policy for every table holding site data, and grants for what
-- the admin API reads and writes. The agent path, the scheduler, maintenance
-- and the webhook dispatcher keep the owning role.

ALTER TABLE enrollment_tokens ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON enrollment_tokens TO scanorama_admin_api
    USING (scanorama_site_visible(site_id)) WITH CHECK (scanorama_site_visible(site_id));

-- A pause of everything (no site) is seen by every caller; only unscoped
-- callers set or lift it.
ALTER TABLE scan_pauses ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_global ON scan_pauses FOR SELECT TO scanorama_admin_api
    USING (site_id IS NULL);
CREATE POLICY scoped ON scan_pauses TO scanorama_admin_api
    USING (scanorama_scope_all() OR (site_id IS NOT NULL AND scanorama_site_visible(site_id)))
    WITH CHECK (scanorama_scope_all() OR (site_id IS NOT NULL AND scanorama_site_visible(site_id)));

-- A webhook without a site watches every site: only unscoped callers see
-- or manage it.
ALTER TABLE webhooks ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON webhooks TO scanorama_admin_api
    USING (scanorama_scope_all() OR (site_id IS NOT NULL AND scanorama_site_visible(site_id)))
    WITH CHECK (scanorama_scope_all() OR (site_id IS NOT NULL AND scanorama_site_visible(site_id)));

ALTER TABLE webhook_cursors ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON webhook_cursors TO scanorama_admin_api
    USING (scanorama_scope_all() OR EXISTS (SELECT 1 FROM webhooks w WHERE w.id = webhook_id))
    WITH CHECK (scanorama_scope_all() OR EXISTS (SELECT 1 FROM webhooks w WHERE w.id = webhook_id));

ALTER TABLE webhook_pending_downs ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON webhook_pending_downs TO scanorama_admin_api
    USING (scanorama_scope_all() OR EXISTS (SELECT 1 FROM webhooks w WHERE w.id = webhook_id))
    WITH CHECK (scanorama_scope_all() OR EXISTS (SELECT 1 FROM webhooks w WHERE w.id = webhook_id));

ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON webhook_deliveries TO scanorama_admin_api
    USING (scanorama_scope_all() OR EXISTS (SELECT 1 FROM webhooks w WHERE w.id = webhook_id))
    WITH CHECK (scanorama_scope_all() OR EXISTS (SELECT 1 FROM webhooks w WHERE w.id = webhook_id));

GRANT SELECT, INSERT, UPDATE, DELETE ON
    enrollment_tokens, scan_pauses, webhooks, webhook_cursors, webhook_pending_downs, webhook_deliveries
    TO scanorama_admin_api;
GRANT SELECT ON controller_ca, change_feed, lease_clock TO scanorama_admin_api;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO scanorama_admin_api;
