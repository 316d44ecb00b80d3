//! Brands, personas, the texts persona learning reads, and keys limited to brands or accounts,
//! on both backends (the list filters bind a JSON list of any length, read differently by
//! SQLite and PostgreSQL).
// Expected lists of one id read best as `[id.clone()]`.
#![allow(clippy::cloned_ref_to_slice_refs)]

use crier_core::ids::{AccountId, BrandId};
use crier_core::posts::{PostStatus, TargetStatus};
use crier_core::{KeyMode, Scope, SecretKey, Tenant};
use crier_store::{
    Account, Actor, AuditEntry, Brand, BrandChanges, KeyRow, Post, Store, StoreError, StoredVoice,
};
use crier_testdb::{T0, TestDb, World, both};

fn tenant(w: &World, livemode: bool) -> Tenant {
    Tenant {
        workspace: w.ws.clone(),
        livemode,
    }
}

fn brand(w: &World, livemode: bool, name: &str, accounts: &[&Account]) -> Brand {
    Brand {
        id: BrandId::generate(),
        workspace_id: w.ws.clone(),
        livemode,
        name: name.to_owned(),
        position: 0,
        account_ids: accounts.iter().map(|a| a.id.clone()).collect(),
        voice: StoredVoice::default(),
        created_at: T0,
        updated_at: T0,
    }
}

async fn world() -> (TestDb, World) {
    let db = TestDb::fresh().await.expect("a database");
    let w = World::new(&db).await;
    (db, w)
}

async fn names(store: &Store, t: &Tenant) -> Vec<(String, i64)> {
    store
        .list_brands(t, None, 50, 0)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|b| (b.name, b.position))
        .collect()
}

