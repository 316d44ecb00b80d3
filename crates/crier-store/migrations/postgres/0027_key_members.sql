-- The member a key is bounded to: one made by a member (not an owner or admin) through their
-- session, their CLI's device login or an app they allowed, or made by such a key, or replacing
-- one. Such a key sees and manages only the keys bounded to the same member, as the member's
-- session does; before, a member's key saw and could rotate every key of the workspace. It is
-- fixed when the key is made (a later change of role leaves it).
ALTER TABLE api_keys ADD COLUMN member_id TEXT;
CREATE INDEX api_keys_by_member ON api_keys (workspace_id, member_id) WHERE member_id IS NOT NULL;
-- Keys made before it by users who are not the workspace's owners or admins now (its members,
-- and those who left: roles of the past are not on record, so a key made by an admin who is a
-- member now is bounded too, the safer side): made by their session (the audit log names the
-- user), the replacements their sessions made, their device logins' keys (user_id), their
-- apps' keys (app_grants); then every key made by or replacing one of those. Running it again
-- changes nothing.
UPDATE api_keys SET member_id = (
    SELECT MIN(a.actor_user_id) FROM audit_log a
    WHERE a.workspace_id = api_keys.workspace_id AND a.target_id = api_keys.id
      AND a.action = 'key.created' AND a.actor = 'user' AND a.actor_user_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM memberships m
                      WHERE m.workspace_id = a.workspace_id AND m.user_id = a.actor_user_id
                        AND m.role IN ('owner', 'admin')))
WHERE member_id IS NULL;
UPDATE api_keys SET member_id = (
    SELECT MIN(a.actor_user_id) FROM audit_log a
    WHERE a.workspace_id = api_keys.workspace_id AND a.action = 'key.rotated'
      AND a.actor = 'user' AND a.actor_user_id IS NOT NULL
      AND CAST(a.details AS jsonb) ->> 'replaced_by' = api_keys.id
      AND NOT EXISTS (SELECT 1 FROM memberships m
                      WHERE m.workspace_id = a.workspace_id AND m.user_id = a.actor_user_id
                        AND m.role IN ('owner', 'admin')))
WHERE member_id IS NULL;
UPDATE api_keys SET member_id = user_id
WHERE member_id IS NULL AND user_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM memberships m
                  WHERE m.workspace_id = api_keys.workspace_id AND m.user_id = api_keys.user_id
                    AND m.role IN ('owner', 'admin'));
UPDATE api_keys SET member_id = (
    SELECT MIN(g.user_id) FROM app_grants g
    WHERE g.key_id = api_keys.id
      AND NOT EXISTS (SELECT 1 FROM memberships m
                      WHERE m.workspace_id = g.workspace_id AND m.user_id = g.user_id
                        AND m.role IN ('owner', 'admin')))
WHERE member_id IS NULL;
WITH RECURSIVE line(id, member_id) AS (
    SELECT id, member_id FROM api_keys WHERE member_id IS NOT NULL
    UNION
    SELECT k.id, l.member_id FROM line l JOIN api_keys p ON p.id = l.id
    JOIN api_keys k ON k.id = p.replaced_by OR k.created_by = p.id
)
UPDATE api_keys SET member_id = (SELECT MIN(l.member_id) FROM line l WHERE l.id = api_keys.id)
WHERE member_id IS NULL AND id IN (SELECT id FROM line);
