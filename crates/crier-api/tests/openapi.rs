//! The OpenAPI description states the bounds the server enforces, so clients and fuzzers that
//! follow it are not refused for its shape (`scripts/fuzz-api.sh` checks that against a real
//! server). These tests catch drift without the fuzzer: every request field is bounded, the
//! literal bounds on the request structs equal the constants the handlers use, operation ids
//! are unique and every link leads somewhere.

use std::collections::BTreeSet;

use crier_api::extract::{MAX_LIMIT, MAX_OFFSET};
use crier_api::routes::{feeds, posts, queue, webhooks};
use serde_json::{Value, json};

fn doc() -> Value {
    serde_json::to_value(crier_api::routes::openapi()).unwrap()
}

/// Follows a local `$ref`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("a local reference");
            resolve(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("{r} resolves")),
            )
        }
        None => schema,
    }
}

fn types(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Every unbounded value under `schema`, as `where: what is missing`.
/// `body`: a request body's value, where no text may hold NUL (a query's may).
fn unbounded(doc: &Value, at: &str, schema: &Value, body: bool, out: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, s) in schema[key].as_array().into_iter().flatten().enumerate() {
            unbounded(doc, &format!("{at}/{key}[{i}]"), s, body, out);
        }
    }
    let t = types(schema);
    if t.contains(&"string") {
        let bounded = schema.get("maxLength").is_some()
            || schema.get("enum").is_some()
            || schema.get("format").is_some()
            || schema["pattern"]
                .as_str()
                .is_some_and(|p| p.starts_with('^'));
        if !bounded {
            out.push(format!(
                "{at}: string without maxLength, enum, format or pattern"
            ));
        }
        // No text takes NUL (`extract::parse_json`): an anchored pattern, an enum or a format
        // says so (the patterns are built to exclude it; the fuzzer holds them to it).
        let nul_free = schema.get("enum").is_some()
            || schema.get("format").is_some()
            || schema["pattern"]
                .as_str()
                .is_some_and(|p| p.starts_with('^') && p.ends_with('$'));
        if body && !nul_free {
            out.push(format!(
                "{at}: string without an anchored pattern, enum or format"
            ));
        }
    }
    if t.contains(&"integer")
        && (schema.get("minimum").is_none() || schema.get("maximum").is_none())
    {
        out.push(format!("{at}: integer without minimum and maximum"));
    }
    if t.contains(&"array") {
        match schema["maxItems"].as_u64() {
            None => out.push(format!("{at}: array without maxItems")),
            // Must be empty: what its items would be does not matter.
            Some(0) => {}
            Some(_) => unbounded(doc, &format!("{at}[]"), &schema["items"], body, out),
        }
    }
    if t.contains(&"object") {
        if schema.get("properties").is_none() && schema.get("additionalProperties").is_none() {
            out.push(format!("{at}: object without properties"));
        }
        for (name, s) in schema["properties"].as_object().into_iter().flatten() {
            unbounded(doc, &format!("{at}.{name}"), s, body, out);
        }
        if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            if schema.get("maxProperties").is_none() {
                out.push(format!("{at}: map without maxProperties"));
            }
            if body && schema.get("propertyNames").is_none() {
                out.push(format!("{at}: map without propertyNames"));
            }
            unbounded(doc, &format!("{at}.*"), extra, body, out);
        }
    }
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((method.to_uppercase(), path.clone(), op));
        }
    }
    ops
}

#[test]
fn every_request_field_is_bounded() {
    let doc = doc();
    let mut out = Vec::new();
    for (method, path, op) in operations(&doc) {
        if let Some(body) = op.pointer("/requestBody/content/application~1json/schema") {
            unbounded(&doc, &format!("{method} {path} body"), body, true, &mut out);
        }
        for p in op["parameters"].as_array().into_iter().flatten() {
            if p["in"] == "query" {
                let at = format!("{method} {path} ?{}", p["name"].as_str().unwrap());
                unbounded(&doc, &at, &p["schema"], false, &mut out);
            }
        }
    }
    assert!(
        out.is_empty(),
        "unbounded request values:\n{}",
        out.join("\n")
    );
}

#[test]
fn every_operation_documents_the_400_of_an_unknown_query_parameter() {
    let doc = doc();
    for (method, path, op) in operations(&doc) {
        if !path.starts_with("/v1/") {
            continue;
        }
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.contains_key("400") || responses.contains_key("4XX"),
            "{method} {path}: {:?}",
            responses.keys().collect::<Vec<_>>()
        );
    }
}

