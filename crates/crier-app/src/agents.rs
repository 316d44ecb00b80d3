//! The agent rules: agents that write posts on their own, on a schedule or when asked, under a
//! person's control.
//!
//! An agent has instructions, a brand (its voice, knowledge and best posts) or accounts, its
//! sources, a schedule (five-field cron in the workspace's time zone, [`crier_core::cron`]),
//! an output mode ([`AgentOutput`]: drafts, waiting for approval, or the next queue slots) and
//! a budget per run (posts and AI credits).
//!
//! A run, step by step ([`Agents::run_job`]):
//! 1. It starts (one more attempt; see `crier-store/src/agents.rs` for why that makes a crash
//!    harmless) and gathers its inputs: the entries of its feeds since its last run, trending
//!    topics, the brand's best posts, else the instructions themselves.
//! 2. With a model it composes one post per subject from the instructions (5 credits each);
//!    without one the built-in engine writes ideas about the first subject (2 credits for the
//!    run) and the run says so in its notes. Credits are spent through [`crate::ai::Ai`], the
//!    one metered path, and never past the run's `max_credits`.
//! 3. The posts are placed as the output mode says ([`crate::placement`]: the quota, the
//!    queue, approval) and recorded with the run's end, its event (`agent.run_completed` or
//!    `agent.run_failed`) and its job's deletion, in one transaction.

use crier_ai::Idea;
use crier_core::cron::Schedule;
use crier_core::ids::{AgentId, AgentRunId, BrandId, FeedId};
use crier_core::posts::PostStatus;
use crier_core::text::clip;
use crier_core::{ErrorCode, Scope, ScopeSet};
use crier_store::views::AgentRunObject;
use crier_store::{
    Account, Agent, AgentOutput, AgentRun, AgentSettings, AgentSources, Job, Page, Post, RunResult,
    RunStatus, event_types,
};
use jiff::tz::TimeZone;
use serde_json::json;

use crate::ai::{Output, Target, Task};
use crate::placement::{Candidate, Placement, place};
use crate::{App, AppError, AppResult, Caller, Tenant};

/// Agents a workspace may have (both modes).
pub const MAX_AGENTS: i64 = 50;
pub const MAX_NAME: usize = 100;
pub const MAX_INSTRUCTIONS: usize = 2_000;
pub const MAX_POSTS: i64 = 10;
pub const DEFAULT_POSTS: i64 = 3;
pub const MAX_CREDITS: i64 = 500;
pub const DEFAULT_CREDITS: i64 = 20;
pub const MAX_FEEDS: usize = 10;
/// Starts of one run at most (each may spend credits).
pub const MAX_ATTEMPTS: i64 = 3;
/// Batches of due agents one scheduler tick goes through at most.
pub const SCHEDULE_ROUNDS: usize = 50;
/// Entries taken from each feed, topics from the trends, best posts: per run.
pub const PER_SOURCE: usize = 5;

/// A new agent, as a client asks for it.
#[derive(Debug, Clone, Default)]
pub struct NewAgent {
    pub name: String,
    pub instructions: String,
    pub brand_id: Option<String>,
    pub account_ids: Option<Vec<String>>,
    pub sources: Option<SourcesEdit>,
    pub schedule: Option<String>,
    pub output: Option<String>,
    pub max_posts: Option<i64>,
    pub max_credits: Option<i64>,
    pub enabled: Option<bool>,
}

/// A change of an agent; `None` leaves a field. `Some(None)` clears `brand_id` or `schedule`.
#[derive(Debug, Clone, Default)]
pub struct AgentEdit {
    pub name: Option<String>,
    pub instructions: Option<String>,
    pub brand_id: Option<Option<String>>,
    pub account_ids: Option<Vec<String>>,
    pub sources: Option<SourcesEdit>,
    pub schedule: Option<Option<String>>,
    pub output: Option<String>,
    pub max_posts: Option<i64>,
    pub max_credits: Option<i64>,
    pub enabled: Option<bool>,
}

