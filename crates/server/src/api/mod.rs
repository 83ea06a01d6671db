//! The admin REST API under `/api/v1` (owned by the API helper).
use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
