//! crier's MCP server verified with the official clients against a real `crier serve` on
//! 127.0.0.1: the Python SDK (PyPI `mcp`, scripts/mcp_scenario.py) over stdio (`crier mcp`)
//! and over streamable HTTP (`POST /mcp`, the key in the Authorization header), and the npm
//! `@modelcontextprotocol/inspector` CLI (`--cli … --method tools/list`) over both. An agent
//! key (the dashboard's "AI agent (drafts only)" preset) sees no publish tool, drafts and
//! validates a post, is refused a publish, and gets an API error back with its request id.
//!
//! The clients come from scripts/peers/mcp.sh (`CRIER_MCP_PYTHON`, `CRIER_MCP_INSPECTOR`);
//! without them the test skips, unless `CRIER_REQUIRE_PEERS=1`.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{self, Data, admin_with_input, binary, free_port};
use serde_json::Value;

/// The scopes of the dashboard's "AI agent (drafts only)" preset, as `--scope` takes them.
fn agent_scopes() -> String {
    crier_api::dashboard::keys::preset("ai_drafts")
        .expect("the agent preset")
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The peers, or `None` to skip (a failure when they are required).
fn peers() -> Option<(String, Vec<String>)> {
    let python = std::env::var("CRIER_MCP_PYTHON").ok();
    let inspector = std::env::var("CRIER_MCP_INSPECTOR").ok();
    match (python, inspector) {
        (Some(p), Some(i)) if !p.is_empty() && !i.is_empty() => {
            Some((p, i.split_whitespace().map(str::to_owned).collect()))
        }
        _ => {
            assert!(
                std::env::var("CRIER_REQUIRE_PEERS").as_deref() != Ok("1"),
                "CRIER_MCP_PYTHON and CRIER_MCP_INSPECTOR are required (scripts/peers/mcp.sh start)"
            );
            eprintln!("skipped: no MCP clients (scripts/peers/mcp.sh start)");
            None
        }
    }
}

/// A server on a fresh data dir (the shared helpers of `tests/common/server.rs`), killed
/// when dropped.
struct Server {
    _process: server::Server,
    data: tempfile::TempDir,
    port: u16,
    database_url: Option<String>,
}

impl Server {
    fn start() -> Self {
        Self::start_on(None)
    }

    /// On the embedded SQLite database, or on `database_url` (PostgreSQL).
    fn start_on(database_url: Option<String>) -> Self {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let process = server::start(
            &Data {
                dir: data.path(),
                database_url: database_url.as_deref(),
                config: None,
            },
            port,
        );
        Self {
            _process: process,
            data,
            port,
            database_url,
        }
    }

    fn data(&self) -> Data<'_> {
        Data {
            dir: self.data.path(),
            database_url: self.database_url.as_deref(),
            config: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `crier admin … --json` on this server's data dir.
    fn admin(&self, args: &[&str]) -> Value {
        server::admin(&self.data(), args)
    }

    fn key(&self, name: &str, scopes: &str) -> String {
        let k = self.admin(&[
            "key",
            "create",
            "--workspace",
            "acme",
            "--scope",
            scopes,
            "--name",
            name,
        ]);
        k["key"].as_str().unwrap().to_owned()
    }
}

/// Runs a client to its end (bounded); its stdout, or a failure with its stderr.
fn run(mut cmd: Command) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn scenario(python: &str, args: &[&str]) -> Value {
    run_script(python, "mcp_scenario.py", args)
}

/// Runs `scripts/{script}` with `python`; what it printed, as JSON.
fn run_script(python: &str, script: &str, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(script);
    let mut cmd = Command::new(python);
    cmd.arg(script).args(args);
    let out = run(cmd);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The strings of a JSON array.
fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

fn assert_agent_session(out: &Value) {
    let tools = strings(&out["tools"]);
    for t in [
        "draft_post",
        "validate_post",
        "list_accounts",
        "explain_error",
        "import_media",
    ] {
        assert!(tools.contains(&t), "{t} in {tools:?}");
    }
    for t in ["publish_post", "schedule_post"] {
        assert!(!tools.contains(&t), "{t} not in {tools:?}");
    }
    assert_eq!(out["schemas_are_objects"], true);
    assert_eq!(out["whoami"]["auth"], "api_key", "{out}");
    assert_eq!(out["draft"]["is_error"], false, "{out}");
    assert_eq!(out["draft"]["post"]["status"], "draft", "{out}");
    assert_eq!(out["validate"]["is_error"], false, "{out}");
    assert_eq!(out["validate"]["result"]["valid"], true, "{out}");
    assert_eq!(out["publish"]["listed"], false);
    assert_eq!(out["publish"]["is_error"], true, "{out}");
    assert_eq!(
        out["publish"]["content"]["error"]["code"], "forbidden_scope",
        "{out}"
    );
    assert_eq!(out["api_error"]["is_error"], true, "{out}");
    let error = &out["api_error"]["envelope"]["error"];
    assert_eq!(error["code"], "not_found", "{out}");
    assert!(
        error["request_id"].as_str().unwrap().starts_with("req_"),
        "{out}"
    );
    assert!(
        out["resources"]
            .as_array()
            .unwrap()
            .contains(&Value::from("crier://accounts")),
        "{out}"
    );
    assert_eq!(out["accounts_resource"]["data"][0]["platform"], "sandbox");
}

fn inspector_tools(inspector: &[String], target: &[&str], extra: &[String]) -> Vec<String> {
    let mut cmd = Command::new(&inspector[0]);
    cmd.args(&inspector[1..])
        .arg("--cli")
        .args(extra)
        .args(["--method", "tools/list", "--strict"])
        .args(target)
        .env("MCP_INSPECTOR_SECRET_STORE", "memory");
    let out = run(cmd);
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn official_clients_over_stdio_and_http() {
    let Some((python, inspector)) = peers() else {
        return;
    };
    let server = Server::start();
    server.admin(&["workspace", "create", "acme"]);
    let admin = server.key("admin", "all");
    let agent = server.key("agent", &agent_scopes());
    let url = server.url();
    let bin = binary();
    let bin = bin.to_str().unwrap();

    // The Python SDK, over stdio (`crier mcp`) and over HTTP.
    let stdio = scenario(
        &python,
        &[
            "stdio",
            "--bin",
            bin,
            "--url",
            &url,
            "--key",
            &agent,
            "--setup-key",
            &admin,
        ],
    );
    assert_agent_session(&stdio);
    let http = scenario(&python, &["http", "--url", &url, "--key", &agent]);
    assert_agent_session(&http);
    // One account, one draft per session, both in the workspace.
    assert_eq!(stdio["accounts"], http["accounts"]);
    assert_ne!(stdio["draft"]["post"]["id"], http["draft"]["post"]["id"]);

    // The inspector CLI: the agent over stdio sees no publish tool; a full key over HTTP does.
    let agent_tools = inspector_tools(
        &inspector,
        &[bin, "mcp"],
        &[
            "-e".into(),
            format!("CRIER_URL={url}"),
            "-e".into(),
            format!("CRIER_API_KEY={agent}"),
        ],
    );
    assert!(
        agent_tools.contains(&"draft_post".to_owned()),
        "{agent_tools:?}"
    );
    assert!(
        !agent_tools.contains(&"publish_post".to_owned()),
        "{agent_tools:?}"
    );
    let mcp_url = format!("{url}/mcp");
    let admin_tools = inspector_tools(
        &inspector,
        &[&mcp_url],
        &[
            "--transport".into(),
            "http".into(),
            "--header".into(),
            format!("Authorization: Bearer {admin}"),
        ],
    );
    assert!(
        admin_tools.contains(&"publish_post".to_owned()),
        "{admin_tools:?}"
    );
    assert!(admin_tools.len() > agent_tools.len());
}

/// `crier mcp` over stdio, spoken to in raw JSON-RPC lines: runs without the peers.
#[test]
fn crier_mcp_over_stdio_follows_the_keys_scopes() {
    let server = Server::start();
    server.admin(&["workspace", "create", "acme"]);
    let agent = server.key("agent", &agent_scopes());
    let lines = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_post","arguments":{"id":"post_nope"}}}"#,
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"publish_post","arguments":{"id":"post_nope"}}}"#,
    ];
    let mut child = Command::new(binary())
        .arg("mcp")
        .env("CRIER_URL", server.url())
        .env("CRIER_API_KEY", &agent)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // One message at a time, each answered before the next (the tools/call lines need the
    // initialization done); stdin closes at the end and the server exits.
    let reader = std::thread::spawn({
        let stdout = child.stdout.take().unwrap();
        move || {
            use std::io::BufRead;
            std::io::BufReader::new(stdout)
                .lines()
                .map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap())
                .collect::<Vec<Value>>()
        }
    });
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "crier mcp did not exit at the end of stdin"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let answers = reader.join().unwrap();
    let by_id = |id: u64| {
        answers
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no answer {id} in {answers:?}"))
    };
    assert_eq!(by_id(1)["result"]["serverInfo"]["name"], "crier");
    let names: Vec<&str> = by_id(2)["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"draft_post"), "{names:?}");
    assert!(!names.contains(&"publish_post"), "{names:?}");
    let missing = &by_id(3)["result"];
    assert_eq!(missing["isError"], true);
    assert_eq!(missing["structuredContent"]["error"]["code"], "not_found");
    assert!(
        missing["structuredContent"]["error"]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("req_")
    );
    let refused = &by_id(4)["result"];
    assert_eq!(refused["isError"], true);
    assert_eq!(
        refused["structuredContent"]["error"]["code"],
        "forbidden_scope"
    );
    // Nothing but MCP on stdout: every line was a JSON-RPC message.
    assert!(answers.iter().all(|a| a["jsonrpc"] == "2.0"));
}

#[test]
fn crier_mcp_needs_a_key() {
    let out = Command::new(binary())
        .arg("mcp")
        .env_remove("CRIER_API_KEY")
        .env("CRIER_URL", "http://127.0.0.1:9")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CRIER_API_KEY"));
}

/// An assistant signs in with OAuth from nothing (scripts/mcp_oauth_scenario.py, the SDK's
/// `OAuthClientProvider`): discovery from the `401`, registration, the person's consent in the
/// dashboard (the agent preset kept), the code exchange with PKCE, the tools the granted
/// scopes allow, a refresh (the old access token refused after it), and the revocation in
/// Settings (the access token refused after it).
fn assistant_signs_in_with_oauth(database_url: Option<String>) {
    let Some((python, _)) = peers() else {
        return;
    };
    let server = Server::start_on(database_url);
    server.admin(&["workspace", "create", "acme"]);
    let password = "correct horse battery staple";
    admin_with_input(
        &server.data(),
        &[
            "user",
            "create",
            "--email",
            "ada@example.com",
            "--password-stdin",
            "--workspace",
            "acme",
            "--role",
            "owner",
        ],
        &format!("{password}\n"),
    );
    let url = server.url();
    let out = run_script(
        &python,
        "mcp_oauth_scenario.py",
        &[
            "--url",
            &url,
            "--email",
            "ada@example.com",
            "--password",
            password,
        ],
    );

    // The consent page offered what the SDK asked for (every scope, from the metadata) and
    // ticked the agent preset, which is what was granted.
    let preset = agent_scopes();
    let granted = strings(&out["consent"]["granted"]);
    let mut want: Vec<&str> = preset.split(',').collect();
    want.sort_unstable();
    let mut got = granted.clone();
    got.sort_unstable();
    assert_eq!(got, want, "{out}");
    assert_eq!(out["consent"]["client_name"], "Scenario assistant", "{out}");
    assert!(
        out["consent"]["offered"].as_array().unwrap().len() > granted.len(),
        "{out}"
    );
    let mut scope: Vec<&str> = out["token"]["scope"].as_str().unwrap().split(' ').collect();
    scope.sort_unstable();
    assert_eq!(scope, want, "{out}");
    assert_eq!(out["token"]["expires_in"], 3600, "{out}");
    assert_eq!(out["token"]["has_refresh"], true, "{out}");
    assert!(
        out["client"]["client_id"]
            .as_str()
            .unwrap()
            .starts_with("oac_"),
        "{out}"
    );
    assert_eq!(out["client"]["auth_method"], "client_secret_basic", "{out}");

    // The tools follow the granted scopes: drafting yes, publishing no.
    let tools = strings(&out["tools"]);
    assert!(tools.contains(&"draft_post"), "{tools:?}");
    assert!(!tools.contains(&"publish_post"), "{tools:?}");
    assert_eq!(out["accounts_is_error"], false, "{out}");

    // The refresh replaced both tokens; the old access token is refused at once.
    assert_eq!(out["refresh"]["new_access"], true, "{out}");
    assert_eq!(out["refresh"]["new_refresh"], true, "{out}");
    assert_eq!(out["refresh"]["old_access_status"], 401, "{out}");
    assert_eq!(out["refresh"]["new_access_status"], 200, "{out}");
    assert_eq!(out["after_refresh_tools"], tools.len(), "{out}");

    // Revoked in Settings: the next call is refused.
    assert!(
        out["revoked_app"].as_str().unwrap().starts_with("key_"),
        "{out}"
    );
    assert_eq!(out["after_revoke_status"], 401, "{out}");
}

#[test]
fn an_assistant_signs_in_with_oauth() {
    assistant_signs_in_with_oauth(None);
}

#[test]
fn postgres_an_assistant_signs_in_with_oauth() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(schema) = rt.block_on(crier_testdb::PgSchema::create()) else {
        return;
    };
    assistant_signs_in_with_oauth(Some(schema.url.clone()));
    rt.block_on(schema.drop());
}
