//! Recording how targets ended, many at once, on PostgreSQL.
//!
//! Under a publishing burst a worker finishes hundreds of targets a second, and on PostgreSQL
//! what each costs is its round trips, not the work of its statements. So every target that
//! ends while a batch is being written waits for the next one, and a batch records all of them
//! in one transaction of six statements however many there are (a lone target is a batch of
//! one: nothing waits for a timer). It does, for each target, exactly what
//! [`Store::finish_target_with`] does for one on SQLite, in the same order:
//!
//! 1. lock the posts that are still `scheduled` or `publishing`, in id order (two batches
//!    never wait for each other in a circle), and delete the jobs of those posts that are still
//!    held by the lease the worker has; a target whose job is gone (a cancel, edit or
//!    reschedule committed first) or is no longer its worker's (its lease ran out and another
//!    node claimed it) is left out and told `None`, nothing written for it;
//! 2. record the closing attempts and the targets' outcomes, and read every target of those
//!    posts as they now are (one `WITH`);
//! 3. set each post's status from its targets ([`status_from_targets`]), once per post however
//!    many of its targets ended in the batch;
//! 4. write the event each new status announces, with its webhook deliveries;
//! 5. count the live targets published in the workspaces' monthly usage.
//!
//! A batch that fails before its commit (a lock held past [`LOCK_TIMEOUT`], a value the
//! database refuses) wrote nothing and is written again one target at a time, so one bad target
//! costs the others nothing. A commit that fails may have committed: every caller in it gets
//! the error, as after its own failed transaction (its job comes back after the lease, and a
//! job already gone then is dropped).

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::FutureExt;

use crier_core::ids::{AttemptId, JobId, PostId};
use crier_core::posts::{PostStatus, TargetStatus, status_from_targets};
use sqlx::AnyPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::events::{NewEvent, emit_many};
use crate::model::*;
use crate::posts::{POST_READ, TARGET_COLUMNS, TargetOutcome, status_event};
use crate::usage::{METRIC_POSTS_PUBLISHED, shard_of};
use crate::views::PostObject;
use crate::{Result, StoreError, Tx, json};

/// Targets one batch records at most.
const MAX_BATCH: usize = 256;
/// Targets waiting for a batch at most; past it callers wait for room.
const QUEUE: usize = 4096;
/// Batches written at once (each on its own connection).
const WRITERS: usize = 2;
/// How long a batch waits for a row lock (a post another transaction is changing) before it
/// fails and its targets are written one at a time: a batch holds the locks of all its posts,
/// so one stuck lock holder must not hold them all for long.
const LOCK_TIMEOUT: &str = "5s";

/// One target's end, as [`Store::finish_target_with`] was given it.
#[derive(Debug, Clone)]
pub(crate) struct Finish {
    pub job: JobId,
    /// The job's lease as the worker holds it (`jobs.locked_until`).
    pub lease: i64,
    pub post: PostId,
    pub account: crier_core::ids::AccountId,
    pub outcome: TargetOutcome,
    /// The attempt that published the last part, and its external id.
    pub attempt: Option<(AttemptId, String)>,
    pub now: i64,
}

type Reply = oneshot::Sender<Result<Option<PostStatus>>>;

/// The handle of the batch writers (PostgreSQL only).
#[derive(Debug, Clone)]
pub(crate) struct FinishQueue {
    queue: mpsc::Sender<(Finish, Reply)>,
}

