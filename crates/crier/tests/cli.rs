//! The `crier` client commands, driven as a user drives them: the real binary against a real
//! server (SQLite in a temp data dir) on a free port, with `CRIER_CONFIG_DIR` (and `HOME`) in a
//! temp dir, never the user's own. Each test asserts what the command prints (table and
//! `--json`), its exit code, and what the server holds afterwards.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::server::{Data, Server, admin, admin_with_input, free_port, http, request, start_with};
use serde_json::{Value, json};
use sha2::Digest;

const PASSWORD: &str = "correct horse battery staple";

/// A server with one workspace `cli` and an all-scopes key, and a config dir for the CLI.
struct Setup {
    _data_dir: tempfile::TempDir,
    /// The CLI's config dir: `crier` in a temp dir, made by the CLI when it first saves.
    config: std::path::PathBuf,
    _home: tempfile::TempDir,
    port: u16,
    _server: Server,
    workspace: String,
    key: String,
}

impl Setup {
    fn new() -> Self {
        Self::with_env(&[])
    }

    /// A server with more environment variables.
    fn with_env(env: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let data = Data {
            dir: data_dir.path(),
            database_url: None,
            config: None,
        };
        let workspace = admin(&data, &["workspace", "create", "cli"])["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let key = admin(
            &data,
            &["key", "create", "--workspace", "cli", "--scope", "all"],
        )["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let port = free_port();
        let mut all = vec![("CRIER_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true")];
        all.extend_from_slice(env);
        let server = start_with(&data, port, &all);
        let home = tempfile::tempdir().unwrap();
        Self {
            _data_dir: data_dir,
            config: home.path().join("crier"),
            _home: home,
            port,
            _server: server,
            workspace,
            key,
        }
    }

    fn data(&self) -> Data<'_> {
        Data {
            dir: self._data_dir.path(),
            database_url: None,
            config: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `crier ARGS` for this server, with no key (only what the config dir holds).
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(common::server::binary());
        cmd.args(args)
            .env("CRIER_URL", self.url())
            .env("CRIER_CONFIG_DIR", &self.config)
            .env("HOME", self._home.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("CRIER_API_KEY")
            .env_remove("CRIER_PROFILE")
            .env("CRIER_NO_BROWSER", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// `crier ARGS` with `key`.
    fn run_as(&self, key: &str, args: &[&str]) -> Run {
        let out = self
            .command(args)
            .env("CRIER_API_KEY", key)
            .output()
            .unwrap();
        Run::from(out, args)
    }

    /// `crier ARGS` with the all-scopes key.
    fn run(&self, args: &[&str]) -> Run {
        self.run_as(&self.key, args)
    }

    /// `crier ARGS --json` with the all-scopes key; must succeed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        self.run(&all).ok().json()
    }

    /// A sandbox account's id.
    fn account(&self, handle: &str) -> String {
        let a = self.json(&["accounts", "connect", "sandbox", "--handle", handle]);
        a["id"].as_str().unwrap().to_owned()
    }

    fn post_ids(&self) -> Vec<String> {
        let (status, page) = http(self.port, "GET", "/v1/posts?limit=50", &self.key, None);
        assert_eq!(status, 200, "{page}");
        ids(&page)
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A finished command.
struct Run {
    args: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(out: Output, args: &[&str]) -> Self {
        Self {
            args: args.join(" "),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(self) -> Self {
        self.code(0)
    }

    /// Asserts the exit code.
    fn code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "crier {}\nstdout: {}\nstderr: {}",
            self.args, self.stdout, self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("crier {}: not JSON ({e}): {}", self.args, self.stdout))
    }
}

/// A day from now, in whole seconds (the API keeps milliseconds).
fn in_a_day() -> String {
    jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 86_400)
        .unwrap()
        .to_string()
}

// ---- device login ----

/// The code the waiting `crier login` printed on its stderr (`…/device?code=ABCD-EFGH`).
fn user_code(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("code=")?;
    Some(rest.split_whitespace().next()?.to_owned())
}

/// Signs `email` in to the dashboard over HTTP and approves the device login `code` for
/// `workspace` with the page's form, as a browser would.
fn approve_in_dashboard(port: u16, email: &str, code: &str, workspace: &str) {
    decide_in_dashboard(port, email, code, workspace, "approve");
}

/// As [`approve_in_dashboard`], with the form's `decision` (`approve` or `deny`).
fn decide_in_dashboard(port: u16, email: &str, code: &str, workspace: &str, decision: &str) {
    let form = |pairs: &[(&str, &str)]| -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    };
    let urlencoded = ("Content-Type", "application/x-www-form-urlencoded");
    let next = format!("/device?code={code}");
    let r = request(
        port,
        "POST",
        "/login",
        &[urlencoded],
        form(&[("email", email), ("password", PASSWORD), ("next", &next)]).as_bytes(),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = r
        .headers("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("crier_session="))
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = request(port, "GET", &next, &[("Cookie", &cookie)], b"");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(code), "the page shows the code");
    assert!(page.body.contains("crier CLI on"), "and the client's name");
    let csrf = page
        .body
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF token in the page")
        .to_owned();
    let r = request(
        port,
        "POST",
        "/device",
        &[urlencoded, ("Cookie", &cookie)],
        form(&[
            ("_csrf", &csrf),
            ("code", code),
            ("workspace", workspace),
            ("decision", decision),
        ])
        .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let done = if decision == "approve" {
        "Approved"
    } else {
        "Denied"
    };
    assert!(r.body.contains(done), "{}", r.body);
}

/// A login running: the process, the user code it showed, and the rest of its stderr (read
/// by a thread, so the process never blocks on a full pipe).
struct Login {
    child: std::process::Child,
    code: String,
    stderr: std::thread::JoinHandle<String>,
}

/// Starts `crier ARGS` (a login) and reads the user code it shows on stderr.
fn start_login(s: &Setup, args: &[&str]) -> Login {
    let mut login = s
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(login.stderr.take().unwrap());
    let mut shown = String::new();
    let code = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "login ended without a code: {shown}"
        );
        shown.push_str(&line);
        if let Some(code) = user_code(&line) {
            break code;
        }
    };
    let stderr = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
        rest
    });
    Login {
        child: login,
        code,
        stderr,
    }
}

fn user(s: &Setup, email: &str, role: &str) {
    admin_with_input(
        &s.data(),
        &[
            "user",
            "create",
            "--email",
            email,
            "--password-stdin",
            "--workspace",
            "cli",
            "--role",
            role,
        ],
        &format!("{PASSWORD}\n"),
    );
}

#[test]
fn device_login_saves_a_private_key_that_whoami_shows_and_logout_revokes() {
    let s = Setup::new();
    user(&s, "ada@example.com", "owner");
    let Login {
        child: mut login,
        code,
        ..
    } = start_login(&s, &["login", "--no-browser"]);
    approve_in_dashboard(s.port, "ada@example.com", &code, &s.workspace);

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = login.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "login did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = login.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(status.success(), "{stdout}");
    assert!(stdout.contains("cli"), "login prints who it is: {stdout}");

    // The key is saved 0600 in a 0700 dir, under [default].
    let file = s.config.join("credentials.toml");
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&s.config), 0o700, "no one else may look in");
    let saved: toml::Value = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let key = saved["default"]["key"].as_str().unwrap().to_owned();
    let key_id = saved["default"]["key_id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk_live_"), "{key}");
    assert_eq!(
        saved["default"]["workspace_id"].as_str(),
        Some(s.workspace.as_str())
    );

    // whoami uses the saved key (no CRIER_API_KEY).
    let me = Run::from(
        s.command(&["whoami", "--json"]).output().unwrap(),
        &["whoami"],
    )
    .ok()
    .json();
    assert_eq!(me["key"]["id"], key_id.as_str());
    assert_eq!(me["workspace"]["id"], s.workspace.as_str());
    assert!(
        me["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "posts:write")
    );
    assert!(
        me.get("key").and_then(|k| k.get("key")).is_none(),
        "never the secret"
    );
    let table = Run::from(s.command(&["whoami"]).output().unwrap(), &["whoami"]).ok();
    assert!(table.stdout.contains(&key_id), "{}", table.stdout);
    assert!(
        !table.stdout.contains(&key),
        "the table never shows the secret"
    );

    // logout revokes the key and forgets it.
    let out = Run::from(s.command(&["logout"]).output().unwrap(), &["logout"]).ok();
    assert!(out.stdout.contains("Logged out"), "{}", out.stdout);
    let saved: toml::Value = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(saved.get("default").is_none(), "{saved}");
    let r = s.run_as(&key, &["whoami"]).code(3);
    assert!(r.stderr.contains("unauthorized"), "{}", r.stderr);
    assert!(r.stderr.contains("request req_"), "{}", r.stderr);
    // Without a saved login or key: not signed in, exit 3, nothing sent.
    let r = Run::from(s.command(&["whoami"]).output().unwrap(), &["whoami"]).code(3);
    assert!(r.stderr.contains("crier login"), "{}", r.stderr);
}