#[test]
fn pagination_bounds_are_the_extractors() {
    let doc = doc();
    let mut lists = 0;
    for (method, path, op) in operations(&doc) {
        for p in op["parameters"].as_array().into_iter().flatten() {
            let (min, max) = match p["name"].as_str() {
                Some("limit") => (1, MAX_LIMIT),
                Some("offset") => (0, MAX_OFFSET),
                _ => continue,
            };
            lists += 1;
            assert_eq!(p["in"], "query", "{method} {path}");
            assert_eq!(p["required"], false, "{method} {path}");
            assert_eq!(p["schema"]["minimum"], min, "{method} {path} {}", p["name"]);
            assert_eq!(p["schema"]["maximum"], max, "{method} {path} {}", p["name"]);
        }
    }
    assert!(
        lists >= 2 * 8,
        "every list takes limit and offset ({lists})"
    );
}

/// The literal `#[schema(...)]` bounds equal the handlers' constants.
#[test]
fn literal_bounds_equal_the_handlers_constants() {
    let doc = doc();
    let prop = |schema: &str, field: &str| -> Value {
        doc.pointer(&format!("/components/schemas/{schema}/properties/{field}"))
            .unwrap_or_else(|| panic!("{schema}.{field}"))
            .clone()
    };
    let bounds = |v: Value| (v["minimum"].clone(), v["maximum"].clone());
    let n = |x: i64| Value::from(x);
    assert_eq!(
        bounds(prop("RotateKey", "overlap_seconds")),
        (n(0), n(crier_api::keys::MAX_OVERLAP_SECONDS.into()))
    );
    assert_eq!(
        bounds(prop("RotateSecret", "overlap_seconds")),
        (n(0), n(webhooks::MAX_OVERLAP_SECONDS.into()))
    );
    let days = doc
        .pointer("/paths/~1v1~1keys~1{id}~1usage/get/parameters")
        .and_then(|ps| ps.as_array())
        .and_then(|ps| ps.iter().find(|p| p["name"] == "days"))
        .expect("GET /v1/keys/{id}/usage ?days");
    assert_eq!(
        bounds(days["schema"].clone()),
        (n(1), n(crier_api::routes::keys::MAX_USAGE_DAYS.into()))
    );
    assert_eq!(
        days["schema"]["default"],
        n(crier_api::routes::keys::DEFAULT_USAGE_DAYS.into())
    );
    assert_eq!(
        bounds(prop("RateLimitInput", "per_minute")),
        (n(1), n(crier_core::plans::MAX_PER_MINUTE.into()))
    );
    assert_eq!(
        bounds(prop("RateLimitInput", "per_day")),
        (n(1), n(crier_core::plans::MAX_PER_DAY.into()))
    );
    for schema in ["CreateFeed", "UpdateFeed"] {
        assert_eq!(
            bounds(prop(schema, "poll_interval_seconds")),
            (n(feeds::MIN_INTERVAL), n(feeds::MAX_INTERVAL))
        );
        assert_eq!(
            bounds(prop(schema, "backfill")),
            (n(0), n(feeds::MAX_BACKFILL))
        );
    }
    assert_eq!(
        prop("PutSlots", "slots")["maxItems"],
        n(queue::MAX_SLOTS as i64)
    );
    assert_eq!(
        prop("CreatePost", "account_ids")["maxItems"],
        n(posts::MAX_ACCOUNTS as i64)
    );
    assert_eq!(
        prop("CreateBatch", "posts")["maxItems"],
        n(posts::MAX_BATCH as i64)
    );
    assert_eq!(
        prop("CreateEndpoint", "events")["maxItems"],
        n(webhooks::MAX_EVENTS as i64)
    );
}

#[test]
fn enums_list_what_the_server_accepts() {
    let doc = doc();
    let scopes = doc
        .pointer("/components/schemas/CreateKey/properties/scopes/items/enum")
        .unwrap()
        .as_array()
        .unwrap();
    for s in scopes {
        let s = s.as_str().unwrap();
        assert!(crier_core::scopes::expand(s).is_some(), "{s} is a scope");
    }
    for scope in crier_core::Scope::ALL {
        assert!(scopes.contains(&scope.as_str().into()), "{scope} listed");
    }
    let events = doc
        .pointer("/components/schemas/CreateEndpoint/properties/events/items/enum")
        .unwrap();
    assert!(events.as_array().unwrap().contains(&"*".into()));
    let tz = doc
        .pointer("/components/schemas/UpdateWorkspace/properties/timezone/enum")
        .unwrap();
    assert!(tz.as_array().unwrap().contains(&"Europe/Berlin".into()));
}

/// Every value in the document is what OpenAPI allows there: no `null` where a list or an
/// object belongs (a refinement that indexed a missing key would leave one).
#[test]
fn no_nulls_in_operations() {
    let doc = doc();
    for (method, path, op) in operations(&doc) {
        for (key, value) in op.as_object().unwrap() {
            assert!(!value.is_null(), "{method} {path}: `{key}` is null");
        }
    }
}

