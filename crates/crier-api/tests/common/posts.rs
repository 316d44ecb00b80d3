//! Helpers shared by the posts suites (`posts_*.rs`): a world with one sandbox account, the
//! post calls and their checks, and driving the publishing worker with the manual clock.

use crier_worker::Processed;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::{NowMs, Response, TestApp};

/// One "family" emoji: four people joined by zero-width joiners, seven chars, one grapheme.
pub const FAMILY: &str = "👨\u{200D}👩\u{200D}👧\u{200D}👦";

pub fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub fn ms(s: &str) -> i64 {
    ts(s).as_millisecond()
}

/// An app on the default (self-hosted) plan, a key with every scope and one sandbox account.
pub async fn world() -> (TestApp, String, String) {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let acct = app.sandbox_account(&key, "brand").await;
    (app, key, acct)
}

#[track_caller]
pub fn assert_param(r: &Response, param: &str) {
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], param, "param; body: {}", r.text);
}

pub async fn create(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app.post("/v1/posts").key(key).json(body).send().await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

/// A draft to `accounts` with `text`; returns its id.
pub async fn draft(app: &TestApp, key: &str, accounts: &[&str], text: &str) -> String {
    let body = create(app, key, json!({"body": text, "account_ids": accounts})).await;
    assert_eq!(body["status"], "draft");
    body["id"].as_str().unwrap().to_owned()
}

/// `POST /v1/posts/{id}/{verb}` with an optional JSON body.
pub async fn act(app: &TestApp, key: &str, id: &str, verb: &str, body: Option<Value>) -> Response {
    let call = app.post(&format!("/v1/posts/{id}/{verb}")).key(key);
    match body {
        Some(b) => call.json(b).send().await,
        None => call.send().await,
    }
}

/// Like [`act`], asserting `200` and the post's new status.
pub async fn act_ok(
    app: &TestApp,
    key: &str,
    id: &str,
    verb: &str,
    body: Option<Value>,
    status: &str,
) -> Value {
    let r = act(app, key, id, verb, body).await;
    assert_eq!(r.status, 200, "{verb}: {}", r.text);
    assert_eq!(r.body["status"], status, "{verb}: {}", r.text);
    assert_eq!(r.body["id"], id);
    r.body
}

pub async fn get_post(app: &TestApp, key: &str, id: &str) -> Value {
    let r = app.get(&format!("/v1/posts/{id}")).key(key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

pub async fn status_of(app: &TestApp, key: &str, id: &str) -> String {
    get_post(app, key, id).await["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// What the sandbox account received, oldest first.
pub async fn timeline(app: &TestApp, key: &str, acct: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/v1/accounts/{acct}/timeline?limit=50"))
        .key(key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].as_array().unwrap().clone()
}

pub async fn faults(app: &TestApp, key: &str, acct: &str, body: Value) {
    let r = app
        .post(&format!("/v1/accounts/{acct}/faults"))
        .key(key)
        .json(body)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

pub async fn patch_workspace(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app.patch("/v1/workspace").key(key).json(body).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

pub async fn run(app: &TestApp) -> Vec<Processed> {
    app.publisher().run_due().await
}

/// Runs the worker, moving the clock to the next job's time, until no job is left.
pub async fn drain(app: &TestApp) -> Vec<Processed> {
    let mut all = Vec::new();
    for _ in 0..50 {
        all.extend(run(app).await);
        let next = app
            .jobs()
            .await
            .iter()
            .flatten()
            .map(|j| j.split('|').nth(3).unwrap().parse::<i64>().unwrap())
            .min();
        match next {
            Some(at) => app
                .clock
                .set(Timestamp::from_millisecond(at.max(app.clock.now_ms_value())).unwrap()),
            None => return all,
        }
    }
    panic!("the worker never settled: {all:?}");
}

/// How many posts of this app's workspace are in storage.
pub async fn post_count(app: &TestApp) -> usize {
    app.posts_in(&app.workspace.id).await.len()
}

/// The first `run_at` of the jobs of `post` (jobs as `id|post|account|run_at|locked`).
pub fn job_times(jobs: &[Option<String>], post: &str) -> Vec<i64> {
    jobs.iter()
        .flatten()
        .filter(|j| j.split('|').nth(1) == Some(post))
        .map(|j| j.split('|').nth(3).unwrap().parse().unwrap())
        .collect()
}

pub fn item(acct: &str, text: &str) -> Value {
    json!({"body": text, "account_ids": [acct]})
}