#[test]
fn login_with_a_narrow_key_and_logout_without_keys_write() {
    // A key from a device login that asked for posts:read alone still logs out: it revokes
    // itself, which needs no keys:write.
    let s = Setup::new();
    user(&s, "bob@example.com", "member");
    let Login {
        child: mut login,
        code,
        ..
    } = start_login(
        &s,
        &["login", "--scopes", "posts:read", "--profile", "reader"],
    );
    approve_in_dashboard(s.port, "bob@example.com", &code, &s.workspace);
    assert!(login.wait().unwrap().success());
    let whoami = |args: &[&str]| {
        let mut all = vec!["--profile", "reader"];
        all.extend_from_slice(args);
        Run::from(s.command(&all).output().unwrap(), &all)
    };
    let me = whoami(&["whoami", "--json"]).ok().json();
    assert_eq!(me["scopes"], json!(["posts:read"]));
    // The default profile is not this one.
    Run::from(s.command(&["whoami"]).output().unwrap(), &["whoami"]).code(3);
    whoami(&["logout"]).ok();
    whoami(&["whoami"]).code(3);
}

#[test]
fn a_denied_login_saves_nothing_and_exits_3() {
    let s = Setup::new();
    user(&s, "eve@example.com", "owner");
    let login = start_login(&s, &["login"]);
    decide_in_dashboard(s.port, "eve@example.com", &login.code, &s.workspace, "deny");
    let out = login.child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let said = login.stderr.join().unwrap();
    assert!(
        said.contains("denied") && said.contains("access_denied"),
        "{said}"
    );
    assert!(!s.config.join("credentials.toml").exists());
}

