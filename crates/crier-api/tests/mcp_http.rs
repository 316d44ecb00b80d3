//! `POST /mcp`: the MCP server over streamable HTTP, in process. Tools follow the key's
//! scopes; a draft is created and validated through tools; a tool the key may not use is
//! refused; an API error comes back as a tool error with its code and request id; every tool
//! call is its own request in the key's request log; and the HTTP edge (no key, a key in the
//! URL, an oversized body, a foreign Host, GET) answers with the envelope.

mod common;

use common::{Response, TestApp, both};
use crier_core::Scope;
use serde_json::{Value, json};

/// The "AI agent (drafts only)" preset of the dashboard.
fn agent_scopes() -> &'static [Scope] {
    crier_api::dashboard::keys::preset("ai_drafts").expect("the agent preset")
}

const PROTOCOL: &str = "2025-06-18";

async fn rpc(app: &TestApp, key: &str, method: &str, params: Value) -> Response {
    app.post("/mcp")
        .key(key)
        .header("host", "127.0.0.1:8080")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", PROTOCOL)
        .json(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
}

/// The JSON-RPC result of a successful exchange.
async fn result(app: &TestApp, key: &str, method: &str, params: Value) -> Value {
    let r = rpc(app, key, method, params).await;
    assert_eq!(r.status, 200, "{method}: {}", r.text);
    assert!(r.body["error"].is_null(), "{method}: {}", r.text);
    r.body["result"].clone()
}

async fn tool(app: &TestApp, key: &str, name: &str, arguments: Value) -> Value {
    result(
        app,
        key,
        "tools/call",
        json!({"name": name, "arguments": arguments}),
    )
    .await
}

async fn tool_names(app: &TestApp, key: &str) -> Vec<String> {
    result(app, key, "tools/list", json!({})).await["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The envelope a tool error carries, from its text content.
fn envelope(res: &Value) -> Value {
    assert_eq!(res["isError"], true, "{res}");
    let text = res["content"][0]["text"].as_str().unwrap();
    let env: Value = serde_json::from_str(text).unwrap();
    assert_eq!(res["structuredContent"], env);
    env["error"].clone()
}

async fn tools_follow_the_keys_scopes() {
    let app = TestApp::new().await;
    let agent = app.key_with(agent_scopes()).await;
    let init = result(
        &app,
        &agent,
        "initialize",
        json!({"protocolVersion": PROTOCOL, "capabilities": {},
               "clientInfo": {"name": "test", "version": "1"}}),
    )
    .await;
    assert_eq!(init["serverInfo"]["name"], "crier", "{init}");
    assert!(init["capabilities"]["tools"].is_object(), "{init}");
    assert!(init["capabilities"]["resources"].is_object(), "{init}");

    let names = tool_names(&app, &agent).await;
    for t in [
        "whoami",
        "draft_post",
        "edit_post",
        "validate_post",
        "list_posts",
        "list_accounts",
        "ai_compose",
        "list_brands",
        "explain_error",
        "import_media",
        "queue",
        "post_analytics",
    ] {
        assert!(names.contains(&t.to_owned()), "{t} in {names:?}");
    }
    for t in ["publish_post", "schedule_post", "retry_post", "cancel_post"] {
        assert!(!names.contains(&t.to_owned()), "{t} not in {names:?}");
    }

    // Every tool has a description and an object schema.
    let full = app.admin_key().await;
    let listed = result(&app, &full, "tools/list", json!({})).await;
    let tools = listed["tools"].as_array().unwrap();
    assert_eq!(tools.len(), crier_mcp::TOOLS.len(), "{listed}");
    for t in tools {
        assert!(t["description"].as_str().unwrap().len() > 40, "{t}");
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
    }
    let names = tool_names(&app, &full).await;
    for t in ["publish_post", "schedule_post", "import_media", "queue"] {
        assert!(names.contains(&t.to_owned()), "{t} in {names:?}");
    }

    // A key with one scope sees only what it allows.
    let reader = app.key_with(&[Scope::AccountsRead]).await;
    let mut names = tool_names(&app, &reader).await;
    names.sort();
    assert_eq!(names, ["explain_error", "list_accounts", "whoami"]);

    // Resources follow the scopes too.
    let res = result(&app, &reader, "resources/list", json!({})).await;
    let uris: Vec<&str> = res["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris, ["crier://accounts"]);
}

async fn an_agent_drafts_and_validates_but_cannot_publish() {
    let app = TestApp::new().await;
    let full = app.admin_key().await;
    let account = app.sandbox_account(&full, "brand").await;
    let agent = app.key_with(agent_scopes()).await;

    let me = tool(&app, &agent, "whoami", json!({})).await;
    assert_eq!(me["isError"], false, "{me}");
    assert_eq!(me["structuredContent"]["auth"], "api_key");

    let draft = tool(
        &app,
        &agent,
        "draft_post",
        json!({"body": "Hello from an agent", "account_ids": [account]}),
    )
    .await;
    assert_eq!(draft["isError"], false, "{draft}");
    let post = draft["structuredContent"].clone();
    assert_eq!(post["status"], "draft", "{draft}");
    let id = post["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("post_"));
    assert!(
        draft["_meta"]["crier/request_id"]
            .as_str()
            .unwrap()
            .starts_with("req_")
    );

    let valid = tool(&app, &agent, "validate_post", json!({"post_id": id})).await;
    assert_eq!(valid["isError"], false, "{valid}");
    assert_eq!(valid["structuredContent"]["valid"], true, "{valid}");
    // Too long for the sandbox's 300 characters: every problem, with its rule.
    let long = tool(
        &app,
        &agent,
        "validate_post",
        json!({"body": "x".repeat(301), "account_ids": [account]}),
    )
    .await;
    assert_eq!(long["structuredContent"]["valid"], false, "{long}");
    assert!(long["structuredContent"]["problems"][0]["rule"].is_string());

    // An edit through the tool.
    let edited = tool(
        &app,
        &agent,
        "edit_post",
        json!({"id": id, "body": "Hello, edited"}),
    )
    .await;
    assert_eq!(
        edited["structuredContent"]["body"], "Hello, edited",
        "{edited}"
    );

    // An image by URL: the agent may import media, through the same SSRF guard as every
    // URL a user names (this server allows no private addresses), so loopback is refused
    // with the envelope naming `url`, and nothing is stored.
    let import = tool(
        &app,
        &agent,
        "import_media",
        json!({"url": "http://127.0.0.1:9/launch.png"}),
    )
    .await;
    let err = envelope(&import);
    assert_eq!(err["code"], "invalid_request", "{import}");
    assert_eq!(err["param"], "url", "{import}");
    assert!(app.raw_texts("SELECT id FROM media").await.is_empty());

    // Not listed, and refused when called anyway; nothing was published.
    let refused = tool(&app, &agent, "publish_post", json!({"id": id})).await;
    let err = envelope(&refused);
    assert_eq!(err["code"], "forbidden_scope", "{refused}");
    assert!(err["message"].as_str().unwrap().contains("posts:publish"));
    let post = app.get(&format!("/v1/posts/{id}")).key(&full).send().await;
    assert_eq!(post.body["status"], "draft", "{}", post.text);

    // A full key may publish through the same tool.
    let published = tool(&app, &full, "publish_post", json!({"id": id})).await;
    assert_eq!(published["isError"], false, "{published}");
    assert_ne!(published["structuredContent"]["status"], "draft");

    // The post is readable as a resource.
    let read = result(
        &app,
        &agent,
        "resources/read",
        json!({"uri": format!("crier://posts/{id}")}),
    )
    .await;
    let text = read["contents"][0]["text"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap()["id"],
        id.as_str()
    );

    // The brand voice needs analytics:read, which the agent preset has (an agent writes in
    // the brand's voice): refused to a key without it with the envelope as data, read by the
    // agent and by a full key.
    let narrow = app.key_with(&[Scope::PostsRead, Scope::PostsWrite]).await;
    let r = rpc(
        &app,
        &narrow,
        "resources/read",
        json!({"uri": "crier://brand-voice"}),
    )
    .await;
    assert_eq!(
        r.body["error"]["data"]["error"]["code"], "forbidden_scope",
        "{}",
        r.text
    );
    let agent_voice = result(
        &app,
        &agent,
        "resources/read",
        json!({"uri": "crier://brand-voice"}),
    )
    .await;
    assert_eq!(agent_voice["contents"][0]["uri"], "crier://brand-voice");
    let voice = result(
        &app,
        &full,
        "resources/read",
        json!({"uri": "crier://brand-voice"}),
    )
    .await;
    let text = voice["contents"][0]["text"].as_str().unwrap();
    assert!(
        serde_json::from_str::<Value>(text).unwrap().is_object(),
        "{voice}"
    );

    // Scheduling and cancelling through the tools, with a key that may.
    let second = tool(
        &app,
        &full,
        "draft_post",
        json!({"body": "Later", "account_ids": [account]}),
    )
    .await;
    let second = second["structuredContent"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let scheduled = tool(
        &app,
        &full,
        "schedule_post",
        json!({"id": second, "scheduled_at": "2026-11-23T10:00:00Z"}),
    )
    .await;
    assert_eq!(
        scheduled["structuredContent"]["status"], "scheduled",
        "{scheduled}"
    );
    let cancelled = tool(&app, &full, "cancel_post", json!({"id": second})).await;
    assert_eq!(
        cancelled["structuredContent"]["status"], "draft",
        "{cancelled}"
    );

    // An AI tool, on the built-in engine.
    let tags = tool(
        &app,
        &agent,
        "ai_hashtags",
        json!({"text": "Shipping our Rust release today", "count": 3}),
    )
    .await;
    assert_eq!(tags["isError"], false, "{tags}");
    assert!(
        tags["structuredContent"]["data"]["hashtags"].is_array(),
        "{tags}"
    );
}

async fn api_errors_come_back_with_code_and_request_id_and_calls_are_logged() {
    let app = TestApp::new().await;
    let (agent, agent_row) = app
        .key(common::KeySpec {
            scopes: agent_scopes().to_vec(),
            ..Default::default()
        })
        .await;
    let full = app.admin_key().await;

    let missing = tool(&app, &agent, "get_post", json!({"id": "post_nope"})).await;
    let err = envelope(&missing);
    assert_eq!(err["code"], "not_found", "{missing}");
    let request_id = err["request_id"].as_str().unwrap().to_owned();
    assert!(request_id.starts_with("req_"), "{missing}");

    // Arguments are checked before anything is sent.
    let bad = tool(&app, &agent, "draft_post", json!({"body": "x", "bogus": 1})).await;
    let err = envelope(&bad);
    assert_eq!(err["code"], "invalid_request");
    assert_eq!(err["param"], "bogus");
    let bad = tool(&app, &agent, "get_post", json!({})).await;
    assert_eq!(envelope(&bad)["param"], "id");
    // The API's own validation comes through with its param.
    let bad = tool(&app, &agent, "list_posts", json!({"status": "nonsense"})).await;
    let err = envelope(&bad);
    assert_eq!(err["code"], "invalid_request", "{bad}");
    assert_eq!(err["param"], "status", "{bad}");

    // explain_error: the code's cause and fix, and (with keys:read) the logged request.
    app.state.flush_usage().await;
    let explained = tool(
        &app,
        &full,
        "explain_error",
        json!({"code": "not_found", "request_id": request_id}),
    )
    .await;
    let out = &explained["structuredContent"];
    assert!(out["cause"].as_str().unwrap().contains("No such"), "{out}");
    assert!(out["fix"].is_string());
    assert_eq!(out["request"]["path"], "/v1/posts/{id}", "{out}");
    assert_eq!(out["request"]["status"], 404);
    // Without keys:read the explanation still comes, and says why the log was not read.
    let explained = tool(
        &app,
        &agent,
        "explain_error",
        json!({"code": "forbidden_scope", "request_id": request_id}),
    )
    .await;
    let out = &explained["structuredContent"];
    assert!(out["cause"].as_str().unwrap().contains("scope"), "{out}");
    assert_eq!(
        out["request_lookup_error"]["code"], "forbidden_scope",
        "{out}"
    );

    // The tool's request is in the key's request log, as the agent's key.
    let logged = app
        .get(&format!("/v1/requests/{request_id}"))
        .key(&full)
        .send()
        .await;
    assert_eq!(logged.status, 200, "{}", logged.text);
    assert_eq!(logged.body["key_id"], agent_row.id.as_str());
    assert_eq!(logged.body["method"], "GET");
    assert_eq!(logged.body["path"], "/v1/posts/{id}");
    assert_eq!(logged.body["error_code"], "not_found");

    // Every tool call, and the MCP requests themselves, are there.
    let paths = app
        .raw_texts("SELECT path FROM request_log ORDER BY at, request_id")
        .await;
    let paths: Vec<String> = paths.into_iter().flatten().collect();
    assert!(paths.iter().any(|p| p == "/mcp"), "{paths:?}");
    assert!(paths.iter().any(|p| p == "/v1/posts"), "{paths:?}");
    // The scopes come from the MCP request's own authentication, not a `GET /v1/me` per call.
    assert!(!paths.iter().any(|p| p == "/v1/me"), "{paths:?}");
}

async fn the_http_edge_answers_with_the_envelope() {
    let app = TestApp::new().await;
    let key = app.key_with(agent_scopes()).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});

    // No key.
    app.post("/mcp")
        .header("host", "127.0.0.1")
        .header("accept", "application/json, text/event-stream")
        .json(init.clone())
        .send()
        .await
        .assert_error(401, "unauthorized");
    // A key in the URL is no key.
    app.post(&format!("/mcp?api_key={key}&key={key}"))
        .header("host", "127.0.0.1")
        .header("accept", "application/json, text/event-stream")
        .json(init.clone())
        .send()
        .await
        .assert_error(401, "unauthorized");
    // Over 1 MiB.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"pad":"{}"}}}}"#,
        "x".repeat(1024 * 1024)
    );
    app.post("/mcp")
        .key(&key)
        .header("host", "127.0.0.1")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .raw(big)
        .send()
        .await
        .assert_error(413, "payload_too_large");
    // A Host that is not this server's (DNS rebinding).
    for host in [
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.evil.example",
    ] {
        app.post("/mcp")
            .key(&key)
            .header("host", host)
            .header("accept", "application/json, text/event-stream")
            .json(init.clone())
            .send()
            .await
            .assert_error(403, "forbidden");
    }
    // The public URL's host is this server's.
    let r = app
        .post("/mcp")
        .key(&key)
        .header("host", "127.0.0.1:8080")
        .header("accept", "application/json, text/event-stream")
        .json(init.clone())
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Stateless: no GET stream, no session to DELETE.
    for m in [axum::http::Method::GET, axum::http::Method::DELETE] {
        let r = app
            .call(m, "/mcp")
            .key(&key)
            .header("host", "127.0.0.1")
            .send()
            .await;
        r.assert_error(405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some("POST"));
    }
    // What rmcp refuses at the HTTP level is the envelope too.
    let r = app
        .post("/mcp")
        .key(&key)
        .header("host", "127.0.0.1")
        .header("accept", "text/html")
        .json(init.clone())
        .send()
        .await;
    assert!(r.status.is_client_error(), "{}", r.text);
    assert!(r.body["error"]["code"].is_string(), "{}", r.text);
    assert!(r.body["error"]["request_id"].is_string(), "{}", r.text);
    // So is a message that is not JSON-RPC.
    let r = app
        .post("/mcp")
        .key(&key)
        .header("host", "127.0.0.1")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .raw("{not json")
        .send()
        .await;
    assert!(r.status.is_client_error(), "{}", r.text);
    assert_eq!(r.body["error"]["code"], "invalid_request", "{}", r.text);
}

both!(
    tests: tools_follow_the_keys_scopes,
    an_agent_drafts_and_validates_but_cannot_publish,
    api_errors_come_back_with_code_and_request_id_and_calls_are_logged,
    the_http_edge_answers_with_the_envelope,
);
