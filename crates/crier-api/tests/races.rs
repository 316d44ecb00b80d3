//! Races users can cause: cancel, delete and edit at the instant hundreds of posts fall due,
//! with the publisher running on its own. Whatever the interleaving, a request that answered
//! `200` won: a cancelled or deleted post reaches no network, an edited post goes out with the
//! edit. A request that lost answers `409 conflict` and the post goes out once, as it was.
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{KeySpec, NowMs, TestApp, both};
use crier_core::Scope;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const POSTS: usize = 400;
const ACCOUNTS: usize = 4;
/// Over how long the requests are sent.
const SPREAD: Duration = Duration::from_millis(1500);

/// An app with a key that is not rate-limited for this many requests, `ACCOUNTS` sandbox
/// accounts, and `POSTS` posts scheduled for one instant (made through `/v1/batches`).
/// Returns the app, the key, the post ids and the instant.
async fn due_at_once() -> (Arc<TestApp>, String, Vec<String>, i64) {
    let app = TestApp::new().await;
    let (key, _) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            per_minute: Some(100_000),
            per_day: Some(1_000_000),
            ..KeySpec::default()
        })
        .await;
    let mut accounts = Vec::new();
    for i in 0..ACCOUNTS {
        accounts.push(app.sandbox_account(&key, &format!("brand{i}")).await);
    }
    let due = app.clock.now_ms_value() + 60_000;
    let at = jiff::Timestamp::from_millisecond(due).unwrap().to_string();
    let mut ids = Vec::new();
    for batch in 0..POSTS / 100 {
        let posts: Vec<Value> = (0..100)
            .map(|i| {
                let n = batch * 100 + i;
                json!({
                    "body": format!("original {n}"),
                    "account_ids": [accounts[n % ACCOUNTS]],
                    "scheduled_at": at,
                })
            })
            .collect();
        let r = app
            .post("/v1/batches")
            .key(&key)
            .json(json!({ "posts": posts }))
            .send()
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        for p in r.body["data"].as_array().unwrap() {
            assert_eq!(p["status"], "scheduled");
            ids.push(p["id"].as_str().unwrap().to_owned());
        }
    }
    (Arc::new(app), key, ids, due)
}

/// Runs the publisher on its own (as `crier serve` does) while `request` is sent for every
/// post at once, the clock standing at the instant they are due; then lets the publisher
/// finish. Returns each post's answer (status, body).
async fn race<F, Fut>(
    app: &Arc<TestApp>,
    ids: &[String],
    due: i64,
    request: F,
) -> BTreeMap<String, (u16, Value)>
where
    F: Fn(Arc<TestApp>, String) -> Fut,
    Fut: std::future::Future<Output = (u16, Value)> + Send + 'static,
{
    app.clock
        .set(jiff::Timestamp::from_millisecond(due).unwrap());
    let stop = CancellationToken::new();
    let worker = tokio::spawn(app.publisher().run(stop.clone()));
    // The publisher works oldest first; the requests come newest first, spread out, so the
    // two meet somewhere in the middle, where calls are being made while requests arrive.
    let requests: Vec<_> = ids
        .iter()
        .rev()
        .enumerate()
        .map(|(i, id)| {
            let fut = request(app.clone(), id.clone());
            let id = id.clone();
            let wait = SPREAD * i as u32 / POSTS as u32;
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                (id, fut.await)
            })
        })
        .collect();
    let mut answers = BTreeMap::new();
    for r in requests {
        let (id, answer) = r.await.expect("request task");
        answers.insert(id, answer);
    }
    // The posts that stayed scheduled go out; wait until no job is left.
    for _ in 0..600 {
        if app.store.next_job_at().await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    worker.await.expect("worker");
    assert_eq!(app.store.next_job_at().await.unwrap(), None, "jobs left");
    answers
}

/// What the sandbox network received: post id → the bodies it received for it.
async fn received(app: &TestApp) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in app
        .raw_texts("SELECT idem_key || '|' || body FROM sandbox_posts")
        .await
    {
        let row = row.unwrap();
        let (idem, body) = row.split_once('|').unwrap();
        let post = idem.split(':').next().unwrap().to_owned();
        out.entry(post).or_default().push(body.to_owned());
    }
    out
}

async fn status_of(app: &TestApp, key: &str, id: &str) -> (u16, Value) {
    let r = app.get(&format!("/v1/posts/{id}")).key(key).send().await;
    (r.status.as_u16(), r.body)
}

