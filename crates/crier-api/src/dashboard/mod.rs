//! The dashboard: server-rendered pages (askama templates in `templates/dashboard/`, a little
//! plain JavaScript and CSS in `static/`, all inside the binary) over the same rules as the API.
//! Pages call the application layer, and for keys the API's own handlers with the session's
//! principal ([`crate::auth::Auth::of`]), so no rule is written twice.
//!
//! Sessions live in the `crier_session` cookie: HttpOnly, `SameSite=Strict`, and when the public
//! URL is https `Secure` and named `__Host-crier_session`, ending with the session. Every
//! state-changing form carries the session's CSRF token (`_csrf`), and a request whose `Origin`
//! is not this server is refused. The workspace a session works in is the `crier_ws` cookie
//! (default: the user's first); a browser that signed in before is known to the account by
//! `crier_browser` ([`crate::auth::browsers`]).

mod account;
mod accounts;
mod analytics;
mod charts;
mod device;
mod feeds;
mod inline;
pub mod keys;
mod media;
mod members;
mod oauth;
mod posts;
mod queue;
mod webhooks;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use crier_app::users::{ActiveSession, Seat};
use crier_core::KeyDigest;

use crate::AppState;
use crate::auth::Principal;
use crate::auth::cache::KeyRecord;
use crate::error::ApiError;

pub const SESSION_COOKIE: &str = "crier_session";
pub const WORKSPACE_COOKIE: &str = "crier_ws";
/// Dashboard forms are small; anything bigger is refused before it is read.
const MAX_FORM: usize = 64 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(account::login_page).post(account::login))
        .route("/signup", get(account::signup_page).post(account::signup))
        .route("/logout", post(account::logout))
        .route("/app", get(home))
        .route("/app/account", get(account::page))
        .route("/app/account/password", post(account::change_password))
        .route(
            "/app/account/logout-everywhere",
            post(account::logout_everywhere),
        )
        .route("/app/workspace", post(account::switch_workspace))
        .route("/app/workspaces", post(account::create_workspace))
        .route("/app/workspace/rename", post(account::rename_workspace))
        .route("/app/invitations/accept", post(account::accept_invitation))
        .route("/app/keys", get(keys::page).post(keys::create))
        .route("/app/keys/{id}", get(keys::show))
        .route("/app/keys/{id}/revoke", post(keys::revoke))
        .route("/app/requests", get(keys::lookup))
        .route("/app/keys/{id}/rotate", post(keys::rotate))
        .route("/app/apps/{id}/revoke", post(keys::revoke_app))
        .route("/app/members", get(members::page))
        .route("/app/members/invite", post(members::invite))
        .route("/app/members/{id}/role", post(members::change_role))
        .route("/app/members/{id}/remove", post(members::remove))
        .route(
            "/app/invitations/{id}/revoke",
            post(members::revoke_invitation),
        )
        .route("/app/accounts", get(accounts::page))
        .route("/app/accounts/connect/{platform}", post(accounts::connect))
        .route("/app/accounts/callback/{platform}", get(accounts::callback))
        .route("/app/accounts/{id}/disconnect", post(accounts::disconnect))
        .route("/app/try", get(try_page))
        .route("/app/webhooks", get(webhooks::page).post(webhooks::create))
        .route("/app/webhooks/{id}", get(webhooks::show))
        .route("/app/webhooks/{id}/{action}", post(webhooks::act))
        .route("/app/feeds", get(feeds::page).post(feeds::create))
        .route("/app/feeds/{id}", get(feeds::show))
        .route("/app/feeds/{id}/{action}", post(feeds::act))
        .route("/app/queue", get(queue::page).post(queue::save))
        .route("/app/analytics", get(analytics::page))
        .route("/app/posts", get(posts::page).post(posts::create))
        .route("/app/posts/new", get(posts::compose))
        .route("/app/posts/calendar", get(posts::calendar))
        .route("/app/posts/validate", post(posts::validate))
        .route("/app/media/upload-url", post(media::upload_url))
        .route("/app/media/{id}/confirm", post(media::confirm))
        .route("/app/posts/{id}", get(posts::show))
        .route("/app/posts/{id}/{action}", post(posts::act))
        .route("/device", get(device::page).post(device::decide))
        .route("/oauth/authorize", get(oauth::page).post(oauth::decide))
        .route("/static/dashboard.css", get(css))
        .route("/static/dashboard.js", get(js))
        .layer(DefaultBodyLimit::max(MAX_FORM))
}

async fn home(session: Option<Dash>) -> Redirect {
    match session {
        Some(_) => Redirect::to("/app/keys"),
        None => Redirect::to("/login"),
    }
}

async fn css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../static/dashboard.css"),
    )
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/dashboard.js"),
    )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// A signed-in request: the session, where it acts, and the principal the API's handlers take.
