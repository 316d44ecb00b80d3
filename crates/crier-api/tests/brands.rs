//! Brands over HTTP: create, read, list (in the workspace's order), update, delete, reorder;
//! their bounds; tenancy and test mode; the plan's bound; posts that name a brand instead of
//! accounts. Every refused call is checked to have changed nothing in storage. The helpers are
//! in `common/brands.rs`.
// Expected lists of one id read best as `[id.clone()]`.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;

use common::brands::{brand, create_brand, ids, list_ids, set, sorted, strings};
use common::posts::{assert_param, drain};
use common::{KeySpec, TestApp, both};
use crier_core::{KeyMode, Scope};
use serde_json::{Value, json};

/// An app with an admin key and three sandbox accounts.
async fn world() -> (TestApp, String, [String; 3]) {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let a = app.sandbox_account(&key, "alpha").await;
    let b = app.sandbox_account(&key, "beta").await;
    let c = app.sandbox_account(&key, "gamma").await;
    (app, key, [a, b, c])
}

async fn brands_can_be_created_read_listed_changed_and_deleted() {
    let (app, key, [a, b, c]) = world().await;
    let created = create_brand(
        &app,
        &key,
        json!({
            "name": "  Acme Coffee  ",
            "account_ids": [b, a],
            "persona": {
                "description": "  Small-batch roasters.\nWarm, never pushy.  ",
                "tone": "friendly",
                "words_to_use": ["roast", " fresh "],
                "words_to_avoid": ["cheap"],
            },
        }),
    )
    .await;
    let one = created["id"].as_str().unwrap().to_owned();
    assert!(one.starts_with("brd_"));
    assert_eq!(created["name"], "Acme Coffee", "trimmed");
    assert_eq!(created["position"], 0);
    assert_eq!(strings(&created["account_ids"]), [b.clone(), a.clone()]);
    assert_eq!(
        created["persona"],
        json!({
            "description": "Small-batch roasters.\nWarm, never pushy.",
            "tone": "friendly",
            "words_to_use": ["roast", "fresh"],
            "words_to_avoid": ["cheap"],
        })
    );
    assert_eq!(created["livemode"], true);
    let got = app.get(&format!("/v1/brands/{one}")).key(&key).send().await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body, created);

    // New brands go last; the list is in that order, not newest first; an account may be in
    // several brands; a brand may have no accounts and no voice.
    let two = brand(&app, &key, "Beta Bakery", &[&a]).await;
    let three = create_brand(&app, &key, json!({"name": "Empty"})).await;
    assert_eq!(three["position"], 2);
    assert_eq!(three["account_ids"], json!([]));
    assert_eq!(
        three["persona"],
        json!({"description": null, "tone": null, "words_to_use": [], "words_to_avoid": []})
    );
    let three = three["id"].as_str().unwrap().to_owned();
    let r = app.get("/v1/brands").key(&key).send().await;
    assert_eq!(ids(&r), [one.clone(), two.clone(), three.clone()]);
    assert_eq!(r.body["has_more"], false);
    let r = app
        .get("/v1/brands?limit=1&offset=1")
        .key(&key)
        .send()
        .await;
    assert_eq!(ids(&r), [two.clone()]);
    assert_eq!(r.body["has_more"], true);

    // Update: the name, the accounts (replaced), the voice (replaced whole).
    app.clock.advance(std::time::Duration::from_secs(60));
    let r = app
        .patch(&format!("/v1/brands/{one}"))
        .key(&key)
        .json(json!({"name": "Acme Roasters", "account_ids": [c], "persona": {"tone": "dry"}}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "Acme Roasters");
    assert_eq!(strings(&r.body["account_ids"]), [c.clone()]);
    assert_eq!(
        r.body["persona"],
        json!({"description": null, "tone": "dry", "words_to_use": [], "words_to_avoid": []})
    );
    assert_ne!(r.body["updated_at"], created["updated_at"]);
    assert_eq!(r.body["created_at"], created["created_at"]);
    // An empty body changes nothing but the time.
    let r = app
        .patch(&format!("/v1/brands/{one}"))
        .key(&key)
        .json(json!({}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "Acme Roasters");
    assert_eq!(strings(&r.body["account_ids"]), [c.clone()]);

    // A post made from a brand keeps its accounts and brand_id when the brand goes.
    let post = app
        .post("/v1/posts")
        .key(&key)
        .json(json!({"body": "hi", "brand_id": one}))
        .send()
        .await;
    assert_eq!(post.status, 201, "{}", post.text);
    let post_id = post.body["id"].as_str().unwrap().to_owned();

    // Delete: gone, its memberships and voice with it, the others move up.
    let snap = app.brands_snapshot().await;
    assert!(snap.members.iter().flatten().any(|m| m.starts_with(&one)));
    assert!(snap.personas.iter().flatten().any(|p| p.contains(&one)));
    let r = app
        .delete(&format!("/v1/brands/{one}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"id": one, "object": "brand", "deleted": true})
    );
    app.get(&format!("/v1/brands/{one}"))
        .key(&key)
        .send()
        .await
        .assert_error(404, "not_found");
    app.delete(&format!("/v1/brands/{one}"))
        .key(&key)
        .send()
        .await
        .assert_error(404, "not_found");
    let r = app.get("/v1/brands").key(&key).send().await;
    assert_eq!(ids(&r), [two.clone(), three.clone()]);
    let positions: Vec<&Value> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["position"])
        .collect();
    assert_eq!(positions, [&json!(0), &json!(1)]);
    let snap = app.brands_snapshot().await;
    assert!(!snap.members.iter().flatten().any(|m| m.starts_with(&one)));
    assert!(!snap.personas.iter().flatten().any(|p| p.contains(&one)));
    let post = app
        .get(&format!("/v1/posts/{post_id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(post.body["brand_id"], one.as_str());
    assert_eq!(strings(&post.body["account_ids"]), [c.clone()]);
}

async fn brand_input_is_bounded_and_refusals_change_nothing() {
    let (app, key, [a, ..]) = world().await;
    let existing = brand(&app, &key, "Taken", &[&a]).await;
    let other = app.other_workspace("globex").await;
    let (their_key, _) = app
        .key_in(
            &other,
            KeySpec {
                scopes: Scope::ALL.to_vec(),
                ..KeySpec::default()
            },
        )
        .await;
    let theirs = app.sandbox_account(&their_key, "theirs").await;
    let test_key = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await
        .0;
    let test_acct = app.sandbox_account(&test_key, "sandboxed").await;
    let unknown = crier_core::ids::AccountId::generate().to_string();
    let many: Vec<String> = (0..101)
        .map(|_| crier_core::ids::AccountId::generate().to_string())
        .collect();
    let words: Vec<String> = (0..51).map(|i| format!("w{i}")).collect();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "x".repeat(101)}), "name"),
        (json!({"name": "bad\u{7}name"}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": "ok", "account_ids": many}), "account_ids"),
        (
            json!({"name": "ok", "account_ids": ["acct_nope"]}),
            "account_ids",
        ),
        (json!({"name": "ok", "account_ids": [a, a]}), "account_ids"),
        (
            json!({"name": "ok", "account_ids": [unknown]}),
            "account_ids",
        ),
        (
            json!({"name": "ok", "account_ids": [theirs]}),
            "account_ids",
        ),
        (
            json!({"name": "ok", "account_ids": [test_acct]}),
            "account_ids",
        ),
        (
            json!({"name": "ok", "persona": {"description": "d".repeat(2001)}}),
            "persona.description",
        ),
        (
            json!({"name": "ok", "persona": {"description": "nul\u{0}"}}),
            "persona.description",
        ),
        (
            json!({"name": "ok", "persona": {"tone": "t".repeat(101)}}),
            "persona.tone",
        ),
        (
            json!({"name": "ok", "persona": {"tone": "two\nlines"}}),
            "persona.tone",
        ),
        (
            json!({"name": "ok", "persona": {"words_to_use": words}}),
            "persona.words_to_use",
        ),
        (
            json!({"name": "ok", "persona": {"words_to_avoid": ["w".repeat(51)]}}),
            "persona.words_to_avoid[0]",
        ),
        (
            json!({"name": "ok", "persona": {"words_to_use": ["fine", " "]}}),
            "persona.words_to_use[1]",
        ),
        (
            json!({"name": "ok", "persona": {"mood": "x"}}),
            "persona.mood",
        ),
        (json!({"name": "ok", "position": 3}), "position"),
    ];
    let before = app.brands_snapshot().await;
    for (body, param) in &cases {
        let r = app
            .post("/v1/brands")
            .key(&key)
            .json(body.clone())
            .send()
            .await;
        assert_param(&r, param);
        // The same fields on an update (less `name`'s type and `position`).
        if body["name"] == "ok" || body["name"].is_string() {
            let mut edit = body.clone();
            if edit["name"] == "ok" {
                edit.as_object_mut().unwrap().remove("name");
            }
            let r = app
                .patch(&format!("/v1/brands/{existing}"))
                .key(&key)
                .json(edit.clone())
                .send()
                .await;
            assert_param(&r, param);
        }
    }
    // The same name in the same mode: 409, nothing stored.
    let r = app
        .post("/v1/brands")
        .key(&key)
        .json(json!({"name": "Taken"}))
        .send()
        .await;
    r.assert_error(409, "conflict");
    let second = brand(&app, &key, "Second", &[]).await;
    let before_rename = app.brands_snapshot().await;
    app.patch(&format!("/v1/brands/{second}"))
        .key(&key)
        .json(json!({"name": " Taken ", "account_ids": [a]}))
        .send()
        .await
        .assert_error(409, "conflict");
    assert_eq!(app.brands_snapshot().await, before_rename);
    app.delete(&format!("/v1/brands/{second}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(app.brands_snapshot().await, before);
    // Malformed, unknown and another workspace's brand ids are 404 on every route.
    let their_brand = brand(&app, &their_key, "Theirs", &[&theirs]).await;
    let before = app.brands_snapshot().await;
    for id in ["nope", "brd_0000000000000000000000", their_brand.as_str()] {
        let path = format!("/v1/brands/{id}");
        app.get(&path)
            .key(&key)
            .send()
            .await
            .assert_error(404, "not_found");
        app.patch(&path)
            .key(&key)
            .json(json!({"name": "mine"}))
            .send()
            .await
            .assert_error(404, "not_found");
        app.delete(&path)
            .key(&key)
            .send()
            .await
            .assert_error(404, "not_found");
    }
    assert_eq!(app.brands_snapshot().await, before);
    assert_eq!(list_ids(&app, &key, "/v1/brands").await, [existing.clone()]);
    assert_eq!(
        list_ids(&app, &their_key, "/v1/brands").await,
        [their_brand]
    );
}

async fn reorder_names_every_brand_once() {
    let (app, key, _) = world().await;
    let one = brand(&app, &key, "one", &[]).await;
    let two = brand(&app, &key, "two", &[]).await;
    let three = brand(&app, &key, "three", &[]).await;
    let test_key = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await
        .0;
    let test_brand = brand(&app, &test_key, "one", &[]).await;
    let unknown = crier_core::ids::BrandId::generate().to_string();
    let too_many: Vec<String> = (0..501)
        .map(|_| crier_core::ids::BrandId::generate().to_string())
        .collect();
    let before = app.brands_snapshot().await;
    for ids in [
        json!([three, one]),
        json!([three, one, two, unknown]),
        json!([three, one, one, two]),
        json!([three, one, one]),
        json!([three, one, test_brand]),
        json!([three, one, two, test_brand]),
        json!([three, "nope", two]),
        json!([]),
        json!(too_many),
    ] {
        let r = app
            .post("/v1/brands/reorder")
            .key(&key)
            .json(json!({ "ids": ids }))
            .send()
            .await;
        assert_param(&r, "ids");
    }
    app.post("/v1/brands/reorder")
        .key(&key)
        .json(json!({}))
        .send()
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(app.brands_snapshot().await, before);

    let r = app
        .post("/v1/brands/reorder")
        .key(&key)
        .json(json!({"ids": [three, one, two]}))
        .send()
        .await;
    assert_eq!(ids(&r), [three.clone(), one.clone(), two.clone()]);
    let positions: Vec<i64> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, [0, 1, 2]);
    assert_eq!(
        list_ids(&app, &key, "/v1/brands").await,
        [three.clone(), one.clone(), two.clone()]
    );
    // The other mode's order is its own.
    assert_eq!(
        list_ids(&app, &test_key, "/v1/brands").await,
        [test_brand.clone()]
    );
    let r = app
        .post("/v1/brands/reorder")
        .key(&test_key)
        .json(json!({"ids": [test_brand]}))
        .send()
        .await;
    assert_eq!(ids(&r), [test_brand]);
    // A new brand goes last, and a delete closes the gap.
    let four = brand(&app, &key, "four", &[]).await;
    app.delete(&format!("/v1/brands/{one}"))
        .key(&key)
        .send()
        .await;
    let r = app.get("/v1/brands").key(&key).send().await;
    assert_eq!(ids(&r), [three, two, four]);
    let positions: Vec<i64> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, [0, 1, 2]);
}

async fn test_mode_and_live_brands_are_apart() {
    let (app, key, [a, ..]) = world().await;
    let test_key = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await
        .0;
    let test_acct = app.sandbox_account(&test_key, "sandboxed").await;
    let live = brand(&app, &key, "Acme", &[&a]).await;
    // The same name in the other mode is another brand; live accounts are unknown there.
    let r = app
        .post("/v1/brands")
        .key(&test_key)
        .json(json!({"name": "Acme", "account_ids": [a]}))
        .send()
        .await;
    assert_param(&r, "account_ids");
    let test = brand(&app, &test_key, "Acme", &[&test_acct]).await;
    assert_eq!(list_ids(&app, &key, "/v1/brands").await, [live.clone()]);
    assert_eq!(
        list_ids(&app, &test_key, "/v1/brands").await,
        [test.clone()]
    );
    let before = app.brands_snapshot().await;
    for (k, id) in [(&key, &test), (&test_key, &live)] {
        let path = format!("/v1/brands/{id}");
        app.get(&path)
            .key(k)
            .send()
            .await
            .assert_error(404, "not_found");
        app.patch(&path)
            .key(k)
            .json(json!({"name": "x"}))
            .send()
            .await
            .assert_error(404, "not_found");
        app.delete(&path)
            .key(k)
            .send()
            .await
            .assert_error(404, "not_found");
        // Nor may a post of the other mode name it.
        let r = app
            .post("/v1/posts")
            .key(k)
            .json(json!({"body": "hi", "brand_id": id}))
            .send()
            .await;
        assert_param(&r, "brand_id");
    }
    assert_eq!(app.brands_snapshot().await, before);
    let r = app
        .post("/v1/posts")
        .key(&test_key)
        .json(json!({"body": "hi", "brand_id": test}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["livemode"], false);
    assert_eq!(strings(&r.body["account_ids"]), [test_acct]);
}

async fn the_plan_bounds_brands_in_each_mode() {
    let app = TestApp::with_plan("free").await;
    let key = app.admin_key().await;
    let test_key = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await
        .0;
    let first = brand(&app, &key, "one", &[]).await;
    let before = app.brands_snapshot().await;
    let r = app
        .post("/v1/brands")
        .key(&key)
        .json(json!({"name": "two"}))
        .send()
        .await;
    r.assert_error(402, "quota_exceeded");
    assert!(r.text.contains("1 brands"), "{}", r.text);
    assert_eq!(app.brands_snapshot().await, before);
    // Test mode has a room of its own, bounded the same way.
    brand(&app, &test_key, "one", &[]).await;
    let before = app.brands_snapshot().await;
    app.post("/v1/brands")
        .key(&test_key)
        .json(json!({"name": "two"}))
        .send()
        .await
        .assert_error(402, "quota_exceeded");
    assert_eq!(app.brands_snapshot().await, before);
    // A delete frees the place.
    app.delete(&format!("/v1/brands/{first}"))
        .key(&key)
        .send()
        .await;
    brand(&app, &key, "two", &[]).await;
    let r = app.get("/v1/workspace").key(&key).send().await;
    assert_eq!(r.body["plan"]["brands"], 1, "{}", r.text);
}

async fn posts_may_name_a_brand_instead_of_accounts() {
    let (app, key, [a, b, c]) = world().await;
    let acme = brand(&app, &key, "Acme", &[&b, &a]).await;
    let empty = brand(&app, &key, "Empty", &[]).await;
    // Create: the brand's accounts, in its order, and the brand kept on the post.
    let r = app
        .post("/v1/posts")
        .key(&key)
        .json(json!({"body": "from the brand", "brand_id": acme, "account_ids": []}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["brand_id"], acme.as_str());
    assert_eq!(strings(&r.body["account_ids"]), [b.clone(), a.clone()]);
    let targets: Vec<&str> = r.body["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["account_id"].as_str().unwrap())
        .collect();
    assert_eq!(targets, [b.as_str(), a.as_str()]);
    let post = r.body["id"].as_str().unwrap().to_owned();
    let plain = app
        .post("/v1/posts")
        .key(&key)
        .json(json!({"body": "plain", "account_ids": [c]}))
        .send()
        .await;
    assert_eq!(plain.body["brand_id"], Value::Null);

    // Edit: a brand replaces the accounts; accounts replace the brand.
    let r = app
        .patch(&format!("/v1/posts/{post}"))
        .key(&key)
        .json(json!({"account_ids": [c]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["brand_id"], Value::Null);
    assert_eq!(strings(&r.body["account_ids"]), [c.clone()]);
    let r = app
        .patch(&format!("/v1/posts/{post}"))
        .key(&key)
        .json(json!({"brand_id": acme}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["brand_id"], acme.as_str());
    assert_eq!(strings(&r.body["account_ids"]), [b.clone(), a.clone()]);
    // Editing the text keeps both.
    let r = app
        .patch(&format!("/v1/posts/{post}"))
        .key(&key)
        .json(json!({"body": "edited"}))
        .send()
        .await;
    assert_eq!(r.body["brand_id"], acme.as_str());

    // A batch may mix both ways.
    let r = app
        .post("/v1/batches")
        .key(&key)
        .json(json!({"posts": [
            {"body": "one", "brand_id": acme},
            {"body": "two", "account_ids": [c]},
        ]}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["data"][0]["brand_id"], acme.as_str());
    assert_eq!(r.body["data"][1]["brand_id"], Value::Null);

    // A disconnected account of the brand is left out; it publishes to the rest.
    app.delete(&format!("/v1/accounts/{a}"))
        .key(&key)
        .send()
        .await;
    let r = app
        .post("/v1/posts")
        .key(&key)
        .json(json!({"body": "without alpha", "brand_id": acme}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(strings(&r.body["account_ids"]), [b.clone()]);
    let published = app
        .post(&format!(
            "/v1/posts/{}/publish",
            r.body["id"].as_str().unwrap()
        ))
        .key(&key)
        .send()
        .await;
    assert_eq!(published.status, 200, "{}", published.text);
    drain(&app).await;
    let r = app
        .get(&format!("/v1/posts/{}", r.body["id"].as_str().unwrap()))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.body["status"], "published", "{}", r.text);
    assert_eq!(r.body["brand_id"], acme.as_str());

    // The bad cases: nothing stored, `param` names the brand.
    let other = app.other_workspace("globex").await;
    let (their_key, _) = app
        .key_in(
            &other,
            KeySpec {
                scopes: Scope::ALL.to_vec(),
                ..KeySpec::default()
            },
        )
        .await;
    let theirs = app.sandbox_account(&their_key, "theirs").await;
    let their_brand = brand(&app, &their_key, "Theirs", &[&theirs]).await;
    let unknown = crier_core::ids::BrandId::generate().to_string();
    let only_alpha = brand(&app, &key, "Alpha only", &[&a]).await;
    let before = app.posts_snapshot().await;
    let bad = [
        (
            json!({"body": "x", "brand_id": acme, "account_ids": [c]}),
            "brand_id",
        ),
        (json!({"body": "x", "brand_id": empty}), "brand_id"),
        (json!({"body": "x", "brand_id": only_alpha}), "brand_id"),
        (json!({"body": "x", "brand_id": unknown}), "brand_id"),
        (json!({"body": "x", "brand_id": their_brand}), "brand_id"),
        (json!({"body": "x", "brand_id": "brd_nope"}), "brand_id"),
        (json!({"body": "x"}), "account_ids"),
    ];
    for (body, param) in &bad {
        let r = app
            .post("/v1/posts")
            .key(&key)
            .json(body.clone())
            .send()
            .await;
        assert_param(&r, param);
        let r = app
            .post("/v1/batches")
            .key(&key)
            .json(json!({"posts": [{"body": "fine", "account_ids": [c]}, body]}))
            .send()
            .await;
        assert_param(&r, &format!("posts[1].{param}"));
        let mut edit = body.clone();
        edit.as_object_mut().unwrap().remove("body");
        if edit.as_object().unwrap().is_empty() {
            continue;
        }
        let r = app
            .patch(&format!("/v1/posts/{post}"))
            .key(&key)
            .json(edit)
            .send()
            .await;
        assert_param(&r, param);
    }
    // Unknown and foreign brands read exactly alike.
    let m = |id: &str| format!("No such brand: '{id}'.");
    for id in [&unknown, &their_brand] {
        let r = app
            .post("/v1/posts")
            .key(&key)
            .json(json!({"body": "x", "brand_id": id}))
            .send()
            .await;
        assert_eq!(r.body["error"]["message"], m(id), "{}", r.text);
    }
    assert_eq!(app.posts_snapshot().await, before);
    assert_eq!(
        sorted(list_ids(&app, &their_key, "/v1/posts").await),
        set(&[])
    );
}

/// The caller the application layer sees for a key (as the API builds it).
fn caller_of(app: &TestApp, row: crier_store::KeyRow) -> crier_app::Caller {
    let plan = app.state.plan(&app.workspace.plan).unwrap();
    let record = crier_api::auth::cache::KeyRecord::new(row, plan);
    crier_api::auth::Principal::new(std::sync::Arc::new(record)).caller()
}

/// The persona rules the `/v1/persona` routes stand on: the owner's voice of the workspace
/// and of each brand, checked, within the caller's reach; and the texts a voice is learned
/// from.
async fn personas_keep_the_owners_voice_within_reach() {
    use crier_app::personas::Voice;
    use crier_core::ErrorCode;
    let (app, key, [a, b, _]) = world().await;
    let x = brand(&app, &key, "x", &[&a]).await;
    let y = brand(&app, &key, "y", &[&b]).await;
    let (x, y) = (
        crier_core::ids::BrandId::parse(&x).unwrap(),
        crier_core::ids::BrandId::parse(&y).unwrap(),
    );
    let (_, admin_row) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            ..KeySpec::default()
        })
        .await;
    let (_, limited_row) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            allowed_brand_ids: Some(vec![x.to_string()]),
            ..KeySpec::default()
        })
        .await;
    let admin = caller_of(&app, admin_row);
    let limited = caller_of(&app, limited_row);
    let personas = app.state.app().personas();

    assert_eq!(
        personas.voice(&admin, None).await.unwrap(),
        Voice::default()
    );
    let set = personas
        .set_voice(
            &admin,
            None,
            Voice {
                // Trimmed of Unicode whitespace, form feed, vertical tab and NEL included, as
                // the OpenAPI pattern allows them at the ends.
                description: Some("\u{c}  We roast.\n\tDaily.  \u{85}\u{b}".into()),
                tone: Some(" ".into()),
                words_to_use: vec![" bean ".into()],
                words_to_avoid: vec![],
            },
        )
        .await
        .unwrap();
    let ours = Voice {
        description: Some("We roast.\n\tDaily.".into()),
        tone: None,
        words_to_use: vec!["bean".into()],
        words_to_avoid: vec![],
    };
    assert_eq!(set, ours);
    assert_eq!(personas.voice(&admin, None).await.unwrap(), ours);
    // Every caller reads the workspace's voice; only an unlimited one sets it.
    assert_eq!(personas.voice(&limited, None).await.unwrap(), ours);
    let before = app.brands_snapshot().await;
    let e = personas
        .set_voice(&limited, None, Voice::default())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ForbiddenScope, "{e:?}");
    // Bad voices, each naming its field, change nothing.
    let long = |n: usize| "x".repeat(n);
    for (v, param) in [
        (
            Voice {
                description: Some(long(2001)),
                ..Voice::default()
            },
            "description",
        ),
        // Inside the text, the controls that are whitespace are refused as the others are
        // (the OpenAPI pattern refuses them there too); line breaks and tabs are kept.
        (
            Voice {
                description: Some("We\u{b}roast.".into()),
                ..Voice::default()
            },
            "description",
        ),
        (
            Voice {
                description: Some("We roast.\u{c}Daily.".into()),
                ..Voice::default()
            },
            "description",
        ),
        (
            Voice {
                description: Some("We roast.\u{85}Daily.".into()),
                ..Voice::default()
            },
            "description",
        ),
        (
            Voice {
                tone: Some(long(101)),
                ..Voice::default()
            },
            "tone",
        ),
        (
            Voice {
                tone: Some("a\nb".into()),
                ..Voice::default()
            },
            "tone",
        ),
        (
            Voice {
                words_to_use: (0..51).map(|i| i.to_string()).collect(),
                ..Voice::default()
            },
            "words_to_use",
        ),
        (
            Voice {
                words_to_avoid: vec![long(51)],
                ..Voice::default()
            },
            "words_to_avoid[0]",
        ),
    ] {
        for brand in [None, Some(&x)] {
            let e = personas
                .set_voice(&admin, brand, v.clone())
                .await
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{e:?}");
            assert_eq!(e.param.as_deref(), Some(param), "{e:?}");
        }
    }
    assert_eq!(app.brands_snapshot().await, before);

    // A word given twice (ignoring case and spaces) is kept once, the first spelling.
    let twice = Voice {
        words_to_avoid: vec!["A".into(), " a ".into(), "b".into()],
        ..Voice::default()
    };
    let set = personas.set_voice(&admin, None, twice).await.unwrap();
    assert_eq!(set.words_to_avoid, ["A", "b"]);
    personas
        .set_voice(&admin, None, Voice::default())
        .await
        .unwrap();

    // A brand's voice is the brand's `persona`, reached as the brand is.
    let warm = Voice {
        tone: Some("warm".into()),
        ..Voice::default()
    };
    assert_eq!(
        personas
            .set_voice(&limited, Some(&x), warm.clone())
            .await
            .unwrap(),
        warm
    );
    assert_eq!(personas.voice(&admin, Some(&x)).await.unwrap(), warm);
    let r = app.get(&format!("/v1/brands/{x}")).key(&key).send().await;
    assert_eq!(r.body["persona"]["tone"], "warm");
    let before = app.brands_snapshot().await;
    let unknown = crier_core::ids::BrandId::generate();
    for (c, brand) in [(&limited, &y), (&admin, &unknown)] {
        let e = personas.voice(c, Some(brand)).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound, "{e:?}");
        let e = personas
            .set_voice(c, Some(brand), warm.clone())
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound, "{e:?}");
        let e = personas
            .published_texts(c, Some(brand), 10)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound, "{e:?}");
    }
    assert_eq!(app.brands_snapshot().await, before);

    // What a voice is learned from: what went out on the brand's (or the caller's) accounts.
    for (acct, text) in [(&a, "on a"), (&b, "on b")] {
        let r = app
            .post("/v1/posts")
            .key(&key)
            .json(json!({"body": text, "account_ids": [acct]}))
            .send()
            .await;
        let id = r.body["id"].as_str().unwrap().to_owned();
        let r = app
            .post(&format!("/v1/posts/{id}/publish"))
            .key(&key)
            .send()
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    drain(&app).await;
    assert_eq!(
        personas.published_texts(&admin, None, 10).await.unwrap(),
        ["on b", "on a"]
    );
    assert_eq!(
        personas.published_texts(&admin, None, 1).await.unwrap(),
        ["on b"]
    );
    assert_eq!(
        personas
            .published_texts(&admin, Some(&y), 10)
            .await
            .unwrap(),
        ["on b"]
    );
    assert_eq!(
        personas.published_texts(&limited, None, 10).await.unwrap(),
        ["on a"]
    );
    assert_eq!(
        personas
            .published_texts(&limited, Some(&x), 10)
            .await
            .unwrap(),
        ["on a"]
    );
}

both!(
    tests: brands_can_be_created_read_listed_changed_and_deleted,
    brand_input_is_bounded_and_refusals_change_nothing,
    reorder_names_every_brand_once,
    test_mode_and_live_brands_are_apart,
    the_plan_bounds_brands_in_each_mode,
    posts_may_name_a_brand_instead_of_accounts,
    personas_keep_the_owners_voice_within_reach,
);
