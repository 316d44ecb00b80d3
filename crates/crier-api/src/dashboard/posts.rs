//! Posts: the list with a week's calendar of what is scheduled, the composer (per-network
//! character counters in the page, live preflight from the server's own rules, accounts or a
//! brand, a draft, a time in the workspace's time zone, the next queue slot, or now), and a
//! post's page with each target's status, error and link, and its actions (retry, cancel,
//! publish, approve or reject, delete). Every action is the API's own handler.

use std::collections::BTreeMap;

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use crier_core::Scope;
use crier_core::posts::PostStatus;
use crier_store::PostFilter;
use crier_store::views::PostObject;
use serde::Deserialize;

use super::{Dash, FormData, Frame, Scripted, Submitted, error_page, render};
use crate::AppState;
use crate::auth::{Auth, need};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::routes::posts::{self as api, ApprovePost, CreatePost, SchedulePost};

/// A time as the workspace reads it (`Wed 3 Dec 09:00`).
pub(super) fn local(ms: i64, tz: &str) -> String {
    let Ok(t) = jiff::Timestamp::from_millisecond(ms) else {
        return String::new();
    };
    match t.in_tz(tz) {
        Ok(z) => z.strftime("%a %-d %b %Y %H:%M").to_string(),
        Err(_) => t.strftime("%a %-d %b %Y %H:%M UTC").to_string(),
    }
}

struct PostRow {
    id: String,
    status: &'static str,
    excerpt: String,
    when: String,
    targets: String,
}

struct Day {
    label: String,
    posts: Vec<PostRow>,
}

#[derive(Template)]
#[template(path = "dashboard/posts.html")]
struct PostsPage {
    frame: Frame,
    posts: Vec<PostRow>,
    week: Vec<Day>,
    status: String,
    statuses: Vec<&'static str>,
    timezone: String,
}

pub(super) fn excerpt(body: &str) -> String {
    let mut s: String = body.chars().take(90).collect();
    if body.chars().count() > 90 {
        s.push('…');
    }
    s
}

fn post_row(p: &PostObject, tz: &str) -> PostRow {
    let t = p
        .published_at
        .or(p.scheduled_at)
        .map(|t| local(t.as_millisecond(), tz))
        .unwrap_or_else(|| "not scheduled".into());
    PostRow {
        id: p.id.clone(),
        status: p.status,
        excerpt: excerpt(&p.body),
        when: t,
        targets: p
            .targets
            .iter()
            .map(|t| format!("{}: {}", t.platform, t.status))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    dash: Dash,
    Query(q): Query<ListQuery>,
) -> Response {
    let result = async {
        let Auth(p, ..) = Auth::<need::PostsRead>::of(dash.principal.clone())?;
        let caller = p.caller();
        let posts = state.app().posts();
        let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(
                PostStatus::parse(s)
                    .ok_or_else(|| ApiError::invalid("status", format!("Unknown status `{s}`.")))?,
            ),
            None => None,
        };
        let filter = PostFilter {
            status,
            ..PostFilter::default()
        };
        let list = posts.list(&caller, filter, 50, 0).await?;
        let now = state.clock().now_ms();
        let week_filter = PostFilter {
            status: Some(PostStatus::Scheduled),
            from: Some(now),
            to: Some(now + 7 * 86_400_000),
            ..PostFilter::default()
        };
        let upcoming = posts.list(&caller, week_filter, 50, 0).await?;
        Ok::<_, ApiError>((list, upcoming))
    }
    .await;
    let (list, upcoming) = match result {
        Ok(v) => v,
        Err(e) => return error_page(e),
    };
    let tz = dash.seat.workspace.timezone.clone();
    let mut days: BTreeMap<String, Day> = BTreeMap::new();
    for p in upcoming.items.iter().rev() {
        let o = PostObject::from(p);
        let Some(at) = o.scheduled_at else { continue };
        let (key, label) = match at.in_tz(&tz) {
            Ok(z) => (
                z.strftime("%Y-%m-%d").to_string(),
                z.strftime("%A %-d %B").to_string(),
            ),
            Err(_) => (
                at.strftime("%Y-%m-%d").to_string(),
                at.strftime("%A %-d %B").to_string(),
            ),
        };
        days.entry(key)
            .or_insert_with(|| Day {
                label,
                posts: Vec::new(),
            })
            .posts
            .push(post_row(&o, &tz));
    }
    render(&PostsPage {
        frame: dash.frame("posts"),
        posts: list
            .items
            .iter()
            .map(|p| post_row(&PostObject::from(p), &tz))
            .collect(),
        week: days.into_values().collect(),
        status: q.status.unwrap_or_default(),
        statuses: vec![
            "draft",
            "pending_approval",
            "scheduled",
            "publishing",
            "published",
            "partially_published",
            "failed",
        ],
        timezone: tz,
    })
}

