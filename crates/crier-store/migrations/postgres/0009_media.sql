-- Media objects. A row is written when an upload URL is handed out (`pending`) and becomes
-- `ready` once its bytes are confirmed (type sniffed from the bytes, size, SHA-256, image
-- dimensions, video duration). `size` is the declared size while pending, the actual one once
-- ready. Pending rows whose upload URL expired are purged with their bytes.
CREATE TABLE media (
    id                TEXT PRIMARY KEY,
    workspace_id      TEXT NOT NULL,
    livemode          BIGINT NOT NULL,
    status            TEXT NOT NULL,
    filename          TEXT NOT NULL,
    declared_type     TEXT NOT NULL,
    content_type      TEXT,
    size              BIGINT NOT NULL,
    sha256            TEXT,
    width             BIGINT,
    height            BIGINT,
    duration_ms       BIGINT,
    alt_text          TEXT,
    storage_key       TEXT NOT NULL,
    upload_expires_at BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    ready_at          BIGINT
);
CREATE INDEX media_by_workspace ON media (workspace_id, livemode, id);
CREATE INDEX media_pending ON media (status, upload_expires_at);
