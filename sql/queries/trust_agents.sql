-- name: GetControllerCA :one
SELECT * FROM controller_ca WHERE id = 1;

-- name: InsertControllerCA :one
-- The first controller (or ca init) stores the CA; later ones read it back
-- and compare.
INSERT INTO controller_ca (cert_der, fingerprint) VALUES (@cert_der, @fingerprint)
ON CONFLICT (id) DO UPDATE SET id = controller_ca.id
RETURNING *;

-- name: CreateEnrollmentToken :one
INSERT INTO enrollment_tokens (id, secret_hash, site_id, max_uses, expires_at, created_by)
VALUES (@id, @secret_hash, @site_id, @max_uses, now() + make_interval(secs => @ttl_seconds::float8), @created_by)
RETURNING *;

-- name: UseEnrollmentToken :one
-- One use of a token, only while it is unexpired, unrevoked and not used up.
UPDATE enrollment_tokens
SET uses = uses + 1, last_used_at = now()
WHERE id = @id AND secret_hash = @secret_hash
  AND revoked_at IS NULL AND expires_at > now() AND uses < max_uses
RETURNING site_id;

-- name: GetEnrollmentToken :one
SELECT t.*, s.name AS site_name, (t.expires_at <= now())::boolean AS expired
FROM enrollment_tokens t JOIN sites s ON s.id = t.site_id
WHERE t.id = @id;

-- name: ListEnrollmentTokens :many
SELECT t.*, s.name AS site_name, (t.expires_at <= now())::boolean AS expired
FROM enrollment_tokens t JOIN sites s ON s.id = t.site_id
ORDER BY t.created_at DESC, t.id
LIMIT @row_limit;

-- name: RevokeEnrollmentToken :execrows
UPDATE enrollment_tokens SET revoked_at = now() WHERE id = @id AND revoked_at IS NULL;

-- name: CreateEnrolledAgent :one
INSERT INTO agents (site_id, name, state, enrolled, hostname, version)
VALUES (@site_id, @name, @state, true, @hostname, @version)
RETURNING *;

-- name: RegisterEnrolledAgent :one
-- Register of an agent identified by its certificate: its id and site are
-- fixed; revoked and pending_approval stay so.
UPDATE agents
SET scope = @scope, nmap_version = @nmap_version, raw_sockets = @raw_sockets,
    version = @version, hostname = @hostname, last_seen = now(),
    state = CASE WHEN state IN ('lost', 'offline') THEN 'active' ELSE state END
WHERE id = @id AND enrolled
RETURNING *;

-- name: GetAgentState :one
SELECT state FROM agents WHERE id = @id;

-- name: RevokeAgent :one
UPDATE agents SET state = 'revoked', revoked_at = COALESCE(revoked_at, now())
WHERE id = @id
RETURNING *;

-- name: ApproveAgent :one
UPDATE agents SET state = 'active' WHERE id = @id AND state = 'pending_approval'
RETURNING *;

-- name: ReleaseAgentLeases :many
-- A revoked agent's leases go back to pending at once, without using up an
-- attempt; its fencing token no longer matches anything it holds.
WITH released AS (
    UPDATE scan_jobs
    SET status = 'pending', worker_id = NULL, timeout_at = NULL, started_at = NULL, progress_percent = 0,
        attempt = GREATEST(attempt - 1, 0)
    WHERE worker_id = @worker_id::text AND status IN ('leased', 'running')
    RETURNING id, lease_token, site_id
), ended AS (
    UPDATE scan_job_leases l SET ended_at = clock_timestamp(), outcome = 'released'
    FROM released r
    WHERE l.job_id = r.id AND l.lease_token = r.lease_token AND l.ended_at IS NULL
)
SELECT id, site_id FROM released;

-- name: UpdateSite :one
UPDATE sites
SET scopes = @scopes::cidr[],
    description = COALESCE(sqlc.narg(description)::text, description)
WHERE name = @name
RETURNING *;

-- name: GetSiteScopes :one
SELECT scopes FROM sites WHERE id = @id;