#[test]
fn operation_ids_are_unique_and_links_lead_somewhere() {
    let doc = doc();
    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}"));
        assert!(ids.insert(id.to_owned()), "{id} twice");
    }
    let mut links = 0;
    for (method, path, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().unwrap() {
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                links += 1;
                let target = link["operationId"].as_str().unwrap();
                let (.., target_op) = operations(&doc)
                    .into_iter()
                    .find(|(.., o)| o["operationId"] == target)
                    .unwrap_or_else(|| panic!("{method} {path} {status} {name}: no {target}"));
                let params: Vec<&str> = target_op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                for p in link["parameters"].as_object().unwrap().keys() {
                    assert!(
                        params.contains(&p.as_str()),
                        "{name}: {target} has no `{p}`"
                    );
                }
            }
        }
        // The OAuth endpoints (RFC 7591's registration answers 201) make no API object to link.
        if method == "POST" && path.starts_with("/v1/") && op["responses"].get("201").is_some() {
            assert!(
                op["responses"]["201"].get("links").is_some(),
                "{method} {path}: a create without links"
            );
        }
    }
    assert!(links > 20, "{links} links");
}

/// Whether `value` satisfies `schema`, for the keywords that decide a post's targets (`type`,
/// `minItems`, `required`, `properties`, `allOf`, `oneOf`, `not`); the others (patterns,
/// lengths) hold for the values used here and are ignored.
fn satisfies(doc: &Value, schema: &Value, value: &Value) -> bool {
    let schema = resolve(doc, schema);
    let t = types(schema);
    let kind = match value {
        Value::Null => "null",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
    };
    let all = |key: &str| schema[key].as_array().into_iter().flatten();
    (t.is_empty() || t.contains(&kind))
        && schema["minItems"]
            .as_u64()
            .is_none_or(|n| value.as_array().is_none_or(|a| a.len() as u64 >= n))
        && all("required").all(|name| value.get(name.as_str().unwrap()).is_some())
        && schema["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .all(|(name, s)| value.get(name).is_none_or(|v| satisfies(doc, s, v)))
        && all("allOf").all(|s| satisfies(doc, s, value))
        && schema
            .get("oneOf")
            .is_none_or(|_| all("oneOf").filter(|s| satisfies(doc, s, value)).count() == 1)
        && schema.get("not").is_none_or(|s| !satisfies(doc, s, value))
}

/// A new post goes to `account_ids` or to a brand's accounts, as the server decides
/// (`crier_app::posts`; tests/brands.rs and tests/posts_bad_input.rs): an empty
/// `account_ids` beside a `brand_id` is no list at all, and without a brand the list needs an
/// account. In `POST /v1/posts` (and preflight, which refers to it) and in each item of
/// `POST /v1/batches`.
#[test]
fn a_new_posts_targets_are_described_as_the_server_takes_them() {
    let doc = doc();
    let acct = format!("acct_{}", "A".repeat(crier_core::ids::BODY_LEN));
    let brand = format!("brd_{}", "A".repeat(crier_core::ids::BODY_LEN));
    let cases = [
        (json!({"account_ids": [acct]}), true),
        (json!({"account_ids": [], "brand_id": brand}), true),
        (json!({"brand_id": brand}), true),
        (json!({"account_ids": [acct], "brand_id": null}), true),
        (json!({"account_ids": [acct], "brand_id": brand}), false),
        (json!({"account_ids": []}), false),
        (json!({"account_ids": [], "brand_id": null}), false),
        (json!({}), false),
        (json!({"brand_id": null}), false),
    ];
    for pointer in [
        "/components/schemas/CreatePost",
        "/components/schemas/CreateBatch/properties/posts/items",
    ] {
        let schema = doc.pointer(pointer).unwrap_or_else(|| panic!("{pointer}"));
        for (targets, accepted) in &cases {
            let mut post = json!({"body": "Hello."});
            post.as_object_mut()
                .unwrap()
                .extend(targets.as_object().unwrap().clone());
            assert_eq!(
                satisfies(&doc, schema, &post),
                *accepted,
                "{pointer}: {post}"
            );
        }
    }
    // An edit's list, when given, names the accounts: it needs one.
    let edit = doc.pointer("/components/schemas/UpdatePost").unwrap();
    assert!(!satisfies(&doc, edit, &json!({"account_ids": []})));
    assert!(satisfies(&doc, edit, &json!({"account_ids": [acct]})));
    assert!(!satisfies(
        &doc,
        edit,
        &json!({"account_ids": [acct], "brand_id": brand})
    ));
}

/// `CRIER_DUMP_OPENAPI=path cargo test -p crier-api --test openapi dump` writes the document.
#[test]
fn dump() {
    if let Ok(path) = std::env::var("CRIER_DUMP_OPENAPI") {
        std::fs::write(path, serde_json::to_string_pretty(&doc()).unwrap()).unwrap();
    }
}
