//! The tool catalogue: one table of every tool, with the description an LLM reads, the scope
//! the key needs for it to be listed, its input schema, and how its arguments become one API
//! request. Every tool is one call of the public API (`explain_error` adds a built-in table of
//! the error codes), so a tool can do nothing its key could not do over HTTP, and every call
//! lands in the key's request log.
//!
//! Arguments are checked against the schema before anything is sent: an unknown or missing
//! argument, or one of the wrong type, is a tool error with code `invalid_request` naming the
//! argument in `param`, as the API would answer.

use crier_client::{ApiRequest, Method};
use serde_json::{Map, Value, json};

/// One tool of the catalogue.
pub struct ToolSpec {
    pub name: &'static str,
    /// The scope a key needs for the tool to be listed and callable (`None`: any key).
    pub scope: Option<&'static str>,
    pub description: &'static str,
    /// Reads only (an MCP annotation clients use to skip confirmation prompts).
    pub read_only: bool,
    /// The arguments: name, JSON type, whether required, description.
    pub args: &'static [Arg],
    /// The request the (checked) arguments make.
    pub build: fn(&Args) -> ApiRequest,
}

/// One argument of a tool.
pub struct Arg {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub description: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
    Strings,
    Object,
}

const fn req(name: &'static str, kind: Kind, description: &'static str) -> Arg {
    Arg {
        name,
        kind,
        required: true,
        description,
    }
}

const fn opt(name: &'static str, kind: Kind, description: &'static str) -> Arg {
    Arg {
        name,
        kind,
        required: false,
        description,
    }
}

use Kind::{Integer, Object, String as Str, Strings};

const POST_ID: Arg = req("id", Str, "The post's id (`post_…`).");
const LIMIT: Arg = opt(
    "limit",
    Integer,
    "How many to return, 1 to 50 (default 20).",
);
const OFFSET: Arg = opt(
    "offset",
    Integer,
    "How many to skip, for the next page (default 0).",
);
const BRAND_ID: Arg = opt(
    "brand_id",
    Str,
    "A brand (`brd_…`, see list_brands): its voice and knowledge base shape the text.",
);
const PLATFORM: Arg = opt(
    "platform",
    Str,
    "The network the text is for: sandbox, bluesky, mastodon, x, linkedin, threads, facebook, instagram, tiktok or youtube (its length limit applies).",
);

/// The arguments of a post's content, shared by draft_post, edit_post and validate_post.
macro_rules! post_fields {
    ($body_required:expr) => {
        [
            Arg {
                name: "body",
                kind: Str,
                required: $body_required,
                description: "The text of the post (the first part, if it is a thread).",
            },
            opt(
                "thread",
                Strings,
                "Further parts, published as replies in order (leave out for a single post).",
            ),
            opt(
                "account_ids",
                Strings,
                "The connected accounts (`acct_…`, see list_accounts) to publish to, 1 to 20. Give this or brand_id.",
            ),
            opt(
                "brand_id",
                Str,
                "A brand (`brd_…`, see list_brands) whose connected accounts the post goes to, instead of account_ids.",
            ),
            opt(
                "media_ids",
                Strings,
                "Ready media (`med_…`, see list_media or import_media) to attach.",
            ),
            opt(
                "overrides",
                Object,
                "Per-account text: {\"acct_…\": {\"body\": \"…\", \"thread\": [\"…\"]}}.",
            ),
        ]
    };
}

const DRAFT_ARGS: [Arg; 6] = post_fields!(true);
const EDIT_ARGS: [Arg; 7] = {
    let [a, b, c, d, e, f] = post_fields!(false);
    [POST_ID, a, b, c, d, e, f]
};
const VALIDATE_ARGS: [Arg; 7] = {
    let [a, b, c, d, e, f] = post_fields!(false);
    [
        opt(
            "post_id",
            Str,
            "A stored post (`post_…`) to check. Or leave it out and give the post's fields (body and account_ids or brand_id).",
        ),
        a,
        b,
        c,
        d,
        e,
        f,
    ]
};

