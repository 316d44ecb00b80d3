//! What the worker suites share: the two-backend harness of `crier-testdb` (`both!` and
//! `TestDb`) and a local HTTP receiver for the webhook and feed tests.

pub use crier_testdb::{TestDb, both};

/// The application layer over `store`, `clock` and `networks`, on the shipped plans except
/// that the `free` plan (the test workspaces') allows `posts_per_month` (`None`: no quota).
#[allow(dead_code)]
pub fn app_on(
    store: &crier_store::Store,
    clock: std::sync::Arc<dyn crier_core::Clock>,
    networks: crier_networks::Networks,
    posts_per_month: Option<u64>,
) -> crier_app::App {
    let mut plans = crier_core::Plan::defaults();
    plans.get_mut("free").expect("a free plan").posts_per_month = posts_per_month;
    crier_app::App::new(
        store.clone(),
        clock,
        networks,
        &plans,
        std::sync::Arc::new(tokio::sync::Notify::new()),
    )
}

// ---------------------------------------------------------------------------------------------
// For the webhook tests: a local receiver
// ---------------------------------------------------------------------------------------------

/// One request a [`Receiver`] got.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

#[allow(dead_code)]
impl Received {
    /// A header's value as text (panics when it is missing).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .expect("a text header")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How a [`Receiver`] answers one request.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: std::time::Duration,
}

#[allow(dead_code)]
impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: std::time::Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Waits this long before answering.
    pub fn delay(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct ReceiverState {
    /// Scripted replies by path, used up in order; past them every request gets `200 ok`.
    replies: std::collections::HashMap<String, std::collections::VecDeque<Reply>>,
    received: Vec<Received>,
}

/// An HTTP server on a local address that records every request (any method, any path) and
/// answers what it was scripted to, per path.
#[allow(dead_code)]
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    state: std::sync::Arc<std::sync::Mutex<ReceiverState>>,
    task: tokio::task::JoinHandle<()>,
}

#[allow(dead_code)]
impl Receiver {
    /// A receiver on 127.0.0.1 and a free port.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: &str) -> Self {
        use axum::body::Bytes;
        use axum::extract::State;
        use axum::http::{HeaderMap, Uri};
        type Shared = std::sync::Arc<std::sync::Mutex<ReceiverState>>;

        async fn handle(
            State(state): State<Shared>,
            uri: Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> axum::response::Response {
            let path = uri.path().to_owned();
            let reply = {
                let mut s = state.lock().unwrap();
                s.received.push(Received {
                    path: path.clone(),
                    headers,
                    body: body.to_vec(),
                });
                s.replies.get_mut(&path).and_then(|q| q.pop_front())
            };
            let reply = reply.unwrap_or_else(|| Reply::status(200).body("ok"));
            if !reply.delay.is_zero() {
                tokio::time::sleep(reply.delay).await;
            }
            let mut resp = axum::response::Response::builder().status(reply.status);
            for (n, v) in &reply.headers {
                resp = resp.header(n, v);
            }
            resp.body(axum::body::Body::from(reply.body)).unwrap()
        }

        let state: Shared = Default::default();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind a receiver on {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Replies for the next requests to `path`, in order (after them: `200 ok`).
    pub fn script(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        self.state
            .lock()
            .unwrap()
            .replies
            .entry(path.to_owned())
            .or_default()
            .extend(replies);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// The requests to one path, in arrival order.
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
