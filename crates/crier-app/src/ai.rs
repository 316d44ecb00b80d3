//! AI content for every caller: the six generations (`rewrite`, `compose`, `hashtags`,
//! `thread`, `ideas`, `optimise`), the persona they write in, and the credits they cost.
//!
//! One path runs them all ([`Ai::generate`]): the caller's scope and plan, the input's bounds,
//! the target network's rules (the networks' own, never a copy), then the credits, spent in one
//! conditional statement before the engine runs and refunded when the engine fails (the model
//! server is down, times out or answers nothing usable). `rewrite` and `compose` need a model:
//! without one they answer `503 upstream_unavailable` before anything is spent.
//!
//! A generation writes in the persona (what the owner set, merged with what was learned from
//! the published posts of the brand, or of the workspace), draws on the best knowledge-base
//! passages for its text (a brand's and the workspace's), and ideas and hashtags on trending
//! topics.
//!
//! Credits are counted per workspace and UTC month; the balance resets on the first of the
//! month. Test-mode keys are metered apart (their own counter with the same allowance), so
//! they never spend the plan's quota and are still bounded.

use crier_ai::{AiError, Context, Engine, Idea, Optimised, Persona};
use crier_core::clock::Month;
use crier_core::ids::BrandId;
use crier_core::{ErrorCode, Scope};
use crier_networks::rules::Rules;
use crier_store::Brand;

use crate::{App, AppError, AppResult, Caller};

/// The longest text, prompt or topic a generation takes, in characters.
pub const MAX_TEXT: usize = 10_000;
pub const MAX_PROMPT: usize = 4_000;
pub const MAX_TONE: usize = 100;
pub const MAX_TOPIC: usize = 200;
pub const MAX_HASHTAGS: usize = 30;
pub const DEFAULT_HASHTAGS: usize = 5;
pub const MAX_IDEAS: usize = 10;
pub const DEFAULT_IDEAS: usize = 5;
pub const MAX_PARTS: usize = 25;
/// How many knowledge passages, trending topics and published posts a generation draws on.
pub const PASSAGES: usize = 5;
pub const TRENDS: usize = 20;
pub const LEARN_FROM: i64 = 200;
/// The platform whose rules a generation fits when it names none and its brand has no
/// accounts: the sandbox, "a typical network" (300 characters).
pub const DEFAULT_PLATFORM: &str = "sandbox";

/// One of the six generations, with its input.
#[derive(Debug, Clone)]
pub enum Task {
    Rewrite {
        text: String,
        tone: String,
    },
    Compose {
        prompt: String,
    },
    Hashtags {
        text: String,
        count: Option<usize>,
    },
    Thread {
        text: String,
        max_parts: Option<usize>,
    },
    Ideas {
        topic: Option<String>,
        count: Option<usize>,
    },
    Optimise {
        text: String,
    },
}

/// What a generation is for: a network (its rules) and a brand (its voice and knowledge).
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub platform: Option<String>,
    pub brand: Option<String>,
    /// Leave the knowledge base out (an agent whose sources exclude it).
    pub skip_knowledge: bool,
    /// Leave trending topics out.
    pub skip_trends: bool,
}

/// The price list, in credits.
pub const COSTS: [(&str, i64); 6] = [
    ("rewrite", 5),
    ("compose", 5),
    ("hashtags", 1),
    ("thread", 1),
    ("ideas", 2),
    ("optimise", 1),
];

impl Task {
    pub fn name(&self) -> &'static str {
        match self {
            Task::Rewrite { .. } => "rewrite",
            Task::Compose { .. } => "compose",
            Task::Hashtags { .. } => "hashtags",
            Task::Thread { .. } => "thread",
            Task::Ideas { .. } => "ideas",
            Task::Optimise { .. } => "optimise",
        }
    }

    /// The task's price, from [`COSTS`] (the one price list, also shown by `/v1/ai/usage`).
    pub fn cost(&self) -> i64 {
        let name = self.name();
        COSTS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
            .expect("every task is in the price list")
    }

    fn needs_model(&self) -> bool {
        matches!(self, Task::Rewrite { .. } | Task::Compose { .. })
    }

    /// The platform is required where the answer is only meaningful for one network.
    fn needs_platform(&self) -> bool {
        matches!(self, Task::Thread { .. } | Task::Optimise { .. })
    }

    /// What the knowledge base is searched with.
    fn query(&self) -> Option<&str> {
        match self {
            Task::Rewrite { text, .. }
            | Task::Hashtags { text, .. }
            | Task::Thread { text, .. }
            | Task::Optimise { text } => Some(text),
            Task::Compose { prompt } => Some(prompt),
            Task::Ideas { topic, .. } => topic.as_deref(),
        }
    }

    fn check(&self) -> AppResult<()> {
        match self {
            Task::Rewrite { text, tone } => {
                bounded("text", text, MAX_TEXT)?;
                if tone.chars().count() > MAX_TONE {
                    return Err(AppError::invalid(
                        "tone",
                        format!("`tone` must be at most {MAX_TONE} characters."),
                    ));
                }
                Ok(())
            }
            Task::Compose { prompt } => bounded("prompt", prompt, MAX_PROMPT),
            Task::Hashtags { text, count } => {
                bounded("text", text, MAX_TEXT)?;
                in_range("count", *count, MAX_HASHTAGS)
            }
            Task::Thread { text, max_parts } => {
                bounded("text", text, MAX_TEXT)?;
                in_range("max_parts", *max_parts, MAX_PARTS)
            }
            Task::Ideas { topic, count } => {
                if let Some(t) = topic {
                    bounded("topic", t, MAX_TOPIC)?;
                }
                in_range("count", *count, MAX_IDEAS)
            }
            Task::Optimise { text } => bounded("text", text, MAX_TEXT),
        }
    }
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

