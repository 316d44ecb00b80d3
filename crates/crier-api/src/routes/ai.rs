//! `/v1/ai/*`: the six generations and the credits they cost, and `/v1/persona`, the brand
//! voice they write in. The rules live in crier-app (`ai.rs`, `personas.rs`); these handlers
//! parse, call and render.
//!
//! Every generation answers `{"data":{…},"usage":{"credits","remaining"}}`: what it cost and
//! the credits left this month (`null` on plans without an AI quota).

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use crier_app::ai::{Generated, Output, Target, Task};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Auth, need};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, query_pairs};

#[derive(Debug, Serialize, ToSchema)]
pub struct Spent {
    /// Credits this call cost.
    #[schema(example = 5)]
    pub credits: i64,
    /// Credits left this month; `null` when the plan has no AI quota.
    pub remaining: Option<i64>,
}

/// A generation's answer: `data` (its shape depends on the endpoint) and what it cost.
#[derive(Debug, Serialize, ToSchema)]
pub struct AiResponse<T> {
    pub data: T,
    pub usage: Spent,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TextData {
    pub text: String,
    /// The network whose rules the text fits.
    #[schema(example = "bluesky")]
    pub platform: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HashtagsData {
    /// Each valid on the network, with `#`.
    pub hashtags: Vec<String>,
    pub platform: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadData {
    /// The thread's parts in order, each within the network's limit.
    pub parts: Vec<String>,
    pub platform: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdeaObject {
    pub title: String,
    pub angle: String,
    pub draft: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdeasData {
    pub ideas: Vec<IdeaObject>,
    pub platform: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestionObject {
    /// A stable rule id, e.g. `optimise.hook`.
    #[schema(example = "optimise.hook")]
    pub rule: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OptimiseData {
    /// The improved text (fits the network).
    pub text: String,
    /// 0 to 100, of the text as sent.
    #[schema(minimum = 0, maximum = 100)]
    pub score: u8,
    pub suggestions: Vec<SuggestionObject>,
    pub platform: &'static str,
}

// ---- requests ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RewriteRequest {
    /// 1 to 10000 characters.
    #[schema(schema_with = crate::openapi::fields::ai_text_input)]
    pub text: String,
    /// E.g. `friendly`, `formal`, `playful`; at most 100 characters (default: the persona's
    /// tone).
    #[schema(max_length = 100)]
    pub tone: Option<String>,
    /// The network the text is for (default: the strictest of the brand's networks, else the
    /// sandbox's 300 characters).
    #[schema(schema_with = crate::openapi::fields::platform_optional)]
    pub platform: Option<String>,
    #[schema(schema_with = crate::openapi::fields::brand_id_optional)]
    pub brand_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeRequest {
    /// What to write about, 1 to 4000 characters.
    #[schema(schema_with = crate::openapi::fields::ai_prompt)]
    pub prompt: String,
    #[schema(schema_with = crate::openapi::fields::platform_optional)]
    pub platform: Option<String>,
    #[schema(schema_with = crate::openapi::fields::brand_id_optional)]
    pub brand_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HashtagsRequest {
    #[schema(schema_with = crate::openapi::fields::ai_text_input)]
    pub text: String,
    /// 1 to 30 (default 5), capped by the network's own maximum.
    #[schema(minimum = 1, maximum = 30)]
    pub count: Option<usize>,
    #[schema(schema_with = crate::openapi::fields::platform_optional)]
    pub platform: Option<String>,
    #[schema(schema_with = crate::openapi::fields::brand_id_optional)]
    pub brand_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadRequest {
    #[schema(schema_with = crate::openapi::fields::ai_text_input)]
    pub text: String,
    #[schema(schema_with = crate::openapi::fields::platform)]
    pub platform: String,
    /// 1 to 25 (default: the network's maximum), capped by the network's maximum.
    #[schema(minimum = 1, maximum = 25)]
    pub max_parts: Option<usize>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdeasRequest {
    /// At most 200 characters (default: trending topics and the persona's topics).
    #[schema(schema_with = crate::openapi::fields::ai_topic_optional)]
    pub topic: Option<String>,
    /// 1 to 10 (default 5).
    #[schema(minimum = 1, maximum = 10)]
    pub count: Option<usize>,
    #[schema(schema_with = crate::openapi::fields::platform_optional)]
    pub platform: Option<String>,
    #[schema(schema_with = crate::openapi::fields::brand_id_optional)]
    pub brand_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimiseRequest {
    #[schema(schema_with = crate::openapi::fields::ai_text_input)]
    pub text: String,
    #[schema(schema_with = crate::openapi::fields::platform)]
    pub platform: String,
    #[schema(schema_with = crate::openapi::fields::brand_id_optional)]
    pub brand_id: Option<String>,
}

// ---- rendering ----

fn respond<T>(
    g: Generated,
    shape: impl FnOnce(Output, &'static str) -> Option<T>,
) -> ApiResult<Json<AiResponse<T>>> {
    let usage = Spent {
        credits: g.credits,
        remaining: g.remaining,
    };
    let data = shape(g.output, g.platform)
        .ok_or_else(|| ApiError::internal("the engine answered another kind of output"))?;
    Ok(Json(AiResponse { data, usage }))
}

fn text(o: Output, platform: &'static str) -> Option<TextData> {
    match o {
        Output::Text(text) => Some(TextData { text, platform }),
        _ => None,
    }
}

async fn run(
    state: &AppState,
    p: &crate::auth::Principal,
    target: Target,
    task: Task,
) -> ApiResult<Generated> {
    Ok(state.app().ai().generate(&p.caller(), target, task).await?)
}

// ---- handlers ----

/// Rewrite a text in a tone, in the brand's voice, to fit a network. Needs a model
/// (`503 upstream_unavailable` without one, and nothing is spent). 5 credits.
#[utoipa::path(post, path = "/v1/ai/rewrite", tag = "ai", request_body = RewriteRequest,
    security(("bearer" = ["ai:generate"]), ("api_key" = ["ai:generate"])),
    responses((status = 200, body = inline(AiResponse<TextData>)), (status = "4XX", body = crate::error::ErrorEnvelope), (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn rewrite(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AiGenerate>,
    ApiJson(r): ApiJson<RewriteRequest>,
) -> ApiResult<Json<AiResponse<TextData>>> {
    let target = Target {
        platform: r.platform,
        brand: r.brand_id,
        ..Target::default()
    };
    let task = Task::Rewrite {
        text: r.text,
        tone: r.tone.unwrap_or_default(),
    };
    respond(run(&state, &p, target, task).await?, text)
}

/// Write a post from a prompt, in the brand's voice, drawing on its knowledge base. Needs a
/// model (`503 upstream_unavailable` without one, and nothing is spent). 5 credits.
#[utoipa::path(post, path = "/v1/ai/compose", tag = "ai", request_body = ComposeRequest,
    security(("bearer" = ["ai:generate"]), ("api_key" = ["ai:generate"])),
    responses((status = 200, body = inline(AiResponse<TextData>)), (status = "4XX", body = crate::error::ErrorEnvelope), (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn compose(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AiGenerate>,
    ApiJson(r): ApiJson<ComposeRequest>,
) -> ApiResult<Json<AiResponse<TextData>>> {
    let target = Target {
        platform: r.platform,
        brand: r.brand_id,
        ..Target::default()
    };
    respond(
        run(&state, &p, target, Task::Compose { prompt: r.prompt }).await?,
        text,
    )
}

/// Hashtags for a text, each valid on the network, from its keywords, trending topics and the
/// persona's habits. Built in (no model needed). 1 credit.
#[utoipa::path(post, path = "/v1/ai/hashtags", tag = "ai", request_body = HashtagsRequest,
    security(("bearer" = ["ai:generate"]), ("api_key" = ["ai:generate"])),
    responses((status = 200, body = inline(AiResponse<HashtagsData>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn hashtags(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AiGenerate>,
    ApiJson(r): ApiJson<HashtagsRequest>,
) -> ApiResult<Json<AiResponse<HashtagsData>>> {
    let target = Target {
        platform: r.platform,
        brand: r.brand_id,
        ..Target::default()
    };
    let task = Task::Hashtags {
        text: r.text,
        count: r.count,
    };
    respond(
        run(&state, &p, target, task).await?,
        |o, platform| match o {
            Output::Hashtags(hashtags) => Some(HashtagsData { hashtags, platform }),
            _ => None,
        },
    )
}

/// Split a long text into a numbered thread: sentence-aware, never inside a word, a link or
/// an emoji, each part within the network's limit. Built in. 1 credit.
#[utoipa::path(post, path = "/v1/ai/thread", tag = "ai", request_body = ThreadRequest,
    security(("bearer" = ["ai:generate"]), ("api_key" = ["ai:generate"])),
    responses((status = 200, body = inline(AiResponse<ThreadData>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn thread(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AiGenerate>,
    ApiJson(r): ApiJson<ThreadRequest>,
) -> ApiResult<Json<AiResponse<ThreadData>>> {
    let target = Target {
        platform: Some(r.platform),
        ..Target::default()
    };
    let task = Task::Thread {
        text: r.text,
        max_parts: r.max_parts,
    };
    respond(
        run(&state, &p, target, task).await?,
        |o, platform| match o {
            Output::Parts(parts) => Some(ThreadData { parts, platform }),
            _ => None,
        },
    )
}

/// Post ideas from trending topics, the persona's topics and the knowledge base. Built in.
/// 2 credits.
#[utoipa::path(post, path = "/v1/ai/ideas", tag = "ai", request_body = IdeasRequest,
    security(("bearer" = ["ai:generate"]), ("api_key" = ["ai:generate"])),
    responses((status = 200, body = inline(AiResponse<IdeasData>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn ideas(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AiGenerate>,
    ApiJson(r): ApiJson<IdeasRequest>,
) -> ApiResult<Json<AiResponse<IdeasData>>> {
    let target = Target {
        platform: r.platform,
        brand: r.brand_id,
        ..Target::default()
    };
    let task = Task::Ideas {
        topic: r.topic,
        count: r.count,
    };
    respond(
        run(&state, &p, target, task).await?,
        |o, platform| match o {
            Output::Ideas(ideas) => Some(IdeasData {
                ideas: ideas
                    .into_iter()
                    .map(|i| IdeaObject {
                        title: i.title,
                        angle: i.angle,
                        draft: i.draft,
                    })
                    .collect(),
                platform,
            }),
            _ => None,
        },
    )
}

/// Score a text for a network (0 to 100) with concrete suggestions (each with a rule id) and
/// an improved text. Deterministic, built in. 1 credit.
#[utoipa::path(post, path = "/v1/ai/optimise", tag = "ai", request_body = OptimiseRequest,
    security(("bearer" = ["ai:generate"]), ("api_key" = ["ai:generate"])),
    responses((status = 200, body = inline(AiResponse<OptimiseData>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn optimise(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AiGenerate>,
    ApiJson(r): ApiJson<OptimiseRequest>,
) -> ApiResult<Json<AiResponse<OptimiseData>>> {
    let target = Target {
        platform: Some(r.platform),
        brand: r.brand_id,
        ..Target::default()
    };
    respond(
        run(&state, &p, target, Task::Optimise { text: r.text }).await?,
        |o, platform| match o {
            Output::Optimised(o) => Some(OptimiseData {
                text: o.text,
                score: o.score,
                suggestions: o
                    .suggestions
                    .into_iter()
                    .map(|s| SuggestionObject {
                        rule: s.rule,
                        message: s.message,
                    })
                    .collect(),
                platform,
            }),
            _ => None,
        },
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostObject {
    #[schema(example = "rewrite")]
    pub endpoint: &'static str,
    pub credits: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AiUsageObject {
    #[schema(example = "ai_usage")]
    pub object: &'static str,
    /// The UTC month counted, e.g. `2026-12`.
    pub period: String,
    /// When the balance resets (the first of next month, UTC).
    #[schema(value_type = String, format = DateTime)]
    pub resets_at: jiff::Timestamp,
    pub credits_used: i64,
    /// The plan's credits per month; `null`: no AI quota.
    pub credits_per_month: Option<i64>,
    pub credits_remaining: Option<i64>,
    /// Test-mode keys are metered apart from live ones, with the same allowance.
    pub livemode: bool,
    /// Whether `rewrite` and `compose` can answer (a model is configured).
    pub model_configured: bool,
    pub costs: Vec<CostObject>,
}

/// AI credits spent this month and what is left; the price of each endpoint.
#[utoipa::path(get, path = "/v1/ai/usage", tag = "ai",
    security(("bearer" = ["ai:generate"]), ("api_key" = ["ai:generate"])),
    responses((status = 200, body = AiUsageObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn usage(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AiGenerate>,
) -> ApiResult<Json<AiUsageObject>> {
    let u = state.app().ai().usage(&p.caller()).await?;
    Ok(Json(AiUsageObject {
        object: "ai_usage",
        period: u.period,
        resets_at: crier_core::clock::from_ms(u.resets_at),
        credits_used: u.used,
        credits_per_month: u.limit,
        credits_remaining: u.remaining,
        livemode: u.livemode,
        model_configured: state.app().engine().has_model(),
        costs: crier_app::ai::COSTS
            .iter()
            .map(|(endpoint, credits)| CostObject {
                endpoint,
                credits: *credits,
            })
            .collect(),
    }))
}

// ---- persona ----

#[derive(Debug, Serialize, ToSchema)]
pub struct LearnedObject {
    /// Published posts learned from (the newest 200 at most).
    pub posts: usize,
    pub median_length: usize,
    pub emoji_per_post: f64,
    pub hashtags_per_post: f64,
    pub top_hashtags: Vec<String>,
    pub topics: Vec<String>,
    /// Each marker (`questions`, `exclamations`, `first_person_plural`, …) with the share of
    /// posts that show it, 0 to 1.
    #[schema(value_type = Object)]
    pub tone_markers: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonaObject {
    #[schema(example = "persona")]
    pub object: &'static str,
    /// The brand this voice is of; `null`: the workspace's own.
    pub brand_id: Option<String>,
    pub description: Option<String>,
    pub tone: Option<String>,
    pub words_to_use: Vec<String>,
    pub words_to_avoid: Vec<String>,
    pub learned: LearnedObject,
}

fn persona_object(brand: Option<String>, p: crier_ai::Persona) -> PersonaObject {
    let l = p.learned;
    PersonaObject {
        object: "persona",
        brand_id: brand,
        description: p.voice.description,
        tone: p.voice.tone,
        words_to_use: p.voice.words_to_use,
        words_to_avoid: p.voice.words_to_avoid,
        learned: LearnedObject {
            posts: l.posts,
            median_length: l.median_length,
            emoji_per_post: l.emoji_per_post,
            hashtags_per_post: l.hashtags_per_post,
            top_hashtags: l.top_hashtags,
            topics: l.topics,
            tone_markers: l
                .tone_markers
                .into_iter()
                .map(|(k, v)| (k, serde_json::json!(v)))
                .collect(),
        },
    }
}

/// `?brand_id=` from the query string, if given (the router refuses other names).
fn brand_param(parts: &Parts) -> Option<String> {
    query_pairs(parts.uri.query())
        .into_iter()
        .rev()
        .find(|(name, _)| name == "brand_id")
        .map(|(_, value)| value)
}

/// The brand voice: what an owner set, and what was learned from the brand's (or the
/// workspace's) newest published posts.
#[utoipa::path(get, path = "/v1/persona", tag = "ai",
    params(("brand_id" = Option<String>, Query, description = "A brand's voice (default: the workspace's)")),
    security(("bearer" = ["analytics:read"]), ("api_key" = ["analytics:read"])),
    responses((status = 200, body = PersonaObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn get_persona(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::AnalyticsRead>,
    parts: Parts,
) -> ApiResult<Json<PersonaObject>> {
    let brand = brand_param(&parts);
    let persona = state
        .app()
        .ai()
        .persona(&p.caller(), brand.as_deref())
        .await?;
    Ok(Json(persona_object(brand, persona)))
}

/// Set the owner's part of the brand voice (all of it: omitted fields are cleared).
#[utoipa::path(put, path = "/v1/persona", tag = "ai", request_body = crate::routes::brands::VoiceObject,
    params(("brand_id" = Option<String>, Query, description = "A brand's voice (default: the workspace's)")),
    security(("bearer" = ["posts:write"]), ("api_key" = ["posts:write"])),
    responses((status = 200, body = PersonaObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn put_persona(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::PostsWrite>,
    parts: Parts,
    ApiJson(v): ApiJson<crate::routes::brands::VoiceObject>,
) -> ApiResult<Json<PersonaObject>> {
    let brand = brand_param(&parts);
    let caller = p.caller();
    let ai = state.app().ai();
    ai.set_voice(&caller, brand.as_deref(), v.into()).await?;
    let persona = ai.persona(&caller, brand.as_deref()).await?;
    Ok(Json(persona_object(brand, persona)))
}
