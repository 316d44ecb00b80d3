//! Posts and their targets (one per account), and the paths that change a post's status.
//!
//! A post's status changes only through [`Store::transition`] (from outside the publisher),
//! [`store_new_post`] (a post coming into being) and [`Store::finish_target`] (the publisher's
//! final outcome of a target). Each writes the status, the post's jobs and the event its new
//! status announces in one transaction, conditional on the status it expects, and locks the
//! post row first, so a racing cancel and a racing worker cannot both win.

use std::collections::HashMap;

use crier_core::Tenant;
use crier_core::ids::{AccountId, AttemptId, PostId, WorkspaceId};
use crier_core::posts::PostStatus;
use sqlx::Row;

use crate::events::{emit, types};
use crate::jobs::{delete_jobs, enqueue_pending};
use crate::model::*;
use crate::views::PostObject;
use crate::{Result, Store, Tx, json};

const POST_COLUMNS: &str = "id, workspace_id, livemode, status, body, thread, account_ids, \
    media_ids, overrides, scheduled_at, published_at, review, created_at, updated_at, brand_id";
/// What a read returns: the stored columns and the version every change bumps.
pub(crate) const POST_READ: &str = "id, workspace_id, livemode, status, body, thread, account_ids, \
    media_ids, overrides, scheduled_at, published_at, review, created_at, updated_at, brand_id, \
    version";
pub(crate) const TARGET_COLUMNS: &str = "post_id, account_id, platform, position, status, external_id, \
    url, part_ids, attempts, error_code, error_message, published_at";

/// A change of a post: its status (possibly to the same one), and what must commit together
/// with it. [`Store::transition`] is the one function that writes it.
#[derive(Debug, Clone)]
pub struct Transition {
    pub from: PostStatus,
    pub to: PostStatus,
    /// `Some`: only if the post is still at this version (the one the change was decided on),
    /// so a decision cannot land on content or a time changed meanwhile in the same status.
    pub version: Option<i64>,
    /// `Some` replaces the post's content (body, thread, accounts, media, overrides) with this
    /// post's; its targets follow its accounts.
    pub content: Option<Post>,
    /// `Some` sets `scheduled_at` (to a time or to null).
    pub scheduled_at: Option<Option<i64>>,
    /// `Some` sets the review record.
    pub review: Option<Option<serde_json::Value>>,
    /// Failed targets go back to pending (a retry).
    pub reset_failed_targets: bool,
    /// Enqueue a publish job for every pending target, due at this time.
    pub enqueue_at: Option<i64>,
    pub now: i64,
}

impl Transition {
    /// `from` → `to` at `now`, changing nothing else; callers set what else commits with it
    /// by struct update.
    pub fn new(from: PostStatus, to: PostStatus, now: i64) -> Self {
        Self {
            from,
            to,
            version: None,
            content: None,
            scheduled_at: None,
            review: None,
            reset_failed_targets: false,
            enqueue_at: None,
            now,
        }
    }
}

impl Store {
    /// Stores a new post with its targets, jobs and event, in one transaction.
    pub async fn insert_post(&self, post: &Post) -> Result<()> {
        self.insert_posts(std::slice::from_ref(post)).await
    }

