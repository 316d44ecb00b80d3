//! Tests in a real browser: Debian's Chromium driven by npm playwright-core, both installed by
//! `scripts/peers/browser.sh start` (which writes `CRIER_TEST_PLAYWRIGHT`, `CRIER_TEST_CHROMIUM`
//! and `CRIER_TEST_NODE` to target/peers/browser.env). Without `CRIER_TEST_PLAYWRIGHT` the
//! tests skip, failing instead with `CRIER_REQUIRE_PEERS=1`.
//!
//! A test serves its [`TestApp`] on 127.0.0.1 ([`serve`]) and runs a scenario, a Node ES module
//! in `tests/browser/` whose default export drives the page (`tests/browser/lib.mjs` launches
//! the browser, refuses and records every request that would leave the machine, records
//! console and page errors, saves screenshots under `target/screenshots/<test>/`), and gets its
//! [`Outcome`] back as JSON.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crier_api::server::{ServerConfig, serve as serve_on};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::TestApp;

/// How long a scenario may run, browser start included, before it is killed with its browser.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The browser the peer script installed.
pub struct Browser {
    node: String,
    playwright: String,
    chromium: String,
}

/// The browser from the environment; `None` (with a skip line) when `CRIER_TEST_PLAYWRIGHT` is
/// unset, a failure then when `CRIER_REQUIRE_PEERS=1`.
pub fn browser() -> Option<Browser> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match var("CRIER_TEST_PLAYWRIGHT") {
        Some(playwright) => Some(Browser {
            node: var("CRIER_TEST_NODE").unwrap_or_else(|| "node".into()),
            playwright,
            chromium: var("CRIER_TEST_CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()),
        }),
        None => {
            assert_ne!(
                std::env::var("CRIER_REQUIRE_PEERS").as_deref(),
                Ok("1"),
                "CRIER_TEST_PLAYWRIGHT is not set and CRIER_REQUIRE_PEERS=1 \
                 (scripts/peers/browser.sh start writes it to target/peers/browser.env)"
            );
            eprintln!(
                "skipped: set CRIER_TEST_PLAYWRIGHT and CRIER_TEST_CHROMIUM \
                 (scripts/peers/browser.sh start writes them to target/peers/browser.env)"
            );
            None
        }
    }
}

/// What a scenario returned, and what the page did besides.
#[derive(Debug)]
pub struct Outcome {
    /// The scenario's own result.
    pub result: Value,
    /// Requests to anywhere but 127.0.0.1/localhost, refused: `{method, url, type}`.
    pub offsite_requests: Vec<Value>,
    /// Console messages of type error: `{page, text, location}`.
    pub console_errors: Vec<Value>,
    /// Uncaught exceptions in a page: `{page, error}`.
    pub page_errors: Vec<Value>,
    pub screenshots: Vec<PathBuf>,
}

impl Outcome {
    /// Nothing left the machine, nothing was logged as an error, nothing threw.
    #[track_caller]
    pub fn assert_clean(&self) {
        assert!(
            self.offsite_requests.is_empty(),
            "requests that would have left 127.0.0.1: {:#?}",
            self.offsite_requests
        );
        assert!(
            self.console_errors.is_empty(),
            "console errors: {:#?}",
            self.console_errors
        );
        assert!(
            self.page_errors.is_empty(),
            "uncaught errors: {:#?}",
            self.page_errors
        );
    }
}

/// Where `test`'s screenshots go: `target/screenshots/<test>/` (under `CARGO_TARGET_DIR` when
/// that is set), `<test>-postgres/` for a `both!` test's PostgreSQL variant (the variants run
/// at the same time).
pub fn screenshot_dir(test: &str) -> PathBuf {
    let test = match crier_testdb::current_backend() {
        Some(crier_store::Backend::Postgres) => format!("{test}-postgres"),
        _ => test.to_owned(),
    };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest.ancestors().nth(2).unwrap().join("target")
        });
    target.join("screenshots").join(&test)
}

