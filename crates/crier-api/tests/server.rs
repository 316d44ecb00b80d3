//! The server on a real socket (127.0.0.1): half-sent requests are closed after the header
//! timeout while other clients are served, the connection cap makes new clients wait rather
//! than fail, shutdown has a deadline, and an oversized body is read before its 413 is sent.
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::TestApp;
use crier_api::server::{ServerConfig, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const HEADER_TIMEOUT: Duration = Duration::from_millis(800);

struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

async fn start(app: &TestApp, config: ServerConfig) -> Server {
    start_on(app, config, TcpListener::bind("127.0.0.1:0").await.unwrap())
}

fn start_on(app: &TestApp, config: ServerConfig, listener: TcpListener) -> Server {
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let signal = stop.clone();
    let done = tokio::spawn(serve(listener, app.router.clone(), config, async move {
        signal.cancelled().await
    }));
    Server { addr, stop, done }
}

fn config(max_connections: usize) -> ServerConfig {
    ServerConfig {
        header_read_timeout: HEADER_TIMEOUT,
        max_connections,
        idle_timeout: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(30),
        ..ServerConfig::default()
    }
}

/// Sends a whole request on a new connection and reads the whole response (the request asks
/// the server to close after it).
async fn request(addr: SocketAddr, head: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

/// Connections that sent part of a request head and then nothing more.
async fn half_sent(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            .await
            .unwrap();
        out.push(s);
    }
    out
}

/// Waits until the server closes `s` (end of stream or reset); fails after `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(within, s.read(&mut buf)).await {
            Err(_) => panic!("a half-sent connection is still open after {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            // An error response before closing is fine too.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn half_sent_requests_are_closed_after_the_header_timeout_while_others_are_served() {
    let app = TestApp::new().await;
    let server = start(&app, config(64)).await;
    let started = Instant::now();
    let mut slow = half_sent(server.addr, 40).await;

    // A normal client is answered at once, not after the slow ones give up.
    let r = request(server.addr, HEALTHZ).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        started.elapsed() < HEADER_TIMEOUT,
        "{:?}",
        started.elapsed()
    );

    for s in &mut slow {
        closed_within(s, HEADER_TIMEOUT * 3).await;
    }
    let took = started.elapsed();
    assert!(took >= HEADER_TIMEOUT, "closed too early: {took:?}");
    assert!(took < HEADER_TIMEOUT * 3, "closed late: {took:?}");
    server.stop.cancel();
    server.done.await.unwrap();
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_for_a_free_slot() {
    let app = TestApp::new().await;
    let server = start(&app, config(4)).await;
    let started = Instant::now();
    let _slow = half_sent(server.addr, 4).await;
    // All four slots are taken: this client waits in the backlog until the header timeout
    // frees one, and is then served.
    let r = tokio::time::timeout(HEADER_TIMEOUT * 4, request(server.addr, HEALTHZ))
        .await
        .expect("a waiting client was never served");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        started.elapsed() >= HEADER_TIMEOUT,
        "served before a slot was free: the cap did not hold"
    );
    server.stop.cancel();
    server.done.await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_what_is_still_open_after_the_grace_period() {
    let app = TestApp::new().await;
    let server = start(
        &app,
        ServerConfig {
            shutdown_grace: Duration::from_millis(500),
            ..config(64)
        },
    )
    .await;
    // A request whose body never finishes: the handler waits for it.
    let key = app.admin_key().await;
    let mut stuck = TcpStream::connect(server.addr).await.unwrap();
    stuck
        .write_all(
            format!(
                "POST /v1/keys HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    server.stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), server.done)
        .await
        .expect("shutdown waited past its grace period")
        .unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "{took:?}");
    closed_within(&mut stuck, Duration::from_secs(1)).await;
    // Nothing is accepted any more.
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn a_client_sending_an_oversized_body_reads_the_413() {
    let app = TestApp::new().await;
    let server = start(&app, config(64)).await;
    let key = app.admin_key().await;
    let before = app.snapshot().await;
    for idempotency in ["", "Idempotency-Key: big\r\n"] {
        let size = 2 * 1024 * 1024;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(
            format!(
                "POST /v1/keys HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nContent-Length: {size}\r\n{idempotency}\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        // As a simple client does: the whole body, in pieces, before reading anything.
        let chunk = vec![b' '; 64 * 1024];
        for i in 0..size / chunk.len() {
            s.write_all(&chunk)
                .await
                .unwrap_or_else(|e| panic!("writing piece {i} of the body: {e}"));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}}") {
                        break;
                    }
                }
                Ok(Err(e)) => panic!("reading the response: {e}"),
                Err(_) => panic!("no response"),
            }
        }
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "payload_too_large", "{text}");
        assert!(
            v["error"]["request_id"]
                .as_str()
                .unwrap()
                .starts_with("req_")
        );
    }
    assert_eq!(app.snapshot().await, before);
    server.stop.cancel();
    server.done.await.unwrap();
}