/// At most this many posts are drawn in one month; beyond it the page says so.
const CALENDAR_MAX: u32 = 500;

struct CalendarPost {
    id: String,
    time: String,
    status: &'static str,
    excerpt: String,
}

struct CalendarDay {
    /// `2026-12-03`
    date: String,
    day: i8,
    in_month: bool,
    today: bool,
    posts: Vec<CalendarPost>,
}

#[derive(Template)]
#[template(path = "dashboard/calendar.html")]
struct CalendarPage {
    frame: Frame,
    title: String,
    previous: String,
    next: String,
    weeks: Vec<Vec<CalendarDay>>,
    timezone: String,
    truncated: bool,
}

#[derive(Deserialize)]
pub struct MonthQuery {
    month: Option<String>,
}

/// The month calendar: every post scheduled or published in a month, by day in the
/// workspace's time zone, Monday first; `?month=2026-12` (default: this month).
pub async fn calendar(
    State(state): State<AppState>,
    dash: Dash,
    Query(q): Query<MonthQuery>,
) -> Response {
    let tz_name = dash.seat.workspace.timezone.clone();
    let tz = jiff::tz::TimeZone::get(&tz_name).unwrap_or(jiff::tz::TimeZone::UTC);
    let now = jiff::Timestamp::from_millisecond(state.clock().now_ms())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(tz.clone());
    let first = match q.month.as_deref().filter(|m| !m.is_empty()) {
        None => now.date().first_of_month(),
        Some(m) => match parse_month(m) {
            Some(d) => d,
            None => {
                return error_page(ApiError::invalid(
                    "month",
                    "Give a month as YYYY-MM, between 2000-01 and 2100-12.",
                ));
            }
        },
    };
    // Monday of the first week to Sunday of the last.
    let start = first
        .checked_sub(jiff::ToSpan::days(i64::from(
            first.weekday().to_monday_zero_offset(),
        )))
        .unwrap_or(first);
    let last = first.last_of_month();
    let end = last
        .checked_add(jiff::ToSpan::days(
            6 - i64::from(last.weekday().to_monday_zero_offset()),
        ))
        .unwrap_or(last);
    let ms = |d: jiff::civil::Date| {
        d.to_zoned(tz.clone())
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(0)
    };
    let (from, to) = (ms(start), ms(end.tomorrow().unwrap_or(end)) - 1);
    let result = async {
        let Auth(p, ..) = Auth::<need::PostsRead>::of(dash.principal.clone())?;
        let filter = PostFilter {
            from: Some(from),
            to: Some(to),
            ..PostFilter::default()
        };
        Ok::<_, ApiError>(
            state
                .app()
                .posts()
                .list(&p.caller(), filter, CALENDAR_MAX, 0)
                .await?,
        )
    }
    .await;
    let list = match result {
        Ok(l) => l,
        Err(e) => return error_page(e),
    };
    let mut by_day: BTreeMap<jiff::civil::Date, Vec<(i64, CalendarPost)>> = BTreeMap::new();
    for p in &list.items {
        let o = PostObject::from(p);
        let Some(at) = o.published_at.or(o.scheduled_at) else {
            continue;
        };
        let z = at.to_zoned(tz.clone());
        by_day.entry(z.date()).or_default().push((
            at.as_millisecond(),
            CalendarPost {
                id: o.id.clone(),
                time: z.strftime("%H:%M").to_string(),
                status: o.status,
                excerpt: excerpt(&o.body),
            },
        ));
    }
    let mut weeks = Vec::new();
    let mut day = start;
    while day <= end {
        let mut week = Vec::with_capacity(7);
        for _ in 0..7 {
            let mut posts = by_day.remove(&day).unwrap_or_default();
            posts.sort_by_key(|(t, _)| *t);
            week.push(CalendarDay {
                date: day.to_string(),
                day: day.day(),
                in_month: day.month() == first.month(),
                today: day == now.date(),
                posts: posts.into_iter().map(|(_, p)| p).collect(),
            });
            day = day.tomorrow().unwrap_or(day);
        }
        weeks.push(week);
    }
    let month = |d: jiff::civil::Date| d.strftime("%Y-%m").to_string();
    render(&CalendarPage {
        frame: dash.frame("posts"),
        title: first.strftime("%B %Y").to_string(),
        previous: month(first.checked_sub(jiff::ToSpan::months(1)).unwrap_or(first)),
        next: month(first.checked_add(jiff::ToSpan::months(1)).unwrap_or(first)),
        weeks,
        timezone: tz_name,
        truncated: list.has_more,
    })
}

