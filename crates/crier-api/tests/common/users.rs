//! Helpers shared by the session, device-login and dashboard suites (`auth_*.rs`,
//! `dashboard_*.rs`): people made through the application layer (as the operator's CLI makes
//! them), logins over HTTP, a signed-in browser and its forms, storage counts.

use crier_core::Role;
use crier_store::{User, Workspace};
use serde_json::json;

use super::{Response, TestApp};

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// A user with `role` in the app's workspace.
pub async fn user(app: &TestApp, email: &str, role: Role) -> User {
    user_in(app, &app.workspace.clone(), email, role).await
}

/// A user with `role` in `ws`.
pub async fn user_in(app: &TestApp, ws: &Workspace, email: &str, role: Role) -> User {
    app.state
        .app()
        .users()
        .create(email, "Ada Lovelace", PASSWORD, Some((&ws.id, role)))
        .await
        .unwrap()
}

/// `POST /v1/auth/login` from `ip`.
pub async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> Response {
    app.post("/v1/auth/login")
        .from_ip(ip)
        .json(json!({"email": email, "password": password}))
        .send()
        .await
}

/// A session token of `user` (who has [`PASSWORD`]), logged in from 127.0.0.1.
pub async fn session(app: &TestApp, user: &User) -> String {
    let r = login_from(app, "127.0.0.1", &user.email, PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["token"].as_str().unwrap().to_owned()
}

/// How many rows a query returns (on a connection of its own, bypassing the store).
pub async fn count(app: &TestApp, sql: &'static str) -> usize {
    app.raw_texts(sql).await.len()
}

/// Every key row in the store, any workspace: `id|workspace|scopes`.
pub async fn all_keys(app: &TestApp) -> Vec<Option<String>> {
    app.raw_texts("SELECT id || '|' || workspace_id || '|' || scopes FROM api_keys ORDER BY id")
        .await
}

/// The error envelope without its request id (which differs between any two responses).
pub fn without_request_id(r: &Response) -> serde_json::Value {
    let mut body = r.body.clone();
    body["error"]
        .as_object_mut()
        .expect("an error envelope")
        .remove("request_id");
    body
}

// ---- the dashboard: a signed-in browser and its forms ----

/// The form body of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A signed-in browser: its cookies and the CSRF token of its session.
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

pub fn cookie_of(r: &Response, name: &str) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

pub async fn sign_in(app: &TestApp, email: &str) -> Browser {
    let r = app
        .post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(form(&[
            ("email", email),
            ("password", PASSWORD),
            ("next", "/app/keys"),
        ]))
        .send()
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let cookie = cookie_of(&r, "crier_session").expect("a session cookie");
    let page = app.get("/app/keys").header("cookie", &cookie).send().await;
    assert_eq!(page.status, 200, "{}", page.text);
    let csrf = page
        .text
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF token in the page")
        .to_owned();
    Browser { cookie, csrf }
}

pub async fn submit(app: &TestApp, b: &Browser, path: &str, pairs: &[(&str, &str)]) -> Response {
    app.post(path)
        .header("cookie", &b.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .raw(form(pairs))
        .send()
        .await
}

/// The write inside whose transaction [`remove_member_inside`] removes the member.
#[derive(Debug, Clone, Copy)]
pub enum Redeeming {
    /// An app's authorization code marked used (`app_codes`).
    AppCode,
    /// A device login marked redeemed (`device_logins`).
    DeviceLogin,
}

/// Installs a trigger that deletes the membership of the user a redemption acts for, inside
/// the redemption's own transaction: the member leaves between the endpoint's check of their
/// role and the write of what acts for them.
pub async fn remove_member_inside(app: &TestApp, redeeming: Redeeming) {
    use crier_store::Backend::{Postgres, Sqlite};
    const FUNCTION: &str = "CREATE FUNCTION remove_member() RETURNS trigger AS $$
         BEGIN
             DELETE FROM memberships WHERE user_id = NEW.user_id;
             RETURN NEW;
         END $$ LANGUAGE plpgsql;";
    let sql = match (app.backend(), redeeming) {
        (Postgres, Redeeming::AppCode) => {
            "CREATE TRIGGER remove_member AFTER UPDATE ON app_codes
                 FOR EACH ROW WHEN (NEW.used_at IS NOT NULL) EXECUTE FUNCTION remove_member();"
        }
        (Postgres, Redeeming::DeviceLogin) => {
            "CREATE TRIGGER remove_member AFTER UPDATE ON device_logins
                 FOR EACH ROW WHEN (NEW.status = 'redeemed') EXECUTE FUNCTION remove_member();"
        }
        (Sqlite, Redeeming::AppCode) => {
            "CREATE TRIGGER remove_member AFTER UPDATE ON app_codes
             WHEN NEW.used_at IS NOT NULL BEGIN
                 DELETE FROM memberships WHERE user_id = NEW.user_id;
             END;"
        }
        (Sqlite, Redeeming::DeviceLogin) => {
            "CREATE TRIGGER remove_member AFTER UPDATE ON device_logins
             WHEN NEW.status = 'redeemed' BEGIN
                 DELETE FROM memberships WHERE user_id = NEW.user_id;
             END;"
        }
    };
    if app.backend() == Postgres {
        app.raw_execute(FUNCTION).await;
    }
    app.raw_execute(sql).await;
}