#[tokio::test]
async fn a_body_slower_than_the_minimum_rate_is_refused_and_its_connection_closed() {
    let app = TestApp::new().await;
    let server = start(
        &app,
        ServerConfig {
            body_grace: Duration::from_millis(500),
            body_min_rate: 1000,
            ..config(64)
        },
    )
    .await;
    let key = app.admin_key().await;
    let before = app.snapshot().await;
    let head = |len: usize| {
        format!(
            "POST /v1/keys HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    // A trickle: ten bytes, then nothing. Refused once the grace has passed, and the
    // connection closes after the answer (idle would take 30 s).
    let started = std::time::Instant::now();
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(format!("{}{{\"name\": \"", head(100)).as_bytes())
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), one_response(&mut s))
        .await
        .expect("an answer in time")
        .expect("an answer");
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("invalid_request"), "{answer}");
    assert!(
        answer.contains("slower than 1000 bytes a second"),
        "{answer}"
    );
    closed_within(&mut s, Duration::from_secs(2)).await;
    assert_eq!(app.snapshot().await, before);
    // A body that keeps the rate passes, however long it takes past the grace: 3,000 bytes
    // in pieces over about 1.5 s (2,000 a second).
    let body = format!(
        "{{\"name\": \"steady\", \"scopes\": [\"posts:read\"]{}}}",
        " ".repeat(2950)
    );
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(head(body.len()).as_bytes()).await.unwrap();
    for piece in body.as_bytes().chunks(300) {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let answer = tokio::time::timeout(Duration::from_secs(5), one_response(&mut s))
        .await
        .expect("an answer in time")
        .expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    server.stop.cancel();
    server.done.await.unwrap();
}

/// A client that reads a large answer slower than the minimum rate, while the server waits on
/// it, is cut off once the grace has passed; one that keeps the rate gets all of it, however
/// long that takes past the grace.
#[tokio::test]
async fn a_client_reading_slower_than_the_minimum_rate_is_cut_off() {
    const DOC: &str = "GET /v1/openapi.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let app = TestApp::new().await;
    // Send buffers as small as on a slow link (accepted sockets take the listener's): on
    // loopback the kernel would otherwise take the whole answer at once, and nothing waits.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(8192).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let config = ServerConfig {
        send_grace: Duration::from_millis(500),
        send_min_rate: 64 * 1024,
        header_read_timeout: Duration::from_secs(10),
        ..config(64)
    };
    let server = start_on(&app, config, socket.listen(64).unwrap());
    let whole = request(server.addr, DOC).await.len();
    assert!(whole > 150_000, "a large answer: {whole} bytes");

    // Reads through a small window, 4 KiB every 100 ms (40 KiB a second).
    let reader = |pause: Duration| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut s = socket.connect(server.addr).await.unwrap();
        s.write_all(DOC.as_bytes()).await.unwrap();
        let started = std::time::Instant::now();
        let mut got = 0;
        let mut buf = [0u8; 4096];
        while started.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(pause).await;
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        (got, started.elapsed())
    };
    let (got, took) = reader(Duration::from_millis(100)).await;
    assert!(
        got < whole / 2,
        "cut off: {got} of {whole} bytes in {took:?}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    // Reading as fast as it can through the same window: all of it.
    let (got, _) = reader(Duration::ZERO).await;
    assert_eq!(got, whole);
    // A wait ends when everything was sent: a kept-alive connection that waited on its client
    // and then sat quiet past the grace still serves the next request.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(server.addr).await.unwrap();
    let kept = DOC.replace("Connection: close", "Connection: keep-alive");
    s.write_all(kept.as_bytes()).await.unwrap();
    let first = one_response(&mut s).await.expect("an answer");
    assert!(first.len() > 150_000, "{}", first.len());
    // (Past the grace plus what the answer's size allows at the rate: ~4 s.)
    tokio::time::sleep(Duration::from_millis(4500)).await;
    s.write_all(HEALTHZ.as_bytes()).await.unwrap();
    let second = one_response(&mut s).await.expect("the next answer");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    server.stop.cancel();
    server.done.await.unwrap();
}

