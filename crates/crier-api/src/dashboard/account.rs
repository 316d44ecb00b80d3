//! Signing up and in, the user's own account (password, sessions), and workspaces.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use crier_app::users::SignUp;
use serde::Deserialize;

use super::{
    Dash, FormData, Frame, Submitted, error_page, local_path, render, same_origin, session_cookie,
    when, workspace_cookie,
};
use crate::AppState;
use crate::auth::ClientIp;
use crate::error::ApiError;

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    invite: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct LoginPage {
    next: String,
    email: String,
    error: Option<String>,
}

pub async fn login_page(State(state): State<AppState>, Query(q): Query<NextQuery>) -> Response {
    if state
        .app()
        .users()
        .first_sign_up_open()
        .await
        .unwrap_or(false)
    {
        return Redirect::to("/signup").into_response();
    }
    render(&LoginPage {
        next: local_path(q.next.as_deref()),
        email: String::new(),
        error: None,
    })
}

pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = same_origin(&headers) {
        return r;
    }
    let form = match FormData::parse(&body) {
        Ok(form) => form,
        Err(e) => return error_page(e),
    };
    let email = form.get("email").unwrap_or("").to_owned();
    let next = local_path(form.get("next"));
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match crate::routes::auth::sign_in(
        &state,
        ip,
        &email,
        form.get("password").unwrap_or(""),
        agent,
        super::dashboard_cookie_in(&state, &headers, crate::auth::browsers::COOKIE),
    )
    .await
    {
        Ok(s) => {
            let ttl = (s.session.expires_at - s.session.created_at) / 1000;
            // This browser is known to the account from now on.
            let now = state.clock().now_ms();
            let browser = crate::auth::browsers::issue(state.app().keyring(), &email, now);
            (
                axum::response::AppendHeaders([
                    (header::SET_COOKIE, session_cookie(&state, &s.token, ttl)),
                    (header::SET_COOKIE, super::browser_cookie(&state, &browser)),
                ]),
                Redirect::to(&next),
            )
                .into_response()
        }
        Err(e) => {
            let status = axum::http::StatusCode::from_u16(e.code.http_status())
                .unwrap_or(axum::http::StatusCode::BAD_REQUEST);
            let page = LoginPage {
                next,
                email,
                error: Some(e.message.to_string()),
            };
            (status, render(&page)).into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/signup.html")]
struct SignupPage {
    first_user: bool,
    invite: String,
    invite_workspace: String,
    invite_role: String,
    email: String,
    name: String,
    workspace_name: String,
    error: Option<String>,
    error_param: String,
    signed_in_csrf: Option<String>,
}

pub async fn signup_page(
    State(state): State<AppState>,
    Query(q): Query<NextQuery>,
    dash: Option<Dash>,
) -> Response {
    signup_form(
        &state,
        q.invite.as_deref().unwrap_or(""),
        dash.as_ref(),
        &FormData::default(),
        None,
    )
    .await
}

async fn signup_form(
    state: &AppState,
    invite: &str,
    dash: Option<&Dash>,
    form: &FormData,
    error: Option<ApiError>,
) -> Response {
    let users = state.app().users();
    let first_user = match users.first_sign_up_open().await {
        Ok(v) => v,
        Err(e) => return error_page(e.into()),
    };
    let (invite_workspace, invite_role) = if invite.is_empty() {
        (String::new(), String::new())
    } else {
        match users.invitation(invite).await {
            Ok((inv, ws)) => (ws.name, inv.role.as_str().to_owned()),
            Err(e) => return error_page(e.into()),
        }
    };
    if !first_user && invite.is_empty() {
        return error_page(ApiError::new(
            crier_core::ErrorCode::ForbiddenScope,
            "Sign-up is by invitation: ask an owner or admin of a workspace for an invitation \
             link, or sign in.",
        ));
    }
    let status = super::status_of(error.as_ref());
    let page = SignupPage {
        first_user,
        invite: invite.to_owned(),
        invite_workspace,
        invite_role,
        email: form.get("email").unwrap_or("").to_owned(),
        name: form.get("name").unwrap_or("").to_owned(),
        workspace_name: form.get("workspace_name").unwrap_or("").to_owned(),
        error_param: error
            .as_ref()
            .and_then(|e| e.param.clone())
            .unwrap_or_default(),
        error: error.map(|e| e.message.to_string()),
        signed_in_csrf: dash.map(|d| d.csrf().to_owned()),
    };
    (status, render(&page)).into_response()
}

pub async fn signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = same_origin(&headers) {
        return r;
    }
    let form = match FormData::parse(&body) {
        Ok(form) => form,
        Err(e) => return error_page(e),
    };
    let invite = form.text("invite").unwrap_or("").to_owned();
    // Sign-ups hash a password: they share the failed-login budget of the address.
    let now = state.clock().now_ms();
    if !state.auth().take_address(ip, now) {
        let e = ApiError::new(
            crier_core::ErrorCode::RateLimited,
            "Too many attempts from this address; wait a minute.",
        );
        return signup_form(&state, &invite, None, &form, Some(e)).await;
    }
    let input = SignUp {
        email: form.get("email").unwrap_or("").to_owned(),
        name: form.get("name").unwrap_or("").to_owned(),
        password: form.get("password").unwrap_or("").to_owned(),
        workspace_name: form.text("workspace_name").map(str::to_owned),
        invitation: (!invite.is_empty()).then(|| invite.clone()),
    };
    let users = state.app().users();
    let (user, ws) = match users.sign_up(&input).await {
        Ok(v) => v,
        Err(e) => return signup_form(&state, &invite, None, &form, Some(e.into())).await,
    };
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let shown_ip = ip.map(|i| i.to_string()).unwrap_or_default();
    let email = user.email.clone();
    match users.start_session(user, agent, &shown_ip).await {
        Ok(s) => {
            let ttl = (s.session.expires_at - s.session.created_at) / 1000;
            // The browser that signed up is known to the account from now on.
            let now = state.clock().now_ms();
            let browser = crate::auth::browsers::issue(state.app().keyring(), &email, now);
            (
                axum::response::AppendHeaders([
                    (header::SET_COOKIE, session_cookie(&state, &s.token, ttl)),
                    (header::SET_COOKIE, workspace_cookie(&state, ws.id.as_str())),
                    (header::SET_COOKIE, super::browser_cookie(&state, &browser)),
                ]),
                Redirect::to("/app/keys"),
            )
                .into_response()
        }
        Err(e) => error_page(e.into()),
    }
}

/// A signed-in user accepts an invitation link.
pub async fn accept_invitation(
    State(state): State<AppState>,
    Submitted { dash, form }: Submitted,
) -> Response {
    match state
        .app()
        .users()
        .accept_invitation(&dash.session.user.id, form.get("invite").unwrap_or(""))
        .await
    {
        Ok(inv) => (
            [(
                header::SET_COOKIE,
                workspace_cookie(&state, inv.workspace_id.as_str()),
            )],
            Redirect::to("/app/keys"),
        )
            .into_response(),
        Err(e) => error_page(e.into()),
    }
}

pub async fn logout(
    State(state): State<AppState>,
    Submitted { dash, form: _ }: Submitted,
) -> Response {
    if let Err(e) = state
        .app()
        .users()
        .end_session(&dash.session.session.id)
        .await
    {
        return error_page(e.into());
    }
    (
        [(header::SET_COOKIE, session_cookie(&state, "", 0))],
        Redirect::to("/login"),
    )
        .into_response()
}

struct SessionRow {
    created: String,
    expires: String,
    user_agent: String,
    ip: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "dashboard/account.html")]
