-- Workspaces, API keys, their audit log, usage counters and idempotency records.
-- Ids sort byte-wise (COLLATE "C") so time-ordered ids list newest first under any locale.
-- Times are epoch milliseconds (BIGINT); lists are JSON text; ids are prefixed TEXT.
CREATE TABLE workspaces (
    id               TEXT COLLATE "C" PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    plan             TEXT NOT NULL,
    timezone         TEXT NOT NULL DEFAULT 'UTC',
    require_approval BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id              TEXT COLLATE "C" PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id),
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    prefix          TEXT NOT NULL,
    digest          TEXT NOT NULL UNIQUE,
    mode            TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    per_minute      BIGINT NOT NULL,
    per_day         BIGINT NOT NULL,
    allowed_ips     TEXT NOT NULL DEFAULT '[]',
    allowed_origins TEXT NOT NULL DEFAULT '[]',
    expires_at      BIGINT,
    last_used_at    BIGINT,
    request_count   BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    revoked_at      BIGINT,
    replaced_by     TEXT,
    created_by      TEXT
);
CREATE INDEX api_keys_by_workspace ON api_keys (workspace_id, id);

CREATE TABLE audit_log (
    id           TEXT COLLATE "C" PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    actor        TEXT NOT NULL,
    actor_key_id TEXT,
    action       TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    request_id   TEXT,
    details      TEXT NOT NULL DEFAULT '{}',
    created_at   BIGINT NOT NULL
);
CREATE INDEX audit_log_by_workspace ON audit_log (workspace_id, id);

CREATE TABLE usage_counters (
    workspace_id TEXT NOT NULL,
    period       TEXT NOT NULL,
    metric       TEXT NOT NULL,
    value        BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, period, metric)
);

CREATE TABLE idempotency_keys (
    api_key_id   TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    state        TEXT NOT NULL,
    status       BIGINT,
    response     TEXT,
    locked_until BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, idem_key)
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);

-- Small named counters for coordination between processes. `key_changes` is bumped in every
-- transaction that changes a key, so every process can tell that its key cache is stale.
CREATE TABLE crier_state (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO crier_state (name, value) VALUES ('key_changes', 0);
