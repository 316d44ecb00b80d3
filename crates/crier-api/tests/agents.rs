//! Agents over HTTP and through their worker, on both backends: the agent object through its
//! lifecycle, runs asked for and scheduled (an injected clock walks across daylight-saving
//! changes), output modes, budgets, a worker lost mid-run, a deleted agent's run in progress,
//! hundreds of agents due at the same instant under several schedulers and workers, bad input
//! (status, code, `param`, nothing stored), other workspaces and test mode, and idempotent
//! creation. (The scope checks of every agent route come from the authorization matrix.)
mod common;

use std::time::Duration;

use common::{KeySpec, NowMs, Response, START, TestApp, both};
use crier_core::Scope;
use crier_core::ids::{AgentId, AgentRunId};
use crier_store::{JobKind, Post, RunResult, RunStatus};
use crier_worker::agents::{AgentConfig, AgentWorker};
use serde_json::{Value, json};

/// An app, a key with every scope and one live sandbox account.
async fn world() -> (TestApp, String, String) {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let acct = app.sandbox_account(&key, "brand").await;
    (app, key, acct)
}

fn worker(app: &TestApp) -> AgentWorker {
    AgentWorker::new(app.state.app().clone(), AgentConfig::default())
}

#[track_caller]
fn assert_param(r: &Response, param: &str) {
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], param, "param; body: {}", r.text);
}

async fn create(app: &TestApp, key: &str, body: Value) -> Response {
    app.post("/v1/agents").key(key).json(body).send().await
}

