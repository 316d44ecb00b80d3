//! Agents and their runs, as storage keeps them.
//!
//! The rules a run's exactly-once rests on:
//! - A scheduled due time becomes a run in one transaction that moves the agent's
//!   `next_run_at` on **only if it still holds the due time read**, inserts the run (unique per
//!   agent and due time) and its job in the durable queue. Two nodes that see the same due time
//!   make one run; a crash before the commit leaves the due time due.
//! - An agent has at most one asked-for run waiting or running (a unique partial index).
//! - A run starts by counting an attempt (`queued` or `running` → `running`, `attempts + 1`),
//!   and finishes in one transaction with its posts, its job's deletion and its event, **only
//!   if it is still `running` at the attempt that started it**: a worker whose lease ran out
//!   and was overtaken, or a run whose agent was deleted, writes nothing.

use crier_core::ids::{
    AccountId, AgentId, AgentRunId, BrandId, FeedId, JobId, PostId, WorkspaceId,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{JobKind, Page, Post, corrupt, json_text};
use crate::posts::store_new_post;
use crate::{Result, Store, json};

/// Runs kept per agent; older ones are removed when a run finishes.
pub const RUNS_KEPT: i64 = 200;

/// What an agent's posts become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentOutput {
    /// Drafts for a person to edit and schedule.
    Draft,
    /// Waiting for a person's approval; approved, they go out at once.
    PendingApproval,
    /// The workspace's next free queue slots (through approval when the workspace requires it).
    Queue,
}

impl AgentOutput {
    pub const ALL: [AgentOutput; 3] = [Self::Draft, Self::PendingApproval, Self::Queue];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::PendingApproval => "pending_approval",
            Self::Queue => "queue",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// What an agent draws on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSources {
    /// The knowledge base (the brand's and the workspace's), searched with each subject.
    pub knowledge: bool,
    /// Trending topics.
    pub trending: bool,
    /// The brand's (or the workspace's) best published posts.
    pub best_posts: bool,
    /// Feeds whose entries since the last run are subjects.
    pub feed_ids: Vec<FeedId>,
}

impl Default for AgentSources {
    fn default() -> Self {
        Self {
            knowledge: true,
            trending: false,
            best_posts: true,
            feed_ids: Vec::new(),
        }
    }
}

/// An agent's settings, as the API sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    pub name: String,
    pub brand_id: Option<BrandId>,
    pub account_ids: Vec<AccountId>,
    pub instructions: String,
    pub sources: AgentSources,
    /// A cron schedule in the workspace's time zone; `None`: runs only when asked.
    pub schedule: Option<String>,
    pub output: AgentOutput,
    pub max_posts: i64,
    pub max_credits: i64,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: AgentId,
    pub workspace_id: WorkspaceId,
    pub livemode: bool,
    pub settings: AgentSettings,
    /// The next due time of the schedule; `None` without one or while disabled.
    pub next_run_at: Option<i64>,
    pub last_run_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Why a run exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunTrigger {
    Schedule,
    Manual,
}

impl RunTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Manual => "manual",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Completed, Self::Failed]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// One thing a run drew on: `{"source": "feed", "title": …, "link": …}` and the like.
pub type RunInput = serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct AgentRun {
    pub id: AgentRunId,
    pub agent_id: AgentId,
    pub workspace_id: WorkspaceId,
    pub livemode: bool,
    pub trigger: RunTrigger,
    /// The due time (a scheduled run) or when it was asked for.
    pub scheduled_for: i64,
    pub status: RunStatus,
    pub attempts: i64,
    /// `model` or `builtin`, once it ran.
    pub engine: Option<String>,
    pub inputs: Vec<RunInput>,
    pub prompts: Vec<String>,
    pub post_ids: Vec<PostId>,
    pub notes: Vec<String>,
    pub credits: i64,
    pub error: Option<(String, String)>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// What a run did, to record when it finishes.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub status: RunStatus,
    pub engine: Option<String>,
    pub inputs: Vec<RunInput>,
    pub prompts: Vec<String>,
    /// The posts it made, not stored yet: stored with the run's end.
    pub posts: Vec<Post>,
    pub notes: Vec<String>,
    pub credits: i64,
    pub error: Option<(String, String)>,
}