/// A `409` that lost the race: the envelope, code `conflict`.
#[track_caller]
fn assert_lost(id: &str, body: &Value) {
    assert_eq!(body["error"]["code"], "conflict", "{id}: {body}");
}

both!(
    cancel_at_the_due_instant_never_publishes,
    |_db| async move {
        let (app, key, ids, due) = due_at_once().await;
        let answers = race(&app, &ids, due, |app, id| {
            let key = key.clone();
            async move {
                let r = app
                    .post(&format!("/v1/posts/{id}/cancel"))
                    .key(&key)
                    .send()
                    .await;
                (r.status.as_u16(), r.body)
            }
        })
        .await;
        let sent = received(&app).await;
        let (mut won, mut lost) = (0, 0);
        for (id, (status, body)) in &answers {
            let (_, now) = status_of(&app, &key, id).await;
            match status {
                200 => {
                    won += 1;
                    assert_eq!(body["status"], "draft", "{id}: {body}");
                    assert_eq!(now["status"], "draft", "{id} after the race: {now}");
                    assert!(!sent.contains_key(id), "{id} was cancelled and still sent");
                }
                409 => {
                    lost += 1;
                    assert_lost(id, body);
                    assert_eq!(now["status"], "published", "{id}: {now}");
                    assert_eq!(sent[id].len(), 1, "{id} sent once");
                }
                other => panic!("{id}: cancel answered {other}: {body}"),
            }
        }
        assert_eq!(won + lost, POSTS);
        assert_eq!(
            sent.len(),
            lost,
            "only the posts whose cancel lost went out"
        );
        assert!(
            won > 0 && lost > 0,
            "the requests met the publisher: {won} won, {lost} lost"
        );
        eprintln!("cancel race: {won} cancelled, {lost} published");
    }
);

both!(
    delete_at_the_due_instant_never_publishes,
    |_db| async move {
        let (app, key, ids, due) = due_at_once().await;
        let answers = race(&app, &ids, due, |app, id| {
            let key = key.clone();
            async move {
                let r = app
                    .delete(&format!("/v1/posts/{id}"))
                    .key(&key)
                    .send()
                    .await;
                // What the network had when DELETE answered: deleting a post that was already
                // published is allowed (it removes crier's record), but nothing may go out after.
                let before = received(&app).await.get(&id).map_or(0, Vec::len);
                let mut body = r.body;
                body["sent_when_answered"] = before.into();
                (r.status.as_u16(), body)
            }
        })
        .await;
        let sent = received(&app).await;
        let (mut won, mut lost, mut published_first) = (0, 0, 0);
        for (id, (status, body)) in &answers {
            let (now_status, now) = status_of(&app, &key, id).await;
            match status {
                200 => {
                    won += 1;
                    assert_eq!(body["deleted"], true, "{id}: {body}");
                    assert_eq!(now_status, 404, "{id} after the race: {now}");
                    let sent_after = sent.get(id).map_or(0, Vec::len);
                    assert_eq!(
                        sent_after, body["sent_when_answered"],
                        "{id} went out after its DELETE answered"
                    );
                    published_first += (sent_after == 1) as usize;
                }
                409 => {
                    lost += 1;
                    assert_lost(id, body);
                    assert_eq!(now["status"], "published", "{id}: {now}");
                    assert_eq!(sent[id].len(), 1, "{id} sent once");
                }
                other => panic!("{id}: delete answered {other}: {body}"),
            }
        }
        assert_eq!(won + lost, POSTS);
        assert_eq!(
            sent.len(),
            lost + published_first,
            "only the posts whose delete lost, or came after they were published, went out"
        );
        // A delete after the post went out is a 200 too, so a 409 needs the narrow window of a
        // call in flight: what shows the requests met the publisher is both kinds of 200, or
        // a 409.
        assert!(
            won > published_first && published_first + lost > 0,
            "the requests met the publisher: {won} won ({published_first} after publishing), \
             {lost} lost"
        );
        eprintln!(
            "delete race: {won} deleted ({published_first} of them after they were published), \
         {lost} refused while publishing"
        );
    }
);

