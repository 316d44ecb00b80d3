use crier_core::ids::{AccountId, BrandId, KeyId, UserId, WorkspaceId};
use crier_core::{KeyDigest, KeyMode};
use sqlx::Any;

use crate::events::{emit, types};
use crate::model::{Actor, AuditEntry, KeyRow, Page, audit_from_row, key_from_row};
use crate::views::KeyObject;
use crate::{Result, Store, StoreError, unique_to_conflict};

pub(crate) const COLUMNS: &str = "id, workspace_id, name, description, prefix, digest, mode, scopes, \
    per_minute, per_day, allowed_ips, allowed_origins, expires_at, last_used_at, request_count, \
    created_at, updated_at, revoked_at, replaced_by, created_by, allowed_brand_ids, \
    allowed_account_ids, member_id";

fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).expect("a list of strings serialises")
}

/// The key together with its workspace's plan name: what authentication needs in one read.
#[derive(Debug, Clone)]
pub struct KeyWithPlan {
    pub key: KeyRow,
    pub plan: String,
}

impl Store {
    /// Stores a new key and its audit entry in one transaction.
    pub async fn insert_key(&self, key: &KeyRow, audit: &AuditEntry) -> Result<()> {
        let mut tx = self.begin().await?;
        check_maker_tx(self, &mut tx, key).await?;
        insert_key_tx(&mut tx, key).await?;
        insert_audit(&mut tx, audit).await?;
        emit_key_event(&mut tx, key, types::KEY_CREATED).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The authentication look-up: the key with this digest, whatever its state.
    pub async fn key_by_digest(&self, digest: &KeyDigest) -> Result<Option<KeyWithPlan>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT k.{}, w.plan AS plan FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id
             WHERE k.digest = $1",
            COLUMNS.replace(", ", ", k.")
        )))
        .bind(digest.to_hex())
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            Ok(KeyWithPlan {
                key: key_from_row(&r)?,
                plan: sqlx::Row::try_get(&r, "plan")?,
            })
        })
        .transpose()
    }

    pub async fn get_key(&self, ws: &WorkspaceId, id: &KeyId) -> Result<Option<KeyRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE workspace_id = $1 AND id = $2
               AND app_client_id IS NULL"
        )))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Keys of a workspace, newest first; `mode` narrows to one mode.
    pub async fn list_keys(
        &self,
        ws: &WorkspaceId,
        mode: Option<KeyMode>,
        limit: u32,
        offset: u32,
    ) -> Result<Page<KeyRow>> {
        self.key_page(ws, mode, "", &[], limit, offset).await
    }

    /// Keys of a workspace, newest first, `mode` narrowing to one mode, that a caller may see:
    /// among `among` when given (a member sees the keys they made), and limited to brands or
    /// accounts within `within` when given (a limited key sees keys each of whose brands is
    /// among the brands and each of whose accounts among the accounts). Paged over those keys
    /// alone, both filters at once, so no page comes back short while more of them follow.
    pub async fn list_keys_visible(
        &self,
        ws: &WorkspaceId,
        mode: Option<KeyMode>,
        among: Option<&[&str]>,
        within: Option<(&[BrandId], &[AccountId])>,
        limit: u32,
        offset: u32,
    ) -> Result<Page<KeyRow>> {
        let mut filter = String::new();
        let mut binds = Vec::new();
        if let Some(ids) = among {
            binds.push(crate::json(&ids));
            let p = format!("${}", 2 + binds.len());
            filter += &format!(" AND {}", self.in_json_list("id", &p));
        }
        if let Some((brands, accounts)) = within {
            binds.push(crate::json(&brands));
            binds.push(crate::json(&accounts));
            let (pb, pa) = (
                format!("${}", 1 + binds.len()),
                format!("${}", 2 + binds.len()),
            );
            filter += &format!(
                " AND (allowed_brand_ids <> '[]' OR allowed_account_ids <> '[]')
                 AND NOT EXISTS (SELECT 1 FROM {kb} WHERE kb.value NOT IN {brands})
                 AND NOT EXISTS (SELECT 1 FROM {ka} WHERE ka.value NOT IN {accounts})",
                kb = self.json_rows("k.allowed_brand_ids", "kb"),
                ka = self.json_rows("k.allowed_account_ids", "ka"),
                brands = self.json_values(&pb),
                accounts = self.json_values(&pa),
            );
        }
        self.key_page(ws, mode, &filter, &binds, limit, offset)
            .await
    }

    /// A page of a workspace's keys (apps' keys left out), newest first, `mode` narrowing to
    /// one mode, that also meet `filter` (over `k`; its parameters are `$3` on, bound in order
    /// from `binds`).
    async fn key_page(
        &self,
        ws: &WorkspaceId,
        mode: Option<KeyMode>,
        filter: &str,
        binds: &[String],
        limit: u32,
        offset: u32,
    ) -> Result<Page<KeyRow>> {
        let next = 3 + binds.len();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys k WHERE workspace_id = $1 AND ($2 IS NULL OR mode = $2)
               AND app_client_id IS NULL {filter}
             ORDER BY id DESC LIMIT ${next} OFFSET ${}",
            next + 1
        )))
        .bind(ws.as_str())
        .bind(mode.map(KeyMode::as_str));
        for b in binds {
            query = query.bind(b.as_str());
        }
        let rows = query
            .bind(i64::from(limit) + 1)
            .bind(i64::from(offset))
            .fetch_all(&self.read)
            .await?;
        let keys = rows.iter().map(key_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(keys, limit))
    }

    /// Writes the mutable fields of `key` (name, description, scopes, limits, restrictions,
    /// expiry) if it is neither revoked nor replaced by a rotation (a replaced key ends with
    /// its overlap; a new expiry must not revive it). Returns the stored row, or `None` when
    /// there is no such key in this workspace.
    pub async fn update_key(&self, key: &KeyRow, audit: &AuditEntry) -> Result<Option<KeyRow>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE api_keys SET name = $3, description = $4, scopes = $5, per_minute = $6,
                per_day = $7, allowed_ips = $8, allowed_origins = $9, expires_at = $10,
                updated_at = $11, allowed_brand_ids = $12, allowed_account_ids = $13
             WHERE workspace_id = $1 AND id = $2 AND revoked_at IS NULL AND replaced_by IS NULL
               AND app_client_id IS NULL
             RETURNING {COLUMNS}"
        )))
        .bind(key.workspace_id.as_str())
        .bind(key.id.as_str())
        .bind(&key.name)
        .bind(&key.description)
        .bind(key.scopes.to_storage())
        .bind(i64::from(key.per_minute))
        .bind(i64::from(key.per_day))
        .bind(to_json(&key.allowed_ips))
        .bind(to_json(&key.allowed_origins))
        .bind(key.expires_at)
        .bind(key.updated_at)
        .bind(to_json(&key.allowed_brand_ids))
        .bind(to_json(&key.allowed_account_ids))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored = key_from_row(&row)?;
        insert_audit(&mut tx, audit).await?;
        self.notify_key_change(&mut tx, &stored.digest).await?;
        tx.commit().await?;
        self.key_changed(&stored.digest);
        Ok(Some(stored))
    }

    /// Revokes a key now. Revoking a revoked key changes nothing and returns it as it is.
    pub async fn revoke_key(
        &self,
        ws: &WorkspaceId,
        id: &KeyId,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<Option<KeyRow>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE api_keys SET revoked_at = $3, updated_at = $3
             WHERE workspace_id = $1 AND id = $2 AND revoked_at IS NULL
               AND app_client_id IS NULL
             RETURNING {COLUMNS}"
        )))
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            drop(tx);
            return self.get_key(ws, id).await;
        };
        let stored = key_from_row(&row)?;
        insert_audit(&mut tx, audit).await?;
        self.notify_key_change(&mut tx, &stored.digest).await?;
        emit_key_event(&mut tx, &stored, types::KEY_REVOKED).await?;
        tx.commit().await?;
        self.key_changed(&stored.digest);
        Ok(Some(stored))
    }

    /// Replaces `old_id` with `new_key`: the old key now expires at `old_expires_at` and
    /// points to its successor. `None` when the old key is not active in this workspace.
    pub async fn rotate_key(
        &self,
        old_id: &KeyId,
        new_key: &KeyRow,
        old_expires_at: i64,
        audit: &AuditEntry,
    ) -> Result<Option<KeyRow>> {
        let mut tx = self.begin().await?;
        check_maker_tx(self, &mut tx, new_key).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE api_keys SET expires_at = $3, replaced_by = $4, updated_at = $5
             WHERE workspace_id = $1 AND id = $2 AND revoked_at IS NULL AND replaced_by IS NULL
               AND app_client_id IS NULL
             RETURNING {COLUMNS}"
        )))
        .bind(new_key.workspace_id.as_str())
        .bind(old_id.as_str())
        .bind(old_expires_at)
        .bind(new_key.id.as_str())
        .bind(new_key.created_at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let old = key_from_row(&row)?;
        insert_key_tx(&mut tx, new_key).await?;
        // A rotated key acts for whom the old one did.
        sqlx::query("UPDATE api_keys SET user_id = (SELECT user_id FROM api_keys WHERE id = $2) WHERE id = $1")
            .bind(new_key.id.as_str())
            .bind(old_id.as_str())
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, audit).await?;
        self.notify_key_change(&mut tx, &old.digest).await?;
        emit_key_event(&mut tx, new_key, types::KEY_CREATED).await?;
        tx.commit().await?;
        self.key_changed(&old.digest);
        Ok(Some(old))
    }

    /// The keys `user` made in a workspace: those bounded to them as a member (`member_id`:
    /// made by their session, device logins and apps, by those keys, and replacements), and,
    /// as its audit log says, those whose `key.created` entry names the user and the new key
    /// of each rotation the user made (at most the latest 10,000 such events).
    pub async fn keys_made_by_user(
        &self,
        ws: &WorkspaceId,
        user: &UserId,
    ) -> Result<std::collections::HashSet<String>> {
        let rows = sqlx::query(
            "SELECT action, target_id, details FROM audit_log
             WHERE workspace_id = $1 AND actor = 'user' AND actor_user_id = $2
               AND action IN ('key.created', 'key.rotated')
             ORDER BY id DESC LIMIT 10000",
        )
        .bind(ws.as_str())
        .bind(user.as_str())
        .fetch_all(&self.read)
        .await?;
        let bounded: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM api_keys WHERE workspace_id = $1 AND member_id = $2
             ORDER BY id DESC LIMIT 10000",
        )
        .bind(ws.as_str())
        .bind(user.as_str())
        .fetch_all(&self.read)
        .await?;
        let mut made: std::collections::HashSet<String> = bounded.into_iter().collect();
        for row in &rows {
            let action: String = sqlx::Row::try_get(row, "action")?;
            if action == "key.created" {
                made.insert(sqlx::Row::try_get(row, "target_id")?);
                continue;
            }
            let details: String = sqlx::Row::try_get(row, "details")?;
            let details: serde_json::Value = serde_json::from_str(&details)
                .map_err(|e| crate::StoreError::Corrupt(format!("audit_log.details: {e}")))?;
            if let Some(new) = details["replaced_by"].as_str() {
                made.insert(new.to_owned());
            }
        }
        Ok(made)
    }

    /// The audit log of a workspace, newest first (the latest 1,000), optionally for one target.
    pub async fn list_audit(
        &self,
        ws: &WorkspaceId,
        target_id: Option<&str>,
    ) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, workspace_id, actor, actor_key_id, actor_user_id, action, target_id, request_id, details,
                    created_at
             FROM audit_log WHERE workspace_id = $1 AND ($2 IS NULL OR target_id = $2)
             ORDER BY id DESC LIMIT 1000",
        )
        .bind(ws.as_str())
        .bind(target_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }
}

