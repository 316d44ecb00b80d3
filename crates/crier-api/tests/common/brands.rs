//! Helpers shared by the brand suites (`brands.rs`, `keys_brands.rs`): brand calls and their
//! checks, and a snapshot of everything brands keep, to assert that a refused call changed
//! nothing.

use serde_json::{Value, json};

use super::{Response, TestApp};

/// Every brand, membership and persona row in the store, as text, in a fixed order.
#[derive(Debug, PartialEq)]
pub struct BrandsSnapshot {
    pub brands: Vec<Option<String>>,
    pub members: Vec<Option<String>>,
    pub personas: Vec<Option<String>>,
}

impl TestApp {
    pub async fn brands_snapshot(&self) -> BrandsSnapshot {
        BrandsSnapshot {
            brands: self
                .raw_texts(
                    "SELECT id || '|' || workspace_id || '|' || livemode || '|' || name || '|'
                        || position || '|' || updated_at FROM brands ORDER BY id",
                )
                .await,
            members: self
                .raw_texts(
                    "SELECT brand_id || '|' || account_id || '|' || position FROM brand_accounts
                     ORDER BY brand_id, account_id",
                )
                .await,
            personas: self
                .raw_texts(
                    "SELECT workspace_id || '|' || livemode || '|' || brand_id || '|'
                        || COALESCE(description, '-') || '|' || COALESCE(tone, '-') || '|'
                        || words_to_use || '|' || words_to_avoid || '|' || updated_at
                     FROM personas ORDER BY workspace_id, livemode, brand_id",
                )
                .await,
        }
    }
}

/// `POST /v1/brands` with `body`, asserting `201`; returns the brand.
pub async fn create_brand(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app.post("/v1/brands").key(key).json(body).send().await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["object"], "brand");
    r.body
}

/// A brand named `name` with `accounts`; returns its id.
pub async fn brand(app: &TestApp, key: &str, name: &str, accounts: &[&str]) -> String {
    let b = create_brand(app, key, json!({"name": name, "account_ids": accounts})).await;
    b["id"].as_str().unwrap().to_owned()
}

/// The ids in a list response, in order.
#[track_caller]
pub fn ids(r: &Response) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {}", r.text))
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `GET path` with `key`; the ids listed.
pub async fn list_ids(app: &TestApp, key: &str, path: &str) -> Vec<String> {
    ids(&app.get(path).key(key).send().await)
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// `ids` sorted, to compare sets.
pub fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

pub fn set(items: &[&str]) -> Vec<String> {
    sorted(items.iter().map(|s| (*s).to_owned()).collect())
}
