//! The OpenAPI 3.1 description, generated from the handlers' annotations. Each operation's
//! `security` lists the one scope it needs (empty: any valid key); the authorization matrix
//! test reads it back and checks the server enforces exactly that.
//!
//! The request schemas state every bound the handlers enforce (lengths, counts, ranges, enums,
//! patterns), so a client or a fuzzer that follows the document is not refused for its shape.
//! Plain numeric bounds sit on the request structs as `#[schema(...)]` literals (utoipa takes
//! only literals there; `tests/openapi.rs` pins each to the constant the handler uses). Enums
//! and patterns are built here, in [`fields`], from the same constants and lists the handlers
//! read, so they cannot drift. What no schema can say (an account that must exist, a time that
//! must be in the future, overrides naming only listed accounts) is in the descriptions.
//!
//! [`refine`] finishes the document: unique `operationId`s (`posts_create`), the shapes of
//! path and query parameters, the one-of rule of `schedule`, which bodies may be left out, and
//! `links` from every create to the operations on what it created (schemathesis's stateful
//! phase follows them).

use crier_core::ids::{
    AccountId, AgentId, AgentRunId, BrandId, CarouselId, ClipId, DeliveryId, DocumentId, FeedId,
    KeyId, MediaId, PostId, RequestId, WebhookId,
};
use crier_core::posts::PostStatus;
use serde_json::{Value, json};
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "crier API",
        version = "1",
        description = "The crier developer API. Every error uses one envelope: \
            `{\"error\":{\"code\",\"message\",\"request_id\",\"param\"?}}`. \
            Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`. \
            Lists are `{\"data\":[…],\"has_more\":bool}` with `limit` (1–50) and `offset`. \
            Every POST accepts `Idempotency-Key`. A query parameter an operation does not \
            list is refused (`400 invalid_request`, `param` naming it), not ignored."
    ),
    modifiers(&Security),
    components(schemas(crate::error::ErrorEnvelope)),
    tags(
        (name = "posts", description = "Posts: drafts, scheduling, publishing, approvals, batches"),
        (name = "accounts", description = "Connected social accounts and the sandbox network"),
        (name = "queue", description = "Weekly posting slots and the queue"),
        (name = "feeds", description = "RSS, Atom and JSON Feed automations"),
        (name = "carousels", description = "Carousels: slides made from a text, a prompt or a URL, refined, rendered to PNG and PDF, exported as media"),
        (name = "clips", description = "Clip jobs: scenes found in an uploaded video and short clips cut from it (ffmpeg), kept as media"),
        (name = "agents", description = "Agents that write posts on a schedule (cron in the workspace's time zone) or when asked, and their runs"),
        (name = "media", description = "Images and videos: upload URLs, confirmation, alt text"),
        (name = "trending", description = "Trending topics: the networks' and the workspace's own"),
        (name = "webhooks", description = "Signed webhooks (Standard Webhooks) and their deliveries"),
        (name = "brands", description = "Brands: named groups of accounts with their own voice"),
        (name = "kb", description = "The knowledge base AI generation draws on: documents and search"),
        (name = "keys", description = "API keys of the workspace, and their usage per day"),
        (name = "requests", description = "The recent request log: authenticated requests of the last 7 days, by request id (written every few seconds)"),
        (name = "workspace", description = "The workspace, its plan and usage"),
        (name = "ai", description = "AI content (rewrite, compose, hashtags, thread, ideas, optimise), AI credits and the brand voice"),
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "mcp", description = "The MCP server over streamable HTTP (stateless): tools and resources that follow the key's scopes"),
        (name = "oauth", description = "crier as the OAuth 2.1 authorization server of its API and MCP server: discovery (RFC 9728, RFC 8414), registration (RFC 7591), tokens (code with PKCE S256, rotating refresh tokens), revocation (RFC 7009). These endpoints answer errors in OAuth's format, `{\"error\",\"error_description\"}` (RFC 6749 §5.2), not the envelope. The consent page is `GET /oauth/authorize` in the dashboard."),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sk_live_… / sk_test_…")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Finishes the generated document (see the module's documentation). Runs on the merged
/// document, after every route has added its operation. The result is JSON: utoipa's types
/// cannot read back every schema they can write.
pub fn refine(doc: utoipa::openapi::OpenApi) -> Value {
    let mut v = serde_json::to_value(&doc).expect("the document serialises");
    operation_ids(&mut v);
    parameters(&mut v);
    schedule_one_of(&mut v);
    post_targets_one_of(&mut v);
    kb_document_one_of(&mut v);
    optional_bodies(&mut v);
    links(&mut v);
    no_nul(&mut v);
    unknown_query_answers(&mut v);
    v
}

/// Every operation of the API (`/v1/…`) refuses a query parameter it does not list
/// (`routes::known_query`), so every one may answer `400` in the envelope.
fn unknown_query_answers(v: &mut Value) {
    for (_, _, op) in operations(v).filter(|(_, path, _)| path.starts_with("/v1/")) {
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        if !responses.contains_key("400") && !responses.contains_key("4XX") {
            responses.insert(
                "400".into(),
                json!({
                    "description": "A query parameter this operation does not take",
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/ErrorEnvelope"}
                    }},
                }),
            );
        }
    }
}

