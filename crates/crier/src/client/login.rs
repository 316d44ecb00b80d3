//! `crier login` (device authorization, RFC 8628, against `POST /v1/auth/device`), `logout`
//! (the key revokes itself, then the profile is forgotten) and `whoami` (`GET /v1/me`).

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use crier_client::{ApiRequest, Client, ClientError};
use serde_json::{Value, json};

use super::profile::{self, Profile};
use super::{Ctx, Failure, Outcome, output};

/// What the key of a device login may do unless `--scopes` says otherwise: what the CLI's
/// commands need that any member may grant, so every user of a workspace can approve it.
/// Connecting accounts, changing webhooks and the queue need more: `--scopes`.
pub const DEFAULT_SCOPES: &[&str] = &[
    "posts:read",
    "posts:write",
    "posts:delete",
    "posts:publish",
    "media:read",
    "media:write",
    "accounts:read",
    "analytics:read",
    "queue:read",
    "webhooks:read",
    "ai:generate",
    "keys:read",
    "keys:write",
];

/// Waiting longer than RFC 8628's `slow_down` step after each such answer.
const SLOW_DOWN: Duration = Duration::from_secs(5);

#[derive(Args)]
pub struct LoginArgs {
    /// Scopes to ask for, comma-separated (default: what a workspace member may grant).
    #[arg(long, value_delimiter = ',')]
    scopes: Vec<String>,
    /// Do not open a browser (also CRIER_NO_BROWSER).
    #[arg(long, env = "CRIER_NO_BROWSER", value_parser = clap::builder::FalseyValueParser::new())]
    no_browser: bool,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this computer".to_owned())
}

pub async fn login(ctx: &Ctx, args: LoginArgs) -> Outcome {
    let scopes: Vec<String> = match args.scopes.is_empty() {
        true => DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        false => args.scopes,
    };
    let start = ApiRequest::post(
        "/v1/auth/device",
        json!({"client_name": format!("crier CLI on {}", hostname()), "scopes": scopes}),
    );
    if ctx.globals.dry_run {
        return ctx.print_dry_run(&start);
    }
    // Signing in needs no key; one from the environment or an old login is not sent.
    let anonymous = Client::new(ctx.client.base().as_str(), None, super::USER_AGENT)?;
    let codes = anonymous.send(&start).await?.body;
    let text = |k: &str| codes[k].as_str().unwrap_or_default().to_owned();
    let (device_code, user_code) = (text("device_code"), text("user_code"));
    let complete = match codes["verification_uri_complete"].as_str() {
        Some(u) => u.to_owned(),
        None => format!("{}?code={user_code}", text("verification_uri")),
    };
    eprintln!(
        "To sign in, open {complete}\nand check that it shows the code {user_code}, then approve.\n"
    );
    if !args.no_browser && std::io::stdout().is_terminal() {
        open_browser(&complete);
    }
    let mut interval = Duration::from_secs(codes["interval"].as_u64().unwrap_or(5).max(1));
    let deadline = std::time::Instant::now()
        + Duration::from_secs(codes["expires_in"].as_u64().unwrap_or(900));
    let granted = loop {
        tokio::time::sleep(interval).await;
        let poll = ApiRequest::post("/v1/auth/device/token", json!({"device_code": device_code}));
        match anonymous.send(&poll).await {
            Ok(r) => break r.body,
            Err(e) => match e.code().map(str::to_owned).as_deref() {
                Some("authorization_pending") => {}
                Some("slow_down") => interval += SLOW_DOWN,
                Some("expired_token") => {
                    return Err(not_signed_in(
                        &e,
                        "The code expired before it was approved; run `crier login` again.",
                    ));
                }
                Some("access_denied") => {
                    return Err(not_signed_in(
                        &e,
                        "The sign-in was denied in the dashboard.",
                    ));
                }
                _ => return Err(e.into()),
            },
        }
        if std::time::Instant::now() > deadline {
            return Err(Failure::NotSignedIn(
                "The code expired before it was approved; run `crier login` again.".into(),
            ));
        }
    };
    let key = granted["key"].as_str().unwrap_or_default().to_owned();
    let saved = Profile {
        url: ctx.client.base().as_str().trim_end_matches('/').to_owned(),
        key: key.clone(),
        key_id: granted["key_id"].as_str().unwrap_or_default().to_owned(),
        workspace_id: granted["workspace_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    let path = profile::save(ctx.globals.profile.as_deref(), saved).map_err(Failure::Usage)?;
    eprintln!("Signed in; the key is saved in {}.", path.display());
    let client = Client::new(ctx.client.base().as_str(), Some(key), super::USER_AGENT)?;
    let me = client.send(&ApiRequest::get("/v1/me")).await?.body;
    ctx.show(&me, describe);
    Ok(())
}

/// A login that ended without a key (exit 3, as for a refused key): what to do next, with the
/// server's code and request id.
fn not_signed_in(e: &ClientError, text: &str) -> Failure {
    let code = e.code().unwrap_or_default();
    let req = e
        .request_id()
        .map(|r| format!(", request {r}"))
        .unwrap_or_default();
    Failure::NotSignedIn(format!("{text} ({code}{req})"))
}

/// Opens `url` in the user's browser if there is a way; failing is fine (the URL is shown).
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

pub async fn logout(ctx: &Ctx) -> Outcome {
    let name = profile::name(ctx.globals.profile.as_deref()).to_owned();
    let saved = profile::load(Some(&name))
        .map_err(Failure::Usage)?
        .ok_or_else(|| Failure::NotSignedIn(format!("no saved login `{name}` to log out of")))?;
    // The saved key revokes itself, on its own server, whatever CRIER_API_KEY says.
    let client = Client::new(&saved.url, Some(saved.key.clone()), super::USER_AGENT)?;
    let req = ApiRequest::new(
        crier_client::Method::DELETE,
        format!("/v1/keys/{}", super::seg(&saved.key_id)),
    );
    if ctx.globals.dry_run {
        return ctx.print_dry_run(&req);
    }
    let revoked = match client.send(&req).await {
        Ok(r) => r.body,
        // Already revoked or expired elsewhere: nothing left to revoke, forget it all the same.
        Err(e) if e.status() == Some(401) => Value::Null,
        Err(e) => return Err(e.into()),
    };
    profile::remove(Some(&name)).map_err(Failure::Usage)?;
    ctx.show(&revoked, |_| {
        format!("Logged out: key {} revoked and forgotten.", saved.key_id)
    });
    Ok(())
}

pub async fn whoami(ctx: &Ctx) -> Outcome {
    let me = ctx.get("/v1/me").await?;
    ctx.show(&me, describe);
    Ok(())
}

fn describe(me: &Value) -> String {
    let ws = &me["workspace"];
    let who = match me["auth"].as_str() {
        Some("session") => format!(
            "{} ({})",
            output::cell(&me["user"]["email"]),
            output::cell(&me["user"]["role"])
        ),
        _ => format!(
            "key {} {}… ({})",
            output::cell(&me["key"]["id"]),
            output::cell(&me["key"]["prefix"]),
            output::cell(&me["key"]["name"])
        ),
    };
    output::fields(&[
        ("signed in as", who),
        (
            "workspace",
            format!(
                "{} ({})",
                output::cell(&ws["name"]),
                output::cell(&ws["id"])
            ),
        ),
        ("plan", output::cell(&ws["plan"])),
        ("mode", output::cell(&me["mode"])),
        ("scopes", output::cell(&me["scopes"])),
    ])
}
