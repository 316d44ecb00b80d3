-- The user a key acts for in person: a device login's key (the CLI of someone who signed in).
-- Such a key ends with its user's membership, and when their role is lowered, as the apps they
-- allowed do; a workspace's own keys (made in the dashboard or through the API) have none and
-- stay. Keys made before this column get it in 0026.
ALTER TABLE api_keys ADD COLUMN user_id TEXT;
CREATE INDEX api_keys_by_user ON api_keys (workspace_id, user_id) WHERE user_id IS NOT NULL;
-- A key's line of descent (what it made, what replaced it) is walked by these when a member
-- leaves or a grant ends.
CREATE INDEX api_keys_by_creator ON api_keys (created_by) WHERE created_by IS NOT NULL;
CREATE INDEX api_keys_by_replaced ON api_keys (replaced_by) WHERE replaced_by IS NOT NULL;
