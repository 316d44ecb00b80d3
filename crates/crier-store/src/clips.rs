//! Clip jobs as storage keeps them. A job is created with its job in the durable queue (one
//! transaction); a worker starts it (one more attempt), reports progress and finishes it only
//! while it is still `running` at the attempt it started, so a worker whose lease ran out, or a
//! job cancelled meanwhile, records nothing.

use crier_core::ids::{ClipId, JobId, WorkspaceId};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{JobKind, Page, corrupt, json_text};
use crate::{Result, Store, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Canceled,
}

impl ClipStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::Completed,
            Self::Failed,
            Self::Canceled,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    pub fn is_done(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }
}

/// One clip cut from the video.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutClip {
    pub start_ms: i64,
    pub end_ms: i64,
    pub media_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipJob {
    pub id: ClipId,
    pub workspace_id: WorkspaceId,
    pub livemode: bool,
    pub media_id: String,
    pub target_ms: i64,
    /// `9:16`, `1:1` or `16:9`.
    pub aspect: String,
    /// `crop` or `letterbox`.
    pub fit: String,
    pub max_clips: i64,
    /// The scene-change threshold, in thousandths (400: ffmpeg's `scene` score above 0.4).
    pub threshold: i64,
    pub status: ClipStatus,
    pub progress: i64,
    pub attempts: i64,
    pub duration_ms: Option<i64>,
    /// Where scenes change, in ms from the start.
    pub scenes: Vec<i64>,
    pub clips: Vec<CutClip>,
    pub error: Option<(String, String)>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// How a clip job ended, to record.
#[derive(Debug, Clone)]
pub struct ClipOutcome {
    pub status: ClipStatus,
    pub duration_ms: Option<i64>,
    pub scenes: Vec<i64>,
    pub clips: Vec<CutClip>,
    pub error: Option<(String, String)>,
}

const COLUMNS: &str = "id, workspace_id, livemode, media_id, target_ms, aspect, fit, max_clips, \
     threshold, status, progress, attempts, duration_ms, scenes, clips, error_code, \
     error_message, created_at, updated_at, finished_at";

fn from_row(row: &AnyRow) -> Result<ClipJob> {
    let status: String = row.try_get("status")?;
    let code: Option<String> = row.try_get("error_code")?;
    let message: Option<String> = row.try_get("error_message")?;
    Ok(ClipJob {
        id: ClipId::from_trusted(row.try_get("id")?),
        workspace_id: WorkspaceId::from_trusted(row.try_get("workspace_id")?),
        livemode: row.try_get::<i64, _>("livemode")? != 0,
        media_id: row.try_get("media_id")?,
        target_ms: row.try_get("target_ms")?,
        aspect: row.try_get("aspect")?,
        fit: row.try_get("fit")?,
        max_clips: row.try_get("max_clips")?,
        threshold: row.try_get("threshold")?,
        status: ClipStatus::parse(&status).ok_or_else(|| corrupt("clip_jobs.status"))?,
        progress: row.try_get("progress")?,
        attempts: row.try_get("attempts")?,
        duration_ms: row.try_get("duration_ms")?,
        scenes: json_text(row, "scenes")?,
        clips: json_text(row, "clips")?,
        error: code.zip(message),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

impl Store {
    /// Stores a new clip job with its job in the queue, due now.
    pub async fn insert_clip_job(&self, c: &ClipJob) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO clip_jobs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        )))
        .bind(c.id.as_str())
        .bind(c.workspace_id.as_str())
        .bind(c.livemode as i64)
        .bind(&c.media_id)
        .bind(c.target_ms)
        .bind(&c.aspect)
        .bind(&c.fit)
        .bind(c.max_clips)
        .bind(c.threshold)
        .bind(c.status.as_str())
        .bind(c.progress)
        .bind(c.attempts)
        .bind(c.duration_ms)
        .bind(json(&c.scenes))
        .bind(json(&c.clips))
        .bind(c.error.as_ref().map(|e| e.0.as_str()))
        .bind(c.error.as_ref().map(|e| e.1.as_str()))
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(c.finished_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO jobs (id, kind, workspace_id, ref_id, run_at, locked_until, created_at)
             VALUES ($1, $2, $3, $4, $5, 0, $5)",
        )
        .bind(JobId::generate().as_str())
        .bind(JobKind::Clip.as_str())
        .bind(c.workspace_id.as_str())
        .bind(c.id.as_str())
        .bind(c.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_clip_job(
        &self,
        ws: &WorkspaceId,
        livemode: bool,
        id: &ClipId,
    ) -> Result<Option<ClipJob>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM clip_jobs WHERE workspace_id = $1 AND livemode = $2 AND id = $3"
        )))
        .bind(ws.as_str())
        .bind(livemode as i64)
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The clip job `id` wherever it is (for the worker, which has only the job's reference).
    pub async fn clip_job(&self, id: &ClipId) -> Result<Option<ClipJob>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM clip_jobs WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn list_clip_jobs(
        &self,
        ws: &WorkspaceId,
        livemode: bool,
        limit: u32,
        offset: u32,
    ) -> Result<Page<ClipJob>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM clip_jobs WHERE workspace_id = $1 AND livemode = $2
             ORDER BY id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(ws.as_str())
        .bind(livemode as i64)
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .fetch_all(&self.read)
        .await?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit))
    }

    /// Clip jobs of a workspace not finished yet (both modes).
    pub async fn count_open_clip_jobs(&self, ws: &WorkspaceId) -> Result<i64> {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM clip_jobs
             WHERE workspace_id = $1 AND status IN ('queued', 'running')",
        )
        .bind(ws.as_str())
        .fetch_one(&self.read)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Starts (or after a lost worker, starts again) a clip job: one more attempt, `running`,
    /// progress from 0. `None` when it is gone, finished or cancelled.
    pub async fn start_clip_job(&self, id: &ClipId, now: i64) -> Result<Option<ClipJob>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE clip_jobs SET status = 'running', attempts = attempts + 1, progress = 0,
                updated_at = $2
             WHERE id = $1 AND status IN ('queued', 'running')
             RETURNING {COLUMNS}"
        )))
        .bind(id.as_str())
        .bind(now)
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Records progress of the start at `attempt`; `false` when the job is no longer that
    /// start's (cancelled, or taken over).
    pub async fn clip_job_progress(
        &self,
        id: &ClipId,
        attempt: i64,
        progress: i64,
        now: i64,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE clip_jobs SET progress = $3, updated_at = $4
             WHERE id = $1 AND status = 'running' AND attempts = $2",
        )
        .bind(id.as_str())
        .bind(attempt)
        .bind(progress.clamp(0, 100))
        .bind(now)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Records how the start at `attempt` ended and deletes its job, in one transaction; only
    /// if the job is still `running` at that attempt.
    pub async fn finish_clip_job(
        &self,
        job: &JobId,
        id: &ClipId,
        attempt: i64,
        o: &ClipOutcome,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE clip_jobs SET status = $3, progress = CASE WHEN $3 = 'completed' THEN 100
                    ELSE progress END,
                duration_ms = $4, scenes = $5, clips = $6, error_code = $7, error_message = $8,
                updated_at = $9, finished_at = $9
             WHERE id = $1 AND status = 'running' AND attempts = $2",
        )
        .bind(id.as_str())
        .bind(attempt)
        .bind(o.status.as_str())
        .bind(o.duration_ms)
        .bind(json(&o.scenes))
        .bind(json(&o.clips))
        .bind(o.error.as_ref().map(|e| e.0.as_str()))
        .bind(o.error.as_ref().map(|e| e.1.as_str()))
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(job.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Cancels a clip job that is queued or running (its queued job goes with it; a running
    /// one stops at its next look). `None`: no such job; `Some(false)`: already finished.
    pub async fn cancel_clip_job(
        &self,
        ws: &WorkspaceId,
        livemode: bool,
        id: &ClipId,
        now: i64,
    ) -> Result<Option<bool>> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE clip_jobs SET status = 'canceled', updated_at = $4, finished_at = $4
             WHERE workspace_id = $1 AND livemode = $2 AND id = $3
               AND status IN ('queued', 'running')",
        )
        .bind(ws.as_str())
        .bind(livemode as i64)
        .bind(id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.commit().await?;
            return Ok(self.get_clip_job(ws, livemode, id).await?.map(|_| false));
        }
        sqlx::query("DELETE FROM jobs WHERE kind = $1 AND ref_id = $2")
            .bind(JobKind::Clip.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(true))
    }
}
