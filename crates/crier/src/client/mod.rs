//! The client commands: `crier login`, `posts`, `media`, … talk to a running server over the
//! HTTP API (through `crier-client`), never to storage, and never read `crier.toml` or a data
//! dir. The server holds every rule; these commands parse flags, send one request (or a few),
//! and print the answer: a table for people, the API's JSON with `--json`.
//!
//! Writes (every method but GET) honour `--dry-run`: the request is printed (method, URL,
//! body; never the key) and nothing is sent. Every POST carries a fresh `Idempotency-Key`, and
//! is tried once more with it when no answer came, so it happens once either way.
//!
//! Exit codes tell failure kinds apart (README, "The crier CLI"): 0 ok, 2 usage or bad local
//! input, 3 auth (401, 403), 4 not found, 5 refused input or conflict (400, 409, 413, 422),
//! 6 rate limit or quota (429, 402), 7 server error (5xx, a protocol error), 8 unreachable.

mod batches;
mod login;
mod media;
mod output;
mod posts;
pub mod profile;
mod resources;

use clap::Subcommand;
use crier_client::{ApiRequest, Client, ClientError, Method};
use serde_json::{Value, json};

/// The flags every client command takes (global flags of the top-level command line).
#[derive(Debug, Clone, Default)]
pub struct Globals {
    pub json: bool,
    pub profile: Option<String>,
    pub url: Option<String>,
    pub dry_run: bool,
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Sign in to a server by device authorization (approve in the dashboard) and save the key.
    Login(login::LoginArgs),
    /// Revoke the saved key and forget it.
    Logout,
    /// Who the key is: its name, scopes, mode and workspace.
    Whoami,
    /// Posts: list, read, create, edit, schedule, publish, retry, cancel, delete, validate.
    Posts {
        #[command(subcommand)]
        command: posts::PostsCommand,
    },
    /// Create many posts from a CSV or JSON Lines file.
    Batches {
        #[command(subcommand)]
        command: batches::BatchesCommand,
    },
    /// Connected social accounts.
    Accounts {
        #[command(subcommand)]
        command: resources::AccountsCommand,
    },
    /// Upload media (images, video) for posts.
    Media {
        #[command(subcommand)]
        command: media::MediaCommand,
    },
    /// The workspace's API keys.
    Keys {
        #[command(subcommand)]
        command: resources::KeysCommand,
    },
    /// Webhook endpoints and their deliveries.
    Webhooks {
        #[command(subcommand)]
        command: resources::WebhooksCommand,
    },
    /// AI writing help (spends AI credits).
    Ai {
        #[command(subcommand)]
        command: resources::AiCommand,
    },
    /// What is scheduled, in the order it goes out.
    Queue(resources::QueueArgs),
    /// Metrics per account over a period, or of one post.
    Analytics(resources::AnalyticsArgs),
    /// Print a shell completion script (bash, zsh, fish, …) to stdout.
    Completions { shell: clap_complete::Shell },
}

/// Why a client command failed; each kind has its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad flags, a bad local file, nothing to do: exit 2.
    Usage(String),
    /// No key to send: exit 3, as a 401 would be.
    NotSignedIn(String),
    /// The server refused some of the input, and the command has already printed how (a
    /// batch's lines, a post's problems): exit 5, the message on stderr even with `--json`.
    Refused(String),
    /// The server's answer, or no answer.
    Api(ClientError),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Self::Api(e)
    }
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::NotSignedIn(_) => 3,
            Self::Refused(_) => 5,
            Self::Api(e) => match e {
                ClientError::Api { status, .. } => match status {
                    401 | 403 => 3,
                    404 => 4,
                    402 | 429 => 6,
                    400..=499 => 5,
                    _ => 7,
                },
                ClientError::Unreachable { .. } => 8,
                ClientError::Protocol { .. } => 7,
                ClientError::Usage(_) => 2,
            },
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Usage(m) | Self::NotSignedIn(m) | Self::Refused(m) => m.clone(),
            Self::Api(e) => e.to_string(),
        }
    }

    /// The error envelope `--json` prints (the server's own for an API error).
    pub fn envelope(&self) -> Value {
        let code = match self {
            Self::Api(e) => return e.envelope(),
            Self::Usage(_) => "usage",
            Self::NotSignedIn(_) => "unauthorized",
            Self::Refused(_) => "invalid_request",
        };
        json!({"error": {"code": code, "message": self.message(), "request_id": null}})
    }
}

pub type Outcome = Result<(), Failure>;

/// One client command's connection and output settings.
pub struct Ctx {
    pub client: Client,
    pub globals: Globals,
}

/// How long a write waits before its one retry after no answer.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

pub const USER_AGENT: &str = concat!("crier-cli/", env!("CARGO_PKG_VERSION"));

impl Ctx {
    /// The server and key from the environment and the saved profile.
    fn new(globals: Globals) -> Result<Self, Failure> {
        let (url, key) = profile::credentials(globals.profile.as_deref(), globals.url.as_deref())
            .map_err(Failure::Usage)?;
        Ok(Self {
            client: Client::new(&url, key, USER_AGENT)?,
            globals,
        })
    }

    pub fn json(&self) -> bool {
        self.globals.json
    }

    fn signed_in(&self) -> Result<(), Failure> {
        match self.client.has_credential() {
            true => Ok(()),
            false => Err(Failure::NotSignedIn(format!(
                "not signed in to {} (profile `{}`): run `crier login{}` or set CRIER_API_KEY",
                self.client.base(),
                profile::name(self.globals.profile.as_deref()),
                self.globals
                    .profile
                    .as_deref()
                    .map(|p| format!(" --profile {p}"))
                    .unwrap_or_default()
            ))),
        }
    }

