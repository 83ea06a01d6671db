//! The admin REST API under `/api/v1`: user pools, connections, sync jobs, parked deletions,
//! the mirrored directory and the event inbox. Every route but the OpenAPI document
//! (`/api/v1/openapi.json`) and its interactive page (`/api/v1/docs`) needs
//! `Authorization: Bearer <admin token>`.
//!
//! Handlers are thin: parse (the [`extract`] wrappers answer every bad input with the JSON
//! error body), call [`directory::admin::Admin`], serialize.

pub mod directory;
pub mod downstream;
pub mod events;
pub mod extract;
pub mod ldap;
pub mod params;
pub mod setup;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::any;
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::AppState;
use crate::error::{ErrorBody, HttpError};

/// Where the OpenAPI document is served (public).
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
/// Where the interactive documentation is served (public).
pub const DOCS_PATH: &str = "/api/v1/docs";
/// The name of the bearer security scheme in the document.
const SECURITY_SCHEME: &str = "admin_token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "orgsync admin API",
        description = "Manage orgsync: user pools, Feishu / Lark connections, import and reconciliation jobs, parked deletions, the mirrored directory and the event inbox.\n\nEvery endpoint needs `Authorization: Bearer <admin token>` (ORGSYNC_ADMIN_TOKEN, or the token printed at the first start); the directory's reads, the change feed and the webhook endpoints of a pool also take a service credential of that pool with `directory:read`, `events:read` or `webhooks:admin`. Lists take `offset` and `limit` (default 50, at most 500) and answer `{items, offset, limit, total}`. Errors answer `{\"error\": {\"code\", \"message\", \"fix\"}}`. Secrets are write-only: reads show `{\"set\": true}`."
    ),
    tags(
        (name = "pools", description = "User pools: one directory each"),
        (name = "connections", description = "Feishu / Lark self-built apps feeding a pool"),
        (name = "jobs", description = "Imports and reconciliations, with their action logs"),
        (name = "parked", description = "Deletions above a threshold, waiting for an admin"),
        (name = "directory", description = "The mirrored departments, users and groups"),
        (name = "events", description = "The event inbox: what Feishu delivered"),
        (name = "feed", description = "The change feed: what changed in a pool, in commit order, for downstream systems"),
        (name = "credentials", description = "Service credentials: a downstream system's own token to one pool"),
        (name = "webhooks", description = "Webhook endpoints: the change feed pushed, signed (Standard Webhooks 1.0.0)"),
        (name = "ldap", description = "The LDAP view: a pool's settings and its users' app passwords"),
    ),
    components(schemas(
        ErrorBody,
        ::directory::admin::UserIdType,
        ::directory::admin::DepartmentIdType,
        ::directory::admin::GroupIdType,
        ::directory::credentials::Scope
    ))
)]
struct ApiDoc;

/// The admin API, its OpenAPI document and the interactive page.
pub fn router() -> Router<AppState> {
    let (api, doc) = api_router().split_for_parts();
    let api = api
        // Every route above answers an unsupported method with the JSON error body too.
        .method_not_allowed_fallback(method_not_allowed)
        .route("/api/v1/{*rest}", any(unknown_route));
    api.merge(SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, doc))
}

/// The OpenAPI document of the admin API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().into_openapi()
}

