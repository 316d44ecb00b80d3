//! `/v1/brands`: named groups of the workspace's accounts, each with its own voice, in an order
//! the workspace sets. The rules are `crier_app::brands` (and, for keys limited to brands or
//! accounts, `crier_app::reach`); these handlers parse, call and render.
//!
//! Brands belong to one mode, as accounts do. The list is in the workspace's order
//! (`position`, 0 first), not newest first; `POST /v1/brands/reorder` sets it.

use axum::Json;
use axum::extract::State;
use crier_app::brands::{BrandEdit, NewBrand};
use crier_core::clock::from_ms;
use crier_store::Brand;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Auth, need};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, Created, List, Pagination};
use crate::routes::posts::Deleted;

pub use crier_app::brands::{MAX_BRAND_ACCOUNTS, MAX_BRANDS, MAX_NAME};
pub use crier_app::personas::{MAX_DESCRIPTION, MAX_TONE, MAX_WORD, MAX_WORDS};

/// The owner's part of a brand voice: how the brand describes itself, its tone, and words it
/// uses and avoids. Generation for the brand follows it (with what is learned from its
/// published posts).
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoiceObject {
    /// Who the brand is and how it speaks, at most 2000 characters (trimmed; line breaks
    /// allowed).
    #[schema(schema_with = crate::openapi::fields::voice_description)]
    pub description: Option<String>,
    /// The tone, such as `friendly` or `formal`: at most 100 characters on one line.
    #[schema(schema_with = crate::openapi::fields::voice_tone)]
    pub tone: Option<String>,
    /// At most 50 words or phrases of 1 to 50 characters, each once.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::fields::voice_words)]
    pub words_to_use: Vec<String>,
    /// At most 50 words or phrases of 1 to 50 characters, each once.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::fields::voice_words)]
    pub words_to_avoid: Vec<String>,
}

impl From<VoiceObject> for crier_app::personas::Voice {
    fn from(v: VoiceObject) -> Self {
        Self {
            description: v.description,
            tone: v.tone,
            words_to_use: v.words_to_use,
            words_to_avoid: v.words_to_avoid,
        }
    }
}