impl FinishQueue {
    /// Starts the writers over `pool`. They end when every handle is dropped.
    pub(crate) fn start(pool: AnyPool) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for _ in 0..WRITERS {
            let (pool, rx) = (pool.clone(), rx.clone());
            tokio::spawn(async move {
                let mut batch = Vec::with_capacity(MAX_BATCH);
                loop {
                    if rx.lock().await.recv_many(&mut batch, MAX_BATCH).await == 0 {
                        break;
                    }
                    // A panic is that batch's failure (its callers' replies are dropped: an
                    // error), not the writer's end.
                    let batch = std::mem::take(&mut batch);
                    let wrote = std::panic::AssertUnwindSafe(write(&pool, batch))
                        .catch_unwind()
                        .await;
                    if wrote.is_err() {
                        tracing::error!("writing a batch of finished targets panicked");
                    }
                }
            });
        }
        Self { queue }
    }

    /// Records `f` in the next batch; the post's status after it, or `None` when the target's
    /// job was gone and nothing was written.
    pub(crate) async fn run(&self, f: Finish) -> Result<Option<PostStatus>> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Batch("the batch writer has stopped".into());
        self.queue.send((f, reply)).await.map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Why a batch was not written.
enum Failed {
    /// Before its commit: nothing of it was written.
    Before(StoreError),
    /// At its commit: it may have been written.
    Commit(StoreError),
}

/// Writes `batch` and answers each caller. A target whose job is already in the batch (a
/// caller that asked twice) waits for the next one, written after this one commits.
async fn write(pool: &AnyPool, batch: Vec<(Finish, Reply)>) {
    let mut jobs = HashSet::new();
    let (mut rest, mut later): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .partition(|(f, _)| jobs.insert(f.job.clone()));
    while !rest.is_empty() {
        let (items, replies): (Vec<Finish>, Vec<Reply>) = rest.into_iter().unzip();
        match run_batch(pool, &items).await {
            Ok(statuses) => {
                for (reply, status) in replies.into_iter().zip(statuses) {
                    let _ = reply.send(Ok(status));
                }
            }
            Err(Failed::Before(e)) if items.len() > 1 => {
                tracing::warn!(error = %e, targets = items.len(), "a batch of finished targets failed; writing them one at a time");
                for (item, reply) in items.into_iter().zip(replies) {
                    let one = match run_batch(pool, std::slice::from_ref(&item)).await {
                        Ok(mut status) => Ok(status.pop().flatten()),
                        Err(Failed::Before(e) | Failed::Commit(e)) => Err(e),
                    };
                    let _ = reply.send(one);
                }
            }
            Err(Failed::Before(e) | Failed::Commit(e)) => {
                // A lone target, or a commit that may have committed: each caller gets the
                // error (the first as it came, the others as its text).
                let message = e.to_string();
                let mut replies = replies.into_iter();
                if let Some(first) = replies.next() {
                    let _ = first.send(Err(e));
                }
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Batch(message.clone())));
                }
            }
        }
        jobs.clear();
        (rest, later) = later
            .into_iter()
            .partition(|(f, _)| jobs.insert(f.job.clone()));
    }
}

/// One transaction over `items` (distinct jobs): each item's post status after it, or `None`.
async fn run_batch(
    pool: &AnyPool,
    items: &[Finish],
) -> std::result::Result<Vec<Option<PostStatus>>, Failed> {
    let before = |e: sqlx::Error| Failed::Before(e.into());
    // Every statement of a batch finds its rows by key. Left to its costs (a disk read for
    // each index probe), the planner answers the batch's few hundred keys with scans of whole
    // tables once they hold some thousands of rows (8.7 ms against 1.5 ms for step 2 on 10,000
    // targets, EXPLAIN ANALYZE), so scans are ruled out for the batch's transaction.
    let begin =
        format!("BEGIN; SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SET LOCAL enable_seqscan = off");
    let mut tx: Tx = pool
        .begin_with(sqlx::AssertSqlSafe(begin))
        .await
        .map_err(before)?;
    let out = record(&mut tx, items).await.map_err(Failed::Before)?;
    tx.commit().await.map_err(|e| Failed::Commit(e.into()))?;
    Ok(out)
}

