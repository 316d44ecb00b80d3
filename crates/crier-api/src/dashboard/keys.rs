//! Settings → API keys: the list, the create dialog with scope presets, the key shown once,
//! revoke and rotate. Every action is the API's own handler, called with the session's
//! principal, so a member cannot make a key wider than their role (the no-escalation rule).

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use crier_core::{KeyMode, Scope};

use super::{Dash, FormData, Frame, Submitted, error_page, render, when};
use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Pagination};
use crate::keys::{CreateKey, KeyObject, RateLimitInput, RotateKey};
use crate::routes::keys as api;

/// Scope presets of the create dialog: a name, a label, and the scopes it ticks.
pub const PRESETS: &[(&str, &str, &[Scope])] = &[
    (
        "publishing",
        "Publishing bot",
        &[
            Scope::PostsRead,
            Scope::PostsWrite,
            Scope::PostsPublish,
            Scope::MediaRead,
            Scope::MediaWrite,
            Scope::AccountsRead,
        ],
    ),
    (
        "reporting",
        "Reporting",
        &[Scope::PostsRead, Scope::AnalyticsRead, Scope::AccountsRead],
    ),
    (
        "ai_drafts",
        "AI agent (drafts only)",
        &[
            Scope::PostsRead,
            Scope::PostsWrite,
            Scope::MediaRead,
            Scope::AccountsRead,
            Scope::AiGenerate,
            Scope::BrandsRead,
            Scope::KbRead,
        ],
    ),
];

struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    mode: &'static str,
    scopes: String,
    last_used: String,
    expires: String,
    limits: String,
    restrictions: String,
    revoked: bool,
    status: &'static str,
}

struct Created {
    key: String,
    name: String,
    scopes: String,
}

struct Preset {
    id: &'static str,
    label: &'static str,
    scopes: String,
}

