//! The SSRF-guarded client ignores `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY`: through a proxy
//! the proxy resolves host names, so the guard's resolver would never see them. A test binary
//! of its own, because it sets process-wide environment variables.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[test]
fn guarded_clients_do_not_use_proxies_from_the_environment() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A "proxy" that answers every request with 200, and counts them.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let proxy = format!("http://{}", std_listener.local_addr().unwrap());
    // SAFETY: set before any other thread of this process exists (the runtime above is
    // single-threaded and has not run anything); this binary has no other test.
    unsafe {
        for name in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            std::env::set_var(name, &proxy);
        }
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
    runtime.block_on(async move {
        let listener = TcpListener::from_std(std_listener).unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            }
        });

        let client = crier_worker::http::client(Duration::from_secs(5), false);
        // `localhost` resolves to loopback only: the guard must refuse it, which it can only
        // do when it, not a proxy, resolves the name.
        for url in ["http://localhost:9/hook", "https://localhost:9/hook"] {
            let result = client.get(url).send().await;
            assert!(
                result.is_err(),
                "{url} went through the proxy: {:?}",
                result.map(|r| r.status())
            );
            let err = format!("{:?}", result.unwrap_err());
            assert!(err.contains("no address crier may call"), "{url}: {err}");
        }
        assert_eq!(seen.load(Ordering::SeqCst), 0, "the proxy was never used");
    });
}
