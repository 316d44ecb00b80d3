-- Per-key usage by day, and the recent request log.
--
-- Both are written by the API's batched usage flush (every few seconds, in the transaction
-- that records `last_used_at` and request counts), never on the request path.
--
-- `key_usage_daily`: one row per API key and UTC day (`YYYY-MM-DD`): requests made with it,
-- how many of them failed (status 400 or above, 429 excepted) and how many were rate-limited
-- (429). Sessions are not keys and have no rows here.
CREATE TABLE key_usage_daily (
    workspace_id TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    day          TEXT NOT NULL,
    requests     BIGINT NOT NULL DEFAULT 0,
    errors       BIGINT NOT NULL DEFAULT 0,
    rate_limited BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, day)
);
-- Days past the 90 kept are purged on the API's minute timer.
CREATE INDEX key_usage_daily_by_day ON key_usage_daily (day);

-- `request_log`: the authenticated requests of the last 7 days (purged on the API's minute
-- timer). `path` is the route template (`/v1/keys/{id}`), never the raw path or its query
-- string; no bodies and no headers are kept. `key_id` is the key's id, or for a session the
-- made-up `key_…` id its principal carries (never a stored key's). `at` is epoch ms.
CREATE TABLE request_log (
    request_id   TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    status       BIGINT NOT NULL,
    error_code   TEXT,
    duration_ms  BIGINT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX request_log_by_workspace ON request_log (workspace_id, at);
-- The retention purge deletes the oldest entries first, across workspaces.
CREATE INDEX request_log_by_time ON request_log (at);
