//! Device logins (RFC 8628) for the CLI: a pending request with a device code (stored as its
//! digest) and a short user code; a user approves or denies it once; the device redeems an
//! approval once, for an API key made in the same transaction.

use crier_core::ids::{DeviceLoginId, KeyId, UserId, WorkspaceId};
use crier_core::scopes::ScopeSet;
use crier_core::{KeyDigest, Role};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::keys::{insert_audit, insert_key_tx};
use crate::model::{AuditEntry, KeyRow};
use crate::{Redeemed, Result, Store, StoreError, unique_to_conflict};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
    /// Its key was handed out; nothing more comes of it.
    Redeemed,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Redeemed => "redeemed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "redeemed" => Self::Redeemed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLogin {
    pub id: DeviceLoginId,
    pub user_code: String,
    pub client_name: String,
    pub scopes: ScopeSet,
    pub status: DeviceStatus,
    pub user_id: Option<UserId>,
    pub workspace_id: Option<WorkspaceId>,
    pub key_id: Option<KeyId>,
    pub created_at: i64,
    pub expires_at: i64,
    pub interval_ms: i64,
    pub polled_at: Option<i64>,
    pub decided_at: Option<i64>,
}

/// What a poll of the token endpoint found, after recording the poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePoll {
    /// No such device code.
    Unknown,
    /// Polled again sooner than the interval allows (the interval has grown by 5 s).
    TooSoon,
    /// The login as it stands (its status says what to answer).
    Found(Box<DeviceLogin>),
}

const COLUMNS: &str = "id, user_code, client_name, scopes, status, user_id, workspace_id, \
    key_id, created_at, expires_at, interval_ms, polled_at, decided_at";

fn device_from_row(row: &AnyRow) -> Result<DeviceLogin> {
    let status: String = row.try_get("status")?;
    let scopes: String = row.try_get("scopes")?;
    let user: Option<String> = row.try_get("user_id")?;
    let ws: Option<String> = row.try_get("workspace_id")?;
    let key: Option<String> = row.try_get("key_id")?;
    Ok(DeviceLogin {
        id: DeviceLoginId::from_trusted(row.try_get("id")?),
        user_code: row.try_get("user_code")?,
        client_name: row.try_get("client_name")?,
        scopes: ScopeSet::from_storage(&scopes),
        status: DeviceStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("device_logins.status: {status}")))?,
        user_id: user.map(UserId::from_trusted),
        workspace_id: ws.map(WorkspaceId::from_trusted),
        key_id: key.map(KeyId::from_trusted),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        interval_ms: row.try_get("interval_ms")?,
        polled_at: row.try_get("polled_at")?,
        decided_at: row.try_get("decided_at")?,
    })
}

