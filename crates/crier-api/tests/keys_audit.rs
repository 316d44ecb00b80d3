//! API keys over HTTP, the audit log: every change with its actor and request id.
//!
//! The key format itself is covered in crier-core; the helpers are in `common/keys.rs`.

mod common;

use common::keys::{assert_status, created};
use common::{KeySpec, Response, TestApp, both};
use crier_core::Scope;
use crier_store::Actor;
use serde_json::json;

// ---- Audit ----

async fn every_change_is_audited_with_its_actor_and_request_id() {
    let app = TestApp::new().await;
    let (admin, admin_row) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            ..KeySpec::default()
        })
        .await;
    let (other_admin, other_row) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            ..KeySpec::default()
        })
        .await;
    let request_id = |r: &Response| r.header("x-request-id").unwrap().to_owned();

    let r = app
        .post("/v1/keys")
        .key(&admin)
        .json(json!({"name": "audited", "scopes": ["posts:read"]}))
        .send()
        .await;
    let (id, _) = created(&r);
    let created_req = request_id(&r);
    let r = app
        .patch(&format!("/v1/keys/{id}"))
        .key(&admin)
        .json(json!({"name": "audited twice", "allowed_ips": ["10.0.0.0/8"]}))
        .send()
        .await;
    assert_status(&r, 200);
    let updated_req = request_id(&r);
    let r = app
        .post(&format!("/v1/keys/{id}/rotate"))
        .key(&admin)
        .json(json!({"overlap_seconds": 60}))
        .send()
        .await;
    let (new_id, _) = created(&r);
    let rotated_req = request_id(&r);
    // Someone else revokes the old key: the actor is whoever acted.
    let r = app
        .delete(&format!("/v1/keys/{id}"))
        .key(&other_admin)
        .send()
        .await;
    assert_status(&r, 200);
    let revoked_req = request_id(&r);

    let log = app
        .store
        .list_audit(&app.workspace.id, Some(&id))
        .await
        .unwrap();
    let got: Vec<(&str, &Actor, Option<&str>)> = log
        .iter()
        .map(|e| (e.action.as_str(), &e.actor, e.request_id.as_deref()))
        .collect();
    let by_admin = Actor::Key(admin_row.id.clone());
    let by_other = Actor::Key(other_row.id.clone());
    assert_eq!(
        got,
        vec![
            ("key.revoked", &by_other, Some(revoked_req.as_str())),
            ("key.rotated", &by_admin, Some(rotated_req.as_str())),
            ("key.updated", &by_admin, Some(updated_req.as_str())),
            ("key.created", &by_admin, Some(created_req.as_str())),
        ],
        "newest first"
    );
    assert!(log.iter().all(|e| e.target_id == id));
    assert!(log.iter().all(|e| e.workspace_id == app.workspace.id));
    let rotated = &log[1];
    assert_eq!(rotated.details["replaced_by"], new_id.as_str());
    assert_eq!(rotated.details["overlap_seconds"], 60);
    let updated = &log[2];
    assert_eq!(
        updated.details["changed"],
        json!(["name", "allowed_ips"]),
        "{:?}",
        updated.details
    );
}

both!(
    tests: every_change_is_audited_with_its_actor_and_request_id,
);
