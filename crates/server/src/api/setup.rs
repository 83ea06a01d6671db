//! User pools, connections, sync jobs and parked deletions.

use axum::Json;
use axum::http::StatusCode;
use directory::admin::{
    BulkOutcome, BulkParked, ConnectionPatch, ConnectionView, CredentialCheck, NewConnection, Page,
    ParkedDecision, keyed_page, page,
};
use directory::credentials::Scope;
use directory::ids::{ConnectionId, JobId, PoolId};
use directory::model::{
    ActionLogEntry, ActionResult, ObjectKind, ParkedDeletion, ParkedState, SyncAction, SyncJob,
    UserPool,
};
use directory::store::{ActionLogFilter, ParkedFilter};

use super::extract::{Authed, Caller, JsonBody, PathParams, QueryParams, id, opt_enum, opt_id};
use super::params::{
    DeletePoolQuery, JobLogQuery, JobsQuery, NewPool, PageQuery, ParkedQuery, PoolPatch, StartJob,
    paginate,
};
use crate::error::{ErrorBody, HttpError};

type ApiResult<T> = Result<Json<T>, HttpError>;

// ---- pools ----

/// Lists the user pools.
#[utoipa::path(
    get, path = "/api/v1/pools", tag = "pools",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of user pools", body = Page<UserPool>),
        (status = 400, description = "Bad query parameters", body = ErrorBody),
    )
)]
pub async fn list_pools(
    Authed(admin): Authed,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Page<UserPool>> {
    Ok(Json(paginate(admin.list_pools().await?, q.page())))
}

/// Creates a user pool.
#[utoipa::path(
    post, path = "/api/v1/pools", tag = "pools",
    request_body = NewPool,
    responses(
        (status = 201, description = "The new user pool", body = UserPool),
        (status = 400, description = "Missing or bad name", body = ErrorBody),
    )
)]
pub async fn create_pool(
    Authed(admin): Authed,
    JsonBody(body): JsonBody<NewPool>,
) -> Result<(StatusCode, Json<UserPool>), HttpError> {
    Ok((
        StatusCode::CREATED,
        Json(admin.create_pool(&body.name).await?),
    ))
}

/// Reads one user pool.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}", tag = "pools",
    params(("pool_id" = String, Path, description = "User pool id (24 hex digits)")),
    responses(
        (status = 200, description = "The user pool", body = UserPool),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such user pool", body = ErrorBody),
    )
)]
pub async fn get_pool(
    caller: Caller,
    PathParams(pool_id): PathParams<String>,
) -> ApiResult<UserPool> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::DirectoryRead)?;
    Ok(Json(admin.pool(&pool_id).await?))
}

/// Renames a user pool.
#[utoipa::path(
    patch, path = "/api/v1/pools/{pool_id}", tag = "pools",
    params(("pool_id" = String, Path, description = "User pool id (24 hex digits)")),
    request_body = PoolPatch,
    responses(
        (status = 200, description = "The renamed user pool", body = UserPool),
        (status = 400, description = "Missing or bad name", body = ErrorBody),
        (status = 404, description = "No such user pool", body = ErrorBody),
    )
)]
pub async fn rename_pool(
    Authed(admin): Authed,
    PathParams(pool_id): PathParams<String>,
    JsonBody(body): JsonBody<PoolPatch>,
) -> ApiResult<UserPool> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    Ok(Json(admin.rename_pool(&pool_id, &body.name).await?))
}

/// Deletes a user pool with everything it holds: its connections, users, departments,
/// groups, events, sync jobs, parked deletions and change log. A pool that holds connections
/// or users is only deleted with `confirm` set to its name or id; never while a sync job of
/// one of its connections runs.
#[utoipa::path(
    delete, path = "/api/v1/pools/{pool_id}", tag = "pools",
    params(("pool_id" = String, Path, description = "User pool id (24 hex digits)"), DeletePoolQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`confirm` is neither the pool's name nor its id", body = ErrorBody),
        (status = 404, description = "No such user pool", body = ErrorBody),
        (status = 409, description = "Not confirmed (the message says what the pool holds), or a sync job of the pool runs", body = ErrorBody),
    )
)]
pub async fn delete_pool(
    Authed(admin): Authed,
    PathParams(pool_id): PathParams<String>,
    QueryParams(q): QueryParams<DeletePoolQuery>,
) -> Result<StatusCode, HttpError> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    admin.delete_pool(&pool_id, q.confirm.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- connections ----

/// Lists the connections of a user pool (secrets masked).
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/connections", tag = "connections",
    params(("pool_id" = String, Path, description = "User pool id"), PageQuery),
    responses(
        (status = 200, description = "A page of connections", body = Page<ConnectionView>),
        (status = 404, description = "No such user pool", body = ErrorBody),
    )
)]
pub async fn list_connections(
    Authed(admin): Authed,
    PathParams(pool_id): PathParams<String>,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Page<ConnectionView>> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let all = admin.list_connections(Some(&pool_id)).await?;
    Ok(Json(paginate(all, q.page())))
}

