//! `/v1/kb`: the knowledge base that AI generation draws on (the rules are in crier-app
//! `kb.rs`). Documents are added from text, Markdown, HTML or a URL, listed, read (with their
//! text) and deleted; `GET /v1/kb/search` answers the passages that best match a query.
//!
//! Decisions kept here (the rest is the application layer's):
//! - `GET /v1/kb/documents/{id}` adds `content`, the document's text as stored: its passages
//!   joined by blank lines, whole (a document holds at most 500,000 characters, so it is never
//!   cut).
//! - Search takes `q` (at most 500 characters), `brand_id` and `limit` (1 to 50, default 10);
//!   it answers one page (`has_more` is always false): asking for more means a larger `limit`.
//! - A test-mode key sees and makes only test-mode documents.

use axum::Json;
use axum::extract::{RawQuery, State};
use crier_app::kb::{DEFAULT_SEARCH_LIMIT, Hit, MAX_SEARCH_LIMIT, NewDocument};
use crier_core::clock::from_ms;
use crier_store::KbDocument;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Auth, Principal, need};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Created, List, Pagination, query_pairs};
use crate::routes::posts::Deleted;

#[derive(Debug, Serialize, ToSchema)]
pub struct KbDocumentObject {
    #[schema(example = "kbd_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    #[schema(example = "kb_document")]
    pub object: &'static str,
    #[schema(example = "Refund policy")]
    pub title: String,
    /// `text`, `markdown`, `html` or `url`.
    #[schema(example = "markdown")]
    pub kind: &'static str,
    /// The page it was fetched from (`kind` `url`).
    pub source_url: Option<String>,
    /// The brand whose knowledge it is; `null`: the whole workspace's.
    pub brand_id: Option<String>,
    /// Characters of its text as stored.
    pub chars: u64,
    /// How many passages its text was cut into.
    pub passages: u64,
    pub livemode: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Only on `GET /v1/kb/documents/{id}`: the text as stored (its passages, joined by blank
    /// lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl From<&KbDocument> for KbDocumentObject {
    fn from(d: &KbDocument) -> Self {
        Self {
            id: d.id.to_string(),
            object: "kb_document",
            title: d.title.clone(),
            kind: d.kind.as_str(),
            source_url: d.source_url.clone(),
            brand_id: d.brand_id.as_ref().map(ToString::to_string),
            chars: d.chars,
            passages: d.passages,
            livemode: d.livemode,
            created_at: from_ms(d.created_at),
            content: None,
        }
    }
}

/// A passage a search found.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    #[schema(example = "kbd_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub document_id: String,
    /// The document's title.
    pub title: String,
    pub passage: String,
    /// The passage's place in its document, from 0.
    pub position: u32,
    /// Higher is better, relative to this search: its best text match is 1.0 (with embeddings
    /// configured, blended with similarity in meaning).
    pub score: f64,
}