// ---- posts ----

#[test]
fn posts_commands_print_tables_and_json() {
    let s = Setup::new();
    let acct = s.account("brand");

    let created = s.json(&[
        "posts",
        "create",
        "--body",
        "hello from the CLI",
        "--account",
        &acct,
    ]);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "draft");
    assert_eq!(created["account_ids"], json!([acct]));

    let table = s.run(&["posts", "list"]).ok().stdout;
    for needle in [id.as_str(), "draft", "hello from the CLI", acct.as_str()] {
        assert!(table.contains(needle), "{needle} in {table}");
    }
    let list = s.json(&["posts", "list", "--status", "draft"]);
    assert_eq!(ids(&list), [id.as_str()]);
    assert_eq!(list["has_more"], false);
    assert!(ids(&s.json(&["posts", "list", "--status", "scheduled"])).is_empty());

    let got = s.run(&["posts", "get", &id]).ok().stdout;
    assert!(
        got.contains("hello from the CLI") && got.contains("draft"),
        "{got}"
    );
    assert_eq!(s.json(&["posts", "get", &id]), {
        let (_, p) = http(s.port, "GET", &format!("/v1/posts/{id}"), &s.key, None);
        p
    });

    let edited = s.json(&["posts", "edit", &id, "--body", "edited"]);
    assert_eq!(edited["body"], "edited");

    let at = in_a_day();
    let scheduled = s.json(&["posts", "schedule", &id, "--at", &at]);
    assert_eq!(scheduled["status"], "scheduled");
    assert_eq!(
        scheduled["scheduled_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap(),
        at.parse::<jiff::Timestamp>().unwrap()
    );
    assert_eq!(ids(&s.json(&["queue"])), [id.as_str()]);
    assert!(s.run(&["queue"]).ok().stdout.contains(&id));
    let cancelled = s.run(&["posts", "cancel", &id]).ok().stdout;
    assert!(cancelled.contains("draft"), "{cancelled}");

    let valid = s.run(&["posts", "validate", &id]).ok().stdout;
    assert!(valid.contains("valid"), "{valid}");
    let fresh = s.json(&["posts", "validate", "--body", "fits", "--account", &acct]);
    assert_eq!(fresh["valid"], true);
    // Over the sandbox's 300 characters: a problem named by rule, exit 5.
    let long = "x".repeat(301);
    let r = s
        .run(&[
            "posts",
            "validate",
            "--body",
            &long,
            "--account",
            &acct,
            "--json",
        ])
        .code(5);
    assert_eq!(r.json()["valid"], false);
    assert!(!r.json()["problems"].as_array().unwrap().is_empty());

    // Created scheduled in one step, and published now.
    let later = s.json(&[
        "posts",
        "create",
        "--body",
        "later",
        "--account",
        &acct,
        "--at",
        &at,
    ]);
    assert_eq!(later["status"], "scheduled");
    let now = s.json(&[
        "posts",
        "create",
        "--body",
        "now",
        "--account",
        &acct,
        "--now",
    ]);
    assert!(
        ["publishing", "published", "scheduled"].contains(&now["status"].as_str().unwrap()),
        "{now}"
    );

    let gone = s.run(&["posts", "delete", &id]).ok().stdout;
    assert!(gone.contains(&format!("deleted {id}")), "{gone}");
    let r = s.run(&["posts", "get", &id]).code(4);
    assert!(
        r.stderr.contains("not_found") && r.stderr.contains("request req_"),
        "{}",
        r.stderr
    );
}