    /// Stores several posts all or nothing.
    pub async fn insert_posts(&self, posts: &[Post]) -> Result<()> {
        let mut tx = self.begin().await?;
        for post in posts {
            store_new_post(&mut tx, post).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_post(&self, ws: &WorkspaceId, id: &PostId) -> Result<Option<Post>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {POST_READ} FROM posts WHERE workspace_id = $1 AND id = $2"
        )))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut post = post_from_row(&row)?;
        post.targets = self.targets(&post.id).await?;
        Ok(Some(post))
    }

    /// The posts `ids` of any workspace with their targets, in two queries however many there
    /// are: what a worker's claim publishes, read at once. A post that does not exist is not
    /// in the map; the caller checks the workspace.
    pub async fn get_posts(&self, ids: &[PostId]) -> Result<HashMap<PostId, Post>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids = json(&ids.iter().map(PostId::as_str).collect::<Vec<_>>());
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {POST_READ} FROM posts WHERE {}",
            self.in_json_list("id", "$1")
        )))
        .bind(ids.as_str())
        .fetch_all(&self.read)
        .await?;
        let mut posts = rows
            .iter()
            .map(|r| post_from_row(r).map(|p| (p.id.clone(), p)))
            .collect::<Result<HashMap<_, _>>>()?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TARGET_COLUMNS} FROM post_targets WHERE {}",
            self.in_json_list("post_id", "$1")
        )))
        .bind(ids.as_str())
        .fetch_all(&self.read)
        .await?;
        for row in &rows {
            let target = target_from_row(row)?;
            if let Some(post) = posts.get_mut(&target.post_id) {
                post.targets.push(target);
            }
        }
        // Sorted here: an `ORDER BY` in the query lets SQLite walk the whole table in key order
        // instead of looking the ids up.
        for post in posts.values_mut() {
            post.targets.sort_by_key(|t| t.position);
        }
        Ok(posts)
    }

    /// The post `id` of `tenant`'s workspace and mode (`None` in the other mode).
    pub async fn get_post_in(&self, tenant: &Tenant, id: &PostId) -> Result<Option<Post>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {POST_READ} FROM posts WHERE workspace_id = $1 AND id = $2
               AND livemode = $3"
        )))
        .bind(tenant.workspace.as_str())
        .bind(id.as_str())
        .bind(tenant.livemode as i64)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut post = post_from_row(&row)?;
        post.targets = self.targets(&post.id).await?;
        Ok(Some(post))
    }

    async fn targets(&self, post: &PostId) -> Result<Vec<Target>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TARGET_COLUMNS} FROM post_targets WHERE post_id = $1 ORDER BY position"
        )))
        .bind(post.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(target_from_row).collect()
    }

    /// Posts of a workspace, newest first, filtered.
    pub async fn list_posts(
        &self,
        ws: &WorkspaceId,
        f: &PostFilter,
        limit: u32,
        offset: u32,
    ) -> Result<Page<Post>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {POST_READ} FROM posts p WHERE workspace_id = $1
               AND {status}
               AND ($3 IS NULL OR EXISTS (SELECT 1 FROM post_targets t
                                          WHERE t.post_id = p.id AND t.account_id = $3))
               AND ($4 IS NULL OR COALESCE(published_at, scheduled_at) >= $4)
               AND ($5 IS NULL OR COALESCE(published_at, scheduled_at) < $5)
               AND ($6 IS NULL OR livemode = $6)
               AND ($9 IS NULL OR NOT EXISTS (SELECT 1 FROM post_targets t
                                              WHERE t.post_id = p.id
                                                AND t.account_id NOT IN {within}))
             ORDER BY id DESC LIMIT $7 OFFSET $8",
            within = self.json_values("$9"),
            // Spelled out rather than `($2 IS NULL OR status = $2)`, so a plan made once for
            // every value can still seek `posts_by_status`.
            status = if f.status.is_some() {
                "status = $2"
            } else {
                "$2 IS NULL"
            },
        )))
        .bind(ws.as_str())
        .bind(f.status.map(PostStatus::as_str))
        .bind(f.account_id.as_ref().map(|a| a.as_str()))
        .bind(f.from)
        .bind(f.to)
        .bind(f.livemode.map(i64::from))
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .bind(f.within.as_ref().map(json))
        .fetch_all(&self.read)
        .await?;
        self.page_of_posts(&rows, limit).await
    }

    /// Scheduled posts (and those waiting for approval) in the order they will go out.
    /// `within`: only posts whose every target is one of these accounts.
    pub async fn list_queue(
        &self,
        tenant: &Tenant,
        within: Option<&[AccountId]>,
        limit: u32,
        offset: u32,
    ) -> Result<Page<Post>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {POST_READ} FROM posts p WHERE workspace_id = $1 AND livemode = $2
               AND status IN ('scheduled', 'pending_approval')
               AND ($5 IS NULL OR NOT EXISTS (SELECT 1 FROM post_targets t
                                              WHERE t.post_id = p.id
                                                AND t.account_id NOT IN {within}))
             ORDER BY COALESCE(scheduled_at, 0), id LIMIT $3 OFFSET $4",
            within = self.json_values("$5"),
        )))
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .bind(within.map(|w| json(&w)))
        .fetch_all(&self.read)
        .await?;
        self.page_of_posts(&rows, limit).await
    }

    /// A page of posts from `limit + 1` rows, with the targets of the ones on the page.
    async fn page_of_posts(&self, rows: &[sqlx::any::AnyRow], limit: u32) -> Result<Page<Post>> {
        let posts = rows.iter().map(post_from_row).collect::<Result<Vec<_>>>()?;
        let mut page = Page::from_overfetch(posts, limit);
        for p in &mut page.items {
            p.targets = self.targets(&p.id).await?;
        }
        Ok(page)
    }

    /// Applies a change of a post if it is still in `t.from`; `false` when it moved. The one
    /// path for changing a post from outside the publisher: in one transaction the status (and
    /// the content, when given), the post's jobs (all deleted, then one per pending target when
    /// `enqueue_at` says so) and the event its new status announces.
    ///
    /// The conditional `UPDATE` of the post row comes first and locks it, as the publisher's
    /// `begin_attempt` locks it first: so the two cannot both win.
    pub async fn transition(&self, ws: &WorkspaceId, id: &PostId, t: &Transition) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE posts SET status = $4,
                scheduled_at = CASE WHEN $5 = 1 THEN $6 ELSE scheduled_at END,
                review = CASE WHEN $7 = 1 THEN $8 ELSE review END,
                updated_at = $9, version = version + 1
             WHERE workspace_id = $1 AND id = $2 AND status = $3
               AND ($10 < 0 OR version = $10)",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(t.from.as_str())
        .bind(t.to.as_str())
        .bind(t.scheduled_at.is_some() as i64)
        .bind(t.scheduled_at.flatten())
        .bind(t.review.is_some() as i64)
        .bind(t.review.clone().flatten().map(|v| v.to_string()))
        .bind(t.now)
        .bind(t.version.unwrap_or(-1))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        if let Some(post) = &t.content {
            sqlx::query(
                "UPDATE posts SET body = $3, thread = $4, account_ids = $5, media_ids = $6,
                    overrides = $7, brand_id = $8
                 WHERE workspace_id = $1 AND id = $2",
            )
            .bind(ws.as_str())
            .bind(id.as_str())
            .bind(&post.body)
            .bind(json(&post.thread))
            .bind(json(&post.account_ids))
            .bind(json(&post.media_ids))
            .bind(json(&post.overrides))
            .bind(post.brand_id.as_ref().map(|b| b.as_str()))
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM post_targets WHERE post_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            insert_targets(&mut tx, post).await?;
        }
        delete_jobs(&mut tx, id).await?;
        if t.reset_failed_targets {
            // A client's retry starts a new round: the worker's retry budget counts the
            // failures after this marker, not those that already used up the last round.
            let failed = sqlx::query(
                "SELECT account_id FROM post_targets WHERE post_id = $1 AND status = 'failed'",
            )
            .bind(id.as_str())
            .fetch_all(&mut *tx)
            .await?;
            for row in failed {
                let account: String = row.try_get(0)?;
                sqlx::query(
                    "INSERT INTO publish_attempts (id, post_id, account_id, part, idem_key,
                        outcome, started_at, finished_at)
                     VALUES ($1, $2, $3, -1, '', 'retry', $4, $4)",
                )
                .bind(AttemptId::generate().as_str())
                .bind(id.as_str())
                .bind(account)
                .bind(t.now)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE post_targets SET status = 'pending', error_code = NULL,
                    error_message = NULL
                 WHERE post_id = $1 AND status = 'failed'",
            )
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        if let Some(at) = t.enqueue_at {
            enqueue_pending(&mut tx, ws, id, at, t.now).await?;
        }
        if let Some(kind) = status_event(t.to).filter(|_| t.from != t.to) {
            emit_post_event(&mut tx, id, kind, t.now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes a post that is not publishing, with its targets and jobs. `false` when its
    /// status is no longer `expected`.
    pub async fn delete_post(
        &self,
        ws: &WorkspaceId,
        id: &PostId,
        expected: PostStatus,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n =
            sqlx::query("DELETE FROM posts WHERE workspace_id = $1 AND id = $2 AND status = $3")
                .bind(ws.as_str())
                .bind(id.as_str())
                .bind(expected.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        delete_jobs(&mut tx, id).await?;
        for table in ["post_targets", "post_metrics"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE post_id = $1"
            )))
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records the parts of `job`'s target published so far (and the first one's link), while
    /// the target still waits for its outcome and the job is still held by the worker's lease
    /// (`job.locked_until`). Returns false, having written nothing, when either is no longer
    /// so: a worker that lost its job cannot overwrite what the node holding it now records.
    pub async fn record_parts(
        &self,
        job: &Job,
        part_ids: &[String],
        url: Option<&str>,
    ) -> Result<bool> {
        let (Some(post), Some(account)) = (&job.post_id, &job.account_id) else {
            return Ok(false);
        };
        let done = sqlx::query(
            "UPDATE post_targets SET part_ids = $3, url = COALESCE(url, $4)
             WHERE post_id = $1 AND account_id = $2 AND status IN ('pending', 'publishing')
               AND EXISTS (SELECT 1 FROM jobs WHERE id = $5 AND locked_until = $6)",
        )
        .bind(post.as_str())
        .bind(account.as_str())
        .bind(json(&part_ids))
        .bind(url)
        .bind(job.id.as_str())
        .bind(job.locked_until)
        .execute(&self.write)
        .await?
        .rows_affected()
            == 1;
        Ok(done)
    }

    /// Records a target's final outcome, deletes its job and updates the post's status, all
    /// in one transaction. Returns the post's new status, or `None` when the job was taken
    /// away meanwhile (its post cancelled, deleted or edited before any call went out), or is
    /// no longer held by `job.locked_until` (this node's lease ran out and another node claimed
    /// or finished it): then nothing is written.
    pub async fn finish_target(
        &self,
        job: &Job,
        outcome: &TargetOutcome,
        now: i64,
    ) -> Result<Option<PostStatus>> {
        self.finish_target_with(job, outcome, None, now).await
    }

    /// [`Store::finish_target`], also recording in the same transaction that `attempt` (the
    /// call that published the last part) published.
    pub async fn finish_target_with(
        &self,
        job: &Job,
        outcome: &TargetOutcome,
        attempt: Option<(&AttemptId, &str)>,
        now: i64,
    ) -> Result<Option<PostStatus>> {
        let (Some(post_id), Some(account)) = (job.post_id.clone(), job.account_id.clone()) else {
            self.drop_job(&job.id).await?;
            return Ok(None);
        };
        // With the other targets ending meanwhile, in a few statements (see `finish.rs`).
        self.finishing
            .run(crate::finish::Finish {
                job: job.id.clone(),
                lease: job.locked_until,
                post: post_id,
                account,
                outcome: outcome.clone(),
                attempt: attempt.map(|(a, ext)| (a.clone(), ext.to_owned())),
                now,
            })
            .await
    }

    /// Targets of live posts that are scheduled, publishing or awaiting approval and not yet
    /// published or failed, whose post is due in `[from, to)` (a post to publish now counts as
    /// due at 0): what a workspace's posts-per-month quota has to keep room for.
    pub async fn reserved_targets(&self, ws: &WorkspaceId, from: i64, to: i64) -> Result<i64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM post_targets t JOIN posts p ON p.id = t.post_id
             WHERE p.workspace_id = $1 AND p.livemode = 1
               AND p.status IN ('scheduled', 'publishing', 'pending_approval')
               AND t.status IN ('pending', 'publishing')
               AND COALESCE(p.scheduled_at, 0) >= $2 AND COALESCE(p.scheduled_at, 0) < $3",
        )
        .bind(ws.as_str())
        .bind(from)
        .bind(to)
        .fetch_one(&self.read)
        .await?;
        Ok(n)
    }
}

