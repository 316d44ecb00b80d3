//! The loop every worker runs: claim work with a lease, run it `concurrency` at a time, and when
//! a claim found less than it asked for, sleep until the poll interval ends, a local wake-up arrives or a
//! task finishes. On cancel it stops claiming and lets the work in hand finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

pub async fn run<T, C, CF, W, WF>(
    concurrency: usize,
    poll: Duration,
    wake: Option<Arc<Notify>>,
    cancel: CancellationToken,
    mut claim: C,
    work: W,
) where
    T: Send + 'static,
    C: FnMut(u32) -> CF,
    CF: Future<Output = Vec<T>>,
    W: Fn(T) -> WF,
    WF: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let wake = wake.unwrap_or_default();
    while !cancel.is_cancelled() {
        let free = slots.available_permits() as u32;
        let claimed = if free == 0 {
            Vec::new()
        } else {
            claim(free).await
        };
        // Fewer than asked for: nothing more is due for now (or has room), so wait for a
        // slot to come free, a wake-up or the poll rather than ask again at once.
        let idle = claimed.len() < free as usize || free == 0;
        for item in claimed {
            let permit = slots.clone().acquire_owned().await.expect("semaphore open");
            let fut = work(item);
            tasks.spawn(async move {
                fut.await;
                drop(permit);
            });
        }
        while tasks.try_join_next().is_some() {}
        if idle {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// A duration in whole milliseconds, as storage keeps times (saturating).
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `ms` moved at random by up to `ms / spread` either way (`spread` 4: ±25%), so that retries
/// of many jobs that failed together do not come back together.
pub(crate) fn jitter(ms: i64, spread: i64) -> i64 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let r = i64::from(u16::from_le_bytes(b)) - 32768; // -32768..32767
    ms + ms * r / (spread * 32768)
}

/// Renews a claimed job's lease every third of it while the work goes on (a slow model, a long
/// ffmpeg run), so a live worker keeps its job and a lost one's lease runs out. Stops when
/// dropped.
pub(crate) struct LeaseKeeper(tokio::task::JoinHandle<()>);

impl LeaseKeeper {
    pub(crate) fn start(
        store: crier_store::Store,
        clock: Arc<dyn crier_core::Clock>,
        lease: Duration,
        job: crier_core::ids::JobId,
    ) -> Self {
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = clock.now_ms() + millis(lease);
                if let Err(e) = store.extend_lease(&job, until).await {
                    tracing::warn!(job = %job, error = %e, "could not renew a job's lease");
                }
            }
        }))
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Claims up to `limit` due jobs of `kind` for `lease`, each with the object its `ref_id`
/// names (`parse`); a job whose reference does not parse is dropped (leased already, left
/// alone it would come back every lease). Storage failing is logged and claims nothing.
pub(crate) async fn claim_refs<T>(
    store: &crier_store::Store,
    kind: crier_store::JobKind,
    now: i64,
    lease: Duration,
    limit: u32,
    parse: impl Fn(&str) -> Option<T>,
) -> Vec<(crier_store::Job, T)> {
    let jobs = match store.claim_jobs_of(kind, now, millis(lease), limit).await {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::warn!(kind = kind.as_str(), error = %e, "could not claim jobs");
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(jobs.len());
    for (job, r) in jobs {
        match r.as_deref().and_then(&parse) {
            Some(t) => out.push((job, t)),
            None => {
                tracing::warn!(job = %job.id, kind = kind.as_str(), "job names nothing it can run; dropped");
                if let Err(e) = store.drop_job(&job.id).await {
                    tracing::warn!(job = %job.id, error = %e, "could not drop a job");
                }
            }
        }
    }
    out
}
