//! API keys over HTTP, IP and origin restrictions: IPv4, IPv6 and mapped addresses,
//! trusted proxies and `X-Forwarded-For`, origins.
//!
//! The key format itself is covered in crier-core; the helpers are in `common/keys.rs`.

mod common;

use common::keys::{assert_message_mentions, assert_status};
use common::{KeySpec, TestApp, both};
use crier_api::ApiConfig;
use crier_core::Scope;

// ---- IP and origin restrictions ----

async fn ip_restrictions_match_ipv4_ipv6_and_mapped_addresses() {
    let app = TestApp::new().await;
    let (v4, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_ips: Some(vec!["10.0.0.0/8".into(), "192.0.2.7".into()]),
            ..KeySpec::default()
        })
        .await;
    let (v6, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_ips: Some(vec!["2001:db8::/32".into()]),
            ..KeySpec::default()
        })
        .await;
    for (key, ip, allowed) in [
        (&v4, "10.1.2.3", true),
        (&v4, "10.255.255.255", true),
        (&v4, "192.0.2.7", true),
        (&v4, "::ffff:10.1.2.3", true),
        (&v4, "11.0.0.1", false),
        (&v4, "192.0.2.8", false),
        (&v4, "::ffff:11.0.0.1", false),
        (&v4, "2001:db8::1", false),
        (&v6, "2001:db8::1", true),
        (&v6, "2001:db8:ffff:1::9", true),
        (&v6, "2001:db9::1", false),
        (&v6, "::1", false),
        (&v6, "10.1.2.3", false),
    ] {
        let r = app.get("/v1/keys").key(key).from_ip(ip).send().await;
        if allowed {
            assert_eq!(r.status, 200, "{ip}: {}", r.text);
        } else {
            assert_eq!(r.status, 403, "{ip}: {}", r.text);
            r.assert_error(403, "ip_not_allowed");
        }
    }
}

async fn trusted_proxies_forward_the_client_address_and_nobody_else_can() {
    let mut cfg = ApiConfig::default();
    cfg.auth.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    let app = TestApp::with_config(cfg, "self-hosted").await;
    let (key, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_ips: Some(vec!["203.0.113.0/24".into()]),
            ..KeySpec::default()
        })
        .await;
    let call = |peer: &str, xff: Option<&str>| {
        let mut c = app.get("/v1/keys").key(&key).from_ip(peer);
        if let Some(v) = xff {
            c = c.header("x-forwarded-for", v);
        }
        c.send()
    };
    // Read from the right: the proxy appended the real client; the left part is the client's
    // own claim and is ignored.
    assert_status(&call("10.0.0.2", Some("6.6.6.6, 203.0.113.9")).await, 200);
    // Past several trusted hops.
    assert_status(
        &call("10.0.0.2", Some("203.0.113.9, 10.0.0.7, 10.0.0.5")).await,
        200,
    );
    for (peer, xff, seen_as) in [
        // The client claims an allowed address on the left; the proxy saw 6.6.6.6.
        ("10.0.0.2", Some("203.0.113.9, 6.6.6.6"), "6.6.6.6"),
        // No header: the proxy itself is the client.
        ("10.0.0.2", None, "10.0.0.2"),
        // An untrusted peer's header is never read.
        ("6.6.6.6", Some("203.0.113.9"), "6.6.6.6"),
        ("203.0.114.1", Some("203.0.113.9"), "203.0.114.1"),
    ] {
        let r = call(peer, xff).await;
        assert_eq!(r.status, 403, "{peer} {xff:?}: {}", r.text);
        r.assert_error(403, "ip_not_allowed");
        assert_message_mentions(&r, seen_as);
    }
}

async fn forwarded_for_over_several_lines_is_one_list() {
    let mut cfg = ApiConfig::default();
    cfg.auth.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    let app = TestApp::with_config(cfg, "self-hosted").await;
    let (key, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_ips: Some(vec!["203.0.113.0/24".into()]),
            ..KeySpec::default()
        })
        .await;
    // The client sent its own line claiming an allowed address; the proxy added a second line
    // with the address it saw. The last line is the proxy's, so the client is 6.6.6.6.
    let r = app
        .get("/v1/keys")
        .key(&key)
        .from_ip("10.0.0.2")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-for", "6.6.6.6")
        .send()
        .await;
    r.assert_error(403, "ip_not_allowed");
    assert_message_mentions(&r, "6.6.6.6");
    // Lines are read in order and walked from the right past trusted hops.
    let r = app
        .get("/v1/keys")
        .key(&key)
        .from_ip("10.0.0.2")
        .header("x-forwarded-for", "6.6.6.6, 203.0.113.9")
        .header("x-forwarded-for", "10.0.0.7")
        .send()
        .await;
    assert_status(&r, 200);
    // A line that is not text stops the walk at the hop before it (the trusted proxy).
    let r = app
        .get("/v1/keys")
        .key(&key)
        .from_ip("10.0.0.2")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-for", "10.0.0.7, \u{e9}")
        .send()
        .await;
    r.assert_error(403, "ip_not_allowed");
    assert_message_mentions(&r, "10.0.0.2");
}

async fn without_trusted_proxies_forwarded_for_is_ignored() {
    let app = TestApp::new().await;
    let (key, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_ips: Some(vec!["203.0.113.0/24".into()]),
            ..KeySpec::default()
        })
        .await;
    let r = app
        .get("/v1/keys")
        .key(&key)
        .from_ip("10.0.0.2")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await;
    r.assert_error(403, "ip_not_allowed");
    assert_status(
        &app.get("/v1/keys")
            .key(&key)
            .from_ip("203.0.113.9")
            .send()
            .await,
        200,
    );
}

async fn origin_restrictions_apply_only_to_requests_with_an_origin() {
    let app = TestApp::new().await;
    let (exact, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_origins: Some(vec!["https://app.example.com".into()]),
            ..KeySpec::default()
        })
        .await;
    let (wildcard, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_origins: Some(vec!["https://*.example.com".into()]),
            ..KeySpec::default()
        })
        .await;
    let (open, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    for (key, origin, allowed) in [
        (&exact, None, true),
        (&exact, Some("https://app.example.com"), true),
        (&exact, Some("https://APP.example.com:443"), true),
        (&exact, Some("https://evil.example.com"), false),
        (&exact, Some("http://app.example.com"), false),
        (&exact, Some("https://app.example.com:8443"), false),
        (&exact, Some("null"), false),
        (&wildcard, None, true),
        (&wildcard, Some("https://app.example.com"), true),
        (&wildcard, Some("https://a.b.example.com"), true),
        (&wildcard, Some("https://example.com"), false),
        (&wildcard, Some("https://evilexample.com"), false),
        (&wildcard, Some("https://app.example.org"), false),
        (&open, Some("https://anything.test"), true),
    ] {
        let mut call = app.get("/v1/keys").key(key);
        if let Some(o) = origin {
            call = call.header("origin", o);
        }
        let r = call.send().await;
        if allowed {
            assert_eq!(r.status, 200, "{origin:?}: {}", r.text);
        } else {
            assert_eq!(r.status, 403, "{origin:?}: {}", r.text);
            r.assert_error(403, "origin_not_allowed");
        }
    }
}

both!(
    tests: ip_restrictions_match_ipv4_ipv6_and_mapped_addresses,
    trusted_proxies_forward_the_client_address_and_nobody_else_can,
    without_trusted_proxies_forwarded_for_is_ignored,
    forwarded_for_over_several_lines_is_one_list,
    origin_restrictions_apply_only_to_requests_with_an_origin,
);