/// How a target ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetOutcome {
    Published {
        external_id: String,
        url: String,
        part_ids: Vec<String>,
    },
    Failed(TargetError),
}

/// Emits a post event carrying the post as it is inside `tx`.
async fn emit_post_event(tx: &mut Tx, post_id: &PostId, kind: &str, now: i64) -> Result<()> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {POST_READ} FROM posts WHERE id = $1"
    )))
    .bind(post_id.as_str())
    .fetch_one(&mut **tx)
    .await?;
    let mut post = post_from_row(&row)?;
    let targets = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {TARGET_COLUMNS} FROM post_targets WHERE post_id = $1 ORDER BY position"
    )))
    .bind(post_id.as_str())
    .fetch_all(&mut **tx)
    .await?;
    post.targets = targets.iter().map(target_from_row).collect::<Result<_>>()?;
    emit_post(tx, &post, kind, now).await
}

/// Emits event `kind` carrying `post` (as it is in this transaction).
async fn emit_post(tx: &mut Tx, post: &Post, kind: &str, now: i64) -> Result<()> {
    let data = serde_json::to_value(PostObject::from(post)).expect("a post object");
    emit(
        tx,
        post.workspace_id.as_str(),
        post.livemode,
        kind,
        &data,
        now,
        None,
    )
    .await?;
    Ok(())
}