/// A key made by a key only while that key is live: under a lock on it on PostgreSQL (on
/// SQLite a write transaction is the only writer), so a revocation of the maker's line (a
/// member leaving, a grant ending) comes either before (and nothing is made) or after (and
/// finds this key among what it made), never between a request's authentication and the
/// write, leaving a key nobody revokes. A transaction takes this lock before any other key
/// row's (a rotation: before the key it replaces), in the order a revocation takes them
/// (the maker, then what it made), so the two cannot deadlock.
pub(crate) async fn check_maker_tx(
    store: &Store,
    tx: &mut sqlx::Transaction<'static, Any>,
    key: &KeyRow,
) -> Result<()> {
    let Some(maker) = &key.created_by else {
        return Ok(());
    };
    // The row is locked whatever its state (a condition on `revoked_at` would lock nothing
    // while it is live, which is when the lock matters).
    let revoked_at: Option<Option<i64>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT revoked_at FROM api_keys WHERE id = $1 {}",
        store.for_share()
    )))
    .bind(maker.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    if matches!(revoked_at, Some(Some(_))) {
        return Err(StoreError::Conflict(
            "the key making this one was revoked meanwhile".into(),
        ));
    }
    Ok(())
}

/// Inserts `key`. A key with a maker (`created_by`) needs [`check_maker_tx`] first, at the
/// start of the transaction; the redemptions (an app's code, a device login) make keys of
/// no maker.
pub(crate) async fn insert_key_tx(
    tx: &mut sqlx::Transaction<'static, Any>,
    key: &KeyRow,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, workspace_id, name, description, prefix, digest, mode, scopes,
            per_minute, per_day, allowed_ips, allowed_origins, expires_at, last_used_at,
            request_count, created_at, updated_at, revoked_at, replaced_by, created_by,
            allowed_brand_ids, allowed_account_ids, member_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
            $19, $20, $21, $22, $23)",
    )
    .bind(key.id.as_str())
    .bind(key.workspace_id.as_str())
    .bind(&key.name)
    .bind(&key.description)
    .bind(&key.prefix)
    .bind(key.digest.to_hex())
    .bind(key.mode.as_str())
    .bind(key.scopes.to_storage())
    .bind(i64::from(key.per_minute))
    .bind(i64::from(key.per_day))
    .bind(to_json(&key.allowed_ips))
    .bind(to_json(&key.allowed_origins))
    .bind(key.expires_at)
    .bind(key.last_used_at)
    .bind(key.request_count)
    .bind(key.created_at)
    .bind(key.updated_at)
    .bind(key.revoked_at)
    .bind(key.replaced_by.as_ref().map(|k| k.as_str()))
    .bind(key.created_by.as_ref().map(|k| k.as_str()))
    .bind(to_json(&key.allowed_brand_ids))
    .bind(to_json(&key.allowed_account_ids))
    .bind(key.member_id.as_ref().map(|u| u.as_str()))
    .execute(&mut **tx)
    .await
    .map_err(unique_to_conflict("a key with this digest"))?;
    Ok(())
}

