//! Analytics: charts over a range of days (7, 30 or 90) in the workspace's time zone: what was
//! published each day, the engagement it gathered (likes, reposts, replies, and impressions),
//! and each account's share; each chart with its numbers as a table. The days come from the
//! application layer (`crier_app::analytics`), the accounts from the API's own handler
//! (`GET /v1/accounts/analytics`) over the same period.

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use crier_app::analytics::DayTotals;
use serde::Deserialize;

use super::charts::{self, Chart, Days, IMPRESSIONS, LIKES, PUBLISHED, REPLIES, REPOSTS};
use super::{Dash, Frame, error_page, render};
use crate::AppState;
use crate::auth::{Auth, need};
use crate::error::ApiError;
use crate::routes::accounts::{self as accounts_api, AccountMetrics};

/// The ranges offered (the application layer takes 1 to 92 days).
const RANGES: [u32; 3] = [7, 30, 90];
const DEFAULT_DAYS: u32 = 30;

#[derive(Deserialize)]
pub struct Range {
    days: Option<String>,
}

struct DayRow {
    label: String,
    published: i64,
    likes: i64,
    reposts: i64,
    replies: i64,
    impressions: i64,
}

struct AccountRow {
    name: String,
    posts: i64,
    likes: i64,
    reposts: i64,
    replies: i64,
    impressions: i64,
    followers: String,
}

struct Totals {
    published: i64,
    likes: i64,
    reposts: i64,
    replies: i64,
    impressions: i64,
}

#[derive(Template)]
#[template(path = "dashboard/analytics.html")]
struct AnalyticsPage {
    frame: Frame,
    days: u32,
    ranges: Vec<u32>,
    timezone: String,
    period: String,
    empty: bool,
    totals: Totals,
    published_chart: Chart,
    engagement_chart: Chart,
    impressions_chart: Chart,
    accounts_chart: Option<Chart>,
    day_rows: Vec<DayRow>,
    account_rows: Vec<AccountRow>,
}

fn parse_days(v: Option<&str>) -> Result<u32, ApiError> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_DAYS),
        Some(v) => v.parse().map_err(|_| {
            ApiError::invalid(
                "days",
                format!(
                    "`days` must be a number of days from 1 to {}.",
                    crier_app::analytics::MAX_DAYS
                ),
            )
        }),
    }
}

/// The account analytics of `[from, to)`, through the API's handler.
async fn per_account(
    state: &AppState,
    dash: &Dash,
    from: jiff::Timestamp,
    to: jiff::Timestamp,
) -> Result<Vec<AccountMetrics>, ApiError> {
    let auth = Auth::of(dash.principal.clone())?;
    let (parts, ()) = axum::http::Request::builder()
        .uri(format!("/v1/accounts/analytics?from={from}&to={to}"))
        .body(())
        .map_err(|e| ApiError::internal(format!("an analytics request: {e}")))?
        .into_parts();
    let Json(a) = accounts_api::analytics(State(state.clone()), auth, parts).await?;
    Ok(a.data)
}