const AGENT_COLUMNS: &str = "id, workspace_id, livemode, name, brand_id, account_ids, instructions, \
     sources, schedule, output, max_posts, max_credits, enabled, next_run_at, last_run_at, \
     created_at, updated_at";
const RUN_COLUMNS: &str = "id, agent_id, workspace_id, livemode, trigger_kind, scheduled_for, \
     status, attempts, engine, inputs, prompts, post_ids, notes, credits, error_code, \
     error_message, created_at, started_at, finished_at";

fn agent_from_row(row: &AnyRow) -> Result<Agent> {
    let output: String = row.try_get("output")?;
    let accounts: Vec<String> = json_text(row, "account_ids")?;
    let brand: Option<String> = row.try_get("brand_id")?;
    Ok(Agent {
        id: AgentId::from_trusted(row.try_get("id")?),
        workspace_id: WorkspaceId::from_trusted(row.try_get("workspace_id")?),
        livemode: row.try_get::<i64, _>("livemode")? != 0,
        settings: AgentSettings {
            name: row.try_get("name")?,
            brand_id: brand.map(BrandId::from_trusted),
            account_ids: accounts.into_iter().map(AccountId::from_trusted).collect(),
            instructions: row.try_get("instructions")?,
            sources: json_text(row, "sources")?,
            schedule: row.try_get("schedule")?,
            output: AgentOutput::parse(&output).ok_or_else(|| corrupt("agents.output"))?,
            max_posts: row.try_get("max_posts")?,
            max_credits: row.try_get("max_credits")?,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
        },
        next_run_at: row.try_get("next_run_at")?,
        last_run_at: row.try_get("last_run_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn run_from_row(row: &AnyRow) -> Result<AgentRun> {
    let trigger: String = row.try_get("trigger_kind")?;
    let status: String = row.try_get("status")?;
    let code: Option<String> = row.try_get("error_code")?;
    let message: Option<String> = row.try_get("error_message")?;
    let posts: Vec<String> = json_text(row, "post_ids")?;
    Ok(AgentRun {
        id: AgentRunId::from_trusted(row.try_get("id")?),
        agent_id: AgentId::from_trusted(row.try_get("agent_id")?),
        workspace_id: WorkspaceId::from_trusted(row.try_get("workspace_id")?),
        livemode: row.try_get::<i64, _>("livemode")? != 0,
        trigger: match trigger.as_str() {
            "schedule" => RunTrigger::Schedule,
            "manual" => RunTrigger::Manual,
            _ => return Err(corrupt("agent_runs.trigger_kind")),
        },
        scheduled_for: row.try_get("scheduled_for")?,
        status: RunStatus::parse(&status).ok_or_else(|| corrupt("agent_runs.status"))?,
        attempts: row.try_get("attempts")?,
        engine: row.try_get("engine")?,
        inputs: json_text(row, "inputs")?,
        prompts: json_text(row, "prompts")?,
        post_ids: posts.into_iter().map(PostId::from_trusted).collect(),
        notes: json_text(row, "notes")?,
        credits: row.try_get("credits")?,
        error: code.zip(message),
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

impl AgentRun {
    fn new(agent: &Agent, trigger: RunTrigger, scheduled_for: i64, now: i64) -> Self {
        Self {
            id: AgentRunId::generate(),
            agent_id: agent.id.clone(),
            workspace_id: agent.workspace_id.clone(),
            livemode: agent.livemode,
            trigger,
            scheduled_for,
            status: RunStatus::Queued,
            attempts: 0,
            engine: None,
            inputs: Vec::new(),
            prompts: Vec::new(),
            post_ids: Vec::new(),
            notes: Vec::new(),
            credits: 0,
            error: None,
            created_at: now,
            started_at: None,
            finished_at: None,
        }
    }
}

impl Store {
    pub async fn insert_agent(&self, a: &Agent) -> Result<()> {
        let s = &a.settings;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO agents ({AGENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                $11, $12, $13, $14, $15, $16, $17)"
        )))
        .bind(a.id.as_str())
        .bind(a.workspace_id.as_str())
        .bind(a.livemode as i64)
        .bind(&s.name)
        .bind(s.brand_id.as_ref().map(BrandId::as_str))
        .bind(json(&s.account_ids))
        .bind(&s.instructions)
        .bind(json(&s.sources))
        .bind(s.schedule.as_deref())
        .bind(s.output.as_str())
        .bind(s.max_posts)
        .bind(s.max_credits)
        .bind(s.enabled as i64)
        .bind(a.next_run_at)
        .bind(a.last_run_at)
        .bind(a.created_at)
        .bind(a.updated_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn get_agent(&self, ws: &WorkspaceId, id: &AgentId) -> Result<Option<Agent>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE workspace_id = $1 AND id = $2"
        )))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    /// Agents of one mode of a workspace, newest first.
    pub async fn list_agents(
        &self,
        ws: &WorkspaceId,
        livemode: bool,
        limit: u32,
        offset: u32,
    ) -> Result<Page<Agent>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE workspace_id = $1 AND livemode = $2
             ORDER BY id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(ws.as_str())
        .bind(livemode as i64)
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .fetch_all(&self.read)
        .await?;
        let items = rows
            .iter()
            .map(agent_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit))
    }

    /// How many agents a workspace has (both modes).
    pub async fn count_agents(&self, ws: &WorkspaceId) -> Result<i64> {
        let row =
            sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) FROM agents WHERE workspace_id = $1")
                .bind(ws.as_str())
                .fetch_one(&self.read)
                .await?;
        Ok(row.try_get(0)?)
    }

    /// Replaces an agent's settings and next due time, if it was last changed at
    /// `expected_updated_at` (a change decided on a read names what it read). `None`: gone or
    /// changed meanwhile.
    pub async fn update_agent(&self, a: &Agent, expected_updated_at: i64) -> Result<Option<Agent>> {
        let s = &a.settings;
        let n = sqlx::query(
            "UPDATE agents SET name = $3, brand_id = $4, account_ids = $5, instructions = $6,
                sources = $7, schedule = $8, output = $9, max_posts = $10, max_credits = $11,
                enabled = $12, next_run_at = $13, updated_at = $14
             WHERE workspace_id = $1 AND id = $2 AND updated_at = $15",
        )
        .bind(a.workspace_id.as_str())
        .bind(a.id.as_str())
        .bind(&s.name)
        .bind(s.brand_id.as_ref().map(BrandId::as_str))
        .bind(json(&s.account_ids))
        .bind(&s.instructions)
        .bind(json(&s.sources))
        .bind(s.schedule.as_deref())
        .bind(s.output.as_str())
        .bind(s.max_posts)
        .bind(s.max_credits)
        .bind(s.enabled as i64)
        .bind(a.next_run_at)
        .bind(a.updated_at)
        .bind(expected_updated_at)
        .execute(&self.write)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        self.get_agent(&a.workspace_id, &a.id).await
    }

    /// Deletes an agent, its runs and the jobs of its runs not started, in one transaction. A
    /// run in progress finds its row gone and records nothing.
    pub async fn delete_agent(&self, ws: &WorkspaceId, id: &AgentId) -> Result<bool> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "DELETE FROM jobs WHERE kind = $2 AND ref_id IN
                (SELECT id FROM agent_runs WHERE agent_id = $1)",
        )
        .bind(id.as_str())
        .bind(JobKind::AgentRun.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM agent_runs WHERE agent_id = $1 AND workspace_id = $2")
            .bind(id.as_str())
            .bind(ws.as_str())
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM agents WHERE workspace_id = $1 AND id = $2")
            .bind(ws.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    // ---- runs ----

    /// Enabled agents with a due time at or before `now`, the oldest due first.
    pub async fn due_agents(&self, now: i64, limit: u32) -> Result<Vec<Agent>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {AGENT_COLUMNS} FROM agents
             WHERE enabled = 1 AND next_run_at IS NOT NULL AND next_run_at <= $1
             ORDER BY next_run_at LIMIT $2"
        )))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// Makes the run of `agent`'s due time `due` and its job, and moves the agent on to
    /// `next`, in one transaction, only if the agent still has `due` as its next due time.
    /// `None`: another node (or a change of the agent) got there first; nothing is written.
    pub async fn schedule_agent_run(
        &self,
        agent: &Agent,
        due: i64,
        next: Option<i64>,
        now: i64,
    ) -> Result<Option<AgentRun>> {
        let mut tx = self.begin().await?;
        let moved = sqlx::query(
            "UPDATE agents SET next_run_at = $3
             WHERE workspace_id = $1 AND id = $2 AND enabled = 1 AND next_run_at = $4",
        )
        .bind(agent.workspace_id.as_str())
        .bind(agent.id.as_str())
        .bind(next)
        .bind(due)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 0 {
            return Ok(None);
        }
        let run = AgentRun::new(agent, RunTrigger::Schedule, due, now);
        if !insert_run(&mut tx, &run).await? {
            // This due time already has its run (the agent's due time was set back to it).
            tx.commit().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(run))
    }

    /// A run of `agent` asked for now, with its job. `None` when the agent already has an
    /// asked-for run waiting or running.
    pub async fn request_agent_run(&self, agent: &Agent, now: i64) -> Result<Option<AgentRun>> {
        let mut tx = self.begin().await?;
        let run = AgentRun::new(agent, RunTrigger::Manual, now, now);
        if !insert_run(&mut tx, &run).await? {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(run))
    }

    pub async fn get_agent_run(
        &self,
        ws: &WorkspaceId,
        agent: &AgentId,
        id: &AgentRunId,
    ) -> Result<Option<AgentRun>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM agent_runs
             WHERE workspace_id = $1 AND agent_id = $2 AND id = $3"
        )))
        .bind(ws.as_str())
        .bind(agent.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// An agent's runs, newest first.
    pub async fn list_agent_runs(
        &self,
        ws: &WorkspaceId,
        agent: &AgentId,
        limit: u32,
        offset: u32,
    ) -> Result<Page<AgentRun>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM agent_runs WHERE workspace_id = $1 AND agent_id = $2
             ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(ws.as_str())
        .bind(agent.as_str())
        .bind(i64::from(limit) + 1)
        .bind(i64::from(offset))
        .fetch_all(&self.read)
        .await?;
        let items = rows.iter().map(run_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit))
    }

    /// Starts (or, after a crash, starts again) a run: one more attempt, `running`. `None`
    /// when the run is gone or already finished.
    pub async fn start_agent_run(&self, id: &AgentRunId, now: i64) -> Result<Option<AgentRun>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE agent_runs SET status = 'running', attempts = attempts + 1,
                started_at = COALESCE(started_at, $2)
             WHERE id = $1 AND status IN ('queued', 'running')
             RETURNING {RUN_COLUMNS}"
        )))
        .bind(id.as_str())
        .bind(now)
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Records the end of `run` as started at attempt `run.attempts`: the result, the posts it
    /// made (with their publish jobs), the agent's last run, the event `event` with `data`,
    /// and the job's deletion, in one transaction; only if the run is still `running` at that
    /// attempt. `false`: overtaken or deleted, nothing written.
    pub async fn finish_agent_run(
        &self,
        job: &JobId,
        run: &AgentRun,
        result: &RunResult,
        event: (&str, &serde_json::Value),
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let post_ids: Vec<&str> = result.posts.iter().map(|p| p.id.as_str()).collect();
        let (code, message) = result.error.clone().unzip();
        let n = sqlx::query(
            "UPDATE agent_runs SET status = $3, engine = $4, inputs = $5, prompts = $6,
                post_ids = $7, notes = $8, credits = $9, error_code = $10, error_message = $11,
                finished_at = $12
             WHERE id = $1 AND status = 'running' AND attempts = $2",
        )
        .bind(run.id.as_str())
        .bind(run.attempts)
        .bind(result.status.as_str())
        .bind(result.engine.as_deref())
        .bind(json(&result.inputs))
        .bind(json(&result.prompts))
        .bind(json(&post_ids))
        .bind(json(&result.notes))
        .bind(result.credits)
        .bind(code)
        .bind(message)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        for post in &result.posts {
            store_new_post(&mut tx, post).await?;
        }
        // When this run started: entries a feed saw while it ran are new to the next one.
        sqlx::query("UPDATE agents SET last_run_at = $2 WHERE id = $1")
            .bind(run.agent_id.as_str())
            .bind(run.started_at.unwrap_or(now))
            .execute(&mut *tx)
            .await?;
        crate::events::emit(
            &mut tx,
            run.workspace_id.as_str(),
            run.livemode,
            event.0,
            event.1,
            now,
            None,
        )
        .await?;
        sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(job.as_str())
            .execute(&mut *tx)
            .await?;
        // Keep the newest runs only (unfinished ones always stay).
        sqlx::query(
            "DELETE FROM agent_runs WHERE agent_id = $1 AND status IN ('completed', 'failed')
               AND id NOT IN (SELECT id FROM agent_runs WHERE agent_id = $1
                              ORDER BY created_at DESC, id DESC LIMIT $2)",
        )
        .bind(run.agent_id.as_str())
        .bind(RUNS_KEPT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The titles and links of a feed's entries first seen after `since`, newest first.
    pub async fn feed_entries_since(
        &self,
        ws: &WorkspaceId,
        feed: &FeedId,
        since: i64,
        limit: u32,
    ) -> Result<Vec<(Option<String>, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT title, link FROM feed_items
             WHERE workspace_id = $1 AND feed_id = $2 AND created_at > $3
             ORDER BY created_at DESC, entry_id LIMIT $4",
        )
        .bind(ws.as_str())
        .bind(feed.as_str())
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

/// Inserts a run and its job (due now); `false` when a unique index says the run exists.
async fn insert_run(tx: &mut crate::Tx, run: &AgentRun) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO agent_runs (id, agent_id, workspace_id, livemode, trigger_kind,
            scheduled_for, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7)
         ON CONFLICT DO NOTHING",
    )
    .bind(run.id.as_str())
    .bind(run.agent_id.as_str())
    .bind(run.workspace_id.as_str())
    .bind(run.livemode as i64)
    .bind(run.trigger.as_str())
    .bind(run.scheduled_for)
    .bind(run.created_at)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO jobs (id, kind, workspace_id, ref_id, run_at, locked_until, created_at)
         VALUES ($1, $2, $3, $4, $5, 0, $5)",
    )
    .bind(JobId::generate().as_str())
    .bind(JobKind::AgentRun.as_str())
    .bind(run.workspace_id.as_str())
    .bind(run.id.as_str())
    .bind(run.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

impl Store {
    /// The texts of the published posts of `tenant` (on `accounts`, when given) that did best:
    /// most likes, reposts and replies as last collected (reposts and replies count double),
    /// the newest first among equals.
    pub async fn best_published_texts(
        &self,
        tenant: &crier_core::Tenant,
        accounts: Option<&[AccountId]>,
        limit: i64,
    ) -> Result<Vec<String>> {
        let limit = limit.clamp(0, crate::MAX_PUBLISHED_TEXTS);
        if limit == 0 || accounts.is_some_and(<[AccountId]>::is_empty) {
            return Ok(Vec::new());
        }
        let texts = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT p.body FROM posts p
             LEFT JOIN (SELECT post_id, SUM(likes + 2 * reposts + 2 * replies) AS score
                        FROM post_metrics WHERE workspace_id = $1 GROUP BY post_id) m
               ON m.post_id = p.id
             WHERE p.workspace_id = $1 AND p.livemode = $2
               AND p.status IN ('published', 'partially_published')
               AND ($3 IS NULL OR EXISTS (SELECT 1 FROM post_targets t
                     WHERE t.post_id = p.id AND t.status = 'published'
                       AND t.account_id IN {}))
             ORDER BY COALESCE(m.score, 0) DESC, COALESCE(p.published_at, p.updated_at) DESC,
                p.id DESC
             LIMIT $4",
            self.json_values("$3")
        )))
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(accounts.map(|a| json(&a)))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(texts)
    }
}
