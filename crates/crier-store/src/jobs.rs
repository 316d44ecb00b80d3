//! The durable job queue: publish jobs (one per pending target of a post) and webhook
//! delivery jobs (one per delivery), claimed by the workers with a lease.
//!
//! The queue's rules: a state change and the jobs that act on it commit in one transaction;
//! a worker claims due jobs with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, one atomic
//! `UPDATE … RETURNING` on SQLite, whose writes are serialised), so a crashed worker's jobs come
//! back when the lease runs out; a job is deleted in the same transaction that records its
//! target's final outcome.

use crier_core::ids::{AccountId, JobId, PostId, WorkspaceId};
use sqlx::Row;

use crate::model::*;
use crate::{Result, Store, Tx};

/// Workspaces one round of a publish claim shares itself between at most.
pub const FAIR_WORKSPACES: usize = 32;
/// Rounds of [`FAIR_WORKSPACES`] one claim goes through at most (see
/// [`Store::claim_jobs_except`]).
const CLAIM_ROUNDS: usize = 4;
/// A workspace's share of a claim looks at most this many times as many due jobs for accounts
/// with room (see [`Store::claim_jobs_within`]).
const SCAN_FACTOR: u32 = 4;
/// Accounts an [`AccountRoom`] names at most (each list): past them, accounts count as having
/// the default room, and a job taken beyond an account's room goes back to the queue.
pub const MAX_ROOM_ACCOUNTS: usize = 256;

/// What a claim took, and whether more may be due that it did not look at (it stopped at its
/// limit or after its rounds): then claiming again at once may find more.
#[derive(Debug, Default)]
pub struct Claimed {
    pub jobs: Vec<Job>,
    pub more: bool,
}

/// How many more publish jobs of each account a claim may take: none for `none`, the number
/// given for `some`, `per_account` for every other; and none at all of the accounts on the
/// networks in `full_networks` (the node has as many calls in flight on them as it may
/// make), so a saturated network's backlog stays in the queue and cannot keep other networks'
/// jobs waiting behind it.
#[derive(Debug, Clone, Default)]
pub struct AccountRoom {
    pub per_account: u32,
    pub none: Vec<AccountId>,
    pub some: Vec<(AccountId, u32)>,
    pub full_networks: Vec<String>,
}

impl AccountRoom {
    /// No cap at all.
    pub fn unlimited() -> Self {
        Self {
            per_account: u32::MAX,
            ..Self::default()
        }
    }

    /// This room less the jobs already taken.
    fn less<'a>(&self, taken: impl IntoIterator<Item = &'a Job>) -> Self {
        let mut left = self.clone();
        for job in taken {
            let Some(account) = &job.account_id else {
                continue;
            };
            if left.none.contains(account) {
                continue;
            }
            let i = match left.some.iter().position(|(a, _)| a == account) {
                Some(i) => i,
                None => {
                    left.some.push((account.clone(), left.per_account));
                    left.some.len() - 1
                }
            };
            left.some[i].1 = left.some[i].1.saturating_sub(1);
            if left.some[i].1 == 0 {
                let (a, _) = left.some.swap_remove(i);
                left.none.push(a);
            }
        }
        left
    }

    fn none_json(&self) -> String {
        let ids: Vec<&str> = self
            .none
            .iter()
            .take(MAX_ROOM_ACCOUNTS)
            .map(|a| a.as_str())
            .collect();
        serde_json::to_string(&ids).expect("strings serialise")
    }

    fn some_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .some
            .iter()
            .take(MAX_ROOM_ACCOUNTS)
            .map(|(a, n)| (a.as_str().to_owned(), (*n).into()))
            .collect();
        serde_json::Value::Object(map).to_string()
    }
}

pub(crate) const JOB_COLUMNS: &str =
    "id, kind, workspace_id, post_id, account_id, run_at, locked_until";

impl Store {
    /// Claims up to `limit` due publish jobs for `lease_ms`, with no cap per account.
    pub async fn claim_jobs(&self, now: i64, lease_ms: i64, limit: u32) -> Result<Vec<Job>> {
        Ok(self
            .claim_jobs_within(now, lease_ms, limit, &AccountRoom::unlimited())
            .await?
            .jobs)
    }

    /// [`Store::claim_jobs`], taking no more jobs of an account than `room` gives it (the
    /// calls a node can still make for it: an account at its limit of calls in flight, or
    /// paused by a 429, gets none), so a node never takes jobs only to put them back; the
    /// rest stay for whoever has room.
    pub async fn claim_jobs_within(
        &self,
        now: i64,
        lease_ms: i64,
        limit: u32,
        room: &AccountRoom,
    ) -> Result<Claimed> {
        let (jobs, more) = self
            .claim_fair(JobKind::Publish, now, lease_ms, limit, room)
            .await?;
        Ok(Claimed {
            jobs: jobs.into_iter().map(|(job, _)| job).collect(),
            more,
        })
    }

