//! `/v1/carousels`: slides made from a text, a prompt or a URL, refined, rendered to PNG and
//! PDF, exported as media. The rules live in `crier_app::carousels`; this module parses, calls
//! them and renders the answer.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use crier_app::carousels::{CarouselEdit, NewCarousel, Shown, Source};
use crier_core::clock::from_ms;
use crier_store::SlideText;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Auth, need};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Created, List, Pagination};
use crate::routes::posts::Deleted;

#[derive(Debug, Serialize, ToSchema)]
pub struct CarouselObject {
    #[schema(example = "car_0Q2X3hS8dK7vT1bLmN4pRz")]
    pub id: String,
    #[schema(example = "carousel")]
    pub object: &'static str,
    pub title: String,
    /// The brand whose voice it is written in and whose name is in the footer.
    pub brand_id: Option<String>,
    /// `light`, `dark` or `bold`.
    pub template: String,
    /// `square` (1080 × 1080) or `portrait` (1080 × 1350).
    pub size: String,
    pub source: SourceObject,
    pub call_to_action: String,
    pub slides: Vec<SlideObject>,
    /// Whether every slide's text fits (export needs it).
    pub fits: bool,
    /// The slides as PNG media, in order, after an export (emptied by a change of the slides,
    /// the template or the size).
    pub media_ids: Vec<String>,
    /// Bumped by every change.
    pub version: i64,
    pub livemode: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// Where the slides came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceObject {
    /// `text`, `prompt` or `url`.
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlideObject {
    /// 1-based.
    pub number: usize,
    /// `title`, `content` or `closing`, by its place.
    pub kind: &'static str,
    pub heading: String,
    pub body: String,
    pub fits: bool,
    /// What does not fit and by how much, when it does not.
    pub problem: Option<String>,
}

impl From<&Shown> for CarouselObject {
    fn from(s: &Shown) -> Self {
        let c = &s.carousel;
        let n = c.slides.len();
        Self {
            id: c.id.to_string(),
            object: "carousel",
            title: c.title.clone(),
            brand_id: c.brand_id.as_ref().map(ToString::to_string),
            template: c.template.clone(),
            size: c.size.clone(),
            source: SourceObject {
                kind: c.source_kind.clone(),
                value: c.source.clone(),
            },
            call_to_action: c.call_to_action.clone(),
            slides: c
                .slides
                .iter()
                .zip(&s.laid)
                .enumerate()
                .map(|(i, (t, l))| SlideObject {
                    number: i + 1,
                    kind: match i {
                        0 => "title",
                        i if i + 1 == n => "closing",
                        _ => "content",
                    },
                    heading: t.heading.clone(),
                    body: t.body.clone(),
                    fits: l.problem.is_none(),
                    problem: l.problem.clone(),
                })
                .collect(),
            fits: s.fits(),
            media_ids: c.media_ids.clone(),
            version: c.version,
            livemode: c.livemode,
            created_at: from_ms(c.created_at),
            updated_at: from_ms(c.updated_at),
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCarousel {
    /// The text to make slides from (Markdown headings start slides), 1 to 20,000 characters.
    /// Exactly one of `text`, `prompt`, `url`.
    #[schema(schema_with = crate::openapi::fields::carousel_text)]
    pub text: Option<String>,
    /// What to write about (needs a model; 5 AI credits), 1 to 4,000 characters.
    #[schema(schema_with = crate::openapi::fields::carousel_prompt)]
    pub prompt: Option<String>,
    /// A public page to make slides from (HTML, Markdown or text; at most 2 MiB read).
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    /// The first slide's heading (default: the source's title or first sentence).
    #[schema(schema_with = crate::openapi::fields::carousel_title)]
    pub title: Option<String>,
    #[schema(schema_with = crate::openapi::fields::brand_id_optional)]
    pub brand_id: Option<String>,
    #[schema(schema_with = crate::openapi::fields::carousel_template)]
    pub template: Option<String>,
    #[schema(schema_with = crate::openapi::fields::carousel_size)]
    pub size: Option<String>,
    /// How many slides at most, 3 to 10 (default 7): a title slide, content, a closing slide.
    #[schema(minimum = 3, maximum = 10)]
    pub slides: Option<usize>,
    /// The closing slide's call to action, at most 150 characters.
    #[schema(schema_with = crate::openapi::fields::carousel_call_to_action)]
    pub call_to_action: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlideInput {
    /// At most 150 characters.
    #[schema(max_length = 150)]
    #[serde(default)]
    pub heading: String,
    /// At most 600 characters.
    #[schema(max_length = 600)]
    #[serde(default)]
    pub body: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCarousel {
    #[schema(schema_with = crate::openapi::fields::carousel_title)]
    pub title: Option<String>,
    #[schema(schema_with = crate::openapi::fields::carousel_template)]
    pub template: Option<String>,
    #[schema(schema_with = crate::openapi::fields::carousel_size)]
    pub size: Option<String>,
    /// Also replaces the closing slide's text.
    #[schema(schema_with = crate::openapi::fields::carousel_call_to_action)]
    pub call_to_action: Option<String>,
    /// Every slide in its new order (edit, reorder, add, remove): 3 to 10.
    #[schema(min_items = 3, max_items = 10)]
    pub slides: Option<Vec<SlideInput>>,
}

fn render(s: &Shown) -> Json<CarouselObject> {
    Json(CarouselObject::from(s))
}

/// List carousels, newest first.
#[utoipa::path(get, path = "/v1/carousels", tag = "carousels", params(Pagination),
    security(("bearer" = ["carousels:read"]), ("api_key" = ["carousels:read"])),
    responses((status = 200, body = inline(List<CarouselObject>)), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::CarouselsRead>,
    page: Pagination,
) -> ApiResult<Json<List<CarouselObject>>> {
    let shown = state
        .app()
        .carousels()
        .list(&p.caller(), page.limit, page.offset)
        .await?;
    Ok(Json(List::of(&shown, CarouselObject::from)))
}

/// Make a carousel from a text, a prompt or a URL (at most 200 per workspace).
#[utoipa::path(post, path = "/v1/carousels", tag = "carousels", request_body = CreateCarousel,
    security(("bearer" = ["carousels:write"]), ("api_key" = ["carousels:write"])),
    responses((status = 201, body = CarouselObject), (status = "4XX", body = crate::error::ErrorEnvelope), (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::CarouselsWrite>,
    ApiJson(r): ApiJson<CreateCarousel>,
) -> ApiResult<Created<CarouselObject>> {
    let source = match (r.text, r.prompt, r.url) {
        (Some(t), None, None) => Source::Text(t),
        (None, Some(p), None) => Source::Prompt(p),
        (None, None, Some(u)) => Source::Url(u),
        _ => {
            return Err(ApiError::invalid(
                "text",
                "Give exactly one of `text`, `prompt` and `url`.",
            ));
        }
    };
    let new = NewCarousel {
        source,
        title: r.title,
        brand_id: r.brand_id,
        template: r.template,
        size: r.size,
        slides: r.slides,
        call_to_action: r.call_to_action,
    };
    let shown = state.app().carousels().create(&p.caller(), new).await?;
    Ok(Created(CarouselObject::from(&shown)))
}

/// One carousel, each slide with whether its text fits.
#[utoipa::path(get, path = "/v1/carousels/{id}", tag = "carousels", params(("id" = String, Path)),
    security(("bearer" = ["carousels:read"]), ("api_key" = ["carousels:read"])),
    responses((status = 200, body = CarouselObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::CarouselsRead>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<CarouselObject>> {
    Ok(render(
        &state.app().carousels().get(&p.caller(), &id).await?,
    ))
}

/// Refine a carousel: its slides (edit, reorder, add, remove), template, size, title or call
/// to action.
#[utoipa::path(patch, path = "/v1/carousels/{id}", tag = "carousels", request_body = UpdateCarousel,
    params(("id" = String, Path)),
    security(("bearer" = ["carousels:write"]), ("api_key" = ["carousels:write"])),
    responses((status = 200, body = CarouselObject), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::CarouselsWrite>,
    ApiPath(id): ApiPath<String>,
    ApiJson(r): ApiJson<UpdateCarousel>,
) -> ApiResult<Json<CarouselObject>> {
    let edit = CarouselEdit {
        title: r.title,
        template: r.template,
        size: r.size,
        call_to_action: r.call_to_action,
        slides: r.slides.map(|s| {
            s.into_iter()
                .map(|s| SlideText {
                    heading: s.heading,
                    body: s.body,
                })
                .collect()
        }),
    };
    Ok(render(
        &state
            .app()
            .carousels()
            .update(&p.caller(), &id, edit)
            .await?,
    ))
}

/// Delete a carousel (media it exported stay).
#[utoipa::path(delete, path = "/v1/carousels/{id}", tag = "carousels", params(("id" = String, Path)),
    security(("bearer" = ["carousels:write"]), ("api_key" = ["carousels:write"])),
    responses((status = 200, body = Deleted), (status = "4XX", body = crate::error::ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::CarouselsWrite>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Deleted>> {
    let id = state.app().carousels().delete(&p.caller(), &id).await?;
    Ok(Json(Deleted {
        id: id.to_string(),
        object: "carousel",
        deleted: true,
    }))
}

/// Rewrite one slide with the model, in the brand's voice (5 AI credits; `503` without a model).
#[utoipa::path(post, path = "/v1/carousels/{id}/slides/{number}/regenerate", tag = "carousels",
    params(("id" = String, Path), ("number" = usize, Path, minimum = 1, maximum = 10)),
    security(("bearer" = ["carousels:write"]), ("api_key" = ["carousels:write"])),
    responses((status = 200, body = CarouselObject), (status = "4XX", body = crate::error::ErrorEnvelope), (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn regenerate(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::CarouselsWrite>,
    ApiPath((id, number)): ApiPath<(String, String)>,
) -> ApiResult<Json<CarouselObject>> {
    let number = slide_number(&number)?;
    Ok(render(
        &state
            .app()
            .carousels()
            .regenerate(&p.caller(), &id, number)
            .await?,
    ))
}

/// A slide number from the path: anything but 1 to 10 names no slide.
fn slide_number(raw: &str) -> ApiResult<usize> {
    raw.parse::<usize>()
        .ok()
        .filter(|n| (1..=crier_app::carousels::MAX_SLIDES).contains(n))
        .ok_or_else(|| ApiError::not_found("slide", raw))
}

/// One slide as a PNG (what fits is drawn; the slide's `problem` says what does not).
#[utoipa::path(get, path = "/v1/carousels/{id}/slides/{number}/png", tag = "carousels",
    params(("id" = String, Path), ("number" = usize, Path, minimum = 1, maximum = 10)),
    security(("bearer" = ["carousels:read"]), ("api_key" = ["carousels:read"])),
    responses((status = 200, description = "The slide as a PNG image", content_type = "image/png"),
        (status = "4XX", body = crate::error::ErrorEnvelope), (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn png(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::CarouselsRead>,
    ApiPath((id, number)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let number = slide_number(&number)?;
    let bytes = state
        .app()
        .carousels()
        .png(&p.caller(), &id, number)
        .await?;
    Ok(([(header::CONTENT_TYPE, "image/png")], bytes).into_response())
}

/// The carousel as a PDF, a page per slide (for LinkedIn document posts).
#[utoipa::path(get, path = "/v1/carousels/{id}/pdf", tag = "carousels", params(("id" = String, Path)),
    security(("bearer" = ["carousels:read"]), ("api_key" = ["carousels:read"])),
    responses((status = 200, description = "The carousel as a PDF document", content_type = "application/pdf"),
        (status = "4XX", body = crate::error::ErrorEnvelope), (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn pdf(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::CarouselsRead>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let bytes = state.app().carousels().pdf(&p.caller(), &id).await?;
    Ok(([(header::CONTENT_TYPE, "application/pdf")], bytes).into_response())
}

/// Render every slide and keep the PNGs as media (needs `media:write` too). Post them with
/// `POST /v1/posts {"media_ids": …}`. While a slide's text does not fit (`fits: false`) the
/// carousel cannot be exported: `409 conflict`, the message naming the slide and what does
/// not fit; edit it and export again.
#[utoipa::path(post, path = "/v1/carousels/{id}/export", tag = "carousels", params(("id" = String, Path)),
    security(("bearer" = ["carousels:write"]), ("api_key" = ["carousels:write"])),
    responses((status = 200, body = CarouselObject),
        (status = 409, description = "A slide's text does not fit (the message names the slide and why), or the carousel changed during the export", body = crate::error::ErrorEnvelope),
        (status = "4XX", body = crate::error::ErrorEnvelope), (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn export(
    State(state): State<AppState>,
    Auth(p, ..): Auth<need::CarouselsWrite>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<CarouselObject>> {
    Ok(render(
        &state.app().carousels().export(&p.caller(), &id).await?,
    ))
}
