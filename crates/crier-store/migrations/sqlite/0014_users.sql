-- Dashboard users, their workspaces, sessions, invitations and device logins.
--
-- A user is a person with an email (unique case-insensitively: `email_key` is its lower-case
-- form) and an Argon2id password hash. `install` has at most one row: the first user of an
-- install, written in the same transaction as that user, so two sign-ups racing on an empty
-- install cannot both become its owner.
CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    email               TEXT NOT NULL,
    email_key           TEXT NOT NULL UNIQUE,
    name                TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE install (
    id            BIGINT PRIMARY KEY CHECK (id = 1),
    owner_user_id TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- A user's role in a workspace: owner, admin or member.
CREATE TABLE memberships (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    role         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id, workspace_id);

-- A login: only the SHA-256 digest of its token is stored. `ended_at` is set by logout (or
-- "log out everywhere", or a password change); an ended or expired session is refused.
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    digest     TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL REFERENCES users (id),
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at   BIGINT,
    user_agent TEXT NOT NULL DEFAULT '',
    ip         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_by_user ON sessions (user_id, id);

-- An invitation link into a workspace with a role: its token's digest, single use, expiring.
CREATE TABLE invitations (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    digest       TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    email        TEXT,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    accepted_at  BIGINT,
    accepted_by  TEXT,
    revoked_at   BIGINT
);
CREATE INDEX invitations_by_workspace ON invitations (workspace_id, id);

-- Device logins (RFC 8628) for the CLI: pending until a user approves or denies the user code;
-- an approved one is redeemed once for an API key (`key_id`) by the device code's owner.
CREATE TABLE device_logins (
    id            TEXT PRIMARY KEY,
    device_digest TEXT NOT NULL UNIQUE,
    user_code     TEXT NOT NULL UNIQUE,
    client_name   TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    status        TEXT NOT NULL,
    user_id       TEXT,
    workspace_id  TEXT,
    key_id        TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    interval_ms   BIGINT NOT NULL,
    polled_at     BIGINT,
    decided_at    BIGINT
);
CREATE INDEX device_logins_by_expiry ON device_logins (expires_at);

-- Who did something: a user through the dashboard or a session.
ALTER TABLE audit_log ADD COLUMN actor_user_id TEXT;
