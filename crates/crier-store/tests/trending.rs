//! The trending cache on SQLite and PostgreSQL: which sources are due and for which account,
//! claims that only one node wins, whole-list replacement and its bounds, failures that keep
//! the topics, the purge of unused sources, what a workspace reads, and the posts its rising
//! topics come from.

use crier_core::Tenant;
use crier_core::ids::WorkspaceId;
use crier_store::{Account, Post, Store, StoreError, TrendScope, TrendTopic};
use crier_testdb::{TestDb, both};

const T0: i64 = 1_800_000_000_000;
const MINUTE: i64 = 60_000;
const DAY: i64 = 24 * 60 * MINUTE;

async fn workspace(store: &Store, name: &str) -> WorkspaceId {
    store.create_workspace(name, "free", T0).await.unwrap().id
}

/// A connected account of `platform` on `service` ("" for none), known by `external_id`.
async fn account(
    store: &Store,
    ws: &WorkspaceId,
    livemode: bool,
    platform: &str,
    service: &str,
    external_id: &str,
) -> Account {
    let mut a = Account::new(ws, livemode, platform, external_id, external_id, T0);
    a.service = (!service.is_empty()).then(|| service.to_owned());
    store.connect_account(&a).await.unwrap()
}

fn topics(names: &[(&str, f64)]) -> Vec<TrendTopic> {
    names
        .iter()
        .map(|(t, s)| TrendTopic {
            topic: (*t).to_owned(),
            score: *s,
        })
        .collect()
}

async fn cached(store: &Store, source: &str) -> Vec<(String, f64)> {
    store
        .cached_trends(source)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.topic, t.score))
        .collect()
}

both!(
    due_sources_are_grouped_by_the_networks_scope,
    |db: TestDb| async move {
        let store = db.store.clone();
        let (a, b) = (workspace(&store, "a").await, workspace(&store, "b").await);
        let m = "https://m.example";
        let first = account(&store, &a, true, "mastodon", m, "1").await;
        account(&store, &b, true, "mastodon", m, "2").await;
        account(&store, &b, true, "mastodon", "https://other.example", "3").await;
        // Not needed: test mode, disconnected, another platform, no server.
        account(&store, &a, false, "mastodon", "https://test.example", "4").await;
        let gone = account(&store, &a, true, "mastodon", "https://gone.example", "5").await;
        store.disconnect_account(&a, &gone.id, T0).await.unwrap();
        account(&store, &a, true, "sandbox", "", "6").await;
        account(&store, &a, true, "mastodon", "", "7").await;
        // Bluesky lists are per account: the same DID in two workspaces is one source.
        let did = account(&store, &a, true, "bluesky", "", "did:plc:one").await;
        account(&store, &b, true, "bluesky", "", "did:plc:one").await;
        account(&store, &b, true, "bluesky", "", "did:plc:two").await;

        let due = store
            .due_trend_sources("mastodon", TrendScope::Server, T0, 100)
            .await
            .unwrap();
        let keys: Vec<&str> = due.iter().map(|d| d.source.as_str()).collect();
        assert_eq!(
            keys,
            [
                "mastodon:https://m.example",
                "mastodon:https://other.example"
            ]
        );
        // The oldest account reads a shared source.
        assert_eq!((&due[0].workspace_id, &due[0].account_id), (&a, &first.id));
        let due = store
            .due_trend_sources("bluesky", TrendScope::Account, T0, 100)
            .await
            .unwrap();
        let keys: Vec<&str> = due.iter().map(|d| d.source.as_str()).collect();
        assert_eq!(keys, ["bluesky:did:plc:one", "bluesky:did:plc:two"]);
        assert_eq!(due[0].account_id, did.id);
        // Bounded.
        let one = store
            .due_trend_sources("mastodon", TrendScope::Server, T0, 1)
            .await
            .unwrap();
        assert_eq!(one.len(), 1);
    }
);

