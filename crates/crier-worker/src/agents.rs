//! The agents' worker: a scheduler that turns due times into runs (each a job in the durable
//! queue, exactly once per due time across nodes: `crier-store/src/agents.rs`), and a runner
//! that claims those jobs with a lease and runs them through the agent rules
//! (`crier_app::agents`). A worker lost mid-run loses its lease; the run starts again on
//! another, and only the attempt that is still the run's latest records anything.

use std::sync::Arc;
use std::time::Duration;

use crier_app::App;
use crier_core::Clock;
use crier_core::ids::AgentRunId;
use crier_store::{AgentRun, Job, JobKind};
use tokio_util::sync::CancellationToken;

use crate::runner::LeaseKeeper;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Runs at once per node.
    pub concurrency: usize,
    /// How long a claimed run is this node's (a model may take a while).
    pub lease: Duration,
    /// How often due times and queued runs are looked for.
    pub poll: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            concurrency: 2,
            lease: Duration::from_secs(300),
            poll: Duration::from_secs(1),
        }
    }
}

/// Due agents looked at per scheduler tick.
const SCHEDULE_BATCH: u32 = 100;

#[derive(Clone)]
pub struct AgentWorker {
    app: App,
    clock: Arc<dyn Clock>,
    config: AgentConfig,
}

impl AgentWorker {
    pub fn new(app: App, config: AgentConfig) -> Self {
        Self {
            clock: app.clock_arc(),
            app,
            config,
        }
    }

    /// Makes the runs of due times reached now; the number made.
    pub async fn schedule(&self) -> usize {
        let now = self.clock.now_ms();
        match self.app.agents().schedule_due(now, SCHEDULE_BATCH).await {
            Ok(runs) => runs.len(),
            Err(e) => {
                tracing::warn!(error = %e.message, "could not schedule agent runs");
                0
            }
        }
    }

    async fn claim(&self, limit: u32) -> Vec<(Job, AgentRunId)> {
        crate::runner::claim_refs(
            self.app.store(),
            JobKind::AgentRun,
            self.clock.now_ms(),
            self.config.lease,
            limit,
            AgentRunId::parse,
        )
        .await
    }

    /// Runs one claimed run; `None` when there was nothing to record (or storage failed: the
    /// job comes back after its lease).
    pub async fn run_one(&self, job: &Job, run: &AgentRunId) -> Option<AgentRun> {
        // The lease is renewed every third of it while the run goes on (a model may be slow),
        // so a live worker keeps its run; a lost one's lease runs out.
        let _lease = LeaseKeeper::start(
            self.app.store().clone(),
            self.clock.clone(),
            self.config.lease,
            job.id.clone(),
        );
        match self.app.agents().run_job(job, run).await {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(run = %run, error = %e.message, "agent run failed on storage; it will come back");
                None
            }
        }
    }

    /// Runs until `cancel`: the scheduler ticks every `poll`, and runs go `concurrency` at a
    /// time.
    pub async fn run(self, cancel: CancellationToken) {
        let ticker = self.clone();
        let tick_cancel = cancel.clone();
        let scheduler = tokio::spawn(async move {
            while !tick_cancel.is_cancelled() {
                ticker.schedule().await;
                tokio::select! {
                    _ = tick_cancel.cancelled() => break,
                    _ = tokio::time::sleep(ticker.config.poll) => {}
                }
            }
        });
        let claimer = self.clone();
        let worker = self.clone();
        crate::runner::run(
            self.config.concurrency.max(1),
            self.config.poll,
            None,
            cancel,
            move |free| {
                let me = claimer.clone();
                async move { me.claim(free).await }
            },
            move |(job, run)| {
                let me = worker.clone();
                async move {
                    me.run_one(&job, &run).await;
                }
            },
        )
        .await;
        let _ = scheduler.await;
    }

    /// Schedules what is due now and runs every run due, one after another, until none is
    /// left; for tests and tools with an injected clock. Returns the runs recorded.
    pub async fn run_due(&self) -> Vec<AgentRun> {
        self.schedule().await;
        let mut out = Vec::new();
        loop {
            let jobs = self.claim(16).await;
            if jobs.is_empty() {
                return out;
            }
            for (job, run) in jobs {
                out.extend(self.run_one(&job, &run).await);
            }
        }
    }
}