/// Sources as a client sends them; `None` leaves (or defaults) a field.
#[derive(Debug, Clone, Default)]
pub struct SourcesEdit {
    pub knowledge: Option<bool>,
    pub trending: Option<bool>,
    pub best_posts: Option<bool>,
    pub feed_ids: Option<Vec<String>>,
}

/// The agent rules over one [`App`].
pub struct Agents<'a> {
    pub(crate) app: &'a App,
}

fn bounded(param: &'static str, s: &str, max: usize) -> AppResult<()> {
    if s.trim().is_empty() || s.chars().count() > max {
        return Err(AppError::invalid(
            param,
            format!("`{param}` must be 1 to {max} characters (not only spaces)."),
        ));
    }
    Ok(())
}

fn in_range(param: &'static str, n: i64, max: i64) -> AppResult<()> {
    if !(1..=max).contains(&n) {
        return Err(AppError::invalid(
            param,
            format!("`{param}` must be from 1 to {max}."),
        ));
    }
    Ok(())
}

/// Agents write with AI credits: a plan without AI cannot have them run.
fn require_ai(c: &Caller) -> AppResult<()> {
    if !c.plan.includes(Scope::AiGenerate) {
        return Err(AppError::new(
            ErrorCode::PaymentRequired,
            format!(
                "Agents write with AI credits, which the `{}` plan does not include.",
                c.plan.name
            ),
        ));
    }
    Ok(())
}

fn parse_output(s: &str) -> AppResult<AgentOutput> {
    AgentOutput::parse(s).ok_or_else(|| {
        AppError::invalid(
            "output",
            format!("`output` must be `draft`, `pending_approval` or `queue`, not `{s}`."),
        )
    })
}

fn parse_schedule(s: &str) -> AppResult<Schedule> {
    Schedule::parse(s).map_err(|e| {
        AppError::invalid(
            "schedule",
            format!("`schedule` is not a valid schedule: {e} (for example `0 9 * * mon-fri`)."),
        )
    })
}

