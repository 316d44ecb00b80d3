//! Accounts: the connected social accounts (expired ones stand out), connecting one (the
//! sandbox at once, Bluesky with an app password, OAuth networks through their consent page
//! and back to `/app/accounts/callback/{platform}`), and disconnecting. The rules are
//! `crier_app::connect` and `crier_app::accounts`, called as the API calls them.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use crier_app::connect::Finish;
use crier_networks::ConnectKind;
use serde::Deserialize;

use super::{Dash, Frame, Submitted, error_page, render, when};
use crate::AppState;
use crate::auth::{Auth, need};
use crate::error::ApiError;

struct AccountRow {
    id: String,
    platform: String,
    handle: String,
    display_name: String,
    profile_url: String,
    status: String,
    since: String,
}

struct Network {
    platform: &'static str,
    kind: &'static str,
}

#[derive(Template)]
#[template(path = "dashboard/accounts.html")]
struct AccountsPage {
    frame: Frame,
    accounts: Vec<AccountRow>,
    networks: Vec<Network>,
    can_write: bool,
    error: Option<String>,
    error_param: String,
}

async fn accounts_page(state: &AppState, dash: &Dash, error: Option<ApiError>) -> Response {
    let Auth(p, ..) = match Auth::<need::AccountsRead>::of(dash.principal.clone()) {
        Ok(a) => a,
        Err(e) => return error_page(e),
    };
    let app = state.app();
    let now = state.clock().now_ms();
    let accounts = match app.accounts().list(&p.caller(), 50, 0).await {
        Ok(a) => a,
        Err(e) => return error_page(e.into()),
    };
    let status = super::status_of(error.as_ref());
    let page = AccountsPage {
        frame: dash.frame("accounts"),
        accounts: accounts
            .items
            .iter()
            .map(|a| {
                let o = crier_store::views::AccountObject::from(a);
                AccountRow {
                    id: o.id,
                    platform: o.platform,
                    handle: o.handle,
                    display_name: o.display_name.unwrap_or_default(),
                    profile_url: o.profile_url.unwrap_or_default(),
                    status: o.status,
                    since: when(Some(a.created_at), now),
                }
            })
            .collect(),
        networks: app
            .networks()
            .platforms()
            .filter_map(|platform| {
                let kind = match app.networks().get(platform)?.connect_kind() {
                    ConnectKind::Instant => "direct",
                    ConnectKind::Credentials => "credentials",
                    ConnectKind::OAuth { .. } => "oauth",
                };
                Some(Network { platform, kind })
            })
            .collect(),
        can_write: p.require(crier_core::Scope::AccountsWrite).is_ok(),
        error_param: error
            .as_ref()
            .and_then(|e| e.param.clone())
            .unwrap_or_default(),
        error: error.map(|e| e.message.to_string()),
    };
    // Connecting an account redirects the form to its network.
    let mut resp = (status, render(&page)).into_response();
    super::allow_form_redirects(&mut resp, None);
    resp
}

pub async fn page(State(state): State<AppState>, dash: Dash) -> Response {
    accounts_page(&state, &dash, None).await
}

fn redirect_uri(state: &AppState, platform: &str) -> String {
    format!(
        "{}/app/accounts/callback/{platform}",
        state.config().public_url.trim_end_matches('/')
    )
}

/// Connects an account: at once (sandbox, Bluesky), or by sending the user to the network.
pub async fn connect(
    State(state): State<AppState>,
    Path(platform): Path<String>,
    Submitted { dash, form }: Submitted,
) -> Response {
    let result = async {
        let Auth(p, ..) = Auth::<need::AccountsWrite>::of(dash.principal.clone())?;
        let app = state.app();
        let kind = app
            .networks()
            .get(&platform)
            .map(|n| n.connect_kind())
            .ok_or_else(|| ApiError::not_found("platform", &platform))?;
        if let ConnectKind::OAuth { .. } = kind {
            let started = app
                .connections()
                .start(
                    &p.caller(),
                    &platform,
                    Some(&redirect_uri(&state, &platform)),
                    form.text("instance"),
                )
                .await?
                .ok_or_else(|| ApiError::internal("an OAuth network gave no URL"))?;
            return Ok(Redirect::to(&started.url).into_response());
        }
        let finish = Finish {
            handle: form.text("handle").map(str::to_owned),
            identifier: form.text("identifier").map(str::to_owned),
            app_password: form.text("app_password").map(str::to_owned),
            service: form.text("service").map(str::to_owned),
            ..Finish::default()
        };
        app.connections()
            .finish(&p.caller(), &platform, finish)
            .await?;
        Ok::<_, ApiError>(Redirect::to("/app/accounts").into_response())
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => accounts_page(&state, &dash, Some(e)).await,
    }
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Where an OAuth network sends the user back: finishes the connection with `code` and
/// `state` (single use, bound to this workspace; checked by the connection rules).
pub async fn callback(
    State(state): State<AppState>,
    dash: Dash,
    Path(platform): Path<String>,
    Query(q): Query<Callback>,
) -> Response {
    if let Some(e) = q.error {
        let why = q.error_description.unwrap_or(e);
        let e = ApiError::invalid(
            "code",
            format!("The network did not connect the account: {why}"),
        );
        return accounts_page(&state, &dash, Some(e)).await;
    }
    let result = async {
        let Auth(p, ..) = Auth::<need::AccountsWrite>::of(dash.principal.clone())?;
        let finish = Finish {
            code: q.code,
            state: q.state,
            ..Finish::default()
        };
        state
            .app()
            .connections()
            .finish(&p.caller(), &platform, finish)
            .await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/app/accounts").into_response(),
        Err(e) => accounts_page(&state, &dash, Some(e)).await,
    }
}

pub async fn disconnect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Submitted { dash, form: _ }: Submitted,
) -> Response {
    let result = async {
        let Auth(p, ..) = Auth::<need::AccountsWrite>::of(dash.principal.clone())?;
        state.app().accounts().disconnect(&p.caller(), &id).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/app/accounts").into_response(),
        Err(e) => accounts_page(&state, &dash, Some(e)).await,
    }
}
