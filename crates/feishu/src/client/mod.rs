//! The async client of the Feishu / Lark Contact v3 read API.
//!
//! - [`config`]: base URL, credentials, timeouts, pacing, retries, page sizes.
//! - `token`: the tenant access token cache (single-flight refresh).
//! - `pacing`: per-endpoint rate limiting below Feishu's 50/s and 1000/min.
//! - `transport`: one request with token refresh, throttling waits and retries.
//! - [`paging`]: page and item streams that cannot loop on a broken server.
//! - `endpoints`: one method per endpoint of protocol §3.1.
//! - [`error`]: [`FeishuError`], with a fix-it hint per failure.
//!
//! ```no_run
//! # async fn demo() -> Result<(), feishu::client::FeishuError> {
//! use futures::TryStreamExt;
//! use feishu::client::{ClientConfig, FeishuClient};
//!
//! let client = FeishuClient::new(ClientConfig::feishu("cli_xxx", "secret"))?;
//! let mut users = client.users_by_department("0");
//! while let Some(user) = users.try_next().await? {
//!     println!("{:?}", user.open_id);
//! }
//! # Ok(()) }
//! ```

pub mod config;
mod endpoints;
pub mod error;
mod pacing;
pub mod paging;
mod token;
mod transport;

use std::fmt;
use std::sync::Arc;

use url::Url;

pub use config::{BaseUrl, ClientConfig, PacingConfig, PageSizes, RetryConfig};
pub use endpoints::{BATCH_LIMIT, ContactScopes};
pub use error::{FeishuError, TransportKind};
pub use paging::{ItemStream, Page, PageStream};

use crate::ids::IdTypes;
use pacing::Pacer;
use token::TokenCache;
use transport::Inner;

/// A Feishu Open API client for one app (one connection). Cheap to clone: clones share
/// the HTTP connection pool, the token cache and the pacing limiters.
#[derive(Clone)]
pub struct FeishuClient {
    inner: Arc<Inner>,
    page_sizes: Arc<PageSizes>,
    id_types: IdTypes,
}

impl FeishuClient {
    pub fn new(config: ClientConfig) -> Result<Self, FeishuError> {
        let base = config.validate()?;
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            // A redirect would carry the App Secret (token body) to another host; an
            // unexpected 3xx surfaces as a decode error naming the status instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("orgsync-feishu/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FeishuError::Config(format!("cannot create the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                app_id: config.app_id,
                app_secret: config.app_secret,
                tokens: TokenCache::new(config.token_safety_margin),
                pacer: Pacer::new(&config.pacing),
                retry: config.retry,
                throttled: Default::default(),
            }),
            page_sizes: Arc::new(config.page_sizes),
            id_types: config.id_types,
        })
    }

    /// How many answers said "throttled" (HTTP 429 or code 99991400) since this client (or
    /// the one it was cloned from) was made; each was waited out and retried.
    pub fn throttled(&self) -> u64 {
        self.inner
            .throttled
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The validated base URL (e.g. `https://open.feishu.cn/`).
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    pub fn app_id(&self) -> &str {
        &self.inner.app_id
    }

    /// The id types sent with every request of this handle.
    pub fn id_types(&self) -> IdTypes {
        self.id_types
    }

    /// A handle that asks for other id types, sharing token cache, pacing and connections
    /// (e.g. `user_id` lookups once that permission is known to be granted).
    pub fn with_id_types(&self, id_types: IdTypes) -> Self {
        Self {
            id_types,
            ..self.clone()
        }
    }

    /// A valid tenant access token (cached until `expire − margin`). Never log it.
    pub async fn tenant_token(&self) -> Result<String, FeishuError> {
        Ok(self.inner.tenant_token().await?.to_string())
    }

    /// Drops the cached token; the next request fetches a new one.
    pub fn invalidate_token(&self) {
        self.inner.tokens.invalidate();
    }

    /// Asks Feishu for a token now, bypassing the cache: the console's "test credentials".
    /// Bad credentials come back as [`FeishuError::BadCredentials`].
    pub async fn check_credentials(&self) -> Result<(), FeishuError> {
        self.inner.refresh_token().await.map(drop)
    }
}

impl fmt::Debug for FeishuClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeishuClient")
            .field("base_url", &self.inner.base.as_str())
            .field("app_id", &self.inner.app_id)
            .field("id_types", &self.id_types)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn client_is_shareable_and_hides_the_secret() {
        assert_send_sync::<FeishuClient>();
        let client = FeishuClient::new(ClientConfig::lark("cli_a", "top-secret")).unwrap();
        let shown = format!("{client:?}");
        assert!(shown.contains("open.larksuite.com") && !shown.contains("top-secret"));
    }
}
