//! Feeds: RSS, Atom and JSON Feed automations. The list (URL, accounts, mode, state, last read
//! and the poller's errors as the API reports them), a new feed, a feed's page with its
//! settings to change, enabling and disabling, and deleting after a confirmation. Every action
//! is the API's own handler; its errors show next to the field they name.

use std::collections::BTreeMap;

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use crier_core::Scope;
use serde::Deserialize;

use super::inline::Inline;
use super::{Dash, FormData, Frame, Submitted, error_page, render, when};
use crate::AppState;
use crate::auth::{Auth, need};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Pagination};
use crate::routes::feeds::{self as api, CreateFeed, FeedObject, UpdateFeed};

/// The names of the form's fields, which are the API's (so an error's `param` finds its field).
const FIELDS: [&str; 6] = [
    "url",
    "account_ids",
    "template",
    "mode",
    "poll_interval_seconds",
    "backfill",
];

/// The poll intervals offered, in seconds (the API takes 60 to 86400).
const INTERVALS: [(i64, &str); 9] = [
    (60, "every minute"),
    (300, "every 5 minutes"),
    (900, "every 15 minutes"),
    (1800, "every 30 minutes"),
    (3600, "every hour"),
    (10_800, "every 3 hours"),
    (21_600, "every 6 hours"),
    (43_200, "every 12 hours"),
    (86_400, "once a day"),
];

const MODES: [(&str, &str); 3] = [
    ("draft", "drafts to review"),
    ("queue", "into the next queue slot"),
    ("publish", "published at once"),
];

struct FeedRow {
    id: String,
    url: String,
    accounts: String,
    mode: &'static str,
    state: &'static str,
    last_read: String,
    next_read: String,
    error: Option<String>,
    failures: i64,
}

fn state_of(f: &FeedObject) -> &'static str {
    match (f.enabled, f.last_error.is_some()) {
        (false, _) => "disabled",
        (true, true) => "failing",
        (true, false) => "enabled",
    }
}

fn feed_row(f: &FeedObject, labels: &BTreeMap<String, String>, now: i64) -> FeedRow {
    FeedRow {
        id: f.id.clone(),
        url: f.url.clone(),
        accounts: f
            .account_ids
            .iter()
            .map(|id| labels.get(id).cloned().unwrap_or_else(|| id.clone()))
            .collect::<Vec<_>>()
            .join(", "),
        mode: f.mode,
        state: state_of(f),
        last_read: when(f.last_polled_at.map(|t| t.as_millisecond()), now),
        next_read: match f.next_poll_at {
            Some(t) if t.as_millisecond() <= now => "due now".into(),
            Some(t) => when(Some(t.as_millisecond()), now),
            None => "not while disabled".into(),
        },
        error: f.last_error.clone(),
        failures: f.consecutive_failures,
    }
}

/// An account to tick in the form.
struct AccountChoice {
    id: String,
    label: String,
    checked: bool,
}

/// What the form shows: the feed's settings, or what was just sent.
struct FeedForm {
    url: String,
    template: String,
    mode: String,
    interval: i64,
    backfill: String,
    intervals: Vec<(i64, String)>,
}

impl FeedForm {
    fn new(url: &str, template: &str, mode: &str, interval: i64, backfill: &str) -> Self {
        let mut intervals: Vec<(i64, String)> = INTERVALS
            .iter()
            .map(|(s, l)| (*s, (*l).to_owned()))
            .collect();
        if !intervals.iter().any(|(s, _)| *s == interval) {
            intervals.push((interval, format!("every {interval} seconds")));
            intervals.sort();
        }
        Self {
            url: url.to_owned(),
            template: template.to_owned(),
            mode: mode.to_owned(),
            interval,
            backfill: backfill.to_owned(),
            intervals,
        }
    }

    fn blank() -> Self {
        Self::new(
            "",
            api::DEFAULT_TEMPLATE,
            "draft",
            api::DEFAULT_INTERVAL,
            "0",
        )
    }

    fn of(f: &FeedObject) -> Self {
        Self::new(
            &f.url,
            &f.template,
            f.mode,
            f.poll_interval_seconds,
            &f.backfill.to_string(),
        )
    }

    fn sent(form: &FormData) -> Self {
        Self::new(
            form.get("url").unwrap_or(""),
            form.get("template").unwrap_or(api::DEFAULT_TEMPLATE),
            form.get("mode").unwrap_or("draft"),
            form.get("poll_interval_seconds")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(api::DEFAULT_INTERVAL),
            form.get("backfill").unwrap_or("0"),
        )
    }
}

