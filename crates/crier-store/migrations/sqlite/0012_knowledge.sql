-- The knowledge base: documents (text, Markdown, HTML or a fetched URL, reduced to plain
-- text) split into passages that AI generation draws on. `brand_id` NULL: the whole
-- workspace's knowledge; otherwise that brand's. `chars` counts the characters of the stored
-- text (the plan's `kb_chars` sums it per workspace and mode), `passages` its passages.
-- A document's text is its passages in order; passages are written and deleted with their
-- document, in one transaction.
CREATE TABLE kb_documents (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    livemode     BIGINT NOT NULL,
    brand_id     TEXT,
    title        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    source_url   TEXT,
    chars        BIGINT NOT NULL,
    passages     BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX kb_documents_by_workspace ON kb_documents (workspace_id, livemode, id);
CREATE INDEX kb_documents_by_brand ON kb_documents (workspace_id, livemode, brand_id, id);

-- One passage of a document: at most about 1,000 characters, cut at paragraph, heading and
-- sentence boundaries. `embedding`: the passage's vector from the configured embeddings
-- endpoint as little-endian f32 values, or NULL (none configured, or it failed).
CREATE TABLE kb_passages (
    id          INTEGER PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES kb_documents (id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    text        TEXT NOT NULL,
    embedding   BLOB
);
CREATE UNIQUE INDEX kb_passages_by_document ON kb_passages (document_id, position);

-- Full-text search over the passages: an external-content FTS5 index (the text is stored once,
-- in kb_passages) kept in step by the triggers below. Porter stemming over the unicode61
-- tokenizer, diacritics folded: "Opening" finds "opens", "café" finds "cafe".
CREATE VIRTUAL TABLE kb_passages_fts USING fts5(
    text,
    content = 'kb_passages',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER kb_passages_fts_insert AFTER INSERT ON kb_passages BEGIN
    INSERT INTO kb_passages_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER kb_passages_fts_delete AFTER DELETE ON kb_passages BEGIN
    INSERT INTO kb_passages_fts (kb_passages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER kb_passages_fts_update AFTER UPDATE OF text ON kb_passages BEGIN
    INSERT INTO kb_passages_fts (kb_passages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO kb_passages_fts (rowid, text) VALUES (new.id, new.text);
END;