pub async fn page(State(state): State<AppState>, dash: Dash, Query(q): Query<Range>) -> Response {
    let result = async {
        let days = parse_days(q.days.as_deref())?;
        let Auth(p, ..) = Auth::<need::AnalyticsRead>::of(dash.principal.clone())?;
        let daily = state.app().analytics().daily(&p.caller(), days).await?;
        let accounts = per_account(&state, &dash, daily.from, daily.to).await?;
        Ok::<_, ApiError>((days, daily, accounts))
    }
    .await;
    let (days, daily, accounts) = match result {
        Ok(v) => v,
        Err(e) => return error_page(e),
    };
    let short: Vec<String> = daily
        .days
        .iter()
        .map(|d| d.date.strftime("%-d %b").to_string())
        .collect();
    let full: Vec<String> = daily
        .days
        .iter()
        .map(|d| d.date.strftime("%a %-d %b %Y").to_string())
        .collect();
    let axis = || Days {
        short: &short,
        full: &full,
    };
    let sum = |f: fn(&DayTotals) -> i64| daily.days.iter().map(f).sum::<i64>();
    let totals = Totals {
        published: sum(|d| d.published),
        likes: sum(|d| d.metrics.likes),
        reposts: sum(|d| d.metrics.reposts),
        replies: sum(|d| d.metrics.replies),
        impressions: sum(|d| d.metrics.impressions),
    };
    let first = full.first().cloned().unwrap_or_default();
    let last = full.last().cloned().unwrap_or_default();
    let period = format!("{first} to {last}");
    let published_chart = charts::stacked_columns(
        "chart-published",
        format!("Posts published per day, {period}"),
        format!(
            "{} publications in {days} days; a post sent to three accounts counts three.",
            totals.published
        ),
        &[PUBLISHED],
        axis(),
        &daily
            .days
            .iter()
            .map(|d| vec![d.published])
            .collect::<Vec<_>>(),
        "",
    );
    let engagement_chart = charts::stacked_columns(
        "chart-engagement",
        format!("Engagement per day of publication, {period}"),
        format!(
            "{} likes, {} reposts and {} replies on what was published in these days.",
            totals.likes, totals.reposts, totals.replies
        ),
        &[LIKES, REPOSTS, REPLIES],
        axis(),
        &daily
            .days
            .iter()
            .map(|d| vec![d.metrics.likes, d.metrics.reposts, d.metrics.replies])
            .collect::<Vec<_>>(),
        "",
    );
    let impressions_chart = charts::line(
        "chart-impressions",
        format!("Impressions per day of publication, {period}"),
        format!(
            "{} impressions of what was published in these days.",
            totals.impressions
        ),
        IMPRESSIONS,
        axis(),
        &daily
            .days
            .iter()
            .map(|d| d.metrics.impressions)
            .collect::<Vec<_>>(),
    );
    let names: Vec<String> = accounts
        .iter()
        .map(|a| format!("{} ({})", a.handle, a.platform))
        .collect();
    let accounts_chart = (!accounts.is_empty()).then(|| {
        charts::stacked_rows(
            "chart-accounts",
            format!("Engagement per account, {period}"),
            format!(
                "Likes, reposts and replies of each of {} accounts' posts in these days.",
                accounts.len()
            ),
            &[LIKES, REPOSTS, REPLIES],
            &names,
            &accounts
                .iter()
                .map(|a| {
                    let posts = if a.posts == 1 { "post" } else { "posts" };
                    format!("{} {posts}", a.posts)
                })
                .collect::<Vec<_>>(),
            &accounts
                .iter()
                .map(|a| vec![a.likes, a.reposts, a.replies])
                .collect::<Vec<_>>(),
        )
    });
    let page = AnalyticsPage {
        frame: dash.frame("analytics"),
        days,
        ranges: RANGES.to_vec(),
        timezone: daily.timezone.clone(),
        period,
        empty: totals.published == 0 && accounts.is_empty(),
        published_chart,
        engagement_chart,
        impressions_chart,
        accounts_chart,
        day_rows: daily
            .days
            .iter()
            .zip(&full)
            .rev()
            .map(|(d, label)| DayRow {
                label: label.clone(),
                published: d.published,
                likes: d.metrics.likes,
                reposts: d.metrics.reposts,
                replies: d.metrics.replies,
                impressions: d.metrics.impressions,
            })
            .collect(),
        account_rows: accounts
            .iter()
            .zip(names)
            .map(|(a, name)| AccountRow {
                name,
                posts: a.posts,
                likes: a.likes,
                reposts: a.reposts,
                replies: a.replies,
                impressions: a.impressions,
                followers: match (a.followers, a.followers_change) {
                    (Some(f), Some(c)) if c != 0 => format!("{f} ({c:+})"),
                    (Some(f), _) => f.to_string(),
                    (None, _) => "—".into(),
                },
            })
            .collect(),
        totals,
    };
    render(&page).into_response()
}