fn api_router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(setup::list_pools, setup::create_pool))
        .routes(routes!(
            setup::get_pool,
            setup::rename_pool,
            setup::delete_pool
        ))
        .routes(routes!(setup::list_connections, setup::create_connection))
        .routes(routes!(
            setup::get_connection,
            setup::update_connection,
            setup::delete_connection
        ))
        .routes(routes!(setup::test_connection))
        .routes(routes!(setup::start_job))
        .routes(routes!(setup::list_jobs))
        .routes(routes!(setup::get_job))
        .routes(routes!(setup::job_log))
        .routes(routes!(setup::list_parked))
        .routes(routes!(setup::approve_parked))
        .routes(routes!(setup::reject_parked))
        .routes(routes!(setup::approve_parked_bulk))
        .routes(routes!(setup::reject_parked_bulk))
        .routes(routes!(directory::department_children))
        .routes(routes!(directory::get_department))
        .routes(routes!(directory::department_by_feishu_id))
        .routes(routes!(directory::department_members))
        .routes(routes!(directory::search_users))
        .routes(routes!(directory::get_user))
        .routes(routes!(directory::user_by_feishu_id))
        .routes(routes!(directory::list_groups))
        .routes(routes!(directory::get_group))
        .routes(routes!(directory::group_members))
        .routes(routes!(directory::group_by_feishu_id))
        .routes(routes!(events::list_events))
        .routes(routes!(events::get_event))
        .routes(routes!(downstream::read_feed))
        .routes(routes!(
            downstream::get_feed_settings,
            downstream::put_feed_settings
        ))
        .routes(routes!(
            downstream::list_credentials,
            downstream::create_credential
        ))
        .routes(routes!(downstream::revoke_credential))
        .routes(routes!(
            downstream::list_webhooks,
            downstream::create_webhook
        ))
        .routes(routes!(
            downstream::get_webhook,
            downstream::update_webhook,
            downstream::delete_webhook
        ))
        .routes(routes!(downstream::replay_webhook))
        .routes(routes!(downstream::rotate_webhook_secret))
        .routes(routes!(downstream::test_webhook))
        .routes(routes!(downstream::webhook_attempts))
        .routes(routes!(ldap::get_ldap_settings, ldap::put_ldap_settings))
        .routes(routes!(ldap::list_app_passwords, ldap::create_app_password))
        .routes(routes!(ldap::revoke_app_password));
    secure(router.get_openapi_mut());
    router
}

/// The name of the service-credential scheme in the document.
const SERVICE_SCHEME: &str = "service_credential";

/// The operations a service credential of the pool may call too (with the scope each
/// needs), by operation id: the directory's reads, the pool, its parked deletions, the change
/// feed and the webhook endpoints. Every other operation needs the admin token.
const SERVICE_OPERATIONS: [&str; 23] = [
    "list_webhooks",
    "create_webhook",
    "get_webhook",
    "update_webhook",
    "delete_webhook",
    "replay_webhook",
    "rotate_webhook_secret",
    "test_webhook",
    "webhook_attempts",
    "department_children",
    "get_department",
    "department_by_feishu_id",
    "department_members",
    "search_users",
    "get_user",
    "user_by_feishu_id",
    "list_groups",
    "get_group",
    "group_members",
    "group_by_feishu_id",
    "get_pool",
    "list_parked",
    "read_feed",
];

/// Declares the bearer schemes and puts every operation under them, with its 401 answer
/// (and its 403 where a service credential may call it).
fn secure(doc: &mut utoipa::openapi::OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        SECURITY_SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("osat_…")
                .description(Some(
                    "The admin token: ORGSYNC_ADMIN_TOKEN, or the token printed at the first start",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        SERVICE_SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("osc_…")
                .description(Some(
                    "A service credential of the pool (POST /api/v1/pools/{pool_id}/credentials) with the scope the operation needs: `directory:read` for the directory, `events:read` for the change feed, `webhooks:admin` for webhook endpoints",
                ))
                .build(),
        ),
    );
    let admin = SecurityRequirement::new(SECURITY_SCHEME, Vec::<String>::new());
    let service = SecurityRequirement::new(SERVICE_SCHEME, Vec::<String>::new());
    doc.security = Some(vec![admin.clone()]);
    let response = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody"))))
                    .build(),
            )
            .build()
    };
    let unauthorized = response(
        "No token, a wrong one, or a revoked or expired service credential (with `WWW-Authenticate: Bearer`)",
    );
    let forbidden = response(
        "A service credential of another pool, or without the scope; or a service credential on an operation that needs the admin token",
    );
    for item in doc.paths.paths.values_mut() {
        let operations: [&mut Option<Operation>; 5] = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in operations.into_iter().flatten() {
            let takes_service = op
                .operation_id
                .as_deref()
                .is_some_and(|id| SERVICE_OPERATIONS.contains(&id));
            op.security = Some(if takes_service {
                vec![admin.clone(), service.clone()]
            } else {
                vec![admin.clone()]
            });
            op.responses
                .responses
                .entry("401".to_owned())
                .or_insert_with(|| RefOr::T(unauthorized.clone()));
            op.responses
                .responses
                .entry("403".to_owned())
                .or_insert_with(|| RefOr::T(forbidden.clone()));
        }
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> HttpError {
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
    .with_fix(format!("see the API's operations at {DOCS_PATH}"))
}

async fn unknown_route(uri: Uri) -> HttpError {
    HttpError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no API endpoint at {}", uri.path()),
    )
    .with_fix(format!("see the API's operations at {DOCS_PATH}"))
}
