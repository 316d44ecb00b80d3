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
            // Attach images it names by URL (POST /v1/media/import, the MCP import_media tool).
            Scope::MediaWrite,
            Scope::AccountsRead,
            Scope::AnalyticsRead,
            Scope::QueueRead,
            Scope::AiGenerate,
            Scope::BrandsRead,
            Scope::KbRead,
        ],
    ),
];

/// The scopes of preset `id` (`ai_drafts`, …), for the MCP tests and documentation.
pub fn preset(id: &str) -> Option<&'static [Scope]> {
    PRESETS
        .iter()
        .find(|(p, _, _)| *p == id)
        .map(|(_, _, s)| *s)
}

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

/// A connected app (an OAuth grant) as Settings shows it.
struct AppRow {
    id: String,
    name: String,
    approved_by: String,
    scopes: String,
    created: String,
    last_used: String,
    ends: String,
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
    apps: Vec<AppRow>,
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
    let me = &dash.session.user.id;
    let grants = match state.app().oauth_server().grants(&dash.seat, me).await {
        Ok(g) => g,
        Err(e) => return error_page(e.into()),
    };
    let apps = grants
        .iter()
        .map(|g| AppRow {
            id: g.key_id.to_string(),
            name: g.client_name.clone(),
            approved_by: match &g.user_id == me {
                true => "you".into(),
                false => g.user_id.to_string(),
            },
            scopes: g.scopes.names().join(" "),
            created: when(Some(g.created_at), now),
            last_used: when(g.last_used_at, now),
            ends: when(Some(g.expires_at), now),
        })
        .collect();
    let role_scopes = dash.seat.role.scopes();
    let status = super::status_of(error.as_ref());
    let page = KeysPage {
        frame: dash.frame("keys"),
        keys: list.data.iter().map(|k| row(k, now)).collect(),
        apps,
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
        Ok(crate::extract::NoStore(crate::extract::Created(k))) => {
            keys_page(&state, &dash, Some(k), None, None).await
        }
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

/// Revokes a connected app (an OAuth grant): the person's own, or any for an owner or admin.
pub async fn revoke_app(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Submitted { dash, form: _ }: Submitted,
) -> Response {
    match state
        .app()
        .oauth_server()
        .revoke_grant(&dash.seat, &dash.session.user.id, &id)
        .await
    {
        Ok(()) => {
            let notice = "The app's access is revoked: its next request is refused.".to_owned();
            keys_page(&state, &dash, None, None, Some(notice)).await
        }
        Err(e) => keys_page(&state, &dash, None, Some(e.into()), None).await,
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
        Ok(crate::extract::NoStore(crate::extract::Created(k))) => {
            keys_page(&state, &dash, Some(k), None, None).await
        }
        Err(e) => keys_page(&state, &dash, None, Some(e), None).await,
    }
}

// ---- A key's page: its facts and its usage chart; the request look-up ----

/// The chart's drawing area, in SVG user units (the `viewBox`; it scales to the page's width).
const CHART_HEIGHT: f64 = 120.0;
const BAR_STEP: f64 = 12.0;
const BAR_WIDTH: f64 = 9.0;
/// Room under the bars for the date labels.
const LABELS: f64 = 16.0;

/// One day's bar: three stacked parts (answered, failed, rate-limited), bottom up.
struct Bar {
    x: String,
    label_x: String,
    /// The date under the bar, every 7th day and the last (else empty).
    label: String,
    parts: Vec<BarPart>,
    title: String,
}

struct BarPart {
    class: &'static str,
    y: String,
    height: String,
}

struct UsageRow {
    date: String,
    requests: i64,
    errors: i64,
    rate_limited: i64,
}

struct Chart {
    width: String,
    height: String,
    base_y: String,
    label_y: String,
    bars: Vec<Bar>,
    rows: Vec<UsageRow>,
    summary: String,
    max: i64,
}

fn chart(days: &[crier_store::views::UsageDay]) -> Chart {
    let max = days.iter().map(|d| d.requests).max().unwrap_or(0);
    let scale = if max > 0 {
        CHART_HEIGHT / max as f64
    } else {
        0.0
    };
    let n = |v: f64| format!("{v:.1}");
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let ok = (d.requests - d.errors - d.rate_limited).max(0);
            let mut top = CHART_HEIGHT;
            let mut parts = Vec::new();
            for (class, count) in [
                ("bar-ok", ok),
                ("bar-error", d.errors),
                ("bar-limited", d.rate_limited),
            ] {
                if count > 0 {
                    // At least a sliver, so a single request still shows.
                    let h = (count as f64 * scale).max(1.0);
                    top -= h;
                    parts.push(BarPart {
                        class,
                        y: n(top),
                        height: n(h),
                    });
                }
            }
            let x = i as f64 * BAR_STEP + (BAR_STEP - BAR_WIDTH) / 2.0;
            Bar {
                x: n(x),
                label_x: n(x + BAR_WIDTH / 2.0),
                label: if i % 7 == 0 || i + 1 == days.len() {
                    d.date.get(5..).unwrap_or(&d.date).to_owned()
                } else {
                    String::new()
                },
                parts,
                title: format!(
                    "{}: {}, {}, {} rate-limited",
                    d.date,
                    counted(d.requests, "request"),
                    counted(d.errors, "error"),
                    d.rate_limited
                ),
            }
        })
        .collect();
    let total = |f: fn(&crier_store::views::UsageDay) -> i64| days.iter().map(f).sum::<i64>();
    let (requests, errors, limited) = (
        total(|d| d.requests),
        total(|d| d.errors),
        total(|d| d.rate_limited),
    );
    let busiest = days
        .iter()
        .filter(|d| d.requests > 0)
        .max_by_key(|d| d.requests);
    let summary = format!(
        "In the last {} days: {}, {}, {limited} rate-limited.{}",
        days.len(),
        counted(requests, "request"),
        counted(errors, "error"),
        busiest
            .map(|d| format!(
                " Busiest day: {} ({}).",
                d.date,
                counted(d.requests, "request")
            ))
            .unwrap_or_default()
    );
    Chart {
        width: n(days.len() as f64 * BAR_STEP),
        height: n(CHART_HEIGHT + LABELS),
        base_y: n(CHART_HEIGHT),
        label_y: n(CHART_HEIGHT + LABELS - 3.0),
        bars,
        rows: days
            .iter()
            .map(|d| UsageRow {
                date: d.date.clone(),
                requests: d.requests,
                errors: d.errors,
                rate_limited: d.rate_limited,
            })
            .collect(),
        summary,
        max,
    }
}

