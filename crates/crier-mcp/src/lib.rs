//! crier's MCP server: the tools, resources and their handler, over any transport. `crier mcp`
//! serves it over stdio with a [`crier_client::Client`] of a running server; `POST /mcp` on the
//! server serves it over streamable HTTP, stateless, sending each tool's request through the
//! server's own router. Either way the server is an adapter of the public API:
//!
//! - Every tool and resource is a request of the API with the caller's key, so it passes the
//!   key's auth, scopes, rate limits and restrictions and is written to the key's request log
//!   (its audit trail). Nothing here decides what a key may do; it only hides what it may not.
//! - The tool list follows the key's scopes (`GET /v1/me`, asked on each list and call, so a
//!   changed key is seen at once and nothing is kept between stateless requests; over HTTP the
//!   server passes the scopes it authenticated the MCP request with): a tool whose scope the
//!   key lacks is not listed, and calling it anyway is refused.
//! - An API error comes back as a tool error (`isError: true`) whose content is the API's
//!   envelope, `{"error":{code,message,request_id,param}}`, so an agent can act on the code
//!   and quote the request id (see the `explain_error` tool).

pub mod tools;

use std::future::Future;
use std::sync::Arc;

use crier_client::{ApiRequest, ApiResponse, Client, ClientError};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Extensions,
    Implementation, InitializeResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, MetaObject, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
    ServerCapabilities, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value, json};

pub use tools::{TOOLS, ToolSpec};

/// The API the tools call: a remote server over HTTP ([`Client`]) or the server's own router.
pub trait Api: Send + Sync + 'static {
    /// Sends `req` as the caller of the MCP request. `extensions` are those of the MCP
    /// request (over HTTP they hold the HTTP request's parts, whose credentials the
    /// in-process implementation forwards; over stdio they are empty).
    fn call(
        &self,
        extensions: &Extensions,
        req: ApiRequest,
    ) -> impl Future<Output = Result<ApiResponse, ClientError>> + Send;

    /// The caller's scopes when the transport already knows them (the server, which
    /// authenticated the MCP request itself); `None` asks `GET /v1/me`.
    fn known_scopes(&self, _extensions: &Extensions) -> Option<Vec<String>> {
        None
    }
}

impl Api for Client {
    async fn call(
        &self,
        _extensions: &Extensions,
        req: ApiRequest,
    ) -> Result<ApiResponse, ClientError> {
        self.send(&req).await
    }
}

/// The MCP server over an [`Api`].
pub struct CrierMcp<A> {
    api: Arc<A>,
}

impl<A> Clone for CrierMcp<A> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
        }
    }
}

const INSTRUCTIONS: &str = "crier publishes posts to social networks. Tools follow this API key's scopes: call whoami to see them. Write posts with draft_post, check them with validate_post, and leave publishing to a human unless publish_post is listed. A failed call returns the API's error envelope {error:{code,message,request_id,param}}; explain_error turns it into a cause and a fix.";

/// A fresh `Idempotency-Key` for one write: a retry of the same call (after a lost answer)
/// is a new call from the agent, so each call gets its own.
fn idempotency_key() -> String {
    format!("mcp-{}", uuid::Uuid::now_v7())
}

/// A tool error carrying the envelope.
fn error_result(envelope: Value) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(envelope.to_string())]);
    r.structured_content = Some(envelope);
    r
}

/// An envelope made here (the request never reached the API, so no request id).
fn local_error(code: &str, message: String, param: Option<String>) -> Value {
    let mut error = json!({"code": code, "message": message, "request_id": null});
    if let Some(p) = param {
        error["param"] = Value::String(p);
    }
    json!({ "error": error })
}

fn ok_result(resp: ApiResponse) -> CallToolResult {
    let text = serde_json::to_string_pretty(&resp.body).unwrap_or_default();
    let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
    if resp.body.is_object() {
        r.structured_content = Some(resp.body);
    }
    if let Some(id) = resp.request_id {
        let mut meta = MetaObject::new();
        meta.0.insert("crier/request_id".into(), Value::String(id));
        r.meta = Some(meta);
    }
    r
}