    /// Claims up to `limit` due jobs of `kind` for `lease_ms`, each with its `ref_id`, shared
    /// fairly between the workspaces that have some due (see [`Store::claim_jobs_within`]),
    /// and whether more may be due.
    async fn claim_fair(
        &self,
        kind: JobKind,
        now: i64,
        lease_ms: i64,
        limit: u32,
        room: &AccountRoom,
    ) -> Result<(Vec<(Job, Option<String>)>, bool)> {
        if self.claims_held() {
            return Ok((Vec::new(), false));
        }
        let kind = kind.as_str();
        let mut jobs: Vec<(Job, Option<String>)> = Vec::new();
        let mut room = room.clone();
        let mut more = true;
        // A workspace whose due jobs are all in flight still counts among the due ones, so a
        // claim cut at `FAIR_WORKSPACES` may find little to take; the next round starts past
        // the cut. A few rounds at most, so a claim stays a bounded amount of work.
        for _ in 0..CLAIM_ROUNDS {
            let workspaces = self.due_workspaces(kind, now).await?;
            if workspaces.is_empty() {
                more = false;
                break;
            }
            let want = limit.saturating_sub(jobs.len() as u32);
            // Fewer places than workspaces: only the first `want` are served this round.
            let cut = workspaces.len() > want as usize;
            let took = self
                .claim_in(&workspaces, kind, now, lease_ms, want, &room)
                .await?;
            // What this round took uses up its accounts' room for the next. An account whose
            // room it used up may have hidden other accounts' jobs behind its own in the
            // bounded scan: the next round leaves it out.
            let left = room.less(took.iter().map(|(job, _)| job));
            let used_up = left.none.len() > room.none.len();
            room = left;
            jobs.extend(took);
            if jobs.len() as u32 >= limit {
                break;
            }
            if workspaces.len() < FAIR_WORKSPACES && !used_up && !cut {
                more = false;
                break;
            }
        }
        // `RETURNING` keeps no order: hand the jobs out in the order they fell due.
        jobs.sort_by(|(a, _), (b, _)| (a.run_at, &a.id).cmp(&(b.run_at, &b.id)));
        Ok((jobs, more))
    }

