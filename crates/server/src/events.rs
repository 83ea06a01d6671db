//! The Feishu event endpoint: `POST /connections/enterprise/{identifier}/{userPoolId}/events`.
//!
//! A thin shell over [`directory::ingest::Ingestor`], which verifies, decrypts and commits the
//! event to the inbox before the 200 goes out. Every refusal is a JSON [`HttpError`] that says
//! what failed, and nothing is stored for it: 413 over [`EVENT_BODY_LIMIT`], 404 for an
//! unknown pool or connection, 401 for a bad token or signature, 400 for a body that cannot
//! be read.

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::{Bytes, BytesMut};
use directory::ingest::{IngestError, IngestOutcome};
use futures::StreamExt;

use crate::error::HttpError;
use crate::{AppState, EVENT_BODY_LIMIT};

/// The path Feishu is told to push to (`{identifier}` first, as in the console).
pub const EVENT_PATH: &str = "/connections/enterprise/{identifier}/{pool_id}/events";

pub fn router() -> Router<AppState> {
    Router::new().route(EVENT_PATH, post(receive).fallback(method_not_allowed))
}

/// Any URL no route serves (e.g. a callback URL with a segment too many): a JSON 404 that
/// says where things are, for the event endpoint first.
pub async fn not_found(uri: Uri) -> Response {
    let path = uri.path();
    let error = HttpError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("nothing is served at {path}"),
    );
    if path.starts_with("/connections") {
        error.with_fix(
            "Feishu's events go to the callback URL shown on the connection: \
             /connections/enterprise/{identifier}/{userPoolId}/events",
        )
    } else {
        error.with_fix(
            "the admin API is under /api/v1 (described at /api/v1/openapi.json), the console \
             under /console, and Feishu's events go to \
             /connections/enterprise/{identifier}/{userPoolId}/events",
        )
    }
    .into_response()
}

/// A GET (e.g. someone pasting the callback URL into a browser): say what the URL is for.
async fn method_not_allowed() -> Response {
    let mut response = HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this is the Feishu event endpoint: Feishu POSTs events here",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

async fn receive(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    state.metrics.event_received();
    match handle(&state, path, &headers, body).await {
        Ok(response) => response,
        Err((reason, error)) => {
            state.metrics.event_rejected(reason);
            if error.status.is_server_error() {
                tracing::error!(reason, error = %error.body.error.message, "event not stored");
            } else {
                tracing::info!(reason, status = error.status.as_u16(), error = %error.body.error.message, "event request rejected");
            }
            error.into_response()
        }
    }
}

type Rejection = (&'static str, HttpError);

async fn handle(
    state: &AppState,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Rejection> {
    let Path((identifier, pool_id)) = path.map_err(|e| {
        (
            "bad_path",
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "bad_path",
                format!("the event URL cannot be read: {e}"),
            )
            .with_fix("use the callback URL shown on the connection: /connections/enterprise/{identifier}/{userPoolId}/events"),
        )
    })?;
    let body = read_limited(headers, body).await?;
    match state
        .ingestor
        .ingest(&pool_id, &identifier, headers, &body)
        .await
    {
        Ok(answer) => {
            match &answer.outcome {
                IngestOutcome::Accepted { .. } => state.metrics.event_accepted(),
                IngestOutcome::Duplicate { .. } => state.metrics.event_duplicate(),
                IngestOutcome::Challenge => {
                    tracing::info!(%pool_id, %identifier, "answered Feishu's URL check")
                }
            }
            Ok((
                answer.status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                answer.body,
            )
                .into_response())
        }
        Err(e) => Err((e.reason(), rejection(&e))),
    }
}

fn rejection(e: &IngestError) -> HttpError {
    let error = HttpError::new(e.status(), e.reason(), e.to_string());
    match e {
        IngestError::UnknownPool(_) => error.with_fix(
            "the user pool id in the URL is not known here: copy the callback URL from the connection page",
        ),
        IngestError::Store(_) | IngestError::WriterGone => {
            error.with_fix("nothing was stored; Feishu pushes the event again")
        }
        _ => error,
    }
}

fn too_large() -> Rejection {
    (
        "body_too_large",
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the request body is larger than {} bytes; Feishu events are a few KiB",
                EVENT_BODY_LIMIT
            ),
        ),
    )
}

/// Reads the body, refusing more than [`EVENT_BODY_LIMIT`] bytes (by `Content-Length` at once,
/// or while streaming a chunked body).
async fn read_limited(headers: &HeaderMap, body: Body) -> Result<Bytes, Rejection> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > EVENT_BODY_LIMIT as u64) {
        return Err(too_large());
    }
    let mut buf = BytesMut::with_capacity(
        declared
            .map_or(8 * 1024, |n| n as usize)
            .min(EVENT_BODY_LIMIT),
    );
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            (
                "body_unreadable",
                HttpError::new(
                    StatusCode::BAD_REQUEST,
                    "body_unreadable",
                    format!("the request body could not be read: {e}"),
                ),
            )
        })?;
        if buf.len() + chunk.len() > EVENT_BODY_LIMIT {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
