//! Settings → Members: who is in the workspace and with what role, invitation links, and (for
//! owners and admins) the audit log of key events. The rules are `crier_app::users`.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use crier_core::Role;
use crier_core::ids::UserId;
use crier_store::Actor;

use super::{Dash, FormData, Frame, Submitted, error_page, render, when};
use crate::AppState;
use crate::error::ApiError;

struct MemberRow {
    id: String,
    name: String,
    email: String,
    role: &'static str,
    since: String,
    manageable: bool,
    me: bool,
}

struct InvitationRow {
    id: String,
    role: &'static str,
    email: String,
    expires: String,
}

struct AuditRow {
    when: String,
    actor: String,
    action: String,
    target: String,
}

#[derive(Template)]
#[template(path = "dashboard/members.html")]
struct MembersPage {
    frame: Frame,
    members: Vec<MemberRow>,
    invitations: Vec<InvitationRow>,
    audit: Vec<AuditRow>,
    roles: Vec<&'static str>,
    invite_link: Option<String>,
    error: Option<String>,
}

async fn members_page(
    state: &AppState,
    dash: &Dash,
    invite_link: Option<String>,
    error: Option<ApiError>,
) -> Response {
    let now = state.clock().now_ms();
    let users = state.app().users();
    let members = match users.members(&dash.seat).await {
        Ok(m) => m,
        Err(e) => return error_page(e.into()),
    };
    let admin = dash.seat.role.administers();
    let (invitations, audit) = if admin {
        let invitations = match users.open_invitations(&dash.seat).await {
            Ok(i) => i,
            Err(e) => return error_page(e.into()),
        };
        let audit = match state
            .store()
            .list_audit(&dash.seat.workspace.id, None)
            .await
        {
            Ok(a) => a,
            Err(e) => return error_page(e.into()),
        };
        (invitations, audit)
    } else {
        (Vec::new(), Vec::new())
    };
    let email_of = |id: &UserId| {
        members
            .iter()
            .find(|m| &m.user_id == id)
            .map(|m| m.email.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let status = super::status_of(error.as_ref());
    let page = MembersPage {
        frame: dash.frame("members"),
        members: members
            .iter()
            .map(|m| MemberRow {
                id: m.user_id.to_string(),
                name: m.name.clone(),
                email: m.email.clone(),
                role: m.role.as_str(),
                since: when(Some(m.created_at), now),
                manageable: dash.seat.role.manages(m.role),
                me: m.user_id == dash.session.user.id,
            })
            .collect(),
        invitations: invitations
            .iter()
            .map(|i| InvitationRow {
                id: i.id.to_string(),
                role: i.role.as_str(),
                email: i.email.clone().unwrap_or_default(),
                expires: when(Some(i.expires_at), now),
            })
            .collect(),
        audit: audit
            .iter()
            .filter(|a| a.action.starts_with("key."))
            .take(50)
            .map(|a| AuditRow {
                when: when(Some(a.created_at), now),
                actor: match &a.actor {
                    Actor::Key(k) => format!("key {k}"),
                    Actor::User(u) => email_of(u),
                    Actor::Cli => "operator (crier admin)".into(),
                },
                action: a.action.clone(),
                target: a.target_id.clone(),
            })
            .collect(),
        roles: Role::ALL
            .iter()
            .filter(|r| dash.seat.role.manages(**r))
            .map(|r| r.as_str())
            .collect(),
        invite_link,
        error: error.map(|e| e.message.to_string()),
    };
    (status, render(&page)).into_response()
}

pub async fn page(State(state): State<AppState>, dash: Dash) -> Response {
    members_page(&state, &dash, None, None).await
}

fn role(form: &FormData) -> Result<Role, ApiError> {
    form.get("role")
        .and_then(Role::parse)
        .ok_or_else(|| ApiError::invalid("role", "Pick owner, admin or member."))
}

pub async fn invite(
    State(state): State<AppState>,
    Submitted { dash, form }: Submitted,
) -> Response {
    let result = async {
        let role = role(&form)?;
        let (_, token) = state
            .app()
            .users()
            .invite(&dash.seat, &dash.session.user.id, role, form.text("email"))
            .await?;
        Ok::<_, ApiError>(token)
    }
    .await;
    match result {
        Ok(token) => {
            let base = state.config().public_url.trim_end_matches('/');
            let link = format!("{base}/signup?invite={token}");
            members_page(&state, &dash, Some(link), None).await
        }
        Err(e) => members_page(&state, &dash, None, Some(e)).await,
    }
}

fn user_id(id: &str) -> Result<UserId, ApiError> {
    UserId::parse(id).ok_or_else(|| ApiError::not_found("member", id))
}

pub async fn change_role(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Submitted { dash, form }: Submitted,
) -> Response {
    let result = async {
        let to = role(&form)?;
        let user = user_id(&id)?;
        state
            .app()
            .users()
            .change_role(&dash.seat, &user, to)
            .await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/app/members").into_response(),
        Err(e) => members_page(&state, &dash, None, Some(e)).await,
    }
}

pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Submitted { dash, form: _ }: Submitted,
) -> Response {
    let result = async {
        let user = user_id(&id)?;
        state
            .app()
            .users()
            .remove_member(&dash.seat, &dash.session.user.id, &user)
            .await?;
        Ok::<_, ApiError>(user)
    }
    .await;
    match result {
        Ok(user) if user == dash.session.user.id => Redirect::to("/app").into_response(),
        Ok(_) => Redirect::to("/app/members").into_response(),
        Err(e) => members_page(&state, &dash, None, Some(e)).await,
    }
}

pub async fn revoke_invitation(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Submitted { dash, form: _ }: Submitted,
) -> Response {
    match state.app().users().revoke_invitation(&dash.seat, &id).await {
        Ok(()) => Redirect::to("/app/members").into_response(),
        Err(e) => members_page(&state, &dash, None, Some(e.into())).await,
    }
}
