//! The device login approval page (`verification_uri`): the user enters or confirms the code the
//! CLI shows, sees the client's name and the scopes it asks for, picks the workspace, and
//! approves or denies. The rules are `crier_app::devices`.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Dash, Frame, Submitted, error_page, render};
use crate::AppState;
use crate::error::ApiError;

#[derive(Deserialize)]
pub struct CodeQuery {
    code: Option<String>,
}

struct Waiting {
    code: String,
    client_name: String,
    scopes: Vec<&'static str>,
    minutes_left: i64,
}

#[derive(Template)]
#[template(path = "dashboard/device.html")]
struct DevicePage {
    frame: Frame,
    code: String,
    waiting: Option<Waiting>,
    error: Option<String>,
    done: Option<String>,
}

async fn device_page(
    state: &AppState,
    dash: &Dash,
    code: &str,
    error: Option<ApiError>,
    done: Option<String>,
) -> Response {
    let mut error = error;
    let waiting = if code.is_empty() || done.is_some() {
        None
    } else {
        match state.app().devices().waiting(code).await {
            Ok(login) => Some(Waiting {
                code: login.user_code.clone(),
                client_name: login.client_name.clone(),
                scopes: login.scopes.names(),
                minutes_left: ((login.expires_at - state.clock().now_ms()) / 60_000).max(1),
            }),
            Err(e) => {
                error.get_or_insert(e.into());
                None
            }
        }
    };
    let status = super::status_of(error.as_ref());
    let page = DevicePage {
        frame: dash.frame("device"),
        code: code.to_owned(),
        waiting,
        error: error.map(|e| e.message.to_string()),
        done,
    };
    (status, render(&page)).into_response()
}

pub async fn page(
    State(state): State<AppState>,
    dash: Dash,
    Query(q): Query<CodeQuery>,
) -> Response {
    let code = q.code.unwrap_or_default();
    if code.len() > 32 {
        return error_page(ApiError::invalid("code", "That is not a device code."));
    }
    device_page(&state, &dash, code.trim(), None, None).await
}

pub async fn decide(
    State(state): State<AppState>,
    Submitted { dash, form }: Submitted,
) -> Response {
    let code = form.get("code").unwrap_or("").trim().to_owned();
    let approve = form.get("decision") == Some("approve");
    let ws = form.get("workspace").unwrap_or("");
    let Some(seat) = dash.seat_in(ws) else {
        let e = ApiError::not_found("workspace", ws);
        return device_page(&state, &dash, &code, Some(e), None).await;
    };
    match state
        .app()
        .devices()
        .decide(&seat, &dash.session.user.id, &code, approve)
        .await
    {
        Ok(login) => {
            let done = match approve {
                true => format!(
                    "Approved: {} can now finish signing in to {}. You can close this page.",
                    login.client_name, seat.workspace.name
                ),
                false => format!("Denied: {} was not signed in.", login.client_name),
            };
            device_page(&state, &dash, &code, None, Some(done)).await
        }
        Err(e) => device_page(&state, &dash, &code, Some(e.into()), None).await,
    }
}