struct AccountPage {
    frame: Frame,
    sessions: Vec<SessionRow>,
    notice: Option<String>,
    error: Option<String>,
}

async fn account_page(
    state: &AppState,
    dash: &Dash,
    notice: Option<String>,
    error: Option<ApiError>,
) -> Response {
    let now = state.clock().now_ms();
    let sessions = match state
        .app()
        .users()
        .open_sessions(&dash.session.user.id)
        .await
    {
        Ok(s) => s,
        Err(e) => return error_page(e.into()),
    };
    let status = super::status_of(error.as_ref());
    let page = AccountPage {
        frame: dash.frame("account"),
        sessions: sessions
            .iter()
            .map(|s| SessionRow {
                created: when(Some(s.created_at), now),
                expires: when(Some(s.expires_at), now),
                user_agent: s.user_agent.clone(),
                ip: s.ip.clone(),
                current: s.id == dash.session.session.id,
            })
            .collect(),
        notice,
        error: error.map(|e| e.message.to_string()),
    };
    (status, render(&page)).into_response()
}

pub async fn page(State(state): State<AppState>, dash: Dash) -> Response {
    account_page(&state, &dash, None, None).await
}

pub async fn change_password(
    State(state): State<AppState>,
    Submitted { dash, form }: Submitted,
) -> Response {
    let result = state
        .app()
        .users()
        .change_password(
            &dash.session,
            form.get("current_password").unwrap_or(""),
            form.get("new_password").unwrap_or(""),
        )
        .await;
    match result {
        Ok(()) => {
            account_page(
                &state,
                &dash,
                Some("Password changed; your other sessions have been signed out.".into()),
                None,
            )
            .await
        }
        Err(e) => account_page(&state, &dash, None, Some(e.into())).await,
    }
}

pub async fn logout_everywhere(
    State(state): State<AppState>,
    Submitted { dash, form: _ }: Submitted,
) -> Response {
    match state.app().users().end_other_sessions(&dash.session).await {
        Ok(n) => {
            account_page(
                &state,
                &dash,
                Some(format!("Signed out {n} other session(s).")),
                None,
            )
            .await
        }
        Err(e) => error_page(e.into()),
    }
}

/// Switches the workspace the dashboard works in (one the user belongs to).
pub async fn switch_workspace(
    State(state): State<AppState>,
    Submitted { dash, form }: Submitted,
) -> Response {
    let wanted = form.get("workspace").unwrap_or("");
    if !dash
        .workspaces
        .iter()
        .any(|m| m.workspace.id.as_str() == wanted)
    {
        return error_page(ApiError::not_found("workspace", wanted));
    }
    (
        [(header::SET_COOKIE, workspace_cookie(&state, wanted))],
        Redirect::to(&local_path(form.get("back"))),
    )
        .into_response()
}

/// Renames the workspace the dashboard works in (owners and admins).
pub async fn rename_workspace(
    State(state): State<AppState>,
    Submitted { dash, form }: Submitted,
) -> Response {
    match state
        .app()
        .users()
        .rename_workspace(&dash.seat, form.get("name").unwrap_or(""))
        .await
    {
        Ok(_) => Redirect::to("/app/account").into_response(),
        Err(e) => account_page(&state, &dash, None, Some(e.into())).await,
    }
}

pub async fn create_workspace(
    State(state): State<AppState>,
    Submitted { dash, form }: Submitted,
) -> Response {
    match state
        .app()
        .users()
        .create_workspace(&dash.session.user.id, form.get("name").unwrap_or(""))
        .await
    {
        Ok(ws) => (
            [(header::SET_COOKIE, workspace_cookie(&state, ws.id.as_str()))],
            Redirect::to("/app/keys"),
        )
            .into_response(),
        Err(e) => account_page(&state, &dash, None, Some(e.into())).await,
    }
}