impl Store {
    /// Stores a new pending device login. [`StoreError::Conflict`] if its user code is taken
    /// (the caller draws another).
    pub async fn insert_device_login(&self, d: &DeviceLogin, digest: &KeyDigest) -> Result<()> {
        sqlx::query(
            "INSERT INTO device_logins (id, device_digest, user_code, client_name, scopes, status,
                created_at, expires_at, interval_ms)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8)",
        )
        .bind(d.id.as_str())
        .bind(digest.to_hex())
        .bind(&d.user_code)
        .bind(&d.client_name)
        .bind(d.scopes.to_storage())
        .bind(d.created_at)
        .bind(d.expires_at)
        .bind(d.interval_ms)
        .execute(&self.write)
        .await
        .map_err(unique_to_conflict("a device login with this code"))?;
        Ok(())
    }

    /// Device logins still waiting for a decision at `now`.
    pub async fn count_open_device_logins(&self, now: i64) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM device_logins WHERE status = 'pending' AND expires_at > $1",
        )
        .bind(now)
        .fetch_one(&self.read)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// The device login with this user code, whatever its state.
    pub async fn device_by_user_code(&self, code: &str) -> Result<Option<DeviceLogin>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM device_logins WHERE user_code = $1"
        )))
        .bind(code)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    /// Approves (with the workspace and user it acts for) or denies a pending login that has
    /// not expired. False when it was no longer pending or has expired.
    pub async fn decide_device(
        &self,
        id: &DeviceLoginId,
        decision: Option<(&UserId, &WorkspaceId)>,
        now: i64,
    ) -> Result<bool> {
        let (status, user, ws) = match decision {
            Some((u, w)) => (DeviceStatus::Approved, Some(u.as_str()), Some(w.as_str())),
            None => (DeviceStatus::Denied, None, None),
        };
        let done = sqlx::query(
            "UPDATE device_logins SET status = $2, user_id = $3, workspace_id = $4, decided_at = $5
             WHERE id = $1 AND status = 'pending' AND expires_at > $5",
        )
        .bind(id.as_str())
        .bind(status.as_str())
        .bind(user)
        .bind(ws)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a poll of the token endpoint by the holder of the device code. A poll sooner
    /// than the login's interval after the previous one is [`DevicePoll::TooSoon`] and adds 5 s
    /// to the interval (RFC 8628 §3.5).
    pub async fn poll_device(&self, digest: &KeyDigest, now: i64) -> Result<DevicePoll> {
        let before = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM device_logins WHERE device_digest = $1"
        )))
        .bind(digest.to_hex())
        .fetch_optional(&self.read)
        .await?;
        let Some(before) = before.as_ref().map(device_from_row).transpose()? else {
            return Ok(DevicePoll::Unknown);
        };
        let too_soon = before
            .polled_at
            .is_some_and(|at| now - at < before.interval_ms);
        let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE device_logins SET polled_at = $3,
                interval_ms = interval_ms + $4
             WHERE id = $1 AND (polled_at IS NULL AND $2 IS NULL OR polled_at = $2)
             RETURNING {COLUMNS}"
        )))
        .bind(before.id.as_str())
        .bind(before.polled_at)
        .bind(now)
        .bind(if too_soon { 5000_i64 } else { 0 })
        .fetch_optional(&self.write)
        .await?;
        match updated {
            // Another poll of the same code came in between: that is polling too fast.
            None => Ok(DevicePoll::TooSoon),
            Some(_) if too_soon => Ok(DevicePoll::TooSoon),
            Some(row) => Ok(DevicePoll::Found(Box::new(device_from_row(&row)?))),
        }
    }

    /// Hands out an approved login's key: marks it redeemed and stores `key` (with its audit
    /// entry) in one transaction, as a key of `user` (it ends with their membership), only
    /// while they are still a member with `role`, the role the key was checked against.
    /// [`Redeemed::CodeTaken`] when the login was not approved any more (redeemed already).
    pub async fn redeem_device(
        &self,
        id: &DeviceLoginId,
        key: &KeyRow,
        (user, role): (&UserId, Role),
        audit: &AuditEntry,
        now: i64,
    ) -> Result<Redeemed> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE device_logins SET status = 'redeemed', key_id = $2, decided_at = $3
             WHERE id = $1 AND status = 'approved'",
        )
        .bind(id.as_str())
        .bind(key.id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(Redeemed::CodeTaken);
        }
        if !crate::users::still_member_tx(self, &mut tx, &key.workspace_id, user, role).await? {
            tx.rollback().await?;
            return Ok(Redeemed::NoLongerGranted);
        }
        insert_key_tx(&mut tx, key).await?;
        sqlx::query("UPDATE api_keys SET user_id = $2 WHERE id = $1")
            .bind(key.id.as_str())
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, audit).await?;
        crate::keys::emit_key_event(&mut tx, key, crate::events::types::KEY_CREATED).await?;
        tx.commit().await?;
        Ok(Redeemed::Granted)
    }

    /// Deletes device logins that expired before `before`.
    pub async fn purge_device_logins(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM device_logins WHERE expires_at < $1")
            .bind(before)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }
}