impl From<Hit> for SearchHit {
    fn from(h: Hit) -> Self {
        Self {
            document_id: h.document_id.to_string(),
            title: h.title,
            passage: h.passage,
            position: h.position,
            score: h.score,
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDocument {
    /// 1 to 200 characters (trimmed); default: the source's own title (an HTML `<title>` or
    /// the first heading), else the URL or the start of the text.
    #[schema(schema_with = crate::openapi::fields::kb_title)]
    pub title: Option<String>,
    #[schema(schema_with = crate::openapi::fields::kb_kind)]
    pub kind: String,
    /// The source, with every kind but `url`: at most 500,000 characters, with some text.
    #[schema(schema_with = crate::openapi::fields::kb_content)]
    pub content: Option<String>,
    #[schema(schema_with = crate::openapi::fields::kb_url)]
    pub url: Option<String>,
    #[schema(schema_with = crate::openapi::fields::kb_brand_id_optional)]
    pub brand_id: Option<String>,
}

fn object(d: &KbDocument) -> KbDocumentObject {
    KbDocumentObject::from(d)
}

/// The `brand_id` of a query string, if given.
async fn brand_param(
    state: &AppState,
    p: &Principal,
    pairs: &[(String, String)],
) -> ApiResult<Option<crier_core::ids::BrandId>> {
    match pairs.iter().rev().find(|(n, _)| n == "brand_id") {
        None => Ok(None),
        Some((_, raw)) => Ok(Some(
            state
                .app()
                .kb()
                .validate_brand(&p.caller(), "brand_id", raw)
                .await?,
        )),
    }
}

/// Add a document.
///
/// `kind` says what `content` is (`text`, `markdown`, `html`), or `url`: the page at `url` is
/// fetched (HTML, plain text or Markdown, at most 2 MiB; unless the operator allows private
/// networks, not from private, loopback or link-local addresses). Its text is cut into
/// passages of at most 1,000 characters at headings, paragraphs and sentences. `400` with
/// `param` `content` or `url` when there is no text, more than 500,000 characters of it, or
/// more than 2,000 passages; `400` with `param` `url` when the page cannot be fetched (the
/// message says why). The plan's knowledge-base documents and characters (per mode):
/// `402 quota_exceeded`.
#[utoipa::path(post, path = "/v1/kb/documents", tag = "kb", request_body = CreateDocument,
    security(("bearer" = ["kb:write"]), ("api_key" = ["kb:write"])),
    responses((status = 201, body = KbDocumentObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::KbWrite>,
    ApiJson(req): ApiJson<CreateDocument>,
) -> ApiResult<Created<KbDocumentObject>> {
    let doc = state
        .app()
        .kb()
        .add(
            &p.caller(),
            NewDocument {
                title: req.title,
                kind: req.kind,
                content: req.content,
                url: req.url,
                brand_id: req.brand_id,
            },
        )
        .await?;
    Ok(Created(object(&doc)))
}

/// List documents, newest first; `brand_id` lists only that brand's.
#[utoipa::path(get, path = "/v1/kb/documents", tag = "kb",
    params(Pagination, ("brand_id" = Option<String>, Query, description = "Only this brand's documents.")),
    security(("bearer" = ["kb:read"]), ("api_key" = ["kb:read"])),
    responses((status = 200, body = inline(List<KbDocumentObject>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::KbRead>,
    page: Pagination,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<List<KbDocumentObject>>> {
    let pairs = query_pairs(query.as_deref());
    let brand = brand_param(&state, &p, &pairs).await?;
    let docs = state
        .app()
        .kb()
        .list(&p.caller(), brand.as_ref(), page.limit, page.offset)
        .await?;
    Ok(Json(List::of(&docs, object)))
}

/// One document, with `content`: its text as stored.
#[utoipa::path(get, path = "/v1/kb/documents/{id}", tag = "kb", params(("id" = String, Path)),
    security(("bearer" = ["kb:read"]), ("api_key" = ["kb:read"])),
    responses((status = 200, body = KbDocumentObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::KbRead>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<KbDocumentObject>> {
    let (doc, content) = state.app().kb().get(&p.caller(), &id).await?;
    let mut o = object(&doc);
    o.content = Some(content);
    Ok(Json(o))
}

/// Delete a document and its passages.
#[utoipa::path(delete, path = "/v1/kb/documents/{id}", tag = "kb", params(("id" = String, Path)),
    security(("bearer" = ["kb:write"]), ("api_key" = ["kb:write"])),
    responses((status = 200, body = Deleted), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::KbWrite>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Deleted>> {
    let doc = state.app().kb().delete(&p.caller(), &id).await?;
    Ok(Json(Deleted {
        id: doc.id.to_string(),
        object: "kb_document",
        deleted: true,
    }))
}

/// Search the knowledge base.
///
/// The passages that best match `q`, best first. `q` is read as words (letters and digits;
/// quotes, operators and other syntax are ignored, as are common English words); a passage
/// matches when it holds any of them, in any form (`opening` finds `opens`). No words: no
/// passages. With `brand_id`, that brand's documents and the workspace-wide ones; without,
/// the workspace-wide ones only. One page: `has_more` is always false.
#[utoipa::path(get, path = "/v1/kb/search", tag = "kb",
    params(
        ("q" = Option<String>, Query, description = "What to look for, at most 500 characters."),
        ("brand_id" = Option<String>, Query, description = "Search this brand's knowledge too."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 50, description = "Passages to return, 1 to 50 (default 10)."),
    ),
    security(("bearer" = ["kb:read"]), ("api_key" = ["kb:read"])),
    responses((status = 200, body = inline(List<SearchHit>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn search(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::KbRead>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<List<SearchHit>>> {
    let pairs = query_pairs(query.as_deref());
    let last = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let limit = match last("limit") {
        None => DEFAULT_SEARCH_LIMIT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_SEARCH_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("`limit` must be a whole number from 1 to {MAX_SEARCH_LIMIT}."),
                )
            })?,
    };
    let q = last("q").unwrap_or("").to_owned();
    let brand = brand_param(&state, &p, &pairs).await?;
    let hits = state
        .app()
        .kb()
        .search(&p.caller(), &q, brand.as_ref(), limit)
        .await?;
    Ok(Json(List {
        data: hits.into_iter().map(SearchHit::from).collect(),
        has_more: false,
    }))
}
