-- Trending topics the networks publish, cached per source and refreshed by a worker.
-- A source is one list a network publishes: a Mastodon instance's trending tags
-- (`mastodon:https://mastodon.example`, the same for every account there) or one Bluesky
-- account's trending topics (`bluesky:did:plc:…`; the AppView ranks them for the viewer, so
-- they are never shared between accounts). `next_fetch_at` is when the source is due, and
-- while a node fetches it, its lease. `used_at` is when a connected live account last needed
-- it; sources unused for a week are purged with their topics.
CREATE TABLE trend_sources (
    source        TEXT COLLATE "C" PRIMARY KEY,
    platform      TEXT NOT NULL,
    used_at       BIGINT NOT NULL,
    next_fetch_at BIGINT NOT NULL,
    fetched_at    BIGINT,
    last_error    TEXT,
    failed_at     BIGINT
);
CREATE INDEX trend_sources_by_use ON trend_sources (used_at);

-- A source's topics as last fetched, hottest first (`position` 0 first), at most 20, each at
-- most 100 characters; replaced as a whole, in one transaction, by each successful fetch.
CREATE TABLE trend_topics (
    source     TEXT COLLATE "C" NOT NULL,
    position   BIGINT NOT NULL,
    topic      TEXT NOT NULL,
    score      DOUBLE PRECISION NOT NULL,
    fetched_at BIGINT NOT NULL,
    PRIMARY KEY (source, position)
);