/// An API failure as an MCP protocol error (for resources and the tool list, which have no
/// tool-error form), with the envelope as its data.
fn protocol_error(e: &ClientError) -> McpError {
    let envelope = e.envelope();
    match e.code() {
        Some("not_found") => McpError::resource_not_found(e.to_string(), Some(envelope)),
        Some("invalid_request") => McpError::invalid_params(e.to_string(), Some(envelope)),
        _ => McpError::internal_error(e.to_string(), Some(envelope)),
    }
}

/// The resources: what a key with the scope may read.
const RESOURCES: &[(&str, &str, &str, &str)] = &[
    (
        "crier://accounts",
        "accounts",
        "accounts:read",
        "The connected social accounts posts can go to.",
    ),
    (
        "crier://posts",
        "posts",
        "posts:read",
        "The newest posts (drafts, scheduled, published) with their status.",
    ),
    (
        "crier://brand-voice",
        "brand-voice",
        "analytics:read",
        "The workspace's brand voice: the tone and words an owner set, and what was learned from published posts. Write in it.",
    ),
];

impl<A: Api> CrierMcp<A> {
    pub fn new(api: Arc<A>) -> Self {
        Self { api }
    }

    /// The key's scopes: from the transport, or from `GET /v1/me`.
    async fn scopes(&self, ext: &Extensions) -> Result<Vec<String>, ClientError> {
        if let Some(scopes) = self.api.known_scopes(ext) {
            return Ok(scopes);
        }
        let me = self.api.call(ext, ApiRequest::get("/v1/me")).await?;
        Ok(me.body["scopes"]
            .as_array()
            .map(|xs| {
                xs.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn allowed(scope: Option<&str>, scopes: &[String]) -> bool {
        scope.is_none_or(|s| scopes.iter().any(|have| have == s))
    }

    /// The tools a key with `scopes` sees.
    pub fn tools_for(scopes: &[String]) -> Vec<Tool> {
        TOOLS
            .iter()
            .filter(|t| Self::allowed(t.scope, scopes))
            .map(|t| {
                let mut annotations = ToolAnnotations::new().read_only(t.read_only);
                if !t.read_only {
                    annotations = annotations
                        .destructive(matches!(t.name, "publish_post" | "retry_post"))
                        .idempotent(false);
                }
                Tool::new(t.name, t.description, Arc::new(t.schema()))
                    .with_annotations(annotations.open_world(true))
            })
            .collect()
    }

    async fn run_tool(&self, ext: &Extensions, params: CallToolRequestParams) -> CallToolResult {
        let Some(spec) = tools::find(&params.name) else {
            return error_result(local_error(
                "invalid_request",
                format!(
                    "No tool `{}`. tools/list shows this key's tools.",
                    params.name
                ),
                Some("name".into()),
            ));
        };
        let scopes = match self.scopes(ext).await {
            Ok(s) => s,
            Err(e) => return error_result(e.envelope()),
        };
        if !Self::allowed(spec.scope, &scopes) {
            let scope = spec.scope.unwrap_or_default();
            return error_result(local_error(
                "forbidden_scope",
                format!(
                    "This key cannot use {} (needs {scope}); it is not in this key's tool list.",
                    spec.name
                ),
                None,
            ));
        }
        let args = match spec.check(params.arguments.as_ref()) {
            Ok(a) => a,
            Err((param, message)) => {
                return error_result(local_error("invalid_request", message, Some(param)));
            }
        };
        if spec.name == "explain_error" {
            return self.explain(ext, spec, &args).await;
        }
        let mut req = (spec.build)(&args);
        if req.method != crier_client::Method::GET {
            req = req.idempotency_key(idempotency_key());
        }
        match self.api.call(ext, req).await {
            Ok(resp) => ok_result(resp),
            Err(e) => error_result(e.envelope()),
        }
    }

    /// `explain_error`: the code's meaning from the table, and the request from the log when
    /// a request id is given (which needs `keys:read`; without it the answer says so).
    async fn explain(
        &self,
        ext: &Extensions,
        spec: &ToolSpec,
        args: &tools::Args,
    ) -> CallToolResult {
        let code = args.str("code");
        if code.is_none() && args.str("request_id").is_none() {
            return error_result(local_error(
                "invalid_request",
                "explain_error needs `code` or `request_id` (or both).".into(),
                Some("code".into()),
            ));
        }
        let mut out = json!({
            "code": code,
            "request_id": args.str("request_id"),
            "message": args.str("message"),
            "param": args.str("param"),
        });
        let mut logged_code = None;
        if args.str("request_id").is_some() {
            match self.api.call(ext, (spec.build)(args)).await {
                Ok(resp) => {
                    logged_code = resp.body["error_code"].as_str().map(str::to_owned);
                    out["request"] = resp.body;
                }
                Err(e) => {
                    out["request"] = Value::Null;
                    out["request_lookup_error"] = e.envelope()["error"].clone();
                }
            }
        }
        let code = code.map(str::to_owned).or(logged_code);
        match code.as_deref().map(|c| (c, tools::explain_code(c))) {
            Some((_, Some((cause, fix)))) => {
                out["cause"] = json!(cause);
                out["fix"] = json!(fix);
            }
            Some((c, None)) => {
                out["cause"] = json!(format!("`{c}` is not one of the API's error codes."));
                out["fix"] = json!("Check the code as the error envelope gave it.");
            }
            None => {}
        }
        if let Some(param) = args.str("param") {
            out["param_hint"] = json!(format!(
                "The argument or field `{param}` is the one at fault."
            ));
        }
        let mut r = CallToolResult::success(vec![ContentBlock::text(
            serde_json::to_string_pretty(&out).unwrap_or_default(),
        )]);
        r.structured_content = Some(out);
        r
    }
}

impl<A: Api> ServerHandler for CrierMcp<A> {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(
            Implementation::new("crier", env!("CARGO_PKG_VERSION")).with_title("crier"),
        )
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let scopes = self
            .scopes(&context.extensions)
            .await
            .map_err(|e| protocol_error(&e))?;
        Ok(ListToolsResult::with_all_items(Self::tools_for(&scopes)))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        Ok(self.run_tool(&context.extensions, request).await.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let scopes = self
            .scopes(&context.extensions)
            .await
            .map_err(|e| protocol_error(&e))?;
        Ok(ListResourcesResult::with_all_items(
            RESOURCES
                .iter()
                .filter(|(_, _, scope, _)| Self::allowed(Some(scope), &scopes))
                .map(|(uri, name, _, description)| {
                    Resource::new(*uri, *name)
                        .with_description(*description)
                        .with_mime_type("application/json")
                })
                .collect(),
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let scopes = self
            .scopes(&context.extensions)
            .await
            .map_err(|e| protocol_error(&e))?;
        let mut templates = Vec::new();
        if Self::allowed(Some("posts:read"), &scopes) {
            templates.push(
                ResourceTemplate::new("crier://posts/{id}", "post")
                    .with_description("One post by id (`post_…`), with its per-account results.")
                    .with_mime_type("application/json"),
            );
        }
        Ok(ListResourceTemplatesResult::with_all_items(templates))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri;
        let path = match uri.strip_prefix("crier://") {
            Some("accounts") => "/v1/accounts?limit=50".to_owned(),
            Some("posts") => "/v1/posts?limit=50".to_owned(),
            Some("brand-voice") => "/v1/persona".to_owned(),
            Some(rest) if rest.starts_with("posts/") => {
                let id = &rest["posts/".len()..];
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(McpError::resource_not_found(
                        format!("No such resource: {uri}"),
                        None,
                    ));
                }
                format!("/v1/posts/{id}")
            }
            _ => {
                return Err(McpError::resource_not_found(
                    format!("No such resource: {uri}. resources/list shows them."),
                    None,
                ));
            }
        };
        let resp = self
            .api
            .call(&context.extensions, ApiRequest::get(path))
            .await
            .map_err(|e| protocol_error(&e))?;
        let text = serde_json::to_string_pretty(&resp.body).unwrap_or_default();
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, uri).with_mime_type("application/json"),
        ])
        .into())
    }
}

/// Serves `api` over stdio until the client closes it. Nothing but MCP goes to stdout.
pub async fn serve_stdio<A: Api>(api: Arc<A>) -> Result<(), String> {
    use rmcp::ServiceExt;
    let running = CrierMcp::new(api)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("MCP over stdio: {e}"))?;
    running
        .waiting()
        .await
        .map(|_| ())
        .map_err(|e| format!("MCP over stdio: {e}"))
}