/// The event a post's new status announces, if any.
pub(crate) fn status_event(status: PostStatus) -> Option<&'static str> {
    match status {
        PostStatus::Scheduled => Some(types::POST_SCHEDULED),
        PostStatus::PendingApproval => Some(types::POST_APPROVAL_REQUESTED),
        PostStatus::Published => Some(types::POST_PUBLISHED),
        // A post with any failed target: `data.status` tells failed from partially published.
        PostStatus::Failed | PostStatus::PartiallyPublished => Some(types::POST_FAILED),
        _ => None,
    }
}

/// Stores a new post in any status, with what its status brings: its jobs (a scheduled post's
/// at its time, a publishing post's now) and the event its status announces. Every way a post
/// comes into being (the API, batches, feeds) goes through here.
pub(crate) async fn store_new_post(tx: &mut Tx, post: &Post) -> Result<()> {
    insert_post_tx(tx, post).await?;
    let now = post.created_at;
    match (post.status, post.scheduled_at) {
        (PostStatus::Scheduled, Some(at)) => {
            enqueue_pending(tx, &post.workspace_id, &post.id, at, now).await?
        }
        (PostStatus::Publishing, _) => {
            enqueue_pending(tx, &post.workspace_id, &post.id, now, now).await?
        }
        _ => {}
    }
    if let Some(kind) = status_event(post.status) {
        // What was just stored: no need to read it back.
        emit_post(tx, post, kind, now).await?;
    }
    Ok(())
}

