//! Media objects: their rows, as the media rules (crier-app `media.rs`) decide them.
//!
//! What storage guarantees here:
//! - A workspace never holds more than the given number of pending uploads: the insert is
//!   conditional on the count, in one statement.
//! - `pending` → `ready` happens once (`UPDATE … WHERE status = 'pending'`), in one transaction
//!   with the quota check and the `media.ready` event. The quota check sums the workspace's
//!   ready bytes in that transaction, after locking the workspace row on PostgreSQL (SQLite
//!   serialises writers), so two confirms racing for the last bytes cannot both fit.
//! - A media object is deleted only if no post of the workspace that is `scheduled`,
//!   `pending_approval` or `publishing` names it, checked in the delete statement itself.
//!   A schedule that races the delete (it read the media as ready before the delete committed)
//!   still cannot publish it: the publisher reads the media again and fails the target with
//!   `media_rejected`.
//! - The purge removes only pending rows whose upload URL expired before the given time.

use crier_core::Tenant;
use crier_core::ids::{MediaId, WorkspaceId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{Page, corrupt};
use crate::{Backend, Result, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaStatus {
    Pending,
    Ready,
}

impl MediaStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaStatus::Pending => "pending",
            MediaStatus::Ready => "ready",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "ready" => Some(Self::Ready),
            _ => None,
        }
    }
}

/// A media object as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub id: MediaId,
    pub workspace_id: WorkspaceId,
    pub livemode: bool,
    pub status: MediaStatus,
    pub filename: String,
    /// What the client said it would upload.
    pub declared_type: String,
    /// What the bytes are (set when ready).
    pub content_type: Option<String>,
    /// Declared while pending, actual once ready.
    pub size: u64,
    pub sha256: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
    pub alt_text: Option<String>,
    /// The object's key in media storage.
    pub storage_key: String,
    pub upload_expires_at: i64,
    pub created_at: i64,
    pub ready_at: Option<i64>,
}

/// What confirming found in the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFacts {
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmOutcome {
    Ready(Box<Media>),
    /// The workspace's ready bytes (`used`) plus these would pass `limit`.
    QuotaExceeded {
        used: u64,
        limit: u64,
    },
    /// Not pending any more (confirmed or deleted meanwhile).
    NotPending,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted(Box<Media>),
    /// A scheduled, pending-approval or publishing post names it.
    InUse,
    Missing,
}

const COLUMNS: &str = "id, workspace_id, livemode, status, filename, declared_type, content_type,
    size, sha256, width, height, duration_ms, alt_text, storage_key, upload_expires_at,
    created_at, ready_at";

/// Post statuses during which a post's media may not be deleted.
const IN_USE: &str = "('scheduled', 'pending_approval', 'publishing')";

fn opt_u32(r: &AnyRow, col: &str) -> Result<Option<u32>> {
    r.try_get::<Option<i64>, _>(col)?
        .map(|v| u32::try_from(v).map_err(|_| corrupt(format!("media.{col}"))))
        .transpose()
}