    /// A request that changes nothing (GET, or a POST that only computes), sent even with
    /// `--dry-run`.
    pub async fn read(&self, req: ApiRequest) -> Result<Value, Failure> {
        self.signed_in()?;
        Ok(self.client.send(&req).await?.body)
    }

    pub async fn get(&self, path: impl Into<String>) -> Result<Value, Failure> {
        self.read(ApiRequest::get(path)).await
    }

    /// A write: sent with a fresh `Idempotency-Key` when it is a POST; with `--dry-run`
    /// printed instead and `None`.
    pub async fn write(&self, mut req: ApiRequest) -> Result<Option<Value>, Failure> {
        if req.method == Method::POST && req.idempotency_key.is_none() {
            req.idempotency_key = Some(idempotency_key());
        }
        if self.globals.dry_run {
            self.print_dry_run(&req)?;
            return Ok(None);
        }
        self.signed_in()?;
        match self.client.send(&req).await {
            // No answer: the server may have acted and the answer been lost. The same
            // Idempotency-Key makes a second try return the first one's result, or do it once.
            Err(ClientError::Unreachable { .. }) if req.idempotency_key.is_some() => {
                tokio::time::sleep(RETRY_PAUSE).await;
                Ok(Some(self.client.send(&req).await?.body))
            }
            answer => Ok(Some(answer?.body)),
        }
    }

    /// What `--dry-run` shows of a request: never the key.
    pub fn print_dry_run(&self, req: &ApiRequest) -> Outcome {
        let url = self.client.url(&req.path)?;
        if self.json() {
            output::json(&json!({
                "dry_run": true,
                "method": req.method.as_str(),
                "url": url.as_str(),
                "idempotency_key": req.idempotency_key,
                "body": req.body,
            }));
        } else {
            println!("dry run, not sent: {} {url}", req.method);
            if let Some(k) = &req.idempotency_key {
                println!("Idempotency-Key: {k}");
            }
            if let Some(body) = &req.body {
                println!(
                    "{}",
                    serde_json::to_string_pretty(body).expect("JSON serialises")
                );
            }
        }
        Ok(())
    }

    /// The answer: its JSON with `--json`, else what `human` makes of it.
    pub fn show(&self, v: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json() {
            output::json(v);
        } else {
            println!("{}", human(v));
        }
    }
}

/// A random `Idempotency-Key` (a UUIDv7: 74 random bits, time-ordered).
pub fn idempotency_key() -> String {
    format!("crier-cli-{}", uuid::Uuid::now_v7())
}

/// A path segment from user input (an id), percent-encoded so it cannot change the path.
pub fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A query string from the pairs whose value is set (`?a=1&b=2`, or empty).
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
            any = true;
        }
    }
    match any {
        true => format!("?{}", q.finish()),
        false => String::new(),
    }
}

/// Runs a client command; its exit code. `cli` is the whole command line, for completions.
pub fn run(globals: Globals, command: ClientCommand, cli: clap::Command) -> u8 {
    if let ClientCommand::Completions { shell } = command {
        let mut cli = cli;
        clap_complete::generate(shell, &mut cli, "crier", &mut std::io::stdout());
        return 0;
    }
    let json_out = globals.json;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async move {
        let ctx = Ctx::new(globals)?;
        match command {
            ClientCommand::Login(args) => login::login(&ctx, args).await,
            ClientCommand::Logout => login::logout(&ctx).await,
            ClientCommand::Whoami => login::whoami(&ctx).await,
            ClientCommand::Posts { command } => posts::run(&ctx, command).await,
            ClientCommand::Batches { command } => batches::run(&ctx, command).await,
            ClientCommand::Accounts { command } => resources::accounts(&ctx, command).await,
            ClientCommand::Media { command } => media::run(&ctx, command).await,
            ClientCommand::Keys { command } => resources::keys(&ctx, command).await,
            ClientCommand::Webhooks { command } => resources::webhooks(&ctx, command).await,
            ClientCommand::Ai { command } => resources::ai(&ctx, command).await,
            ClientCommand::Queue(args) => resources::queue(&ctx, args).await,
            ClientCommand::Analytics(args) => resources::analytics(&ctx, args).await,
            ClientCommand::Completions { .. } => unreachable!("answered above"),
        }
    });
    match result {
        Ok(()) => 0,
        Err(f) => output::failure(&f, json_out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> Failure {
        Failure::Api(ClientError::Api {
            status,
            code: "x".into(),
            message: "m".into(),
            param: None,
            request_id: None,
        })
    }

    #[test]
    fn exit_codes_tell_failures_apart() {
        let cases = [
            (401, 3),
            (403, 3),
            (404, 4),
            (400, 5),
            (409, 5),
            (422, 5),
            (402, 6),
            (429, 6),
            (500, 7),
            (503, 7),
        ];
        for (status, code) in cases {
            assert_eq!(api(status).exit_code(), code, "{status}");
        }
        let down = ClientError::Unreachable {
            url: "u".into(),
            reason: "r".into(),
        };
        assert_eq!(Failure::Api(down).exit_code(), 8);
        assert_eq!(Failure::Usage("u".into()).exit_code(), 2);
        assert_eq!(Failure::NotSignedIn("n".into()).exit_code(), 3);
    }

    #[test]
    fn queries_leave_out_what_is_unset() {
        assert_eq!(query(&[("a", None)]), "");
        assert_eq!(
            query(&[
                ("status", Some("draft".into())),
                ("x", None),
                ("limit", Some("5".into()))
            ]),
            "?status=draft&limit=5"
        );
        assert_eq!(seg("post_1/../x"), "post_1%2F..%2Fx");
    }
}