impl From<crier_app::personas::Voice> for VoiceObject {
    fn from(v: crier_app::personas::Voice) -> Self {
        Self {
            description: v.description,
            tone: v.tone,
            words_to_use: v.words_to_use,
            words_to_avoid: v.words_to_avoid,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BrandObject {
    #[schema(example = "brd_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    #[schema(example = "brand")]
    pub object: &'static str,
    pub name: String,
    /// Its place in the workspace's order, 0 first.
    pub position: i64,
    /// Its accounts, in the order given.
    pub account_ids: Vec<String>,
    /// The owner's part of its voice.
    pub persona: VoiceObject,
    pub livemode: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<&Brand> for BrandObject {
    fn from(b: &Brand) -> Self {
        Self {
            id: b.id.to_string(),
            object: "brand",
            name: b.name.clone(),
            position: b.position,
            account_ids: b.account_ids.iter().map(ToString::to_string).collect(),
            persona: crier_app::personas::to_voice(b.voice.clone()).into(),
            livemode: b.livemode,
            created_at: from_ms(b.created_at),
            updated_at: from_ms(b.updated_at),
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBrand {
    #[schema(schema_with = crate::openapi::fields::brand_name)]
    pub name: String,
    /// Accounts of this mode, at most 100, each once (default none).
    #[serde(default)]
    #[schema(schema_with = crate::openapi::fields::brand_accounts)]
    pub account_ids: Vec<String>,
    pub persona: Option<VoiceObject>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBrand {
    #[schema(schema_with = crate::openapi::fields::brand_name_optional)]
    pub name: Option<String>,
    /// Replaces the brand's accounts.
    #[schema(schema_with = crate::openapi::fields::brand_accounts_optional)]
    pub account_ids: Option<Vec<String>>,
    /// Replaces the brand's voice (fields left out are emptied).
    pub persona: Option<VoiceObject>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReorderBrands {
    /// Every brand (this key reaches), each once, in the new order.
    #[schema(schema_with = crate::openapi::fields::brand_ids)]
    pub ids: Vec<String>,
}

fn render(b: &Brand) -> Json<BrandObject> {
    Json(BrandObject::from(b))
}

/// Brands of this key's mode in the workspace's order (`position`, 0 first; not newest first).
/// A key limited to brands or accounts sees the brands it is allowed and those whose accounts
/// it all reaches.
#[utoipa::path(get, path = "/v1/brands", tag = "brands", params(Pagination),
    security(("bearer" = ["brands:read"]), ("api_key" = ["brands:read"])),
    responses((status = 200, body = inline(List<BrandObject>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::BrandsRead>,
    page: Pagination,
) -> ApiResult<Json<List<BrandObject>>> {
    let brands = state
        .app()
        .brands()
        .list(&p.caller(), page.limit, page.offset)
        .await?;
    Ok(Json(List::of(&brands, BrandObject::from)))
}

/// Create a brand; it goes last in the order. Names are unique per workspace and mode
/// (`409`). The plan's `brands` bounds how many a workspace has per mode (`402
/// quota_exceeded`); there are never more than 500. A key limited to brands or accounts must
/// give it at least one account, all within its reach.
#[utoipa::path(post, path = "/v1/brands", tag = "brands", request_body = CreateBrand,
    security(("bearer" = ["brands:write"]), ("api_key" = ["brands:write"])),
    responses((status = 201, body = BrandObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::BrandsWrite>,
    ApiJson(req): ApiJson<CreateBrand>,
) -> ApiResult<Created<BrandObject>> {
    let new = NewBrand {
        name: req.name,
        account_ids: req.account_ids,
        persona: req.persona.map(Into::into),
    };
    let brand = state.app().brands().create(&p.caller(), new).await?;
    Ok(Created(BrandObject::from(&brand)))
}

/// One brand with its accounts and voice.
#[utoipa::path(get, path = "/v1/brands/{id}", tag = "brands", params(("id" = String, Path)),
    security(("bearer" = ["brands:read"]), ("api_key" = ["brands:read"])),
    responses((status = 200, body = BrandObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::BrandsRead>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<BrandObject>> {
    Ok(render(&state.app().brands().get(&p.caller(), &id).await?))
}

/// Change a brand's name, accounts (replaced) or voice (replaced).
#[utoipa::path(patch, path = "/v1/brands/{id}", tag = "brands", request_body = UpdateBrand,
    params(("id" = String, Path)),
    security(("bearer" = ["brands:write"]), ("api_key" = ["brands:write"])),
    responses((status = 200, body = BrandObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::BrandsWrite>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateBrand>,
) -> ApiResult<Json<BrandObject>> {
    let edit = BrandEdit {
        name: req.name,
        account_ids: req.account_ids,
        persona: req.persona.map(Into::into),
    };
    Ok(render(
        &state.app().brands().update(&p.caller(), &id, edit).await?,
    ))
}

/// Delete a brand with its memberships and voice; the brands after it move up. Posts made from
/// it keep their accounts and `brand_id`; keys limited to it reach nothing through it.
#[utoipa::path(delete, path = "/v1/brands/{id}", tag = "brands", params(("id" = String, Path)),
    security(("bearer" = ["brands:write"]), ("api_key" = ["brands:write"])),
    responses((status = 200, body = Deleted), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::BrandsWrite>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Deleted>> {
    let id = state.app().brands().delete(&p.caller(), &id).await?;
    Ok(Json(Deleted {
        id: id.to_string(),
        object: "brand",
        deleted: true,
    }))
}

/// Set the order: `ids` names every brand of this mode (that this key reaches) exactly once;
/// answers all of them in the new order. For a key limited to brands or accounts, its brands
/// take the places they held between them.
#[utoipa::path(post, path = "/v1/brands/reorder", tag = "brands", request_body = ReorderBrands,
    security(("bearer" = ["brands:write"]), ("api_key" = ["brands:write"])),
    responses((status = 200, body = inline(List<BrandObject>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn reorder(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::BrandsWrite>,
    ApiJson(req): ApiJson<ReorderBrands>,
) -> ApiResult<Json<List<BrandObject>>> {
    let brands = state.app().brands().reorder(&p.caller(), &req.ids).await?;
    Ok(Json(List {
        data: brands.iter().map(BrandObject::from).collect(),
        has_more: false,
    }))
}