/// The catalogue, in the order tools are listed.
pub static TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "whoami",
        scope: None,
        description: "Who this MCP server acts as: the API key (name, prefix, mode live or test), its scopes (which decide the tools you see), its rate limits and restrictions, and its workspace (time zone, plan, whether posts need approval). Call this first if unsure what you may do.",
        read_only: true,
        args: &[],
        build: |_| ApiRequest::get("/v1/me"),
    },
    ToolSpec {
        name: "list_posts",
        scope: Some("posts:read"),
        description: "List posts, newest first, as {data:[post…], has_more}. A post has id, status (draft, pending_approval, scheduled, publishing, published, partially_published, failed), body, account_ids, scheduled_at and per-account targets with their result or error.",
        read_only: true,
        args: &[
            opt(
                "status",
                Str,
                "Only posts in this status: draft, pending_approval, scheduled, publishing, published, partially_published or failed.",
            ),
            opt("account_id", Str, "Only posts to this account (`acct_…`)."),
            LIMIT,
            OFFSET,
        ],
        build: |a| {
            ApiRequest::get(with_query(
                "/v1/posts",
                a,
                &["status", "account_id", "limit", "offset"],
            ))
        },
    },
    ToolSpec {
        name: "get_post",
        scope: Some("posts:read"),
        description: "One post by id, with its status, text, accounts, schedule and, per target account, the publishing result (external URL) or error.",
        read_only: true,
        args: &[POST_ID],
        build: |a| ApiRequest::get(format!("/v1/posts/{}", a.seg("id"))),
    },
    ToolSpec {
        name: "draft_post",
        scope: Some("posts:write"),
        description: "Create a draft post (nothing is published). Give the text in body and where it goes: account_ids (from list_accounts) or a brand_id. Returns the post; check it with validate_post, then a human (or a key with posts:publish) schedules or publishes it.",
        read_only: false,
        args: &DRAFT_ARGS,
        build: |a| ApiRequest::post("/v1/posts", a.body(&[])),
    },
    ToolSpec {
        name: "edit_post",
        scope: Some("posts:write"),
        description: "Change a draft or scheduled post: give its id and only the fields to change (body, thread, account_ids or brand_id, media_ids, overrides). A post that is publishing or published cannot be edited (error code conflict).",
        read_only: false,
        args: &EDIT_ARGS,
        build: |a| {
            ApiRequest::new(Method::PATCH, format!("/v1/posts/{}", a.seg("id")))
                .json(a.body(&["id"]))
        },
    },
    ToolSpec {
        name: "validate_post",
        scope: Some("posts:write"),
        description: "Check a post against every target network's rules (length, media count and types) without saving or publishing anything. Give post_id for a stored post, or the post's fields (body and account_ids or brand_id) for a new one. Returns {valid, problems:[{account_id, platform, rule, field, message}]}: fix every problem, then validate again.",
        read_only: true,
        args: &VALIDATE_ARGS,
        build: |a| ApiRequest::post("/v1/posts/validate", a.body(&[])),
    },
    ToolSpec {
        name: "schedule_post",
        scope: Some("posts:publish"),
        description: "Schedule a draft: at scheduled_at (an RFC 3339 time in the future, e.g. 2026-12-24T09:00:00Z), or with slot \"next\" for the next free slot of the workspace's queue. Give exactly one of the two. The text is checked against every network's limits first.",
        read_only: false,
        args: &[
            POST_ID,
            opt(
                "scheduled_at",
                Str,
                "When to publish, RFC 3339 in UTC, in the future.",
            ),
            opt("slot", Str, "\"next\": the next free slot of the queue."),
        ],
        build: |a| {
            ApiRequest::post(
                format!("/v1/posts/{}/schedule", a.seg("id")),
                a.body(&["id"]),
            )
        },
    },
    ToolSpec {
        name: "publish_post",
        scope: Some("posts:publish"),
        description: "Publish a draft or scheduled post now, to every target account. Irreversible: it goes out on real networks for a live key. The answer is the post in status publishing; get_post shows the per-account results a moment later.",
        read_only: false,
        args: &[POST_ID],
        build: |a| ApiRequest::new(Method::POST, format!("/v1/posts/{}/publish", a.seg("id"))),
    },
    ToolSpec {
        name: "retry_post",
        scope: Some("posts:publish"),
        description: "Publish again to the accounts where a post failed (status failed or partially_published); accounts already published are left alone.",
        read_only: false,
        args: &[POST_ID],
        build: |a| ApiRequest::new(Method::POST, format!("/v1/posts/{}/retry", a.seg("id"))),
    },
    ToolSpec {
        name: "cancel_post",
        scope: Some("posts:publish"),
        description: "Take a scheduled post off the schedule: it goes back to draft and is not published.",
        read_only: false,
        args: &[POST_ID],
        build: |a| ApiRequest::new(Method::POST, format!("/v1/posts/{}/cancel", a.seg("id"))),
    },
    ToolSpec {
        name: "list_accounts",
        scope: Some("accounts:read"),
        description: "The connected social accounts posts can go to, as {data:[{id, platform, handle, display_name, status}…], has_more}. Use their ids as account_ids in draft_post.",
        read_only: true,
        args: &[LIMIT, OFFSET],
        build: |a| ApiRequest::get(with_query("/v1/accounts", a, &["limit", "offset"])),
    },
    ToolSpec {
        name: "list_media",
        scope: Some("media:read"),
        description: "Uploaded media (images, videos), newest first, with id, status (pending or ready), content_type, size and alt_text. Ready media ids go in a post's media_ids.",
        read_only: true,
        args: &[LIMIT, OFFSET],
        build: |a| ApiRequest::get(with_query("/v1/media", a, &["limit", "offset"])),
    },
    ToolSpec {
        name: "import_media",
        scope: Some("media:write"),
        description: "Import an image or video from a public http(s) URL into the media library (crier fetches it; private and local addresses are refused). Returns the media object; once its status is ready, attach its id with media_ids.",
        read_only: false,
        args: &[
            req("url", Str, "The public http(s) URL of the file."),
            opt(
                "filename",
                Str,
                "The name to store it under (default: from the URL).",
            ),
            opt(
                "alt_text",
                Str,
                "A description of the image for screen readers, up to 1500 characters.",
            ),
        ],
        build: |a| ApiRequest::post("/v1/media/import", a.body(&[])),
    },
    ToolSpec {
        name: "post_analytics",
        scope: Some("analytics:read"),
        description: "Per-account metrics (likes, reposts, replies, impressions) of a published post.",
        read_only: true,
        args: &[POST_ID],
        build: |a| ApiRequest::get(format!("/v1/posts/{}/analytics", a.seg("id"))),
    },
    ToolSpec {
        name: "accounts_analytics",
        scope: Some("analytics:read"),
        description: "Metrics per account over a period, summed over the posts published in it, with followers and their change where the network reports them. Default period: the last 30 days.",
        read_only: true,
        args: &[
            opt("from", Str, "Start of the period, RFC 3339."),
            opt("to", Str, "End of the period, RFC 3339 (default now)."),
        ],
        build: |a| ApiRequest::get(with_query("/v1/accounts/analytics", a, &["from", "to"])),
    },
    ToolSpec {
        name: "queue",
        scope: Some("queue:read"),
        description: "What is scheduled (and waiting for approval), in the order it goes out.",
        read_only: true,
        args: &[LIMIT, OFFSET],
        build: |a| ApiRequest::get(with_query("/v1/queue", a, &["limit", "offset"])),
    },
    ToolSpec {
        name: "list_brands",
        scope: Some("brands:read"),
        description: "The workspace's brands: named groups of accounts with their own voice, as {data:[{id, name, account_ids, persona}…]}. A brand_id can stand for its accounts in draft_post and shapes AI text.",
        read_only: true,
        args: &[LIMIT, OFFSET],
        build: |a| ApiRequest::get(with_query("/v1/brands", a, &["limit", "offset"])),
    },
    ToolSpec {
        name: "ai_rewrite",
        scope: Some("ai:generate"),
        description: "Rewrite a text in a tone, in the brand's voice, to fit a network's length. Returns {data:{text}, usage:{credits, remaining}}. Spends AI credits.",
        read_only: true,
        args: &[
            req("text", Str, "The text to rewrite, up to 10000 characters."),
            opt(
                "tone",
                Str,
                "E.g. friendly, formal, playful (default: the brand voice's tone).",
            ),
            PLATFORM,
            BRAND_ID,
        ],
        build: |a| ApiRequest::post("/v1/ai/rewrite", a.body(&[])),
    },
    ToolSpec {
        name: "ai_compose",
        scope: Some("ai:generate"),
        description: "Write a new post about a prompt, in the brand's voice, within a network's length. Returns {data:{text}}. Spends AI credits; the text is not saved (use draft_post).",
        read_only: true,
        args: &[
            req("prompt", Str, "What to write about, up to 4000 characters."),
            PLATFORM,
            BRAND_ID,
        ],
        build: |a| ApiRequest::post("/v1/ai/compose", a.body(&[])),
    },
    ToolSpec {
        name: "ai_hashtags",
        scope: Some("ai:generate"),
        description: "Suggest hashtags for a text. Returns {data:{hashtags:[\"#…\"]}}. Spends AI credits.",
        read_only: true,
        args: &[
            req("text", Str, "The post's text."),
            opt("count", Integer, "How many, 1 to 30 (default 5)."),
            PLATFORM,
            BRAND_ID,
        ],
        build: |a| ApiRequest::post("/v1/ai/hashtags", a.body(&[])),
    },
    ToolSpec {
        name: "ai_thread",
        scope: Some("ai:generate"),
        description: "Split a long text into a thread whose parts each fit the network. Returns {data:{parts:[…]}}; pass parts[0] as body and the rest as thread to draft_post. Spends AI credits.",
        read_only: true,
        args: &[
            req("text", Str, "The long text."),
            req(
                "platform",
                Str,
                "The network whose limit each part must fit (e.g. bluesky, mastodon, x).",
            ),
            opt("max_parts", Integer, "At most this many parts, 1 to 25."),
        ],
        build: |a| ApiRequest::post("/v1/ai/thread", a.body(&[])),
    },
    ToolSpec {
        name: "ai_ideas",
        scope: Some("ai:generate"),
        description: "Post ideas on a topic (default: trending topics and the brand's topics). Returns {data:{ideas:[{title, angle, draft}]}}. Spends AI credits.",
        read_only: true,
        args: &[
            opt(
                "topic",
                Str,
                "What the ideas are about, up to 200 characters.",
            ),
            opt("count", Integer, "How many, 1 to 10 (default 5)."),
            PLATFORM,
            BRAND_ID,
        ],
        build: |a| ApiRequest::post("/v1/ai/ideas", a.body(&[])),
    },
    ToolSpec {
        name: "ai_optimise",
        scope: Some("ai:generate"),
        description: "Improve a text for a network and score it. Returns {data:{text, score 0-100, suggestions:[{rule, message}]}}. Spends AI credits.",
        read_only: true,
        args: &[
            req("text", Str, "The post's text."),
            req("platform", Str, "The network it is for."),
            BRAND_ID,
        ],
        build: |a| ApiRequest::post("/v1/ai/optimise", a.body(&[])),
    },
    ToolSpec {
        name: "explain_error",
        scope: None,
        description: "Explain an error from a crier tool or API call: what the code means, the likely cause and how to fix it. Give the error's code (e.g. forbidden_scope) and, if you have it, its request_id (req_…) and message; with a request id and the keys:read scope it also looks the request up in the key's request log (method, route, status, time).",
        read_only: true,
        args: &[
            opt(
                "code",
                Str,
                "The error envelope's code, e.g. invalid_request, forbidden_scope, conflict.",
            ),
            opt(
                "request_id",
                Str,
                "The error's request_id (`req_…`), from the envelope or the X-Request-Id header.",
            ),
            opt("message", Str, "The error's message, if any."),
            opt("param", Str, "The error's param, if any."),
        ],
        build: |a| ApiRequest::get(format!("/v1/requests/{}", a.seg("request_id"))),
    },
];

