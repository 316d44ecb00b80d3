-- A usage counter may be split over several rows (shards) that readers add up. Publishing adds
-- to a workspace's `posts_published` counter in the transaction that marks a target
-- published; with one row, every such transaction of a workspace waited for the one before it
-- to commit (the row's lock), and that lock, not the database, capped a publishing burst.
-- Counters spent under a limit (AI credits) keep to shard 0, so one conditional statement
-- still decides them.
ALTER TABLE usage_counters ADD COLUMN shard BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_counters DROP CONSTRAINT usage_counters_pkey;
ALTER TABLE usage_counters ADD PRIMARY KEY (workspace_id, period, metric, shard);