    /// One round of [`Store::claim_jobs_within`]: each of `workspaces` gets an equal share of
    /// `limit` (together never more than `limit`), its oldest due jobs first, so one
    /// workspace's burst of thousands cannot keep another's single post waiting behind it;
    /// within a workspace no account gets more than its room.
    async fn claim_in(
        &self,
        workspaces: &[String],
        kind: &str,
        now: i64,
        lease_ms: i64,
        limit: u32,
        room: &AccountRoom,
    ) -> Result<Vec<(Job, Option<String>)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Past `limit` workspaces, the first `limit` get one each, and the next claim starts
        // after the last of them, so the others get their turn.
        let workspaces = if workspaces.len() > limit as usize {
            let served = &workspaces[..limit as usize];
            self.set_fair_cursor(kind, served[served.len() - 1].clone());
            served
        } else {
            workspaces
        };
        let share = (limit / workspaces.len() as u32).max(1);
        let lock = self.skip_locked();
        let none = self.json_values("$5");
        // Bound after the workspaces, and only when there is a full network.
        let full_param = format!("${}", 9 + workspaces.len());
        let full_networks = if room.full_networks.is_empty() {
            String::new()
        } else {
            // Each job's account found by its key: a look-up per job scanned, however many
            // accounts the full networks have.
            format!(
                "AND (account_id IS NULL OR NOT EXISTS (SELECT 1 FROM accounts a
                      WHERE a.id = jobs.account_id AND {}))",
                self.in_json_list("a.platform", &full_param)
            )
        };
        let some = self.json_map_rows("$6", "r");
        // The accounts' ranks are counted over at most `SCAN_FACTOR` × share due jobs, so a
        // claim's cost stays bounded however long the queue; an account beyond them waits
        // for the next claim.
        let per_workspace: Vec<String> = (0..workspaces.len())
            .map(|i| {
                format!(
                    "SELECT id FROM (
                       SELECT id, run_at, account_id,
                         ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY run_at, id) AS n
                       FROM (SELECT id, run_at, account_id FROM jobs
                             WHERE kind = $4 AND workspace_id = ${ws}
                               AND run_at <= $2 AND locked_until <= $2
                               AND (account_id IS NULL OR account_id NOT IN {none})
                               {full_networks}
                             ORDER BY run_at LIMIT $8 {lock}) AS c{i}
                     ) AS ranked{i}
                     WHERE n <= COALESCE(
                       (SELECT CAST(r.value AS BIGINT) FROM {some}
                        WHERE r.key = ranked{i}.account_id), $7)
                     ORDER BY run_at LIMIT $3",
                    ws = 9 + i,
                )
            })
            .collect();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET locked_until = $1 WHERE id IN ({})
             RETURNING {JOB_COLUMNS}, ref_id",
            per_workspace
                .iter()
                .map(|q| format!("SELECT id FROM ({q}) AS w"))
                .collect::<Vec<_>>()
                .join(" UNION ALL ")
        )))
        .bind(now + lease_ms)
        .bind(now)
        .bind(i64::from(share))
        .bind(kind)
        .bind(room.none_json())
        .bind(room.some_json())
        .bind(i64::from(room.per_account))
        .bind(i64::from(share.saturating_mul(SCAN_FACTOR)));
        for ws in workspaces {
            query = query.bind(ws.as_str());
        }
        if !room.full_networks.is_empty() {
            let full: Vec<&str> = room
                .full_networks
                .iter()
                .take(MAX_ROOM_ACCOUNTS)
                .map(String::as_str)
                .collect();
            query = query.bind(serde_json::to_string(&full).expect("strings serialise"));
        }
        let rows = query.fetch_all(&self.write).await?;
        rows.iter()
            .map(|r| Ok((job_from_row(r)?, r.try_get("ref_id")?)))
            .collect()
    }

    /// Where the next claim of `kind` starts among the due workspaces (empty: the first).
    fn fair_cursor(&self, kind: &str) -> String {
        let cursors = self.fair_cursor.lock().unwrap_or_else(|e| e.into_inner());
        cursors.get(kind).cloned().unwrap_or_default()
    }

    fn set_fair_cursor(&self, kind: &str, workspace: String) {
        let mut cursors = self.fair_cursor.lock().unwrap_or_else(|e| e.into_inner());
        // One per job kind: a handful.
        cursors.insert(kind.to_owned(), workspace);
    }

    /// Workspaces with due jobs of `kind`, at most [`FAIR_WORKSPACES`]: those after this
    /// process's cursor in id order, then from the start (so past the cut each gets its turn).
    /// A loose index scan over `jobs_fair`: one seek per workspace, however many jobs each has.
    async fn due_workspaces(&self, kind: &str, now: i64) -> Result<Vec<String>> {
        let sql = format!(
            "WITH RECURSIVE ws(id) AS (
                SELECT (SELECT MIN(workspace_id) FROM jobs
                        WHERE kind = $1 AND run_at <= $2 AND workspace_id > $3)
                UNION ALL
                SELECT (SELECT MIN(workspace_id) FROM jobs
                        WHERE kind = $1 AND run_at <= $2 AND workspace_id > ws.id)
                FROM ws WHERE ws.id IS NOT NULL
             )
             SELECT id FROM ws WHERE id IS NOT NULL LIMIT {FAIR_WORKSPACES}"
        );
        let cursor = self.fair_cursor(kind);
        let mut ids: Vec<String> = Vec::new();
        for from in [cursor.as_str(), ""] {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(kind)
                .bind(now)
                .bind(from)
                .fetch_all(&self.read)
                .await?;
            for r in rows {
                let id: String = r.try_get(0)?;
                if ids.len() >= FAIR_WORKSPACES || ids.contains(&id) {
                    break;
                }
                ids.push(id);
            }
            if ids.len() >= FAIR_WORKSPACES || cursor.is_empty() {
                break;
            }
        }
        if let Some(last) = ids.last() {
            // Only a cut moves the cursor: with every due workspace in this claim, the next
            // starts from the first again.
            self.set_fair_cursor(
                kind,
                match ids.len() >= FAIR_WORKSPACES {
                    true => last.clone(),
                    false => String::new(),
                },
            );
        }
        Ok(ids)
    }

    /// Claims up to `limit` due jobs of one kind for `lease_ms`, each with its `ref_id`,
    /// shared fairly between workspaces as publish jobs are: one workspace's webhooks to a
    /// server that never answers, or its burst of agent runs, cannot keep another's waiting
    /// behind them.
    pub async fn claim_jobs_of(
        &self,
        kind: JobKind,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<(Job, Option<String>)>> {
        let (jobs, _) = self
            .claim_fair(kind, now, lease_ms, limit, &AccountRoom::unlimited())
            .await?;
        Ok(jobs)
    }

    /// The queue at `now`, per job kind: (kind, jobs, due but held by no node, how long the
    /// oldest of those has waited in ms).
    pub async fn queue_stats(&self, now: i64) -> Result<Vec<(String, i64, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*),
                    SUM(CASE WHEN run_at <= $1 AND locked_until <= $1 THEN 1 ELSE 0 END),
                    MIN(CASE WHEN run_at <= $1 AND locked_until <= $1 THEN run_at END)
             FROM jobs GROUP BY kind ORDER BY kind",
        )
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let due: Option<i64> = r.try_get(2)?;
                let oldest: Option<i64> = r.try_get(3)?;
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    due.unwrap_or(0),
                    oldest.map_or(0, |t| (now - t).max(0)),
                ))
            })
            .collect()
    }

    /// When the next job is due, if any (so an idle worker knows how long it may sleep).
    pub async fn next_job_at(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MIN(CASE WHEN locked_until > run_at THEN locked_until ELSE run_at END) FROM jobs")
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Puts a claimed job back to run at `run_at`, recording the target's last error (it stays
    /// `pending` until then). Only while the job is still held by `job.locked_until`: a lease
    /// that ran out and was claimed by another node is left to that node, target and all.
    pub async fn retry_job(&self, job: &Job, run_at: i64, error: &TargetError) -> Result<()> {
        let mut tx = self.begin().await?;
        let still_ours = sqlx::query(
            "UPDATE jobs SET run_at = $2, locked_until = 0 WHERE id = $1 AND locked_until = $3",
        )
        .bind(job.id.as_str())
        .bind(run_at)
        .bind(job.locked_until)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        // A job that is gone was taken back with its post (deleted), or is another node's
        // now: its target is not ours.
        if still_ours && let (Some(post), Some(account)) = (&job.post_id, &job.account_id) {
            sqlx::query(
                "UPDATE post_targets SET status = 'pending', error_code = $3, error_message = $4
                 WHERE post_id = $1 AND account_id = $2",
            )
            .bind(post.as_str())
            .bind(account.as_str())
            .bind(&error.code)
            .bind(&error.message)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Puts a claimed job back to run at `run_at` without touching its target: it made no call
    /// (its account or network had no room on this node, or the account is paused). Only while
    /// the job is still ours (its lease as claimed): a lease that ran out and was claimed by
    /// another node is left to that node.
    pub async fn defer_job(&self, job: &Job, run_at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET run_at = $2, locked_until = 0 WHERE id = $1 AND locked_until = $3",
        )
        .bind(job.id.as_str())
        .bind(run_at)
        .bind(job.locked_until)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Deletes a job whose work is moot (its post or target is gone or already done).
    pub async fn drop_job(&self, job: &JobId) -> Result<()> {
        sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(job.as_str())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Deletes a claimed job whose work is moot, only while this worker's lease on it
    /// (`job.locked_until`) still holds: a job another node claimed since is left to it.
    pub async fn drop_held_job(&self, job: &Job) -> Result<()> {
        sqlx::query("DELETE FROM jobs WHERE id = $1 AND locked_until = $2")
            .bind(job.id.as_str())
            .bind(job.locked_until)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Moves the lease this worker holds on `job` (`job.locked_until`) to `until`, only while
    /// it still holds: `false` when the lease ran out and another node claimed the job.
    pub async fn renew_lease(&self, job: &Job, until: i64) -> Result<bool> {
        Ok(
            sqlx::query("UPDATE jobs SET locked_until = $3 WHERE id = $1 AND locked_until = $2")
                .bind(job.id.as_str())
                .bind(job.locked_until)
                .bind(until)
                .execute(&self.write)
                .await?
                .rows_affected()
                == 1,
        )
    }

    /// Keeps a job ours while a long piece of work (an agent run, a clip) goes on.
    pub async fn extend_lease(&self, job: &JobId, until: i64) -> Result<()> {
        sqlx::query("UPDATE jobs SET locked_until = $2 WHERE id = $1")
            .bind(job.as_str())
            .bind(until)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}

/// Deletes every job of `post` (its change takes back what was queued for it).
pub(crate) async fn delete_jobs(tx: &mut Tx, post: &PostId) -> Result<()> {
    sqlx::query("DELETE FROM jobs WHERE post_id = $1")
        .bind(post.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A publish job due at `at` for every pending target of post `post`.
pub(crate) async fn enqueue_pending(
    tx: &mut Tx,
    ws: &WorkspaceId,
    post: &PostId,
    at: i64,
    now: i64,
) -> Result<()> {
    let accounts = sqlx::query(
        "SELECT account_id FROM post_targets WHERE post_id = $1 AND status = 'pending'
         ORDER BY position",
    )
    .bind(post.as_str())
    .fetch_all(&mut **tx)
    .await?;
    for row in accounts {
        let account: String = row.try_get(0)?;
        sqlx::query(
            "INSERT INTO jobs (id, kind, workspace_id, post_id, account_id, run_at, locked_until,
                created_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
        )
        .bind(JobId::generate().as_str())
        .bind(JobKind::Publish.as_str())
        .bind(ws.as_str())
        .bind(post.as_str())
        .bind(account)
        .bind(at)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
