//! Posts over HTTP, analytics: the sandbox network's simulated metrics.
//!
//! The publishing worker never runs on its own here: `run_due` drives it, with the manual
//! clock, so every step is deterministic; the helpers are in `common/posts.rs`.

mod common;

use std::time::Duration;

use common::both;
use common::posts::{act_ok, draft, get_post, run, world};
use crier_core::Scope;
use serde_json::{Value, json};

// ---- analytics ----

async fn analytics_show_the_sandbox_simulated_metrics() {
    use crier_networks::sandbox::simulated_metrics;
    let (app, key, a) = world().await;
    let b = app.sandbox_account(&key, "second").await;
    let p1 = draft(&app, &key, &[&a, &b], "to both").await;
    let p2 = draft(&app, &key, &[&a], "to a").await;

    // Before publishing: no published targets, nothing to show.
    let r = app
        .get(&format!("/v1/posts/{p1}/analytics"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"], json!([]));

    for id in [&p1, &p2] {
        act_ok(&app, &key, id, "publish", None, "publishing").await;
    }
    assert_eq!(run(&app).await.len(), 3);
    // Published, not yet collected: the targets show with zeros and no collection time.
    let r = app
        .get(&format!("/v1/posts/{p1}/analytics"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["data"][0]["collected_at"], Value::Null);
    assert_eq!(r.body["data"][0]["impressions"], 0);

    assert_eq!(app.publisher().collect_metrics().await.unwrap(), 3);
    // Collected again at once: nothing is stale.
    assert_eq!(app.publisher().collect_metrics().await.unwrap(), 0);

    let post = get_post(&app, &key, &p1).await;
    let r = app
        .get(&format!("/v1/posts/{p1}/analytics"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["post_id"], p1.as_str());
    assert_eq!(r.body["object"], "post_analytics");
    let data = r.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let mut expected = std::collections::BTreeMap::new();
    for (m, t) in data.iter().zip(post["targets"].as_array().unwrap()) {
        assert_eq!(m["account_id"], t["account_id"]);
        assert_eq!(m["external_id"], t["external_id"]);
        assert_eq!(m["url"], t["url"]);
        assert_eq!(m["platform"], "sandbox");
        assert_eq!(m["collected_at"], common::START);
        let want = simulated_metrics(t["external_id"].as_str().unwrap(), 0);
        assert!(want.impressions > 0);
        assert_eq!(m["likes"], want.likes);
        assert_eq!(m["reposts"], want.reposts);
        assert_eq!(m["replies"], want.replies);
        assert_eq!(m["impressions"], want.impressions);
        expected.insert(t["account_id"].as_str().unwrap().to_owned(), want);
    }
    let p2_ext = get_post(&app, &key, &p2).await["targets"][0]["external_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let p2_metrics = simulated_metrics(&p2_ext, 0);

    // Per account, summed over the period's posts.
    app.clock.advance(Duration::from_secs(60));
    let r = app.get("/v1/accounts/analytics").key(&key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["object"], "account_analytics");
    let rows = r.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", r.text);
    let row = |acct: &str| rows.iter().find(|r| r["account_id"] == acct).unwrap();
    let ra = row(&a);
    assert_eq!(ra["posts"], 2);
    assert_eq!(ra["handle"], "brand");
    assert_eq!(ra["likes"], expected[&a].likes + p2_metrics.likes);
    assert_eq!(
        ra["impressions"],
        expected[&a].impressions + p2_metrics.impressions
    );
    assert_eq!(ra["reposts"], expected[&a].reposts + p2_metrics.reposts);
    assert_eq!(ra["replies"], expected[&a].replies + p2_metrics.replies);
    let rb = row(&b);
    assert_eq!(rb["posts"], 1);
    assert_eq!(rb["likes"], expected[&b].likes);
    assert_eq!(rb["impressions"], expected[&b].impressions);

    // A period before the posts shows nothing.
    let r = app
        .get("/v1/accounts/analytics?from=2026-11-01T00:00:00Z&to=2026-11-22T09:00:00Z")
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"], json!([]));

    // Two hours later the metrics have grown, deterministically.
    app.clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(app.publisher().collect_metrics().await.unwrap(), 3);
    let r = app
        .get(&format!("/v1/posts/{p2}/analytics"))
        .key(&key)
        .send()
        .await;
    let grown = simulated_metrics(&p2_ext, 2);
    assert!(grown.impressions > p2_metrics.impressions);
    assert_eq!(r.body["data"][0]["impressions"], grown.impressions);
    assert_eq!(r.body["data"][0]["likes"], grown.likes);

    // Both need analytics:read.
    let reader = app.key_with(&[Scope::PostsRead, Scope::AccountsRead]).await;
    app.get(&format!("/v1/posts/{p1}/analytics"))
        .key(&reader)
        .send()
        .await
        .assert_error(403, "forbidden_scope");
    app.get("/v1/accounts/analytics")
        .key(&reader)
        .send()
        .await
        .assert_error(403, "forbidden_scope");
    let analyst = app.key_with(&[Scope::AnalyticsRead]).await;
    let r = app
        .get(&format!("/v1/posts/{p1}/analytics"))
        .key(&analyst)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Followers are read once per account and period, kept per UTC day, and shown with their
/// change over the period; a period without readings shows none.
async fn account_analytics_show_followers_and_their_change() {
    use crier_networks::sandbox::simulated_followers;
    let (app, key, a) = world().await;
    let id = draft(&app, &key, &[&a], "counted").await;
    act_ok(&app, &key, &id, "publish", None, "publishing").await;
    run(&app).await;
    let account = app
        .store
        .get_account(
            &app.workspace.id,
            &crier_core::ids::AccountId::parse(&a).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let first_day = crier_core::Clock::now_ms(&app.clock);
    assert_eq!(app.publisher().collect_followers().await.unwrap(), 1);
    assert_eq!(
        app.publisher().collect_followers().await.unwrap(),
        0,
        "read once per period"
    );
    // Three days later the sandbox's followers have grown.
    app.clock.advance(Duration::from_secs(3 * 86_400));
    assert_eq!(app.publisher().collect_followers().await.unwrap(), 1);
    let later = crier_core::Clock::now_ms(&app.clock);
    let (before, after) = (
        simulated_followers(&account, first_day) as i64,
        simulated_followers(&account, later) as i64,
    );
    assert!(after > before);
    let r = app
        .get("/v1/accounts/analytics?from=2026-11-01T00:00:00Z&to=2027-06-01T00:00:00Z")
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"][0]["followers"], after, "{}", r.text);
    assert_eq!(r.body["data"][0]["followers_change"], after - before);
}

both!(
    tests: analytics_show_the_sandbox_simulated_metrics,
    account_analytics_show_followers_and_their_change,
);
