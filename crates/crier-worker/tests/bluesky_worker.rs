//! The real publisher with the Bluesky connector against the real PDS (`scripts/peers/pds.sh
//! start`; `CRIER_TEST_PDS_URL`), through a proxy that loses answers: a post scheduled to a
//! Bluesky account lands exactly once, however the answers are lost, and its target ends
//! `published` with the record's `at://` URI.

#[allow(unused_imports)]
mod common;

#[path = "../../crier-networks/tests/support/pds.rs"]
mod pds;

use std::sync::Arc;
use std::time::Duration;

use crier_app::Caller;
use crier_core::posts::{PostStatus, TargetStatus};
use crier_core::{Clock, ScopeSet, Tenant};
use crier_networks::bluesky::{Bluesky, BlueskyConfig};
use crier_networks::{Login, Network, Networks};
use crier_store::Post;
use crier_worker::{Processed, Publisher, WorkerConfig};

use common::{app_on, both};
use crier_testdb::T0;

both!(a_lost_answer_still_publishes_once, |db| async move {
    let Some(url) = pds::pds_url() else { return };
    let proxy = pds::Proxy::start(&url).await;
    let w = crier_testdb::World::new(&db).await;
    let clock: Arc<dyn Clock> = Arc::new(w.clock.clone());
    let bluesky = Arc::new(Bluesky::new(
        BlueskyConfig {
            default_service: "https://bsky.social".into(),
            allow_private_networks: true,
            timeout: Duration::from_secs(10),
        },
        clock.clone(),
    ));
    let app = app_on(
        &w.store,
        clock,
        Networks::default().with(bluesky.clone()),
        None,
    );

    // Connected the way the API connects it: a login through the network, saved by the app
    // layer (credentials sealed). It logs in through the proxy, so it lives there.
    let user = pds::create_account(&url).await;
    let connected = bluesky
        .login(&Login {
            identifier: user.handle.clone(),
            password: user.app_password.clone(),
            service: Some(proxy.url.clone()),
        })
        .await
        .expect("login");
    assert_eq!(
        connected.credentials.service.as_deref(),
        Some(proxy.url.as_str())
    );
    let caller = Caller {
        tenant: Tenant {
            workspace: w.ws.clone(),
            livemode: false,
        },
        plan: app.plan("free").expect("the free plan"),
        scopes: ScopeSet::all(),
        actor: "test".into(),
        restriction: Default::default(),
    };
    let account = app
        .connections()
        .save(&caller, "bluesky", connected)
        .await
        .expect("save the account");
    assert!(account.credentials.is_some());

    let publisher = Publisher::new(app.clone(), WorkerConfig::default());
    let at = T0 + 60_000;
    let post = Post {
        status: PostStatus::Scheduled,
        thread: vec!["and a reply #crier".into()],
        scheduled_at: Some(at),
        ..Post::draft(&w.ws, false, &[&account], "hello from crier".into(), T0)
    };
    w.store
        .insert_posts(std::slice::from_ref(&post))
        .await
        .expect("insert");

    // The first part's answer is lost, then the connector's own check, then the publisher's
    // first look-up: three runs, one record.
    proxy.lose(&["createRecord", "getRecord", "getRecord"]);
    w.set(at);
    let mut runs = Vec::new();
    for _ in 0..10 {
        runs.extend(publisher.run_due().await);
        match w.store.next_job_at().await.expect("next job") {
            None => break,
            Some(next) => w.set(next.max(w.now())),
        }
    }
    assert_eq!(runs.last(), Some(&Processed::Published), "{runs:?}");
    assert!(
        runs.len() >= 3,
        "a failed call and a failed look-up came first: {runs:?}"
    );

    let target = w
        .post(&post.id)
        .await
        .targets
        .into_iter()
        .next()
        .expect("a target");
    assert_eq!(target.status, TargetStatus::Published, "{target:?}");
    assert_eq!(target.part_ids.len(), 2);
    assert_eq!(target.external_id.as_ref(), Some(&target.part_ids[0]));
    let rkey = target.part_ids[0].rsplit('/').next().unwrap();
    assert_eq!(
        target.url.as_deref(),
        Some(format!("https://bsky.app/profile/{}/post/{rkey}", user.did).as_str())
    );

    // On the PDS: exactly the two parts, the second a reply to the first.
    let records = pds::list_posts(&url, &user.did).await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(proxy.count("createRecord"), 2, "one call per part");
    let root = pds::get_record(&url, &target.part_ids[0]).await;
    let reply = pds::get_record(&url, &target.part_ids[1]).await;
    assert_eq!(root["value"]["text"], "hello from crier");
    assert_eq!(reply["value"]["text"], "and a reply #crier");
    assert_eq!(reply["value"]["reply"]["root"]["uri"], target.part_ids[0]);
    assert_eq!(reply["value"]["reply"]["parent"]["cid"], root["cid"]);
    assert_eq!(reply["value"]["facets"][0]["features"][0]["tag"], "crier");
});