#[derive(Clone)]
pub struct Dash {
    pub session: ActiveSession,
    pub seat: Seat,
    pub workspaces: Vec<crier_store::Membership>,
    pub principal: Principal,
    /// The path asked for (to come back to after signing in).
    pub path: String,
}

impl Dash {
    pub fn csrf(&self) -> &str {
        &self.session.session.csrf
    }

    /// Whether `given` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        KeyDigest::of(given).ct_eq(&KeyDigest::of(self.csrf()))
    }

    /// The seat in workspace `ws` (an id a form names), if the user is a member there.
    pub fn seat_in(&self, ws: &str) -> Option<Seat> {
        self.workspaces
            .iter()
            .find(|m| m.workspace.id.as_str() == ws)
            .map(|m| Seat {
                workspace: m.workspace.clone(),
                role: m.role,
            })
    }

    /// What every page's frame shows: who is signed in, where, and the other workspaces.
    pub fn frame(&self, active: &'static str) -> Frame {
        Frame {
            active,
            user_name: self.session.user.name.clone(),
            user_email: self.session.user.email.clone(),
            workspace_id: self.seat.workspace.id.to_string(),
            workspace_name: self.seat.workspace.name.clone(),
            role: self.seat.role.as_str(),
            workspaces: self
                .workspaces
                .iter()
                .map(|m| (m.workspace.id.to_string(), m.workspace.name.clone()))
                .collect(),
            csrf: self.csrf().to_owned(),
            admin: self.seat.role.administers(),
        }
    }
}

/// The page frame's data (see `templates/dashboard/base.html`).
pub struct Frame {
    pub active: &'static str,
    pub user_name: String,
    pub user_email: String,
    pub workspace_id: String,
    pub workspace_name: String,
    pub role: &'static str,
    pub workspaces: Vec<(String, String)>,
    pub csrf: String,
    pub admin: bool,
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Sends a signed-out visitor to the login page, and back here after.
pub struct ToLogin(String);

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        let next: String = url::form_urlencoded::byte_serialize(self.0.as_bytes()).collect();
        Redirect::to(&format!("/login?next={next}")).into_response()
    }
}

impl FromRequestParts<AppState> for Dash {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let to_login = || ToLogin(path.clone()).into_response();
        let Some(token) = dashboard_cookie_in(state, &parts.headers, SESSION_COOKIE) else {
            return Err(to_login());
        };
        let users = state.app().users();
        let session = match users.session(token).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(to_login()),
            Err(e) => return Err(error_page(ApiError::from(e))),
        };
        let workspaces = users
            .memberships(&session.user.id)
            .await
            .map_err(|e| error_page(e.into()))?;
        let wanted = dashboard_cookie_in(state, &parts.headers, WORKSPACE_COOKIE);
        let m = wanted
            .and_then(|w| workspaces.iter().find(|m| m.workspace.id.as_str() == w))
            .or_else(|| workspaces.first());
        let Some(m) = m else {
            return Err(error_page(ApiError::new(
                crier_core::ErrorCode::ForbiddenScope,
                "You belong to no workspace: ask an owner or admin for an invitation link.",
            )));
        };
        let seat = Seat {
            workspace: m.workspace.clone(),
            role: m.role,
        };
        let plan = state.plan(&seat.workspace.plan).ok_or_else(|| {
            error_page(ApiError::internal("the workspace's plan is not configured"))
        })?;
        let principal = Principal::new(Arc::new(KeyRecord::for_session(
            &session.session,
            &seat.workspace,
            seat.role,
            plan,
        )));
        Ok(Dash {
            session,
            seat,
            workspaces,
            principal,
            path,
        })
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Dash {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Dash as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

/// A submitted form (`application/x-www-form-urlencoded`), repeated names kept.
#[derive(Default)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    /// The form's fields; one with the NUL character (`%00`) anywhere is refused, as in JSON
    /// bodies (see `extract::parse_json`): no field takes it.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let fields: Vec<(String, String)> =
            url::form_urlencoded::parse(body).into_owned().collect();
        if let Some((name, _)) = fields
            .iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::invalid(
                name.clone(),
                format!("`{name}` contains the NUL character, which no field takes."),
            ));
        }
        Ok(Self(fields))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value, trimmed; `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A signed-in user's form submission, checked: the session ([`Dash`]), the request's
/// `Origin` (this server's, or none), the body within the dashboard's limit, and the
/// session's CSRF token in `_csrf`. What every state-changing page handler takes.
pub struct Submitted {
    pub dash: Dash,
    pub form: FormData,
}

impl axum::extract::FromRequest<AppState> for Submitted {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let dash =
            <Dash as FromRequestParts<AppState>>::from_request_parts(&mut parts, state).await?;
        let headers = parts.headers.clone();
        let req = axum::extract::Request::from_parts(parts, body);
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| error_page(crate::extract::payload_too_large()))?;
        let form = FormData::parse(&body).map_err(error_page)?;
        check_form(&dash, &headers, &form)?;
        Ok(Self { dash, form })
    }
}

/// A signed-in page script's JSON call (the composer's preflight and uploads): the session, the
/// request's `Origin` (this server's, or none), the body within the dashboard's limit, and the
/// session's CSRF token in `X-CSRF-Token`. Refusals are the API's JSON error envelope.
pub struct Scripted {
    pub dash: Dash,
    pub body: axum::body::Bytes,
}

impl axum::extract::FromRequest<AppState> for Scripted {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let dash =
            <Dash as FromRequestParts<AppState>>::from_request_parts(&mut parts, state).await?;
        same_origin(&parts.headers)?;
        let token = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !dash.csrf_matches(token) {
            return Err(ApiError::new(
                crier_core::ErrorCode::ForbiddenScope,
                "The security token does not match your session; reload the page.",
            )
            .into_response());
        }
        let req = axum::extract::Request::from_parts(parts, body);
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| crate::extract::payload_too_large().into_response())?;
        Ok(Self { dash, body })
    }
}

/// Refuses a state change that does not carry the session's CSRF token, or that comes from
/// another site's page (`Origin` not this server's).
#[allow(clippy::result_large_err)] // the refusal is the page a handler returns at once
fn check_form(dash: &Dash, headers: &HeaderMap, form: &FormData) -> Result<(), Response> {
    same_origin(headers)?;
    if !dash.csrf_matches(form.get("_csrf").unwrap_or("")) {
        return Err(error_page(ApiError::new(
            crier_core::ErrorCode::ForbiddenScope,
            "This form has expired (its security token does not match your session). Reload \
             the page and try again.",
        )));
    }
    Ok(())
}

/// `403` when the request's `Origin` names another site than the `Host` it was sent to.
#[allow(clippy::result_large_err)] // the refusal is the page a handler returns at once
pub fn same_origin(headers: &HeaderMap) -> Result<(), Response> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, h)| h)
        .unwrap_or("\u{0}");
    if origin_host.eq_ignore_ascii_case(host) {
        return Ok(());
    }
    Err(error_page(ApiError::new(
        crier_core::ErrorCode::ForbiddenScope,
        "This form was sent from another site.",
    )))
}

/// A local path to return to after signing in; anything else (another site, `//host`) is `/app`.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        // Visible ASCII only: a line break or a control character cannot be a `Location`
        // (the redirect after signing in answered 500 for `/app%0A`).
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            p.to_owned()
        }
        _ => "/app".into(),
    }
}

