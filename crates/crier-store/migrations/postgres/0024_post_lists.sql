-- Lists of a big workspace's posts. `GET /v1/posts?status=…` walks a workspace's posts newest
-- first among those of one status (before, it walked all of them by id and dropped the others:
-- 10,000 scheduled posts made a list of the few publishing ones take milliseconds); the queue
-- reads scheduled and waiting posts in the order they go out, from an index that holds only
-- those.
CREATE INDEX posts_by_status ON posts (workspace_id, status, id);
CREATE INDEX posts_queue ON posts (workspace_id, livemode, (COALESCE(scheduled_at, 0)), id)
    WHERE status IN ('scheduled', 'pending_approval');
