//! Keys limited to brands or accounts, over HTTP: such a key reaches its brands' accounts (as
//! they are at each request) and its own accounts, and nothing else: everything beyond is
//! `404`, ids beyond are refused exactly as unknown ids, it cannot connect accounts or use
//! webhooks (`403`), and it cannot make or change a key that reaches further (no escalation
//! through `keys:write`). Every refused call is checked to have changed nothing.
// Expected lists of one id read best as `[id.clone()]`.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;

use common::brands::{brand, ids, list_ids, set, sorted, strings};
use common::keys::{assert_message_mentions, created, stored};
use common::posts::{act, assert_param, draft, drain};
use common::{KeySpec, NowMs, TestApp, both};
use crier_api::ApiConfig;
use crier_core::ids::{AccountId, BrandId, KeyId};
use crier_core::{KeyMode, Scope};
use crier_store::{Feed, FeedMode, FeedSettings};
use serde_json::{Value, json};

/// A workspace with accounts `a`, `b`, `c`, brands `x` = {a}, `y` = {b}, `z` = {c} and
/// `w` = {a, b} (in that order), an admin key, and `key`: every scope, limited to brand `x` and
/// account `c`, made over HTTP by the admin.
struct Limited {
    app: TestApp,
    admin: String,
    a: String,
    b: String,
    c: String,
    x: String,
    y: String,
    z: String,
    w: String,
    key: String,
    key_id: String,
}

fn all_scopes() -> Vec<&'static str> {
    Scope::ALL.iter().map(|s| s.as_str()).collect()
}

async fn limited() -> Limited {
    let config = ApiConfig {
        allow_private_networks: true,
        ..ApiConfig::default()
    };
    let app = TestApp::with_config(config, "self-hosted").await;
    let admin = app.admin_key().await;
    let a = app.sandbox_account(&admin, "alpha").await;
    let b = app.sandbox_account(&admin, "beta").await;
    let c = app.sandbox_account(&admin, "gamma").await;
    let x = brand(&app, &admin, "x", &[&a]).await;
    let y = brand(&app, &admin, "y", &[&b]).await;
    let z = brand(&app, &admin, "z", &[&c]).await;
    let w = brand(&app, &admin, "w", &[&a, &b]).await;
    let r = app
        .post("/v1/keys")
        .key(&admin)
        .json(json!({
            "name": "brand x",
            "scopes": all_scopes(),
            "allowed_brand_ids": [x],
            "allowed_account_ids": [c],
        }))
        .send()
        .await;
    let (key_id, key) = created(&r);
    assert_eq!(strings(&r.body["allowed_brand_ids"]), [x.clone()]);
    assert_eq!(strings(&r.body["allowed_account_ids"]), [c.clone()]);
    Limited {
        app,
        admin,
        a,
        b,
        c,
        x,
        y,
        z,
        w,
        key,
        key_id,
    }
}

/// What a refused call must not change: posts and jobs, brands, accounts, keys, feeds.
async fn everything(app: &TestApp) -> Value {
    let posts = app.posts_snapshot().await;
    let brands = app.brands_snapshot().await;
    let keys = app.snapshot().await;
    let accounts = app
        .raw_texts("SELECT id || '|' || status FROM accounts ORDER BY id")
        .await;
    let feeds = app
        .raw_texts("SELECT id || '|' || account_ids || '|' || updated_at FROM feeds ORDER BY id")
        .await;
    let slots = app
        .raw_texts(
            "SELECT workspace_id || '|' || weekday || '|' || minute_of_day FROM queue_slots
             ORDER BY 1",
        )
        .await;
    json!({
        "slots": slots,
        "posts": format!("{posts:?}"),
        "brands": format!("{brands:?}"),
        "keys": format!("{keys:?}"),
        "accounts": accounts,
        "feeds": feeds,
    })
}

fn feed(app: &TestApp, accounts: &[&str]) -> Feed {
    Feed::new(
        &app.workspace.id,
        true,
        FeedSettings {
            url: "http://127.0.0.1:9/feed.xml".into(),
            account_ids: accounts
                .iter()
                .map(|a| AccountId::parse(a).unwrap())
                .collect(),
            template: "{title} {link}".into(),
            mode: FeedMode::Draft,
            poll_interval_seconds: 900,
            backfill: 0,
            enabled: false,
        },
        app.clock.now_ms_value(),
    )
}

