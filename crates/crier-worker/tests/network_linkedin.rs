//! The network conformance suite for LinkedIn against its fake (crier-fakes/src/linkedin.rs),
//! and what is LinkedIn's own through the publisher.
mod conformance;
suite!(crier_fakes::linkedin::LinkedInFake::start);

use std::time::Duration;

use crier_worker::Processed;

// LinkedIn made the post and answered 500, and lists it (and refuses a duplicate of it) only
// two minutes later. The retry, half a minute on, must not take the look-up's miss for "not
// published" (it would post a second time): it waits until LinkedIn has had time to finish
// the call, then finds the post.
crier_testdb::both!(
    a_create_call_that_failed_but_landed_late_is_one_post,
    |db| async move {
        let r = conformance::Rig::new(&db, crier_fakes::linkedin::LinkedInFake::start).await;
        r.fake.set_creation_lag(Duration::from_secs(120));
        r.fake.fail_after_create(1);
        let post = r.schedule("Made, then a 500", &[]).await;
        let runs = r.drain(10).await;
        assert_eq!(runs.last(), Some(&Processed::Published), "{runs:?}");
        let posts = r.posts();
        assert_eq!(posts.len(), 1, "exactly one post at the network: {posts:?}");
        let target = &r.w.post(&post.id).await.targets[0];
        assert_eq!(target.external_id.as_deref(), Some(posts[0].id.as_str()));
        let outcomes: Vec<String> =
            r.w.store
                .attempts(&post.id, &r.account.id)
                .await
                .unwrap()
                .iter()
                .map(|a| a.outcome.as_str().to_owned())
                .collect();
        assert_eq!(outcomes, ["failed", "lookup_failed"], "one call, one wait");
    }
);
