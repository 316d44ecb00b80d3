//! The record of every call to a network while publishing (`publish_attempts`).
//!
//! An attempt is recorded `in_flight` before the call goes out, in the transaction that
//! checks the call may still go out (the post still scheduled or publishing, its job still
//! there, its target still waiting), so a crash mid-call leaves a row that tells the next
//! worker to look the part up by idempotency key before posting again. Failed look-ups are
//! recorded too and count against the target's retry budget.

use std::collections::{HashMap, HashSet};

use crier_core::ids::{AccountId, AttemptId, PostId};

use crate::group::Outcome;
use crate::model::*;
use crate::{Result, Store, Tx};

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
    /// or waits until this commits (and finds the post `publishing`: `409 conflict`).
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
        let id = AttemptId::generate();
        // $1 workspace, $2 post, $3 account, $4 job, $5 attempt, $6 part, $7 idempotency key,
        // $8 now, $9 the lease this worker holds.
        let (ws, job_id, idem_key) = (
            job.workspace_id.to_string(),
            job.id.to_string(),
            idem_key.to_owned(),
        );
        let attempt_id = id.clone();
        let lease = job.locked_until;
        let bind = move |sql| {
            sqlx::query(sql)
                .bind(ws.clone())
                .bind(post.to_string())
                .bind(account.to_string())
                .bind(job_id.clone())
                .bind(attempt_id.to_string())
                .bind(part)
                .bind(idem_key.clone())
                .bind(now)
                .bind(lease)
        };
        let post_moves = "UPDATE posts SET status = 'publishing',
                updated_at = CASE WHEN status = 'scheduled' THEN $8 ELSE updated_at END,
                version = CASE WHEN status = 'scheduled' THEN version + 1 ELSE version END";
        let target_moves = "UPDATE post_targets SET status = 'publishing', attempts = attempts + 1
             WHERE post_id = $2 AND account_id = $3 AND status IN ('pending', 'publishing')";
        let attempt = "INSERT INTO publish_attempts (id, post_id, account_id, part, idem_key,
                outcome, started_at)";
        if self.backend == crate::Backend::Postgres {
            // One statement, so one round trip and no transaction around it. Each step runs
            // only if the one before it found its row, so a check that fails writes nothing:
            // the post is locked (`p`), then the job (`j`: a job deleted by a cancel or edit
            // that committed meanwhile is not returned, whatever the statement's snapshot
            // saw), then the target moves (`t`, likewise gone if an edit replaced it), then
            // the post, then the attempt is recorded.
            let began = bind(sqlx::AssertSqlSafe(format!(
                "WITH p AS (SELECT id FROM posts WHERE workspace_id = $1 AND id = $2
                        AND status IN ('scheduled', 'publishing') FOR NO KEY UPDATE),
                    j AS (SELECT id FROM jobs WHERE id = $4 AND locked_until = $9
                        AND EXISTS (SELECT 1 FROM p) FOR NO KEY UPDATE),
                    t AS ({target_moves} AND EXISTS (SELECT 1 FROM j) RETURNING post_id),
                    u AS ({post_moves} WHERE id IN (SELECT post_id FROM t) RETURNING id)
                 {attempt} SELECT $5, $2, $3, $6, $7, 'in_flight', $8 FROM u"
            )))
            .execute(&self.write)
            .await?
            .rows_affected()
                == 1;
            return Ok(began.then_some(id));
        }
        self.unit(Box::new(move |tx: &mut Tx| {
            Box::pin(async move {
                // SQLite serialises write transactions: the checks and writes are statements
                // of one transaction, undone together if a check fails.
                let ok = |done: sqlx::any::AnyQueryResult| done.rows_affected() == 1;
                let moved = ok(bind(sqlx::AssertSqlSafe(format!(
                    "{post_moves} WHERE workspace_id = $1 AND id = $2
                       AND status IN ('scheduled', 'publishing')"
                )))
                .execute(&mut **tx)
                .await?)
                    && ok(bind(sqlx::AssertSqlSafe(format!(
                        "{target_moves} AND EXISTS (SELECT 1 FROM jobs
                            WHERE id = $4 AND locked_until = $9)"
                    )))
                    .execute(&mut **tx)
                    .await?);
                if !moved {
                    return Ok(Outcome::Undo(None));
                }
                bind(sqlx::AssertSqlSafe(format!(
                    "{attempt} VALUES ($5, $2, $3, $6, $7, 'in_flight', $8)"
                )))
                .execute(&mut **tx)
                .await?;
                Ok(Outcome::Commit(Some(id)))
            })
        }))
        .await
    }

    /// Records a look-up by idempotency key that failed (outcome `lookup_failed`), so it is on
    /// record and counts against the target's retry budget.
    pub async fn record_failed_lookup(
        &self,
        post: &PostId,
        account: &AccountId,
        part: i64,
        idem_key: &str,
        error: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO publish_attempts (id, post_id, account_id, part, idem_key, outcome,
                error, started_at, finished_at)
             VALUES ($1, $2, $3, $4, $5, 'lookup_failed', $6, $7, $7)",
        )
        .bind(AttemptId::generate().as_str())
        .bind(post.as_str())
        .bind(account.as_str())
        .bind(part)
        .bind(idem_key)
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

    /// Records how an attempt ended: `Published`, `Failed` or `Unknown`.
    pub async fn finish_attempt(
        &self,
        id: &AttemptId,
        outcome: PublishAttemptOutcome,
        external_id: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE publish_attempts SET outcome = $2, external_id = $3, error = $4,
                finished_at = $5 WHERE id = $1",
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
    /// Deletes the publishing steps last written before `before` whose target no longer waits
    /// (published, failed, or gone): a target still pending or publishing keeps its steps
    /// however old, since its retry resumes from them. Returns how many rows went.
    pub async fn purge_publish_steps(&self, before: i64) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM publish_steps WHERE updated_at < $1 AND NOT EXISTS (
                SELECT 1 FROM post_targets t
                WHERE t.post_id = publish_steps.post_id
                  AND t.account_id = publish_steps.account_id
                  AND t.status IN ('pending', 'publishing'))",
        )
        .bind(before)
        .execute(&self.write)
        .await?
        .rows_affected())
    }
}
