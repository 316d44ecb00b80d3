-- crier as the OAuth 2.1 authorization server of its own API and MCP server.
--
-- A client registers itself (`registered`: `occ_…`, RFC 7591) or names itself by the URL of its
-- metadata document (`metadata`: the id is that URL, the document is read and kept here). An
-- unused client (no live grant, no use for 30 days) is purged.
CREATE TABLE app_clients (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    auth_method   TEXT NOT NULL,
    secret_digest TEXT,
    created_at    BIGINT NOT NULL,
    used_at       BIGINT NOT NULL,
    fetched_at    BIGINT
);
CREATE INDEX app_clients_by_use ON app_clients (used_at);

-- An authorization code: its digest, single use, a minute long. `key_id` is the grant it was
-- exchanged for, so a second use revokes that grant.
CREATE TABLE app_codes (
    digest         TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    workspace_id   TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    resource       TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    key_id         TEXT
);
CREATE INDEX app_codes_by_expiry ON app_codes (expires_at);

-- A grant: what a person approved for a client in a workspace. Its access token is the secret
-- of an ordinary API key (`key_id`, short-lived, its secret replaced at each refresh), so
-- scopes, limits, revocation on every node and the audit trail are the keys' own. `expires_at`
-- is when the grant ends unless refreshed.
CREATE TABLE app_grants (
    key_id       TEXT PRIMARY KEY REFERENCES api_keys (id),
    workspace_id TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    resource     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    refreshed_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX app_grants_by_workspace ON app_grants (workspace_id, key_id);
CREATE INDEX app_grants_by_client ON app_grants (client_id);
CREATE INDEX app_grants_by_user ON app_grants (user_id, workspace_id);

-- Refresh tokens by digest: the live one (`used_at` NULL) and the last ones used, so that a
-- used token presented again is recognised as a replay and ends the grant.
CREATE TABLE app_refresh_tokens (
    digest     TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX app_refresh_by_key ON app_refresh_tokens (key_id, created_at);

-- Set on the keys that carry a grant's access token: the key list and the key routes leave
-- them alone (they are managed as grants).
ALTER TABLE api_keys ADD COLUMN app_client_id TEXT;
