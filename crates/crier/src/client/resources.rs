//! The smaller resources: `accounts`, `keys`, `webhooks`, `queue`, `analytics` and `ai`.

use std::io::BufRead;

use clap::{Args, Subcommand};
use crier_client::{ApiRequest, Method};
use serde_json::{Map, Value, json};

use super::{Ctx, Failure, Outcome, output, query, seg};

/// `--limit` and `--offset` of a list.
#[derive(Args)]
pub struct Page {
    /// At most this many (1 to 50).
    #[arg(long, default_value_t = 20)]
    limit: u32,
    #[arg(long, default_value_t = 0)]
    offset: u32,
}

impl Page {
    fn query(&self) -> String {
        query(&[
            ("limit", Some(self.limit.to_string())),
            ("offset", Some(self.offset.to_string())),
        ])
    }
}

// ---- accounts ----

#[derive(Subcommand)]
pub enum AccountsCommand {
    /// The connected social accounts.
    List(Page),
    /// Connect an account: `sandbox --handle H` at once; `bluesky --identifier …
    /// --app-password-stdin`; OAuth networks in two steps (`--redirect-uri` prints the URL to
    /// approve at, then `--code … --state …` finishes).
    Connect {
        /// sandbox, bluesky, mastodon, x, linkedin, …
        platform: String,
        /// The sandbox account's handle.
        #[arg(long)]
        handle: Option<String>,
        /// Bluesky: the handle or email to sign in with.
        #[arg(long, requires = "app_password_stdin")]
        identifier: Option<String>,
        /// Bluesky: read the app password from standard input (never from the command line).
        #[arg(long)]
        app_password_stdin: bool,
        /// Bluesky: the PDS (default https://bsky.social).
        #[arg(long)]
        service: Option<String>,
        /// OAuth, step one: where the network sends the user back.
        #[arg(long, conflicts_with_all = ["code", "handle", "identifier"])]
        redirect_uri: Option<String>,
        /// Mastodon, step one: the instance's base URL.
        #[arg(long, requires = "redirect_uri")]
        instance: Option<String>,
        /// OAuth, step two: the `code` the redirect carried.
        #[arg(long, requires = "state")]
        code: Option<String>,
        /// OAuth, step two: the `state` the redirect carried.
        #[arg(long, requires = "code")]
        state: Option<String>,
    },
    /// Disconnect an account.
    Disconnect { id: String },
}

fn accounts_table(page: &Value) -> String {
    output::list(
        page,
        &[
            ("id", "id"),
            ("platform", "platform"),
            ("handle", "handle"),
            ("status", "status"),
            ("livemode", "live"),
        ],
        40,
    )
}

fn account(a: &Value) -> String {
    format!(
        "{} {} @{} ({})",
        output::cell(&a["id"]),
        output::cell(&a["platform"]),
        output::cell(&a["handle"]),
        output::cell(&a["status"])
    )
}

pub async fn accounts(ctx: &Ctx, command: AccountsCommand) -> Outcome {
    match command {
        AccountsCommand::List(page) => {
            let v = ctx.get(format!("/v1/accounts{}", page.query())).await?;
            ctx.show(&v, accounts_table);
        }
        AccountsCommand::Connect {
            platform,
            handle,
            identifier,
            app_password_stdin,
            service,
            redirect_uri,
            instance,
            code,
            state,
        } => {
            let path = format!("/v1/connect/{}", seg(&platform));
            if let Some(redirect) = redirect_uri {
                let q = query(&[("redirect_uri", Some(redirect)), ("instance", instance)]);
                let started = ctx.get(format!("{path}{q}")).await?;
                ctx.show(&started, |s| {
                    format!(
                        "Approve at:\n  {}\nthen finish with: crier accounts connect {platform} --code CODE --state {}",
                        output::cell(&s["url"]),
                        output::cell(&s["state"])
                    )
                });
                return Ok(());
            }
            let body = if let Some(handle) = handle {
                json!({"handle": handle})
            } else if let Some(identifier) = identifier {
                let mut b = json!({"identifier": identifier, "app_password": read_secret(app_password_stdin)?});
                if let Some(s) = service {
                    b["service"] = json!(s);
                }
                b
            } else if let (Some(code), Some(state)) = (code, state) {
                json!({"code": code, "state": state})
            } else {
                return Err(Failure::Usage(
                    "accounts connect: give --handle (sandbox), --identifier with \
                     --app-password-stdin (bluesky), --redirect-uri (OAuth, first step) or \
                     --code and --state (OAuth, second step)"
                        .into(),
                ));
            };
            if let Some(a) = ctx.write(ApiRequest::post(path, body)).await? {
                ctx.show(&a, |a| format!("connected {}", account(a)));
            }
        }
        AccountsCommand::Disconnect { id } => {
            let req = ApiRequest::new(Method::DELETE, format!("/v1/accounts/{}", seg(&id)));
            if let Some(a) = ctx.write(req).await? {
                ctx.show(&a, |a| format!("disconnected {}", account(a)));
            }
        }
    }
    Ok(())
}

