//! The record of every call to a network while publishing (`publish_attempts`).
//!
//! An attempt is recorded `in_flight` before the call goes out, in the transaction that
//! checks the call may still go out (the post still scheduled or publishing, its job still
//! there, its target still waiting), so a crash mid-call leaves a row that tells the next
//! worker to look the part up by idempotency key before posting again. Failed look-ups are
//! recorded too and count against the target's retry budget (unless answered 429:
//! `rate_limited`).

use std::collections::{HashMap, HashSet};

use futures::future::BoxFuture;
use sqlx::Row;

use crier_core::ids::{AccountId, AttemptId, PostId};

use crate::model::*;
use crate::{Result, Store, Tx, json, with_recordset};

impl Store {
    /// Records an attempt before the network is called, marks the target publishing and a
    /// scheduled post publishing, all at once, and only if the call may still go out: the
    /// post is still `scheduled` or `publishing`, `job` still exists (cancel, delete, edit and
    /// reschedule delete a post's jobs in the transaction that changes it) and is still held
    /// by this worker's lease (`job.locked_until`: a worker that stalled past its lease, whose
    /// job another node claimed since, sends nothing), and the target still waits. `None`:
    /// one of them moved since the job was claimed, nothing was written, and nothing may be
    /// sent.
    ///
    /// The post row is locked first, as every change of a post locks it first, so a cancel
    /// racing this either commits before (and this finds the post `draft`, or the job gone)
    /// or waits until this commits (and finds the post `publishing`: `409 conflict`). It is
    /// written with the other calls that start meanwhile ([`Beginning`]).
    pub async fn begin_attempt(
        &self,
        job: &Job,
        part: i64,
        idem_key: &str,
        now: i64,
    ) -> Result<Option<AttemptId>> {
        let (Some(post), Some(account)) = (job.post_id.clone(), job.account_id.clone()) else {
            return Ok(None);
        };
        // With the other calls starting meanwhile, in a few statements (see `batch.rs`).
        self.beginning
            .run(Begin {
                ws: job.workspace_id.to_string(),
                post: post.to_string(),
                account: account.to_string(),
                job: job.id.to_string(),
                lease: job.locked_until,
                attempt: AttemptId::generate().to_string(),
                part,
                idem: idem_key.to_owned(),
                at: now,
            })
            .await
    }