/// The workspace's accounts the session sees, as `id → "handle (platform)"`, in list order.
async fn accounts(state: &AppState, dash: &Dash) -> ApiResult<Vec<(String, String)>> {
    let Ok(Auth(p, ..)) = Auth::<need::AccountsRead>::of(dash.principal.clone()) else {
        return Ok(Vec::new());
    };
    let list = state.app().accounts().list(&p.caller(), 50, 0).await?;
    Ok(list
        .items
        .iter()
        .filter(|a| a.status == crier_core::accounts::AccountStatus::Connected)
        .map(|a| (a.id.to_string(), format!("{} ({})", a.handle, a.platform)))
        .collect())
}

fn choices(accounts: &[(String, String)], checked: &[&str]) -> Vec<AccountChoice> {
    accounts
        .iter()
        .map(|(id, label)| AccountChoice {
            id: id.clone(),
            label: label.clone(),
            checked: checked.contains(&id.as_str()),
        })
        .collect()
}

/// A confirmation after a redirect, from a closed list (never text from the query).
#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "created" => Some("Feed added. It is read in a moment, then at its interval."),
        "saved" => Some("Saved."),
        "enabled" => Some("Enabled: it is read in a moment."),
        "disabled" => Some("Disabled: it is not read until you enable it."),
        "deleted" => Some("Feed deleted. The posts it made stay."),
        _ => None,
    }
}

#[derive(Template)]
#[template(path = "dashboard/feeds.html")]
struct FeedsPage {
    frame: Frame,
    feeds: Vec<FeedRow>,
    accounts: Vec<AccountChoice>,
    modes: Vec<(&'static str, &'static str)>,
    form: FeedForm,
    error: Inline,
    notice: Option<&'static str>,
    can_write: bool,
    max_template: usize,
    max_backfill: i64,
}

async fn feeds_page(
    state: &AppState,
    dash: &Dash,
    sent: Option<&FormData>,
    error: Option<ApiError>,
    notice: Option<&'static str>,
) -> Response {
    let result = async {
        let auth = Auth::of(dash.principal.clone())?;
        let page = Pagination {
            limit: crate::extract::MAX_LIMIT,
            offset: 0,
        };
        let Json(list) = api::list(State(state.clone()), auth, page).await?;
        Ok::<_, ApiError>((list, accounts(state, dash).await?))
    }
    .await;
    let (list, accounts) = match result {
        Ok(v) => v,
        Err(e) => return error_page(e),
    };
    let labels: BTreeMap<String, String> = accounts.iter().cloned().collect();
    let now = state.clock().now_ms();
    let checked = sent.map(|f| f.all("account_id")).unwrap_or_default();
    let status = super::status_of(error.as_ref());
    let page = FeedsPage {
        frame: dash.frame("feeds"),
        feeds: list
            .data
            .iter()
            .map(|f| feed_row(f, &labels, now))
            .collect(),
        accounts: choices(&accounts, &checked),
        modes: MODES.to_vec(),
        form: sent.map(FeedForm::sent).unwrap_or_else(FeedForm::blank),
        error: Inline::new(error.as_ref(), &FIELDS),
        notice,
        can_write: dash.principal.require(Scope::FeedsWrite).is_ok(),
        max_template: api::MAX_TEMPLATE,
        max_backfill: api::MAX_BACKFILL,
    };
    (status, render(&page)).into_response()
}

pub async fn page(State(state): State<AppState>, dash: Dash, Query(q): Query<Done>) -> Response {
    feeds_page(&state, &dash, None, None, notice(q.done.as_deref())).await
}

/// A number field of the form: blank is `None`; anything else must be a whole number (the
/// API's own message otherwise, with the field as `param`).
fn number(form: &FormData, name: &str) -> ApiResult<Option<i64>> {
    match form.text(name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid(name, format!("`{name}` must be a whole number."))),
    }
}

pub async fn create(
    State(state): State<AppState>,
    Submitted { dash, form }: Submitted,
) -> Response {
    let result = async {
        let req = CreateFeed {
            url: form.get("url").unwrap_or("").trim().to_owned(),
            account_ids: form
                .all("account_id")
                .into_iter()
                .map(str::to_owned)
                .collect(),
            template: form.get("template").map(str::to_owned),
            mode: form.text("mode").map(str::to_owned),
            poll_interval_seconds: number(&form, "poll_interval_seconds")?,
            backfill: number(&form, "backfill")?,
            enabled: Some(true),
        };
        let auth = Auth::of(dash.principal.clone())?;
        api::create(State(state.clone()), auth, ApiJson(req)).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/app/feeds?done=created").into_response(),
        Err(e) => feeds_page(&state, &dash, Some(&form), Some(e), None).await,
    }
}