/// A connection from `ip` (a loopback address) to `addr`.
async fn connect_from(ip: &str, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(ip.parse().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// One address holds at most its share of the connections: past it a new one is answered
/// `429` and closed while other addresses are served, and one that closes makes room. Loopback
/// (a proxy on the same machine) is not counted by default.
#[tokio::test]
async fn one_address_holds_at_most_its_share_of_the_connections() {
    let app = TestApp::new().await;
    let capped = ServerConfig {
        max_connections_per_address: 3,
        uncapped_peers: Vec::new(),
        header_read_timeout: Duration::from_secs(10),
        ..config(64)
    };
    let server = start(&app, capped).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.2", server.addr).await);
    }
    // The three are served.
    for s in &mut held {
        s.write_all(HEALTHZ.replace("close", "keep-alive").as_bytes())
            .await
            .unwrap();
        let answer = one_response(s).await.expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let mut fourth = connect_from("127.0.0.2", server.addr).await;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), fourth.read_to_end(&mut out))
        .await
        .expect("closed at once")
        .ok();
    let answer = String::from_utf8_lossy(&out);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("\"code\":\"rate_limited\""), "{answer}");
    assert!(answer.contains("x-request-id: req_"), "{answer}");
    // Another address is served.
    let mut other = connect_from("127.0.0.3", server.addr).await;
    other.write_all(HEALTHZ.as_bytes()).await.unwrap();
    let answer = one_response(&mut other).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // One closes: room for another.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from("127.0.0.2", server.addr).await;
    again.write_all(HEALTHZ.as_bytes()).await.unwrap();
    let answer = one_response(&mut again).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.stop.cancel();
    server.done.await.unwrap();

    // By default loopback is not counted.
    let server = start(
        &app,
        ServerConfig {
            max_connections_per_address: 2,
            header_read_timeout: Duration::from_secs(10),
            ..config(64)
        },
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(HEALTHZ.replace("close", "keep-alive").as_bytes())
            .await
            .unwrap();
        let answer = one_response(&mut s).await.expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(s);
    }
    server.stop.cancel();
    server.done.await.unwrap();
}

/// Reads one response (head and `Content-Length` body) from `s`; `None` if the server closed
/// the connection (or reset it) before sending a byte.
async fn one_response(s: &mut TcpStream) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if out.len() >= end + 4 + len {
                return Some(String::from_utf8_lossy(&out[..end + 4 + len]).into_owned());
            }
        }
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                assert!(out.is_empty(), "the connection ended within a response");
                return None;
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no response within 5 s"),
        }
    }
}

/// A request answered before its body arrived (a `401` to a POST without a key, the first
/// request of every MCP client that signs in with OAuth) leaves the connection usable or says
/// it will not be. A small body is read beside the answer and the connection serves the next
/// request; a body past the linger bound, or one the client holds back until `100 Continue`,
/// gets `Connection: close`. A connection
/// closed without a word makes a pooled client's next request on it fail ("server
/// disconnected without sending a response"), which is what an MCP SDK saw in CI.
#[tokio::test]
async fn an_answer_before_the_body_keeps_the_connection_or_says_it_will_close() {
    let app = TestApp::new().await;
    let server = start(&app, config(64)).await;
    let small = r#"{"text":"hello"}"#.len();
    let large = crier_api::server::LINGER_BYTES as usize + 1;
    // (body length, waits for `100 Continue`, must say close)
    let cases = [
        (small, false, false),
        (large, false, true),
        (small, true, true),
    ];
    for (round, (len, expect, must_close)) in cases.into_iter().cycle().take(21).enumerate() {
        let expect = if expect {
            "Expect: 100-continue\r\n"
        } else {
            ""
        };
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(
            format!(
                "POST /v1/posts HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
                 Content-Length: {len}\r\n{expect}\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        // The answer comes before the body is sent.
        let first = one_response(&mut s)
            .await
            .expect("an answer to the first request");
        assert!(first.starts_with("HTTP/1.1 401"), "{first}");
        let closes = first
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n");
        assert_eq!(closes, must_close, "round {round}: {first}");
        // Then the body, and a second request right behind it, as a pooled client does.
        let mut rest = vec![b' '; len];
        rest.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        let _ = s.write_all(&rest).await;
        let second = one_response(&mut s).await;
        if closes {
            assert!(second.is_none(), "round {round}: said close, then answered");
        } else {
            let second = second.unwrap_or_else(|| {
                panic!("round {round}: the connection was closed without a word: {first}")
            });
            assert!(second.starts_with("HTTP/1.1 200"), "{second}");
        }
    }
    server.stop.cancel();
    server.done.await.unwrap();
}

/// A client that asked for the connection to end after its request is not kept waiting for a
/// body nobody will read: after an early answer the connection closes at once.
#[tokio::test]
async fn an_early_answer_to_a_closing_request_closes_at_once() {
    let app = TestApp::new().await;
    let server = start(&app, config(64)).await;
    for head in [
        "POST /v1/posts HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 100\r\n\r\n",
        "POST /v1/posts HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Close\r\nContent-Length: 100\r\n\r\n",
        "POST /v1/posts HTTP/1.0\r\nHost: t\r\nContent-Length: 100\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        let first = one_response(&mut s).await.expect("an answer");
        assert!(first.contains(" 401 "), "{first}");
        // The body never comes; the server does not wait for it.
        closed_within(&mut s, Duration::from_secs(1)).await;
    }
    server.stop.cancel();
    server.done.await.unwrap();
}
