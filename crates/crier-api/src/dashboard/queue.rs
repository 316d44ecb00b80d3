//! The queue: the weekly posting slots in the workspace's time zone (one form posts the whole
//! set through `PUT /v1/queue/slots`: change a row, remove one, add one), and below them what
//! is scheduled, in the order it goes out. Every action is the API's own handler; an invalid
//! slot's error shows on its row.

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use crier_core::Scope;
use serde::Deserialize;

use super::posts::{excerpt, local};
use super::{Dash, FormData, Frame, Submitted, error_page, render};
use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Pagination};
use crate::routes::queue::{self as api, PutSlots, SlotObject};

const DAYS: [(&str, &str); 7] = [
    ("monday", "Monday"),
    ("tuesday", "Tuesday"),
    ("wednesday", "Wednesday"),
    ("thursday", "Thursday"),
    ("friday", "Friday"),
    ("saturday", "Saturday"),
    ("sunday", "Sunday"),
];

/// One row of the slots form.
struct SlotRow {
    day: String,
    time: String,
    /// The API's error about this slot.
    error: Option<String>,
}

/// One post in the queue.
struct QueuedRow {
    id: String,
    when: String,
    status: &'static str,
    excerpt: String,
    networks: String,
}

#[derive(Template)]
#[template(path = "dashboard/queue.html")]
struct QueuePage {
    frame: Frame,
    timezone: String,
    rows: Vec<SlotRow>,
    /// The blank row that adds a slot (kept as sent when the save failed).
    add: SlotRow,
    days: Vec<(&'static str, &'static str)>,
    /// The slots by weekday, for the week at a glance.
    week: Vec<(&'static str, Vec<String>)>,
    next_free: String,
    queue: Vec<QueuedRow>,
    more: bool,
    error: Option<String>,
    error_param: String,
    notice: Option<&'static str>,
    can_write: bool,
    max_slots: usize,
}

/// What the form sent: its rows in order (the last one the "add" row), the row a Remove button
/// named, if any.
struct Sent {
    rows: Vec<(String, String)>,
    remove: Option<usize>,
}

impl Sent {
    fn of(form: &FormData) -> Self {
        let days = form.all("day");
        let times = form.all("time");
        Self {
            rows: days
                .iter()
                .zip(times.iter())
                .map(|(d, t)| (d.trim().to_owned(), t.trim().to_owned()))
                .collect(),
            remove: form.get("remove").and_then(|r| r.parse().ok()),
        }
    }

    /// The slots to save, each with the row it came from: every row but the removed one and
    /// the blank ones.
    fn slots(&self) -> Vec<(usize, SlotObject)> {
        self.rows
            .iter()
            .enumerate()
            .filter(|(i, (_, t))| Some(*i) != self.remove && !t.is_empty())
            .map(|(i, (d, t))| {
                (
                    i,
                    SlotObject {
                        day: d.clone(),
                        time: t.clone(),
                    },
                )
            })
            .collect()
    }
}

async fn queue_page(
    state: &AppState,
    dash: &Dash,
    sent: Option<&Sent>,
    error: Option<ApiError>,
    notice: Option<&'static str>,
) -> Response {
    let result = async {
        let auth = Auth::of(dash.principal.clone())?;
        let Json(slots) = api::get_slots(State(state.clone()), auth).await?;
        let auth = Auth::of(dash.principal.clone())?;
        let page = Pagination {
            limit: crate::extract::MAX_LIMIT,
            offset: 0,
        };
        let Json(queue) = api::list(State(state.clone()), auth, page).await?;
        Ok::<_, ApiError>((slots, queue))
    }
    .await;
    let (slots, queue) = match result {
        Ok(v) => v,
        Err(e) => return error_page(e),
    };
    let tz = slots.timezone.clone();
    // The row an error is about: `slots[i]` is the i-th slot sent, which came from some row.
    let error_row = error
        .as_ref()
        .and_then(|e| e.param.as_deref())
        .and_then(|p| {
            p.strip_prefix("slots[")?
                .strip_suffix(']')?
                .parse::<usize>()
                .ok()
        })
        .and_then(|i| sent.and_then(|s| s.slots().get(i).map(|(row, _)| *row)));
    let (mut rows, add) = match sent {
        // After a refused save: the rows as sent, so nothing typed is lost.
        Some(s) => {
            let mut rows: Vec<SlotRow> = s
                .rows
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != s.remove)
                .map(|(i, (d, t))| SlotRow {
                    day: d.clone(),
                    time: t.clone(),
                    error: (Some(i) == error_row)
                        .then(|| error.as_ref().map(|e| e.message.to_string()))
                        .flatten(),
                })
                .collect();
            let add = rows.pop().unwrap_or_else(blank);
            (rows, add)
        }
        None => (
            slots
                .slots
                .iter()
                .map(|s| SlotRow {
                    day: s.day.clone(),
                    time: s.time.clone(),
                    error: None,
                })
                .collect(),
            blank(),
        ),
    };
    // A blank row sent back shows as the add row, not as a slot.
    rows.retain(|r| !r.time.is_empty() || r.error.is_some());
    let week = DAYS
        .iter()
        .map(|(d, label)| {
            let times = slots
                .slots
                .iter()
                .filter(|s| s.day == *d)
                .map(|s| s.time.clone())
                .collect();
            (*label, times)
        })
        .collect();
    let status = super::status_of(error.as_ref());
    let general = error_row.is_none();
    let page = QueuePage {
        frame: dash.frame("queue"),
        rows,
        add,
        days: DAYS.to_vec(),
        week,
        next_free: match slots.next_free {
            Some(t) => local(t.as_millisecond(), &tz),
            None => "none in the next 8 weeks".into(),
        },
        timezone: tz.clone(),
        queue: queue
            .data
            .iter()
            .map(|p| QueuedRow {
                id: p.id.clone(),
                when: p
                    .scheduled_at
                    .map(|t| local(t.as_millisecond(), &tz))
                    .unwrap_or_else(|| "when approved".into()),
                status: p.status,
                excerpt: excerpt(&p.body),
                networks: p
                    .targets
                    .iter()
                    .map(|t| t.platform.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect(),
        more: queue.has_more,
        error_param: error
            .as_ref()
            .and_then(|e| e.param.clone())
            .unwrap_or_default(),
        error: error.filter(|_| general).map(|e| e.message.to_string()),
        notice,
        can_write: dash.principal.require(Scope::QueueWrite).is_ok(),
        max_slots: api::MAX_SLOTS,
    };
    (status, render(&page)).into_response()
}

fn blank() -> SlotRow {
    SlotRow {
        day: "monday".into(),
        time: String::new(),
        error: None,
    }
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

pub async fn page(State(state): State<AppState>, dash: Dash, Query(q): Query<Done>) -> Response {
    let notice = (q.done.as_deref() == Some("saved")).then_some("Slots saved.");
    queue_page(&state, &dash, None, None, notice).await
}

/// The slots form: every row but the one whose Remove button was pressed, and the add row
/// when it has a time, as the whole new set.
pub async fn save(State(state): State<AppState>, Submitted { dash, form }: Submitted) -> Response {
    let sent = Sent::of(&form);
    let result: ApiResult<_> = async {
        let req = PutSlots {
            slots: sent.slots().into_iter().map(|(_, s)| s).collect(),
        };
        let auth = Auth::of(dash.principal.clone())?;
        api::put_slots(State(state.clone()), auth, ApiJson(req)).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/app/queue?done=saved").into_response(),
        Err(e) => queue_page(&state, &dash, Some(&sent), Some(e), None).await,
    }
}