async fn create_ok(app: &TestApp, key: &str, body: Value) -> Value {
    let r = create(app, key, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn agent_count(app: &TestApp) -> usize {
    app.raw_texts("SELECT id FROM agents").await.len()
}

async fn texts(app: &TestApp, sql: &'static str) -> Vec<String> {
    app.raw_texts(sql).await.into_iter().flatten().collect()
}

async fn an_agent_from_creation_to_its_runs() {
    let (app, key, acct) = world().await;
    let agent = create_ok(
        &app,
        &key,
        json!({"name": "Tips", "instructions": "Short tips about durable queues.", "account_ids": [acct]}),
    )
    .await;
    let id = agent["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("agt_"), "{id}");
    assert_eq!(
        agent,
        json!({
            "id": id,
            "object": "agent",
            "name": "Tips",
            "brand_id": null,
            "account_ids": [acct],
            "instructions": "Short tips about durable queues.",
            "sources": {"knowledge": true, "trending": false, "best_posts": true, "feed_ids": []},
            "schedule": null,
            "output": "draft",
            "max_posts": 3,
            "max_credits": 20,
            "enabled": true,
            "next_run_at": null,
            "last_run_at": null,
            "livemode": true,
            "created_at": START,
            "updated_at": START,
        })
    );
    let r = app.get(&format!("/v1/agents/{id}")).key(&key).send().await;
    assert_eq!(r.body, agent, "{}", r.text);
    let r = app.get("/v1/agents").key(&key).send().await;
    assert_eq!(r.body["data"], json!([agent]));
    assert_eq!(r.body["has_more"], false);

    // A schedule: its first due time in the workspace's time zone (UTC here).
    app.clock.advance(Duration::from_secs(1));
    let r = app
        .patch(&format!("/v1/agents/{id}"))
        .key(&key)
        .json(json!({"schedule": "0  9 * * *", "max_posts": 2}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["schedule"], "0 9 * * *", "kept normalised");
    assert_eq!(r.body["next_run_at"], "2026-11-23T09:00:00Z");
    assert_eq!(r.body["max_posts"], 2);

    // Asked for now: queued, then run by the worker.
    let r = app
        .post(&format!("/v1/agents/{id}/runs"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let run_id = r.body["id"].as_str().unwrap().to_owned();
    assert!(run_id.starts_with("arun_"));
    assert_eq!(r.body["status"], "queued");
    assert_eq!(r.body["trigger"], "manual");
    // A second one while the first waits is refused, and nothing is queued twice.
    let again = app
        .post(&format!("/v1/agents/{id}/runs"))
        .key(&key)
        .send()
        .await;
    again.assert_error(409, "conflict");
    assert_eq!(
        texts(&app, "SELECT kind FROM jobs WHERE kind = 'agent_run'")
            .await
            .len(),
        1
    );

    let done = worker(&app).run_due().await;
    assert_eq!(done.len(), 1);
    let r = app
        .get(&format!("/v1/agents/{id}/runs/{run_id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let run = r.body;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["engine"], "builtin");
    assert_eq!(run["attempts"], 1);
    assert_eq!(run["credits"], 2, "one ideas call");
    assert_eq!(run["error"], Value::Null);
    let notes = run["notes"].to_string();
    assert!(notes.contains("No model is configured"), "{notes}");
    assert_eq!(
        run["inputs"],
        json!([{"source": "instructions", "text": "Short tips about durable queues."}])
    );
    let posts = run["post_ids"].as_array().unwrap();
    assert_eq!(posts.len(), 2, "max_posts");
    for p in posts {
        let r = app
            .get(&format!("/v1/posts/{}", p.as_str().unwrap()))
            .key(&key)
            .send()
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["status"], "draft");
        assert_eq!(r.body["account_ids"], json!([acct]));
        assert!(!r.body["body"].as_str().unwrap().trim().is_empty());
    }
    // The event, in the same transaction, carries the run as the API shows it.
    let events = texts(
        &app,
        "SELECT data FROM events WHERE type = 'agent.run_completed'",
    )
    .await;
    assert_eq!(events.len(), 1);
    let data: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(data, run);
    // The job is gone with the run's end; the agent shows its last run.
    assert!(
        texts(&app, "SELECT id FROM jobs WHERE kind = 'agent_run'")
            .await
            .is_empty()
    );
    let r = app.get(&format!("/v1/agents/{id}")).key(&key).send().await;
    assert_eq!(
        r.body["last_run_at"], run["started_at"],
        "when the run started"
    );
    let r = app
        .get(&format!("/v1/agents/{id}/runs"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.body["data"], json!([run]));

    // Paused: the schedule is off; resumed: counted from now.
    let r = app
        .patch(&format!("/v1/agents/{id}"))
        .key(&key)
        .json(json!({"enabled": false}))
        .send()
        .await;
    assert_eq!(r.body["next_run_at"], Value::Null, "{}", r.text);
    app.clock.set("2026-11-25T12:00:00Z".parse().unwrap());
    assert!(worker(&app).run_due().await.is_empty());
    let r = app
        .patch(&format!("/v1/agents/{id}"))
        .key(&key)
        .json(json!({"enabled": true}))
        .send()
        .await;
    assert_eq!(r.body["next_run_at"], "2026-11-26T09:00:00Z", "{}", r.text);
    let r = app
        .patch(&format!("/v1/agents/{id}"))
        .key(&key)
        .json(json!({"schedule": null}))
        .send()
        .await;
    assert_eq!(r.body["schedule"], Value::Null, "{}", r.text);
    assert_eq!(r.body["next_run_at"], Value::Null);

    // Deleted with its runs; its posts stay.
    let r = app
        .delete(&format!("/v1/agents/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(
        r.body,
        json!({"id": id, "object": "agent", "deleted": true})
    );
    let r = app.get(&format!("/v1/agents/{id}")).key(&key).send().await;
    r.assert_error(404, "not_found");
    assert!(texts(&app, "SELECT id FROM agent_runs").await.is_empty());
    assert_eq!(texts(&app, "SELECT id FROM posts").await.len(), 2);
}

async fn output_modes_and_budgets_hold() {
    let (app, key, acct) = world().await;
    let mk = |body: Value| {
        let mut b = json!({"name": "A", "instructions": "Release notes.", "account_ids": [acct]});
        b.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        b
    };
    let run_one = |id: String| {
        let app = &app;
        let key = &key;
        async move {
            let r = app
                .post(&format!("/v1/agents/{id}/runs"))
                .key(key)
                .send()
                .await;
            assert_eq!(r.status, 202, "{}", r.text);
            worker(app).run_due().await;
            let r = app
                .get(&format!("/v1/agents/{id}/runs"))
                .key(key)
                .send()
                .await;
            r.body["data"][0].clone()
        }
    };
    let statuses = |run: &Value| {
        let app = &app;
        let key = &key;
        let ids: Vec<String> = run["post_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect();
        async move {
            let mut out = Vec::new();
            for p in ids {
                let r = app.get(&format!("/v1/posts/{p}")).key(key).send().await;
                out.push(r.body["status"].as_str().unwrap().to_owned());
            }
            out
        }
    };

    // Approval: the posts wait for a person.
    let a = create_ok(
        &app,
        &key,
        mk(json!({"output": "pending_approval", "max_posts": 2})),
    )
    .await;
    let run = run_one(a["id"].as_str().unwrap().to_owned()).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        statuses(&run).await,
        ["pending_approval", "pending_approval"]
    );
    let events = texts(
        &app,
        "SELECT type FROM events WHERE type = 'post.approval_requested'",
    )
    .await;
    assert_eq!(events.len(), 2);

    // Queue without slots: kept as drafts, and the run says so.
    let q = create_ok(&app, &key, mk(json!({"output": "queue", "max_posts": 1}))).await;
    let run = run_one(q["id"].as_str().unwrap().to_owned()).await;
    assert_eq!(statuses(&run).await, ["draft"]);
    assert!(run["notes"].to_string().contains("kept as drafts"), "{run}");
    // With slots: scheduled into the next one.
    let r = app
        .call(axum::http::Method::PUT, "/v1/queue/slots")
        .key(&key)
        .json(json!({"slots": [{"day": "monday", "time": "09:00"}]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let run = run_one(q["id"].as_str().unwrap().to_owned()).await;
    assert_eq!(statuses(&run).await, ["scheduled"]);
    let post = &run["post_ids"][0];
    let r = app
        .get(&format!("/v1/posts/{}", post.as_str().unwrap()))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.body["scheduled_at"], "2026-11-23T09:00:00Z", "{}", r.text);

    // A budget too small for one call: the run fails, nothing is spent or made.
    let b = create_ok(&app, &key, mk(json!({"max_credits": 1}))).await;
    let run = run_one(b["id"].as_str().unwrap().to_owned()).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["credits"], 0);
    assert_eq!(run["post_ids"], json!([]));
    assert!(
        run["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too small"),
        "{run}"
    );
    let failed = texts(
        &app,
        "SELECT data FROM events WHERE type = 'agent.run_failed'",
    )
    .await;
    assert_eq!(failed.len(), 1);

    // max_posts caps what one run makes.
    let one = create_ok(&app, &key, mk(json!({"max_posts": 1}))).await;
    let run = run_one(one["id"].as_str().unwrap().to_owned()).await;
    assert_eq!(run["post_ids"].as_array().unwrap().len(), 1);
}

async fn a_plan_without_ai_has_no_agents_and_spent_credits_fail_the_run() {
    let free = TestApp::with_plan("free").await;
    let key = free.admin_key().await;
    let acct = free.sandbox_account(&key, "brand").await;
    let r = create(
        &free,
        &key,
        json!({"name": "A", "instructions": "x", "account_ids": [acct]}),
    )
    .await;
    r.assert_error(402, "payment_required");
    assert_eq!(agent_count(&free).await, 0);

    let app = TestApp::with_plan("pro").await;
    let key = app.admin_key().await;
    let acct = app.sandbox_account(&key, "brand").await;
    let a = create_ok(
        &app,
        &key,
        json!({"name": "A", "instructions": "x", "account_ids": [acct]}),
    )
    .await;
    // This month's credits are used up.
    let month = crier_core::clock::Month::of(app.clock.now_ms_value());
    app.store
        .spend_counter(
            &app.workspace.id,
            &month.period,
            crier_store::METRIC_AI_CREDITS,
            10_000,
            Some(10_000),
        )
        .await
        .unwrap()
        .unwrap();
    let id = a["id"].as_str().unwrap();
    let r = app
        .post(&format!("/v1/agents/{id}/runs"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let runs = worker(&app).run_due().await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Failed);
    let (code, message) = runs[0].error.clone().unwrap();
    assert_eq!(code, "quota_exceeded");
    assert!(message.contains("AI credits"), "{message}");
    assert_eq!(runs[0].credits, 0);
    assert!(texts(&app, "SELECT id FROM posts").await.is_empty());
}

/// Walks the clock in `step`s from `from` to `until`, running the worker at each step, and
/// returns the due times of the runs made.
async fn walk(app: &TestApp, from: &str, until: &str, step: Duration) -> Vec<String> {
    let w = worker(app);
    let until: jiff::Timestamp = until.parse().unwrap();
    app.clock.set(from.parse().unwrap());
    let mut due = Vec::new();
    while crier_core::clock::from_ms(app.clock.now_ms_value()) < until {
        for run in w.run_due().await {
            assert_eq!(run.status, RunStatus::Completed, "{run:?}");
            due.push(crier_core::clock::from_ms(run.scheduled_for).to_string());
        }
        app.clock.advance(step);
    }
    due
}

async fn schedules_run_once_per_due_time_across_daylight_saving_changes() {
    let (app, key, acct) = world().await;
    let r = app
        .patch("/v1/workspace")
        .key(&key)
        .json(json!({"timezone": "Europe/Berlin"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Created the day before the clocks go forward (2027-03-28, 02:00 → 03:00).
    app.clock.set("2027-03-27T00:00:00Z".parse().unwrap());
    let a = create_ok(
        &app,
        &key,
        json!({"name": "Night", "instructions": "x", "account_ids": [acct],
               "schedule": "30 2 * * *", "max_posts": 1}),
    )
    .await;
    assert_eq!(a["next_run_at"], "2027-03-27T01:30:00Z", "02:30 CET");
    let forward = walk(
        &app,
        "2027-03-27T00:00:00Z",
        "2027-03-30T00:00:00Z",
        Duration::from_secs(15 * 60),
    )
    .await;
    assert_eq!(
        forward,
        [
            "2027-03-27T01:30:00Z",
            "2027-03-28T01:30:00Z",
            "2027-03-29T00:30:00Z"
        ],
        "the missing 02:30 ran once, an hour on"
    );
    // The night the clocks go back (2027-10-31, 03:00 → 02:00): 02:30 happens twice, runs
    // once.
    let id = a["id"].as_str().unwrap();
    app.clock.set("2027-10-30T00:00:00Z".parse().unwrap());
    let r = app
        .patch(&format!("/v1/agents/{id}"))
        .key(&key)
        .json(json!({"schedule": "30 2 * * *"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch(&format!("/v1/agents/{id}"))
        .key(&key)
        .json(json!({"enabled": false}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch(&format!("/v1/agents/{id}"))
        .key(&key)
        .json(json!({"enabled": true}))
        .send()
        .await;
    assert_eq!(r.body["next_run_at"], "2027-10-30T00:30:00Z", "{}", r.text);
    let back = walk(
        &app,
        "2027-10-30T00:00:00Z",
        "2027-11-02T00:00:00Z",
        Duration::from_secs(10 * 60),
    )
    .await;
    assert_eq!(
        back,
        [
            "2027-10-30T00:30:00Z",
            "2027-10-31T00:30:00Z",
            "2027-11-01T01:30:00Z"
        ]
    );
    // A node that was down for days runs the missed schedule once, then goes on.
    app.clock.set("2027-11-05T12:00:00Z".parse().unwrap());
    let missed = worker(&app).run_due().await;
    assert_eq!(missed.len(), 1);
    assert_eq!(
        crier_core::clock::from_ms(missed[0].scheduled_for).to_string(),
        "2027-11-02T01:30:00Z"
    );
    let r = app.get(&format!("/v1/agents/{id}")).key(&key).send().await;
    assert_eq!(r.body["next_run_at"], "2027-11-06T01:30:00Z");
}

async fn hundreds_of_agents_due_at_once_run_exactly_once() {
    let (app, key, acct) = world().await;
    // 50 agents (the most one workspace has) in each of four workspaces.
    const AGENTS: usize = 200;
    let mut owners = vec![(key, acct)];
    for name in ["w2", "w3", "w4"] {
        let ws = app.other_workspace(name).await;
        let (k, _) = app
            .key_in(
                &ws,
                KeySpec {
                    scopes: Scope::ALL.to_vec(),
                    ..KeySpec::default()
                },
            )
            .await;
        let a = app.sandbox_account(&k, name).await;
        owners.push((k, a));
    }
    for i in 0..AGENTS {
        let (key, acct) = &owners[i % owners.len()];
        create_ok(
            &app,
            key,
            json!({"name": format!("a{i}"), "instructions": "x", "account_ids": [acct],
                   "schedule": "0 9 * * *", "max_posts": 1}),
        )
        .await;
    }
    app.clock.set("2026-11-23T09:00:00Z".parse().unwrap());
    // Four schedulers at the same instant, two of them through stores of their own (other
    // nodes).
    let other = app.other_process().await;
    let other_app = common::compose(&other, &app.clock, &crier_api::ApiConfig::default());
    let workers = [
        worker(&app),
        worker(&app),
        AgentWorker::new(other_app.clone(), AgentConfig::default()),
        AgentWorker::new(other_app, AgentConfig::default()),
    ];
    let made: usize = futures::future::join_all(workers.iter().map(|w| w.schedule()))
        .await
        .into_iter()
        .sum();
    assert_eq!(made, AGENTS, "one run per agent's due time");
    assert_eq!(texts(&app, "SELECT id FROM agent_runs").await.len(), AGENTS);
    // Every scheduler again: nothing more is due.
    for w in &workers {
        assert_eq!(w.schedule().await, 0);
    }
    // Four workers run them at once: each run records its posts once.
    let done: usize = futures::future::join_all(workers.iter().map(|w| w.run_due()))
        .await
        .into_iter()
        .map(|r| r.len())
        .sum();
    assert_eq!(done, AGENTS);
    assert_eq!(texts(&app, "SELECT id FROM posts").await.len(), AGENTS);
    assert_eq!(
        texts(&app, "SELECT id FROM agent_runs WHERE status = 'completed'")
            .await
            .len(),
        AGENTS
    );
    assert!(texts(&app, "SELECT id FROM jobs").await.is_empty());
    assert_eq!(
        texts(
            &app,
            "SELECT id FROM events WHERE type = 'agent.run_completed'"
        )
        .await
        .len(),
        AGENTS
    );
}

/// A post of `app`'s workspace as a run would make it.
fn a_post(app: &TestApp, body: &str) -> Post {
    Post::draft::<crier_store::Account>(
        &app.workspace.id,
        true,
        &[],
        body.to_owned(),
        app.clock.now_ms_value(),
    )
}

fn result_with(post: Post) -> RunResult {
    RunResult {
        status: RunStatus::Completed,
        engine: Some("builtin".into()),
        inputs: Vec::new(),
        prompts: Vec::new(),
        posts: vec![post],
        notes: Vec::new(),
        credits: 2,
        error: None,
    }
}

async fn a_worker_lost_mid_run_neither_runs_it_twice_nor_loses_it() {
    let (app, key, acct) = world().await;
    let a = create_ok(
        &app,
        &key,
        json!({"name": "A", "instructions": "x", "account_ids": [acct], "max_posts": 1}),
    )
    .await;
    let id = AgentId::parse(a["id"].as_str().unwrap()).unwrap();
    let r = app
        .post(&format!("/v1/agents/{id}/runs"))
        .key(&key)
        .send()
        .await;
    let run_id = AgentRunId::parse(r.body["id"].as_str().unwrap()).unwrap();

    // Worker A claims the run's job and starts it, then goes quiet (its node died, or a model
    // call hangs past the lease).
    let now = app.clock.now_ms_value();
    let claimed = app
        .store
        .claim_jobs_of(JobKind::AgentRun, now, 300_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let job_a = claimed[0].0.clone();
    let started_a = app
        .store
        .start_agent_run(&run_id, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started_a.attempts, 1);
    // Within the lease nobody else takes it.
    assert!(worker(&app).run_due().await.is_empty());

    // Past the lease, worker B runs it.
    app.clock.advance(Duration::from_secs(301));
    let done = worker(&app).run_due().await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].attempts, 2);
    assert_eq!(done[0].status, RunStatus::Completed);

    // A wakes up and tries to record its own result: refused, nothing written.
    let late = app
        .store
        .finish_agent_run(
            &job_a.id,
            &started_a,
            &result_with(a_post(&app, "late")),
            ("agent.run_completed", &json!({})),
            app.clock.now_ms_value(),
        )
        .await
        .unwrap();
    assert!(!late);
    assert_eq!(texts(&app, "SELECT id FROM posts").await.len(), 1);
    assert_eq!(
        texts(
            &app,
            "SELECT id FROM events WHERE type = 'agent.run_completed'"
        )
        .await
        .len(),
        1
    );
    // And the run, asked for again, is a new run.
    let r = app
        .post(&format!("/v1/agents/{id}/runs"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
}

async fn a_deleted_agents_run_in_progress_records_nothing() {
    let (app, key, acct) = world().await;
    let a = create_ok(
        &app,
        &key,
        json!({"name": "A", "instructions": "x", "account_ids": [acct]}),
    )
    .await;
    let id = a["id"].as_str().unwrap().to_owned();
    let r = app
        .post(&format!("/v1/agents/{id}/runs"))
        .key(&key)
        .send()
        .await;
    let run_id = AgentRunId::parse(r.body["id"].as_str().unwrap()).unwrap();
    let now = app.clock.now_ms_value();
    let (job, _) = app
        .store
        .claim_jobs_of(JobKind::AgentRun, now, 300_000, 10)
        .await
        .unwrap()
        .remove(0);
    let started = app
        .store
        .start_agent_run(&run_id, now)
        .await
        .unwrap()
        .unwrap();
    let r = app
        .delete(&format!("/v1/agents/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let wrote = app
        .store
        .finish_agent_run(
            &job.id,
            &started,
            &result_with(a_post(&app, "after delete")),
            ("agent.run_completed", &json!({})),
            now,
        )
        .await
        .unwrap();
    assert!(!wrote);
    assert!(texts(&app, "SELECT id FROM posts").await.is_empty());
    assert!(
        texts(&app, "SELECT id FROM events WHERE type LIKE 'agent.%'")
            .await
            .is_empty()
    );
    // A queued run of a deleted agent is gone with its job.
    assert!(
        texts(&app, "SELECT id FROM jobs WHERE kind = 'agent_run'")
            .await
            .is_empty()
    );
}

async fn bad_input_names_the_field_and_stores_nothing() {
    let (app, key, acct) = world().await;
    let other = app.other_workspace("other").await;
    let (other_key, _) = app
        .key_in(
            &other,
            KeySpec {
                scopes: Scope::ALL.to_vec(),
                ..KeySpec::default()
            },
        )
        .await;
    let foreign_acct = app.sandbox_account(&other_key, "theirs").await;
    let base = json!({"name": "A", "instructions": "x", "account_ids": [acct]});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, param) in [
        (with("name", json!("")), "name"),
        (with("name", json!("  ")), "name"),
        (with("name", json!("n".repeat(101))), "name"),
        (
            with("instructions", json!("i".repeat(2001))),
            "instructions",
        ),
        (with("schedule", json!("* * * * *")), "schedule"),
        (with("schedule", json!("0 9 * *")), "schedule"),
        (with("schedule", json!("0 0 31 2 *")), "schedule"),
        (with("schedule", json!("x".repeat(101))), "schedule"),
        (with("output", json!("publish")), "output"),
        (with("max_posts", json!(0)), "max_posts"),
        (with("max_posts", json!(11)), "max_posts"),
        (with("max_credits", json!(0)), "max_credits"),
        (with("max_credits", json!(501)), "max_credits"),
        (with("account_ids", json!([])), "account_ids"),
        (with("account_ids", json!(["acct_nope"])), "account_ids"),
        (with("account_ids", json!([foreign_acct])), "account_ids"),
        (with("brand_id", json!("brd_nope")), "brand_id"),
        (
            with(
                "sources",
                json!({"feed_ids": ["feed_0Q2X3hS8dK7vT1bLmN4pRz"]}),
            ),
            "sources.feed_ids",
        ),
        (
            with(
                "sources",
                json!({"feed_ids": vec!["feed_0Q2X3hS8dK7vT1bLmN4pRz"; 11]}),
            ),
            "sources.feed_ids",
        ),
        (with("name", json!(5)), "name"),
        (with("max_posts", json!("3")), "max_posts"),
        (with("surprise", json!(true)), "surprise"),
    ] {
        let r = create(&app, &key, body.clone()).await;
        assert_param(&r, param);
        let _ = body;
    }
    let r = app
        .post("/v1/agents")
        .key(&key)
        .header("content-type", "application/json")
        .raw("{not json")
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    let r = app
        .post("/v1/agents")
        .key(&key)
        .header("content-type", "application/json")
        .raw(format!("{{\"name\":\"{}\"}}", "x".repeat(2 * 1024 * 1024)))
        .send()
        .await;
    r.assert_error(413, "payload_too_large");
    // Queue output needs posts:publish too.
    let writer = app
        .key_with(&[Scope::AgentsWrite, Scope::AgentsRead, Scope::PostsWrite])
        .await;
    let r = create(&app, &writer, with("output", json!("queue"))).await;
    r.assert_error(403, "forbidden_scope");
    assert_eq!(agent_count(&app).await, 0, "nothing stored");

    // A change that fails leaves the agent as it was.
    let a = create_ok(&app, &key, base.clone()).await;
    let id = a["id"].as_str().unwrap();
    for (body, param) in [
        (json!({"schedule": "0 0 * * 9"}), "schedule"),
        (json!({"name": ""}), "name"),
        (json!({"enabled": "yes"}), "enabled"),
        (json!({"account_ids": []}), "account_ids"),
    ] {
        let r = app
            .patch(&format!("/v1/agents/{id}"))
            .key(&key)
            .json(body)
            .send()
            .await;
        assert_param(&r, param);
    }
    let r = app
        .patch(&format!("/v1/agents/{id}"))
        .key(&writer)
        .json(json!({"output": "queue"}))
        .send()
        .await;
    r.assert_error(403, "forbidden_scope");
    let r = app.get(&format!("/v1/agents/{id}")).key(&key).send().await;
    assert_eq!(r.body, a);
    // Unknown and malformed ids.
    for path in [
        "/v1/agents/agt_0Q2X3hS8dK7vT1bLmN4pRz".to_owned(),
        "/v1/agents/nope".to_owned(),
        format!("/v1/agents/{id}/runs/arun_0Q2X3hS8dK7vT1bLmN4pRz"),
        format!("/v1/agents/{id}/runs/x"),
    ] {
        let r = app.get(&path).key(&key).send().await;
        r.assert_error(404, "not_found");
    }
}

async fn another_workspaces_and_the_other_modes_agents_do_not_exist() {
    let (app, key, acct) = world().await;
    let a = create_ok(
        &app,
        &key,
        json!({"name": "A", "instructions": "x", "account_ids": [acct]}),
    )
    .await;
    let id = a["id"].as_str().unwrap();
    let r = app
        .post(&format!("/v1/agents/{id}/runs"))
        .key(&key)
        .send()
        .await;
    let run = r.body["id"].as_str().unwrap().to_owned();
    let [other_key, test_key] = app.outsider_keys().await;
    for k in [&other_key, &test_key] {
        for (method, path) in [
            ("GET", format!("/v1/agents/{id}")),
            ("PATCH", format!("/v1/agents/{id}")),
            ("DELETE", format!("/v1/agents/{id}")),
            ("GET", format!("/v1/agents/{id}/runs")),
            ("POST", format!("/v1/agents/{id}/runs")),
            ("GET", format!("/v1/agents/{id}/runs/{run}")),
        ] {
            let r = app
                .call(method.parse().unwrap(), &path)
                .key(k)
                .json(json!({}))
                .send()
                .await;
            r.assert_error(404, "not_found");
        }
        let r = app.get("/v1/agents").key(k).send().await;
        assert_eq!(r.body["data"], json!([]), "{}", r.text);
    }
    // A run is found only under its own agent, even in the same workspace.
    let second = create_ok(
        &app,
        &key,
        json!({"name": "B", "instructions": "x", "account_ids": [acct]}),
    )
    .await;
    let r = app
        .get(&format!(
            "/v1/agents/{}/runs/{run}",
            second["id"].as_str().unwrap()
        ))
        .key(&key)
        .send()
        .await;
    r.assert_error(404, "not_found");
    // A test-mode key cannot aim an agent at a live account.
    let r = create(
        &app,
        &test_key,
        json!({"name": "A", "instructions": "x", "account_ids": [acct]}),
    )
    .await;
    assert_param(&r, "account_ids");
    // Nothing changed: the two agents made here, one queued run.
    assert_eq!(agent_count(&app).await, 2);
    assert_eq!(texts(&app, "SELECT id FROM agent_runs").await.len(), 1);
}

async fn creation_is_idempotent_and_bounded() {
    let (app, key, acct) = world().await;
    let body = json!({"name": "A", "instructions": "x", "account_ids": [acct]});
    let first = app
        .post("/v1/agents")
        .key(&key)
        .header("idempotency-key", "agent-1")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = app
        .post("/v1/agents")
        .key(&key)
        .header("idempotency-key", "agent-1")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body);
    assert_eq!(agent_count(&app).await, 1);
    for i in 1..crier_api::routes::agents::MAX_AGENTS {
        create_ok(
            &app,
            &key,
            json!({"name": format!("a{i}"), "instructions": "x", "account_ids": [acct]}),
        )
        .await;
    }
    let r = create(&app, &key, body).await;
    r.assert_error(409, "conflict");
    assert_eq!(agent_count(&app).await, 50);
}

both!(
    tests: an_agent_from_creation_to_its_runs,
    output_modes_and_budgets_hold,
    a_plan_without_ai_has_no_agents_and_spent_credits_fail_the_run,
    schedules_run_once_per_due_time_across_daylight_saving_changes,
    hundreds_of_agents_due_at_once_run_exactly_once,
    a_worker_lost_mid_run_neither_runs_it_twice_nor_loses_it,
    a_deleted_agents_run_in_progress_records_nothing,
    bad_input_names_the_field_and_stores_nothing,
    another_workspaces_and_the_other_modes_agents_do_not_exist,
    creation_is_idempotent_and_bounded,
);
