//! Posts through the API of a running server: scheduling many at once, and reading back what
//! was published (the sandbox timelines hold one entry per delivery, keyed by the publish's
//! idempotency key, so a post published twice shows up twice).

use serde_json::{Value, json};

use super::server::http;

/// Every timeline entry of every account, as idempotency keys.
pub fn timeline_keys(port: u16, key: &str, accounts: &[String]) -> Vec<String> {
    let mut keys = Vec::new();
    for acct in accounts {
        let mut offset = 0;
        loop {
            let (status, page) = http(
                port,
                "GET",
                &format!("/v1/accounts/{acct}/timeline?limit=50&offset={offset}"),
                key,
                None,
            );
            assert_eq!(status, 200, "{page}");
            let data = page["data"].as_array().unwrap();
            keys.extend(
                data.iter()
                    .map(|p| p["idempotency_key"].as_str().unwrap().to_owned()),
            );
            offset += data.len();
            if !page["has_more"].as_bool().unwrap() {
                break;
            }
        }
    }
    keys
}

pub fn count_published(port: u16, key: &str) -> usize {
    let mut n = 0;
    let mut offset = 0;
    loop {
        let (_, page) = http(
            port,
            "GET",
            &format!("/v1/posts?status=published&limit=50&offset={offset}"),
            key,
            None,
        );
        let len = page["data"].as_array().map_or(0, Vec::len);
        n += len;
        offset += len;
        if !page["has_more"].as_bool().unwrap_or(false) {
            return n;
        }
    }
}

/// Whether any post has `status`.
pub fn any_with(port: u16, key: &str, status: &str) -> bool {
    let (_, page) = http(
        port,
        "GET",
        &format!("/v1/posts?status={status}&limit=1"),
        key,
        None,
    );
    page["data"].as_array().is_some_and(|d| !d.is_empty())
}

/// `total` posts (`"{prefix} {n}"` to `account(n)`), in batches of 100, due over the next
/// few seconds. On a loaded machine a batch may be sent after that: it is then due a second
/// after it is sent, so its times are never in the past and the last batch is still waiting
/// when the kill loop starts.
pub fn schedule<'a>(
    port: u16,
    key: &str,
    total: usize,
    prefix: &str,
    account: impl Fn(usize) -> &'a str,
) {
    let due = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3);
    for batch in 0..total / 100 {
        let due = due.max(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1));
        let posts: Vec<Value> = (0..100)
            .map(|i| {
                let n = batch * 100 + i;
                json!({
                    "body": format!("{prefix} {n}"),
                    "account_ids": [account(n)],
                    "scheduled_at": (due + jiff::SignedDuration::from_millis((n % 40) as i64 * 100)).to_string(),
                })
            })
            .collect();
        let (status, body) = http(
            port,
            "POST",
            "/v1/batches",
            key,
            Some(&json!({ "posts": posts })),
        );
        assert_eq!(status, 201, "{body}");
    }
}

/// `n` sandbox accounts (`acct0`, `acct1`, …) connected through the API, the i-th through
/// `ports[i % ports.len()]` (several nodes share the work); their ids.
pub fn sandbox_accounts(ports: &[u16], key: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let (status, a) = http(
                ports[i % ports.len()],
                "POST",
                "/v1/connect/sandbox",
                key,
                Some(&json!({ "handle": format!("acct{i}") })),
            );
            assert_eq!(status, 201, "{a}");
            a["id"].as_str().unwrap().to_owned()
        })
        .collect()
}