/// No text in a request body takes NUL (`extract::parse_json` refuses it in any string or key):
/// every string a body reaches that has no pattern, enum or format gets a pattern saying so,
/// and every map without `propertyNames` gets names saying so. The patterns made in [`fields`]
/// exclude NUL themselves.
fn no_nul(v: &mut Value) {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    out.push(r.trim_start_matches("#/components/schemas/").to_owned());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    fn mark(v: &mut Value) {
        match v {
            Value::Object(map) => {
                let is_string = match map.get("type") {
                    Some(Value::String(t)) => t == "string",
                    Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
                    _ => false,
                };
                let constrained = ["pattern", "enum", "const", "format"]
                    .iter()
                    .any(|k| map.contains_key(*k));
                if is_string && !constrained {
                    map.insert("pattern".into(), NO_NUL.into());
                }
                let is_map = map
                    .get("additionalProperties")
                    .is_some_and(|a| a.is_object() || a.as_bool() == Some(true));
                if is_map && !map.contains_key("propertyNames") {
                    map.insert(
                        "propertyNames".into(),
                        json!({"type": "string", "pattern": NO_NUL}),
                    );
                }
                for (k, v) in map.iter_mut() {
                    if !matches!(k.as_str(), "example" | "examples" | "default") {
                        mark(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(mark),
            _ => {}
        }
    }
    const NO_NUL: &str = r"^[^\x00]*$";
    let mut todo = Vec::new();
    for (_, _, op) in operations(v) {
        if let Some(body) = op.get_mut("requestBody") {
            refs(body, &mut todo);
            mark(body);
        }
    }
    let mut done = std::collections::BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !done.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = v["components"]["schemas"].get_mut(&name) {
            refs(schema, &mut todo);
            mark(schema);
        }
    }
}

fn operations(v: &mut Value) -> impl Iterator<Item = (String, String, &mut Value)> {
    v["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.iter_mut())
        .flat_map(|(path, item)| {
            item.as_object_mut()
                .into_iter()
                .flat_map(|ops| ops.iter_mut())
                .map(move |(method, op)| (method.clone(), path.clone(), op))
        })
}

/// `{tag}_{handler}` (`posts_create`): utoipa names an operation after its handler, and
/// several modules have a `list` or a `get`.
fn operation_ids(v: &mut Value) {
    for (_, _, op) in operations(v) {
        let tag = op["tags"][0].as_str().unwrap_or("api").to_owned();
        if let Some(id) = op["operationId"].as_str() {
            op["operationId"] = format!("{tag}_{id}").into();
        }
    }
}

/// An empty request body reads as `{}` (see `ApiJson`): a body whose fields are all optional
/// may be left out.
fn optional_bodies(v: &mut Value) {
    let schemas = v["components"]["schemas"].clone();
    for (_, _, op) in operations(v) {
        let Some(body) = op.get_mut("requestBody") else {
            continue;
        };
        let schema = &body["content"]["application/json"]["schema"];
        let schema = match schema["$ref"].as_str() {
            Some(r) => &schemas[r.trim_start_matches("#/components/schemas/")],
            None => schema,
        };
        let needs_fields = schema["required"].as_array().is_some_and(|r| !r.is_empty())
            || schema.get("oneOf").is_some();
        body["required"] = needs_fields.into();
    }
}

/// Bounds of the query and path parameters that are declared as tuples on the handlers.
fn parameters(v: &mut Value) {
    let date_time = json!({"type": "string", "format": "date-time"});
    let status: Vec<&str> = PostStatus::ALL.iter().map(|s| s.as_str()).collect();
    for (method, path, op) in operations(v) {
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for p in params.iter_mut() {
            if p["in"] == "path" {
                // Ids have their type's shape and networks are the ones crier connects to;
                // anything else names nothing (404).
                let prefix = match (path.split('/').nth(2), p["name"].as_str()) {
                    (_, Some("platform")) => {
                        p["schema"] = json!({"type": "string", "enum": crier_networks::PLATFORMS});
                        continue;
                    }
                    (_, Some("delivery_id")) => DeliveryId::PREFIX,
                    (_, Some("run_id")) => AgentRunId::PREFIX,
                    (_, Some("number")) => {
                        p["schema"] = json!({"type": "integer", "minimum": 1, "maximum": 10});
                        continue;
                    }
                    (Some("carousels"), _) => CarouselId::PREFIX,
                    (Some("clips"), _) => ClipId::PREFIX,
                    (Some("agents"), _) => AgentId::PREFIX,
                    (Some("posts"), _) => PostId::PREFIX,
                    (Some("keys"), _) => KeyId::PREFIX,
                    (Some("accounts"), _) => AccountId::PREFIX,
                    (Some("feeds"), _) => FeedId::PREFIX,
                    (Some("media"), _) => MediaId::PREFIX,
                    (Some("webhooks"), _) => WebhookId::PREFIX,
                    (Some("brands"), _) => BrandId::PREFIX,
                    (Some("kb"), _) => DocumentId::PREFIX,
                    (Some("requests"), _) => RequestId::PREFIX,
                    _ => panic!("{method} {path}: a path parameter of unknown shape"),
                };
                p["schema"] = json!({"type": "string", "pattern": fields::id(prefix)});
                continue;
            }
            if p["in"] != "query" {
                continue;
            }
            let schema = match (method.as_str(), path.as_str(), p["name"].as_str()) {
                ("get", "/v1/posts" | "/v1/accounts/analytics", Some("from" | "to")) => {
                    date_time.clone()
                }
                ("get", "/v1/posts", Some("status")) => {
                    json!({"type": "string", "enum": status})
                }
                ("get", "/v1/posts", Some("account_id")) => {
                    json!({"type": "string", "pattern": fields::id(AccountId::PREFIX)})
                }
                ("get", "/v1/kb/documents" | "/v1/kb/search", Some("brand_id"))
                | ("get" | "put", "/v1/persona", Some("brand_id")) => {
                    json!({"type": "string", "pattern": fields::id(BrandId::PREFIX)})
                }
                ("get", "/v1/kb/search", Some("q")) => {
                    json!({"type": "string", "maxLength": crier_app::kb::MAX_QUERY})
                }
                ("get", "/v1/kb/search", Some("limit")) => {
                    json!({"type": "integer", "minimum": 1,
                           "maximum": crier_app::kb::MAX_SEARCH_LIMIT,
                           "default": crier_app::kb::DEFAULT_SEARCH_LIMIT})
                }
                ("get", "/v1/connect/{platform}", Some("redirect_uri" | "instance")) => {
                    json!({"type": "string", "format": "uri",
                           "maxLength": crier_app::connect::MAX_URI})
                }
                _ => continue,
            };
            p["schema"] = schema;
        }
    }
}

/// `POST /v1/posts/{id}/schedule` takes `scheduled_at` or `slot`, not both, not neither
/// (`null` counts as absent).
fn schedule_one_of(v: &mut Value) {
    if let Some(s) = v.pointer_mut("/components/schemas/SchedulePost") {
        s["oneOf"] = json!([
            {"required": ["scheduled_at"], "properties": {"scheduled_at": {"type": "string"}}},
            {"required": ["slot"], "properties": {"slot": {"type": "string"}}},
        ]);
    }
}

/// A new post goes to `account_ids` or to the accounts of `brand_id`: exactly one of them
/// (in `POST /v1/posts`, in each item of `POST /v1/batches` and in preflight); an edit names
/// at most one of them.
fn post_targets_one_of(v: &mut Value) {
    // `null` counts as absent: a `brand_id` counts when it is a string, `account_ids` when a
    // list.
    let brand = json!({"required": ["brand_id"], "properties": {"brand_id": {"type": "string"}}});
    let accounts =
        json!({"required": ["account_ids"], "properties": {"account_ids": {"type": "array"}}});
    // A new post's empty `account_ids` beside a `brand_id` names nothing (a client's default,
    // `crier_app::posts`): the list counts, and needs an item, only where it names the targets.
    let named = json!({"required": ["account_ids"],
        "properties": {"account_ids": {"type": "array", "minItems": 1}}});
    let one_of = json!([
        {"allOf": [named, {"not": brand}]},
        {"allOf": [brand, {"not": named}]},
    ]);
    for pointer in [
        "/components/schemas/CreatePost",
        "/components/schemas/CreateBatch/properties/posts/items",
    ] {
        if let Some(s) = v.pointer_mut(pointer) {
            if let Some(list) = s
                .pointer_mut("/properties/account_ids")
                .and_then(Value::as_object_mut)
            {
                list.remove("minItems");
            }
            s["oneOf"] = one_of.clone();
        }
    }
    if let Some(s) = v.pointer_mut("/components/schemas/UpdatePost") {
        s["not"] = json!({"allOf": [accounts, brand]});
    }
}

/// `POST /v1/kb/documents` takes `content` with the kinds `text`, `markdown` and `html`, and
/// `url` with the kind `url`, never the other (`null` counts as absent).
fn kb_document_one_of(v: &mut Value) {
    use crier_store::KbKind;
    let sources: Vec<&str> = KbKind::ALL
        .iter()
        .filter(|k| **k != KbKind::Url)
        .map(|k| k.as_str())
        .collect();
    if let Some(s) = v.pointer_mut("/components/schemas/CreateDocument") {
        s["oneOf"] = json!([
            {"required": ["kind", "content"], "properties": {
                "kind": {"type": "string", "enum": sources},
                "content": {"type": "string", "maxLength": crier_app::kb::MAX_CONTENT_CHARS},
                "url": {"type": "null"},
            }},
            {"required": ["kind", "url"], "properties": {
                "kind": {"type": "string", "enum": [KbKind::Url.as_str()]},
                "url": {"type": "string", "maxLength": crier_app::fetch::MAX_URL},
                "content": {"type": "null"},
            }},
        ]);
    }
}

/// Links from each create to the operations on what it created (`$response.body#/id`).
fn links(v: &mut Value) {
    let posts = [
        ("GetPost", "posts_get"),
        ("UpdatePost", "posts_update"),
        ("DeletePost", "posts_delete"),
        ("SchedulePost", "posts_schedule"),
        ("PublishPost", "posts_publish"),
        ("RetryPost", "posts_retry"),
        ("CancelPost", "posts_cancel"),
        ("ApprovePost", "posts_approve"),
        ("GetPostAnalytics", "posts_analytics"),
    ];
    let keys = [
        ("GetKey", "keys_get"),
        ("UpdateKey", "keys_update"),
        ("RevokeKey", "keys_revoke"),
        ("RotateKey", "keys_rotate"),
        ("GetKeyUsage", "keys_usage"),
    ];
    let accounts = [
        ("DisconnectAccount", "accounts_disconnect"),
        ("GetTimeline", "accounts_timeline"),
        ("SetFaults", "accounts_faults"),
    ];
    let feeds = [
        ("GetFeed", "feeds_get"),
        ("UpdateFeed", "feeds_update"),
        ("DeleteFeed", "feeds_delete"),
    ];
    let media = [
        ("GetMedia", "media_get"),
        ("UpdateMedia", "media_update"),
        ("DeleteMedia", "media_delete"),
        ("ConfirmMedia", "media_confirm"),
    ];
    let kb = [("GetDocument", "kb_get"), ("DeleteDocument", "kb_delete")];
    let webhooks = [
        ("GetWebhook", "webhooks_get"),
        ("UpdateWebhook", "webhooks_update"),
        ("DeleteWebhook", "webhooks_delete"),
        ("RotateWebhookSecret", "webhooks_rotate"),
        ("TestWebhook", "webhooks_test"),
        ("ListDeliveries", "webhooks_deliveries"),
    ];
    let agents = [
        ("GetAgent", "agents_get"),
        ("UpdateAgent", "agents_update"),
        ("DeleteAgent", "agents_delete"),
        ("RunAgent", "agents_run_now"),
        ("ListAgentRuns", "agents_runs"),
    ];
    let carousels = [
        ("GetCarousel", "carousels_get"),
        ("UpdateCarousel", "carousels_update"),
        ("DeleteCarousel", "carousels_delete"),
        ("ExportCarousel", "carousels_export"),
        ("CarouselPdf", "carousels_pdf"),
    ];
    let clips = [
        ("GetClipJob", "clips_get"),
        ("CancelClipJob", "clips_cancel"),
    ];
    let brands = [
        ("GetBrand", "brands_get"),
        ("UpdateBrand", "brands_update"),
        ("DeleteBrand", "brands_delete"),
    ];
    // (create path, its status, the (link name, operation) pairs, where the new id is)
    type Links<'a> = &'a [(&'a str, &'a str)];
    let table: [(&str, &str, Links, &str); 14] = [
        ("/v1/posts", "201", &posts, "$response.body#/id"),
        ("/v1/batches", "201", &posts, "$response.body#/data/0/id"),
        ("/v1/keys", "201", &keys, "$response.body#/id"),
        ("/v1/keys/{id}/rotate", "201", &keys, "$response.body#/id"),
        (
            "/v1/connect/{platform}",
            "201",
            &accounts,
            "$response.body#/id",
        ),
        ("/v1/feeds", "201", &feeds, "$response.body#/id"),
        ("/v1/agents", "201", &agents, "$response.body#/id"),
        ("/v1/carousels", "201", &carousels, "$response.body#/id"),
        ("/v1/clips", "202", &clips, "$response.body#/id"),
        ("/v1/webhooks", "201", &webhooks, "$response.body#/id"),
        ("/v1/media/upload-url", "201", &media, "$response.body#/id"),
        ("/v1/media/import", "201", &media, "$response.body#/id"),
        ("/v1/brands", "201", &brands, "$response.body#/id"),
        ("/v1/kb/documents", "201", &kb, "$response.body#/id"),
    ];
    for (path, status, targets, id) in table {
        let pointer = format!("/paths/{}/post/responses/{status}", path.replace('/', "~1"));
        let response = v
            .pointer_mut(&pointer)
            .unwrap_or_else(|| panic!("no {status} response of POST {path}"));
        let links: serde_json::Map<String, Value> = targets
            .iter()
            .map(|(name, op)| {
                (
                    (*name).to_owned(),
                    json!({"operationId": op, "parameters": {"id": id}}),
                )
            })
            .collect();
        response["links"] = Value::Object(links);
    }
    // A delivery of an endpoint, sent again.
    if let Some(r) = v.pointer_mut("/paths/~1v1~1webhooks~1{id}~1deliveries/get/responses/200") {
        r["links"] = json!({"RedeliverDelivery": {
            "operationId": "webhooks_redeliver",
            "parameters": {"id": "$request.path.id", "delivery_id": "$response.body#/data/0/id"},
        }});
    }
    // The posts of a newly connected account.
    if let Some(r) = v.pointer_mut("/paths/~1v1~1connect~1{platform}/post/responses/201/links") {
        r["ListPostsOfAccount"] = json!({
            "operationId": "posts_list",
            "parameters": {"account_id": "$response.body#/id"},
        });
    }
}

/// Schemas of request fields that carry an enum or a pattern, for `#[schema(schema_with = …)]`.
pub mod fields {
    use utoipa::PartialSchema;
    use utoipa::openapi::schema::{
        ArrayBuilder, KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
    };
    use utoipa::openapi::{RefOr, schema::AnyOfBuilder};

    /// What `str::trim` removes: Rust's `char::is_whitespace` (Unicode `White_Space`), as the
    /// inside of a regex character class.
    pub const WS: &str = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
    /// Rust's `char::is_control` (Unicode `Cc`), as the inside of a character class.
    pub const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";
    /// Neither control nor whitespace, as the inside of a character class.
    pub const VISIBLE_NOT: &str =
        r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

    /// A text whose trimmed value is not empty: it has a character that is not whitespace (and,
    /// as no text may, no NUL: see `extract::parse_json`).
    pub fn not_blank() -> String {
        format!(r"^[^\x00]*[^{WS}\x00][^\x00]*$")
    }

    /// A one-line text that is trimmed and must not be empty: no control characters once
    /// trimmed, at least one visible character.
    pub fn trimmed_line() -> String {
        format!("^[{WS}]*[^{CONTROL}]*[^{VISIBLE_NOT}][^{CONTROL}]*[{WS}]*$")
    }

    /// A one-line text that is trimmed and may be empty: no control characters once trimmed.
    pub fn trimmed_line_or_empty() -> String {
        format!("^[{WS}]*[^{CONTROL}]*[{WS}]*$")
    }

    /// The id of an object with `prefix` (`acct`): the prefix, `_`, 22 base62 digits.
    pub fn id(prefix: &str) -> String {
        format!("^{prefix}_[0-9A-Za-z]{{{}}}$", crier_core::ids::BODY_LEN)
    }

    /// An `http`/`https` URL with a host name, as the server's (WHATWG) URL parser reads it:
    /// surrounding spaces and controls ignored, the scheme in any case, host labels of any
    /// ASCII but the forbidden code points (the last one not numeric, which would make it an
    /// IPv4 address), a port, then anything. `lead` is what else may come first (feeds trim
    /// Unicode whitespace before parsing).
    pub fn url(lead: &str) -> String {
        let label = r#"!"$&'()*+,\-0-9;=A-Z_`a-z{}~"#;
        let last = r#"!"$&'()*+,\-;=A-Z_`a-z{}~"#;
        format!(
            r"^[{lead}]*[\x01-\x20]*[Hh][Tt][Tt][Pp][Ss]?://([{label}]+\.)*[{last}][{label}]*\.?(:[0-9]{{0,4}})?([/?#][^\x00]*)?[\x01-\x20]*[{lead}]*$"
        )
    }

    /// A feed template: every `{name}` (lower-case letters, digits, `_`) is `{title}`, `{link}`
    /// or `{summary}`, and one of them occurs. Other braces are text.
    pub fn template() -> String {
        let known = crate::routes::feeds::PLACEHOLDERS.join("|");
        let token = format!(
            r"[^{{\x00]|\{{(?:{known})?\}}|\{{[a-z0-9_]*(?:\{{[a-z0-9_]*)*(?:[^{{}}a-z0-9_\x00]|\{{(?:{known})?\}}|$)"
        );
        format!(r"^(?:{token})*(?:\{{[a-z0-9_]*)*\{{(?:{known})\}}(?:{token})*$")
    }

    fn string() -> ObjectBuilder {
        ObjectBuilder::new().schema_type(Type::String)
    }

    fn nullable(schema_type: Type) -> SchemaType {
        SchemaType::from_iter([schema_type, Type::Null])
    }

    fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>, optional: bool) -> ObjectBuilder {
        let mut values: Vec<serde_json::Value> = values.into_iter().map(Into::into).collect();
        let builder = if optional {
            values.push(serde_json::Value::Null);
            ObjectBuilder::new().schema_type(nullable(Type::String))
        } else {
            string()
        };
        builder.enum_values(Some(values))
    }

    fn text(pattern: String, max: usize, optional: bool, description: &str) -> Object {
        let builder = if optional {
            ObjectBuilder::new().schema_type(nullable(Type::String))
        } else {
            string()
        };
        builder
            .pattern(Some(pattern))
            .max_length(Some(max))
            .description(Some(description))
            .build()
    }

    fn array(items: impl Into<RefOr<Schema>>, optional: bool) -> ArrayBuilder {
        let builder = ArrayBuilder::new().items(items.into());
        if optional {
            builder.schema_type(nullable(Type::Array))
        } else {
            builder
        }
    }

    /// Scopes and their aliases, as `POST /v1/keys` accepts them.
    pub const SCOPE_ALIASES: [&str; 6] = [
        "media:upload",
        "connections:read",
        "connections:write",
        "insights:read",
        "schedule:read",
        "schedule:write",
    ];

    fn scope_list(optional: bool) -> ArrayBuilder {
        let names = crier_core::Scope::ALL
            .iter()
            .map(|s| s.as_str())
            .chain(SCOPE_ALIASES);
        array(string_enum(names, false), optional)
            .min_items(Some(1))
            .max_items(Some(crate::keys::MAX_SCOPES))
            .description(Some(
                "Scopes or aliases; stored as what they expand to. At least one.",
            ))
    }

    pub fn scopes() -> ArrayBuilder {
        scope_list(false).examples([serde_json::json!(["posts:read", "posts:write"])])
    }

    pub fn scopes_optional() -> ArrayBuilder {
        scope_list(true)
    }

    pub fn key_mode() -> Object {
        string_enum(["live", "test"], true)
            .description(Some(
                "`live` or `test`; defaults to the creating key's mode.",
            ))
            .build()
    }

    pub fn client_name() -> Object {
        text(
            trimmed_line(),
            crier_app::devices::MAX_CLIENT_NAME,
            false,
            "The device or program asking, shown to the user: trimmed, not empty, one line.",
        )
    }

    /// RFC 7591 `redirect_uris`.
    pub fn redirect_uris() -> ArrayBuilder {
        array(
            string().max_length(Some(crier_app::oauth_server::MAX_URI)),
            false,
        )
        .min_items(Some(1))
        .max_items(Some(crier_app::oauth_server::MAX_REDIRECT_URIS))
        .description(Some(
            "Where the client may be sent back: https, loopback http (any port matches), \
                 or a reverse-domain private scheme; no fragment.",
        ))
    }

    /// RFC 7591 `client_name`.
    pub fn oauth_client_name() -> Object {
        text(
            trimmed_line_or_empty(),
            crier_app::oauth_server::MAX_CLIENT_NAME,
            true,
            "Shown on the consent page (default: the host of the first redirect URI).",
        )
    }

    pub fn token_endpoint_auth_method() -> Object {
        string_enum(["none", "client_secret_basic", "client_secret_post"], true)
            .description(Some(
                "`none` (public client, PKCE only) or a secret issued once (default \
                 `client_secret_basic`).",
            ))
            .build()
    }

    pub fn grant_types() -> ArrayBuilder {
        array(
            string_enum(["authorization_code", "refresh_token"], false),
            true,
        )
        .max_items(Some(2))
    }

    pub fn response_types() -> ArrayBuilder {
        array(string_enum(["code"], false), true).max_items(Some(1))
    }

    pub fn key_name() -> Object {
        text(
            trimmed_line(),
            crate::keys::MAX_NAME,
            true,
            "A name to recognise the key by (default \"API key\"): trimmed, not empty, no \
             control characters.",
        )
    }

    pub fn key_description() -> Object {
        text(
            trimmed_line_or_empty(),
            crate::keys::MAX_DESCRIPTION,
            true,
            "Trimmed; no control characters.",
        )
    }

    /// An IPv4/IPv6 address or a CIDR block.
    fn ip_rule() -> AnyOfBuilder {
        let v4_octet = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
        AnyOfBuilder::new()
            .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv4))))
            .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv6))))
            .item(string().pattern(Some(format!(
                r"^({v4_octet}\.){{3}}{v4_octet}/(3[0-2]|[12]?[0-9])$"
            ))))
            .item(string().pattern(Some(
                r"^([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}/(12[0-8]|1[01][0-9]|[1-9]?[0-9])$",
            )))
    }

    pub fn allowed_ips() -> ArrayBuilder {
        array(ip_rule(), true)
            .max_items(Some(crate::keys::MAX_RESTRICTIONS))
            .description(Some(
                "IPv4/IPv6 addresses or CIDR blocks; omitted on create: the creating key's.",
            ))
    }

    pub fn allowed_origins() -> ArrayBuilder {
        let origin = string().pattern(Some(
            r"^[Hh][Tt][Tt][Pp][Ss]?://(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,4})?/?$",
        ));
        array(origin, true)
            .max_items(Some(crate::keys::MAX_RESTRICTIONS))
            .description(Some(
                "Browser origins such as `https://app.example.com` or `https://*.example.com`.",
            ))
    }

    fn id_list(prefix: &str, max: usize, optional: bool, description: &str) -> ArrayBuilder {
        array(string().pattern(Some(id(prefix))), optional)
            .max_items(Some(max))
            .unique_items(true)
            .description(Some(description))
    }

    pub fn allowed_brand_ids() -> ArrayBuilder {
        id_list(
            crier_core::ids::BrandId::PREFIX,
            crier_app::reach::MAX_ALLOWED,
            true,
            "Brands of the key's workspace and mode the key is limited to (with \
             `allowed_account_ids`; both empty: no limit); omitted on create: the creating \
             key's. A limited key reaches these brands' accounts as they are at each request.",
        )
    }

    pub fn allowed_account_ids() -> ArrayBuilder {
        id_list(
            crier_core::ids::AccountId::PREFIX,
            crier_app::reach::MAX_ALLOWED,
            true,
            "Accounts of the key's workspace and mode the key is limited to, besides its \
             brands' accounts; omitted on create: the creating key's.",
        )
    }

    pub fn brand_id() -> Object {
        ObjectBuilder::new()
            .schema_type(nullable(Type::String))
            .pattern(Some(id(crier_core::ids::BrandId::PREFIX)))
            .description(Some(
                "A brand of this workspace and mode: the post goes to its connected accounts \
                 (at most 20), instead of `account_ids`. A brand with no connected account \
                 is refused (`400 invalid_request`, `param: brand_id`).",
            ))
            .build()
    }

    fn brand_name_field(optional: bool) -> Object {
        text(
            trimmed_line(),
            crate::routes::brands::MAX_NAME,
            optional,
            "1 to 100 characters, trimmed, on one line; unique in the workspace and mode.",
        )
    }

    pub fn brand_name() -> Object {
        brand_name_field(false)
    }

    pub fn brand_name_optional() -> Object {
        brand_name_field(true)
    }

    fn brand_account_list(optional: bool) -> ArrayBuilder {
        id_list(
            crier_core::ids::AccountId::PREFIX,
            crate::routes::brands::MAX_BRAND_ACCOUNTS,
            optional,
            "Accounts of the workspace and mode, each once; an account may be in several brands.",
        )
    }

    pub fn brand_accounts() -> ArrayBuilder {
        brand_account_list(false)
    }

    pub fn brand_accounts_optional() -> ArrayBuilder {
        brand_account_list(true)
    }

    pub fn brand_ids() -> ArrayBuilder {
        id_list(
            crier_core::ids::BrandId::PREFIX,
            crate::routes::brands::MAX_BRANDS as usize,
            false,
            "Every brand of the mode (that the key reaches), each once, in the new order.",
        )
    }

    /// As `crier_app::personas` checks it: no control characters but line breaks and tabs
    /// once trimmed. Whitespace that is a control (vertical tab, form feed, NEL) is trimmed
    /// away at the ends, as any whitespace is, so the pattern allows it there.
    pub fn voice_description() -> Object {
        ObjectBuilder::new()
            .schema_type(nullable(Type::String))
            .max_length(Some(crate::routes::brands::MAX_DESCRIPTION))
            .pattern(Some(format!(
                r"^[{WS}]*[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*[{WS}]*$"
            )))
            .description(Some(
                "Who the brand is and how it speaks; trimmed, line breaks allowed.",
            ))
            .build()
    }

    pub fn voice_tone() -> Object {
        text(
            trimmed_line_or_empty(),
            crate::routes::brands::MAX_TONE,
            true,
            "The tone (`friendly`, `formal`); trimmed, on one line.",
        )
    }

    pub fn voice_words() -> ArrayBuilder {
        array(
            string()
                .min_length(Some(1))
                .max_length(Some(crate::routes::brands::MAX_WORD))
                .pattern(Some(trimmed_line())),
            false,
        )
        .max_items(Some(crate::routes::brands::MAX_WORDS))
        .description(Some(
            "Words or phrases, each once (ignoring case), 1 to 50 characters on one line.",
        ))
    }

    fn account_list(optional: bool) -> ArrayBuilder {
        array(
            string().pattern(Some(id(crier_core::ids::AccountId::PREFIX))),
            optional,
        )
        .min_items(Some(1))
        .max_items(Some(crate::routes::posts::MAX_ACCOUNTS))
        .unique_items(true)
        .description(Some(
            "Connected accounts of the key's mode (test keys: sandbox accounts only), \
                 each once.",
        ))
    }

    pub fn account_ids() -> ArrayBuilder {
        account_list(false)
    }

    pub fn account_ids_optional() -> ArrayBuilder {
        account_list(true)
    }

    fn post_text() -> ObjectBuilder {
        string()
            .min_length(Some(1))
            .max_length(Some(crate::routes::posts::MAX_TEXT))
            .pattern(Some(not_blank()))
    }

    pub fn post_body() -> Object {
        post_text()
            .description(Some("The text (the first part of a thread); not blank."))
            .examples(["Launch day is here."])
            .build()
    }

    pub fn post_body_optional() -> Object {
        post_text()
            .schema_type(nullable(Type::String))
            .description(Some("The text (the first part of a thread); not blank."))
            .build()
    }

    fn thread_list(optional: bool) -> ArrayBuilder {
        array(post_text(), optional)
            .max_items(Some(crate::routes::posts::MAX_THREAD))
            .description(Some(
                "Further parts, published as replies in order; none blank.",
            ))
    }

    pub fn thread() -> ArrayBuilder {
        thread_list(false)
    }

    pub fn thread_optional() -> ArrayBuilder {
        thread_list(true)
    }

    fn media_list(optional: bool) -> ArrayBuilder {
        array(
            string().pattern(Some(id(crier_core::ids::MediaId::PREFIX))),
            optional,
        )
        .max_items(Some(crier_app::media::MAX_POST_MEDIA))
        .description(Some(
            "Ready media of this workspace and mode (`POST /v1/media/upload-url`, then \
             confirm), at most 10, none twice. Each target network's media rules (count, \
             types, size, dimensions, duration) are checked when the post is scheduled or \
             published.",
        ))
    }

    /// The media types crier accepts.
    pub fn media_type() -> Object {
        string_enum(
            crier_media::sniff::IMAGE_TYPES
                .iter()
                .chain(crier_media::sniff::VIDEO_TYPES.iter())
                .copied(),
            false,
        )
        .build()
    }

    pub fn media_ids() -> ArrayBuilder {
        media_list(false)
    }

    pub fn media_ids_optional() -> ArrayBuilder {
        media_list(true)
    }

    /// What each network's options are, from the networks' own rules.
    fn network_options_doc() -> String {
        let mut doc = String::from(
            "Options of the account's network, checked against its rules when the post is \
             scheduled or published (preflight names each problem's rule, \
             `{platform}.options.{name}` or `{platform}.options.unknown`).",
        );
        for (platform, options) in crier_networks::option_rules() {
            if options.is_empty() {
                continue;
            }
            let list: Vec<String> = options
                .iter()
                .map(|o| {
                    let kind = match &o.kind {
                        crier_networks::OptionKind::Text { max } => format!("text ≤ {max}"),
                        crier_networks::OptionKind::Choice(c) => c.join(" | "),
                        crier_networks::OptionKind::Bool => "boolean".into(),
                        crier_networks::OptionKind::Tags {
                            max_count,
                            max_total,
                            ..
                        } => {
                            format!("≤ {max_count} tags, ≤ {max_total} characters")
                        }
                    };
                    format!("`{}` ({kind}): {}", o.name, o.about)
                })
                .collect();
            doc.push_str(&format!(" **{platform}**: {}.", list.join("; ")));
        }
        doc
    }

    fn override_map(optional: bool) -> Object {
        let text = || post_text().schema_type(nullable(Type::String));
        let one = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("body", text())
            .property(
                "thread",
                array(text().schema_type(Type::String), true)
                    .max_items(Some(crate::routes::posts::MAX_THREAD)),
            )
            .property(
                "visibility",
                ObjectBuilder::new()
                    .schema_type(nullable(Type::String))
                    .enum_values(Some(
                        crier_app::posts::VISIBILITIES
                            .iter()
                            .map(|v| Some(*v))
                            .chain([None]),
                    ))
                    .description(Some("Who sees it (Mastodon).")),
            )
            .property(
                "spoiler_text",
                ObjectBuilder::new()
                    .schema_type(nullable(Type::String))
                    .max_length(Some(crier_app::posts::MAX_SPOILER))
                    .description(Some("A content warning shown before the text (Mastodon).")),
            )
            .property(
                "language",
                ObjectBuilder::new()
                    .schema_type(nullable(Type::String))
                    .pattern(Some("^[a-z]{2,3}$"))
                    .description(Some("The text's ISO 639 language code.")),
            )
            .property(
                "options",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .max_properties(Some(crier_app::posts::MAX_OPTIONS))
                    .property_names(Some(string().min_length(Some(1)).max_length(Some(64))))
                    .additional_properties(Some(RefOr::<Schema>::T(Schema::OneOf(
                        utoipa::openapi::schema::OneOfBuilder::new()
                            .item(string().max_length(Some(crier_app::posts::MAX_OPTION_TEXT)))
                            .item(ObjectBuilder::new().schema_type(Type::Boolean))
                            .item(
                                array(
                                    string().max_length(Some(crier_app::posts::MAX_OPTION_TEXT)),
                                    false,
                                )
                                .max_items(Some(crier_app::posts::MAX_OPTION_ITEMS)),
                            )
                            .build(),
                    ))))
                    .description(Some(network_options_doc())),
            )
            .additional_properties(Some(
                utoipa::openapi::schema::AdditionalProperties::<Schema>::FreeForm(false),
            ));
        let schema_type = if optional {
            nullable(Type::Object)
        } else {
            SchemaType::Type(Type::Object)
        };
        ObjectBuilder::new()
            .schema_type(schema_type)
            .property_names(Some(
                string().pattern(Some(id(crier_core::ids::AccountId::PREFIX))),
            ))
            .additional_properties(Some(one))
            .max_properties(Some(crate::routes::posts::MAX_ACCOUNTS))
            .description(Some(
                "Per-account text and options: `{\"acct_…\": {\"body\": \"…\", \"thread\": […], \
                 \"visibility\": \"unlisted\", \"spoiler_text\": \"…\", \"language\": \"en\"}}`; \
                 only accounts in `account_ids`.",
            ))
            .build()
    }

    pub fn overrides() -> Object {
        override_map(false)
    }

    pub fn overrides_optional() -> Object {
        override_map(true)
    }

    /// The items of `POST /v1/batches`: a post as `POST /v1/posts` takes it, plus
    /// `scheduled_at`.
    pub fn batch_posts() -> ArrayBuilder {
        let mut item = match crate::routes::posts::CreatePost::schema() {
            RefOr::T(Schema::Object(o)) => o,
            _ => unreachable!("CreatePost is an object schema"),
        };
        item.properties.insert(
            "scheduled_at".into(),
            ObjectBuilder::new()
                .schema_type(nullable(Type::String))
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .description(Some(
                    "Schedule this post at once (in the future; needs `posts:publish`).",
                ))
                .into(),
        );
        ArrayBuilder::new()
            .items(item)
            .min_items(Some(1))
            .max_items(Some(crate::routes::posts::MAX_BATCH))
            .description(Some("1 to 100 posts, created all or nothing."))
    }

    pub fn slot() -> Object {
        string_enum(["next"], true)
            .description(Some("`next`: the next free slot of the workspace's queue."))
            .examples(["next"])
            .build()
    }

    /// Week days as `PUT /v1/queue/slots` takes them (full or three-letter names).
    pub fn weekday() -> Object {
        let days: Vec<&str> = (1..=7)
            .map(|weekday| crier_core::queue::Slot { weekday, minute: 0 }.day_name())
            .collect();
        string_enum(
            days.iter().copied().chain(days.iter().map(|d| &d[..3])),
            false,
        )
        .description(Some("`monday` … `sunday` (or `mon` … `sun`)."))
        .examples(["monday"])
        .build()
    }

    pub fn slot_time() -> Object {
        string()
            .pattern(Some(r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))
            .description(Some("Local time, `HH:MM` (24-hour)."))
            .examples(["09:30"])
            .build()
    }

    /// A network, for the AI endpoints.
    pub fn platform() -> Object {
        string_enum(crier_networks::PLATFORMS.iter().copied(), false)
            .examples(["bluesky"])
            .build()
    }

    pub fn platform_optional() -> Object {
        string_enum(crier_networks::PLATFORMS.iter().copied(), true)
            .description(Some(
                "The network the text is for (default: the strictest of the brand's networks, \
                 else the sandbox's).",
            ))
            .build()
    }

    pub fn agent_output() -> Object {
        string_enum(
            crier_store::AgentOutput::ALL.iter().map(|o| o.as_str()),
            true,
        )
        .description(Some(
            "`draft` (default), `pending_approval` (posts wait for a person) or `queue` (the \
                 next free queue slots; needs `posts:publish`).",
        ))
        .build()
    }

    pub fn agent_feed_ids() -> ArrayBuilder {
        id_list(
            crier_core::ids::FeedId::PREFIX,
            crier_app::agents::MAX_FEEDS,
            true,
            "Feeds of this workspace and mode whose entries since the last run are subjects, \
             at most 10.",
        )
    }

    /// A text of 1 to `max` characters, not only spaces (or absent).
    fn words(max: usize) -> Object {
        ai_text(max, true)
    }

    pub fn agent_name() -> Object {
        ai_text(crier_app::agents::MAX_NAME, false)
    }

    pub fn agent_name_optional() -> Object {
        words(crier_app::agents::MAX_NAME)
    }

    pub fn agent_instructions() -> Object {
        ai_text(crier_app::agents::MAX_INSTRUCTIONS, false)
    }

    pub fn agent_instructions_optional() -> Object {
        words(crier_app::agents::MAX_INSTRUCTIONS)
    }

    pub fn carousel_text() -> Object {
        words(crier_app::carousels::MAX_TEXT)
    }

    pub fn carousel_prompt() -> Object {
        words(crier_app::carousels::MAX_PROMPT)
    }

    pub fn carousel_title() -> Object {
        words(crier_app::carousels::MAX_TITLE)
    }

    pub fn carousel_call_to_action() -> Object {
        words(crier_app::carousels::MAX_CTA)
    }

    pub fn media_id() -> Object {
        string()
            .pattern(Some(id(crier_core::ids::MediaId::PREFIX)))
            .description(Some("A ready video of this workspace and mode."))
            .build()
    }

    pub fn clip_aspect() -> Object {
        string_enum(crier_app::clips::ASPECTS, true)
            .description(Some(
                "`9:16` (default, 720 × 1280), `1:1` (720 × 720) or `16:9` (1280 × 720).",
            ))
            .build()
    }

    pub fn clip_fit() -> Object {
        string_enum(crier_app::clips::FITS, true)
            .description(Some(
                "`crop` (default: the middle of the picture) or `letterbox` (all of it, with bars).",
            ))
            .build()
    }

    pub fn carousel_template() -> Object {
        string_enum(
            crier_app::carousels::Template::ALL
                .iter()
                .map(|t| t.as_str()),
            true,
        )
        .description(Some("`light` (default), `dark` or `bold`."))
        .build()
    }

    pub fn carousel_size() -> Object {
        string_enum(
            crier_app::carousels::Size::ALL.iter().map(|t| t.as_str()),
            true,
        )
        .description(Some(
            "`square` (1080 × 1080, default) or `portrait` (1080 × 1350).",
        ))
        .build()
    }

    pub fn brand_id_optional() -> Object {
        ObjectBuilder::new()
            .schema_type(nullable(Type::String))
            .pattern(Some(id(crier_core::ids::BrandId::PREFIX)))
            .description(Some("A brand of the key's mode: its voice and knowledge."))
            .build()
    }

    fn ai_text(max: usize, optional: bool) -> Object {
        let builder = if optional {
            ObjectBuilder::new().schema_type(nullable(Type::String))
        } else {
            string()
        };
        builder
            .min_length(Some(1))
            .max_length(Some(max))
            .pattern(Some(not_blank()))
            .build()
    }

    /// A text to work on: 1 to 10000 characters, not only spaces.
    pub fn ai_text_input() -> Object {
        ai_text(crier_app::ai::MAX_TEXT, false)
    }

    pub fn ai_prompt() -> Object {
        ai_text(crier_app::ai::MAX_PROMPT, false)
    }

    pub fn ai_topic_optional() -> Object {
        ai_text(crier_app::ai::MAX_TOPIC, true)
    }

    pub fn post_id() -> Object {
        string()
            .pattern(Some(id(crier_core::ids::PostId::PREFIX)))
            .build()
    }

    pub fn fault_kind() -> Object {
        string_enum(["error", "timeout", "rate_limit"], false)
            .description(Some(
                "`error`, `timeout` (the post lands but the answer is lost) or `rate_limit`.",
            ))
            .examples(["error"])
            .build()
    }

    pub fn handle() -> Object {
        string()
            .pattern(Some(format!("^[{WS}]*[A-Za-z0-9_.-]{{1,50}}[{WS}]*$")))
            .description(Some(
                "The account's handle: 1 to 50 letters, digits, `_`, `.` or `-` (trimmed).",
            ))
            .examples(["brand"])
            .build()
    }

    pub fn timezone() -> Object {
        let mut names: Vec<String> = jiff::tz::db()
            .available()
            .map(|n| n.as_str().to_owned())
            .filter(|n| n.len() <= 64)
            .collect();
        names.sort();
        let mut values: Vec<serde_json::Value> = names.into_iter().map(Into::into).collect();
        values.push(serde_json::Value::Null);
        ObjectBuilder::new()
            .schema_type(nullable(Type::String))
            .enum_values(Some(values))
            .description(Some("An IANA time zone name such as `America/New_York`."))
            .build()
    }

    fn url_field(optional: bool, lead: &str, description: &str) -> Object {
        let builder = if optional {
            ObjectBuilder::new().schema_type(nullable(Type::String))
        } else {
            string()
        };
        builder
            .pattern(Some(url(lead)))
            .max_length(Some(2048))
            .description(Some(description))
            .examples(["https://example.com/hooks/crier"])
            .build()
    }

    const WEBHOOK_URL: &str = "An `http`/`https` URL. Unless the operator allows private \
        networks, its host must not resolve to private, loopback or link-local addresses.";

    pub fn webhook_url() -> Object {
        url_field(false, r"\x01-\x20", WEBHOOK_URL)
    }

    pub fn webhook_url_optional() -> Object {
        url_field(true, r"\x01-\x20", WEBHOOK_URL)
    }

    const FEED_URL: &str = "The feed's `http`/`https` URL (RSS 2.0, Atom or JSON Feed). Unless \
        the operator allows private networks, its host must not resolve to private, loopback or \
        link-local addresses. A new URL starts over: only entries published after the change \
        are posted (plus `backfill`).";

    /// The URL of a media import.
    pub fn import_url() -> Object {
        url_field(
            false,
            WS,
            "The `http`/`https` URL of an image or video, which the server fetches. Unless the \
             operator allows private networks, its host must not resolve to private, loopback or \
             link-local addresses; at most 5 redirects, each checked again; at most 64 MiB (or \
             the configured maximum media size, if smaller).",
        )
    }

    pub fn feed_url() -> Object {
        url_field(false, WS, FEED_URL)
    }

    pub fn feed_url_optional() -> Object {
        url_field(true, WS, FEED_URL)
    }

    fn event_list(optional: bool) -> ArrayBuilder {
        let names = std::iter::once("*").chain(crier_store::event_types::ALL.iter().copied());
        array(string_enum(names, false), optional)
            .min_items(Some(1))
            .max_items(Some(crate::routes::webhooks::MAX_EVENTS))
            .description(Some("Event types to receive (`*` for all), 1 to 20."))
    }

    pub fn events() -> ArrayBuilder {
        event_list(false).examples([serde_json::json!(["post.published", "key.revoked"])])
    }

    pub fn events_optional() -> ArrayBuilder {
        event_list(true)
    }

    pub fn feed_template() -> Object {
        text(
            template(),
            crate::routes::feeds::MAX_TEMPLATE,
            true,
            "1 to 1000 characters with at least one of `{title}`, `{link}`, `{summary}` and \
             no other `{placeholder}` (default `{title} {link}`).",
        )
    }

    pub fn feed_mode() -> Object {
        string_enum(crier_store::FeedMode::ALL.iter().map(|m| m.as_str()), true)
            .description(Some(
                "`draft` (default), `queue` (the next free queue slot) or `publish` (at once); the \
             last two need `posts:publish`.",
            ))
            .build()
    }

    pub fn kb_kind() -> Object {
        string_enum(crier_store::KbKind::ALL.iter().map(|k| k.as_str()), false)
            .description(Some(
                "What `content` is (`text`, `markdown`, `html`), or `url`: the page at `url` is \
                 fetched.",
            ))
            .examples(["markdown"])
            .build()
    }

    pub fn kb_title() -> Object {
        text(
            trimmed_line(),
            crier_app::kb::MAX_TITLE,
            true,
            "1 to 200 characters (trimmed), no control characters; default: the source's own \
             title (an HTML `<title>` or the first heading), else the URL or the start of the \
             text.",
        )
    }

    pub fn kb_content() -> Object {
        ObjectBuilder::new()
            .schema_type(nullable(Type::String))
            .pattern(Some(format!("^[^\\x00]*[^{VISIBLE_NOT}][^\\x00]*$")))
            .max_length(Some(crier_app::kb::MAX_CONTENT_CHARS))
            .description(Some(
                "The source, with the kinds `text`, `markdown` and `html`: at most 500,000 \
                 characters (and the whole JSON body at most 1 MiB), with some text once its \
                 markup is removed (`400`, `param` `content`, otherwise). It is cut into \
                 passages of at most 1,000 characters, at most 2,000 of them.",
            ))
            .examples(["# Opening hours\n\nWe open at 7am, Monday to Saturday."])
            .build()
    }

    pub fn kb_url() -> Object {
        url_field(
            true,
            WS,
            "With the kind `url`: the page to read (HTML, plain text or Markdown, at most 2 \
             MiB). Unless the operator allows private networks, its host must not resolve to \
             private, loopback or link-local addresses. A page that cannot be fetched is `400` \
             with `param` `url`, and the message says why.",
        )
    }

    pub fn kb_brand_id_optional() -> Object {
        ObjectBuilder::new()
            .schema_type(nullable(Type::String))
            .pattern(Some(id(crier_core::ids::BrandId::PREFIX)))
            .description(Some(
                "The brand whose knowledge this is; without it, the whole workspace's.",
            ))
            .build()
    }
}