async fn brands_are_ordered_bounded_unique_and_deleted_whole() {
    let (_db, w) = world().await;
    let live = tenant(&w, true);
    let a = w.account("a", true).await;
    let b = w.account("b", true).await;
    let voice = StoredVoice {
        description: Some("warm".into()),
        tone: Some("friendly".into()),
        words_to_use: vec!["ship".into()],
        words_to_avoid: vec!["synergy".into()],
    };
    let first = w
        .store
        .create_brand(
            &Brand {
                voice: voice.clone(),
                ..brand(&w, true, "one", &[&b, &a])
            },
            Some(3),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.position, 0);
    let read = w.store.get_brand(&live, &first.id).await.unwrap().unwrap();
    assert_eq!(
        read.account_ids,
        vec![b.id.clone(), a.id.clone()],
        "order kept"
    );
    assert_eq!(read.voice, voice);
    let second = w
        .store
        .create_brand(&brand(&w, true, "two", &[&a]), Some(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.position, 1);
    // Unique per workspace and mode, and the clash writes nothing.
    let clash = w
        .store
        .create_brand(&brand(&w, true, "two", &[]), Some(3))
        .await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    // The same name in test mode is another brand, and counts apart.
    let test = w
        .store
        .create_brand(&brand(&w, false, "two", &[]), Some(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(test.position, 0);
    assert!(
        w.store
            .create_brand(&brand(&w, false, "three", &[]), Some(1))
            .await
            .unwrap()
            .is_none(),
        "over the bound"
    );
    w.store
        .create_brand(&brand(&w, true, "three", &[]), Some(3))
        .await
        .unwrap()
        .unwrap();
    assert!(
        w.store
            .create_brand(&brand(&w, true, "four", &[]), Some(3))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        names(&w.store, &live).await,
        [("one".into(), 0), ("two".into(), 1), ("three".into(), 2)]
    );
    // Another mode's or workspace's brand is not there.
    assert!(w.store.get_brand(&live, &test.id).await.unwrap().is_none());
    let other = w
        .store
        .create_workspace("globex", "free", T0)
        .await
        .unwrap();
    let theirs = Tenant {
        workspace: other.id.clone(),
        livemode: true,
    };
    assert!(
        w.store
            .get_brand(&theirs, &first.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!w.store.delete_brand(&theirs, &first.id).await.unwrap());
    assert!(
        w.store
            .update_brand(&theirs, &first.id, &BrandChanges::default(), T0)
            .await
            .unwrap()
            .is_none()
    );

    // A delete takes the memberships and the voice, and the others move up.
    assert!(w.store.delete_brand(&live, &first.id).await.unwrap());
    assert!(!w.store.delete_brand(&live, &first.id).await.unwrap());
    assert_eq!(
        names(&w.store, &live).await,
        [("two".into(), 0), ("three".into(), 1)]
    );
    assert!(
        w.store
            .get_voice(&live, Some(&first.id))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        w.store
            .brand_accounts(&live, std::slice::from_ref(&first.id))
            .await
            .unwrap()
            .is_empty()
    );
    // The name is free again.
    w.store
        .create_brand(&brand(&w, true, "one", &[]), Some(3))
        .await
        .unwrap()
        .unwrap();
}

async fn updates_and_reorders_are_whole_or_nothing() {
    let (_db, w) = world().await;
    let live = tenant(&w, true);
    let a = w.account("a", true).await;
    let b = w.account("b", true).await;
    let one = w
        .store
        .create_brand(&brand(&w, true, "one", &[&a]), None)
        .await
        .unwrap()
        .unwrap();
    let two = w
        .store
        .create_brand(&brand(&w, true, "two", &[]), None)
        .await
        .unwrap()
        .unwrap();
    let changes = BrandChanges {
        name: Some("uno".into()),
        account_ids: Some(vec![b.id.clone(), a.id.clone()]),
        voice: Some(StoredVoice {
            tone: Some("dry".into()),
            ..StoredVoice::default()
        }),
    };
    let updated = w
        .store
        .update_brand(&live, &one.id, &changes, T0 + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.name, "uno");
    assert_eq!(updated.account_ids, vec![b.id.clone(), a.id.clone()]);
    assert_eq!(updated.voice.tone.as_deref(), Some("dry"));
    assert_eq!(updated.updated_at, T0 + 5);
    // Renaming onto another brand's name is a conflict, and changes nothing.
    let clash = w
        .store
        .update_brand(
            &live,
            &two.id,
            &BrandChanges {
                name: Some("uno".into()),
                account_ids: Some(vec![a.id.clone()]),
                ..BrandChanges::default()
            },
            T0 + 6,
        )
        .await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    let still = w.store.get_brand(&live, &two.id).await.unwrap().unwrap();
    assert_eq!((still.name.as_str(), still.account_ids.len()), ("two", 0));

    // Reorder: one missing id and nothing moves.
    let gone = BrandId::generate();
    let moved = w
        .store
        .reorder_brands(&live, &[(two.id.clone(), 0), (gone, 1)], T0 + 7)
        .await
        .unwrap();
    assert!(!moved);
    assert_eq!(
        names(&w.store, &live).await,
        [("uno".into(), 0), ("two".into(), 1)]
    );
    assert!(
        w.store
            .reorder_brands(&live, &[(two.id.clone(), 0), (one.id.clone(), 1)], T0 + 8)
            .await
            .unwrap()
    );
    assert_eq!(
        names(&w.store, &live).await,
        [("two".into(), 0), ("uno".into(), 1)]
    );

    // A voice is set only while its brand exists; the workspace's own always.
    let v = StoredVoice {
        description: Some("ours".into()),
        ..StoredVoice::default()
    };
    assert!(w.store.set_voice(&live, None, &v, T0).await.unwrap());
    assert_eq!(
        w.store.get_voice(&live, None).await.unwrap(),
        Some(v.clone())
    );
    assert!(
        w.store
            .get_voice(&tenant(&w, false), None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(w.store.delete_brand(&live, &two.id).await.unwrap());
    assert!(
        !w.store
            .set_voice(&live, Some(&two.id), &v, T0)
            .await
            .unwrap()
    );
    assert!(
        w.store
            .get_voice(&live, Some(&two.id))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        w.store
            .set_voice(&live, Some(&one.id), &v, T0)
            .await
            .unwrap()
    );
    let read = w.store.get_brand(&live, &one.id).await.unwrap().unwrap();
    assert_eq!(read.voice, v);
}

async fn limited_lists_filter_brands_keys_and_accounts() {
    let (_db, w) = world().await;
    let live = tenant(&w, true);
    let a = w.account("a", true).await;
    let b = w.account("b", true).await;
    let c = w.account("c", true).await;
    let only_a = w
        .store
        .create_brand(&brand(&w, true, "a", &[&a]), None)
        .await
        .unwrap()
        .unwrap();
    let a_and_c = w
        .store
        .create_brand(&brand(&w, true, "ac", &[&a, &c]), None)
        .await
        .unwrap()
        .unwrap();
    let empty = w
        .store
        .create_brand(&brand(&w, true, "empty", &[]), None)
        .await
        .unwrap()
        .unwrap();
    // Reaching a and b, allowed `empty` by name: `a` (all of its accounts) and `empty`.
    let within_brands = [empty.id.clone()];
    let within_accounts = [a.id.clone(), b.id.clone()];
    let seen: Vec<BrandId> = w
        .store
        .list_brands(&live, Some((&within_brands, &within_accounts)), 50, 0)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(seen, vec![only_a.id.clone(), empty.id.clone()]);
    let mut through = w
        .store
        .brand_accounts(&live, &[only_a.id.clone(), a_and_c.id.clone()])
        .await
        .unwrap();
    through.sort();
    let mut expected = vec![a.id.clone(), c.id.clone()];
    expected.sort();
    assert_eq!(through, expected);
    // Another mode's brands add nothing.
    assert!(
        w.store
            .brand_accounts(&tenant(&w, false), &[only_a.id.clone()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        w.store
            .existing_accounts(&live, &[a.id.clone(), AccountId::generate()])
            .await
            .unwrap(),
        vec![a.id.clone()]
    );
    assert!(
        w.store
            .existing_brands(&tenant(&w, false), &[only_a.id.clone()])
            .await
            .unwrap()
            .is_empty()
    );
    let page = w
        .store
        .list_accounts_in(&live, Some(&[b.id.clone(), c.id.clone()]), 1, 0)
        .await
        .unwrap();
    assert_eq!(page.items[0].id, c.id, "newest first");
    assert!(page.has_more);
    let none: &[AccountId] = &[];
    assert!(
        w.store
            .list_accounts_in(&live, Some(none), 50, 0)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Keys: limited ones within (brands among `within_brands`, accounts among `within_accounts`).
    let key = |brands: Vec<String>, accounts: Vec<String>| {
        let secret = SecretKey::generate(KeyMode::Live);
        KeyRow {
            id: crier_core::ids::KeyId::generate(),
            workspace_id: w.ws.clone(),
            name: "k".into(),
            description: String::new(),
            prefix: secret.display_prefix().to_owned(),
            digest: secret.digest(),
            mode: KeyMode::Live,
            scopes: [Scope::PostsRead].into_iter().collect(),
            per_minute: 60,
            per_day: 1000,
            allowed_ips: Vec::new(),
            allowed_origins: Vec::new(),
            allowed_brand_ids: brands,
            allowed_account_ids: accounts,
            expires_at: None,
            last_used_at: None,
            request_count: 0,
            created_at: T0,
            updated_at: T0,
            revoked_at: None,
            replaced_by: None,
            created_by: None,
            member_id: None,
        }
    };
    let keys = [
        key(vec![], vec![]),
        key(vec![empty.id.to_string()], vec![]),
        key(vec![], vec![a.id.to_string(), b.id.to_string()]),
        key(vec![empty.id.to_string()], vec![c.id.to_string()]),
        key(vec![only_a.id.to_string()], vec![]),
    ];
    for k in &keys {
        let audit = AuditEntry::new(
            &w.ws,
            Actor::Cli,
            "key.created",
            k.id.as_str(),
            None,
            serde_json::json!({}),
            T0,
        );
        w.store.insert_key(k, &audit).await.unwrap();
    }
    let found: Vec<_> = w
        .store
        .list_keys_visible(
            &w.ws,
            None,
            None,
            Some((&within_brands, &within_accounts)),
            50,
            0,
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(found, vec![keys[2].id.clone(), keys[1].id.clone()]);
    let stored = w.store.get_key(&w.ws, &keys[3].id).await.unwrap().unwrap();
    assert_eq!(stored.allowed_brand_ids, keys[3].allowed_brand_ids);
    assert_eq!(stored.allowed_account_ids, keys[3].allowed_account_ids);
}

/// A post of `w` to `accounts` in `status`, its targets as `targets` says, published at `at`.
fn post(
    w: &World,
    livemode: bool,
    accounts: &[&Account],
    body: &str,
    at: i64,
    targets: &[TargetStatus],
    status: PostStatus,
) -> Post {
    let mut p = Post::draft(&w.ws, livemode, accounts, body.into(), at);
    p.status = status;
    p.published_at = (status != PostStatus::Draft).then_some(at);
    for (t, s) in p.targets.iter_mut().zip(targets) {
        t.status = *s;
    }
    p
}

async fn published_texts_are_the_newest_that_went_out() {
    let (_db, w) = world().await;
    let live = tenant(&w, true);
    let a = w.account("a", true).await;
    let b = w.account("b", true).await;
    let t = w.account("t", false).await;
    use PostStatus::*;
    use TargetStatus as T;
    let posts = [
        post(&w, true, &[&a], "old a", T0, &[T::Published], Published),
        post(
            &w,
            true,
            &[&a, &b],
            "both, b failed",
            T0 + 10,
            &[T::Published, T::Failed],
            PartiallyPublished,
        ),
        post(
            &w,
            true,
            &[&a, &b],
            "both, a failed",
            T0 + 20,
            &[T::Failed, T::Published],
            PartiallyPublished,
        ),
        post(
            &w,
            true,
            &[&b],
            "new b",
            T0 + 30,
            &[T::Published],
            Published,
        ),
        post(&w, true, &[&a], "draft a", T0 + 40, &[T::Pending], Draft),
        post(&w, true, &[&a], "failed a", T0 + 50, &[T::Failed], Failed),
        post(
            &w,
            false,
            &[&t],
            "test",
            T0 + 60,
            &[T::Published],
            Published,
        ),
    ];
    w.store.insert_posts(&posts).await.unwrap();
    let all = w.store.published_texts(&live, None, 10).await.unwrap();
    assert_eq!(all, ["new b", "both, a failed", "both, b failed", "old a"]);
    assert_eq!(
        w.store.published_texts(&live, None, 2).await.unwrap(),
        ["new b", "both, a failed"]
    );
    assert!(
        w.store
            .published_texts(&live, None, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        w.store
            .published_texts(&live, None, -5)
            .await
            .unwrap()
            .is_empty()
    );
    let on_a = w
        .store
        .published_texts(&live, Some(&[a.id.clone()]), 10)
        .await
        .unwrap();
    assert_eq!(on_a, ["both, b failed", "old a"], "only what went out on a");
    let none: &[AccountId] = &[];
    assert!(
        w.store
            .published_texts(&live, Some(none), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        w.store
            .published_texts(&tenant(&w, false), None, 10)
            .await
            .unwrap(),
        ["test"]
    );
    let other = w
        .store
        .create_workspace("globex", "free", T0)
        .await
        .unwrap();
    let theirs = Tenant {
        workspace: other.id,
        livemode: true,
    };
    assert!(
        w.store
            .published_texts(&theirs, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

both!(
    tests: brands_are_ordered_bounded_unique_and_deleted_whole,
    updates_and_reorders_are_whole_or_nothing,
    limited_lists_filter_brands_keys_and_accounts,
    published_texts_are_the_newest_that_went_out,
);