impl Agents<'_> {
    /// The workspace's time zone (UTC if it names none that exists).
    async fn timezone(&self, tenant: &Tenant) -> AppResult<TimeZone> {
        let ws = self.app.store().get_workspace(&tenant.workspace).await?;
        Ok(ws
            .and_then(|w| TimeZone::get(&w.timezone).ok())
            .unwrap_or(TimeZone::UTC))
    }

    /// The next due time after `after` of an enabled agent's schedule.
    async fn next_due(
        &self,
        tenant: &Tenant,
        s: &AgentSettings,
        after: i64,
    ) -> AppResult<Option<i64>> {
        let Some(text) = s.schedule.as_deref().filter(|_| s.enabled) else {
            return Ok(None);
        };
        let schedule = parse_schedule(text)?;
        let tz = self.timezone(tenant).await?;
        Ok(schedule
            .next_after(crier_core::clock::from_ms(after), &tz)
            .map(|t| t.as_millisecond()))
    }

    /// Checks settings as a whole and resolves the accounts: the named ones, else the brand's.
    async fn check(
        &self,
        c: &Caller,
        s: &mut AgentSettings,
        accounts: Option<&[String]>,
        before: Option<&AgentSettings>,
    ) -> AppResult<()> {
        bounded("name", &s.name, MAX_NAME)?;
        bounded("instructions", &s.instructions, MAX_INSTRUCTIONS)?;
        in_range("max_posts", s.max_posts, MAX_POSTS)?;
        in_range("max_credits", s.max_credits, MAX_CREDITS)?;
        if let Some(text) = &s.schedule {
            s.schedule = Some(parse_schedule(text)?.as_str().to_owned());
        }
        if s.output == AgentOutput::Queue && before.is_none_or(|b| b.output != AgentOutput::Queue) {
            // Queued posts go out without a person: the key that asks for it must publish.
            // (Pausing or editing an agent that already queues needs no more than it did.)
            c.require(Scope::PostsPublish)?;
        }
        if s.sources.feed_ids.len() > MAX_FEEDS {
            return Err(AppError::invalid(
                "sources.feed_ids",
                format!("`sources.feed_ids` has at most {MAX_FEEDS} feeds."),
            ));
        }
        let new_feeds = s
            .sources
            .feed_ids
            .iter()
            .any(|f| before.is_none_or(|b| !b.sources.feed_ids.contains(f)));
        if new_feeds {
            // A run shows the entries it drew on: naming a feed is reading it.
            c.require(Scope::FeedsRead)?;
        }
        let reach = match c.is_limited() {
            true => Some(self.app.reach(c).await?),
            false => None,
        };
        for f in &s.sources.feed_ids {
            let feed = self.app.store().get_feed(c.workspace(), f).await?;
            let visible = feed.is_some_and(|feed| {
                feed.livemode == c.livemode()
                    && reach
                        .as_ref()
                        .is_none_or(|r| r.accounts(feed.account_ids.iter()))
            });
            if !visible {
                return Err(AppError::invalid(
                    "sources.feed_ids",
                    format!("No such feed: '{f}'."),
                ));
            }
        }
        let ids: Vec<String> = match (accounts, &s.brand_id) {
            (Some(ids), _) => ids.to_vec(),
            (None, Some(brand)) => {
                self.app
                    .brands()
                    .accounts_for_post(c, "brand_id", brand.as_str())
                    .await?
                    .1
            }
            (None, None) => s.account_ids.iter().map(ToString::to_string).collect(),
        };
        let brand_changed = before.is_none_or(|b| b.brand_id != s.brand_id);
        if let Some(brand) = s.brand_id.as_ref().filter(|_| brand_changed) {
            // Visible to this key (a 400 naming the field, not a 404 of the agent).
            self.app
                .kb()
                .validate_brand(c, "brand_id", brand.as_str())
                .await?;
        }
        let stored: Vec<String> = before
            .map(|b| b.account_ids.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        if before.is_some() && ids == stored {
            // Accounts as they were: a rename or a pause does not fail because an account
            // was disconnected since (a run skips accounts that are not connected).
            return Ok(());
        }
        if ids.is_empty() {
            return Err(AppError::invalid(
                "account_ids",
                "An agent needs `account_ids` or a `brand_id` with connected accounts.",
            ));
        }
        let resolved = self
            .app
            .posts()
            .resolve_accounts(c, "account_ids", &ids)
            .await?;
        s.account_ids = resolved.into_iter().map(|a| a.id).collect();
        Ok(())
    }

    fn sources(base: AgentSources, e: Option<SourcesEdit>) -> AppResult<AgentSources> {
        let Some(e) = e else { return Ok(base) };
        let feed_ids = match e.feed_ids {
            None => base.feed_ids,
            Some(ids) => {
                let mut out = Vec::with_capacity(ids.len());
                for id in ids.iter().take(MAX_FEEDS + 1) {
                    let parsed = FeedId::parse(id).ok_or_else(|| {
                        AppError::invalid("sources.feed_ids", format!("No such feed: '{id}'."))
                    })?;
                    if !out.contains(&parsed) {
                        out.push(parsed);
                    }
                }
                if ids.len() > MAX_FEEDS {
                    return Err(AppError::invalid(
                        "sources.feed_ids",
                        format!("`sources.feed_ids` has at most {MAX_FEEDS} feeds."),
                    ));
                }
                out
            }
        };
        Ok(AgentSources {
            knowledge: e.knowledge.unwrap_or(base.knowledge),
            trending: e.trending.unwrap_or(base.trending),
            best_posts: e.best_posts.unwrap_or(base.best_posts),
            feed_ids,
        })
    }

    fn parse_brand(id: Option<String>) -> AppResult<Option<BrandId>> {
        id.map(|b| {
            BrandId::parse(&b)
                .ok_or_else(|| AppError::invalid("brand_id", format!("No such brand: '{b}'.")))
        })
        .transpose()
    }

    /// The agent `id` of the caller's workspace and mode, within a limited key's reach.
    pub async fn get(&self, c: &Caller, id: &str) -> AppResult<Agent> {
        c.require(Scope::AgentsRead)?;
        self.visible(c, id).await
    }

    async fn visible(&self, c: &Caller, id: &str) -> AppResult<Agent> {
        let not_found = || AppError::not_found("agent", id);
        let parsed = AgentId::parse(id).ok_or_else(not_found)?;
        let agent = self
            .app
            .store()
            .get_agent(c.workspace(), &parsed)
            .await?
            .filter(|a| a.livemode == c.livemode())
            .ok_or_else(not_found)?;
        if c.is_limited() {
            let reach = self.app.reach(c).await?;
            let brand_ok = match &agent.settings.brand_id {
                None => true,
                Some(b) => match self.app.store().get_brand(&c.tenant, b).await? {
                    Some(brand) => reach.brand(&brand),
                    None => true,
                },
            };
            if !brand_ok || !reach.accounts(agent.settings.account_ids.iter()) {
                return Err(not_found());
            }
        }
        Ok(agent)
    }

    /// The caller's agents, newest first (a limited key sees those within its reach).
    pub async fn list(&self, c: &Caller, limit: u32, offset: u32) -> AppResult<Page<Agent>> {
        c.require(Scope::AgentsRead)?;
        let mut page = self
            .app
            .store()
            .list_agents(c.workspace(), c.livemode(), limit, offset)
            .await?;
        if c.is_limited() {
            let mut kept = Vec::with_capacity(page.items.len());
            for a in page.items {
                if self.visible(c, a.id.as_str()).await.is_ok() {
                    kept.push(a);
                }
            }
            page.items = kept;
        }
        Ok(page)
    }

    pub async fn create(&self, c: &Caller, req: NewAgent) -> AppResult<Agent> {
        c.require(Scope::AgentsWrite)?;
        require_ai(c)?;
        let mut s = AgentSettings {
            name: req.name,
            brand_id: Self::parse_brand(req.brand_id)?,
            account_ids: Vec::new(),
            instructions: req.instructions,
            sources: Self::sources(AgentSources::default(), req.sources)?,
            schedule: req.schedule,
            output: parse_output(req.output.as_deref().unwrap_or("draft"))?,
            max_posts: req.max_posts.unwrap_or(DEFAULT_POSTS),
            max_credits: req.max_credits.unwrap_or(DEFAULT_CREDITS),
            enabled: req.enabled.unwrap_or(true),
        };
        self.check(c, &mut s, req.account_ids.as_deref(), None)
            .await?;
        // It writes with AI credits: a key that cannot generate cannot make it.
        c.require(Scope::AiGenerate)?;
        if self.app.store().count_agents(c.workspace()).await? >= MAX_AGENTS {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!("This workspace already has {MAX_AGENTS} agents, the most it may have."),
            ));
        }
        let now = self.app.clock().now_ms();
        let next_run_at = self.next_due(&c.tenant, &s, now).await?;
        let agent = Agent {
            id: AgentId::generate(),
            workspace_id: c.workspace().clone(),
            livemode: c.livemode(),
            settings: s,
            next_run_at,
            last_run_at: None,
            created_at: now,
            updated_at: now,
        };
        self.app.store().insert_agent(&agent).await?;
        Ok(agent)
    }

    /// Changes an agent. A new schedule, or turning it on, counts due times from now.
    pub async fn update(&self, c: &Caller, id: &str, e: AgentEdit) -> AppResult<Agent> {
        c.require(Scope::AgentsWrite)?;
        let agent = self.visible(c, id).await?;
        let mut s = agent.settings.clone();
        if let Some(n) = e.name {
            s.name = n;
        }
        if let Some(i) = e.instructions {
            s.instructions = i;
        }
        let brand_changed = e.brand_id.is_some();
        if let Some(b) = e.brand_id {
            s.brand_id = Self::parse_brand(b)?;
        }
        s.sources = Self::sources(s.sources, e.sources)?;
        if let Some(sch) = e.schedule {
            s.schedule = sch;
        }
        if let Some(o) = e.output {
            s.output = parse_output(&o)?;
        }
        if let Some(n) = e.max_posts {
            s.max_posts = n;
        }
        if let Some(n) = e.max_credits {
            s.max_credits = n;
        }
        if let Some(en) = e.enabled {
            s.enabled = en;
        }
        // A new brand without new accounts takes the brand's accounts.
        let accounts: Option<Vec<String>> =
            match (&e.account_ids, brand_changed && s.brand_id.is_some()) {
                (Some(ids), _) => Some(ids.clone()),
                (None, true) => None,
                (None, false) => Some(s.account_ids.iter().map(ToString::to_string).collect()),
            };
        self.check(c, &mut s, accounts.as_deref(), Some(&agent.settings))
            .await?;
        let now = self.app.clock().now_ms().max(agent.updated_at + 1);
        let timing_changed =
            s.schedule != agent.settings.schedule || s.enabled != agent.settings.enabled;
        let next_run_at = if timing_changed {
            self.next_due(&c.tenant, &s, now).await?
        } else {
            agent.next_run_at
        };
        let changed = Agent {
            settings: s,
            next_run_at,
            updated_at: now,
            ..agent.clone()
        };
        self.app
            .store()
            .update_agent(&changed, agent.updated_at)
            .await?
            .ok_or_else(|| {
                AppError::new(
                    ErrorCode::Conflict,
                    "The agent changed while this change was made; read it again and retry.",
                )
            })
    }

    /// Deletes an agent with its runs; a run in progress records nothing. Its posts stay.
    pub async fn delete(&self, c: &Caller, id: &str) -> AppResult<AgentId> {
        c.require(Scope::AgentsWrite)?;
        let agent = self.visible(c, id).await?;
        if !self
            .app
            .store()
            .delete_agent(c.workspace(), &agent.id)
            .await?
        {
            return Err(AppError::not_found("agent", id));
        }
        Ok(agent.id)
    }

    /// Asks for a run now (`409 conflict` while an asked-for run is waiting or running).
    pub async fn run_now(&self, c: &Caller, id: &str) -> AppResult<AgentRun> {
        c.require(Scope::AgentsWrite)?;
        require_ai(c)?;
        let agent = self.visible(c, id).await?;
        // A run asked for spends credits, and an agent that queues publishes what it makes.
        c.require(Scope::AiGenerate)?;
        if agent.settings.output == AgentOutput::Queue {
            c.require(Scope::PostsPublish)?;
        }
        let now = self.app.clock().now_ms();
        let run = self
            .app
            .store()
            .request_agent_run(&agent, now)
            .await?
            .ok_or_else(|| {
                AppError::new(
                    ErrorCode::Conflict,
                    "This agent already has a run waiting or running; wait for it to finish.",
                )
            })?;
        Ok(run)
    }

    pub async fn runs(
        &self,
        c: &Caller,
        id: &str,
        limit: u32,
        offset: u32,
    ) -> AppResult<Page<AgentRun>> {
        let agent = self.get(c, id).await?;
        Ok(self
            .app
            .store()
            .list_agent_runs(c.workspace(), &agent.id, limit, offset)
            .await?)
    }

    pub async fn run(&self, c: &Caller, id: &str, run: &str) -> AppResult<AgentRun> {
        let agent = self.get(c, id).await?;
        let not_found = || AppError::not_found("agent run", run);
        let parsed = AgentRunId::parse(run).ok_or_else(not_found)?;
        self.app
            .store()
            .get_agent_run(c.workspace(), &agent.id, &parsed)
            .await?
            .ok_or_else(not_found)
    }

    // ---- the scheduler and the runs ----

    /// Makes the runs of every due time reached at `now`, `batch` agents at a time (at most
    /// [`SCHEDULE_ROUNDS`] batches a call): one run per agent for its oldest missed due time,
    /// and the agent moves on to its first due time after `now` (a node that was down runs a
    /// missed schedule once, not once per missed time). Returns the runs this call made.
    pub async fn schedule_due(&self, now: i64, batch: u32) -> AppResult<Vec<AgentRun>> {
        let store = self.app.store();
        let mut made = Vec::new();
        for _ in 0..SCHEDULE_ROUNDS {
            let due = store.due_agents(now, batch).await?;
            let full = due.len() >= batch as usize;
            for agent in due {
                let Some(at) = agent.next_run_at else {
                    continue;
                };
                let tenant = Tenant {
                    workspace: agent.workspace_id.clone(),
                    livemode: agent.livemode,
                };
                let next = match self.next_due(&tenant, &agent.settings, now).await {
                    Ok(n) => n,
                    Err(e) => {
                        // A schedule stored before a stricter parser: stop it rather than spin.
                        tracing::warn!(agent = %agent.id, error = %e.message, "the agent's schedule cannot be read; it stops");
                        None
                    }
                };
                if let Some(run) = store.schedule_agent_run(&agent, at, next, now).await? {
                    made.push(run);
                }
            }
            if !full {
                break;
            }
        }
        Ok(made)
    }

    /// Runs the run a claimed job names, and records its end. `None`: nothing to do (the run
    /// is gone or finished, or another attempt overtook this one); the job is dropped when
    /// the run is.
    pub async fn run_job(&self, job: &Job, run_id: &AgentRunId) -> AppResult<Option<AgentRun>> {
        let store = self.app.store();
        let now = self.app.clock().now_ms();
        let Some(run) = store.start_agent_run(run_id, now).await? else {
            store.drop_job(&job.id).await?;
            return Ok(None);
        };
        let Some(agent) = store.get_agent(&run.workspace_id, &run.agent_id).await? else {
            store.drop_job(&job.id).await?;
            return Ok(None);
        };
        // A run that keeps being lost (a model slower than the lease, a crash it causes) is
        // not started again and again: each start may spend credits.
        let result = if run.attempts > MAX_ATTEMPTS {
            RunResult {
                status: RunStatus::Failed,
                engine: None,
                inputs: Vec::new(),
                prompts: Vec::new(),
                posts: Vec::new(),
                notes: Vec::new(),
                credits: 0,
                error: Some((
                    ErrorCode::InternalError.as_str().to_owned(),
                    format!(
                        "The run was started {MAX_ATTEMPTS} times and never finished; it is not \
                         tried again."
                    ),
                )),
            }
        } else {
            self.execute(&agent).await?
        };
        let now = self.app.clock().now_ms().max(now);
        let finished = AgentRun {
            status: result.status,
            engine: result.engine.clone(),
            inputs: result.inputs.clone(),
            prompts: result.prompts.clone(),
            post_ids: result.posts.iter().map(|p| p.id.clone()).collect(),
            notes: result.notes.clone(),
            credits: result.credits,
            error: result.error.clone(),
            finished_at: Some(now),
            ..run.clone()
        };
        let kind = match result.status {
            RunStatus::Completed => event_types::AGENT_RUN_COMPLETED,
            _ => event_types::AGENT_RUN_FAILED,
        };
        let data = serde_json::to_value(AgentRunObject::from(&finished)).expect("a run object");
        if store
            .finish_agent_run(&job.id, &run, &result, (kind, &data), now)
            .await?
        {
            if result
                .posts
                .iter()
                .any(|p| matches!(p.status, PostStatus::Scheduled | PostStatus::Publishing))
            {
                self.app.publish_wake().notify_one();
            }
            Ok(Some(finished))
        } else {
            Ok(None)
        }
    }

    /// One run's work, nothing stored: a failure the run should show (no credits, no model,
    /// no plan) is a failed result; storage failing is an error (the job comes back).
    async fn execute(&self, agent: &Agent) -> AppResult<RunResult> {
        let s = &agent.settings;
        let tenant = Tenant {
            workspace: agent.workspace_id.clone(),
            livemode: agent.livemode,
        };
        let mut result = RunResult {
            status: RunStatus::Completed,
            engine: None,
            inputs: Vec::new(),
            prompts: Vec::new(),
            posts: Vec::new(),
            notes: Vec::new(),
            credits: 0,
            error: None,
        };
        let fail = |mut r: RunResult, code: ErrorCode, message: String| {
            r.status = RunStatus::Failed;
            r.error = Some((code.as_str().to_owned(), message));
            r.posts.clear();
            Ok(r)
        };
        let store = self.app.store();
        let Some(ws) = store.get_workspace(&agent.workspace_id).await? else {
            return fail(result, ErrorCode::NotFound, "The workspace is gone.".into());
        };
        let Some(plan) = self.app.plan(&ws.plan) else {
            return fail(
                result,
                ErrorCode::InternalError,
                format!(
                    "The workspace's plan `{}` is not configured on this server.",
                    ws.plan
                ),
            );
        };
        let caller = Caller::system(
            tenant.clone(),
            plan,
            [Scope::AiGenerate, Scope::PostsWrite, Scope::AgentsRead]
                .into_iter()
                .collect::<ScopeSet>(),
            agent.id.to_string(),
        );
        let mut accounts: Vec<Account> = Vec::new();
        for id in &s.account_ids {
            if let Some(a) = store.get_account_in(&tenant, id).await?
                && a.status == crier_core::accounts::AccountStatus::Connected
            {
                accounts.push(a);
            }
        }
        if accounts.is_empty() {
            return fail(
                result,
                ErrorCode::InvalidRequest,
                "None of the agent's accounts is connected.".into(),
            );
        }

        // 1. Subjects, from the sources, newest first.
        let mut subjects: Vec<String> = Vec::new();
        let since = agent.last_run_at.unwrap_or(agent.created_at);
        for feed in &s.sources.feed_ids {
            for (title, link) in store
                .feed_entries_since(&agent.workspace_id, feed, since, PER_SOURCE as u32)
                .await?
            {
                let Some(title) = title.filter(|t| !t.trim().is_empty()) else {
                    continue;
                };
                result
                    .inputs
                    .push(json!({"source": "feed", "feed_id": feed, "title": title, "link": link}));
                subjects.push(title);
            }
        }
        if s.sources.trending {
            for t in self.app.trending().topics(&caller, PER_SOURCE).await? {
                result
                    .inputs
                    .push(json!({"source": "trending", "topic": t.topic, "network": t.source}));
                subjects.push(t.topic);
            }
        }
        if s.sources.best_posts {
            // Of the agent's own accounts (what it was given), not a brand's as it is now.
            for text in store
                .best_published_texts(&tenant, Some(&s.account_ids), PER_SOURCE as i64)
                .await?
            {
                let text = clip(&text, 280);
                result
                    .inputs
                    .push(json!({"source": "best_post", "text": text}));
                subjects.push(text);
            }
        }
        if subjects.is_empty() {
            result
                .inputs
                .push(json!({"source": "instructions", "text": clip(&s.instructions, 200)}));
            subjects.push(s.instructions.clone());
        }

        // 2. Texts, within the budget.
        let target = Target {
            platform: Some(self.platform_of(&accounts).to_owned()),
            brand: s.brand_id.as_ref().map(ToString::to_string),
            skip_knowledge: !s.sources.knowledge,
            skip_trends: !s.sources.trending,
        };
        let has_model = self.app.engine().has_model();
        result.engine = Some(if has_model { "model" } else { "builtin" }.to_owned());
        let max_posts = usize::try_from(s.max_posts).unwrap_or(1);
        let mut texts: Vec<String> = Vec::new();
        let mut tasks: Vec<Task> = Vec::new();
        if has_model {
            for subject in subjects.iter().cycle().take(max_posts) {
                let prompt = clip(
                    &format!(
                        "{}\n\nWrite one post about: {}",
                        s.instructions,
                        clip(subject, 300)
                    ),
                    crate::ai::MAX_PROMPT,
                );
                tasks.push(Task::Compose { prompt });
            }
        } else {
            let topic = clip(subjects[0].trim(), crate::ai::MAX_TOPIC);
            tasks.push(Task::Ideas {
                topic: Some(topic.clone()),
                count: Some(max_posts.min(crate::ai::MAX_IDEAS)),
            });
            result.notes.push(format!(
                "No model is configured, so the built-in engine wrote these posts from ideas about \
                 \"{topic}\"; configure a model for posts composed from the instructions."
            ));
        }
        for task in tasks {
            let cost = task.cost();
            if result.credits + cost > s.max_credits {
                result.notes.push(format!(
                    "The run's budget of {} credits was reached after {} post(s).",
                    s.max_credits,
                    texts.len()
                ));
                break;
            }
            result.prompts.push(match &task {
                Task::Compose { prompt } => prompt.clone(),
                Task::Ideas { topic, .. } => format!("ideas: {}", topic.as_deref().unwrap_or("")),
                _ => String::new(),
            });
            match self.app.ai().generate(&caller, target.clone(), task).await {
                Ok(g) => {
                    result.credits += g.credits;
                    match g.output {
                        Output::Text(t) => texts.push(t),
                        Output::Ideas(ideas) => {
                            texts.extend(ideas.into_iter().map(|Idea { draft, .. }| draft))
                        }
                        _ => {}
                    }
                }
                Err(e) if e.code == ErrorCode::InternalError => return Err(e),
                Err(e) if texts.is_empty() => {
                    return fail(result, e.code, e.message.into_owned());
                }
                Err(e) => {
                    result.notes.push(format!(
                        "Stopped after {} post(s): {}",
                        texts.len(),
                        e.message
                    ));
                    break;
                }
            }
        }
        texts.retain(|t| !t.trim().is_empty());
        texts.truncate(max_posts);
        if texts.is_empty() {
            let message = if result.credits == 0 && !result.notes.is_empty() {
                format!(
                    "The run's budget of {} credits is too small for one post.",
                    s.max_credits
                )
            } else {
                "The engine wrote nothing usable.".to_owned()
            };
            return fail(result, ErrorCode::InvalidRequest, message);
        }

        // 3. The posts, placed as the output mode says.
        let now = self.app.clock().now_ms();
        let candidates = texts
            .into_iter()
            .map(|text| {
                let fits = accounts.iter().all(|a| {
                    self.app.networks().get(&a.platform).is_none_or(|n| {
                        n.rules().check(std::slice::from_ref(&text), &[]).is_empty()
                    })
                });
                let mut post =
                    Post::draft(&agent.workspace_id, agent.livemode, &accounts, text, now);
                post.brand_id = s.brand_id.clone();
                Candidate { post, fits }
            })
            .collect();
        let mode = match s.output {
            AgentOutput::Draft => Placement::Draft,
            AgentOutput::PendingApproval => Placement::Approval,
            AgentOutput::Queue => Placement::Queue,
        };
        result.posts = place(self.app, &tenant, mode, candidates, agent.id.as_str(), now).await?;
        let drafted = result
            .posts
            .iter()
            .filter(|p| p.status == PostStatus::Draft)
            .count();
        if mode != Placement::Draft && drafted > 0 {
            result.notes.push(format!(
                "{drafted} post(s) were kept as drafts: they did not fit a network, the queue had \
                 no free slot, or the plan's posts per month are used up."
            ));
        }
        Ok(result)
    }

    /// The platform whose rules the posts fit: the strictest of the accounts' networks.
    fn platform_of(&self, accounts: &[Account]) -> &'static str {
        crier_networks::documented_rules()
            .into_iter()
            .filter(|r| accounts.iter().any(|a| a.platform == r.platform))
            .min_by_key(|r| r.max_length)
            .map(|r| r.platform)
            .unwrap_or(crate::ai::DEFAULT_PLATFORM)
    }
}
