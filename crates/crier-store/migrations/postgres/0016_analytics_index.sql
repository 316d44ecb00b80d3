-- Analytics read a workspace's published targets by time (the dashboard's charts, account
-- analytics): without this index each read scanned every target of every workspace.
CREATE INDEX post_targets_published ON post_targets (workspace_id, published_at);