/// The statements of one batch, in `tx`.
async fn record(tx: &mut Tx, items: &[Finish]) -> Result<Vec<Option<PostStatus>>> {
    // 1. The posts locked in id order, then their jobs taken.
    let pairs: Vec<_> = items
        .iter()
        .map(|f| serde_json::json!({"job": f.job.as_str(), "lease": f.lease, "post": f.post.as_str()}))
        .collect();
    let taken: HashSet<String> = sqlx::query_scalar(
        "WITH x AS (SELECT * FROM jsonb_to_recordset(CAST($1 AS jsonb))
                AS x(job text, lease bigint, post text)),
            p AS (SELECT id FROM posts WHERE id IN (SELECT post FROM x)
                AND status IN ('scheduled', 'publishing') ORDER BY id FOR NO KEY UPDATE)
         DELETE FROM jobs USING x WHERE jobs.id = x.job AND jobs.locked_until = x.lease
            AND x.post IN (SELECT id FROM p)
         RETURNING jobs.id",
    )
    .bind(json(&pairs))
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    let kept: Vec<&Finish> = items
        .iter()
        .filter(|f| taken.contains(f.job.as_str()))
        .collect();
    if kept.is_empty() {
        return Ok(vec![None; items.len()]);
    }
    // 2. The closing attempts and the targets, and every target of those posts as it now is.
    let ends: Vec<_> = kept.iter().map(|f| end_row(f)).collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH x AS (SELECT * FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS x(xp text, xa text,
                pub bigint, ext text, xurl text, parts text, ecode text, emsg text, att text,
                att_ext text, at bigint)),
            a AS (UPDATE publish_attempts SET outcome = 'published', external_id = x.att_ext,
                finished_at = x.at FROM x WHERE publish_attempts.id = x.att),
            t AS (UPDATE post_targets SET
                status = CASE WHEN x.pub = 1 THEN 'published' ELSE 'failed' END,
                external_id = CASE WHEN x.pub = 1 THEN x.ext ELSE external_id END,
                url = CASE WHEN x.pub = 1 THEN x.xurl ELSE url END,
                part_ids = CASE WHEN x.pub = 1 THEN x.parts ELSE part_ids END,
                error_code = x.ecode, error_message = x.emsg,
                published_at = CASE WHEN x.pub = 1 THEN x.at ELSE published_at END
              FROM x WHERE post_id = x.xp AND account_id = x.xa
              RETURNING {TARGET_COLUMNS})
         SELECT {TARGET_COLUMNS} FROM t
         UNION ALL SELECT {TARGET_COLUMNS} FROM post_targets
           WHERE post_id IN (SELECT xp FROM x)
             AND (post_id, account_id) NOT IN (SELECT xp, xa FROM x)"
    )))
    .bind(json(&ends))
    .fetch_all(&mut **tx)
    .await?;
    let mut targets: BTreeMap<PostId, Vec<Target>> = BTreeMap::new();
    for row in &rows {
        let t = target_from_row(row)?;
        targets.entry(t.post_id.clone()).or_default().push(t);
    }
    // 3. Each post's status from its targets, once per post.
    // A post's change is dated by the latest of its targets' ends in the batch.
    let mut dated: HashMap<&PostId, i64> = HashMap::new();
    for f in &kept {
        let at = dated.entry(&f.post).or_insert(f.now);
        *at = (*at).max(f.now);
    }
    let mut changes = Vec::with_capacity(targets.len());
    for (post, ts) in &mut targets {
        ts.sort_by_key(|t| t.position);
        let statuses: Vec<TargetStatus> = ts.iter().map(|t| t.status).collect();
        let status = status_from_targets(&statuses);
        let at = dated.get(post).copied().unwrap_or_default();
        let published = matches!(
            status,
            PostStatus::Published | PostStatus::PartiallyPublished
        );
        changes.push(serde_json::json!({
            "xid": post.as_str(), "st": status.as_str(), "pub": published as i64, "at": at,
        }));
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE posts SET status = x.st, updated_at = x.at, version = version + 1,
            published_at = CASE WHEN x.pub = 1 AND published_at IS NULL THEN x.at
                ELSE published_at END
         FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS x(xid text, st text, pub bigint, at bigint)
         WHERE id = x.xid RETURNING {POST_READ}"
    )))
    .bind(json(&changes))
    .fetch_all(&mut **tx)
    .await?;
    let mut posts: BTreeMap<PostId, Post> = BTreeMap::new();
    for row in &rows {
        let mut post = post_from_row(row)?;
        post.targets = targets.remove(&post.id).unwrap_or_default();
        posts.insert(post.id.clone(), post);
    }
    // 4. The events the new statuses announce.
    let mut events = Vec::new();
    for post in posts.values() {
        if let Some(kind) = status_event(post.status) {
            let data = serde_json::to_value(PostObject::from(post)).expect("a post object");
            events.push(NewEvent {
                workspace: post.workspace_id.as_str(),
                livemode: post.livemode,
                kind,
                data,
                created_at: post.updated_at,
            });
        }
    }
    emit_many(tx, &events).await?;
    // 5. Live targets published, counted per workspace, month and shard (in key order, so
    //    two batches never wait for each other in a circle).
    let mut counts: BTreeMap<(&str, String, i64), i64> = BTreeMap::new();
    for f in &kept {
        let live = posts.get(&f.post).is_some_and(|p| p.livemode);
        if live && matches!(f.outcome, TargetOutcome::Published { .. }) {
            let ws = posts[&f.post].workspace_id.as_str();
            let period = crier_core::clock::Month::of(f.now).period;
            *counts
                .entry((ws, period, shard_of(f.post.as_str())))
                .or_default() += 1;
        }
    }
    if !counts.is_empty() {
        let rows: Vec<_> = counts
            .iter()
            .map(|((ws, period, shard), n)| {
                serde_json::json!({"ws": ws, "period": period, "shard": shard, "n": n})
            })
            .collect();
        sqlx::query(
            "INSERT INTO usage_counters (workspace_id, period, metric, shard, value)
             SELECT ws, period, $2, shard, n FROM jsonb_to_recordset(CAST($1 AS jsonb))
                AS x(ws text, period text, shard bigint, n bigint)
             ORDER BY ws, period, shard
             ON CONFLICT (workspace_id, period, metric, shard)
             DO UPDATE SET value = usage_counters.value + excluded.value",
        )
        .bind(json(&rows))
        .bind(METRIC_POSTS_PUBLISHED)
        .execute(&mut **tx)
        .await?;
    }
    Ok(items
        .iter()
        .map(|f| {
            taken
                .contains(f.job.as_str())
                .then(|| posts.get(&f.post).map(|p| p.status))
                .flatten()
        })
        .collect())
}

/// The values step 2 records for one target: `pub` 1 when it published, its external id,
/// url and part ids, or its error; the closing attempt and its external id.
fn end_row(f: &Finish) -> serde_json::Value {
    let (att, att_ext) = match &f.attempt {
        Some((a, ext)) => (Some(a.as_str()), Some(ext.as_str())),
        None => (None, None),
    };
    let base = serde_json::json!({
        "xp": f.post.as_str(), "xa": f.account.as_str(), "at": f.now,
        "att": att, "att_ext": att_ext,
    });
    let mut row = base.as_object().cloned().expect("an object");
    match &f.outcome {
        TargetOutcome::Published {
            external_id,
            url,
            part_ids,
        } => {
            row.insert("pub".into(), 1.into());
            row.insert("ext".into(), external_id.as_str().into());
            row.insert("xurl".into(), url.as_str().into());
            row.insert("parts".into(), json(part_ids).into());
        }
        TargetOutcome::Failed(e) => {
            row.insert("pub".into(), 0.into());
            row.insert("ecode".into(), e.code.as_str().into());
            row.insert("emsg".into(), e.message.as_str().into());
        }
    }
    row.into()
}