async fn insert_post_tx(tx: &mut Tx, post: &Post) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO posts ({POST_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    )))
    .bind(post.id.as_str())
    .bind(post.workspace_id.as_str())
    .bind(post.livemode as i64)
    .bind(post.status.as_str())
    .bind(&post.body)
    .bind(json(&post.thread))
    .bind(json(&post.account_ids))
    .bind(json(&post.media_ids))
    .bind(json(&post.overrides))
    .bind(post.scheduled_at)
    .bind(post.published_at)
    .bind(post.review.as_ref().map(|v| v.to_string()))
    .bind(post.created_at)
    .bind(post.updated_at)
    .bind(post.brand_id.as_ref().map(|b| b.as_str()))
    .execute(&mut **tx)
    .await?;
    insert_targets(tx, post).await
}

async fn insert_targets(tx: &mut Tx, post: &Post) -> Result<()> {
    for (i, t) in post.targets.iter().enumerate() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO post_targets (workspace_id, {TARGET_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )))
        .bind(post.workspace_id.as_str())
        .bind(post.id.as_str())
        .bind(t.account_id.as_str())
        .bind(&t.platform)
        .bind(i as i64)
        .bind(t.status.as_str())
        .bind(t.external_id.as_deref())
        .bind(t.url.as_deref())
        .bind(json(&t.part_ids))
        .bind(t.attempts)
        .bind(t.error.as_ref().map(|e| e.code.as_str()))
        .bind(t.error.as_ref().map(|e| e.message.as_str()))
        .bind(t.published_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
