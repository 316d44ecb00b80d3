-- Brands: named groups of a workspace's accounts, each of one mode (`livemode`), ordered by
-- `position` (0 first; a new brand goes last; names are unique per workspace and mode). An
-- account may be in several brands. The owner's part of each brand voice lives in `personas`,
-- keyed by brand (`''`: the workspace's own voice). Deleting a brand deletes its memberships
-- and its persona row; posts keep their account_ids and the brand_id they were made from.
CREATE TABLE brands (
    id           TEXT COLLATE "C" PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    livemode     BIGINT NOT NULL,
    name         TEXT NOT NULL,
    position     BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX brands_name ON brands (workspace_id, livemode, name);
CREATE INDEX brands_by_position ON brands (workspace_id, livemode, position, id);

CREATE TABLE brand_accounts (
    brand_id   TEXT NOT NULL,
    account_id TEXT NOT NULL,
    position   BIGINT NOT NULL,
    PRIMARY KEY (brand_id, account_id)
);
CREATE INDEX brand_accounts_by_account ON brand_accounts (account_id);

-- What an owner set for a voice (the learned part is computed from published posts). Word
-- lists are JSON text.
CREATE TABLE personas (
    workspace_id   TEXT NOT NULL,
    livemode       BIGINT NOT NULL,
    brand_id       TEXT NOT NULL,
    description    TEXT,
    tone           TEXT,
    words_to_use   TEXT NOT NULL DEFAULT '[]',
    words_to_avoid TEXT NOT NULL DEFAULT '[]',
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, livemode, brand_id)
);

-- Keys limited to some brands or accounts (JSON lists of ids; empty: no limit).
ALTER TABLE api_keys ADD COLUMN allowed_brand_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE api_keys ADD COLUMN allowed_account_ids TEXT NOT NULL DEFAULT '[]';

-- The brand a post's accounts were taken from, when it named one.
ALTER TABLE posts ADD COLUMN brand_id TEXT;
