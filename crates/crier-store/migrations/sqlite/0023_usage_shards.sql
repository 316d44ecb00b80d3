-- A usage counter may be split over several rows (shards) that readers add up. Publishing adds
-- to a workspace's `posts_published` counter in the transaction that marks a target
-- published; with one row, every such transaction of a workspace on PostgreSQL waited for the
-- one before it to commit (the row's lock), and that lock, not the database, capped a
-- publishing burst. Counters spent under a limit (AI credits) keep to shard 0, so one
-- conditional statement still decides them.
CREATE TABLE usage_counters_sharded (
    workspace_id TEXT NOT NULL,
    period       TEXT NOT NULL,
    metric       TEXT NOT NULL,
    shard        INTEGER NOT NULL DEFAULT 0,
    value        BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, period, metric, shard)
);
INSERT INTO usage_counters_sharded (workspace_id, period, metric, shard, value)
    SELECT workspace_id, period, metric, 0, value FROM usage_counters;
DROP TABLE usage_counters;
ALTER TABLE usage_counters_sharded RENAME TO usage_counters;
