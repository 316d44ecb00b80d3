//! The OAuth consent page (`/oauth/authorize`, the authorization endpoint): a person signs in,
//! sees which app asks and where they will be sent back, picks the workspace and the
//! permissions (the "AI agent (drafts only)" preset ticked), and allows or denies. The rules
//! are `crier_app::oauth_server`; the token endpoint is `routes::oauth_server`.
//!
//! A bad request is refused on this page, never sent to the client's redirect (anyone may
//! register a client, so redirecting before the person answers would make crier an open
//! redirector); the person's answer goes back to the redirect with `state` and `iss`
//! (RFC 9207). The session cookie is `SameSite=Strict`, so a signed-in person arriving from
//! another site looks signed out: the page first sends them to itself once (a same-site
//! navigation, which carries the cookie) before asking them to sign in.

use askama::Template;
use axum::extract::{Query, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use crier_app::oauth_server::{Authorization, AuthorizeQuery, OAuthError, issuer};
use crier_core::{ErrorCode, ScopeSet};

use super::{Dash, Frame, Submitted, ToLogin, error_page, render};
use crate::AppState;
use crate::error::ApiError;

/// The query parameter of the one same-site hop (see the module).
const HOP: &str = "crier_hop";

/// The fields of an authorization request, carried through the consent form.
const FIELDS: [&str; 8] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
    "resource",
];

