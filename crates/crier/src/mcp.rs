//! `crier mcp`: the MCP server over stdio, for agents that start it as a subprocess (Claude
//! Desktop, IDEs). It talks to a running crier server over the API (`CRIER_URL`, default
//! `http://127.0.0.1:8080`) with an API key from `CRIER_API_KEY`, sent only in a header; its
//! tools follow that key's scopes. Stdout carries nothing but MCP; logs go to stderr.

use std::sync::Arc;

use crier_client::Client;

/// Serves MCP over stdio for the server and key the CLI would use: `--url`/`CRIER_URL` and
/// `CRIER_API_KEY` over the saved login of `--profile` (`crier login`), over the default URL.
pub fn run(profile: Option<&str>, url: Option<&str>) -> Result<(), String> {
    let (url, key) = crate::client::profile::credentials(profile, url)?;
    if key.is_none() {
        return Err(
            "crier mcp needs an API key: set CRIER_API_KEY or run `crier login` (create one in the dashboard; the \"AI agent (drafts only)\" preset cannot publish)".into(),
        );
    }
    let client = Client::new(&url, key, concat!("crier-mcp/", env!("CARGO_PKG_VERSION")))
        .map_err(|e| e.to_string())?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("CRIER_LOG").unwrap_or_else(|_| "warn".into()),
        ))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(crier_mcp::serve_stdio(Arc::new(client)))
}
