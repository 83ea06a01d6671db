//! Client configuration: where Feishu lives, the app credentials, and the knobs of pacing,
//! retries and paging. Every knob has a default that is safe against real Feishu.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

use super::error::FeishuError;
use crate::ids::IdTypes;

/// The Open API host. Feishu (mainland China) and Lark (international) share every path;
/// anything else (the emulator, a proxy) is a custom URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseUrl {
    /// `https://open.feishu.cn`
    Feishu,
    /// `https://open.larksuite.com`
    Lark,
    /// Any `http`/`https` URL, e.g. `http://127.0.0.1:8089` for the emulator. A path prefix
    /// (a reverse proxy) is kept; a trailing slash is tolerated.
    Custom(Url),
}

impl BaseUrl {
    pub const FEISHU: &'static str = "https://open.feishu.cn";
    pub const LARK: &'static str = "https://open.larksuite.com";

    /// Parses `feishu`, `lark` or a URL, and validates it.
    pub fn parse(raw: &str) -> Result<Self, FeishuError> {
        let raw = raw.trim();
        match raw.to_ascii_lowercase().as_str() {
            "feishu" => return Ok(Self::Feishu),
            "lark" | "larksuite" => return Ok(Self::Lark),
            _ => {}
        }
        let url = Url::parse(raw).map_err(|e| {
            FeishuError::Config(format!(
                "base URL {raw:?} is not a valid URL ({e}); use {} (Feishu), {} (Lark) or \
                 http(s)://host:port",
                Self::FEISHU,
                Self::LARK
            ))
        })?;
        let base = Self::Custom(url);
        base.url()?;
        Ok(base)
    }

    /// The validated URL, without a trailing slash in its path.
    pub fn url(&self) -> Result<Url, FeishuError> {
        let mut url = match self {
            Self::Feishu => Url::parse(Self::FEISHU),
            Self::Lark => Url::parse(Self::LARK),
            Self::Custom(url) => Ok(url.clone()),
        }
        .map_err(|e| FeishuError::Config(format!("invalid base URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FeishuError::Config(format!(
                "base URL {url} must use http or https, not {:?}",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(FeishuError::Config(format!("base URL {url} has no host")));
        }
        if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
            return Err(FeishuError::Config(format!(
                "base URL {url} must not carry a query or fragment"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FeishuError::Config(
                "base URL must not carry a user name or password".to_owned(),
            ));
        }
        let trimmed = url.path().trim_end_matches('/').to_owned();
        url.set_path(&trimmed);
        Ok(url)
    }
}

impl FromStr for BaseUrl {
    type Err = FeishuError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Feishu => f.write_str(Self::FEISHU),
            Self::Lark => f.write_str(Self::LARK),
            Self::Custom(url) => f.write_str(url.as_str().trim_end_matches('/')),
        }
    }
}

/// Per-endpoint pacing. Feishu throttles each contact endpoint at 50 req/s *and*
/// 1000 req/min per app and tenant; the defaults are those limits. The pacer's burst can put
/// a window slightly over them (see `pacing.rs`): Feishu then answers 429 / 99991400 with
/// `x-ogw-ratelimit-reset`, and the client waits that long and counts it
/// ([`FeishuClient::throttled`](super::FeishuClient::throttled)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacingConfig {
    /// `false` turns pacing off (tests against a local stub).
    pub enabled: bool,
    /// Requests per second per endpoint, spaced evenly (no burst): any 1 s window then
    /// holds at most `per_second + 1` requests.
    pub per_second: u32,
    /// Requests per minute per endpoint. Any 60 s window holds at most
    /// `per_minute + per_second` requests (see `pacing.rs`).
    pub per_minute: u32,
}

impl PacingConfig {
    /// Feishu's published limits per endpoint.
    pub const DEFAULT_PER_SECOND: u32 = 50;
    pub const DEFAULT_PER_MINUTE: u32 = 1000;

    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    pub fn new(per_second: u32, per_minute: u32) -> Self {
        Self {
            enabled: true,
            per_second,
            per_minute,
        }
    }
}

impl Default for PacingConfig {
    fn default() -> Self {
        Self::new(Self::DEFAULT_PER_SECOND, Self::DEFAULT_PER_MINUTE)
    }
}

/// Retries of transient failures and waits on throttling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// Retries after HTTP 5xx, code 40003, connect errors and timeouts (so at most
    /// `1 + max_retries` attempts).
    pub max_retries: usize,
    /// First backoff delay; it doubles per retry up to `max_delay`. Each sleep is jittered
    /// into `[delay/2, delay]` so parallel jobs do not retry in lockstep.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// How many times one request may wait out throttling (HTTP 429 / 99991400) before it
    /// fails with [`FeishuError::RateLimited`].
    pub max_rate_limit_waits: usize,
    /// Cap on one wait taken from `x-ogw-ratelimit-reset` (or from backoff without it).
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 4,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_rate_limit_waits: 5,
            max_rate_limit_wait: Duration::from_secs(60),
        }
    }
}

impl RetryConfig {
    /// No retries and no throttling waits.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            max_rate_limit_waits: 0,
            ..Self::default()
        }
    }
}

/// `page_size` per list endpoint; the defaults are Feishu's maxima (fewest requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSizes {
    /// `contact/v3/scopes`, max 100 (for the three lists together).
    pub scopes: u32,
    /// `departments/:id/children`, max 50.
    pub department_children: u32,
    /// `users/find_by_department`, max 50.
    pub users_by_department: u32,
    /// `group/simplelist`, max 100.
    pub groups: u32,
    /// `group/:id/member/simplelist`, max 100.
    pub group_members: u32,
    /// `group/member_belong`.
    pub group_member_belong: u32,
}

