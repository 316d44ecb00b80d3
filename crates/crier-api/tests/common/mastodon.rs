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

/// The app over `store` with the sandbox and the Mastodon connector, allowed to reach
/// instances on 127.0.0.1 (calls time out after `timeout`), connecting back to [`REDIRECT`].
pub fn compose(
    store: &crier_store::Store,
    clock: &crier_core::ManualClock,
    config: &crier_api::ApiConfig,
    timeout: std::time::Duration,
) -> crier_app::App {
    let mastodon = crier_networks::mastodon::Mastodon::new(
        crier_networks::mastodon::MastodonConfig {
            allow_private_networks: true,
            timeout,
            ..Default::default()
        },
        std::sync::Arc::new(clock.clone()),
    );
    super::compose_with(store, clock, config, vec![std::sync::Arc::new(mastodon)]).with_connect(
        crier_app::ConnectConfig {
            redirect_uris: vec![REDIRECT.into()],
            allow_private_networks: true,
            ..Default::default()
        },
    )
}
