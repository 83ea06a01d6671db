//! The Feishu event endpoint (owned by the serve helper).
use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