fn in_range(param: &'static str, n: Option<usize>, max: usize) -> AppResult<()> {
    match n {
        Some(n) if n == 0 || n > max => Err(AppError::invalid(
            param,
            format!("`{param}` must be from 1 to {max}."),
        )),
        _ => Ok(()),
    }
}

/// What a generation gave.
#[derive(Debug, Clone)]
pub enum Output {
    Text(String),
    Hashtags(Vec<String>),
    Parts(Vec<String>),
    Ideas(Vec<Idea>),
    Optimised(Optimised),
}

/// A generation's answer and what it cost.
#[derive(Debug, Clone)]
pub struct Generated {
    pub output: Output,
    pub platform: &'static str,
    pub credits: i64,
    /// Credits left this month; `None` when the plan has no AI quota.
    pub remaining: Option<i64>,
}

/// The caller's AI credits this month.
#[derive(Debug, Clone)]
pub struct Usage {
    pub period: String,
    /// Unix milliseconds of the next reset (the first of next month, UTC).
    pub resets_at: i64,
    pub used: i64,
    /// `None`: the plan has no AI quota.
    pub limit: Option<i64>,
    pub remaining: Option<i64>,
    pub livemode: bool,
}

/// The AI rules over one [`App`].
pub struct Ai<'a> {
    pub(crate) app: &'a App,
}