impl Default for PageSizes {
    fn default() -> Self {
        Self {
            scopes: 100,
            department_children: 50,
            users_by_department: 50,
            groups: 100,
            group_members: 100,
            group_member_belong: 100,
        }
    }
}

/// Everything [`super::FeishuClient::new`] needs. `Debug` never shows the App Secret.
#[derive(Clone)]
pub struct ClientConfig {
    pub base_url: BaseUrl,
    /// `cli_…`
    pub app_id: String,
    pub app_secret: String,
    /// The id types sent with every request; see [`super::FeishuClient::with_id_types`].
    pub id_types: IdTypes,
    /// Whole-request timeout (connect + send + read body).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// The token is used until `expire − margin` seconds after it was fetched (never
    /// negative), so a request never starts with a token about to expire.
    pub token_safety_margin: Duration,
    pub pacing: PacingConfig,
    pub retry: RetryConfig,
    pub page_sizes: PageSizes,
}

impl ClientConfig {
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_TOKEN_SAFETY_MARGIN: Duration = Duration::from_secs(300);

    pub fn new(
        base_url: BaseUrl,
        app_id: impl Into<String>,
        app_secret: impl Into<String>,
    ) -> Self {
        Self {
            base_url,
            app_id: app_id.into(),
            app_secret: app_secret.into(),
            id_types: IdTypes::OPEN,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            token_safety_margin: Self::DEFAULT_TOKEN_SAFETY_MARGIN,
            pacing: PacingConfig::default(),
            retry: RetryConfig::default(),
            page_sizes: PageSizes::default(),
        }
    }

    pub fn feishu(app_id: impl Into<String>, app_secret: impl Into<String>) -> Self {
        Self::new(BaseUrl::Feishu, app_id, app_secret)
    }

    pub fn lark(app_id: impl Into<String>, app_secret: impl Into<String>) -> Self {
        Self::new(BaseUrl::Lark, app_id, app_secret)
    }

    /// Checks everything that can be checked without the network.
    pub fn validate(&self) -> Result<Url, FeishuError> {
        let url = self.base_url.url()?;
        if self.app_id.trim().is_empty() {
            return Err(FeishuError::Config(
                "the App ID is empty; copy it from the app's \"Credentials & Basic Info\" page"
                    .to_owned(),
            ));
        }
        if self.app_secret.trim().is_empty() {
            return Err(FeishuError::Config(
                "the App Secret is empty; copy it from the app's \"Credentials & Basic Info\" page"
                    .to_owned(),
            ));
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(FeishuError::Config(
                "request and connect timeouts must be positive".to_owned(),
            ));
        }
        if self.pacing.enabled && (self.pacing.per_second == 0 || self.pacing.per_minute == 0) {
            return Err(FeishuError::Config(
                "pacing limits must be positive (or pacing disabled)".to_owned(),
            ));
        }
        if self.retry.min_delay > self.retry.max_delay {
            return Err(FeishuError::Config(
                "retry min_delay must not exceed max_delay".to_owned(),
            ));
        }
        let p = &self.page_sizes;
        if [
            p.scopes,
            p.department_children,
            p.users_by_department,
            p.groups,
            p.group_members,
            p.group_member_belong,
        ]
        .contains(&0)
        {
            return Err(FeishuError::Config(
                "page sizes must be positive".to_owned(),
            ));
        }
        Ok(url)
    }
}

impl Default for ClientConfig {
    /// Feishu with empty credentials: fill in `app_id` and `app_secret`.
    fn default() -> Self {
        Self::new(BaseUrl::Feishu, "", "")
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("app_id", &self.app_id)
            .field("app_secret", &"<redacted>")
            .field("id_types", &self.id_types)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("token_safety_margin", &self.token_safety_margin)
            .field("pacing", &self.pacing)
            .field("retry", &self.retry)
            .field("page_sizes", &self.page_sizes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_validated_and_trailing_slashes_tolerated() {
        assert_eq!(
            BaseUrl::Feishu.url().unwrap().as_str(),
            "https://open.feishu.cn/"
        );
        assert_eq!(BaseUrl::parse("lark").unwrap(), BaseUrl::Lark);
        let local = BaseUrl::parse("http://127.0.0.1:8089/").unwrap();
        assert_eq!(local.url().unwrap().as_str(), "http://127.0.0.1:8089/");
        let proxied = BaseUrl::parse("https://proxy.example/feishu/").unwrap();
        assert_eq!(proxied.url().unwrap().path(), "/feishu");
        assert_eq!(proxied.to_string(), "https://proxy.example/feishu");
        for bad in [
            "",
            "open.feishu.cn",
            "ftp://open.feishu.cn",
            "https://x/?a=1",
            "https://u:p@x",
        ] {
            assert!(
                matches!(BaseUrl::parse(bad), Err(FeishuError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let cfg = ClientConfig::feishu("cli_a", "very-secret-value");
        let shown = format!("{cfg:?}");
        assert!(shown.contains("cli_a"));
        assert!(!shown.contains("very-secret-value"));
    }

    #[test]
    fn empty_credentials_are_a_config_error() {
        assert!(matches!(
            ClientConfig::default().validate(),
            Err(FeishuError::Config(_))
        ));
        assert!(ClientConfig::lark("cli_a", "s").validate().is_ok());
    }
}