impl Browser {
    /// Runs `tests/browser/<scenario>` against `base_url` with `env` set (API keys and the
    /// like, read in the scenario with `env(name)`); its screenshots replace those in
    /// [`screenshot_dir`]`(test)`. Panics with the scenario's stderr when it fails, and stops it
    /// (and its browser) after [`TIMEOUT`].
    pub async fn run(
        &self,
        test: &str,
        scenario: &str,
        base_url: &str,
        env: &[(&str, &str)],
    ) -> Outcome {
        let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        let shots = screenshot_dir(test);
        match std::fs::remove_dir_all(&shots) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing {}: {e}", shots.display()),
        }
        let mut command = tokio::process::Command::new(&self.node);
        command
            .arg(scripts.join("run.mjs"))
            .arg(scripts.join(scenario))
            .current_dir(&scripts)
            .env("CRIER_TEST_PLAYWRIGHT", &self.playwright)
            .env("CRIER_TEST_CHROMIUM", &self.chromium)
            .env("CRIER_BROWSER_BASE_URL", base_url)
            .env("CRIER_BROWSER_SCREENSHOTS", &shots)
            // Playwright's messages without terminal colours, for the panic message.
            .env("FORCE_COLOR", "0")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, killed whole after a timeout. (Playwright starts Chromium
            // in a group of its own; Chromium quits when Node's end of its pipe closes.)
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} (Node): {e}", self.node));
        let pid = child.id().expect("a running child");
        let stdout = read_all(child.stdout.take());
        let stderr = read_all(child.stderr.take());
        let status = match tokio::time::timeout(TIMEOUT, child.wait()).await {
            Ok(status) => Some(status.expect("waiting for the scenario")),
            Err(_) => {
                // SIGTERM first: lib.mjs then saves timeout.png, reports where the page was
                // and closes the browser. Whatever is left after 10 s is killed.
                signal("-TERM", &pid.to_string());
                if tokio::time::timeout(Duration::from_secs(10), child.wait())
                    .await
                    .is_err()
                {
                    signal("-KILL", &format!("-{pid}"));
                    let _ = child.wait().await;
                }
                None
            }
        };
        let stdout = stdout.await.unwrap();
        let stderr = stderr.await.unwrap();
        let Some(status) = status else {
            panic!(
                "the browser scenario {scenario} did not finish within {TIMEOUT:?} and was stopped; screenshots in {}\n--- stderr\n{stderr}\n--- stdout\n{stdout}",
                shots.display()
            );
        };
        assert!(
            status.success(),
            "the browser scenario {scenario} failed ({status}); screenshots in {}\n--- stderr\n{stderr}\n--- stdout\n{stdout}",
            shots.display()
        );
        let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
        let json: Value = last
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| {
                panic!(
                    "the browser scenario {scenario} printed no JSON outcome\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
                )
            });
        let list = |name: &str| json[name].as_array().cloned().unwrap_or_default();
        Outcome {
            result: json["result"].clone(),
            offsite_requests: list("offsite_requests"),
            console_errors: list("console_errors"),
            page_errors: list("page_errors"),
            screenshots: list("screenshots")
                .iter()
                .filter_map(|p| p.as_str().map(PathBuf::from))
                .collect(),
        }
    }
}

/// Everything a child writes to one of its pipes, read as it comes (a full pipe would stall
/// it), as text.
fn read_all(
    pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
) -> tokio::task::JoinHandle<String> {
    use tokio::io::AsyncReadExt;
    let mut pipe = pipe.expect("a piped stream");
    tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// `kill <signal> -- <target>` (a negative target is a process group).
fn signal(signal: &str, target: &str) {
    let _ = std::process::Command::new("kill")
        .args([signal, "--", target])
        .status();
}

/// A [`TestApp`]'s router served as `crier serve` serves it, on 127.0.0.1 on a free port;
/// stopped when dropped.
pub struct Server {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A port on 127.0.0.1 taken before the app exists, for an app that must know its own URL
/// (a local media store signs URLs with it).
pub struct Listener {
    listener: TcpListener,
    /// `http://127.0.0.1:<port>`
    pub url: String,
}

pub async fn listen() -> Listener {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    Listener { listener, url }
}

pub async fn serve(app: &TestApp) -> Server {
    serve_at(listen().await, app)
}

/// Serves `app` on `listener` until the returned [`Server`] is dropped.
pub fn serve_at(listener: Listener, app: &TestApp) -> Server {
    let Listener { listener, url } = listener;
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(serve_on(
        listener,
        app.router.clone(),
        ServerConfig::default(),
        async move { signal.cancelled().await },
    ));
    Server { url, stop }
}
