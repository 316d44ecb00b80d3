-- Connected accounts, posts with one target per account, the durable job queue, every publish
-- attempt, queue slots, collected metrics, and the built-in sandbox network's own data.
CREATE TABLE accounts (
    id              TEXT COLLATE "C" PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id),
    platform        TEXT NOT NULL,
    handle          TEXT NOT NULL,
    livemode        BIGINT NOT NULL,
    status          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    disconnected_at BIGINT
);
CREATE INDEX accounts_by_workspace ON accounts (workspace_id, id);

CREATE TABLE posts (
    id           TEXT COLLATE "C" PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    livemode     BIGINT NOT NULL,
    status       TEXT NOT NULL,
    body         TEXT NOT NULL,
    thread       TEXT NOT NULL DEFAULT '[]',
    account_ids  TEXT NOT NULL DEFAULT '[]',
    media_ids    TEXT NOT NULL DEFAULT '[]',
    overrides    TEXT NOT NULL DEFAULT '{}',
    scheduled_at BIGINT,
    published_at BIGINT,
    review       TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX posts_by_workspace ON posts (workspace_id, id);

CREATE TABLE post_targets (
    post_id       TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    workspace_id  TEXT NOT NULL,
    platform      TEXT NOT NULL,
    position      BIGINT NOT NULL,
    status        TEXT NOT NULL,
    external_id   TEXT,
    url           TEXT,
    part_ids      TEXT NOT NULL DEFAULT '[]',
    attempts      BIGINT NOT NULL DEFAULT 0,
    error_code    TEXT,
    error_message TEXT,
    published_at  BIGINT,
    PRIMARY KEY (post_id, account_id)
);
CREATE INDEX post_targets_by_account ON post_targets (account_id);

CREATE TABLE jobs (
    id           TEXT COLLATE "C" PRIMARY KEY,
    kind         TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    post_id      TEXT,
    account_id   TEXT,
    run_at       BIGINT NOT NULL,
    locked_until BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (run_at);
CREATE INDEX jobs_by_post ON jobs (post_id);

CREATE TABLE publish_attempts (
    id          TEXT COLLATE "C" PRIMARY KEY,
    post_id     TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    part        BIGINT NOT NULL,
    idem_key    TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    error       TEXT,
    external_id TEXT,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX publish_attempts_by_target ON publish_attempts (post_id, account_id);

CREATE TABLE queue_slots (
    workspace_id  TEXT NOT NULL,
    weekday       BIGINT NOT NULL,
    minute_of_day BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, weekday, minute_of_day)
);

CREATE TABLE post_metrics (
    post_id      TEXT NOT NULL,
    account_id   TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    likes        BIGINT NOT NULL,
    reposts      BIGINT NOT NULL,
    replies      BIGINT NOT NULL,
    impressions  BIGINT NOT NULL,
    collected_at BIGINT NOT NULL,
    PRIMARY KEY (post_id, account_id)
);

CREATE TABLE sandbox_posts (
    external_id TEXT COLLATE "C" PRIMARY KEY,
    account_id  TEXT NOT NULL,
    idem_key    TEXT NOT NULL,
    body        TEXT NOT NULL,
    reply_to    TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX sandbox_posts_by_account ON sandbox_posts (account_id, created_at);
CREATE INDEX sandbox_posts_by_key ON sandbox_posts (account_id, idem_key);

CREATE TABLE sandbox_faults (
    account_id          TEXT PRIMARY KEY,
    fail_next           BIGINT NOT NULL,
    kind                TEXT NOT NULL,
    retry_after_seconds BIGINT NOT NULL
);
