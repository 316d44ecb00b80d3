-- Clip jobs: scenes found in an uploaded video and clips cut from it, run as jobs in the
-- durable queue (kind `clip`). `attempts` counts the starts: a clip job finishes only for the
-- start that is still its latest. `scenes` (JSON, ms) and `clips` (JSON: start_ms, end_ms,
-- media_id) are written when it finishes; `progress` (0–100) while it runs.
CREATE TABLE clip_jobs (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id),
    livemode        BIGINT NOT NULL,
    media_id        TEXT NOT NULL,
    target_ms       BIGINT NOT NULL,
    aspect          TEXT NOT NULL,
    fit             TEXT NOT NULL,
    max_clips       BIGINT NOT NULL,
    threshold       BIGINT NOT NULL,
    status          TEXT NOT NULL,
    progress        BIGINT NOT NULL DEFAULT 0,
    attempts        BIGINT NOT NULL DEFAULT 0,
    duration_ms     BIGINT,
    scenes          TEXT NOT NULL DEFAULT '[]',
    clips           TEXT NOT NULL DEFAULT '[]',
    error_code      TEXT,
    error_message   TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    finished_at     BIGINT
);
CREATE INDEX clip_jobs_by_workspace ON clip_jobs (workspace_id, id);