/// `2026-12` as the first day of that month (years 2000 to 2100).
fn parse_month(s: &str) -> Option<jiff::civil::Date> {
    let (y, m) = s.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let (y, m): (i16, i8) = (y.parse().ok()?, m.parse().ok()?);
    if !(2000..=2100).contains(&y) {
        return None;
    }
    jiff::civil::Date::new(y, m, 1).ok()
}

struct AccountChoice {
    id: String,
    label: String,
    platform: String,
    max_length: usize,
    counting: &'static str,
}

/// Media already in the library, to attach without uploading again.
struct MediaChoice {
    id: String,
    filename: String,
    kind: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "dashboard/compose.html")]
struct ComposePage {
    frame: Frame,
    accounts: Vec<AccountChoice>,
    media: Vec<MediaChoice>,
    can_upload: bool,
    accept: String,
    brands: Vec<(String, String)>,
    body: String,
    timezone: String,
    error: Option<String>,
    error_param: String,
    can_publish: bool,
}

async fn compose_page(
    state: &AppState,
    dash: &Dash,
    form: Option<&FormData>,
    error: Option<ApiError>,
) -> Response {
    let result = async {
        let Auth(p, ..) = Auth::<need::PostsWrite>::of(dash.principal.clone())?;
        let caller = p.caller();
        let accounts = state.app().accounts().list(&caller, 50, 0).await?;
        let brands = match p.require(Scope::BrandsRead) {
            Ok(()) => state.app().brands().list(&caller, 50, 0).await?.items,
            Err(_) => Vec::new(),
        };
        let media = match p.require(Scope::MediaRead) {
            Ok(()) => state.app().media().list(&caller.tenant, 20, 0).await?.items,
            Err(_) => Vec::new(),
        };
        Ok::<_, ApiError>((accounts, brands, media))
    }
    .await;
    let (accounts, brands, media) = match result {
        Ok(v) => v,
        Err(e) => return error_page(e),
    };
    let networks = state.app().networks();
    let status = super::status_of(error.as_ref());
    let chosen = form.map(|f| f.all("media_id")).unwrap_or_default();
    let page = ComposePage {
        frame: dash.frame("compose"),
        accounts: accounts
            .items
            .iter()
            .filter(|a| a.status == crier_core::accounts::AccountStatus::Connected)
            .map(|a| {
                let rules = networks.get(&a.platform).map(|n| n.rules());
                AccountChoice {
                    id: a.id.to_string(),
                    label: format!("{} ({})", a.handle, a.platform),
                    platform: a.platform.clone(),
                    max_length: rules.as_ref().map(|r| r.max_length).unwrap_or(0),
                    counting: match rules.as_ref().map(|r| r.counting) {
                        Some(
                            crier_core::text::Counting::Graphemes
                            | crier_core::text::Counting::GraphemesLinks23,
                        ) => "graphemes",
                        _ => "chars",
                    },
                }
            })
            .collect(),
        brands: brands
            .iter()
            .map(|b| (b.id.to_string(), b.name.clone()))
            .collect(),
        media: media
            .iter()
            .filter(|m| m.status == crier_store::MediaStatus::Ready)
            .map(|m| MediaChoice {
                id: m.id.to_string(),
                filename: m.filename.clone(),
                kind: m.content_type.clone().unwrap_or_default(),
                checked: chosen.contains(&m.id.as_str()),
            })
            .collect(),
        can_upload: dash.principal.require(Scope::MediaWrite).is_ok(),
        accept: crier_media::sniff::IMAGE_TYPES
            .iter()
            .chain(crier_media::sniff::VIDEO_TYPES.iter())
            .copied()
            .collect::<Vec<_>>()
            .join(","),
        body: form.and_then(|f| f.get("body")).unwrap_or("").to_owned(),
        timezone: dash.seat.workspace.timezone.clone(),
        error_param: error
            .as_ref()
            .and_then(|e| e.param.clone())
            .unwrap_or_default(),
        error: error.map(|e| e.message.to_string()),
        can_publish: dash.principal.require(Scope::PostsPublish).is_ok(),
    };
    let mut resp = (status, render(&page)).into_response();
    super::allow_media(state, &mut resp);
    resp
}

