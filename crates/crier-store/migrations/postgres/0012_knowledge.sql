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
-- Full-text search: `tsv`, generated from the text with the `english` configuration (Snowball
-- stemming, English stop words), under a GIN index.
CREATE TABLE kb_passages (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES kb_documents (id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    text        TEXT NOT NULL,
    embedding   BYTEA,
    tsv         tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED
);
CREATE UNIQUE INDEX kb_passages_by_document ON kb_passages (document_id, position);
CREATE INDEX kb_passages_tsv ON kb_passages USING GIN (tsv);