/// The tool named `name`, if the catalogue has it.
pub fn find(name: &str) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|t| t.name == name)
}

impl ToolSpec {
    /// The JSON schema of the arguments.
    pub fn schema(&self) -> Map<String, Value> {
        let mut props = Map::new();
        for a in self.args {
            let mut p = match a.kind {
                Kind::String => json!({"type": "string"}),
                Kind::Integer => json!({"type": "integer", "minimum": 0}),
                Kind::Strings => json!({"type": "array", "items": {"type": "string"}}),
                Kind::Object => json!({"type": "object"}),
            };
            p["description"] = Value::String(a.description.into());
            props.insert(a.name.into(), p);
        }
        let required: Vec<&str> = self
            .args
            .iter()
            .filter(|a| a.required)
            .map(|a| a.name)
            .collect();
        let mut schema = Map::new();
        schema.insert("type".into(), json!("object"));
        schema.insert("properties".into(), Value::Object(props));
        if !required.is_empty() {
            schema.insert("required".into(), json!(required));
        }
        schema.insert("additionalProperties".into(), json!(false));
        schema
    }

    /// Checks `arguments` against the schema: the checked arguments, or `(param, message)`.
    pub fn check(&self, arguments: Option<&Map<String, Value>>) -> Result<Args, (String, String)> {
        let empty = Map::new();
        let given = arguments.unwrap_or(&empty);
        for name in given.keys() {
            if !self.args.iter().any(|a| a.name == name) {
                let known: Vec<&str> = self.args.iter().map(|a| a.name).collect();
                return Err((
                    name.clone(),
                    format!(
                        "{} takes no argument `{name}`; it takes: {}.",
                        self.name,
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        let mut out = Map::new();
        for a in self.args {
            match given.get(a.name) {
                None | Some(Value::Null) if a.required => {
                    return Err((
                        a.name.into(),
                        format!("{} needs `{}`: {}", self.name, a.name, a.description),
                    ));
                }
                None | Some(Value::Null) => {}
                Some(v) => {
                    let ok = match a.kind {
                        Kind::String => v.as_str().is_some_and(|s| !s.is_empty()),
                        Kind::Integer => v.as_u64().is_some(),
                        Kind::Strings => v
                            .as_array()
                            .is_some_and(|xs| xs.iter().all(Value::is_string)),
                        Kind::Object => v.is_object(),
                    };
                    if !ok {
                        let what = match a.kind {
                            Kind::String => "a non-empty string",
                            Kind::Integer => "a whole number, 0 or more",
                            Kind::Strings => "a list of strings",
                            Kind::Object => "an object",
                        };
                        return Err((a.name.into(), format!("`{}` must be {what}.", a.name)));
                    }
                    out.insert(a.name.into(), v.clone());
                }
            }
        }
        Ok(Args(out))
    }
}

/// Arguments checked against their tool's schema.
#[derive(Debug, Clone)]
pub struct Args(pub Map<String, Value>);

impl Args {
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    /// A string argument as one path segment, percent-encoded (an id can never reach another
    /// route).
    pub fn seg(&self, name: &str) -> String {
        let raw = self.str(name).unwrap_or_default();
        url::form_urlencoded::byte_serialize(raw.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
            .replace('.', "%2E")
    }

    /// The arguments as a JSON body, without those in `except` (path parameters).
    pub fn body(&self, except: &[&str]) -> Value {
        Value::Object(
            self.0
                .iter()
                .filter(|(k, _)| !except.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

/// `path?name=value&…` with the given arguments that are present, percent-encoded.
fn with_query(path: &str, a: &Args, names: &[&str]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for n in names {
        match a.0.get(*n) {
            Some(Value::String(s)) => {
                q.append_pair(n, s);
                any = true;
            }
            Some(v @ Value::Number(_)) => {
                q.append_pair(n, &v.to_string());
                any = true;
            }
            _ => {}
        }
    }
    if any {
        format!("{path}?{}", q.finish())
    } else {
        path.to_owned()
    }
}

/// What each error code of the API means, its usual cause and its fix (API.md's Errors).
pub fn explain_code(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "invalid_request" => (
            "The request was malformed: a missing or bad argument, text over a network's limit, or an unknown id. `param` names the field at fault.",
            "Fix the field named in `param` as the message says (for a post, run validate_post to see every problem at once), then call again.",
        ),
        "unauthorized" => (
            "The API key is missing, malformed, unknown, expired or revoked.",
            "Check CRIER_API_KEY (or the Authorization header); create a new key in the dashboard if it was revoked or expired.",
        ),
        "payment_required" => (
            "The action needs a paid plan (publishing, media, AI on the free plan).",
            "Ask the workspace owner to change the plan; do not retry.",
        ),
        "quota_exceeded" => (
            "The plan's quota for this action (posts, AI credits, media storage, accounts) is used up this period.",
            "Wait for the next period or ask the owner for a bigger plan; GET /v1/workspace shows the usage.",
        ),
        "forbidden_scope" => (
            "The key lacks the scope this action needs (the message names it). Agent keys usually cannot publish.",
            "Do what the key may do instead (e.g. leave a draft for a human to publish), or ask for a key with the named scope.",
        ),
        "ip_not_allowed" => (
            "The key is restricted to certain IP addresses and this call came from another.",
            "Call from an allowed address or ask the owner to update the key's allowed_ips.",
        ),
        "origin_not_allowed" => (
            "The key is restricted to certain browser origins and this call carried another Origin.",
            "Call from an allowed origin or without an Origin header (server-side).",
        ),
        "forbidden" => (
            "A signed URL (a media upload or read) whose signature is wrong or which expired, or a request to /mcp under a Host that is not this server's.",
            "Ask for a new upload URL (or read the media again for a fresh URL); call /mcp at the server's own address.",
        ),
        "not_found" => (
            "No such resource in this workspace and mode (or the key's brand or account restrictions hide it), or no such route.",
            "Check the id (list_posts, list_accounts, list_media show valid ones); a test-mode key sees only test data.",
        ),
        "method_not_allowed" => (
            "The route exists but not with this method.",
            "Use the method the API reference gives for this route.",
        ),
        "conflict" => (
            "The resource's state forbids this, e.g. editing or scheduling a post that is already publishing or published, or deleting media a scheduled post uses.",
            "Read the resource (get_post) to see its status; draft a new post or cancel the scheduled one first.",
        ),
        "idempotency_conflict" => (
            "The Idempotency-Key was used before with a different request.",
            "Send a new Idempotency-Key for a new request.",
        ),
        "payload_too_large" => (
            "The request body is over the limit (1 MiB for JSON).",
            "Send less: shorter text, fewer items per call.",
        ),
        "unsupported_media_type" => (
            "The body was not JSON where JSON is required.",
            "Send Content-Type: application/json with a JSON body.",
        ),
        "rate_limited" => (
            "The key made too many requests in a minute or a day.",
            "Wait for the seconds in Retry-After (or the message), then retry; make fewer calls.",
        ),
        "internal_error" => (
            "A fault of the server; it was logged with the request id.",
            "Retry once later; if it persists, report the request id to the operator.",
        ),
        "upstream_unavailable" => (
            "A backend crier needs (the AI model, media storage, a social network) is down or not configured.",
            "Retry later; for AI, the operator must configure a model. Nothing was spent.",
        ),
        "authorization_pending" | "slow_down" | "expired_token" | "access_denied" => (
            "A step of the CLI's device login (RFC 8628): not approved yet, polling too fast, the code expired, or the user refused.",
            "Keep polling at the given interval, slower after slow_down; start again after expired_token or access_denied.",
        ),
        "unreachable" => (
            "The MCP server could not reach the crier server (it never saw the request).",
            "Check CRIER_URL and that the server is running.",
        ),
        "protocol" => (
            "The crier server's answer was not what the API sends (not JSON, or too large).",
            "Check that CRIER_URL points at a crier server.",
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_scope_is_a_real_one() {
        let mut names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TOOLS.len());
        for t in TOOLS {
            assert!(t.description.len() > 40, "{}", t.name);
            if let Some(s) = t.scope {
                assert!(s.contains(':'), "{s}");
            }
        }
    }

    #[test]
    fn arguments_are_checked_against_the_schema() {
        let draft = find("draft_post").unwrap();
        assert_eq!(
            draft.check(None).unwrap_err().0,
            "body",
            "a required argument is missing"
        );
        let mut args = Map::new();
        args.insert("body".into(), json!("hi"));
        args.insert("bogus".into(), json!(1));
        assert_eq!(draft.check(Some(&args)).unwrap_err().0, "bogus");
        args.remove("bogus");
        args.insert("account_ids".into(), json!("acct_1"));
        assert_eq!(draft.check(Some(&args)).unwrap_err().0, "account_ids");
        args.insert("account_ids".into(), json!(["acct_1"]));
        let req = (draft.build)(&draft.check(Some(&args)).unwrap());
        assert_eq!(req.path, "/v1/posts");
        assert_eq!(
            req.body,
            Some(json!({"body": "hi", "account_ids": ["acct_1"]}))
        );
        assert_eq!(draft.schema()["required"], json!(["body"]));
    }

    #[test]
    fn ids_and_queries_are_encoded() {
        let get = find("get_post").unwrap();
        let mut args = Map::new();
        args.insert("id".into(), json!("../keys?x=1"));
        let req = (get.build)(&get.check(Some(&args)).unwrap());
        assert_eq!(req.path, "/v1/posts/%2E%2E%2Fkeys%3Fx%3D1");
        let list = find("list_posts").unwrap();
        let mut args = Map::new();
        args.insert("status".into(), json!("draft&limit=50"));
        args.insert("limit".into(), json!(5));
        let req = (list.build)(&list.check(Some(&args)).unwrap());
        assert_eq!(req.path, "/v1/posts?status=draft%26limit%3D50&limit=5");
    }

    #[test]
    fn every_documented_code_is_explained() {
        for code in [
            "invalid_request",
            "unauthorized",
            "payment_required",
            "quota_exceeded",
            "forbidden_scope",
            "ip_not_allowed",
            "origin_not_allowed",
            "not_found",
            "method_not_allowed",
            "conflict",
            "idempotency_conflict",
            "payload_too_large",
            "unsupported_media_type",
            "rate_limited",
            "internal_error",
            "upstream_unavailable",
            "authorization_pending",
            "slow_down",
            "expired_token",
            "access_denied",
        ] {
            assert!(explain_code(code).is_some(), "{code}");
        }
    }
}
