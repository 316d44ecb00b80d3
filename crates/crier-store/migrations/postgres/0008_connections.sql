-- Real accounts: who the account is at its network, where it lives, and its sealed credentials
-- (crier-app encrypts them; the store never sees a token in the clear).
-- `service` is the account's server (a Mastodon instance, a PDS), '' for one-server networks;
-- with `external_id` it names the network account, so reconnecting it updates the same row.
-- Accounts stored before this have no network identity: their own id stands in.
ALTER TABLE accounts ADD COLUMN external_id TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN service TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN display_name TEXT;
ALTER TABLE accounts ADD COLUMN avatar_url TEXT;
ALTER TABLE accounts ADD COLUMN profile_url TEXT;
ALTER TABLE accounts ADD COLUMN credentials TEXT;
ALTER TABLE accounts ADD COLUMN token_expires_at BIGINT;
-- When the refresher next renews the token (NULL: never), and until when a node's claim on
-- that renewal holds: two nodes never refresh one account at once (refresh tokens are often
-- single-use), and asking for an early renewal (a 401) does not break a claim in progress.
ALTER TABLE accounts ADD COLUMN refresh_at BIGINT;
ALTER TABLE accounts ADD COLUMN refresh_leased_until BIGINT;
ALTER TABLE accounts ADD COLUMN updated_at BIGINT;
UPDATE accounts SET external_id = id, updated_at = created_at;
-- A sandbox account is its handle: the newest of a workspace's accounts with one handle in one
-- mode becomes that handle's account (connecting the handle again finds it); older duplicates,
-- which the old code allowed, keep their own id as identity.
UPDATE accounts SET external_id = handle
 WHERE platform = 'sandbox'
   AND id = (SELECT MAX(a2.id) FROM accounts a2
              WHERE a2.workspace_id = accounts.workspace_id AND a2.livemode = accounts.livemode
                AND a2.platform = 'sandbox' AND a2.handle = accounts.handle);
CREATE UNIQUE INDEX accounts_network_identity
    ON accounts (workspace_id, livemode, platform, service, external_id);
CREATE INDEX accounts_refresh_due ON accounts (refresh_at);

-- A started OAuth connection: single-use, bound to a workspace and mode, short-lived. Only a
-- hash of the state is kept; the PKCE verifier is sealed.
CREATE TABLE connect_states (
    state_hash    TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL,
    livemode      BIGINT NOT NULL,
    platform      TEXT NOT NULL,
    redirect_uri  TEXT NOT NULL,
    instance      TEXT NOT NULL,
    code_verifier TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX connect_states_workspace ON connect_states (workspace_id, expires_at);

-- OAuth clients crier registered on a network's server (Mastodon instances), once per server
-- and redirect URI. The secret is sealed.
CREATE TABLE oauth_clients (
    platform      TEXT NOT NULL,
    instance      TEXT NOT NULL,
    redirect_uri  TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    client_secret TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (platform, instance, redirect_uri)
);

-- A sandbox timeline entry lists the media it carried (JSON array of media ids).
ALTER TABLE sandbox_posts ADD COLUMN media_ids TEXT NOT NULL DEFAULT '[]';
