-- The user a key acts for in person: a device login's key (the CLI of someone who signed in).
-- Such a key ends with its user's membership, and when their role is lowered, as the apps they
-- allowed do; a workspace's own keys (made in the dashboard or through the API) have none and
-- stay. Keys made before this column are found through the device logins still on record.
ALTER TABLE api_keys ADD COLUMN user_id TEXT;
UPDATE api_keys SET user_id = (
    SELECT d.user_id FROM device_logins d WHERE d.key_id = api_keys.id)
WHERE id IN (SELECT key_id FROM device_logins WHERE key_id IS NOT NULL);
CREATE INDEX api_keys_by_user ON api_keys (workspace_id, user_id) WHERE user_id IS NOT NULL;
