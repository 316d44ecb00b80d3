-- `api_keys.user_id` for the device logins' keys made before it: from the device logins still
-- on record (they are purged an hour after they expire), from the audit log (which keeps each
-- key's `key.created` entry, naming the approving user and the device login), then along each
-- such key's rotations to its replacements. Running it again changes nothing.
UPDATE api_keys SET user_id = (
    SELECT MIN(d.user_id) FROM device_logins d WHERE d.key_id = api_keys.id)
WHERE user_id IS NULL
  AND id IN (SELECT key_id FROM device_logins WHERE key_id IS NOT NULL AND user_id IS NOT NULL);
UPDATE api_keys SET user_id = (
    SELECT MIN(a.actor_user_id) FROM audit_log a
    WHERE a.target_id = api_keys.id AND a.action = 'key.created' AND a.actor = 'user'
      AND jsonb_exists(CAST(a.details AS jsonb), 'device_login'))
WHERE user_id IS NULL
  AND id IN (SELECT target_id FROM audit_log
             WHERE action = 'key.created' AND actor = 'user' AND actor_user_id IS NOT NULL
               AND jsonb_exists(CAST(details AS jsonb), 'device_login'));
WITH RECURSIVE chain(id, user_id) AS (
    SELECT replaced_by, user_id FROM api_keys
    WHERE user_id IS NOT NULL AND replaced_by IS NOT NULL
    UNION
    SELECT k.replaced_by, c.user_id FROM api_keys k JOIN chain c ON k.id = c.id
    WHERE k.replaced_by IS NOT NULL
)
UPDATE api_keys SET user_id = (SELECT MIN(c.user_id) FROM chain c WHERE c.id = api_keys.id)
WHERE user_id IS NULL AND id IN (SELECT id FROM chain);