fn media_from_row(r: &AnyRow) -> Result<Media> {
    let status: String = r.try_get("status")?;
    Ok(Media {
        id: MediaId::from_trusted(r.try_get("id")?),
        workspace_id: WorkspaceId::from_trusted(r.try_get("workspace_id")?),
        livemode: r.try_get::<i64, _>("livemode")? != 0,
        status: MediaStatus::parse(&status).ok_or_else(|| corrupt("media.status"))?,
        filename: r.try_get("filename")?,
        declared_type: r.try_get("declared_type")?,
        content_type: r.try_get("content_type")?,
        size: u64::try_from(r.try_get::<i64, _>("size")?).map_err(|_| corrupt("media.size"))?,
        sha256: r.try_get("sha256")?,
        width: opt_u32(r, "width")?,
        height: opt_u32(r, "height")?,
        duration_ms: r
            .try_get::<Option<i64>, _>("duration_ms")?
            .map(|v| u64::try_from(v).map_err(|_| corrupt("media.duration_ms")))
            .transpose()?,
        alt_text: r.try_get("alt_text")?,
        storage_key: r.try_get("storage_key")?,
        upload_expires_at: r.try_get("upload_expires_at")?,
        created_at: r.try_get("created_at")?,
        ready_at: r.try_get("ready_at")?,
    })
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// Stores a new pending media object unless the workspace already has `max_pending`
    /// pending uploads; `false` then.
    pub async fn insert_media(&self, m: &Media, max_pending: i64) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO media (id, workspace_id, livemode, status, filename, declared_type,
                size, alt_text, storage_key, upload_expires_at, created_at)
             SELECT $1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10
             WHERE (SELECT COUNT(*) FROM media WHERE workspace_id = $2 AND status = 'pending')
                   < $11",
        )
        .bind(m.id.as_str())
        .bind(m.workspace_id.as_str())
        .bind(i64::from(m.livemode))
        .bind(&m.filename)
        .bind(&m.declared_type)
        .bind(i64_of(m.size))
        .bind(m.alt_text.as_deref())
        .bind(&m.storage_key)
        .bind(m.upload_expires_at)
        .bind(m.created_at)
        .bind(max_pending)
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// One media object of the workspace (either mode: callers check the mode).
    pub async fn get_media(&self, ws: &WorkspaceId, id: &MediaId) -> Result<Option<Media>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM media WHERE workspace_id = $1 AND id = $2"
        )))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(media_from_row).transpose()
    }

    /// One media object of the tenant's workspace and mode.
    pub async fn get_media_in(&self, tenant: &Tenant, id: &MediaId) -> Result<Option<Media>> {
        Ok(self
            .get_media(&tenant.workspace, id)
            .await?
            .filter(|m| m.livemode == tenant.livemode))
    }

    /// The media object a signed upload or read URL names. The one look-up without a
    /// workspace: the URL's signature, checked before this is called, is what names it (as a
    /// key names its workspace in `key_by_digest`).
    pub async fn media_by_signed_url(&self, id: &MediaId) -> Result<Option<Media>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM media WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(media_from_row).transpose()
    }

    /// The tenant's media, newest first.
    pub async fn list_media(
        &self,
        tenant: &Tenant,
        limit: u32,
        offset: u32,
    ) -> Result<Page<Media>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM media WHERE workspace_id = $1 AND livemode = $2
             ORDER BY id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(tenant.workspace.as_str())
        .bind(i64::from(tenant.livemode))
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .fetch_all(&self.read)
        .await?;
        let items = rows
            .iter()
            .map(media_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit))
    }

    /// Bytes of the tenant's ready media.
    pub async fn ready_media_bytes(&self, tenant: &Tenant) -> Result<u64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM media
             WHERE workspace_id = $1 AND livemode = $2 AND status = 'ready'",
        )
        .bind(tenant.workspace.as_str())
        .bind(i64::from(tenant.livemode))
        .fetch_one(&self.read)
        .await?;
        Ok(u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0))
    }

    /// Marks a pending media object ready with what its bytes are, if the tenant's ready bytes
    /// plus these fit `limit` (`None`: no limit), and emits `media.ready`, in one transaction.
    pub async fn confirm_media(
        &self,
        tenant: &Tenant,
        id: &MediaId,
        facts: &MediaFacts,
        limit: Option<u64>,
        now: i64,
    ) -> Result<ConfirmOutcome> {
        let mut tx = self.begin().await?;
        if self.backend == Backend::Postgres {
            // Serialises confirms (and their quota sums) per workspace.
            sqlx::query("SELECT id FROM workspaces WHERE id = $1 FOR UPDATE")
                .bind(tenant.workspace.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        }
        if let Some(limit) = limit {
            let row = sqlx::query(
                "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM media
                 WHERE workspace_id = $1 AND livemode = $2 AND status = 'ready'",
            )
            .bind(tenant.workspace.as_str())
            .bind(i64::from(tenant.livemode))
            .fetch_one(&mut *tx)
            .await?;
            let used = u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0);
            if used.saturating_add(facts.size) > limit {
                return Ok(ConfirmOutcome::QuotaExceeded { used, limit });
            }
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE media SET status = 'ready', content_type = $3, size = $4, sha256 = $5,
                width = $6, height = $7, duration_ms = $8, ready_at = $9
             WHERE workspace_id = $1 AND id = $2 AND livemode = $10 AND status = 'pending'
             RETURNING {COLUMNS}"
        )))
        .bind(tenant.workspace.as_str())
        .bind(id.as_str())
        .bind(&facts.content_type)
        .bind(i64_of(facts.size))
        .bind(&facts.sha256)
        .bind(facts.width.map(i64::from))
        .bind(facts.height.map(i64::from))
        .bind(facts.duration_ms.map(i64_of))
        .bind(now)
        .bind(i64::from(tenant.livemode))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(ConfirmOutcome::NotPending);
        };
        let media = media_from_row(&row)?;
        let data = serde_json::to_value(crate::views::MediaObject::from(&media))
            .map_err(|e| corrupt(format!("media event: {e}")))?;
        crate::events::emit(
            &mut tx,
            tenant.workspace.as_str(),
            tenant.livemode,
            crate::event_types::MEDIA_READY,
            &data,
            now,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(ConfirmOutcome::Ready(Box::new(media)))
    }

    /// Sets (or with `None` clears) a media object's alt text.
    pub async fn set_media_alt_text(
        &self,
        tenant: &Tenant,
        id: &MediaId,
        alt_text: Option<&str>,
    ) -> Result<Option<Media>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE media SET alt_text = $3 WHERE workspace_id = $1 AND id = $2
               AND livemode = $4 RETURNING {COLUMNS}"
        )))
        .bind(tenant.workspace.as_str())
        .bind(id.as_str())
        .bind(alt_text)
        .bind(i64::from(tenant.livemode))
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(media_from_row).transpose()
    }

    /// Deletes a media object unless a scheduled, pending-approval or publishing post of the
    /// workspace names it (one statement: the check and the delete cannot be split).
    pub async fn delete_media(&self, tenant: &Tenant, id: &MediaId) -> Result<DeleteOutcome> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM media WHERE workspace_id = $1 AND id = $2 AND livemode = $3
               AND NOT EXISTS (SELECT 1 FROM posts WHERE workspace_id = $1
                   AND status IN {IN_USE} AND media_ids LIKE $4)
             RETURNING {COLUMNS}"
        )))
        .bind(tenant.workspace.as_str())
        .bind(id.as_str())
        .bind(i64::from(tenant.livemode))
        // Ids are base62 after the prefix: no LIKE wildcard can be in one.
        .bind(format!("%\"{}\"%", id.as_str()))
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match row {
            Some(r) => DeleteOutcome::Deleted(Box::new(media_from_row(&r)?)),
            None => {
                let exists = sqlx::query(
                    "SELECT 1 FROM media WHERE workspace_id = $1 AND id = $2 AND livemode = $3",
                )
                .bind(tenant.workspace.as_str())
                .bind(id.as_str())
                .bind(i64::from(tenant.livemode))
                .fetch_optional(&mut *tx)
                .await?;
                if exists.is_some() {
                    DeleteOutcome::InUse
                } else {
                    DeleteOutcome::Missing
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Up to `limit` pending media objects whose upload URL expired before `before`.
    pub async fn expired_pending_media(&self, before: i64, limit: u32) -> Result<Vec<Media>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM media WHERE status = 'pending' AND upload_expires_at < $1
             ORDER BY upload_expires_at LIMIT $2"
        )))
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(media_from_row).collect()
    }

    /// Deletes one pending media object if it is still pending and expired before `before`.
    pub async fn delete_expired_pending_media(&self, id: &MediaId, before: i64) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM media WHERE id = $1 AND status = 'pending' AND upload_expires_at < $2",
        )
        .bind(id.as_str())
        .bind(before)
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
