//! The network conformance suite for LinkedIn against its fake (crier-fakes/src/linkedin.rs),
//! and what is LinkedIn's own through the publisher.
mod conformance;
suite!(crier_fakes::linkedin::LinkedInFake::start);

use std::time::Duration;

// LinkedIn made the post and answered 500, and lists it (and refuses a duplicate of it) only
// two minutes later. The retry, half a minute on, must not take the look-up's miss for "not
// published" (it would post a second time): it waits until LinkedIn has had time to finish
// the call, then finds the post.
crier_testdb::both!(
    a_create_call_that_failed_but_landed_late_is_one_post,
    |db| async move {
        let r = conformance::Rig::new(&db, crier_fakes::linkedin::LinkedInFake::start).await;
        r.a_create_call_that_failed_but_landed_late_is_one_post(|fake| {
            fake.set_creation_lag(Duration::from_secs(120));
            fake.fail_after_create(1);
        })
        .await;
    }
);
