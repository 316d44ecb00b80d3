//! The clips' worker: claims clip jobs from the durable queue with a lease, one at a time per
//! node by default (ffmpeg takes the cores), keeps the lease alive while ffmpeg works, and runs
//! each through the clip rules (`crier_app::clips`). A worker lost mid-job loses its lease; the
//! job starts again elsewhere and the lost worker's late result is refused.

use std::sync::Arc;
use std::time::Duration;

use crier_app::App;
use crier_core::Clock;
use crier_core::ids::ClipId;
use crier_store::{ClipJob, Job, JobKind};
use tokio_util::sync::CancellationToken;

use crate::runner::LeaseKeeper;

#[derive(Debug, Clone)]
pub struct ClipConfig {
    pub concurrency: usize,
    pub lease: Duration,
    pub poll: Duration,
}

impl Default for ClipConfig {
    fn default() -> Self {
        Self {
            concurrency: 1,
            lease: Duration::from_secs(120),
            poll: Duration::from_secs(1),
        }
    }
}

#[derive(Clone)]
pub struct ClipWorker {
    app: App,
    clock: Arc<dyn Clock>,
    config: ClipConfig,
}

impl ClipWorker {
    pub fn new(app: App, config: ClipConfig) -> Self {
        Self {
            clock: app.clock_arc(),
            app,
            config,
        }
    }

    async fn claim(&self, limit: u32) -> Vec<(Job, ClipId)> {
        crate::runner::claim_refs(
            self.app.store(),
            JobKind::Clip,
            self.clock.now_ms(),
            self.config.lease,
            limit,
            ClipId::parse,
        )
        .await
    }

    /// Runs one claimed job, renewing its lease every third of it meanwhile.
    pub async fn run_one(&self, job: &Job, id: &ClipId) -> Option<ClipJob> {
        let _lease = LeaseKeeper::start(
            self.app.store().clone(),
            self.clock.clone(),
            self.config.lease,
            job.id.clone(),
        );
        match self.app.clips().run_job(job, id).await {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(clip = %id, error = %e.message, "clip job failed on storage; it will come back");
                None
            }
        }
    }

    pub async fn run(self, cancel: CancellationToken) {
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
            move |(job, id)| {
                let me = worker.clone();
                async move {
                    me.run_one(&job, &id).await;
                }
            },
        )
        .await;
    }

    /// Runs every clip job due now, one after another; for tests with an injected clock.
    pub async fn run_due(&self) -> Vec<ClipJob> {
        let mut out = Vec::new();
        loop {
            let jobs = self.claim(1).await;
            if jobs.is_empty() {
                return out;
            }
            for (job, id) in jobs {
                out.extend(self.run_one(&job, &id).await);
            }
        }
    }
}