both!(
    a_claim_is_won_once_until_the_source_is_due_again,
    |db: TestDb| async move {
        let store = db.store.clone();
        let ws = workspace(&store, "a").await;
        account(&store, &ws, true, "mastodon", "https://m.example", "1").await;
        account(&store, &ws, true, "mastodon", "https://n.example", "2").await;
        let src = "mastodon:https://m.example";
        assert!(
            store
                .claim_trend_source(src, "mastodon", T0, T0 + MINUTE)
                .await
                .unwrap()
        );
        // Leased: another node does not get it, and it is not listed as due.
        assert!(
            !store
                .claim_trend_source(src, "mastodon", T0 + 1, T0 + 2 * MINUTE)
                .await
                .unwrap()
        );
        let due = store
            .due_trend_sources("mastodon", TrendScope::Server, T0 + 1, 100)
            .await
            .unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(
            due[0].source, "mastodon:https://n.example",
            "never fetched first"
        );
        assert_eq!(due[0].due_since, None);
        // Stored: due again at the next fetch time, not before.
        assert!(
            store
                .store_trends(src, &topics(&[("#a", 1.0)]), T0 + 10, T0 + 30 * MINUTE)
                .await
                .unwrap()
        );
        assert!(
            !store
                .claim_trend_source(src, "mastodon", T0 + 29 * MINUTE, T0 + 40 * MINUTE)
                .await
                .unwrap()
        );
        let s = store.trend_source(src).await.unwrap().unwrap();
        assert_eq!(
            (s.used_at, s.next_fetch_at, s.fetched_at),
            (T0, T0 + 30 * MINUTE, Some(T0 + 10))
        );
        let due = store
            .due_trend_sources("mastodon", TrendScope::Server, T0 + 30 * MINUTE, 100)
            .await
            .unwrap();
        let since: Vec<(&str, Option<i64>)> = due
            .iter()
            .map(|d| (d.source.as_str(), d.due_since))
            .collect();
        // The never-fetched one still comes first.
        assert_eq!(
            since,
            [
                ("mastodon:https://n.example", None),
                (src, Some(T0 + 30 * MINUTE))
            ]
        );
        assert!(
            store
                .claim_trend_source(src, "mastodon", T0 + 30 * MINUTE, T0 + 31 * MINUTE)
                .await
                .unwrap()
        );
        let s = store.trend_source(src).await.unwrap().unwrap();
        assert_eq!(
            (s.used_at, s.next_fetch_at),
            (T0 + 30 * MINUTE, T0 + 31 * MINUTE)
        );
    }
);

both!(
    a_refresh_replaces_the_list_within_its_bounds,
    |db: TestDb| async move {
        let store = db.store.clone();
        let src = "mastodon:https://m.example";
        // A source never claimed (or purged since) takes nothing.
        assert!(
            !store
                .store_trends(src, &topics(&[("#a", 1.0)]), T0, T0)
                .await
                .unwrap()
        );
        assert!(cached(&store, src).await.is_empty());
        assert!(
            store
                .claim_trend_source(src, "mastodon", T0, T0 + MINUTE)
                .await
                .unwrap()
        );
        let first = topics(&[("#rust", 7.0), ("#Hola", 22.5), ("Super Bowl", 0.25)]);
        assert!(
            store
                .store_trends(src, &first, T0, T0 + MINUTE)
                .await
                .unwrap()
        );
        assert_eq!(
            cached(&store, src).await,
            [
                ("#rust".to_owned(), 7.0),
                ("#Hola".to_owned(), 22.5),
                ("Super Bowl".to_owned(), 0.25)
            ]
        );
        let positions: Vec<i64> = store
            .cached_trends(src)
            .await
            .unwrap()
            .iter()
            .map(|t| t.position)
            .collect();
        assert_eq!(positions, [0, 1, 2]);
        // The whole list is replaced: a shorter one leaves nothing of the longer.
        assert!(
            store
                .store_trends(src, &topics(&[("#new", 2.0)]), T0 + 1, T0 + MINUTE)
                .await
                .unwrap()
        );
        assert_eq!(cached(&store, src).await, [("#new".to_owned(), 2.0)]);

        // Over the bounds: refused, nothing changed.
        let many: Vec<TrendTopic> = (0..21)
            .map(|i| TrendTopic {
                topic: format!("#t{i}"),
                score: 1.0,
            })
            .collect();
        let long = topics(&[(&"x".repeat(101), 1.0)]);
        let empty = topics(&[("", 1.0)]);
        let nan = topics(&[("#nan", f64::NAN)]);
        for bad in [many, long, empty, nan] {
            let err = store
                .store_trends(src, &bad, T0 + 2, T0 + 3)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Config(_)), "{err}");
        }
        assert_eq!(cached(&store, src).await, [("#new".to_owned(), 2.0)]);
        let s = store.trend_source(src).await.unwrap().unwrap();
        assert_eq!(s.fetched_at, Some(T0 + 1));
        // Exactly at the bounds: kept.
        let twenty: Vec<TrendTopic> = (0..20)
            .map(|i| TrendTopic {
                topic: format!("{}{i:02}", "y".repeat(98)),
                score: f64::from(i),
            })
            .collect();
        assert!(
            store
                .store_trends(src, &twenty, T0 + 4, T0 + 5)
                .await
                .unwrap()
        );
        assert_eq!(cached(&store, src).await.len(), 20);
    }
);