both!(
    edit_at_the_due_instant_sends_what_was_answered,
    |_db| async move {
        let (app, key, ids, due) = due_at_once().await;
        let answers = race(&app, &ids, due, |app, id| {
            let key = key.clone();
            async move {
                let r = app
                    .patch(&format!("/v1/posts/{id}"))
                    .key(&key)
                    .json(json!({ "body": format!("edited {id}") }))
                    .send()
                    .await;
                (r.status.as_u16(), r.body)
            }
        })
        .await;
        let sent = received(&app).await;
        let (mut won, mut lost) = (0, 0);
        for (id, (status, body)) in &answers {
            let (_, now) = status_of(&app, &key, id).await;
            assert_eq!(now["status"], "published", "{id}: {now}");
            let bodies = &sent[id];
            assert_eq!(bodies.len(), 1, "{id} sent once: {bodies:?}");
            match status {
                200 => {
                    won += 1;
                    assert_eq!(body["body"], format!("edited {id}"));
                    assert_eq!(bodies[0], format!("edited {id}"), "{id}: the edit won");
                }
                409 => {
                    lost += 1;
                    assert_lost(id, body);
                    assert!(bodies[0].starts_with("original "), "{id}: {bodies:?}");
                }
                other => panic!("{id}: edit answered {other}: {body}"),
            }
        }
        assert_eq!(won + lost, POSTS);
        assert!(
            won > 0 && lost > 0,
            "the requests met the publisher: {won} won, {lost} lost"
        );
        eprintln!("edit race: {won} edited, {lost} published as they were");
    }
);

both!(
    approve_racing_a_reschedule_enqueues_at_the_stored_time,
    |_db| async move {
        // 400 posts wait for approval at one time; each is approved and rescheduled at once.
        // Whatever wins, a scheduled post's jobs are due at the time the post says: an approval
        // decided on the old time must not enqueue at it after a reschedule moved the post.
        let app = TestApp::new().await;
        let (key, _) = app
            .key(KeySpec {
                scopes: Scope::ALL.to_vec(),
                per_minute: Some(100_000),
                per_day: Some(1_000_000),
                ..KeySpec::default()
            })
            .await;
        let acct = app.sandbox_account(&key, "brand").await;
        let r = app
            .patch("/v1/workspace")
            .key(&key)
            .json(json!({"require_approval": true}))
            .send()
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let first = "2026-11-23T10:00:00Z";
        let later = "2026-11-24T10:00:00Z";
        let mut ids = Vec::new();
        for _ in 0..POSTS / 100 {
            let posts: Vec<Value> = (0..100)
            .map(|n| json!({"body": format!("post {n}"), "account_ids": [acct], "scheduled_at": first}))
            .collect();
            let r = app
                .post("/v1/batches")
                .key(&key)
                .json(json!({ "posts": posts }))
                .send()
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
            for p in r.body["data"].as_array().unwrap() {
                assert_eq!(p["status"], "pending_approval");
                ids.push(p["id"].as_str().unwrap().to_owned());
            }
        }
        let app = Arc::new(app);
        let mut tasks = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            for verb in ["approve", "schedule"] {
                let (app, key, id) = (app.clone(), key.clone(), id.clone());
                let body = if verb == "approve" {
                    json!({})
                } else {
                    json!({ "scheduled_at": later })
                };
                let wait = SPREAD * i as u32 / POSTS as u32;
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let r = app
                        .post(&format!("/v1/posts/{id}/{verb}"))
                        .key(&key)
                        .json(body)
                        .send()
                        .await;
                    assert!(
                        r.status == 200 || r.body["error"]["code"] == "conflict",
                        "{verb} {id}: {}",
                        r.text
                    );
                }));
            }
        }
        for t in tasks {
            t.await.expect("request task");
        }
        // post id -> the run_at of its jobs
        let mut runs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for job in app.jobs().await {
            let job = job.unwrap();
            let fields: Vec<&str> = job.split('|').collect();
            runs.entry(fields[1].to_owned())
                .or_default()
                .push(fields[3].parse().unwrap());
        }
        let (mut scheduled, mut waiting) = (0, 0);
        for id in &ids {
            let (_, post) = status_of(&app, &key, id).await;
            match post["status"].as_str().unwrap() {
                "scheduled" => {
                    scheduled += 1;
                    let at = post["scheduled_at"].as_str().unwrap();
                    let at = at.parse::<jiff::Timestamp>().unwrap().as_millisecond();
                    assert_eq!(
                        runs.get(id),
                        Some(&vec![at]),
                        "{id}: its job is due when it says"
                    );
                }
                "pending_approval" => {
                    waiting += 1;
                    assert_eq!(runs.get(id), None, "{id} waits: no job");
                }
                other => panic!("{id}: {other}"),
            }
        }
        assert!(scheduled > 0, "some approvals went through");
        eprintln!("approve vs reschedule: {scheduled} scheduled, {waiting} still waiting");
    }
);
