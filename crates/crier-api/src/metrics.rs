//! Prometheus metrics, kept per application instance (no process-wide recorder), rendered in
//! the text exposition format at `/metrics`.
//!
//! Every label comes from a closed set, because anyone can send a request and every distinct
//! label value is a series kept for the life of the process: the method is one of the standard
//! methods or `OTHER`, the route is the router's template (or `unmatched` / `other`, chosen by
//! the caller), and the status is a three-digit code. As a last guard the number of series is
//! capped; past the cap new combinations are counted under route `other`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::Method;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Series per metric past which new (method, route) pairs are folded into route `other`.
const MAX_SERIES: usize = 4096;

/// The method as a label: the standard methods by name, anything else `OTHER`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

#[derive(Default)]
struct Inner {
    /// (method, route, status) -> count
    requests: BTreeMap<(&'static str, String, u16), u64>,
    /// (method, route) -> latency
    latency: BTreeMap<(&'static str, String), Histogram>,
    /// reason -> count
    auth_failures: BTreeMap<&'static str, u64>,
    /// window -> count
    rate_limited: BTreeMap<&'static str, u64>,
    /// Request log entries dropped because the pending log was full.
    request_log_dropped: u64,
}

#[derive(Default)]
pub struct Metrics(Mutex<Inner>);

impl Metrics {
    /// Counts one request. `route` must come from a closed set (a route template or a fixed
    /// word); the method is reduced to [`method_label`] here.
    pub fn observe_request(&self, method: &Method, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let method = method_label(method);
        // StatusCode is 100..=999 already; anything else would be a bug of ours, kept bounded.
        let status = if (100..=999).contains(&status) {
            status
        } else {
            0
        };
        let mut m = self.0.lock().expect("metrics lock");
        let full = m.requests.len() >= MAX_SERIES || m.latency.len() >= MAX_SERIES;
        let route = if full && !m.latency.contains_key(&(method, route.to_owned())) {
            "other"
        } else {
            route
        };
        *m.requests
            .entry((method, route.to_owned(), status))
            .or_default() += 1;
        let h = m.latency.entry((method, route.to_owned())).or_default();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            h.counts[i] += 1;
        }
        h.count += 1;
        h.sum += secs;
    }

    pub fn auth_failure(&self, reason: &'static str) {
        *self
            .0
            .lock()
            .expect("metrics lock")
            .auth_failures
            .entry(reason)
            .or_default() += 1;
    }

    pub fn rate_limited(&self, window: &'static str) {
        *self
            .0
            .lock()
            .expect("metrics lock")
            .rate_limited
            .entry(window)
            .or_default() += 1;
    }

    /// Counts request log entries dropped because the node's pending log was full
    /// (`crate::auth::usage::MAX_PENDING_LOG`).
    pub fn request_log_dropped(&self, n: u64) {
        if n > 0 {
            self.0.lock().expect("metrics lock").request_log_dropped += n;
        }
    }

    pub fn render(&self) -> String {
        let m = self.0.lock().expect("metrics lock");
        let mut out = String::new();
        out.push_str("# HELP crier_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE crier_http_requests_total counter\n");
        for ((method, route, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "crier_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP crier_http_request_duration_seconds Request latency.\n");
        out.push_str("# TYPE crier_http_request_duration_seconds histogram\n");
        for ((method, route), h) in &m.latency {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            let mut cumulative = 0;
            for (bound, c) in BUCKETS.iter().zip(h.counts) {
                cumulative += c;
                let _ = writeln!(
                    out,
                    "crier_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "crier_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n\
                 crier_http_request_duration_seconds_sum{{{labels}}} {}\n\
                 crier_http_request_duration_seconds_count{{{labels}}} {}",
                h.count, h.sum, h.count
            );
        }
        out.push_str("# HELP crier_auth_failures_total Refused authentications by reason.\n");
        out.push_str("# TYPE crier_auth_failures_total counter\n");
        for (reason, n) in &m.auth_failures {
            let _ = writeln!(out, "crier_auth_failures_total{{reason=\"{reason}\"}} {n}");
        }
        out.push_str("# HELP crier_rate_limited_total Requests refused by a rate limit.\n");
        out.push_str("# TYPE crier_rate_limited_total counter\n");
        for (window, n) in &m.rate_limited {
            let _ = writeln!(out, "crier_rate_limited_total{{window=\"{window}\"}} {n}");
        }
        out.push_str(
            "# HELP crier_request_log_dropped_total Request log entries dropped because the \
             node's pending log was full.\n",
        );
        out.push_str("# TYPE crier_request_log_dropped_total counter\n");
        let _ = writeln!(
            out,
            "crier_request_log_dropped_total {}",
            m.request_log_dropped
        );
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// More series for `/metrics` from outside the API (the node's publisher), read at each scrape.
#[async_trait::async_trait]
pub trait MetricsSource: Send + Sync {
    async fn render(&self) -> String;
}
