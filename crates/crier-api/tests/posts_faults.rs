//! Posts over HTTP, the sandbox network's faults: rate limits, lost answers, giving up.
//!
//! The publishing worker never runs on its own here: `run_due` drives it, with the manual
//! clock, so every step is deterministic; the helpers are in `common/posts.rs`.

mod common;

use common::posts::{act_ok, draft, drain, faults, get_post, job_times, run, timeline, world};
use common::{NowMs, both};
use crier_worker::Processed;
use jiff::Timestamp;
use serde_json::{Value, json};

// ---- the sandbox's faults ----

async fn a_rate_limit_pushes_the_next_run_past_retry_after() {
    let (app, key, acct) = world().await;
    faults(
        &app,
        &key,
        &acct,
        json!({"fail_next": 1, "kind": "rate_limit", "retry_after_seconds": 120}),
    )
    .await;
    let id = draft(&app, &key, &[&acct], "Patient.").await;
    act_ok(&app, &key, &id, "publish", None, "publishing").await;
    let now = app.clock.now_ms_value();
    let out = run(&app).await;
    let [Processed::RetryAt(at)] = out.as_slice() else {
        panic!("{out:?}");
    };
    assert!(*at - now >= 120_000, "next run {} ms later", at - now);
    assert_eq!(job_times(&app.jobs().await, &id), [*at]);

    let p = get_post(&app, &key, &id).await;
    assert_eq!(p["status"], "publishing");
    let t = &p["targets"][0];
    assert_eq!(t["status"], "pending");
    assert_eq!(t["error"]["code"], "network_rate_limited");
    assert_eq!(t["attempts"], 1);
    assert!(timeline(&app, &key, &acct).await.is_empty());

    // Not before its time.
    assert_eq!(run(&app).await, []);
    app.clock.set(Timestamp::from_millisecond(*at - 1).unwrap());
    assert_eq!(run(&app).await, []);
    app.clock.set(Timestamp::from_millisecond(*at).unwrap());
    assert_eq!(run(&app).await, [Processed::Published]);
    let p = get_post(&app, &key, &id).await;
    assert_eq!(p["status"], "published");
    assert_eq!(p["targets"][0]["error"], Value::Null);
    assert_eq!(p["targets"][0]["attempts"], 2);
    assert_eq!(timeline(&app, &key, &acct).await.len(), 1);
}

async fn a_lost_answer_is_reconciled_without_a_duplicate() {
    let (app, key, acct) = world().await;
    faults(
        &app,
        &key,
        &acct,
        json!({"fail_next": 1, "kind": "timeout"}),
    )
    .await;
    let id = draft(&app, &key, &[&acct], "Exactly once.").await;
    act_ok(&app, &key, &id, "publish", None, "publishing").await;
    let out = run(&app).await;
    let [Processed::RetryAt(at)] = out.as_slice() else {
        panic!("{out:?}");
    };
    // It landed; crier does not know yet.
    let tl = timeline(&app, &key, &acct).await;
    assert_eq!(tl.len(), 1);
    let p = get_post(&app, &key, &id).await;
    assert_eq!(p["status"], "publishing");
    assert_eq!(p["targets"][0]["status"], "pending");
    assert_eq!(p["targets"][0]["error"]["code"], "network_unavailable");
    assert_eq!(p["targets"][0]["external_id"], Value::Null);

    app.clock.set(Timestamp::from_millisecond(*at).unwrap());
    assert_eq!(run(&app).await, [Processed::Published]);
    let after = timeline(&app, &key, &acct).await;
    assert_eq!(after.len(), 1, "exactly one copy: {after:?}");
    assert_eq!(after[0]["id"], tl[0]["id"]);
    let p = get_post(&app, &key, &id).await;
    assert_eq!(p["status"], "published");
    assert_eq!(p["targets"][0]["external_id"], tl[0]["id"]);
    assert_eq!(p["targets"][0]["attempts"], 1, "found, not sent again");
    assert_eq!(p["targets"][0]["error"], Value::Null);
    assert_eq!(drain(&app).await, []);
}

async fn after_max_attempts_the_target_fails_with_its_reason() {
    let (app, key, acct) = world().await;
    faults(&app, &key, &acct, json!({"fail_next": 5, "kind": "error"})).await;
    let id = draft(&app, &key, &[&acct], "Doomed.").await;
    act_ok(&app, &key, &id, "publish", None, "publishing").await;

    let mut delays = Vec::new();
    let mut out = Vec::new();
    for _ in 0..10 {
        let now = app.clock.now_ms_value();
        let step = run(&app).await;
        assert_eq!(step.len(), 1, "{step:?}");
        out.push(step[0].clone());
        match step[0] {
            Processed::RetryAt(at) => {
                delays.push(at - now);
                let p = get_post(&app, &key, &id).await;
                assert_eq!(p["status"], "publishing");
                assert_eq!(p["targets"][0]["status"], "pending");
                assert_eq!(p["targets"][0]["error"]["code"], "network_unavailable");
                app.clock.set(Timestamp::from_millisecond(at).unwrap());
            }
            _ => break,
        }
    }
    assert_eq!(out.len(), 5, "{out:?}");
    assert_eq!(out[4], Processed::Failed);
    // Backoff from 10 s, doubling, with ±25% jitter.
    assert_eq!(delays.len(), 4);
    for (i, d) in delays.iter().enumerate() {
        let base = 10_000i64 << i;
        assert!(
            (base * 3 / 4..=base * 5 / 4).contains(d),
            "retry {i}: {d} ms"
        );
    }

    let p = get_post(&app, &key, &id).await;
    assert_eq!(p["status"], "failed");
    let t = &p["targets"][0];
    assert_eq!(t["status"], "failed");
    assert_eq!(t["attempts"], 5);
    assert_eq!(t["error"]["code"], "network_unavailable");
    let message = t["error"]["message"].as_str().unwrap();
    assert!(message.contains("injected error"), "{message}");
    assert!(message.contains("5 attempts"), "{message}");
    assert!(app.jobs().await.is_empty());
    assert!(timeline(&app, &key, &acct).await.is_empty());
}

both!(
    tests: a_rate_limit_pushes_the_next_run_past_retry_after,
    a_lost_answer_is_reconciled_without_a_duplicate,
    after_max_attempts_the_target_fails_with_its_reason,
);
