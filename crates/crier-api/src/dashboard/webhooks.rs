//! Webhooks: endpoints (the signing secret shown once), an endpoint's recent deliveries with
//! their status and latency, a test send, redelivery, enabling, disabling and deleting. Every
//! action is the API's own handler.

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use crier_core::Scope;

use super::{Dash, Frame, Submitted, error_page, render, when};
use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Pagination};
use crate::routes::webhooks::{self as api, CreateEndpoint, EndpointObject, UpdateEndpoint};

struct EndpointRow {
    id: String,
    url: String,
    description: String,
    events: String,
    state: &'static str,
}

fn endpoint_row(e: &EndpointObject) -> EndpointRow {
    EndpointRow {
        id: e.id.clone(),
        url: e.url.clone(),
        description: e.description.clone(),
        events: e.events.join(" "),
        state: match (e.enabled, e.failing_since.is_some()) {
            (false, _) => "disabled",
            (true, true) => "failing",
            (true, false) => "enabled",
        },
    }
}

#[derive(Template)]
#[template(path = "dashboard/webhooks.html")]
struct WebhooksPage {
    frame: Frame,
    endpoints: Vec<EndpointRow>,
    events: Vec<&'static str>,
    secret: Option<(String, String)>,
    error: Option<String>,
    error_param: String,
    can_write: bool,
}

async fn webhooks_page(
    state: &AppState,
    dash: &Dash,
    created: Option<EndpointObject>,
    error: Option<ApiError>,
) -> Response {
    let page = Pagination {
        limit: crate::extract::MAX_LIMIT,
        offset: 0,
    };
    let result = async {
        let auth = Auth::of(dash.principal.clone())?;
        api::list(State(state.clone()), auth, page).await
    }
    .await;
    let list = match result {
        Ok(Json(l)) => l,
        Err(e) => return error_page(e),
    };
    let status = super::status_of(error.as_ref());
    let page = WebhooksPage {
        frame: dash.frame("webhooks"),
        endpoints: list.data.iter().map(endpoint_row).collect(),
        events: crier_store::event_types::ALL.to_vec(),
        secret: created.and_then(|e| Some((e.url.clone(), e.secret.clone()?))),
        error_param: error
            .as_ref()
            .and_then(|e| e.param.clone())
            .unwrap_or_default(),
        error: error.map(|e| e.message.to_string()),
        can_write: dash.principal.require(Scope::WebhooksWrite).is_ok(),
    };
    (status, render(&page)).into_response()
}

pub async fn page(State(state): State<AppState>, dash: Dash) -> Response {
    webhooks_page(&state, &dash, None, None).await
}

pub async fn create(
    State(state): State<AppState>,
    Submitted { dash, form }: Submitted,
) -> Response {
    let req = CreateEndpoint {
        url: form.get("url").unwrap_or("").trim().to_owned(),
        events: form.all("event").into_iter().map(str::to_owned).collect(),
        description: form.get("description").unwrap_or("").trim().to_owned(),
    };
    let result = async {
        let auth = Auth::of(dash.principal.clone())?;
        api::create(State(state.clone()), auth, ApiJson(req)).await
    }
    .await;
    match result {
        Ok(crate::extract::NoStore(crate::extract::Created(e))) => {
            webhooks_page(&state, &dash, Some(e), None).await
        }
        Err(e) => webhooks_page(&state, &dash, None, Some(e)).await,
    }
}

struct AttemptRow {
    status: String,
    latency_ms: i64,
    at: String,
}

struct DeliveryRow {
    id: String,
    event_type: String,
    status: String,
    created: String,
    attempts: Vec<AttemptRow>,
}

#[derive(Template)]
#[template(path = "dashboard/webhook.html")]
struct WebhookPage {
    frame: Frame,
    endpoint: EndpointRow,
    enabled: bool,
    deliveries: Vec<DeliveryRow>,
    notice: Option<String>,
    error: Option<String>,
    can_write: bool,
}

async fn webhook_page(
    state: &AppState,
    dash: &Dash,
    id: &str,
    notice: Option<String>,
    error: Option<ApiError>,
) -> Response {
    let now = state.clock().now_ms();
    let result = async {
        let auth = Auth::of(dash.principal.clone())?;
        let Json(endpoint) = api::get(State(state.clone()), auth, ApiPath(id.to_owned())).await?;
        let auth = Auth::of(dash.principal.clone())?;
        let page = Pagination {
            limit: 25,
            offset: 0,
        };
        let Json(deliveries) =
            api::deliveries(State(state.clone()), auth, ApiPath(id.to_owned()), page).await?;
        Ok::<_, ApiError>((endpoint, deliveries))
    }
    .await;
    let (endpoint, deliveries) = match result {
        Ok(v) => v,
        Err(e) => return error_page(e),
    };
    let status = super::status_of(error.as_ref());
    let page = WebhookPage {
        frame: dash.frame("webhooks"),
        endpoint: endpoint_row(&endpoint),
        enabled: endpoint.enabled,
        deliveries: deliveries
            .data
            .iter()
            .map(|d| DeliveryRow {
                id: d.id.clone(),
                event_type: d.event_type.clone(),
                status: d.status.clone(),
                created: when(Some(d.created_at.as_millisecond()), now),
                attempts: d
                    .attempts
                    .iter()
                    .map(|a| AttemptRow {
                        status: match (&a.status, &a.error) {
                            (Some(s), _) => s.to_string(),
                            (None, Some(e)) => e.clone(),
                            (None, None) => "no answer".into(),
                        },
                        latency_ms: a.latency_ms,
                        at: when(Some(a.created_at.as_millisecond()), now),
                    })
                    .collect(),
            })
            .collect(),
        notice,
        error: error.map(|e| e.message.to_string()),
        can_write: dash.principal.require(Scope::WebhooksWrite).is_ok(),
    };
    (status, render(&page)).into_response()
}

pub async fn show(State(state): State<AppState>, dash: Dash, Path(id): Path<String>) -> Response {
    webhook_page(&state, &dash, &id, None, None).await
}

/// An endpoint's actions: `test`, `enable`, `disable`, `delete`, `redeliver` (of `delivery_id`).
pub async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    Submitted { dash, form }: Submitted,
) -> Response {
    let s = || State(state.clone());
    let p = || dash.principal.clone();
    let result: ApiResult<&str> = async {
        match action.as_str() {
            "test" => api::test(s(), Auth::of(p())?, ApiPath(id.clone()))
                .await
                .map(|_| "A test event is on its way; it shows below in a moment."),
            "enable" | "disable" => {
                let req = UpdateEndpoint {
                    enabled: Some(action == "enable"),
                    ..UpdateEndpoint::default()
                };
                api::update(s(), Auth::of(p())?, ApiPath(id.clone()), ApiJson(req))
                    .await
                    .map(|_| "Saved.")
            }
            "redeliver" => {
                let delivery = form.get("delivery_id").unwrap_or("").to_owned();
                api::redeliver(s(), Auth::of(p())?, ApiPath((id.clone(), delivery)))
                    .await
                    .map(|_| "Sent again; the new attempt shows below in a moment.")
            }
            "delete" => api::delete(s(), Auth::of(p())?, ApiPath(id.clone()))
                .await
                .map(|_| "deleted"),
            _ => Err(ApiError::not_found("action", &action)),
        }
    }
    .await;
    match result {
        Ok("deleted") => Redirect::to("/app/webhooks").into_response(),
        Ok(notice) => webhook_page(&state, &dash, &id, Some(notice.into()), None).await,
        Err(e) => webhook_page(&state, &dash, &id, None, Some(e)).await,
    }
}
