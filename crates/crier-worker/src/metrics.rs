//! What a node's publisher reports to Prometheus (appended to `/metrics` by the binary): calls to
//! each network by outcome (throttles and errors per network), how late jobs start after they
//! fell due, calls in flight, and, read from storage at scrape time, the queue: jobs waiting,
//! jobs due but not started, and how long the oldest of those has waited.
//!
//! Labels are bounded: `outcome` is one of five words and `platform` one of the networks this
//! node has a connector for (anything else counts as `other`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crier_networks::NetworkError;

/// Upper bounds of the lateness histogram, in seconds.
const BUCKETS: [f64; 11] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];
/// Distinct platforms counted by name at most.
const MAX_PLATFORMS: usize = 32;

#[derive(Debug, Default)]
struct State {
    calls: BTreeMap<(String, &'static str), u64>,
    lateness: [u64; BUCKETS.len()],
    lateness_count: u64,
    lateness_sum: f64,
    panics: u64,
}

#[derive(Debug, Default)]
pub struct PublishMetrics(Mutex<State>);

/// The outcome label of a network call.
pub fn outcome(result: Result<(), &NetworkError>) -> &'static str {
    match result {
        Ok(()) => "published",
        Err(NetworkError::RateLimited { .. }) => "rate_limited",
        Err(NetworkError::Timeout) => "timeout",
        Err(NetworkError::Rejected { .. } | NetworkError::MediaRejected { .. }) => "rejected",
        Err(_) => "error",
    }
}

impl PublishMetrics {
    /// One call to `platform` ended with `outcome` (see [`outcome`]).
    pub fn call(&self, platform: &str, outcome: &'static str) {
        let mut s = self.0.lock().expect("metrics lock");
        let known = s.calls.keys().any(|(p, _)| p == platform);
        let platform = if known || s.calls.len() < MAX_PLATFORMS * 5 {
            platform
        } else {
            "other"
        };
        *s.calls.entry((platform.to_owned(), outcome)).or_default() += 1;
    }

    /// A job started `late_ms` after it fell due.
    pub fn started(&self, late_ms: i64) {
        let secs = late_ms.max(0) as f64 / 1000.0;
        let mut s = self.0.lock().expect("metrics lock");
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            s.lateness[i] += 1;
        }
        s.lateness_count += 1;
        s.lateness_sum += secs;
    }

    /// Processing a job panicked (a bug).
    pub fn panicked(&self) {
        self.0.lock().expect("metrics lock").panics += 1;
    }

    /// The series, in the text exposition format; `queue` is (kind, jobs, due, oldest due
    /// age in ms) per job kind, `in_flight` the calls in flight now.
    pub fn render(&self, queue: &[(String, i64, i64, i64)], in_flight: usize) -> String {
        let s = self.0.lock().expect("metrics lock");
        let mut out = String::new();
        out.push_str(
            "# HELP crier_publish_calls_total Calls to networks by platform and outcome.\n\
             # TYPE crier_publish_calls_total counter\n",
        );
        for ((platform, outcome), n) in &s.calls {
            let _ = writeln!(
                out,
                "crier_publish_calls_total{{platform=\"{platform}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP crier_publish_lateness_seconds How long after falling due a publish job \
             started.\n# TYPE crier_publish_lateness_seconds histogram\n",
        );
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(s.lateness) {
            cumulative += n;
            let _ = writeln!(
                out,
                "crier_publish_lateness_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "crier_publish_lateness_seconds_bucket{{le=\"+Inf\"}} {}\n\
             crier_publish_lateness_seconds_sum {}\n\
             crier_publish_lateness_seconds_count {}",
            s.lateness_count, s.lateness_sum, s.lateness_count
        );
        let _ = writeln!(
            out,
            "# HELP crier_publish_panics_total Publish jobs whose processing panicked (a bug; \
             see the log).\n# TYPE crier_publish_panics_total counter\n\
             crier_publish_panics_total {}",
            s.panics
        );
        let _ = writeln!(
            out,
            "# HELP crier_publish_in_flight Network calls in flight on this node.\n\
             # TYPE crier_publish_in_flight gauge\n\
             crier_publish_in_flight {in_flight}"
        );
        out.push_str(
            "# HELP crier_jobs Jobs in the queue (all nodes), by kind.\n# TYPE crier_jobs gauge\n",
        );
        for (kind, jobs, _, _) in queue {
            let _ = writeln!(out, "crier_jobs{{kind=\"{kind}\"}} {jobs}");
        }
        out.push_str(
            "# HELP crier_jobs_due Jobs due but not started (no node holds them), by kind.\n\
             # TYPE crier_jobs_due gauge\n",
        );
        for (kind, _, due, _) in queue {
            let _ = writeln!(out, "crier_jobs_due{{kind=\"{kind}\"}} {due}");
        }
        out.push_str(
            "# HELP crier_jobs_oldest_due_seconds How long the oldest due, unstarted job has \
             waited, by kind.\n# TYPE crier_jobs_oldest_due_seconds gauge\n",
        );
        for (kind, _, _, age) in queue {
            let _ = writeln!(
                out,
                "crier_jobs_oldest_due_seconds{{kind=\"{kind}\"}} {}",
                *age as f64 / 1000.0
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_lateness_and_the_queue_are_rendered() {
        let m = PublishMetrics::default();
        m.call("x", "published");
        m.call("x", "published");
        m.call(
            "x",
            outcome(Err(&NetworkError::RateLimited { retry_after: None })),
        );
        m.started(300);
        m.started(40_000);
        let out = m.render(&[("publish".into(), 12, 5, 2_500)], 3);
        assert!(out.contains("crier_publish_calls_total{platform=\"x\",outcome=\"published\"} 2"));
        assert!(
            out.contains("crier_publish_calls_total{platform=\"x\",outcome=\"rate_limited\"} 1")
        );
        assert!(out.contains("crier_publish_lateness_seconds_bucket{le=\"0.5\"} 1"));
        assert!(out.contains("crier_publish_lateness_seconds_bucket{le=\"60\"} 2"));
        assert!(out.contains("crier_publish_lateness_seconds_count 2"));
        assert!(out.contains("crier_publish_in_flight 3"));
        assert!(out.contains("crier_jobs_due{kind=\"publish\"} 5"));
        assert!(out.contains("crier_jobs_oldest_due_seconds{kind=\"publish\"} 2.5"));
    }

    #[test]
    fn platform_labels_are_bounded() {
        let m = PublishMetrics::default();
        for i in 0..1000 {
            m.call(&format!("p{i}"), "error");
        }
        assert!(m.0.lock().unwrap().calls.len() <= MAX_PLATFORMS * 5 + 1);
    }
}
