//! mastodon-mock (scripts/peers/mastodon.sh), shared by the suites that connect accounts on it:
//! its URL (skipping without it, failing with `CRIER_REQUIRE_PEERS=1`), the redirect URI the
//! test apps allow, and a "browser" that approves in the mock's form without following the
//! redirect back.

use std::time::Duration;

pub const REDIRECT: &str = "https://app.example.com/connected";

pub fn mock_url() -> Option<String> {
    match std::env::var("CRIER_TEST_MASTODON_URL") {
        Ok(u) if !u.is_empty() => Some(u.trim_end_matches('/').to_owned()),
        _ => {
            assert!(
                std::env::var("CRIER_REQUIRE_PEERS").as_deref() != Ok("1"),
                "CRIER_TEST_MASTODON_URL is not set and CRIER_REQUIRE_PEERS=1 \
                 (scripts/peers/mastodon.sh start starts mastodon-mock)"
            );
            eprintln!(
                "skipped: set CRIER_TEST_MASTODON_URL (scripts/peers/mastodon.sh start starts mastodon-mock)"
            );
            None
        }
    }
}

pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}