impl Ai<'_> {
    fn engine(&self) -> &dyn Engine {
        self.app.engine()
    }

    fn metric(c: &Caller) -> &'static str {
        if c.livemode() {
            crier_store::METRIC_AI_CREDITS
        } else {
            crier_store::METRIC_AI_CREDITS_TEST
        }
    }

    fn limit(c: &Caller) -> Option<i64> {
        c.plan
            .ai_credits_per_month
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// The caller's credits this month.
    pub async fn usage(&self, c: &Caller) -> AppResult<Usage> {
        c.require(Scope::AiGenerate)?;
        let month = Month::of(self.app.clock().now_ms());
        let used = self
            .app
            .store()
            .workspace_usage(c.workspace(), &month.period)
            .await?
            .get(Self::metric(c))
            .copied()
            .unwrap_or(0)
            .max(0);
        let limit = Self::limit(c);
        Ok(Usage {
            remaining: limit.map(|l| (l - used).max(0)),
            period: month.period,
            resets_at: month.end,
            used,
            limit,
            livemode: c.livemode(),
        })
    }

    /// Runs one generation for the caller, metered.
    pub async fn generate(&self, c: &Caller, target: Target, task: Task) -> AppResult<Generated> {
        c.require(Scope::AiGenerate)?;
        task.check()?;
        let brand = self.brand(c, target.brand.as_deref()).await?;
        let rules = self
            .rules(c, &task, target.platform.as_deref(), &brand)
            .await?;
        if task.needs_model() && !self.engine().has_model() {
            return Err(AppError::new(
                ErrorCode::UpstreamUnavailable,
                crier_ai::builtin::NO_MODEL,
            ));
        }
        // Spent before any work (the persona, the knowledge search and its embedding, the
        // model), so a workspace with no credits left costs nothing; given back if the work
        // fails, or if the request is cut off (a timeout, a client gone) on the way.
        let spent = self.spend(c, task.cost()).await?;
        let (credits, remaining) = (spent.credits, spent.remaining);
        let persona = self.persona_of(c, brand.as_ref()).await?;
        let passages = match task.query().filter(|_| !target.skip_knowledge) {
            Some(q) => {
                self.app
                    .kb()
                    .passages_for(c, brand.as_ref().map(|b| &b.id), q, PASSAGES)
                    .await?
            }
            None => Vec::new(),
        };
        let trends =
            if !target.skip_trends && matches!(task, Task::Ideas { .. } | Task::Hashtags { .. }) {
                self.app.trending().topics(c, TRENDS).await?
            } else {
                Vec::new()
            };
        let cx = Context {
            rules,
            persona: &persona,
            passages: &passages,
            trends: &trends,
        };
        let engine = self.engine();
        let result = match &task {
            Task::Rewrite { text, tone } => {
                // No tone asked for: the persona's, else a neutral one.
                let tone = match tone.trim() {
                    "" => persona.voice.tone.as_deref().unwrap_or("neutral"),
                    t => t,
                };
                engine.rewrite(cx, text, tone).await.map(Output::Text)
            }
            Task::Compose { prompt } => engine.compose(cx, prompt).await.map(Output::Text),
            Task::Hashtags { text, count } => engine
                .hashtags(cx, text, count.unwrap_or(DEFAULT_HASHTAGS))
                .await
                .map(Output::Hashtags),
            Task::Thread { text, max_parts } => engine
                .thread(cx, text, max_parts.unwrap_or(rules.max_thread_parts.max(1)))
                .await
                .map(Output::Parts),
            Task::Ideas { topic, count } => engine
                .ideas(cx, topic.as_deref(), count.unwrap_or(DEFAULT_IDEAS))
                .await
                .map(Output::Ideas),
            Task::Optimise { text } => engine.optimise(cx, text).await.map(Output::Optimised),
        };
        match result {
            Ok(output) => {
                spent.settle();
                Ok(Generated {
                    output,
                    platform: rules.platform,
                    credits,
                    remaining,
                })
            }
            Err(AiError::Declined(m)) => {
                // The model did the work and answered nothing usable: that is charged.
                spent.settle();
                Err(AppError::new(
                    ErrorCode::InvalidRequest,
                    format!("{m}; the credits for this call are spent. Rephrase and try again."),
                ))
            }
            Err(AiError::NoModel(m) | AiError::Upstream(m)) => {
                spent.refund().await;
                Err(AppError::new(ErrorCode::UpstreamUnavailable, m))
            }
            Err(AiError::Invalid { param, message }) => {
                spent.refund().await;
                Err(AppError::invalid(param, message))
            }
        }
    }

    /// Takes `cost` credits from this month's balance, or `402 quota_exceeded`.
    async fn spend(&self, c: &Caller, cost: i64) -> AppResult<Spent> {
        let month = Month::of(self.app.clock().now_ms());
        let limit = Self::limit(c);
        let spent = self
            .app
            .store()
            .spend_counter(c.workspace(), &month.period, Self::metric(c), cost, limit)
            .await?;
        match spent {
            Some(total) => Ok(Spent {
                app: self.app.clone(),
                workspace: c.workspace().clone(),
                period: month.period,
                metric: Self::metric(c),
                credits: cost,
                remaining: limit.map(|l| (l - total).max(0)),
                settled: false,
            }),
            None => {
                let limit = limit.unwrap_or(0);
                let reset = crier_core::clock::from_ms(month.end);
                Err(AppError::new(
                    ErrorCode::QuotaExceeded,
                    format!(
                        "This workspace's AI credits for {} are used up ({cost} needed, \
                         {limit} a month on its plan); the balance resets at {reset}.",
                        month.period
                    ),
                ))
            }
        }
    }

    /// The brand a request names, visible to the caller (with its accounts and voice).
    async fn brand(&self, c: &Caller, id: Option<&str>) -> AppResult<Option<Brand>> {
        let Some(id) = id else { return Ok(None) };
        let unknown = || AppError::invalid("brand_id", format!("No such brand: '{id}'."));
        let parsed = BrandId::parse(id).ok_or_else(unknown)?;
        let brand = self
            .app
            .brands()
            .get(c, parsed.as_str())
            .await
            .map_err(|e| {
                if e.code == ErrorCode::NotFound {
                    unknown()
                } else {
                    e
                }
            })?;
        Ok(Some(brand))
    }

    /// The rules a generation's texts must fit: the named platform's; else the strictest of
    /// the brand's accounts' networks; else the sandbox's.
    async fn rules(
        &self,
        c: &Caller,
        task: &Task,
        platform: Option<&str>,
        brand: &Option<Brand>,
    ) -> AppResult<&'static Rules> {
        let documented = crier_networks::documented_rules();
        if let Some(p) = platform {
            return documented
                .into_iter()
                .find(|r| r.platform == p)
                .ok_or_else(|| {
                    AppError::invalid(
                        "platform",
                        format!(
                            "`platform` must be one of {}.",
                            crier_networks::PLATFORMS.join(", ")
                        ),
                    )
                });
        }
        if task.needs_platform() {
            return Err(AppError::invalid(
                "platform",
                format!("`{}` needs a `platform`.", task.name()),
            ));
        }
        let mut platforms = Vec::new();
        for id in brand.iter().flat_map(|b| &b.account_ids) {
            if let Some(a) = self.app.store().get_account_in(&c.tenant, id).await? {
                platforms.push(a.platform);
            }
        }
        let strictest = documented
            .iter()
            .filter(|r| platforms.iter().any(|p| p == r.platform))
            .min_by_key(|r| r.max_length)
            .copied();
        Ok(strictest.unwrap_or_else(|| {
            documented
                .into_iter()
                .find(|r| r.platform == DEFAULT_PLATFORM)
                .expect("the sandbox is documented")
        }))
    }

    /// The persona of a brand (or of the workspace): what the owner set, and what was learned
    /// from the newest published posts of its accounts.
    pub async fn persona(&self, c: &Caller, brand: Option<&str>) -> AppResult<Persona> {
        let brand = self.brand(c, brand).await?;
        self.persona_of(c, brand.as_ref()).await
    }

    /// Sets the owner's part of a brand's (or the workspace's) voice.
    pub async fn set_voice(
        &self,
        c: &Caller,
        brand: Option<&str>,
        voice: crier_ai::Voice,
    ) -> AppResult<crier_ai::Voice> {
        let brand = self.brand(c, brand).await?;
        self.app
            .personas()
            .set_voice(c, brand.as_ref().map(|b| &b.id), voice)
            .await
    }

    async fn persona_of(&self, c: &Caller, brand: Option<&Brand>) -> AppResult<Persona> {
        // A brand was read within the caller's reach already: its voice and accounts are at
        // hand. Without one, the workspace's voice and the posts the caller reaches.
        let (voice, texts) = match brand {
            Some(b) => (
                crate::personas::to_voice(b.voice.clone()),
                self.app
                    .store()
                    .published_texts(&c.tenant, Some(&b.account_ids), LEARN_FROM)
                    .await?,
            ),
            None => (
                self.app.personas().voice(c, None).await?,
                self.app
                    .personas()
                    .published_texts(c, None, LEARN_FROM)
                    .await?,
            ),
        };
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(Persona {
            voice,
            learned: crier_ai::builtin::learn(&texts),
        })
    }
}