/// Creates a connection: one Feishu / Lark self-built app. The secrets are sealed at once
/// and never returned; the answer shows the callback URL to enter in the Feishu developer
/// console, and `check`: the credential test run right after saving (within a few seconds;
/// the connection is saved even when it fails, e.g. while Feishu is unreachable).
#[utoipa::path(
    post, path = "/api/v1/pools/{pool_id}/connections", tag = "connections",
    params(("pool_id" = String, Path, description = "User pool id")),
    request_body = NewConnection,
    responses(
        (status = 201, description = "The new connection (secrets masked), with `check`", body = ConnectionView),
        (status = 400, description = "Bad input: the message names the field", body = ErrorBody),
        (status = 404, description = "No such user pool", body = ErrorBody),
        (status = 409, description = "The identifier is taken in this pool", body = ErrorBody),
    )
)]
pub async fn create_connection(
    Authed(admin): Authed,
    PathParams(pool_id): PathParams<String>,
    JsonBody(body): JsonBody<NewConnection>,
) -> Result<(StatusCode, Json<ConnectionView>), HttpError> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let view = admin.create_connection(&pool_id, body).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Reads one connection (secrets masked).
#[utoipa::path(
    get, path = "/api/v1/connections/{connection_id}", tag = "connections",
    params(("connection_id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        (status = 404, description = "No such connection", body = ErrorBody),
    )
)]
pub async fn get_connection(
    Authed(admin): Authed,
    PathParams(connection_id): PathParams<String>,
) -> ApiResult<ConnectionView> {
    let connection_id: ConnectionId = id("connection_id", &connection_id)?;
    Ok(Json(admin.connection(&connection_id).await?))
}

/// Changes a connection. Absent fields stay; `null` or `""` clears `base_url`,
/// `encrypt_key` and `verification_token`. A change of `provider`, `base_url`, `app_id` or
/// `app_secret` runs the credential test again: its result is in `check`.
#[utoipa::path(
    patch, path = "/api/v1/connections/{connection_id}", tag = "connections",
    params(("connection_id" = String, Path, description = "Connection id")),
    request_body = ConnectionPatch,
    responses(
        (status = 200, description = "The changed connection (secrets masked), with `check` when the credentials changed", body = ConnectionView),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
    )
)]
pub async fn update_connection(
    Authed(admin): Authed,
    PathParams(connection_id): PathParams<String>,
    JsonBody(patch): JsonBody<ConnectionPatch>,
) -> ApiResult<ConnectionView> {
    let connection_id: ConnectionId = id("connection_id", &connection_id)?;
    Ok(Json(admin.update_connection(&connection_id, patch).await?))
}