both!(a_failed_refresh_keeps_the_topics, |db: TestDb| async move {
    let store = db.store.clone();
    let src = "bluesky:did:plc:one";
    assert!(
        store
            .claim_trend_source(src, "bluesky", T0, T0 + MINUTE)
            .await
            .unwrap()
    );
    assert!(
        store
            .store_trends(src, &topics(&[("Eclipse", 20.0)]), T0, T0 + MINUTE)
            .await
            .unwrap()
    );
    store
        .trend_fetch_failed(src, &"e".repeat(600), T0 + MINUTE, T0 + 31 * MINUTE)
        .await
        .unwrap();
    assert_eq!(cached(&store, src).await, [("Eclipse".to_owned(), 20.0)]);
    let s = store.trend_source(src).await.unwrap().unwrap();
    assert_eq!(s.last_error.as_deref().map(str::len), Some(500));
    assert_eq!(
        (s.failed_at, s.fetched_at, s.next_fetch_at),
        (Some(T0 + MINUTE), Some(T0), T0 + 31 * MINUTE)
    );
    // The next success clears the error.
    assert!(
        store
            .store_trends(
                src,
                &topics(&[("Moon", 20.0)]),
                T0 + 31 * MINUTE,
                T0 + 61 * MINUTE
            )
            .await
            .unwrap()
    );
    let s = store.trend_source(src).await.unwrap().unwrap();
    assert_eq!((s.last_error, s.failed_at), (None, None));
});

both!(
    unused_sources_are_purged_with_their_topics,
    |db: TestDb| async move {
        let store = db.store.clone();
        for (src, at) in [
            ("mastodon:https://old.example", T0),
            ("mastodon:https://new.example", T0 + 7 * DAY),
        ] {
            assert!(
                store
                    .claim_trend_source(src, "mastodon", at, at + MINUTE)
                    .await
                    .unwrap()
            );
            assert!(
                store
                    .store_trends(src, &topics(&[("#x", 1.0)]), at, at + MINUTE)
                    .await
                    .unwrap()
            );
        }
        assert_eq!(store.purge_trend_sources(T0).await.unwrap(), 0);
        assert_eq!(store.purge_trend_sources(T0 + 7 * DAY).await.unwrap(), 1);
        assert!(
            store
                .trend_source("mastodon:https://old.example")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            cached(&store, "mastodon:https://old.example")
                .await
                .is_empty()
        );
        assert_eq!(
            cached(&store, "mastodon:https://new.example").await.len(),
            1
        );
        assert_eq!(db.query_i64("SELECT COUNT(*) FROM trend_topics").await, [1]);
    }
);