pub async fn compose(State(state): State<AppState>, dash: Dash) -> Response {
    compose_page(&state, &dash, None, None).await
}

/// The composer's fields as the API's create request.
fn create_request(form: &FormData) -> CreatePost {
    let thread = form
        .get("thread")
        .unwrap_or("")
        .split("\n---\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    CreatePost {
        body: form.get("body").unwrap_or("").to_owned(),
        thread,
        account_ids: form
            .all("account_id")
            .into_iter()
            .map(str::to_owned)
            .collect(),
        brand_id: form.text("brand_id").map(str::to_owned),
        media_ids: form
            .all("media_id")
            .into_iter()
            .map(str::to_owned)
            .collect(),
        overrides: BTreeMap::new(),
    }
}

/// A `datetime-local` value read in the workspace's time zone.
fn local_time(value: &str, tz: &str) -> ApiResult<jiff::Timestamp> {
    let invalid = || {
        ApiError::invalid(
            "scheduled_at",
            "Give a date and time such as 2026-12-03T09:00.",
        )
    };
    let civil: jiff::civil::DateTime = value.trim().parse().map_err(|_| invalid())?;
    let zoned = civil.in_tz(tz).map_err(|_| invalid())?;
    Ok(zoned.timestamp())
}

pub async fn create(
    State(state): State<AppState>,
    Submitted { dash, form }: Submitted,
) -> Response {
    let result = async {
        let auth = Auth::of(dash.principal.clone())?;
        let crate::extract::Created(post) =
            api::create(State(state.clone()), auth, ApiJson(create_request(&form))).await?;
        let when = form.get("when").unwrap_or("draft");
        if when == "draft" {
            return Ok::<_, PostError>(post.id);
        }
        let outcome = async {
            let auth = Auth::of(dash.principal.clone())?;
            match when {
                "now" => api::publish(State(state.clone()), auth, ApiPath(post.id.clone())).await,
                "slot" => {
                    let req = SchedulePost {
                        scheduled_at: None,
                        slot: Some("next".into()),
                    };
                    api::schedule(
                        State(state.clone()),
                        auth,
                        ApiPath(post.id.clone()),
                        ApiJson(req),
                    )
                    .await
                }
                _ => {
                    let at = local_time(
                        form.get("scheduled_at").unwrap_or(""),
                        &dash.seat.workspace.timezone,
                    )?;
                    let req = SchedulePost {
                        scheduled_at: Some(at),
                        slot: None,
                    };
                    api::schedule(
                        State(state.clone()),
                        auth,
                        ApiPath(post.id.clone()),
                        ApiJson(req),
                    )
                    .await
                }
            }
        }
        .await;
        // The draft stays; its page shows why it could not be scheduled.
        outcome
            .map(|_| post.id.clone())
            .map_err(|e| e.within_post(&post.id))
    }
    .await;
    match result {
        Ok(id) => Redirect::to(&format!("/app/posts/{id}")).into_response(),
        Err(e) => match e.post_id.clone() {
            Some(id) => post_page(&state, &dash, &id, Some(e.error)).await,
            None => compose_page(&state, &dash, Some(&form), Some(e.error)).await,
        },
    }
}

/// An error, and the draft it left (when creating succeeded and scheduling did not).
pub struct PostError {
    error: ApiError,
    post_id: Option<String>,
}

impl From<ApiError> for PostError {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            post_id: None,
        }
    }
}

trait WithinPost {
    fn within_post(self, id: &str) -> PostError;
}

impl WithinPost for ApiError {
    fn within_post(self, id: &str) -> PostError {
        PostError {
            error: self,
            post_id: Some(id.to_owned()),
        }
    }
}

