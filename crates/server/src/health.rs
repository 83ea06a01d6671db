//! `/healthz`, `/readyz`, `/metrics` (owned by the serve helper).
use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