#[derive(Template)]
#[template(path = "dashboard/feed.html")]
struct FeedPage {
    frame: Frame,
    feed: FeedRow,
    enabled: bool,
    accounts: Vec<AccountChoice>,
    modes: Vec<(&'static str, &'static str)>,
    form: FeedForm,
    error: Inline,
    notice: Option<&'static str>,
    can_write: bool,
    max_template: usize,
    max_backfill: i64,
}

async fn feed_page(
    state: &AppState,
    dash: &Dash,
    id: &str,
    sent: Option<&FormData>,
    error: Option<ApiError>,
    notice: Option<&'static str>,
) -> Response {
    let result = async {
        let auth = Auth::of(dash.principal.clone())?;
        let Json(feed) = api::get(State(state.clone()), auth, ApiPath(id.to_owned())).await?;
        Ok::<_, ApiError>((feed, accounts(state, dash).await?))
    }
    .await;
    let (feed, accounts) = match result {
        Ok(v) => v,
        Err(e) => return error_page(e),
    };
    let labels: BTreeMap<String, String> = accounts.iter().cloned().collect();
    let checked: Vec<&str> = match sent {
        Some(f) => f.all("account_id"),
        None => feed.account_ids.iter().map(String::as_str).collect(),
    };
    let status = super::status_of(error.as_ref());
    let page = FeedPage {
        frame: dash.frame("feeds"),
        feed: feed_row(&feed, &labels, state.clock().now_ms()),
        enabled: feed.enabled,
        accounts: choices(&accounts, &checked),
        modes: MODES.to_vec(),
        form: match sent {
            Some(f) => FeedForm::sent(f),
            None => FeedForm::of(&feed),
        },
        error: Inline::new(error.as_ref(), &FIELDS),
        notice,
        can_write: dash.principal.require(Scope::FeedsWrite).is_ok(),
        max_template: api::MAX_TEMPLATE,
        max_backfill: api::MAX_BACKFILL,
    };
    (status, render(&page)).into_response()
}

pub async fn show(
    State(state): State<AppState>,
    dash: Dash,
    Path(id): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    feed_page(&state, &dash, &id, None, None, notice(q.done.as_deref())).await
}

/// The edit form as an update: only what differs from the feed now (a URL sent back unchanged
/// must not start the feed over).
fn changes(form: &FormData, feed: &FeedObject) -> ApiResult<UpdateFeed> {
    let url = form.get("url").unwrap_or("").trim();
    let account_ids: Vec<String> = form
        .all("account_id")
        .into_iter()
        .map(str::to_owned)
        .collect();
    let template = form.get("template").unwrap_or("");
    let mode = form.get("mode").unwrap_or("");
    Ok(UpdateFeed {
        url: (url != feed.url).then(|| url.to_owned()),
        account_ids: (account_ids != feed.account_ids).then_some(account_ids),
        template: (template != feed.template).then(|| template.to_owned()),
        mode: (mode != feed.mode).then(|| mode.to_owned()),
        poll_interval_seconds: number(form, "poll_interval_seconds")?
            .filter(|s| *s != feed.poll_interval_seconds),
        backfill: number(form, "backfill")?.filter(|b| *b != feed.backfill),
        enabled: None,
    })
}

/// A feed's actions: `update` (the edit form), `enable`, `disable`, `delete`.
pub async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    Submitted { dash, form }: Submitted,
) -> Response {
    let s = || State(state.clone());
    let p = || dash.principal.clone();
    let result: ApiResult<&str> = async {
        match action.as_str() {
            "update" => {
                let Json(feed) = api::get(s(), Auth::of(p())?, ApiPath(id.clone())).await?;
                let req = changes(&form, &feed)?;
                api::update(s(), Auth::of(p())?, ApiPath(id.clone()), ApiJson(req))
                    .await
                    .map(|_| "saved")
            }
            "enable" | "disable" => {
                let req = UpdateFeed {
                    enabled: Some(action == "enable"),
                    ..UpdateFeed::default()
                };
                let done = if action == "enable" {
                    "enabled"
                } else {
                    "disabled"
                };
                api::update(s(), Auth::of(p())?, ApiPath(id.clone()), ApiJson(req))
                    .await
                    .map(|_| done)
            }
            "delete" => api::delete(s(), Auth::of(p())?, ApiPath(id.clone()))
                .await
                .map(|_| "deleted"),
            _ => Err(ApiError::not_found("action", &action)),
        }
    }
    .await;
    match result {
        Ok("deleted") => Redirect::to("/app/feeds?done=deleted").into_response(),
        Ok(done) => Redirect::to(&format!("/app/feeds/{id}?done={done}")).into_response(),
        Err(e) if action == "update" => {
            feed_page(&state, &dash, &id, Some(&form), Some(e), None).await
        }
        Err(e) => feed_page(&state, &dash, &id, None, Some(e), None).await,
    }
}