/// Waits (at most 30 s) until the post has `status`; the post.
fn wait_for(s: &Setup, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let post = s.json(&["posts", "get", id]);
        if post["status"] == status {
            return post;
        }
        assert!(Instant::now() < deadline, "never {status}: {post}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn publish_and_retry_reach_the_network() {
    // One attempt per publish, so an injected failure fails the post at once.
    let s = Setup::with_env(&[("CRIER_PUBLISH_MAX_ATTEMPTS", "1")]);
    let acct = s.account("brand");
    let (status, body) = http(
        s.port,
        "POST",
        &format!("/v1/accounts/{acct}/faults"),
        &s.key,
        Some(&json!({"fail_next": 1, "kind": "error"})),
    );
    assert_eq!(status, 200, "{body}");
    let id = s.json(&[
        "posts",
        "create",
        "--body",
        "out it goes",
        "--account",
        &acct,
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let published = s.json(&["posts", "publish", &id]);
    assert_ne!(published["status"], "draft", "{published}");
    let failed = wait_for(&s, &id, "failed");
    assert_eq!(failed["targets"][0]["status"], "failed");
    let shown = s.run(&["posts", "get", &id]).ok().stdout;
    assert!(
        shown.contains("injected"),
        "the target's error in the table: {shown}"
    );

    let retried = s.run(&["posts", "retry", &id]).ok().stdout;
    assert!(retried.contains(&id), "{retried}");
    let done = wait_for(&s, &id, "published");
    assert!(done["targets"][0]["url"].is_string(), "{done}");
    let (_, timeline) = http(
        s.port,
        "GET",
        &format!("/v1/accounts/{acct}/timeline"),
        &s.key,
        None,
    );
    assert_eq!(timeline["data"].as_array().unwrap().len(), 1, "{timeline}");
    // Published: retrying again is a conflict.
    s.run(&["posts", "retry", &id]).code(5);
}

#[test]
fn dry_run_shows_the_request_and_changes_nothing() {
    let s = Setup::new();
    let acct = s.account("brand");
    let id = s.json(&["posts", "create", "--body", "keep me", "--account", &acct])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = s.post_ids();
    let (_, keys_before) = http(s.port, "GET", "/v1/keys", &s.key, None);

    let r = s
        .run(&[
            "posts",
            "create",
            "--body",
            "not sent",
            "--account",
            &acct,
            "--dry-run",
        ])
        .ok();
    assert!(r.stdout.contains("dry run"), "{}", r.stdout);
    assert!(r.stdout.contains("POST http://127.0.0.1"), "{}", r.stdout);
    assert!(r.stdout.contains("\"not sent\""), "{}", r.stdout);
    assert!(!r.stdout.contains(&s.key), "never the key");
    let shown = s
        .run(&["--json", "--dry-run", "posts", "delete", &id])
        .ok()
        .json();
    assert_eq!(shown["dry_run"], true);
    assert_eq!(shown["method"], "DELETE");
    assert!(
        shown["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/posts/{id}"))
    );
    for args in [
        vec!["posts", "edit", &id, "--body", "changed"],
        vec!["posts", "schedule", &id, "--next"],
        vec!["posts", "publish", &id],
        vec!["keys", "create", "--scope", "posts:read"],
        vec!["webhooks", "create", "http://127.0.0.1:9/hook"],
        vec!["accounts", "disconnect", &acct],
        vec!["ai", "compose", "a launch post"],
    ] {
        let mut all = args.clone();
        all.push("--dry-run");
        let r = s.run(&all).ok();
        assert!(
            r.stdout.contains("dry run, not sent"),
            "{}: {}",
            args.join(" "),
            r.stdout
        );
    }
    assert_eq!(s.post_ids(), before);
    let (_, p) = http(s.port, "GET", &format!("/v1/posts/{id}"), &s.key, None);
    assert_eq!(
        (p["body"].as_str(), p["status"].as_str()),
        (Some("keep me"), Some("draft"))
    );
    let (_, keys_after) = http(s.port, "GET", "/v1/keys", &s.key, None);
    assert_eq!(ids(&keys_after), ids(&keys_before));
    let (_, hooks) = http(s.port, "GET", "/v1/webhooks", &s.key, None);
    assert!(ids(&hooks).is_empty());
    let (_, accounts) = http(s.port, "GET", "/v1/accounts", &s.key, None);
    assert_eq!(accounts["data"][0]["status"], "connected");
}

// ---- failures ----

#[test]
fn exit_codes_tell_failure_kinds_apart() {
    let s = Setup::new();
    let acct = s.account("brand");
    // 3: a key without the scope; the server's message and request id on stderr.
    let reader = s.json(&["keys", "create", "--scope", "posts:read"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .run_as(
            &reader,
            &["posts", "create", "--body", "x", "--account", &acct],
        )
        .code(3);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(
        r.stderr.contains("posts:write") && r.stderr.contains("forbidden_scope"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("request req_"), "{}", r.stderr);
    // With --json: the envelope on stdout.
    let r = s
        .run_as(
            &reader,
            &[
                "--json",
                "posts",
                "create",
                "--body",
                "x",
                "--account",
                &acct,
            ],
        )
        .code(3);
    let envelope = r.json();
    assert_eq!(envelope["error"]["code"], "forbidden_scope");
    assert!(
        envelope["error"]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("req_")
    );
    // A malformed key: 401, exit 3.
    s.run_as("sk_live_not_a_key", &["posts", "list"]).code(3);

    // 4: an unknown id.
    s.run(&["posts", "get", "post_00000000000000000000000000"])
        .code(4);
    s.run(&["keys", "revoke", "key_00000000000000000000000000"])
        .code(4);

    // 5: input the server refuses.
    let too_long = "x".repeat(20_001);
    let r = s
        .run(&["posts", "create", "--body", &too_long, "--account", &acct])
        .code(5);
    assert!(
        r.stderr.contains("invalid_request") && r.stderr.contains("param body"),
        "{}",
        r.stderr
    );
    let r = s
        .run(&[
            "posts",
            "create",
            "--body",
            "x",
            "--account",
            &acct,
            "--at",
            "next tuesday",
        ])
        .code(5);
    assert!(r.stderr.contains("scheduled_at"), "{}", r.stderr);
    let id = s.json(&["posts", "create", "--body", "x", "--account", &acct])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.run(&["posts", "schedule", &id, "--at", "yesterday"])
        .code(5);
    s.run(&["posts", "cancel", &id]).code(5); // a draft: conflict (409)

    // 2: usage, and a bad local file; nothing sent.
    s.run(&["posts", "frobnicate"]).code(2);
    s.run(&["posts", "edit", &id]).code(2);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "body,colour\nhello,red\n").unwrap();
    let r = s.run(&["batches", "create", bad.to_str().unwrap()]).code(2);
    assert!(r.stderr.contains("colour"), "{}", r.stderr);
    s.run(&[
        "batches",
        "create",
        dir.path().join("missing.csv").to_str().unwrap(),
    ])
    .code(2);
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "hi").unwrap();
    s.run(&["media", "upload", txt.to_str().unwrap()]).code(2);
    // Client commands read no server configuration: a broken crier.toml here is not theirs.
    std::fs::write(dir.path().join("crier.toml"), "this is [[[ not TOML").unwrap();
    let out = s
        .command(&["posts", "list"])
        .current_dir(dir.path())
        .env("CRIER_API_KEY", &s.key)
        .output()
        .unwrap();
    Run::from(out, &["posts", "list"]).ok();
    assert_eq!(s.post_ids(), [id.as_str()]);

    // 8: no server there.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let r = Run::from(
        s.command(&["posts", "list"])
            .env("CRIER_URL", &closed)
            .env("CRIER_API_KEY", &s.key)
            .output()
            .unwrap(),
        &["posts", "list"],
    )
    .code(8);
    assert!(r.stderr.contains("cannot reach"), "{}", r.stderr);
    let r = Run::from(
        s.command(&["--json", "whoami"])
            .env("CRIER_URL", &closed)
            .env("CRIER_API_KEY", &s.key)
            .output()
            .unwrap(),
        &["whoami"],
    )
    .code(8);
    assert_eq!(r.json()["error"]["code"], "unreachable");
    // A write is tried twice (same Idempotency-Key), then fails the same way.
    let args = ["posts", "create", "--body", "x", "--account", acct.as_str()];
    Run::from(
        s.command(&args)
            .env("CRIER_URL", &closed)
            .env("CRIER_API_KEY", &s.key)
            .output()
            .unwrap(),
        &args,
    )
    .code(8);
}

// ---- batches ----

#[test]
fn batches_from_csv_and_jsonl_report_refused_lines_by_number() {
    let s = Setup::new();
    let a = s.account("one");
    let b = s.account("two");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("posts.csv");
    let at = in_a_day();
    std::fs::write(
        &csv,
        format!(
            "body,account_ids,scheduled_at\nfirst,{a},\n\"second, with a comma\",{a};{b},{at}\nthird,{b},\n"
        ),
    )
    .unwrap();
    let r = s.run(&["batches", "create", csv.to_str().unwrap()]).ok();
    assert!(r.stdout.contains("created 3 posts"), "{}", r.stdout);
    assert!(r.stdout.contains("second, with a comma"), "{}", r.stdout);
    let (_, scheduled) = http(s.port, "GET", "/v1/posts?status=scheduled", &s.key, None);
    assert_eq!(scheduled["data"][0]["account_ids"], json!([a, b]));
    assert_eq!(s.post_ids().len(), 3);

    // JSON Lines with one line the server refuses (line 3, an unknown account): the others
    // are created, the bad one named by its number, exit 5.
    let jsonl = dir.path().join("posts.jsonl");
    let lines = [
        json!({"body": "j1", "account_ids": [a]}),
        json!({"body": "j2", "account_ids": [b]}),
        json!({"body": "j3", "account_ids": ["acct_00000000000000000000000000"]}),
        json!({"body": "j4", "account_ids": [a]}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&jsonl, text).unwrap();
    let r = s
        .run(&["--json", "batches", "create", jsonl.to_str().unwrap()])
        .code(5);
    let out = r.json();
    assert_eq!(out["data"].as_array().unwrap().len(), 3, "{out}");
    assert_eq!(out["errors"][0]["line"], 3, "{out}");
    assert!(
        out["errors"][0]["error"]["request_id"].as_str().is_some(),
        "{out}"
    );
    assert!(r.stderr.contains("(lines 3) and 3 created"), "{}", r.stderr);
    assert_eq!(s.post_ids().len(), 6);
    let bodies: Vec<String> = s.json(&["posts", "list"])["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["body"].as_str().unwrap().to_owned())
        .collect();
    assert!(!bodies.contains(&"j3".to_owned()));

    // A malformed JSONL line: nothing sent.
    std::fs::write(&jsonl, "{\"body\":\"ok\"}\n{not json\n").unwrap();
    let r = s
        .run(&["batches", "create", jsonl.to_str().unwrap()])
        .code(2);
    assert!(r.stderr.contains("line 2"), "{}", r.stderr);
    assert_eq!(s.post_ids().len(), 6);
}

// ---- media ----

/// A 1×1 PNG.
const PNG: [u8; 70] = [
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0,
    0, 0, 31, 21, 196, 137, 0, 0, 0, 13, 73, 68, 65, 84, 120, 218, 99, 100, 96, 248, 95, 15, 0, 2,
    135, 1, 128, 235, 71, 186, 146, 0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130,
];

#[test]
fn media_upload_streams_the_file_and_confirms_it() {
    let s = Setup::new();
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("dot.png");
    std::fs::write(&png, PNG).unwrap();
    let up = s.json(&["media", "upload", png.to_str().unwrap()]);
    let m = &up["data"][0];
    assert_eq!(m["status"], "ready", "{up}");
    assert_eq!(m["content_type"], "image/png");
    assert_eq!(m["size"], PNG.len());
    assert_eq!(m["width"], 1);
    let digest = hex::encode(sha2::Sha256::digest(PNG));
    assert_eq!(m["sha256"], digest.as_str());
    let id = m["id"].as_str().unwrap();
    let (_, stored) = http(s.port, "GET", &format!("/v1/media/{id}"), &s.key, None);
    assert_eq!(stored["status"], "ready");
    // The table for people; and the upload is attachable.
    let table = s
        .run(&["media", "upload", png.to_str().unwrap()])
        .ok()
        .stdout;
    assert!(
        table.contains("ready") && table.contains(&digest),
        "{table}"
    );
    let acct = s.account("pics");
    let post = s.json(&[
        "posts",
        "create",
        "--body",
        "a dot",
        "--account",
        &acct,
        "--media",
        id,
    ]);
    assert_eq!(post["media_ids"], json!([id]));
}

// ---- keys, webhooks, accounts, analytics ----

#[test]
fn keys_create_list_rotate_revoke() {
    let s = Setup::new();
    let created = s.json(&[
        "keys",
        "create",
        "--scope",
        "posts:read,media:read",
        "--name",
        "ci",
    ]);
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["key"].as_str().unwrap().to_owned();
    assert_eq!(created["scopes"], json!(["posts:read", "media:read"]));
    let human = s
        .run(&["keys", "create", "--scope", "posts:read", "--name", "shown"])
        .ok()
        .stdout;
    assert!(
        human.contains("sk_live_") && human.contains("only time"),
        "{human}"
    );

    let table = s.run(&["keys", "list"]).ok().stdout;
    assert!(table.contains(&id) && table.contains("ci"), "{table}");
    assert!(!table.contains(&secret), "never a secret in the list");
    assert!(ids(&s.json(&["keys", "list"])).contains(&id));

    let rotated = s.json(&["keys", "rotate", &id]);
    let new_id = rotated["id"].as_str().unwrap().to_owned();
    let new_secret = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    s.run_as(&new_secret, &["posts", "list"]).ok();
    s.run_as(&secret, &["posts", "list"]).code(3);

    let revoked = s.json(&["keys", "revoke", &new_id]);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    s.run_as(&new_secret, &["posts", "list"]).code(3);
}

#[test]
fn webhooks_accounts_queue_and_analytics() {
    let s = Setup::new();
    let hook = s.json(&[
        "webhooks",
        "create",
        "http://127.0.0.1:9/hook",
        "--event",
        "post.published",
        "--description",
        "ci",
    ]);
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    assert!(
        hook["secret"].as_str().unwrap().starts_with("whsec_"),
        "{hook}"
    );
    assert_eq!(hook["events"], json!(["post.published"]));
    let table = s.run(&["webhooks", "list"]).ok().stdout;
    assert!(
        table.contains(&hook_id) && table.contains("post.published"),
        "{table}"
    );
    assert!(!table.contains("whsec_"));
    assert_eq!(ids(&s.json(&["webhooks", "list"])), [hook_id.as_str()]);
    let deliveries = s.json(&["webhooks", "deliveries", &hook_id]);
    assert!(deliveries["data"].is_array(), "{deliveries}");
    s.run(&["webhooks", "deliveries", &hook_id]).ok();

    let acct = s.account("brand");
    let table = s.run(&["accounts", "list"]).ok().stdout;
    assert!(
        table.contains(&acct) && table.contains("sandbox") && table.contains("brand"),
        "{table}"
    );
    assert_eq!(ids(&s.json(&["accounts", "list"])), [acct.as_str()]);

    assert!(s.run(&["queue"]).ok().stdout.contains("(none)"));
    let analytics = s.json(&["analytics"]);
    assert_eq!(analytics["object"], "account_analytics");
    s.run(&["analytics"]).ok();
    s.run(&["analytics", "--from", "not a time"]).code(5);

    let gone = s.json(&["accounts", "disconnect", &acct]);
    assert_eq!(gone["status"], "disconnected");
}

/// The built-in engine answers hashtags, thread, optimise and ideas without a model; rewrite
/// and compose need one, and a server without it says so (503, exit 7).
#[test]
fn ai_commands_print_the_engines_answers() {
    let s = Setup::new();
    let text = "Rust is a fast and safe systems language for everyone";
    let tags = s.json(&["ai", "hashtags", text, "--count", "3"]);
    let list = tags["data"]["hashtags"].as_array().unwrap();
    assert!(!list.is_empty() && list.len() <= 3, "{tags}");
    let human = s.run(&["ai", "hashtags", text]).ok().stdout;
    assert!(human.contains(list[0].as_str().unwrap()), "{human}");

    let long = "word ".repeat(150);
    let thread = s.json(&["ai", "thread", &long, "--platform", "sandbox"]);
    let parts = thread["data"]["parts"].as_array().unwrap();
    assert!(parts.len() > 1, "{thread}");
    let human = s
        .run(&["ai", "thread", &long, "--platform", "sandbox"])
        .ok()
        .stdout;
    assert_eq!(
        human.trim_end().split("\n\n").count(),
        parts.len(),
        "{human}"
    );

    let scored = s.json(&["ai", "optimise", "hello world", "--platform", "sandbox"]);
    assert!(scored["data"]["score"].is_number(), "{scored}");
    let human = s
        .run(&["ai", "optimise", "hello world", "--platform", "sandbox"])
        .ok()
        .stdout;
    assert!(human.contains("score:"), "{human}");

    let ideas = s.json(&["ai", "ideas", "--topic", "rust", "--count", "2"]);
    assert_eq!(
        ideas["data"]["ideas"].as_array().unwrap().len(),
        2,
        "{ideas}"
    );
    let human = s
        .run(&["ai", "ideas", "--topic", "rust", "--count", "2"])
        .ok()
        .stdout;
    assert!(human.contains("title") && human.contains("rust"), "{human}");

    let r = s.run(&["ai", "compose", "a launch post"]).code(7);
    assert!(r.stderr.contains("upstream_unavailable"), "{}", r.stderr);
}

#[test]
fn completions_for_bash_name_the_commands() {
    let completions = |shell: &str| {
        let out = Command::new(common::server::binary())
            .args(["completions", shell])
            .output()
            .unwrap();
        Run::from(out, &["completions", shell])
    };
    let r = completions("bash").ok();
    assert!(r.stdout.len() > 1000, "{}", r.stdout.len());
    for word in ["login", "posts", "batches", "webhooks"] {
        assert!(r.stdout.contains(word), "{word}");
    }
    completions("klingon").code(2);
}

/// `crier admin secret-keys reseal` after the operator puts a new key in front of
/// `secret_keys`: what the old key sealed is sealed again with the new one, then the old key
/// can go; a key list that opens nothing fails and says why.
#[test]
fn secret_keys_reseal_moves_stored_secrets_to_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data {
        dir: dir.path(),
        database_url: None,
        config: None,
    };
    // 32 bytes each, base64url: 42 characters and a last one whose two low bits are zero.
    let spec = |id: &str, last: char| format!("{id}={}{last}", "A".repeat(42));
    let (k1, k2, k3) = (spec("k1", 'E'), spec("k2", 'I'), spec("k3", 'M'));
    let reseal = |keys: &str| {
        data.command()
            .args(["admin", "secret-keys", "reseal", "--json"])
            .env("CRIER_SECRET_KEYS", keys)
            .output()
            .unwrap()
    };
    admin(&data, &["workspace", "create", "keys"]);
    let key = admin(
        &data,
        &["key", "create", "--workspace", "keys", "--scope", "all"],
    )["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = free_port();
    let mut server = start_with(
        &data,
        port,
        &[
            ("CRIER_SECRET_KEYS", k1.as_str()),
            ("CRIER_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
        ],
    );
    let (status, hook) = http(
        port,
        "POST",
        "/v1/webhooks",
        &key,
        Some(&json!({"url": "http://127.0.0.1:9/hook", "events": ["post.published"]})),
    );
    assert_eq!(status, 201, "{hook}");
    server.kill();

    // The new key in front of the old one: the endpoint's secret moves to it, once.
    let out = reseal(&format!("{k2},{k1}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let moved: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(moved["current_key"], "k2");
    assert_eq!(moved["webhook_endpoints"]["sealed_again"], 1, "{moved}");
    assert_eq!(moved["webhook_endpoints"]["left_unopened"], 0, "{moved}");
    let again: Value = serde_json::from_slice(&reseal(&format!("{k2},{k1}")).stdout).unwrap();
    assert_eq!(again["webhook_endpoints"]["sealed_again"], 0, "{again}");
    // The old key can go: the new one alone opens everything.
    let out = reseal(&k2);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Keys that open nothing stored: a failure that says what is left.
    let out = reseal(&k3);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("do not open with these secret_keys"), "{err}");
    assert!(err.contains("webhook endpoints 1"), "{err}");
}