both!(
    a_workspace_reads_the_sources_of_its_live_connected_accounts,
    |db: TestDb| async move {
        let store = db.store.clone();
        let (a, b) = (workspace(&store, "a").await, workspace(&store, "b").await);
        let shared = "https://m.example";
        account(&store, &a, true, "mastodon", shared, "1").await;
        account(&store, &a, true, "bluesky", "", "did:plc:a").await;
        let gone = account(&store, &a, true, "mastodon", "https://gone.example", "2").await;
        store.disconnect_account(&a, &gone.id, T0).await.unwrap();
        account(&store, &a, false, "mastodon", "https://test.example", "3").await;
        account(&store, &b, true, "mastodon", shared, "4").await;
        account(&store, &b, true, "bluesky", "", "did:plc:b").await;
        for (src, platform, topic) in [
            ("mastodon:https://m.example", "mastodon", "#shared"),
            ("mastodon:https://gone.example", "mastodon", "#gone"),
            ("mastodon:https://test.example", "mastodon", "#test"),
            ("bluesky:did:plc:a", "bluesky", "A's own"),
            ("bluesky:did:plc:b", "bluesky", "B's own"),
        ] {
            assert!(
                store
                    .claim_trend_source(src, platform, T0, T0)
                    .await
                    .unwrap()
            );
            assert!(
                store
                    .store_trends(src, &topics(&[(topic, 1.0), ("#second", 0.5)]), T0, T0)
                    .await
                    .unwrap()
            );
        }
        let read = |ws: WorkspaceId, platform: &'static str, scope| {
            let store = store.clone();
            async move {
                store
                    .workspace_trends(&ws, platform, scope, 100)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|t| format!("{}|{}|{}", t.source, t.position, t.topic))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            read(a.clone(), "mastodon", TrendScope::Server).await,
            [
                "mastodon:https://m.example|0|#shared",
                "mastodon:https://m.example|1|#second"
            ]
        );
        assert_eq!(
            read(a.clone(), "bluesky", TrendScope::Account).await,
            ["bluesky:did:plc:a|0|A's own", "bluesky:did:plc:a|1|#second"]
        );
        assert_eq!(
            read(b.clone(), "bluesky", TrendScope::Account).await,
            ["bluesky:did:plc:b|0|B's own", "bluesky:did:plc:b|1|#second"]
        );
        // Bounded by sources: one source's worth.
        assert_eq!(
            store
                .workspace_trends(&b, "mastodon", TrendScope::Server, 1)
                .await
                .unwrap()
                .len(),
            2
        );
        let c = workspace(&store, "c").await;
        assert!(read(c, "mastodon", TrendScope::Server).await.is_empty());
    }
);

both!(
    recent_posts_are_the_tenants_newest_in_the_window,
    |db: TestDb| async move {
        let store = db.store.clone();
        let (a, b) = (workspace(&store, "a").await, workspace(&store, "b").await);
        let post = |ws: &WorkspaceId, live: bool, body: &str, at: i64, thread: Vec<String>| Post {
            thread,
            ..Post::draft::<Account>(ws, live, &[], body.to_owned(), at)
        };
        store
            .insert_post(&post(&a, true, "old", T0 - 40 * DAY, vec![]))
            .await
            .unwrap();
        store
            .insert_post(&post(
                &a,
                true,
                "one #x",
                T0 - 2 * DAY,
                vec!["reply #y".into()],
            ))
            .await
            .unwrap();
        store
            .insert_post(&post(&a, true, "two", T0 - DAY, vec![]))
            .await
            .unwrap();
        store
            .insert_post(&post(&a, false, "test mode", T0 - DAY, vec![]))
            .await
            .unwrap();
        store
            .insert_post(&post(&b, true, "other workspace", T0 - DAY, vec![]))
            .await
            .unwrap();
        let live = Tenant {
            workspace: a.clone(),
            livemode: true,
        };
        let got = store
            .recent_post_texts(&live, T0 - 35 * DAY, 500)
            .await
            .unwrap();
        let bodies: Vec<&str> = got.iter().map(|p| p.body.as_str()).collect();
        assert_eq!(bodies, ["two", "one #x"]);
        assert_eq!(got[1].thread, ["reply #y"]);
        assert_eq!(got[1].created_at, T0 - 2 * DAY);
        assert_eq!(
            store
                .recent_post_texts(&live, T0 - 35 * DAY, 1)
                .await
                .unwrap()
                .len(),
            1
        );
        let test = Tenant {
            workspace: a,
            livemode: false,
        };
        let got = store
            .recent_post_texts(&test, T0 - 35 * DAY, 500)
            .await
            .unwrap();
        assert_eq!(
            got.iter().map(|p| p.body.as_str()).collect::<Vec<_>>(),
            ["test mode"]
        );
    }
);