/// Removes a connection (its id mappings and pending events); the directory objects stay.
#[utoipa::path(
    delete, path = "/api/v1/connections/{connection_id}", tag = "connections",
    params(("connection_id" = String, Path, description = "Connection id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such connection", body = ErrorBody),
    )
)]
pub async fn delete_connection(
    Authed(admin): Authed,
    PathParams(connection_id): PathParams<String>,
) -> Result<StatusCode, HttpError> {
    let connection_id: ConnectionId = id("connection_id", &connection_id)?;
    admin.delete_connection(&connection_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Tests the stored credentials against Feishu: a tenant token, then the app's contact
/// scope. Each failed step says what to fix in the Feishu developer console.
#[utoipa::path(
    post, path = "/api/v1/connections/{connection_id}/test", tag = "connections",
    params(("connection_id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, description = "The check, step by step (`ok` false when a step failed)", body = CredentialCheck),
        (status = 404, description = "No such connection", body = ErrorBody),
    )
)]
pub async fn test_connection(
    Authed(admin): Authed,
    PathParams(connection_id): PathParams<String>,
) -> ApiResult<CredentialCheck> {
    let connection_id: ConnectionId = id("connection_id", &connection_id)?;
    Ok(Json(admin.test_credentials(&connection_id).await?))
}

// ---- jobs ----

/// Starts an import or a reconciliation in the background; poll the job for its progress
/// and verdict.
#[utoipa::path(
    post, path = "/api/v1/connections/{connection_id}/jobs", tag = "jobs",
    params(("connection_id" = String, Path, description = "Connection id")),
    request_body = StartJob,
    responses(
        (status = 202, description = "The job, running", body = SyncJob),
        (status = 400, description = "Bad kind", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "A job is already running for this connection", body = ErrorBody),
    )
)]
pub async fn start_job(
    Authed(admin): Authed,
    PathParams(connection_id): PathParams<String>,
    JsonBody(body): JsonBody<StartJob>,
) -> Result<(StatusCode, Json<SyncJob>), HttpError> {
    let connection_id: ConnectionId = id("connection_id", &connection_id)?;
    let job = admin.start_job(&connection_id, body.kind).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Lists sync jobs, newest first.
#[utoipa::path(
    get, path = "/api/v1/jobs", tag = "jobs",
    params(JobsQuery),
    responses(
        (status = 200, description = "A page of jobs", body = Page<SyncJob>),
        (status = 400, description = "Bad query parameters", body = ErrorBody),
    )
)]
pub async fn list_jobs(
    Authed(admin): Authed,
    QueryParams(q): QueryParams<JobsQuery>,
) -> ApiResult<Page<SyncJob>> {
    let connection_id: Option<ConnectionId> = opt_id("connection_id", q.connection_id.as_deref())?;
    let jobs = admin
        .list_jobs(connection_id.as_ref(), page(q.offset, q.limit))
        .await?;
    Ok(Json(jobs))
}

/// Reads one job: state, progress, counts, verdict and error.
#[utoipa::path(
    get, path = "/api/v1/jobs/{job_id}", tag = "jobs",
    params(("job_id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = SyncJob),
        (status = 404, description = "No such job", body = ErrorBody),
    )
)]
pub async fn get_job(
    Authed(admin): Authed,
    PathParams(job_id): PathParams<String>,
) -> ApiResult<SyncJob> {
    let job_id: JobId = id("job_id", &job_id)?;
    Ok(Json(admin.job(&job_id).await?))
}

/// Reads a job's per-object action log.
#[utoipa::path(
    get, path = "/api/v1/jobs/{job_id}/log", tag = "jobs",
    params(("job_id" = String, Path, description = "Job id"), JobLogQuery),
    responses(
        (status = 200, description = "A page of the action log", body = Page<ActionLogEntry>),
        (status = 400, description = "Bad filter value: the message lists the allowed ones", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    )
)]
pub async fn job_log(
    Authed(admin): Authed,
    PathParams(job_id): PathParams<String>,
    QueryParams(q): QueryParams<JobLogQuery>,
) -> ApiResult<Page<ActionLogEntry>> {
    let job_id: JobId = id("job_id", &job_id)?;
    let actions: Vec<&str> = SyncAction::ALL.iter().map(|a| a.as_str()).collect();
    let filter = ActionLogFilter {
        action: opt_enum("action", q.action.as_deref(), SyncAction::parse, &actions)?,
        kind: opt_enum(
            "object_type",
            q.object_type.as_deref(),
            ObjectKind::parse,
            &["user", "department", "group"],
        )?,
        result: opt_enum(
            "result",
            q.result.as_deref(),
            ActionResult::parse,
            &["applied", "skipped", "parked", "failed"],
        )?,
    };
    let log = admin
        .job_log(
            &job_id,
            &filter,
            keyed_page(q.after.as_deref(), q.offset, q.limit)?,
        )
        .await?;
    Ok(Json(log))
}

// ---- parked deletions ----

const PARKED_STATES: [&str; 4] = ["pending", "approved", "rejected", "withdrawn"];

/// Lists the deletions held back for an admin (above a connection's deletion threshold),
/// newest first, with the total that match. A job that parks an object already pending on its
/// connection refreshes that entry; a complete reconciliation that finds the object back
/// withdraws it.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/parked", tag = "parked",
    params(("pool_id" = String, Path, description = "User pool id"), ParkedQuery),
    responses(
        (status = 200, description = "A page of parked deletions", body = Page<ParkedDeletion>),
        (status = 400, description = "Bad filter value: the message lists the allowed ones", body = ErrorBody),
        (status = 404, description = "No such user pool", body = ErrorBody),
    )
)]
pub async fn list_parked(
    caller: Caller,
    PathParams(pool_id): PathParams<String>,
    QueryParams(q): QueryParams<ParkedQuery>,
) -> ApiResult<Page<ParkedDeletion>> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::DirectoryRead)?;
    let filter = ParkedFilter {
        state: opt_enum(
            "state",
            q.state.as_deref(),
            ParkedState::parse,
            &PARKED_STATES,
        )?,
        connection_id: opt_id("connection_id", q.connection_id.as_deref())?,
        kind: opt_enum(
            "object_type",
            q.object_type.as_deref(),
            ObjectKind::parse,
            &["user", "department", "group"],
        )?,
        job_id: opt_id("job_id", q.job_id.as_deref())?,
        ..ParkedFilter::pool(&pool_id)
    };
    let page = keyed_page(q.after.as_deref(), q.offset, q.limit)?;
    let items = admin.list_parked(&filter, page).await?;
    Ok(Json(items))
}

