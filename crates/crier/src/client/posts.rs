//! `crier posts …`: `/v1/posts` and its actions. Times and text go to the server as given: it
//! alone decides what is valid (a malformed `--at` is its `400`, exit 5).

use clap::{Args, Subcommand};
use crier_client::{ApiRequest, Method};
use serde_json::{Map, Value, json};

use super::{Ctx, Failure, Outcome, output, query, seg};

#[derive(Subcommand)]
pub enum PostsCommand {
    /// List posts, newest first.
    List {
        /// Only posts in this status (draft, scheduled, published, failed, …).
        #[arg(long)]
        status: Option<String>,
        /// Only posts to this account (`acct_…`).
        #[arg(long)]
        account: Option<String>,
        /// At most this many (1 to 50).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        offset: u32,
    },
    /// One post with its per-account results.
    Get { id: String },
    /// Create a post: a draft, scheduled with `--at`, or published with `--now`.
    Create {
        #[command(flatten)]
        fields: PostFields,
        /// Schedule it at this time (RFC 3339, e.g. 2026-12-24T09:00:00Z).
        #[arg(long, conflicts_with_all = ["now", "draft"])]
        at: Option<String>,
        /// Publish it at once.
        #[arg(long, conflicts_with = "draft")]
        now: bool,
        /// Keep it a draft (the default).
        #[arg(long)]
        draft: bool,
    },
    /// Change a draft or a scheduled post (only the fields given).
    Edit {
        id: String,
        #[command(flatten)]
        fields: PostFields,
    },
    /// Schedule a post at a time, or at the queue's next free slot.
    Schedule {
        id: String,
        /// When (RFC 3339).
        #[arg(long, required_unless_present = "next", conflicts_with = "next")]
        at: Option<String>,
        /// The next free slot of the workspace's queue.
        #[arg(long)]
        next: bool,
    },
    /// Publish a post now.
    Publish { id: String },
    /// Publish again to the accounts that failed.
    Retry { id: String },
    /// Back to draft from scheduled.
    Cancel { id: String },
    /// Delete a post (a scheduled one is unscheduled first).
    Delete { id: String },
    /// Check a post (a stored one by id, or one given by flags) against every target
    /// network's rules without saving anything; exit 5 when it would be refused.
    Validate {
        /// A stored post.
        #[arg(conflicts_with_all = ["body", "accounts", "media", "brand"])]
        id: Option<String>,
        #[command(flatten)]
        fields: PostFields,
    },
}

/// A post's content, as flags.
#[derive(Args, Default)]
pub struct PostFields {
    /// The text.
    #[arg(long)]
    body: Option<String>,
    /// An account to publish to (`acct_…`; repeat for several).
    #[arg(long = "account")]
    accounts: Vec<String>,
    /// Ready media to attach (`med_…`; repeat for several).
    #[arg(long = "media")]
    media: Vec<String>,
    /// A brand whose accounts the post goes to, instead of `--account`.
    #[arg(long)]
    brand: Option<String>,
}

impl PostFields {
    /// The fields given, as the API's JSON.
    fn json(self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(b) = self.body {
            m.insert("body".into(), json!(b));
        }
        if !self.accounts.is_empty() {
            m.insert("account_ids".into(), json!(self.accounts));
        }
        if !self.media.is_empty() {
            m.insert("media_ids".into(), json!(self.media));
        }
        if let Some(b) = self.brand {
            m.insert("brand_id".into(), json!(b));
        }
        m
    }
}

fn path(id: &str, action: &str) -> String {
    format!("/v1/posts/{}{action}", seg(id))
}

