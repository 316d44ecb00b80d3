-- Carousels: slides (JSON: kind, heading, body) generated from a text, a prompt or a URL,
-- refined by hand, rendered on demand; `media_ids` are the slides' PNGs once exported.
-- `version` is bumped by every change; a change names the version it read.
CREATE TABLE carousels (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),
    livemode       BIGINT NOT NULL,
    brand_id       TEXT,
    title          TEXT NOT NULL,
    template       TEXT NOT NULL,
    size           TEXT NOT NULL,
    source_kind    TEXT NOT NULL,
    source         TEXT NOT NULL,
    call_to_action TEXT NOT NULL,
    slides         TEXT NOT NULL,
    media_ids      TEXT NOT NULL DEFAULT '[]',
    version        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX carousels_by_workspace ON carousels (workspace_id, id);
