//! The web console under `/console` (owned by the console helper).
use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