#[derive(Template)]
#[template(path = "dashboard/oauth_consent.html")]
struct ConsentPage {
    frame: Frame,
    client_name: String,
    client_id: String,
    metadata_client: bool,
    redirect_host: String,
    hidden: Vec<(&'static str, String)>,
    /// Each scope offered, and whether it is ticked.
    scopes: Vec<(&'static str, bool)>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/oauth_hop.html")]
struct HopPage {
    url: String,
}

fn base(state: &AppState) -> String {
    state.config().public_url.trim_end_matches('/').to_owned()
}

/// The client's redirect with `params` added to its query.
fn back_to(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return error_page(ApiError::invalid(
            "redirect_uri",
            "The redirect URI is invalid.",
        ));
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    Redirect::to(url.as_str()).into_response()
}

fn shown(e: OAuthError) -> Response {
    let code = match e.status {
        500 => ErrorCode::InternalError,
        503 => ErrorCode::UpstreamUnavailable,
        _ => ErrorCode::InvalidRequest,
    };
    error_page(ApiError::new(
        code,
        format!(
            "This app's sign-in request cannot be used: {}",
            e.description
        ),
    ))
}

/// The scopes offered (those asked for; all when none were) and which are ticked: the agent
/// preset's among them, or all of them when the preset has none of them.
fn offered(asked: ScopeSet) -> Vec<(&'static str, bool)> {
    let asked = if asked.is_empty() {
        ScopeSet::all()
    } else {
        asked
    };
    let preset: ScopeSet = super::keys::preset("ai_drafts")
        .unwrap_or_default()
        .iter()
        .copied()
        .collect();
    let ticked = match asked.difference(asked.difference(preset)) {
        s if s.is_empty() => asked,
        s => s,
    };
    asked
        .iter()
        .map(|s| (s.as_str(), ticked.contains(s)))
        .collect()
}

fn consent(
    dash: &Dash,
    auth: &Authorization,
    q: &AuthorizeQuery,
    error: Option<String>,
) -> Response {
    let hidden = FIELDS
        .iter()
        .zip([
            &q.response_type,
            &q.client_id,
            &q.redirect_uri,
            &q.state,
            &q.scope,
            &q.code_challenge,
            &q.code_challenge_method,
            &q.resource,
        ])
        .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
        .collect();
    let redirect = url::Url::parse(&auth.redirect_uri).ok();
    let redirect_host = redirect
        .as_ref()
        .map(|u| match u.host_str() {
            Some(h) => match u.port() {
                Some(p) => format!("{}://{h}:{p}", u.scheme()),
                None => format!("{}://{h}", u.scheme()),
            },
            None => format!("{}:", u.scheme()),
        })
        .unwrap_or_default();
    let page = ConsentPage {
        frame: dash.frame("keys"),
        client_name: auth.client.name.clone(),
        client_id: auth.client.id.clone(),
        metadata_client: auth.client.kind == crier_store::ClientKind::Metadata,
        redirect_host,
        hidden,
        scopes: offered(auth.scopes),
        error,
    };
    let status = match page.error {
        Some(_) => axum::http::StatusCode::BAD_REQUEST,
        None => axum::http::StatusCode::OK,
    };
    let mut resp = (status, render(&page)).into_response();
    // The form's answer redirects to the client, perhaps at a private-use scheme.
    let scheme = redirect
        .as_ref()
        .map(|u| u.scheme())
        .filter(|s| !matches!(*s, "http" | "https"));
    super::allow_form_redirects(&mut resp, scheme);
    resp
}

/// `GET /oauth/authorize`: the consent page.
pub async fn page(
    State(state): State<AppState>,
    dash: Option<Dash>,
    RawQuery(raw): RawQuery,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    let raw = raw.unwrap_or_default();
    if raw.len() > 8 * 1024 {
        return error_page(ApiError::invalid("query", "The request is too long."));
    }
    // Signed out, nothing is checked yet: checking may fetch a client's metadata document,
    // which only a signed-in person's request may make crier do.
    let Some(dash) = dash else {
        let hopped = url::form_urlencoded::parse(raw.as_bytes()).any(|(k, _)| k == HOP);
        let here = format!("/oauth/authorize?{raw}");
        if hopped {
            return ToLogin(here).into_response();
        }
        return render(&HopPage {
            url: format!("{here}&{HOP}=1"),
        });
    };
    let auth = match state
        .app()
        .oauth_server()
        .authorization(&base(&state), &q)
        .await
    {
        Ok(a) => a,
        Err(e) => return shown(e),
    };
    consent(&dash, &auth, &q, None)
}

/// `POST /oauth/authorize`: the person's answer.
pub async fn decide(
    State(state): State<AppState>,
    Submitted { dash, form }: Submitted,
) -> Response {
    let field = |k: &str| form.get(k).map(str::to_owned);
    let q = AuthorizeQuery {
        response_type: field("response_type"),
        client_id: field("client_id"),
        redirect_uri: field("redirect_uri"),
        state: field("state"),
        scope: field("scope"),
        code_challenge: field("code_challenge"),
        code_challenge_method: field("code_challenge_method"),
        resource: field("resource"),
    };
    let server = state.app().oauth_server();
    let auth = match server.authorization(&base(&state), &q).await {
        Ok(a) => a,
        Err(e) => return shown(e),
    };
    let answer = |params: &[(&str, &str)]| {
        let iss = issuer(&base(&state));
        let mut all = params.to_vec();
        all.push(("iss", &iss));
        if let Some(s) = &auth.state {
            all.push(("state", s));
        }
        back_to(&auth.redirect_uri, &all)
    };
    if form.get("decision") != Some("approve") {
        return answer(&[
            ("error", "access_denied"),
            ("error_description", "The person denied the request."),
        ]);
    }
    let Some(seat) = dash.seat_in(form.get("workspace").unwrap_or("")) else {
        return consent(
            &dash,
            &auth,
            &q,
            Some("Pick one of your workspaces.".into()),
        );
    };
    // Only what was offered can be granted: the scopes asked for (all, when none were).
    let asked = if auth.scopes.is_empty() {
        ScopeSet::all()
    } else {
        auth.scopes
    };
    let picked = match ScopeSet::parse_list(form.all("grant_scope")) {
        Ok(s) if s.is_subset_of(asked) => s,
        _ => {
            return consent(
                &dash,
                &auth,
                &q,
                Some("Pick permissions from the list.".into()),
            );
        }
    };
    match server
        .approve(&auth, &dash.session.user.id, &seat, picked)
        .await
    {
        Ok(code) => answer(&[("code", &code)]),
        Err(e) if e.error == "server_error" || e.error == "temporarily_unavailable" => {
            answer(&[("error", e.error), ("error_description", &e.description)])
        }
        Err(e) => consent(&dash, &auth, &q, Some(e.description.into_owned())),
    }
}
