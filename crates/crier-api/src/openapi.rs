//! The OpenAPI 3.1 description, generated from the handlers' annotations. Each operation's
//! `security` lists the one scope it needs (empty: any valid key); the authorization matrix
//! test reads it back and checks the server enforces exactly that.

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "crier API",
        version = "1",
        description = "The crier developer API. Every error uses one envelope: \
            `{\"error\":{\"code\",\"message\",\"request_id\",\"param\"?}}`. \
            Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`. \
            Lists are `{\"data\":[…],\"has_more\":bool}` with `limit` (1–50) and `offset`. \
            Every POST accepts `Idempotency-Key`."
    ),
    modifiers(&Security),
    components(schemas(crate::error::ErrorEnvelope)),
    tags(
        (name = "posts", description = "Posts: drafts, scheduling, publishing, approvals, batches"),
        (name = "accounts", description = "Connected social accounts and the sandbox network"),
        (name = "queue", description = "Weekly posting slots and the queue"),
        (name = "feeds", description = "RSS, Atom and JSON Feed automations"),
        (name = "webhooks", description = "Signed webhooks (Standard Webhooks) and their deliveries"),
        (name = "keys", description = "API keys of the workspace"),
        (name = "workspace", description = "The workspace, its plan and usage"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sk_live_… / sk_test_…")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}