pub(crate) async fn insert_audit(
    tx: &mut sqlx::Transaction<'static, Any>,
    e: &AuditEntry,
) -> Result<()> {
    let (actor, actor_key, actor_user) = match &e.actor {
        Actor::Key(k) => ("key", Some(k.as_str()), None),
        Actor::User(u) => ("user", None, Some(u.as_str())),
        Actor::Cli => ("cli", None, None),
    };
    sqlx::query(
        "INSERT INTO audit_log (id, workspace_id, actor, actor_key_id, action, target_id,
            request_id, details, created_at, actor_user_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(e.id.as_str())
    .bind(e.workspace_id.as_str())
    .bind(actor)
    .bind(actor_key)
    .bind(&e.action)
    .bind(&e.target_id)
    .bind(e.request_id.as_deref())
    .bind(e.details.to_string())
    .bind(e.created_at)
    .bind(actor_user)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn emit_key_event(
    tx: &mut sqlx::Transaction<'static, Any>,
    key: &KeyRow,
    kind: &str,
) -> Result<()> {
    let data = serde_json::to_value(KeyObject::from_row(key, None)).expect("a key object");
    emit(
        tx,
        key.workspace_id.as_str(),
        key.mode == KeyMode::Live,
        kind,
        &data,
        key.revoked_at.unwrap_or(key.updated_at),
        None,
    )
    .await?;
    Ok(())
}

impl Store {
    /// Sends `key.expiring` once for each active key that expires within `within_ms`.
    pub async fn emit_key_expiring(&self, now: i64, within_ms: i64) -> Result<usize> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE api_keys SET expiry_notified_at = $1
             WHERE revoked_at IS NULL AND expiry_notified_at IS NULL AND app_client_id IS NULL
               AND expires_at IS NOT NULL AND expires_at > $1 AND expires_at <= $2
             RETURNING {COLUMNS}"
        )))
        .bind(now)
        .bind(now + within_ms)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let key = key_from_row(row)?;
            let data = serde_json::to_value(KeyObject::from_row(&key, None)).expect("a key object");
            emit(
                &mut tx,
                key.workspace_id.as_str(),
                key.mode == KeyMode::Live,
                types::KEY_EXPIRING,
                &data,
                now,
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }
}