#[derive(Template)]
#[template(path = "dashboard/keys.html")]
struct KeysPage {
    frame: Frame,
    keys: Vec<KeyRow>,
    scopes: Vec<(&'static str, bool)>,
    presets: Vec<Preset>,
    created: Option<Created>,
    error: Option<String>,
    error_param: String,
    notice: Option<String>,
    can_write: bool,
}

fn row(k: &KeyObject, now: i64) -> KeyRow {
    let ms = |t: &Option<jiff::Timestamp>| t.map(|t| t.as_millisecond());
    let revoked = k.revoked_at.is_some();
    let expired = k.expires_at.is_some_and(|t| t.as_millisecond() <= now);
    let mut restrictions = Vec::new();
    if !k.allowed_ips.is_empty() {
        restrictions.push(format!("IPs: {}", k.allowed_ips.join(", ")));
    }
    if !k.allowed_origins.is_empty() {
        restrictions.push(format!("origins: {}", k.allowed_origins.join(", ")));
    }
    if !k.allowed_brand_ids.is_empty() || !k.allowed_account_ids.is_empty() {
        restrictions.push(format!(
            "limited to {} brand(s), {} account(s)",
            k.allowed_brand_ids.len(),
            k.allowed_account_ids.len()
        ));
    }
    KeyRow {
        id: k.id.clone(),
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        mode: k.mode,
        scopes: k.scopes.join(" "),
        last_used: when(ms(&k.last_used_at), now),
        expires: match k.expires_at {
            None => "never".into(),
            Some(t) => when(Some(t.as_millisecond()), now),
        },
        limits: format!(
            "{}/min, {}/day",
            k.rate_limit.per_minute, k.rate_limit.per_day
        ),
        restrictions: if restrictions.is_empty() {
            "none".into()
        } else {
            restrictions.join("; ")
        },
        revoked,
        status: if revoked {
            "revoked"
        } else if expired {
            "expired"
        } else {
            "active"
        },
    }
}

async fn keys_page(
    state: &AppState,
    dash: &Dash,
    created: Option<KeyObject>,
    error: Option<ApiError>,
    notice: Option<String>,
) -> Response {
    let now = state.clock().now_ms();
    let auth = match Auth::of(dash.principal.clone()) {
        Ok(a) => a,
        Err(e) => return error_page(e),
    };
    let page = Pagination {
        limit: crate::extract::MAX_LIMIT,
        offset: 0,
    };
    let list = match api::list(State(state.clone()), auth, page).await {
        Ok(axum::Json(l)) => l,
        Err(e) => return error_page(e),
    };
    let role_scopes = dash.seat.role.scopes();
    let status = super::status_of(error.as_ref());
    let page = KeysPage {
        frame: dash.frame("keys"),
        keys: list.data.iter().map(|k| row(k, now)).collect(),
        scopes: Scope::ALL
            .iter()
            .map(|s| (s.as_str(), role_scopes.contains(*s)))
            .collect(),
        presets: PRESETS
            .iter()
            .map(|(id, label, scopes)| Preset {
                id,
                label,
                scopes: scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            })
            .collect(),
        created: created.map(|k| Created {
            key: k.key.clone().unwrap_or_default(),
            name: k.name.clone(),
            scopes: k.scopes.join(" "),
        }),
        error_param: error
            .as_ref()
            .and_then(|e| e.param.clone())
            .unwrap_or_default(),
        error: error.map(|e| e.message.to_string()),
        notice,
        can_write: role_scopes.contains(Scope::KeysWrite),
    };
    (status, render(&page)).into_response()
}

pub async fn page(State(state): State<AppState>, dash: Dash) -> Response {
    keys_page(&state, &dash, None, None, None).await
}

/// A list field of the form: one entry per line or comma.
fn list(form: &FormData, name: &str) -> Option<Vec<String>> {
    let v = form.text(name)?;
    Some(
        v.split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

fn number(form: &FormData, name: &str, param: &str) -> Result<Option<u32>, ApiError> {
    match form.text(name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid(param, format!("`{param}` must be a whole number."))),
    }
}

/// The create dialog's fields as the API's create request.
fn create_request(
    form: &FormData,
    now: i64,
    allowed: crier_core::ScopeSet,
) -> Result<CreateKey, ApiError> {
    let preset = form.get("preset").unwrap_or("custom");
    let scopes: Vec<String> = match preset {
        "custom" => form.all("scope").into_iter().map(str::to_owned).collect(),
        // "All scopes" is the explicit list the role allows now, so a scope added to crier
        // later is not granted silently.
        "all" => allowed.names().into_iter().map(str::to_owned).collect(),
        p => PRESETS
            .iter()
            .find(|(id, ..)| *id == p)
            .map(|(.., scopes)| scopes.iter().map(|s| s.as_str().to_owned()).collect())
            .ok_or_else(|| ApiError::invalid("scopes", "Pick a preset or the scopes."))?,
    };
    let expires_at = match number(form, "expires_days", "expires_days")? {
        None => Some(None),
        Some(0) => {
            return Err(ApiError::invalid(
                "expires_days",
                "Give 1 day or more, or leave it empty for no expiry.",
            ));
        }
        Some(d) if d > 3650 => return Err(ApiError::invalid("expires_days", "At most 3650 days.")),
        Some(d) => Some(Some(
            jiff::Timestamp::from_millisecond(now + i64::from(d) * 86_400_000)
                .map_err(ApiError::internal)?,
        )),
    };
    Ok(CreateKey {
        name: form.text("name").map(str::to_owned),
        description: form.text("description").map(str::to_owned),
        scopes,
        mode: match form.get("mode") {
            Some("test") => Some(KeyMode::Test),
            _ => Some(KeyMode::Live),
        },
        rate_limit: Some(RateLimitInput {
            per_minute: number(form, "per_minute", "rate_limit.per_minute")?,
            per_day: number(form, "per_day", "rate_limit.per_day")?,
        }),
        allowed_ips: list(form, "allowed_ips"),
        allowed_origins: list(form, "allowed_origins"),
        expires_at,
        ..CreateKey::default()
    })
}

pub async fn create(
    State(state): State<AppState>,
    Submitted { dash, form }: Submitted,
) -> Response {
    let now = state.clock().now_ms();
    let result = async {
        let req = create_request(&form, now, dash.seat.role.scopes())?;
        let auth = Auth::of(dash.principal.clone())?;
        api::create(State(state.clone()), auth, ApiJson(req)).await
    }
    .await;
    match result {
        Ok(crate::extract::Created(k)) => keys_page(&state, &dash, Some(k), None, None).await,
        Err(e) => keys_page(&state, &dash, None, Some(e), None).await,
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Submitted { dash, form: _ }: Submitted,
) -> Response {
    let result = async {
        let auth = Auth::of(dash.principal.clone())?;
        api::revoke(State(state.clone()), auth, ApiPath(id)).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/app/keys").into_response(),
        Err(e) => keys_page(&state, &dash, None, Some(e), None).await,
    }
}

pub async fn rotate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Submitted { dash, form }: Submitted,
) -> Response {
    let result = async {
        let overlap = number(&form, "overlap_seconds", "overlap_seconds")?;
        let auth = Auth::of(dash.principal.clone())?;
        api::rotate(
            State(state.clone()),
            auth,
            ApiPath(id),
            ApiJson(RotateKey {
                overlap_seconds: overlap,
            }),
        )
        .await
    }
    .await;
    match result {
        Ok(crate::extract::Created(k)) => keys_page(&state, &dash, Some(k), None, None).await,
        Err(e) => keys_page(&state, &dash, None, Some(e), None).await,
    }
}