/// Where a dashboard cookie is sent: the browser's sign-in cookie to the sign-in form only,
/// the others everywhere.
fn cookie_path(name: &str) -> &'static str {
    if name == crate::auth::browsers::COOKIE {
        "/login"
    } else {
        "/"
    }
}

/// Whether this install is served over https (its cookies are then `Secure` and prefixed).
fn secure(state: &AppState) -> bool {
    state.config().public_url.starts_with("https://")
}

/// A dashboard cookie's name on this install. Over https it carries the prefix browsers hold
/// it to: `__Host-` (set by this host only, over https, for every path) or, for a cookie of
/// one path, `__Secure-` (over https): a sibling subdomain or a network attacker on plain http
/// cannot plant a session of their own choosing in a user's browser.
fn cookie_name(state: &AppState, name: &str) -> String {
    match (secure(state), cookie_path(name)) {
        (false, _) => name.to_owned(),
        (true, "/") => format!("__Host-{name}"),
        (true, _) => format!("__Secure-{name}"),
    }
}

/// The value of the dashboard cookie `name` in the request, under its name on this install.
pub fn dashboard_cookie_in<'a>(
    state: &AppState,
    headers: &'a HeaderMap,
    name: &str,
) -> Option<&'a str> {
    cookie(headers, &cookie_name(state, name))
}