/// The first line of standard input (a secret that must not be on the command line).
fn read_secret(from_stdin: bool) -> Result<String, Failure> {
    if !from_stdin {
        return Err(Failure::Usage("give --app-password-stdin".into()));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::Usage(format!("cannot read standard input: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

// ---- keys ----

#[derive(Subcommand)]
pub enum KeysCommand {
    /// The workspace's API keys (never their secrets).
    List(Page),
    /// Create a key; its secret is shown once.
    Create {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Scopes, comma-separated or repeated (no wider than this key's own).
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// A test-mode key (`sk_test_`).
        #[arg(long)]
        test: bool,
        #[arg(long)]
        per_minute: Option<u32>,
        #[arg(long)]
        per_day: Option<u32>,
        /// When it stops working (RFC 3339).
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Replace a key by a new one (new secret, same settings); the old one ends after
    /// `--overlap` seconds.
    Rotate {
        id: String,
        #[arg(long, default_value_t = 0)]
        overlap: u32,
    },
    /// Revoke a key at once.
    Revoke { id: String },
}

fn key_line(k: &Value) -> String {
    format!(
        "{} {}… {}",
        output::cell(&k["id"]),
        output::cell(&k["prefix"]),
        output::cell(&k["name"])
    )
}

/// A new key with its secret, shown once.
fn new_key(k: &Value) -> String {
    format!(
        "{}\n\n  {}\n\nThis is the only time the key is shown; store it now.",
        output::fields(&[
            ("id", output::cell(&k["id"])),
            ("name", output::cell(&k["name"])),
            ("mode", output::cell(&k["mode"])),
            ("scopes", output::cell(&k["scopes"])),
            ("expires at", output::cell(&k["expires_at"])),
        ]),
        output::cell(&k["key"])
    )
}

pub async fn keys(ctx: &Ctx, command: KeysCommand) -> Outcome {
    match command {
        KeysCommand::List(page) => {
            let v = ctx.get(format!("/v1/keys{}", page.query())).await?;
            ctx.show(&v, |v| {
                output::list(
                    v,
                    &[
                        ("id", "id"),
                        ("prefix", "prefix"),
                        ("name", "name"),
                        ("mode", "mode"),
                        ("scopes", "scopes"),
                        ("last_used_at", "last used"),
                        ("revoked_at", "revoked"),
                    ],
                    60,
                )
            });
        }
        KeysCommand::Create {
            name,
            description,
            scopes,
            test,
            per_minute,
            per_day,
            expires_at,
        } => {
            let mut body = Map::new();
            body.insert("scopes".into(), json!(scopes));
            if test {
                body.insert("mode".into(), json!("test"));
            }
            let optional = [
                ("name", name.map(Value::from)),
                ("description", description.map(Value::from)),
                ("expires_at", expires_at.map(Value::from)),
            ];
            for (k, v) in optional {
                if let Some(v) = v {
                    body.insert(k.into(), v);
                }
            }
            if per_minute.is_some() || per_day.is_some() {
                let mut limits = Map::new();
                if let Some(n) = per_minute {
                    limits.insert("per_minute".into(), json!(n));
                }
                if let Some(n) = per_day {
                    limits.insert("per_day".into(), json!(n));
                }
                body.insert("rate_limit".into(), Value::Object(limits));
            }
            let req = ApiRequest::post("/v1/keys", Value::Object(body));
            if let Some(k) = ctx.write(req).await? {
                ctx.show(&k, new_key);
            }
        }
        KeysCommand::Rotate { id, overlap } => {
            let req = ApiRequest::post(
                format!("/v1/keys/{}/rotate", seg(&id)),
                json!({"overlap_seconds": overlap}),
            );
            if let Some(k) = ctx.write(req).await? {
                ctx.show(&k, |k| format!("{id} was replaced by:\n{}", new_key(k)));
            }
        }
        KeysCommand::Revoke { id } => {
            let req = ApiRequest::new(Method::DELETE, format!("/v1/keys/{}", seg(&id)));
            if let Some(k) = ctx.write(req).await? {
                ctx.show(&k, |k| format!("revoked {}", key_line(k)));
            }
        }
    }
    Ok(())
}

// ---- webhooks ----

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// The webhook endpoints.
    List(Page),
    /// Add an endpoint; its signing secret is shown once.
    Create {
        /// Where deliveries go (http or https).
        #[arg(value_name = "URL")]
        endpoint: String,
        /// An event type to send (repeat for several; default every event, `*`).
        #[arg(long = "event", default_value = "*")]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// An endpoint's delivery attempts.
    Deliveries {
        id: String,
        #[command(flatten)]
        page: Page,
    },
}

pub async fn webhooks(ctx: &Ctx, command: WebhooksCommand) -> Outcome {
    match command {
        WebhooksCommand::List(page) => {
            let v = ctx.get(format!("/v1/webhooks{}", page.query())).await?;
            ctx.show(&v, |v| {
                output::list(
                    v,
                    &[
                        ("id", "id"),
                        ("url", "url"),
                        ("events", "events"),
                        ("enabled", "enabled"),
                        ("failing_since", "failing since"),
                    ],
                    60,
                )
            });
        }
        WebhooksCommand::Create {
            endpoint,
            events,
            description,
        } => {
            let mut body = json!({"url": endpoint, "events": events});
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(e) = ctx.write(ApiRequest::post("/v1/webhooks", body)).await? {
                ctx.show(&e, |e| {
                    format!(
                        "created {} for {}\n\n  signing secret: {}\n\nThis is the only time the secret is shown; store it now.",
                        output::cell(&e["id"]),
                        output::cell(&e["url"]),
                        output::cell(&e["secret"])
                    )
                });
            }
        }
        WebhooksCommand::Deliveries { id, page } => {
            let v = ctx
                .get(format!(
                    "/v1/webhooks/{}/deliveries{}",
                    seg(&id),
                    page.query()
                ))
                .await?;
            ctx.show(&v, |v| {
                output::list(
                    v,
                    &[
                        ("id", "id"),
                        ("event_type", "event"),
                        ("status", "status"),
                        ("created_at", "created"),
                    ],
                    40,
                )
            });
        }
    }
    Ok(())
}

// ---- queue, analytics ----

#[derive(Args)]
pub struct QueueArgs {
    #[command(flatten)]
    page: Page,
}

pub async fn queue(ctx: &Ctx, args: QueueArgs) -> Outcome {
    let v = ctx.get(format!("/v1/queue{}", args.page.query())).await?;
    ctx.show(&v, super::posts::table);
    Ok(())
}

#[derive(Args)]
pub struct AnalyticsArgs {
    /// One post's metrics per account, instead of every account's over a period.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    post: Option<String>,
    /// Start of the period (RFC 3339; default 30 days before `--to`).
    #[arg(long)]
    from: Option<String>,
    /// End of the period (RFC 3339; default now).
    #[arg(long)]
    to: Option<String>,
}

pub async fn analytics(ctx: &Ctx, args: AnalyticsArgs) -> Outcome {
    let metrics = ["likes", "reposts", "replies", "impressions"];
    match args.post {
        Some(id) => {
            let v = ctx.get(format!("/v1/posts/{}/analytics", seg(&id))).await?;
            ctx.show(&v, |v| {
                let mut cols = vec![("account_id", "account"), ("platform", "platform")];
                cols.extend(metrics.iter().map(|m| (*m, *m)));
                output::list(v, &cols, 40)
            });
        }
        None => {
            let q = query(&[("from", args.from), ("to", args.to)]);
            let v = ctx.get(format!("/v1/accounts/analytics{q}")).await?;
            ctx.show(&v, |v| {
                let mut cols = vec![
                    ("account_id", "account"),
                    ("platform", "platform"),
                    ("handle", "handle"),
                    ("posts", "posts"),
                ];
                cols.extend(metrics.iter().map(|m| (*m, *m)));
                cols.push(("followers", "followers"));
                format!(
                    "{} to {}\n{}",
                    output::cell(&v["from"]),
                    output::cell(&v["to"]),
                    output::list(v, &cols, 40)
                )
            });
        }
    }
    Ok(())
}

// ---- ai ----

#[derive(Subcommand)]
pub enum AiCommand {
    /// Rewrite a text in another tone.
    Rewrite {
        text: String,
        #[arg(long)]
        tone: String,
        #[arg(long)]
        platform: Option<String>,
        #[arg(long)]
        brand: Option<String>,
    },
    /// Write a post from a prompt.
    Compose {
        prompt: String,
        #[arg(long)]
        platform: Option<String>,
        #[arg(long)]
        brand: Option<String>,
    },
    /// Hashtags for a text.
    Hashtags {
        text: String,
        #[arg(long)]
        count: Option<u32>,
        #[arg(long)]
        platform: Option<String>,
    },
    /// Split a text into a thread that fits the network.
    Thread {
        text: String,
        #[arg(long)]
        platform: String,
        #[arg(long)]
        max_parts: Option<u32>,
    },
    /// Post ideas.
    Ideas {
        #[arg(long)]
        topic: Option<String>,
        #[arg(long)]
        count: Option<u32>,
        #[arg(long)]
        brand: Option<String>,
    },
    /// Score a text for a network, with suggestions and a better version.
    Optimise {
        text: String,
        #[arg(long)]
        platform: String,
    },
}

/// A JSON object of the fields that are set.
fn object(pairs: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect(),
    )
}

pub async fn ai(ctx: &Ctx, command: AiCommand) -> Outcome {
    let s = |v: String| Some(Value::from(v));
    let o = |v: Option<String>| v.map(Value::from);
    let n = |v: Option<u32>| v.map(Value::from);
    let (action, body) = match command {
        AiCommand::Rewrite {
            text,
            tone,
            platform,
            brand,
        } => (
            "rewrite",
            object(vec![
                ("text", s(text)),
                ("tone", s(tone)),
                ("platform", o(platform)),
                ("brand_id", o(brand)),
            ]),
        ),
        AiCommand::Compose {
            prompt,
            platform,
            brand,
        } => (
            "compose",
            object(vec![
                ("prompt", s(prompt)),
                ("platform", o(platform)),
                ("brand_id", o(brand)),
            ]),
        ),
        AiCommand::Hashtags {
            text,
            count,
            platform,
        } => (
            "hashtags",
            object(vec![
                ("text", s(text)),
                ("count", n(count)),
                ("platform", o(platform)),
            ]),
        ),
        AiCommand::Thread {
            text,
            platform,
            max_parts,
        } => (
            "thread",
            object(vec![
                ("text", s(text)),
                ("platform", s(platform)),
                ("max_parts", n(max_parts)),
            ]),
        ),
        AiCommand::Ideas {
            topic,
            count,
            brand,
        } => (
            "ideas",
            object(vec![
                ("topic", o(topic)),
                ("count", n(count)),
                ("brand_id", o(brand)),
            ]),
        ),
        AiCommand::Optimise { text, platform } => (
            "optimise",
            object(vec![("text", s(text)), ("platform", s(platform))]),
        ),
    };
    let req = ApiRequest::post(format!("/v1/ai/{action}"), body);
    if let Some(v) = ctx.write(req).await? {
        ctx.show(&v, |v| ai_text(action, &v["data"]));
    }
    Ok(())
}

fn ai_text(action: &str, d: &Value) -> String {
    let list = |k: &str| d[k].as_array().map(Vec::as_slice).unwrap_or_default();
    match action {
        "hashtags" => output::cell(&d["hashtags"]).replace(", ", " "),
        "thread" => list("parts")
            .iter()
            .map(output::cell)
            .collect::<Vec<_>>()
            .join("\n\n"),
        "ideas" => output::table(
            &["title", "angle", "draft"],
            list("ideas").iter().map(|i| {
                ["title", "angle", "draft"]
                    .iter()
                    .map(|k| output::cell(&i[*k]))
                    .collect()
            }),
        ),
        "optimise" => format!(
            "{}\n\nscore: {}\n{}",
            output::cell(&d["text"]),
            output::cell(&d["score"]),
            list("suggestions")
                .iter()
                .map(|s| format!(
                    "- {} ({})",
                    output::cell(&s["message"]),
                    output::cell(&s["rule"])
                ))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        _ => output::cell(&d["text"]),
    }
}