async fn a_limited_key_reaches_only_its_brands_and_accounts() {
    let l = limited().await;
    let (app, admin, key) = (&l.app, &l.admin, &l.key);
    let (a, b, c) = (&l.a, &l.b, &l.c);

    // Accounts: its brand's and its own.
    assert_eq!(
        sorted(list_ids(app, key, "/v1/accounts").await),
        set(&[a, c])
    );
    // Posts: those whose every account it reaches.
    let pa = draft(app, admin, &[a], "to a").await;
    let pb = draft(app, admin, &[b], "to b").await;
    let pab = draft(app, admin, &[a, b], "to a and b").await;
    let pc = draft(app, admin, &[c], "to c").await;
    let pac = draft(app, admin, &[a, c], "to a and c").await;
    assert_eq!(
        sorted(list_ids(app, key, "/v1/posts").await),
        set(&[&pa, &pc, &pac])
    );
    assert!(
        list_ids(app, key, &format!("/v1/posts?account_id={b}"))
            .await
            .is_empty()
    );
    assert_eq!(
        list_ids(app, key, &format!("/v1/posts?account_id={a}")).await,
        [pac.clone(), pa.clone()]
    );
    // Brands: the one it is allowed, and those whose accounts it all reaches.
    assert_eq!(
        list_ids(app, key, "/v1/brands").await,
        [l.x.clone(), l.z.clone()]
    );
    // Feeds: those whose every account it reaches.
    let fa = feed(app, &[a]);
    let fb = feed(app, &[a, b]);
    app.store.insert_feed(&fa).await.unwrap();
    app.store.insert_feed(&fb).await.unwrap();
    assert_eq!(list_ids(app, key, "/v1/feeds").await, [fa.id.to_string()]);
    assert_eq!(list_ids(app, admin, "/v1/feeds").await.len(), 2);

    // Everything beyond is 404, and nothing changes.
    let before = everything(app).await;
    let mut beyond: Vec<(&str, String, Option<Value>)> = Vec::new();
    for p in [&pb, &pab] {
        beyond.extend([
            ("GET", format!("/v1/posts/{p}"), None),
            (
                "PATCH",
                format!("/v1/posts/{p}"),
                Some(json!({"body": "mine"})),
            ),
            ("DELETE", format!("/v1/posts/{p}"), None),
            (
                "POST",
                format!("/v1/posts/{p}/schedule"),
                Some(json!({"scheduled_at": "2026-11-23T10:00:00Z"})),
            ),
            ("POST", format!("/v1/posts/{p}/publish"), None),
            ("POST", format!("/v1/posts/{p}/retry"), None),
            ("POST", format!("/v1/posts/{p}/cancel"), None),
            ("POST", format!("/v1/posts/{p}/approve"), Some(json!({}))),
            ("GET", format!("/v1/posts/{p}/analytics"), None),
        ]);
    }
    beyond.extend([
        (
            "POST",
            "/v1/posts/validate".into(),
            Some(json!({"post_id": pb})),
        ),
        ("DELETE", format!("/v1/accounts/{b}"), None),
        ("GET", format!("/v1/accounts/{b}/timeline"), None),
        (
            "POST",
            format!("/v1/accounts/{b}/faults"),
            Some(json!({"fail_next": 1, "kind": "error"})),
        ),
        ("GET", format!("/v1/feeds/{}", fb.id), None),
        (
            "PATCH",
            format!("/v1/feeds/{}", fb.id),
            Some(json!({"enabled": true})),
        ),
        ("DELETE", format!("/v1/feeds/{}", fb.id), None),
    ]);
    for brand in [&l.y, &l.w] {
        beyond.extend([
            ("GET", format!("/v1/brands/{brand}"), None),
            (
                "PATCH",
                format!("/v1/brands/{brand}"),
                Some(json!({"name": "mine"})),
            ),
            ("DELETE", format!("/v1/brands/{brand}"), None),
        ]);
    }
    for (method, path, body) in &beyond {
        let call = app.call(method.parse().unwrap(), path).key(key);
        let r = match body {
            Some(b) => call.json(b.clone()).send().await,
            None => call.send().await,
        };
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
        r.assert_error(404, "not_found");
    }
    assert_eq!(everything(app).await, before);

    // The queue and the account analytics show only what it reaches.
    for p in [&pa, &pb] {
        let r = act(
            app,
            admin,
            p,
            "schedule",
            Some(json!({"scheduled_at": "2026-11-23T10:00:00Z"})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(list_ids(app, key, "/v1/queue").await, [pa.clone()]);
    assert_eq!(list_ids(app, admin, "/v1/queue").await.len(), 2);
    app.clock.set("2026-11-23T10:00:01Z".parse().unwrap());
    drain(app).await;
    app.clock.advance(std::time::Duration::from_secs(60));
    let analytics = |k: &str| {
        let k = k.to_owned();
        async move {
            let r = app
                .get("/v1/accounts/analytics?from=2026-11-01T00:00:00Z")
                .key(&k)
                .send()
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            sorted(
                r.body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["account_id"].as_str().unwrap().to_owned())
                    .collect(),
            )
        }
    };
    assert_eq!(analytics(admin).await, set(&[a, b]));
    assert_eq!(analytics(key).await, set(&[a]));
    let r = app
        .get(&format!("/v1/posts/{pa}/analytics"))
        .key(key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Its reach is read at each request: an account added to its brand is reached at once,
    // and gone again when it is removed.
    let r = app
        .patch(&format!("/v1/brands/{}", l.x))
        .key(admin)
        .json(json!({"account_ids": [a, b]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        sorted(list_ids(app, key, "/v1/accounts").await),
        set(&[a, b, c])
    );
    let r = app.get(&format!("/v1/posts/{pb}")).key(key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Brand w ({a, b}) and y ({b}) are now within its reach too.
    assert_eq!(
        list_ids(app, key, "/v1/brands").await,
        [l.x.clone(), l.y.clone(), l.z.clone(), l.w.clone()]
    );
    app.patch(&format!("/v1/brands/{}", l.x))
        .key(admin)
        .json(json!({"account_ids": [a]}))
        .send()
        .await;
    app.get(&format!("/v1/posts/{pb}"))
        .key(key)
        .send()
        .await
        .assert_error(404, "not_found");
    // A brand it is allowed stays visible however its accounts change, even with none.
    app.patch(&format!("/v1/brands/{}", l.x))
        .key(admin)
        .json(json!({"account_ids": []}))
        .send()
        .await;
    assert_eq!(
        list_ids(app, key, "/v1/brands").await,
        [l.x.clone(), l.z.clone()]
    );
    assert_eq!(list_ids(app, key, "/v1/accounts").await, [c.clone()]);
}

async fn a_limited_key_cannot_write_beyond_its_reach() {
    let l = limited().await;
    let (app, admin, key) = (&l.app, &l.admin, &l.key);
    let (a, b, c) = (&l.a, &l.b, &l.c);
    let pa = draft(app, admin, &[a], "to a").await;
    let fa = feed(app, &[a]);
    app.store.insert_feed(&fa).await.unwrap();
    let unknown_acct = AccountId::generate().to_string();
    let unknown_brand = BrandId::generate().to_string();
    let no_account = |id: &str| format!("No such account: '{id}'.");
    let no_brand = |id: &str| format!("No such brand: '{id}'.");
    let before = everything(app).await;

    // (method, path, body, param, the message an unknown id gets there)
    let cases: Vec<(&str, String, Value, &str, String)> = vec![
        (
            "POST",
            "/v1/posts".into(),
            json!({"body": "x", "account_ids": [b]}),
            "account_ids",
            no_account(b),
        ),
        (
            "POST",
            "/v1/posts".into(),
            json!({"body": "x", "account_ids": [a, b]}),
            "account_ids",
            no_account(b),
        ),
        (
            "POST",
            "/v1/posts".into(),
            json!({"body": "x", "account_ids": [unknown_acct]}),
            "account_ids",
            no_account(&unknown_acct),
        ),
        (
            "POST",
            "/v1/posts".into(),
            json!({"body": "x", "brand_id": l.y}),
            "brand_id",
            no_brand(&l.y),
        ),
        (
            "POST",
            "/v1/posts".into(),
            json!({"body": "x", "brand_id": l.w}),
            "brand_id",
            no_brand(&l.w),
        ),
        (
            "POST",
            "/v1/posts".into(),
            json!({"body": "x", "brand_id": unknown_brand}),
            "brand_id",
            no_brand(&unknown_brand),
        ),
        (
            "POST",
            "/v1/batches".into(),
            json!({"posts": [{"body": "x", "account_ids": [a]}, {"body": "y", "account_ids": [b]}]}),
            "posts[1].account_ids",
            no_account(b),
        ),
        (
            "POST",
            "/v1/batches".into(),
            json!({"posts": [{"body": "x", "brand_id": l.y}]}),
            "posts[0].brand_id",
            no_brand(&l.y),
        ),
        (
            "POST",
            "/v1/posts/validate".into(),
            json!({"body": "x", "account_ids": [b]}),
            "account_ids",
            no_account(b),
        ),
        (
            "PATCH",
            format!("/v1/posts/{pa}"),
            json!({"account_ids": [b]}),
            "account_ids",
            no_account(b),
        ),
        (
            "PATCH",
            format!("/v1/posts/{pa}"),
            json!({"brand_id": l.y}),
            "brand_id",
            no_brand(&l.y),
        ),
        (
            "POST",
            "/v1/feeds".into(),
            json!({"url": "http://127.0.0.1:9/feed.xml", "account_ids": [b]}),
            "account_ids",
            no_account(b),
        ),
        (
            "PATCH",
            format!("/v1/feeds/{}", fa.id),
            json!({"account_ids": [b]}),
            "account_ids",
            no_account(b),
        ),
        (
            "POST",
            "/v1/brands".into(),
            json!({"name": "mine", "account_ids": [b]}),
            "account_ids",
            no_account(b),
        ),
        (
            "POST",
            "/v1/brands".into(),
            json!({"name": "mine", "account_ids": [c, b]}),
            "account_ids",
            no_account(b),
        ),
        (
            "PATCH",
            format!("/v1/brands/{}", l.x),
            json!({"account_ids": [a, b]}),
            "account_ids",
            no_account(b),
        ),
        (
            "POST",
            "/v1/brands/reorder".into(),
            json!({"ids": [l.x, l.z, l.y]}),
            "ids",
            no_brand(&l.y),
        ),
    ];
    for (method, path, body, param, message) in &cases {
        let r = app
            .call(method.parse().unwrap(), path)
            .key(key)
            .json(body.clone())
            .send()
            .await;
        assert_param(&r, param);
        assert_eq!(
            r.body["error"]["message"],
            message.as_str(),
            "{method} {path}: {}",
            r.text
        );
    }
    // A brand it makes must have accounts (else it could not see it), all its own.
    let r = app
        .post("/v1/brands")
        .key(key)
        .json(json!({"name": "mine"}))
        .send()
        .await;
    assert_param(&r, "account_ids");
    // Connecting an account, webhooks, the workspace's settings and the shared queue slots
    // reach beyond it by nature.
    for (method, path, body) in [
        ("GET", "/v1/connect/sandbox", None),
        (
            "POST",
            "/v1/connect/sandbox",
            Some(json!({"handle": "escape"})),
        ),
        ("GET", "/v1/webhooks", None),
        (
            "PATCH",
            "/v1/workspace",
            Some(json!({"require_approval": true})),
        ),
        (
            "PUT",
            "/v1/queue/slots",
            Some(json!({"slots": [{"day": "monday", "time": "09:00"}]})),
        ),
        (
            "POST",
            "/v1/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]})),
        ),
    ] {
        let call = app.call(method.parse().unwrap(), path).key(key);
        let r = match body {
            Some(b) => call.json(b).send().await,
            None => call.send().await,
        };
        r.assert_error(403, "forbidden_scope");
        assert_message_mentions(&r, "limited to some brands or accounts");
    }
    assert_eq!(everything(app).await, before);

    // Within its reach it works: a post to its brand, a brand from its accounts (which it then
    // sees), its brands reordered among the places they hold.
    let r = app
        .post("/v1/posts")
        .key(key)
        .json(json!({"body": "ours", "brand_id": l.x}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(strings(&r.body["account_ids"]), [a.clone()]);
    let r = app
        .post("/v1/posts")
        .key(key)
        .json(json!({"body": "ours", "account_ids": [c, a]}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mine = brand(app, key, "mine", &[c]).await;
    assert_eq!(
        list_ids(app, key, "/v1/brands").await,
        [l.x.clone(), l.z.clone(), mine.clone()]
    );
    let r = app
        .post("/v1/brands/reorder")
        .key(key)
        .json(json!({"ids": [mine, l.x, l.z]}))
        .send()
        .await;
    assert_eq!(ids(&r), [mine.clone(), l.x.clone(), l.z.clone()]);
    // They took the places x (0), z (2) and mine (4) held; y and w kept theirs.
    assert_eq!(
        list_ids(app, admin, "/v1/brands").await,
        [
            mine.clone(),
            l.y.clone(),
            l.x.clone(),
            l.w.clone(),
            l.z.clone()
        ]
    );
}

async fn keys_cannot_reach_further_than_the_key_that_makes_them() {
    let l = limited().await;
    let (app, admin, key) = (&l.app, &l.admin, &l.key);
    let (a, b, c) = (&l.a, &l.b, &l.c);
    // Omitted limits are the creator's.
    let r = app
        .post("/v1/keys")
        .key(key)
        .json(json!({"scopes": ["posts:read"]}))
        .send()
        .await;
    let (child, _) = created(&r);
    assert_eq!(strings(&r.body["allowed_brand_ids"]), [l.x.clone()]);
    assert_eq!(strings(&r.body["allowed_account_ids"]), [c.clone()]);
    // Narrower is fine: an account it reaches through its brand.
    let r = app
        .post("/v1/keys")
        .key(key)
        .json(json!({"scopes": ["accounts:read"], "allowed_brand_ids": [], "allowed_account_ids": [a]}))
        .send()
        .await;
    let (narrow, narrow_secret) = created(&r);
    assert_eq!(
        list_ids(app, &narrow_secret, "/v1/accounts").await,
        [a.clone()]
    );

    // Keys of other reaches, made by the admin: limited to y, to x and y, and unlimited.
    let make = |body: Value| async move {
        let r = app.post("/v1/keys").key(admin).json(body).send().await;
        created(&r).0
    };
    let to_y = make(json!({"scopes": ["posts:read"], "allowed_brand_ids": [l.y]})).await;
    let to_xy = make(json!({"scopes": ["posts:read"], "allowed_brand_ids": [l.x, l.y]})).await;
    let to_b = make(json!({"scopes": ["posts:read"], "allowed_account_ids": [b]})).await;
    let unlimited = make(json!({"scopes": ["posts:read"]})).await;
    let listed = sorted(list_ids(app, key, "/v1/keys").await);
    assert_eq!(listed, set(&[&l.key_id, &child, &narrow]));
    assert_eq!(list_ids(app, admin, "/v1/keys").await.len(), 8);

    let before = everything(app).await;
    // Making a key beyond its reach: ids beyond read as unknown ones; no limits at all is 403.
    let unknown_brand = BrandId::generate().to_string();
    let refused: Vec<(Value, &str, String)> = vec![
        (
            json!({"allowed_brand_ids": [l.y]}),
            "allowed_brand_ids",
            format!("No such brand: '{}'.", l.y),
        ),
        (
            json!({"allowed_brand_ids": [l.x, l.y]}),
            "allowed_brand_ids",
            format!("No such brand: '{}'.", l.y),
        ),
        // z is within its reach (its accounts are), but a brand that later gains accounts would
        // carry the new key beyond it: only brands it is allowed.
        (
            json!({"allowed_brand_ids": [l.z]}),
            "allowed_brand_ids",
            format!("No such brand: '{}'.", l.z),
        ),
        (
            json!({"allowed_brand_ids": [unknown_brand]}),
            "allowed_brand_ids",
            format!("No such brand: '{unknown_brand}'."),
        ),
        (
            json!({"allowed_account_ids": [b]}),
            "allowed_account_ids",
            format!("No such account: '{b}'."),
        ),
    ];
    for (limits, param, message) in &refused {
        let mut body = limits.clone();
        body["scopes"] = json!(["posts:read"]);
        let r = app.post("/v1/keys").key(key).json(body).send().await;
        assert_param(&r, param);
        assert_eq!(r.body["error"]["message"], message.as_str(), "{}", r.text);
        // The same, to a key it made, and to itself.
        for id in [&child, &l.key_id] {
            let r = app
                .patch(&format!("/v1/keys/{id}"))
                .key(key)
                .json(limits.clone())
                .send()
                .await;
            assert_param(&r, param);
        }
    }
    let unlimit = json!({"allowed_brand_ids": [], "allowed_account_ids": []});
    let mut body = unlimit.clone();
    body["scopes"] = json!(["posts:read"]);
    let r = app.post("/v1/keys").key(key).json(body).send().await;
    r.assert_error(403, "forbidden_scope");
    assert_message_mentions(&r, "without such limits");
    for id in [&child, &l.key_id] {
        app.patch(&format!("/v1/keys/{id}"))
            .key(key)
            .json(unlimit.clone())
            .send()
            .await
            .assert_error(403, "forbidden_scope");
    }
    // Keys that reach further do not exist for it.
    for id in [&to_y, &to_xy, &to_b, &unlimited] {
        let path = format!("/v1/keys/{id}");
        app.get(&path)
            .key(key)
            .send()
            .await
            .assert_error(404, "not_found");
        app.patch(&path)
            .key(key)
            .json(json!({"name": "mine"}))
            .send()
            .await
            .assert_error(404, "not_found");
        app.post(&format!("{path}/rotate"))
            .key(key)
            .json(json!({}))
            .send()
            .await
            .assert_error(404, "not_found");
        app.delete(&path)
            .key(key)
            .send()
            .await
            .assert_error(404, "not_found");
    }
    assert_eq!(everything(app).await, before);

    // Within its reach it manages keys: a rotation keeps the limits.
    let r = app
        .post(&format!("/v1/keys/{narrow}/rotate"))
        .key(key)
        .json(json!({}))
        .send()
        .await;
    let (rotated, rotated_secret) = created(&r);
    assert_eq!(r.body["allowed_account_ids"], json!([a]));
    assert_eq!(r.body["allowed_brand_ids"], json!([]));
    let rotated_row = stored(app, &KeyId::parse(&rotated).unwrap()).await;
    assert_eq!(rotated_row.allowed_account_ids, [a.clone()]);
    assert_eq!(
        list_ids(app, &rotated_secret, "/v1/accounts").await,
        [a.clone()]
    );
    let r = app
        .delete(&format!("/v1/keys/{child}"))
        .key(key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Narrowing itself takes effect on its next request.
    let r = app
        .patch(&format!("/v1/keys/{}", l.key_id))
        .key(key)
        .json(json!({"allowed_account_ids": []}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(list_ids(app, key, "/v1/accounts").await, [a.clone()]);
    app.get(&format!("/v1/accounts/{c}/timeline"))
        .key(key)
        .send()
        .await
        .assert_error(404, "not_found");
    // And now the key it made to `c`'s... it no longer reaches `c`, so keys limited to `c` are
    // beyond it too.
    let r = app
        .post("/v1/keys")
        .key(admin)
        .json(json!({"scopes": ["posts:read"], "allowed_account_ids": [c]}))
        .send()
        .await;
    let (to_c, _) = created(&r);
    app.get(&format!("/v1/keys/{to_c}"))
        .key(key)
        .send()
        .await
        .assert_error(404, "not_found");
}

async fn limits_are_checked_and_take_effect_at_once() {
    let l = limited().await;
    let (app, admin, key) = (&l.app, &l.admin, &l.key);
    let (a, b, c) = (&l.a, &l.b, &l.c);
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
    let their_brand = brand(app, &their_key, "theirs", &[&theirs]).await;
    let test_key = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await
        .0;
    let test_acct = app.sandbox_account(&test_key, "sandboxed").await;
    let test_brand = brand(app, &test_key, "sandboxed", &[&test_acct]).await;
    let many_brands: Vec<String> = (0..101).map(|_| BrandId::generate().to_string()).collect();
    let many_accounts: Vec<String> = (0..101)
        .map(|_| AccountId::generate().to_string())
        .collect();

    let before = everything(app).await;
    let cases = [
        (
            json!({"allowed_brand_ids": [their_brand]}),
            "allowed_brand_ids",
        ),
        (
            json!({"allowed_brand_ids": [test_brand]}),
            "allowed_brand_ids",
        ),
        (
            json!({"allowed_brand_ids": ["brd_nope"]}),
            "allowed_brand_ids",
        ),
        (json!({"allowed_brand_ids": [a]}), "allowed_brand_ids"),
        (
            json!({"allowed_brand_ids": [l.x, l.x]}),
            "allowed_brand_ids",
        ),
        (
            json!({"allowed_brand_ids": many_brands}),
            "allowed_brand_ids",
        ),
        (json!({"allowed_brand_ids": "brd"}), "allowed_brand_ids"),
        (
            json!({"allowed_account_ids": [theirs]}),
            "allowed_account_ids",
        ),
        (
            json!({"allowed_account_ids": [test_acct]}),
            "allowed_account_ids",
        ),
        (json!({"allowed_account_ids": [l.x]}), "allowed_account_ids"),
        (
            json!({"allowed_account_ids": [b, b]}),
            "allowed_account_ids",
        ),
        (
            json!({"allowed_account_ids": many_accounts}),
            "allowed_account_ids",
        ),
    ];
    for (limits, param) in &cases {
        let mut body = limits.clone();
        body["scopes"] = json!(["posts:read"]);
        let r = app.post("/v1/keys").key(admin).json(body).send().await;
        assert_param(&r, param);
        let r = app
            .patch(&format!("/v1/keys/{}", l.key_id))
            .key(admin)
            .json(limits.clone())
            .send()
            .await;
        assert_param(&r, param);
    }
    assert_eq!(everything(app).await, before);
    // A test-mode key's limits are test-mode brands and accounts.
    let r = app
        .post("/v1/keys")
        .key(&test_key)
        .json(json!({"scopes": ["accounts:read"], "allowed_brand_ids": [test_brand]}))
        .send()
        .await;
    let (_, test_limited) = created(&r);
    assert_eq!(
        list_ids(app, &test_limited, "/v1/accounts").await,
        [test_acct.clone()]
    );

    // The admin changes the limited key: the next request sees the change.
    assert!(
        list_ids(app, key, "/v1/accounts")
            .await
            .iter()
            .all(|id| id != b)
    );
    let r = app
        .patch(&format!("/v1/keys/{}", l.key_id))
        .key(admin)
        .json(json!({"allowed_brand_ids": [l.y], "allowed_account_ids": []}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(list_ids(app, key, "/v1/accounts").await, [b.clone()]);
    // Without limits it reaches everything again.
    let r = app
        .patch(&format!("/v1/keys/{}", l.key_id))
        .key(admin)
        .json(json!({"allowed_brand_ids": []}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        sorted(list_ids(app, key, "/v1/accounts").await),
        set(&[a, b, c])
    );
    // A key limited to a brand that is deleted reaches nothing through it, and can still be
    // renamed.
    let pa = draft(app, admin, &[a], "to a").await;
    let r = app
        .patch(&format!("/v1/keys/{}", l.key_id))
        .key(admin)
        .json(json!({"allowed_brand_ids": [l.w]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(list_ids(app, key, "/v1/posts").await, [pa]);
    app.delete(&format!("/v1/brands/{}", l.w))
        .key(admin)
        .send()
        .await;
    assert!(list_ids(app, key, "/v1/accounts").await.is_empty());
    assert!(list_ids(app, key, "/v1/posts").await.is_empty());
    let r = app
        .patch(&format!("/v1/keys/{}", l.key_id))
        .key(admin)
        .json(json!({"name": "renamed"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(strings(&r.body["allowed_brand_ids"]), [l.w.clone()]);
}

both!(
    tests: a_limited_key_reaches_only_its_brands_and_accounts,
    a_limited_key_cannot_write_beyond_its_reach,
    keys_cannot_reach_further_than_the_key_that_makes_them,
    limits_are_checked_and_take_effect_at_once,
);
