-- Feed automations (RSS 2.0, Atom, JSON Feed polled into posts) and every entry seen per feed.
-- `next_poll_at` doubles as the poller's lease: a node claims a due feed by moving it forward.
-- `seeded_at` is null until the first successful read of the current URL; `baseline_at` is the
-- time entries must be newer than to be posted (the creation, or the last change of URL).
CREATE TABLE feeds (
    id                    TEXT PRIMARY KEY,
    workspace_id          TEXT NOT NULL REFERENCES workspaces (id),
    livemode              BIGINT NOT NULL,
    url                   TEXT NOT NULL,
    account_ids           TEXT NOT NULL,
    template              TEXT NOT NULL,
    mode                  TEXT NOT NULL,
    poll_interval_seconds BIGINT NOT NULL,
    backfill              BIGINT NOT NULL,
    enabled               BIGINT NOT NULL,
    etag                  TEXT,
    last_modified         TEXT,
    last_polled_at        BIGINT,
    next_poll_at          BIGINT NOT NULL,
    consecutive_failures  BIGINT NOT NULL DEFAULT 0,
    last_error            TEXT,
    seeded_at             BIGINT,
    baseline_at           BIGINT NOT NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX feeds_by_workspace ON feeds (workspace_id, id);
CREATE INDEX feeds_due ON feeds (next_poll_at);

-- An entry is the same entry when its id or its link is: both are unique per feed.
CREATE TABLE feed_items (
    feed_id      TEXT NOT NULL,
    entry_id     TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    link         TEXT,
    title        TEXT,
    published_at BIGINT,
    post_id      TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (feed_id, entry_id)
);
CREATE UNIQUE INDEX feed_items_by_link ON feed_items (feed_id, link) WHERE link IS NOT NULL;