/// Live preflight for the composer: the API's `POST /v1/posts/validate` with the session,
/// answering the same JSON.
pub async fn validate(State(state): State<AppState>, call: Scripted) -> Response {
    let result = async {
        let value: serde_json::Value = crate::extract::parse_json(&call.body)?;
        let auth = Auth::of(call.dash.principal.clone())?;
        api::validate(State(state.clone()), auth, ApiJson(value)).await
    }
    .await;
    match result {
        Ok(Json(v)) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

struct TargetRow {
    account_id: String,
    platform: String,
    status: &'static str,
    url: String,
    attempts: i64,
    error: String,
}

#[derive(Template)]
#[template(path = "dashboard/post.html")]
struct PostPage {
    frame: Frame,
    id: String,
    status: &'static str,
    body: String,
    thread: Vec<String>,
    when: String,
    targets: Vec<TargetRow>,
    error: Option<String>,
    can_publish: bool,
    can_approve: bool,
    can_delete: bool,
}

async fn post_page(state: &AppState, dash: &Dash, id: &str, error: Option<ApiError>) -> Response {
    let result = async {
        let auth = Auth::of(dash.principal.clone())?;
        api::get(State(state.clone()), auth, ApiPath(id.to_owned())).await
    }
    .await;
    let post = match result {
        Ok(Json(p)) => p,
        Err(e) => return error_page(e),
    };
    let tz = &dash.seat.workspace.timezone;
    let status = super::status_of(error.as_ref());
    let p = &dash.principal;
    let page = PostPage {
        frame: dash.frame("posts"),
        id: post.id.clone(),
        status: post.status,
        body: post.body.clone(),
        thread: post.thread.clone(),
        when: match (post.published_at, post.scheduled_at) {
            (Some(t), _) => format!("Published {}", local(t.as_millisecond(), tz)),
            (None, Some(t)) => format!("Scheduled for {}", local(t.as_millisecond(), tz)),
            _ => "Not scheduled".into(),
        },
        targets: post
            .targets
            .iter()
            .map(|t| TargetRow {
                account_id: t.account_id.clone(),
                platform: t.platform.clone(),
                status: t.status,
                url: t.url.clone().unwrap_or_default(),
                attempts: t.attempts,
                error: t
                    .error
                    .as_ref()
                    .map(|e| format!("{}: {}", e.code, e.message))
                    .unwrap_or_default(),
            })
            .collect(),
        error: error.map(|e| e.message.to_string()),
        can_publish: p.require(Scope::PostsPublish).is_ok(),
        can_approve: p.require(Scope::PostsApprove).is_ok(),
        can_delete: p.require(Scope::PostsDelete).is_ok(),
    };
    (status, render(&page)).into_response()
}

pub async fn show(State(state): State<AppState>, dash: Dash, Path(id): Path<String>) -> Response {
    post_page(&state, &dash, &id, None).await
}

/// A post's actions: `retry`, `cancel`, `publish`, `approve`, `reject`, `delete`.
pub async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    Submitted { dash, form }: Submitted,
) -> Response {
    let s = || State(state.clone());
    let path = || ApiPath(id.clone());
    let p = || dash.principal.clone();
    let result: ApiResult<()> = async {
        match action.as_str() {
            "retry" => api::retry(s(), Auth::of(p())?, path()).await.map(drop),
            "cancel" => api::cancel(s(), Auth::of(p())?, path()).await.map(drop),
            "publish" => api::publish(s(), Auth::of(p())?, path()).await.map(drop),
            "approve" | "reject" => {
                let req = ApprovePost {
                    reject: action == "reject",
                    reason: form.text("reason").map(str::to_owned),
                };
                api::approve(s(), Auth::of(p())?, path(), ApiJson(req))
                    .await
                    .map(drop)
            }
            "delete" => api::delete(s(), Auth::of(p())?, path()).await.map(drop),
            _ => Err(ApiError::not_found("action", &action)),
        }
    }
    .await;
    match result {
        Ok(()) if action == "delete" => Redirect::to("/app/posts").into_response(),
        Ok(()) => Redirect::to(&format!("/app/posts/{id}")).into_response(),
        Err(e) => post_page(&state, &dash, &id, Some(e)).await,
    }
}
