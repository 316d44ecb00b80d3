//! `crier mcp`: the MCP server over stdio, for agents that start it as a subprocess (Claude
//! Desktop, IDEs). It talks to a running crier server over the API (`CRIER_URL`, default
//! `http://127.0.0.1:8080`) with an API key from `CRIER_API_KEY`, sent only in a header; its
//! tools follow that key's scopes. Stdout carries nothing but MCP; logs go to stderr.

use std::sync::Arc;

use crier_client::Client;

/// Where the server is when `CRIER_URL` is not set.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The server's URL and the API key to call it with. The one place `crier mcp` reads them.
pub fn credentials() -> Result<(String, Option<String>), String> {
    let url = std::env::var("CRIER_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let key = std::env::var("CRIER_API_KEY")
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty());
    Ok((url, key))
}

pub fn run() -> Result<(), String> {
    let (url, key) = credentials()?;
    if key.is_none() {
        return Err(
            "crier mcp needs an API key: set CRIER_API_KEY (create one in the dashboard; the \"AI agent (drafts only)\" preset cannot publish)".into(),
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