/// Credits taken for one call, to the month they were taken from. Unless the call settles
/// them (it answered), they go back: at once through [`Spent::refund`] when the work failed,
/// or from `Drop` when the request was cut off before it could say (a timeout, a client that
/// went away).
struct Spent {
    app: App,
    workspace: crier_core::ids::WorkspaceId,
    period: String,
    metric: &'static str,
    credits: i64,
    remaining: Option<i64>,
    settled: bool,
}

impl Spent {
    fn settle(mut self) {
        self.settled = true;
    }

    async fn refund(mut self) {
        self.settled = true;
        give_back(
            &self.app,
            &self.workspace,
            &self.period,
            self.metric,
            self.credits,
        )
        .await;
    }
}

impl Drop for Spent {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (app, ws, period, metric, credits) = (
            self.app.clone(),
            self.workspace.clone(),
            std::mem::take(&mut self.period),
            self.metric,
            self.credits,
        );
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { give_back(&app, &ws, &period, metric, credits).await });
            }
            Err(_) => {
                tracing::warn!(workspace = %ws, credits, "AI credits not refunded: no runtime")
            }
        }
    }
}

async fn give_back(
    app: &App,
    ws: &crier_core::ids::WorkspaceId,
    period: &str,
    metric: &str,
    n: i64,
) {
    if let Err(e) = app.store().refund_counter(ws, period, metric, n).await {
        tracing::warn!(error = %e, workspace = %ws, "AI credit refund failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_has_a_price() {
        let tasks = [
            Task::Rewrite {
                text: String::new(),
                tone: String::new(),
            },
            Task::Compose {
                prompt: String::new(),
            },
            Task::Hashtags {
                text: String::new(),
                count: None,
            },
            Task::Thread {
                text: String::new(),
                max_parts: None,
            },
            Task::Ideas {
                topic: None,
                count: None,
            },
            Task::Optimise {
                text: String::new(),
            },
        ];
        let priced: Vec<(&str, i64)> = tasks.iter().map(|t| (t.name(), t.cost())).collect();
        assert_eq!(priced, COSTS);
    }
}
