-- Trust boundary for agents (issue 9, agent half): the controller CA shared
-- by every controller on this database, one-time enrollment tokens, the
-- scopes a site allows its enrolled agents, and the agent states revoked and
-- pending_approval.
--
-- The CA's private key is NOT stored here: it lives in ca-key.pem (0600)
-- under each controller's --data-dir (see README "Enrolling agents").

-- controller_ca holds the one CA certificate (public) every controller serves
-- and verifies with; a controller whose key file does not match refuses to start.
CREATE TABLE controller_ca (
    id          smallint    PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    cert_der    bytea       NOT NULL,
    -- sha256 of the CA certificate's SubjectPublicKeyInfo, lower-case hex.
    fingerprint text        NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- enrollment_tokens: the secret part is stored only as its sha256.
CREATE TABLE enrollment_tokens (
    id           text        PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    secret_hash  bytea       NOT NULL CHECK (length(secret_hash) = 32),
    site_id      uuid        NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    max_uses     integer     NOT NULL CHECK (max_uses BETWEEN 1 AND 10000),
    uses         integer     NOT NULL DEFAULT 0,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL DEFAULT current_user,
    CONSTRAINT enrollment_tokens_uses CHECK (uses BETWEEN 0 AND max_uses),
    CONSTRAINT enrollment_tokens_expiry CHECK (expires_at > created_at)
);
CREATE INDEX enrollment_tokens_site ON enrollment_tokens (site_id);

-- A site's allowed scopes: an enrolled agent leases only jobs inside both its
-- declared scope and these. Empty means enrolled agents lease nothing there
-- (plaintext / external-PKI agents keep the old rule: their own scope only).
ALTER TABLE sites ADD COLUMN scopes cidr[] NOT NULL DEFAULT '{}';

ALTER TABLE agents DROP CONSTRAINT agents_state_check;
ALTER TABLE agents ADD CONSTRAINT agents_state_check
    CHECK (state IN ('active', 'draining', 'lost', 'offline', 'revoked', 'pending_approval'));
-- enrolled agents got their identity from the controller CA; their site and
-- id come from their certificate, never from a request.
ALTER TABLE agents ADD COLUMN enrolled boolean NOT NULL DEFAULT false;
ALTER TABLE agents ADD COLUMN revoked_at timestamptz;
ALTER TABLE agents ADD CONSTRAINT agents_revoked_at CHECK ((state = 'revoked') = (revoked_at IS NOT NULL));
