//! A target's end, written with the others that end meanwhile (see `batch.rs`): a batch of
//! them takes at most six statements on PostgreSQL and ten on SQLite (which has no `WITH` that
//! writes) however many targets it holds. For each target it does, in this order:
//!
//! 1. lock the posts that are still `scheduled` or `publishing`, in id order (two batches
//!    never wait for each other in a circle), and delete the jobs of those posts that are still
//!    held by the lease the worker has; a target whose job is gone (a cancel, edit or
//!    reschedule committed first) or is no longer its worker's (its lease ran out and another
//!    node claimed it) is left out and told `None`, nothing written for it;
//! 2. record the closing attempts and the targets' outcomes, and read every target of those
//!    posts as they now are;
//! 3. set each post's status from its targets ([`status_from_targets`]), once per post however
//!    many of its targets ended in the batch;
//! 4. write the event each new status announces, with its webhook deliveries;
//! 5. count the live targets published in the workspaces' monthly usage.
//!
//! A target whose batch failed at its commit gets the error, as after its own failed
//! transaction: its job comes back after the lease, and a job already gone then is dropped.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::future::BoxFuture;

use crier_core::ids::{AttemptId, JobId, PostId};
use crier_core::posts::{PostStatus, TargetStatus, status_from_targets};

use crate::events::{NewEvent, emit_many};
use crate::model::*;
use crate::posts::{POST_READ, TARGET_COLUMNS, TargetOutcome, status_event};
use crate::usage::{METRIC_POSTS_PUBLISHED, shard_of};
use crate::views::PostObject;
use crate::{Result, Tx, json, recordset, with_recordset};

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

/// Targets' ends, written in batches (`batch.rs`): each answered with its post's status after
/// it, or `None` when its job was gone and nothing was written.
pub(crate) struct Finishing;

impl crate::batch::Kind for Finishing {
    type Item = Finish;
    type Out = Option<PostStatus>;

    fn key(item: &Finish) -> String {
        item.job.to_string()
    }

    fn record<'t>(tx: &'t mut Tx, items: &'t [Finish]) -> BoxFuture<'t, Result<Vec<Self::Out>>> {
        Box::pin(record(tx, items))
    }
}

/// The statements of one batch, in `tx`.
async fn record(tx: &mut Tx, items: &[Finish]) -> Result<Vec<Option<PostStatus>>> {
    let pg = crate::is_postgres(tx);
    // 1. The posts locked in id order (PostgreSQL; SQLite's writes are serialised), then
    //    their jobs taken.
    let pairs: Vec<_> = items
        .iter()
        .map(|f| serde_json::json!({"job": f.job.as_str(), "lease": f.lease, "post": f.post.as_str()}))
        .collect();
    let x = with_recordset(
        pg,
        &[("job", "text"), ("lease", "bigint"), ("post", "text")],
    );
    let take = if pg {
        format!(
            "{x}, p AS (SELECT id FROM posts WHERE id IN (SELECT post FROM x)
                AND status IN ('scheduled', 'publishing') ORDER BY id FOR NO KEY UPDATE)
             DELETE FROM jobs USING x WHERE jobs.id = x.job AND jobs.locked_until = x.lease
                AND x.post IN (SELECT id FROM p)
             RETURNING jobs.id"
        )
    } else {
        format!(
            "{x} DELETE FROM jobs WHERE (id, locked_until) IN (SELECT x.job, x.lease FROM x
                JOIN posts p ON p.id = x.post AND p.status IN ('scheduled', 'publishing'))
             RETURNING id"
        )
    };
    let taken: HashSet<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(take))
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
    let ends = json(&kept.iter().map(|f| end_row(f)).collect::<Vec<_>>());
    let x = with_recordset(
        pg,
        &[
            ("xp", "text"),
            ("xa", "text"),
            ("pub", "bigint"),
            ("ext", "text"),
            ("xurl", "text"),
            ("parts", "text"),
            ("ecode", "text"),
            ("emsg", "text"),
            ("att", "text"),
            ("att_ext", "text"),
            ("at", "bigint"),
        ],
    );
    let attempts = "UPDATE publish_attempts SET outcome = 'published', external_id = x.att_ext,
        finished_at = x.at FROM x WHERE publish_attempts.id = x.att";
    let targets = "UPDATE post_targets SET
            status = CASE WHEN x.pub = 1 THEN 'published' ELSE 'failed' END,
            external_id = CASE WHEN x.pub = 1 THEN x.ext ELSE external_id END,
            url = CASE WHEN x.pub = 1 THEN NULLIF(x.xurl, '') ELSE url END,
            part_ids = CASE WHEN x.pub = 1 THEN x.parts ELSE part_ids END,
            error_code = x.ecode, error_message = x.emsg,
            published_at = CASE WHEN x.pub = 1 THEN x.at ELSE published_at END
        FROM x WHERE post_id = x.xp AND account_id = x.xa";
    let rows = if pg {
        // One statement: its `SELECT` sees the rows as they were before it, so the targets
        // it changed are read from what the `UPDATE` returned.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{x}, a AS ({attempts}), t AS ({targets} RETURNING {TARGET_COLUMNS})
             SELECT {TARGET_COLUMNS} FROM t
             UNION ALL SELECT {TARGET_COLUMNS} FROM post_targets
               WHERE post_id IN (SELECT xp FROM x)
                 AND (post_id, account_id) NOT IN (SELECT xp, xa FROM x)"
        )))
        .bind(&ends)
        .fetch_all(&mut **tx)
        .await?
    } else {
        for sql in [attempts, targets] {
            sqlx::query(sqlx::AssertSqlSafe(format!("{x} {sql}")))
                .bind(&ends)
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{x} SELECT {TARGET_COLUMNS} FROM post_targets WHERE post_id IN (SELECT xp FROM x)"
        )))
        .bind(&ends)
        .fetch_all(&mut **tx)
        .await?
    };
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
    let x = recordset(
        pg,
        &[
            ("xid", "text"),
            ("st", "text"),
            ("pub", "bigint"),
            ("at", "bigint"),
        ],
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE posts SET status = x.st, updated_at = x.at, version = version + 1,
            published_at = CASE WHEN x.pub = 1 AND published_at IS NULL THEN x.at
                ELSE published_at END
         FROM {x} WHERE id = x.xid RETURNING {POST_READ}"
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
        let x = recordset(
            pg,
            &[
                ("ws", "text"),
                ("period", "text"),
                ("shard", "bigint"),
                ("n", "bigint"),
            ],
        );
        // `WHERE true`: SQLite would read `ON CONFLICT` after a bare `SELECT` as a join's.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO usage_counters (workspace_id, period, metric, shard, value)
             SELECT ws, period, $2, shard, n FROM {x} WHERE true
             ORDER BY ws, period, shard
             ON CONFLICT (workspace_id, period, metric, shard)
             DO UPDATE SET value = usage_counters.value + excluded.value"
        )))
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