pub async fn run(ctx: &Ctx, command: PostsCommand) -> Outcome {
    match command {
        PostsCommand::List {
            status,
            account,
            limit,
            offset,
        } => {
            let q = query(&[
                ("status", status),
                ("account_id", account),
                ("limit", Some(limit.to_string())),
                ("offset", Some(offset.to_string())),
            ]);
            let page = ctx.get(format!("/v1/posts{q}")).await?;
            ctx.show(&page, table);
        }
        PostsCommand::Get { id } => {
            let post = ctx.get(path(&id, "")).await?;
            ctx.show(&post, one);
        }
        PostsCommand::Create {
            fields,
            at,
            now,
            draft: _,
        } => {
            let body = fields.json();
            if !body.contains_key("body") {
                return Err(Failure::Usage("posts create needs --body".into()));
            }
            let done = match at {
                // One request, all or nothing: a post that cannot be scheduled is not created.
                Some(at) => {
                    let mut item = body;
                    item.insert("scheduled_at".into(), json!(at));
                    let req = ApiRequest::post("/v1/batches", json!({"posts": [item]}));
                    ctx.write(req)
                        .await?
                        .map(|list| output::items(&list).first().cloned().unwrap_or_default())
                }
                None => {
                    let req = ApiRequest::post("/v1/posts", Value::Object(body));
                    match (ctx.write(req).await?, now) {
                        (Some(post), true) => {
                            let id = post["id"].as_str().unwrap_or_default().to_owned();
                            ctx.write(ApiRequest::new(Method::POST, path(&id, "/publish")))
                                .await?
                        }
                        (Some(post), false) => Some(post),
                        (None, true) => {
                            let id = "{id of the new post}";
                            ctx.write(ApiRequest::new(Method::POST, path(id, "/publish")))
                                .await?
                        }
                        (None, false) => None,
                    }
                }
            };
            if let Some(post) = done {
                ctx.show(&post, one);
            }
        }
        PostsCommand::Edit { id, fields } => {
            let body = fields.json();
            if body.is_empty() {
                return Err(Failure::Usage(
                    "posts edit: nothing to change (give --body, --account, --media or --brand)"
                        .into(),
                ));
            }
            let req = ApiRequest::new(Method::PATCH, path(&id, "")).json(Value::Object(body));
            if let Some(post) = ctx.write(req).await? {
                ctx.show(&post, one);
            }
        }
        PostsCommand::Schedule { id, at, next: _ } => {
            // clap requires one of --at and --next.
            let body = match at {
                Some(at) => json!({"scheduled_at": at}),
                None => json!({"slot": "next"}),
            };
            act(ctx, &id, "/schedule", Some(body)).await?;
        }
        PostsCommand::Publish { id } => act(ctx, &id, "/publish", None).await?,
        PostsCommand::Retry { id } => act(ctx, &id, "/retry", None).await?,
        PostsCommand::Cancel { id } => act(ctx, &id, "/cancel", None).await?,
        PostsCommand::Delete { id } => {
            let req = ApiRequest::new(Method::DELETE, path(&id, ""));
            if let Some(gone) = ctx.write(req).await? {
                ctx.show(&gone, |g| format!("deleted {}", output::cell(&g["id"])));
            }
        }
        PostsCommand::Validate { id, fields } => {
            let body = match id {
                Some(id) => json!({"post_id": id}),
                None => Value::Object(fields.json()),
            };
            let answer = ctx
                .read(ApiRequest::post("/v1/posts/validate", body))
                .await?;
            ctx.show(&answer, |v| match v["valid"].as_bool() {
                Some(true) => "valid: every target network would take it".to_owned(),
                _ => format!(
                    "not valid:\n{}",
                    output::table(
                        &["account", "platform", "field", "rule", "problem"],
                        v["problems"].as_array().into_iter().flatten().map(|p| {
                            ["account_id", "platform", "field", "rule", "message"]
                                .iter()
                                .map(|f| output::cell(&p[*f]))
                                .collect()
                        }),
                    )
                ),
            });
            if answer["valid"].as_bool() != Some(true) {
                return Err(Failure::Refused(
                    "the post would be refused (its problems are above)".into(),
                ));
            }
        }
    }
    Ok(())
}

/// `POST /v1/posts/{id}{action}`; prints the post.
async fn act(ctx: &Ctx, id: &str, action: &str, body: Option<Value>) -> Outcome {
    let mut req = ApiRequest::new(Method::POST, path(id, action));
    req.body = body;
    if let Some(post) = ctx.write(req).await? {
        ctx.show(&post, one);
    }
    Ok(())
}

/// A page of posts: id, status, when, accounts, the start of the text.
pub fn table(page: &Value) -> String {
    output::list(
        &page_with_when(page),
        &[
            ("id", "id"),
            ("status", "status"),
            ("when", "scheduled / published"),
            ("account_ids", "accounts"),
            ("body", "body"),
        ],
        48,
    )
}

/// The page with each post's `when`: its publish time, else its scheduled time.
fn page_with_when(page: &Value) -> Value {
    let mut page = page.clone();
    if let Some(items) = page["data"].as_array_mut() {
        for p in items {
            let when = match &p["published_at"] {
                Value::Null => p["scheduled_at"].clone(),
                t => t.clone(),
            };
            p["when"] = when;
        }
    }
    page
}

/// One post: its fields and a line per target.
pub fn one(p: &Value) -> String {
    let mut out = output::fields(&[
        ("id", output::cell(&p["id"])),
        ("status", output::cell(&p["status"])),
        ("body", output::cell(&p["body"])),
        ("accounts", output::cell(&p["account_ids"])),
        ("media", output::cell(&p["media_ids"])),
        ("scheduled at", output::cell(&p["scheduled_at"])),
        ("published at", output::cell(&p["published_at"])),
        ("livemode", output::cell(&p["livemode"])),
    ]);
    let targets = p["targets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !targets.is_empty() {
        out.push('\n');
        out.push_str(&output::table(
            &["account", "platform", "status", "url", "error"],
            targets.iter().map(|t| {
                vec![
                    output::cell(&t["account_id"]),
                    output::cell(&t["platform"]),
                    output::cell(&t["status"]),
                    output::cell(&t["url"]),
                    output::cell(&t["error"]["message"]),
                ]
            }),
        ));
    }
    out
}
