//! Helpers shared by the API key suites (`keys_*.rs`): times, scope sets, the create
//! response, assertions on the error envelope, and the stored key.

use std::collections::BTreeSet;
use std::time::Duration;

use crier_core::ids::KeyId;
use crier_store::KeyRow;
use jiff::Timestamp;
use serde_json::Value;

use super::{NowMs, Response, TestApp};

pub const MINUTE: Duration = Duration::from_secs(60);
pub const HOUR: Duration = Duration::from_secs(3600);

/// The clock's time plus `secs` seconds.
pub fn at(app: &TestApp, secs: i64) -> Timestamp {
    Timestamp::from_millisecond(app.clock.now_ms_value() + secs * 1000).unwrap()
}

pub fn ts(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

pub fn scope_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

pub fn key_id(r: &Response) -> KeyId {
    KeyId::parse(r.body["id"].as_str().unwrap()).unwrap()
}

/// `(id, secret)` of a `201` create or rotate response.
#[track_caller]
pub fn created(r: &Response) -> (String, String) {
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["key"].as_str().unwrap().to_owned(),
    )
}

#[track_caller]
pub fn assert_status(r: &Response, status: u16) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
}

#[track_caller]
pub fn assert_message_mentions(r: &Response, needle: &str) {
    let m = r.body["error"]["message"].as_str().unwrap();
    assert!(
        m.contains(needle),
        "message {m:?} should mention {needle:?}"
    );
}

#[track_caller]
pub fn assert_param(r: &Response, param: &str) {
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], param, "{}", r.text);
}

/// A stored key of this app's workspace, read directly from storage.
pub async fn stored(app: &TestApp, id: &KeyId) -> KeyRow {
    app.store
        .get_key(&app.workspace.id, id)
        .await
        .unwrap()
        .unwrap()
}