    /// Records a look-up by idempotency key that failed (outcome `lookup_failed`, or
    /// `rate_limited` when the network answered it 429), so it is on record and, unless
    /// rate limited, counts against the target's retry budget.
    pub async fn record_failed_lookup(
        &self,
        post: &PostId,
        account: &AccountId,
        part: i64,
        idem_key: &str,
        (outcome, error): (PublishAttemptOutcome, &str),
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO publish_attempts (id, post_id, account_id, part, idem_key, outcome,
                error, started_at, finished_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(AttemptId::generate().as_str())
        .bind(post.as_str())
        .bind(account.as_str())
        .bind(part)
        .bind(idem_key)
        .bind(outcome.as_str())
        .bind(error)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE post_targets SET attempts = attempts + 1 WHERE post_id = $1 AND account_id = $2",
        )
        .bind(post.as_str())
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that a part's latest call whose outcome was not known (`in_flight` after a
    /// crash, `unknown` after a timeout) landed, as the look-up found it, with the id found:
    /// the attempt says `published`, and no longer counts against the retry budget.
    pub async fn record_found_attempt(
        &self,
        post: &PostId,
        account: &AccountId,
        part: i64,
        external_id: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE publish_attempts SET outcome = 'published', external_id = $4,
                finished_at = COALESCE(finished_at, $5)
             WHERE id = (SELECT id FROM publish_attempts
                         WHERE post_id = $1 AND account_id = $2 AND part = $3
                           AND outcome IN ('in_flight', 'unknown')
                         ORDER BY started_at DESC, id DESC LIMIT 1)",
        )
        .bind(post.as_str())
        .bind(account.as_str())
        .bind(part)
        .bind(external_id)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Records how an attempt ended: `Published`, `Failed` or `Unknown`.
    pub async fn finish_attempt(
        &self,
        id: &AttemptId,
        outcome: PublishAttemptOutcome,
        external_id: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        // Only the attempt as it began: another node that took the job over may have found
        // the part meanwhile (`record_found_attempt`), and this call's late timeout or error
        // must not turn that `published` back.
        sqlx::query(
            "UPDATE publish_attempts SET outcome = $2, external_id = $3, error = $4,
                finished_at = $5 WHERE id = $1 AND outcome = 'in_flight'",
        )
        .bind(id.as_str())
        .bind(outcome.as_str())
        .bind(external_id)
        .bind(error)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Every attempt for a target, oldest first.
    pub async fn attempts(&self, post: &PostId, account: &AccountId) -> Result<Vec<Attempt>> {
        let rows = sqlx::query(
            "SELECT * FROM publish_attempts WHERE post_id = $1 AND account_id = $2
             ORDER BY id",
        )
        .bind(post.as_str())
        .bind(account.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    /// Every attempt for each of `targets` (post, account), oldest first, in one query however
    /// many there are (a worker's claim reads them at once). A target without attempts is not
    /// in the map.
    pub async fn attempts_of(
        &self,
        targets: &[(PostId, AccountId)],
    ) -> Result<HashMap<(PostId, AccountId), Vec<Attempt>>> {
        if targets.is_empty() {
            return Ok(HashMap::new());
        }
        let posts = crate::json(&targets.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>());
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM publish_attempts WHERE {}",
            self.in_json_list("post_id", "$1")
        )))
        .bind(posts.as_str())
        .fetch_all(&self.read)
        .await?;
        let wanted: HashSet<_> = targets.iter().collect();
        let mut out: HashMap<_, Vec<Attempt>> = HashMap::new();
        for row in &rows {
            let a = attempt_from_row(row)?;
            let key = (a.post_id.clone(), a.account_id.clone());
            if wanted.contains(&key) {
                out.entry(key).or_default().push(a);
            }
        }
        // Sorted here: an `ORDER BY id` in the query lets SQLite walk the whole table in id
        // order instead of looking the posts up.
        for attempts in out.values_mut() {
            attempts.sort_by(|a, b| a.id.cmp(&b.id));
        }
        Ok(out)
    }
}

/// A connector's publishing steps for one part (`publish_steps`): see
/// `crier_networks::Steps`.
impl Store {
    /// The value kept under `name` for one part, if any.
    pub async fn publish_step(
        &self,
        post: &PostId,
        account: &AccountId,
        part: i64,
        name: &str,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT value FROM publish_steps
             WHERE post_id = $1 AND account_id = $2 AND part = $3 AND name = $4",
        )
        .bind(post.as_str())
        .bind(account.as_str())
        .bind(part)
        .bind(name)
        .fetch_optional(&self.read)
        .await?)
    }

    /// Keeps `value` under `name` for one part (replacing what was there). `false`, and
    /// nothing written, when the part already keeps `max` other names.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_publish_step(
        &self,
        post: &PostId,
        account: &AccountId,
        part: i64,
        name: &str,
        value: &str,
        max: usize,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let others = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM publish_steps
             WHERE post_id = $1 AND account_id = $2 AND part = $3 AND name <> $4",
        )
        .bind(post.as_str())
        .bind(account.as_str())
        .bind(part)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if others >= max as i64 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO publish_steps (post_id, account_id, part, name, value, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (post_id, account_id, part, name)
             DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(post.as_str())
        .bind(account.as_str())
        .bind(part)
        .bind(name)
        .bind(value)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

impl Store {
    /// Deletes the publishing steps last written before `before` whose target is published or
    /// gone. Any other keeps its steps however old: a pending or publishing target's retry
    /// resumes from them, and so does a failed one's when its author retries it (a look-up
    /// without them would take a video that landed for one never sent, and upload it again).
    /// Returns how many rows went.
    pub async fn purge_publish_steps(&self, before: i64) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM publish_steps WHERE updated_at < $1 AND NOT EXISTS (
                SELECT 1 FROM post_targets t
                WHERE t.post_id = publish_steps.post_id
                  AND t.account_id = publish_steps.account_id
                  AND t.status <> 'published')",
        )
        .bind(before)
        .execute(&self.write)
        .await?
        .rows_affected())
    }
}

/// A call about to go out, as [`Store::begin_attempt`] was given it (the JSON row its batch
/// binds).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Begin {
    ws: String,
    post: String,
    account: String,
    job: String,
    /// The job's lease as the worker holds it (`jobs.locked_until`).
    lease: i64,
    /// The id the attempt is recorded under.
    attempt: String,
    part: i64,
    idem: String,
    at: i64,
}

/// Calls' starts, written in batches (`batch.rs`): each answered with its attempt's id, or
/// `None` when the call may not go out and nothing was written for it.
pub(crate) struct Beginning;

impl crate::batch::Kind for Beginning {
    type Item = Begin;
    type Out = Option<AttemptId>;

    /// One call a batch per target: a stalled worker's request on a job an edit replaced and
    /// the new job's request never share one (the target moves once, and the attempt follows
    /// the request whose job is there; on SQLite the writes follow the targets moved).
    fn key(item: &Begin) -> String {
        format!("{}:{}", item.post, item.account)
    }

    fn record<'t>(tx: &'t mut Tx, items: &'t [Begin]) -> BoxFuture<'t, Result<Vec<Self::Out>>> {
        Box::pin(begin_many(tx, items))
    }
}

