//! A real `crier serve` for a test: the binary Cargo built (or `CRIER_BIN`), its data dir, a
//! free port, `crier admin … --json`, and raw HTTP/1.1 to it (no client library: the tests
//! see the bytes a server sends).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn binary() -> PathBuf {
    std::env::var_os("CRIER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_crier")))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An answer: its status, its head (status line and headers) and its body (de-chunked).
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Raw {
    /// The values of header `name` (any case).
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect()
    }
}

/// One HTTP/1.1 request over a fresh connection, with `headers` and `body` as given.
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Raw {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("server reachable");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Raw {
        status,
        head: head.to_owned(),
        body,
    }
}

/// One API request with `key` and an optional JSON body; returns (status, JSON body).
pub fn http(port: u16, method: &str, path: &str, key: &str, body: Option<&Value>) -> (u16, Value) {
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = format!("Bearer {key}");
    let r = request(
        port,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        payload.as_bytes(),
    );
    (
        r.status,
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    )
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// Where a server keeps its data: a data dir, and a PostgreSQL URL when it runs there.
pub struct Data<'a> {
    pub dir: &'a Path,
    pub database_url: Option<&'a str>,
    /// A `crier.toml` to start with (`--config`).
    pub config: Option<PathBuf>,
}

impl Data<'_> {
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(binary());
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        cmd.arg("--data-dir").arg(self.dir);
        if let Some(url) = self.database_url {
            cmd.args(["--database-url", url]);
        }
        cmd
    }
}

/// `crier admin ARGS --json`, which must succeed; its JSON.
pub fn admin(data: &Data, args: &[&str]) -> Value {
    admin_with_input(data, args, "")
}

/// As [`admin`], with `input` on standard input (a password).
pub fn admin_with_input(data: &Data, args: &[&str], input: &str) -> Value {
    let mut child = data
        .command()
        .arg("admin")
        .args(args)
        .arg("--json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A running server, killed when dropped: a failing test must not leave it running (holding
/// its database connections and working its queue).
pub struct Server(Child);

impl Server {
    /// SIGKILL, and wait until it is gone.
    pub fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `crier serve` on `port`, with short worker timings; returns once it accepts connections.
pub fn start(data: &Data, port: u16) -> Server {
    start_with(data, port, &[])
}

/// As [`start`], with more environment variables for the server.
pub fn start_with(data: &Data, port: u16, env: &[(&str, &str)]) -> Server {
    let child = data
        .command()
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("CRIER_LOG_LEVEL", "warn")
        .env("CRIER_WORKER_LEASE_SECONDS", "4")
        .env("CRIER_NETWORK_TIMEOUT_SECONDS", "2")
        .env("CRIER_WORKER_POLL_MS", "50")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server(child)
}