#[derive(Template)]
#[template(path = "dashboard/key.html")]
struct KeyPage {
    frame: Frame,
    key: KeyRow,
    created: String,
    description: String,
    chart: Chart,
}

/// `/app/keys/{id}`: the key's facts and its last 30 days (the API's `GET /v1/keys/{id}` and
/// `GET /v1/keys/{id}/usage`, so a member sees only their own keys).
pub async fn show(State(state): State<AppState>, dash: Dash, Path(id): Path<String>) -> Response {
    let now = state.clock().now_ms();
    let result = async {
        let auth = Auth::of(dash.principal.clone())?;
        let axum::Json(key) = api::get(State(state.clone()), auth, ApiPath(id.clone())).await?;
        let auth = Auth::of(dash.principal.clone())?;
        let query = api::UsageQuery {
            days: api::DEFAULT_USAGE_DAYS,
        };
        let axum::Json(usage) = api::usage(State(state.clone()), auth, ApiPath(id), query).await?;
        Ok::<_, ApiError>((key, usage))
    }
    .await;
    let (key, usage) = match result {
        Ok(v) => v,
        Err(e) => return error_page(e),
    };
    let page = KeyPage {
        frame: dash.frame("keys"),
        key: row(&key, now),
        created: when(Some(key.created_at.as_millisecond()), now),
        description: key.description.clone(),
        chart: chart(&usage.days),
    };
    render(&page)
}

struct LoggedRequest {
    id: String,
    key_id: String,
    method: String,
    path: String,
    status: i64,
    error_code: String,
    duration_ms: i64,
    at: String,
    when: String,
}

#[derive(Template)]
#[template(path = "dashboard/request.html")]
struct RequestPage {
    frame: Frame,
    asked: String,
    found: Option<LoggedRequest>,
    error: Option<String>,
}

/// `/app/requests?id=req_…`: one request of the recent log (the API's
/// `GET /v1/requests/{request_id}`), or why there is none.
pub async fn lookup(
    State(state): State<AppState>,
    dash: Dash,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let now = state.clock().now_ms();
    let asked = crate::extract::query_pairs(query.as_deref())
        .into_iter()
        .find(|(n, _)| n == "id")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let mut page = RequestPage {
        frame: dash.frame("keys"),
        asked: asked.clone(),
        found: None,
        error: None,
    };
    if asked.is_empty() {
        return render(&page);
    }
    let result = async {
        let auth = Auth::of(dash.principal.clone())?;
        crate::routes::requests::get(State(state.clone()), auth, ApiPath(asked.clone())).await
    }
    .await;
    match result {
        Ok(axum::Json(r)) => {
            page.found = Some(LoggedRequest {
                id: r.id,
                key_id: r.key_id,
                method: r.method,
                path: r.path,
                status: r.status,
                error_code: r.error_code.unwrap_or_default(),
                duration_ms: r.duration_ms,
                at: r.created_at.to_string(),
                when: when(Some(r.created_at.as_millisecond()), now),
            });
            render(&page)
        }
        Err(e) if e.code == crier_core::ErrorCode::NotFound => {
            page.error = Some(format!(
                "No request {asked} that you may see in the last 7 days. The log is written \
                 every few seconds: if the request was made just now, try again in a moment."
            ));
            (axum::http::StatusCode::NOT_FOUND, render(&page)).into_response()
        }
        Err(e) => error_page(e),
    }
}

/// `1 request`, `2 requests`.
fn counted(n: i64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