/// The statements of one batch of [`Begin`]s: for each, only if its post is still
/// `scheduled` or `publishing` in its workspace, its job is still there and held by its lease,
/// and its target still waits, the target is marked publishing (and counts the call), the post
/// too, and the attempt is recorded `in_flight`.
async fn begin_many(tx: &mut Tx, items: &[Begin]) -> Result<Vec<Option<AttemptId>>> {
    let pg = crate::is_postgres(tx);
    let rows = json(&items);
    let x = with_recordset(
        pg,
        &[
            ("ws", "text"),
            ("post", "text"),
            ("account", "text"),
            ("job", "text"),
            ("lease", "bigint"),
            ("attempt", "text"),
            ("part", "bigint"),
            ("idem", "text"),
            ("at", "bigint"),
        ],
    );
    let target_moves = "UPDATE post_targets SET status = 'publishing', attempts = attempts + 1
        FROM x WHERE post_targets.post_id = x.post AND post_targets.account_id = x.account
          AND post_targets.status IN ('pending', 'publishing')";
    let post_moves = "UPDATE posts SET status = 'publishing',
            updated_at = CASE WHEN status = 'scheduled' THEN m.at ELSE updated_at END,
            version = CASE WHEN status = 'scheduled' THEN version + 1 ELSE version END";
    let attempt = "INSERT INTO publish_attempts (id, post_id, account_id, part, idem_key,
            outcome, started_at)";
    let began: HashSet<String> = if pg {
        // One statement. Each step takes only what the one before it found: the posts are
        // locked in id order (`p`: two batches never wait for each other in a circle), then
        // the jobs (`j`: a job deleted by a cancel or edit that committed meanwhile is not
        // returned, whatever the statement's snapshot saw), then the targets move (`t`,
        // likewise gone if an edit replaced them), then their posts, then the attempts are
        // recorded.
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "{x},
                p AS (SELECT id, workspace_id FROM posts
                    WHERE (id, workspace_id) IN (SELECT post, ws FROM x)
                    AND status IN ('scheduled', 'publishing') ORDER BY id FOR NO KEY UPDATE),
                j AS (SELECT jobs.id FROM jobs JOIN x ON jobs.id = x.job
                        AND jobs.locked_until = x.lease
                    WHERE (x.post, x.ws) IN (SELECT id, workspace_id FROM p)
                    ORDER BY jobs.id FOR NO KEY UPDATE OF jobs),
                t AS ({target_moves} AND x.job IN (SELECT id FROM j)
                    RETURNING post_targets.post_id, post_targets.account_id),
                m AS (SELECT post, max(at) AS at FROM x WHERE job IN (SELECT id FROM j)
                    GROUP BY post),
                u AS ({post_moves} FROM m WHERE posts.id = m.post
                    AND posts.id IN (SELECT post_id FROM t) RETURNING posts.id)
             {attempt} SELECT x.attempt, x.post, x.account, x.part, x.idem, 'in_flight', x.at
                FROM x JOIN t ON t.post_id = x.post AND t.account_id = x.account
                WHERE x.job IN (SELECT id FROM j) AND x.post IN (SELECT id FROM u)
             RETURNING id"
        )))
        .bind(&rows)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .collect()
    } else {
        // SQLite serialises write transactions: the checks are conditions of the targets'
        // statement, and the posts and attempts follow the targets it moved.
        let moved: HashSet<(String, String)> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{x} {target_moves}
               AND EXISTS (SELECT 1 FROM posts WHERE posts.id = x.post
                   AND posts.workspace_id = x.ws AND posts.status IN ('scheduled', 'publishing'))
               AND EXISTS (SELECT 1 FROM jobs WHERE jobs.id = x.job
                   AND jobs.locked_until = x.lease)
             RETURNING post_id, account_id"
        )))
        .bind(&rows)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()?;
        let went: Vec<&Begin> = items
            .iter()
            .filter(|b| moved.contains(&(b.post.clone(), b.account.clone())))
            .collect();
        if !went.is_empty() {
            // The posts of the calls that go out, each dated by the latest of them.
            let went_rows = json(&went);
            for sql in [
                format!(
                    "{x} {post_moves} FROM (SELECT post, max(at) AS at FROM x GROUP BY post) AS m
                     WHERE posts.id = m.post"
                ),
                format!(
                    "{x} {attempt} SELECT attempt, post, account, part, idem, 'in_flight', at
                     FROM x WHERE true"
                ),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&went_rows)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        went.iter().map(|b| b.attempt.clone()).collect()
    };
    Ok(items
        .iter()
        .map(|b| {
            began
                .contains(&b.attempt)
                .then(|| AttemptId::from_trusted(b.attempt.clone()))
        })
        .collect())
}