/// A dashboard cookie: HttpOnly, `SameSite=Strict`, `Secure` and prefixed ([`cookie_name`])
/// when the public URL is https.
fn dashboard_cookie(state: &AppState, name: &str, value: &str, max_age_s: i64) -> HeaderValue {
    let secure = if secure(state) { "; Secure" } else { "" };
    let path = cookie_path(name);
    let name = cookie_name(state, name);
    HeaderValue::try_from(format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .expect("tokens and ids are valid header values")
}

/// The `Set-Cookie` value of a session cookie (empty `token`: delete it).
pub fn session_cookie(state: &AppState, token: &str, max_age_s: i64) -> HeaderValue {
    dashboard_cookie(state, SESSION_COOKIE, token, max_age_s)
}

pub fn workspace_cookie(state: &AppState, ws: &str) -> HeaderValue {
    dashboard_cookie(state, WORKSPACE_COOKIE, ws, 31_536_000)
}

/// The `Set-Cookie` value that makes this browser known to the account it signed in to
/// ([`crate::auth::browsers`]); sent only to the sign-in form.
pub fn browser_cookie(state: &AppState, value: &str) -> HeaderValue {
    let max_age_s = crate::auth::browsers::LIFETIME_MS / 1000;
    dashboard_cookie(state, crate::auth::browsers::COOKIE, value, max_age_s)
}

#[derive(Template)]
#[template(path = "dashboard/error.html")]
struct ErrorPage {
    status: u16,
    code: String,
    message: String,
    request_id: String,
}

/// The status of a page that shows `error` (200 without one).
pub fn status_of(error: Option<&ApiError>) -> StatusCode {
    error
        .and_then(|e| StatusCode::from_u16(e.code.http_status()).ok())
        .unwrap_or(StatusCode::OK)
}

/// An error as a page, with the status and request id the API would give.
pub fn error_page(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let page = ErrorPage {
        status: status.as_u16(),
        code: e.code.as_str().to_owned(),
        message: e.message.to_string(),
        request_id: crate::error::current_request_id(),
    };
    (status, render(&page)).into_response()
}

/// What dashboard pages may load, and where their scripts and forms may send data: this
/// server only. With `connect-src 'self'`, the "Try it" console cannot send a key anywhere else
/// even if a script were injected; no inline scripts run at all; with `form-action 'self'`,
/// injected markup cannot post a form (a password, a CSRF token) to another site. The two
/// pages whose forms answer with a redirect to another site widen it
/// ([`allow_form_redirects`]).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Lets the forms of `resp`'s page send the browser to another site: connecting an account
/// redirects to its network, a consent to the client's redirect URI, and browsers apply
/// `form-action` to the redirects that follow a submission. `scheme`: a private-use scheme
/// the redirect may also take (`com.example.app:`).
pub fn allow_form_redirects(resp: &mut Response, scheme: Option<&str>) {
    let extra = scheme.map(|s| format!(" {s}:")).unwrap_or_default();
    let policy = CONTENT_SECURITY_POLICY.replace(
        "form-action 'self';",
        &format!("form-action 'self' https: http:{extra};"),
    );
    if let Ok(v) = HeaderValue::try_from(policy) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// Lets a page (the composer) send upload bytes to the media store and show what it stored,
/// when the store is elsewhere (S3, or a public URL other than the page's).
pub fn allow_media(state: &AppState, resp: &mut Response) {
    let Some(origin) = state.app().media_settings().storage.origin() else {
        return;
    };
    let policy = CONTENT_SECURITY_POLICY
        .replace(
            "connect-src 'self'",
            &format!("connect-src 'self' {origin}"),
        )
        .replace("img-src 'self'", &format!("img-src 'self' {origin}"));
    if let Ok(v) = HeaderValue::try_from(policy) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// Renders a page, never cached (pages show secrets once, and per-user data), never framed.
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::X_FRAME_OPTIONS, "DENY"),
                (header::REFERRER_POLICY, "same-origin"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a dashboard template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/try.html")]
struct TryPage {
    frame: Frame,
    operations: Vec<(String, String)>,
}

/// The "Try it" console: every read-only operation of the API, from its OpenAPI description.
async fn try_page(dash: Dash) -> Response {
    static OPERATIONS: std::sync::LazyLock<Vec<(String, String)>> =
        std::sync::LazyLock::new(|| {
            let doc = crate::routes::openapi();
            let mut ops: Vec<(String, String)> = doc["paths"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(path, _)| path.starts_with("/v1/"))
                .filter_map(|(path, item)| {
                    let get = item.get("get")?;
                    let summary = get["summary"].as_str().unwrap_or("");
                    let summary = summary.lines().next().unwrap_or("").to_owned();
                    Some((path.clone(), summary))
                })
                .collect();
            ops.sort();
            ops
        });
    render(&TryPage {
        frame: dash.frame("try"),
        operations: OPERATIONS.clone(),
    })
}

/// A short relative description of a time (`in 3 days`, `2 hours ago`), for lists.
pub fn when(ms: Option<i64>, now: i64) -> String {
    let Some(t) = ms else {
        return "never".into();
    };
    let d = (t - now) / 1000;
    let (n, unit) = match d.unsigned_abs() {
        s if s < 90 => {
            return if d > 0 {
                "in a minute".into()
            } else {
                "just now".into()
            };
        }
        s if s < 5400 => (s / 60, "minutes"),
        s if s < 129_600 => (s / 3600, "hours"),
        s => (s / 86_400, "days"),
    };
    if d >= 0 {
        format!("in {n} {unit}")
    } else {
        format!("{n} {unit} ago")
    }
}

/// The state for handlers (re-exported for the page modules).
pub type St = State<AppState>;