/// Approves a parked deletion: the object is soft-deleted now. When the object was already
/// deleted by another path (an event, a job), nothing is deleted and the entry ends
/// `withdrawn`.
#[utoipa::path(
    post, path = "/api/v1/parked/{parked_id}/approve", tag = "parked",
    params(("parked_id" = i64, Path, description = "Parked deletion id")),
    responses(
        (status = 200, description = "The resolved deletion: `approved`, or `withdrawn` when the object was already deleted", body = ParkedDeletion),
        (status = 404, description = "No such parked deletion", body = ErrorBody),
        (status = 409, description = "Already resolved, or the object changed since it was parked", body = ErrorBody),
    )
)]
pub async fn approve_parked(
    Authed(admin): Authed,
    PathParams(parked_id): PathParams<i64>,
) -> ApiResult<ParkedDeletion> {
    Ok(Json(admin.approve_parked(parked_id).await?))
}

/// Rejects a parked deletion: the object stays.
#[utoipa::path(
    post, path = "/api/v1/parked/{parked_id}/reject", tag = "parked",
    params(("parked_id" = i64, Path, description = "Parked deletion id")),
    responses(
        (status = 200, description = "The resolved deletion", body = ParkedDeletion),
        (status = 404, description = "No such parked deletion", body = ErrorBody),
        (status = 409, description = "Already resolved", body = ErrorBody),
    )
)]
pub async fn reject_parked(
    Authed(admin): Authed,
    PathParams(parked_id): PathParams<i64>,
) -> ApiResult<ParkedDeletion> {
    Ok(Json(admin.reject_parked(parked_id).await?))
}

/// Approves every pending parked deletion of the pool that the body names: a job's, a
/// connection's, an object type's, or `{"all": true}`. Each goes the way of a single approval;
/// an entry whose object changed since it was parked stays pending and is counted as skipped.
/// Entries parked after the request started are left alone.
#[utoipa::path(
    post, path = "/api/v1/pools/{pool_id}/parked/approve", tag = "parked",
    params(("pool_id" = String, Path, description = "User pool id")),
    request_body = BulkParked,
    responses(
        (status = 200, description = "What was approved, withdrawn and skipped (with the reasons)", body = BulkOutcome),
        (status = 400, description = "No filter (name a job, connection or kind, or say all), or a bad value", body = ErrorBody),
        (status = 404, description = "No such user pool, or the job or connection is not in it", body = ErrorBody),
    )
)]
pub async fn approve_parked_bulk(
    Authed(admin): Authed,
    PathParams(pool_id): PathParams<String>,
    JsonBody(body): JsonBody<BulkParked>,
) -> ApiResult<BulkOutcome> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    Ok(Json(
        admin
            .decide_parked(&pool_id, &body, ParkedDecision::Approve)
            .await?,
    ))
}

/// Rejects every pending parked deletion of the pool that the body names (as for approve):
/// the objects stay.
#[utoipa::path(
    post, path = "/api/v1/pools/{pool_id}/parked/reject", tag = "parked",
    params(("pool_id" = String, Path, description = "User pool id")),
    request_body = BulkParked,
    responses(
        (status = 200, description = "What was rejected and skipped", body = BulkOutcome),
        (status = 400, description = "No filter (name a job, connection or kind, or say all), or a bad value", body = ErrorBody),
        (status = 404, description = "No such user pool, or the job or connection is not in it", body = ErrorBody),
    )
)]
pub async fn reject_parked_bulk(
    Authed(admin): Authed,
    PathParams(pool_id): PathParams<String>,
    JsonBody(body): JsonBody<BulkParked>,
) -> ApiResult<BulkOutcome> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    Ok(Json(
        admin
            .decide_parked(&pool_id, &body, ParkedDecision::Reject)
            .await?,
    ))
}
