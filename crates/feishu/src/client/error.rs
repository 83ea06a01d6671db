//! Typed client errors. Each message says what happened, where (endpoint, Feishu code and
//! log id), and what an admin has to change; [`FeishuError::fix`] returns the fix alone.

use std::fmt;
use std::sync::Arc;

use crate::ids::ROOT_DEPARTMENT_ID;
use crate::model::ApiErrorDetail;

/// Codes with which the token endpoint rejects the App ID / App Secret (protocol §1.2).
pub const BAD_CREDENTIAL_CODES: [i64; 4] = [10003, 10014, 10015, 99991543];
/// Codes after which the tenant token is evicted and the request retried once (§3.2).
pub const TOKEN_INVALID_CODES: [i64; 6] =
    [99991661, 99991663, 99991664, 99991665, 99991671, 99991668];
/// Throttled (§3.3).
pub const CODE_RATE_LIMITED: i64 = 99991400;
/// Contact v3 "internal error": retry later.
pub const CODE_INTERNAL_RETRY: i64 = 40003;
pub const CODE_NO_DEPT_AUTHORITY: i64 = 40004;
pub const CODE_NO_PARENT_DEPT_AUTHORITY: i64 = 40014;
pub const CODE_PAGE_SIZE_INVALID: i64 = 40011;
pub const CODE_PAGE_TOKEN_INVALID: i64 = 40012;
pub const CODE_NO_USER_AUTHORITY: i64 = 41050;
pub const CODE_NO_GROUP_AUTHORITY: i64 = 42009;
pub const CODE_BIG_DEPT_NO_RECURSION: i64 = 43010;
pub const CODE_SCOPE_REQUIRED: i64 = 99991672;
pub const CODE_MONTHLY_QUOTA: i64 = 99991403;
pub const CODE_IP_DENIED: i64 = 99991401;
pub const APP_UNAVAILABLE_CODES: [i64; 2] = [99991662, 99991673];
/// The object asked for does not exist, or its id is not one this app can use (open_ids
/// differ per app): 41012 user, 40015 department, 42002 user group (protocol §3.2).
pub const NOT_FOUND_CODES: [i64; 3] = [41012, 40015, 42002];
/// "These … ids not existed" for lists of open_ids, user_ids or department ids.
pub const IDS_NOT_FOUND_CODES: std::ops::RangeInclusive<i64> = 99992351..=99992381;
/// Feishu refused a parameter orgsync sent: 40001 param error, 41074 invalid member_type,
/// 99992402 field validation failed, 10003 invalid parameter (off the token endpoint).
pub const PARAMETER_CODES: [i64; 4] = [40001, 41074, 99992402, 10003];

const FIX_CREDENTIALS: &str = "copy the App ID and App Secret again from the Feishu developer \
    console (the app's \"Credentials & Basic Info\" page) into the connection";
const FIX_ROOT_SCOPE: &str = "set the app's availability to all employees and its contact \
    scope (Permissions & Scopes → data permissions / 通讯录权限范围) to all members, then \
    create and publish a new app version and have it approved";
const FIX_DEPARTMENT_SCOPE: &str = "add the department to the app's contact scope \
    (Permissions & Scopes → data permissions / 通讯录权限范围) and publish a new app version, \
    or leave the department out of the sync";
const FIX_USER_SCOPE: &str = "add the user (or one of their departments) to the app's contact \
    scope (Permissions & Scopes → data permissions / 通讯录权限范围) and publish a new app version";
const FIX_GROUP_SCOPE: &str = "add the user group to the app's contact scope (Permissions & \
    Scopes → data permissions / 通讯录权限范围) and publish a new app version";
const FIX_PERMISSION: &str = "grant one of them under Permissions & Scopes (权限管理) in the \
    Feishu developer console, then create and publish a new app version";
const FIX_QUOTA: &str = "the tenant's Feishu edition has no API calls left this month; wait \
    for the next month, raise the quota (upgrade the edition) or sync less often";
const FIX_APP_UNAVAILABLE: &str = "enable the app and install it in the tenant: publish a \
    version and have a tenant admin approve it in the Feishu admin console";
const FIX_IP_DENIED: &str = "add orgsync's outbound IP to the app's IP allow-list (Security \
    Settings → IP allowlist) in the Feishu developer console, or remove the allow-list";
const FIX_PAGING: &str = "this is a client or server bug; retry the sync, and report it with \
    the log id if it persists";
const FIX_RECURSION: &str = "none needed: walk the department tree level by level \
    (fetch_child=false) instead";
const FIX_TOKEN: &str = "check that the App ID and App Secret belong to a self-built app of \
    this tenant; if they do, retry later or report the log id to Feishu support";
const FIX_RATE_LIMITED: &str = "lower the pacing limits, or run the sync when other \
    integrations of this app are idle";
const FIX_TRANSPORT: &str = "check the base URL and the network, proxy and firewall between \
    orgsync and Feishu";
const FIX_NOT_FOUND: &str = "nothing to retry: the object no longer exists in Feishu, or the \
    id is not one this app can use (open_ids differ per app); the next reconciliation brings \
    the directory in line, or start one now";
const FIX_PARAMETER: &str = "Feishu refuses a parameter orgsync sent; this is a bug in orgsync \
    or a change of the Feishu API: report it with the log id";
const FIX_DECODE: &str = "check that the connection's base URL points at the Feishu Open API \
    (https://open.feishu.cn or https://open.larksuite.com)";

/// Why a request never got an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    Timeout,
    Connect,
    /// Sending or reading failed mid-way (e.g. the connection was closed).
    Io,
    Other,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timed out",
            Self::Connect => "could not connect",
            Self::Io => "connection failed",
            Self::Other => "request failed",
        })
    }
}

/// An error of the Feishu client.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FeishuError {
    /// The configuration cannot work (bad base URL, empty credentials, zero limits).
    #[error("invalid Feishu connection settings: {0}")]
    Config(String),

    /// The token endpoint refused the App ID / App Secret.
    #[error(
        "Feishu rejected the App ID or App Secret (code {code}: {msg}){}; {FIX_CREDENTIALS}",
        log(.log_id)
    )]
    BadCredentials {
        code: i64,
        msg: String,
        log_id: Option<String>,
    },

    /// 40004 / 40014 on the root department "0": the contact scope is not all members.
    #[error(
        "failed to get Feishu organization departments: the app may not read the whole \
         organization (code {code}: {msg}, {endpoint}){}. To fix: {FIX_ROOT_SCOPE}",
        log(.log_id)
    )]
    RootDepartmentOutOfScope {
        code: i64,
        msg: String,
        endpoint: String,
        log_id: Option<String>,
    },

    /// 40004 (the department) or 40014 (its parent) outside the app's contact scope.
    #[error(
        "{} (code {code}: {msg}, {endpoint}){}; {FIX_DEPARTMENT_SCOPE}",
        department_subject(.department_id, *.code),
        log(.log_id)
    )]
    DepartmentOutOfScope {
        department_id: Option<String>,
        code: i64,
        msg: String,
        endpoint: String,
        log_id: Option<String>,
    },

    /// 41050: the user is outside the app's contact scope (not necessarily gone).
    #[error(
        "Feishu user {} is outside the app's contact scope (code {code}: {msg}, {endpoint}){}; \
         {FIX_USER_SCOPE}",
        or_unknown(.user_id),
        log(.log_id)
    )]
    UserOutOfScope {
        user_id: Option<String>,
        code: i64,
        msg: String,
        endpoint: String,
        log_id: Option<String>,
    },

    /// 42009: the user group is outside the app's contact scope.
    #[error(
        "Feishu user group {} is outside the app's contact scope (code {code}: {msg}, \
         {endpoint}){}; {FIX_GROUP_SCOPE}",
        or_unknown(.group_id),
        log(.log_id)
    )]
    GroupOutOfScope {
        group_id: Option<String>,
        code: i64,
        msg: String,
        endpoint: String,
        log_id: Option<String>,
    },

    /// 99991672: an API permission (scope) is not granted or its version not published.
    #[error(
        "the Feishu app lacks the API permission for {endpoint}: one of [{}] is required \
         (code {code}: {msg}){}; {FIX_PERMISSION}",
        .scopes.join(", "),
        log(.log_id)
    )]
    MissingPermission {
        scopes: Vec<String>,
        code: i64,
        msg: String,
        endpoint: String,
        log_id: Option<String>,
    },

    /// 99991403: the monthly API call quota of the tenant's edition is used up.
    #[error(
        "Feishu refused {endpoint}: this month's API call quota of the tenant's edition is \
         exceeded (code {code}: {msg}){}; {FIX_QUOTA}",
        log(.log_id)
    )]
    QuotaExceeded {
        code: i64,
        msg: String,
        endpoint: String,
        log_id: Option<String>,
    },

    /// 99991662 / 99991673: the app is disabled or not installed in the tenant.
    #[error(
        "the Feishu app is disabled or not installed in this tenant (code {code}: {msg}, \
         {endpoint}){}; {FIX_APP_UNAVAILABLE}",
        log(.log_id)
    )]
    AppUnavailable {
        code: i64,
        msg: String,
        endpoint: String,
        log_id: Option<String>,
    },

    /// 99991401: the app's IP allow-list does not contain orgsync's address.
    #[error(
        "Feishu refused requests from IP {} by the app's IP allow-list (code {code}: {msg}, \
         {endpoint}){}; {FIX_IP_DENIED}",
        or_unknown(.ip),
        log(.log_id)
    )]
    IpDenied {
        ip: Option<String>,
        code: i64,
        msg: String,
        endpoint: String,
        log_id: Option<String>,
    },

    /// 40011 / 40012: Feishu refused the page size or page token.
    #[error(
        "Feishu refused the paging parameters of {endpoint} (code {code}: {msg}){}; {FIX_PAGING}",
        log(.log_id)
    )]
    InvalidPageRequest {
        code: i64,
        msg: String,
        endpoint: String,
        log_id: Option<String>,
    },

    /// 43010: `fetch_child=true` refused for a very large department; walk it breadth-first.
    #[error(
        "Feishu refuses to list all descendants of the large department {} at once (code \
         {code}: {msg}, {endpoint}){}; {FIX_RECURSION}",
        or_unknown(.department_id),
        log(.log_id)
    )]
    RecursionRefused {
        department_id: Option<String>,
        code: i64,
        msg: String,
        endpoint: String,
        log_id: Option<String>,
    },

    /// A token-invalid code again right after fetching a fresh tenant token.
    #[error(
        "Feishu rejected a freshly fetched tenant access token (code {code}: {msg}, \
         {endpoint}){}; {FIX_TOKEN}",
        log(.log_id)
    )]
    TokenRejected {
        code: i64,
        msg: String,
        endpoint: String,
        log_id: Option<String>,
    },

    /// Any other non-zero `code`.
    #[error("Feishu API error on {endpoint} (HTTP {http_status}, code {code}: {msg}){}", log(.log_id))]
    Api {
        code: i64,
        msg: String,
        endpoint: String,
        http_status: u16,
        log_id: Option<String>,
    },

    /// Throttling (HTTP 429 / 99991400) outlasted the allowed number of waits.
    #[error(
        "Feishu kept throttling {endpoint} (HTTP 429 / code 99991400) after {waits} waits{}; \
         {FIX_RATE_LIMITED}",
        log(.log_id)
    )]
    RateLimited {
        endpoint: String,
        waits: usize,
        log_id: Option<String>,
    },

    /// No answer: connect error, timeout, broken connection.
    #[error("request to Feishu {endpoint} {kind}: {source}; {FIX_TRANSPORT}")]
    Transport {
        endpoint: String,
        kind: TransportKind,
        #[source]
        source: Arc<reqwest::Error>,
    },

    /// An answer that is not the JSON envelope we expect (e.g. a plain-text 404).
    #[error(
        "unexpected answer from Feishu {endpoint} (HTTP {http_status}): {detail}{}; {FIX_DECODE}",
        log(.log_id)
    )]
    Decode {
        endpoint: String,
        http_status: u16,
        detail: String,
        log_id: Option<String>,
    },

    /// A caller passed an unusable argument (e.g. an empty id).
    #[error("invalid request to Feishu {endpoint}: {detail}")]
    InvalidArgument { endpoint: String, detail: String },

    /// The server broke the paging contract (has_more without a new page token).
    #[error("Feishu paging of {endpoint} is broken: {detail}; {FIX_PAGING}")]
    Paging { endpoint: String, detail: String },
}

fn log(log_id: &Option<String>) -> String {
    log_id
        .as_deref()
        .map(|id| format!(" [log id {id}]"))
        .unwrap_or_default()
}

fn or_unknown(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("(unknown)")
}

fn department_subject(department_id: &Option<String>, code: i64) -> String {
    let id = or_unknown(department_id);
    if code == CODE_NO_PARENT_DEPT_AUTHORITY {
        format!("the parent of Feishu department {id} is outside the app's contact scope")
    } else {
        format!("Feishu department {id} is outside the app's contact scope")
    }
}

impl FeishuError {
    /// The Feishu `code`, when Feishu answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::BadCredentials { code, .. }
            | Self::RootDepartmentOutOfScope { code, .. }
            | Self::DepartmentOutOfScope { code, .. }
            | Self::UserOutOfScope { code, .. }
            | Self::GroupOutOfScope { code, .. }
            | Self::MissingPermission { code, .. }
            | Self::QuotaExceeded { code, .. }
            | Self::AppUnavailable { code, .. }
            | Self::IpDenied { code, .. }
            | Self::InvalidPageRequest { code, .. }
            | Self::RecursionRefused { code, .. }
            | Self::TokenRejected { code, .. }
            | Self::Api { code, .. } => Some(*code),
            Self::RateLimited { .. } => Some(CODE_RATE_LIMITED),
            Self::Config(_)
            | Self::Transport { .. }
            | Self::Decode { .. }
            | Self::Paging { .. }
            | Self::InvalidArgument { .. } => None,
        }
    }

    /// Feishu's request log id (`X-Tt-Logid`, `X-Request-Id` or `error.log_id`), for support.
    pub fn log_id(&self) -> Option<&str> {
        match self {
            Self::BadCredentials { log_id, .. }
            | Self::RootDepartmentOutOfScope { log_id, .. }
            | Self::DepartmentOutOfScope { log_id, .. }
            | Self::UserOutOfScope { log_id, .. }
            | Self::GroupOutOfScope { log_id, .. }
            | Self::MissingPermission { log_id, .. }
            | Self::QuotaExceeded { log_id, .. }
            | Self::AppUnavailable { log_id, .. }
            | Self::IpDenied { log_id, .. }
            | Self::InvalidPageRequest { log_id, .. }
            | Self::RecursionRefused { log_id, .. }
            | Self::TokenRejected { log_id, .. }
            | Self::Api { log_id, .. }
            | Self::RateLimited { log_id, .. }
            | Self::Decode { log_id, .. } => log_id.as_deref(),
            Self::Config(_)
            | Self::Transport { .. }
            | Self::Paging { .. }
            | Self::InvalidArgument { .. } => None,
        }
    }

    /// The endpoint (path template, e.g. `contact/v3/users/:user_id`) that failed.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            Self::RootDepartmentOutOfScope { endpoint, .. }
            | Self::DepartmentOutOfScope { endpoint, .. }
            | Self::UserOutOfScope { endpoint, .. }
            | Self::GroupOutOfScope { endpoint, .. }
            | Self::MissingPermission { endpoint, .. }
            | Self::QuotaExceeded { endpoint, .. }
            | Self::AppUnavailable { endpoint, .. }
            | Self::IpDenied { endpoint, .. }
            | Self::InvalidPageRequest { endpoint, .. }
            | Self::RecursionRefused { endpoint, .. }
            | Self::TokenRejected { endpoint, .. }
            | Self::Api { endpoint, .. }
            | Self::RateLimited { endpoint, .. }
            | Self::Transport { endpoint, .. }
            | Self::Decode { endpoint, .. }
            | Self::Paging { endpoint, .. }
            | Self::InvalidArgument { endpoint, .. } => Some(endpoint),
            Self::BadCredentials { .. } => Some(super::transport::TOKEN_ENDPOINT),
            Self::Config(_) => None,
        }
    }

    /// Whether trying the same request again later may succeed (transient failures and
    /// throttling). The client has already retried these within its budget.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { kind, .. } => *kind != TransportKind::Other,
            Self::RateLimited { .. } => true,
            Self::Api {
                code, http_status, ..
            } => *code == CODE_INTERNAL_RETRY || *http_status >= 500,
            Self::Decode { http_status, .. } => *http_status >= 500 || *http_status == 429,
            _ => false,
        }
    }

    /// Whether asking again cannot succeed until something else changes: the object (it does
    /// not exist, or is outside the app's contact scope), the app's set-up in Feishu
    /// (credentials, API permissions, availability, IP allow-list, quota), the connection's
    /// settings, or orgsync (a parameter Feishu refuses). [`FeishuError::fix`] says what.
    ///
    /// Neither this nor [`FeishuError::is_retryable`] holds for codes orgsync does not know:
    /// whether they pass is unknown.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Config(_)
            | Self::BadCredentials { .. }
            | Self::RootDepartmentOutOfScope { .. }
            | Self::DepartmentOutOfScope { .. }
            | Self::UserOutOfScope { .. }
            | Self::GroupOutOfScope { .. }
            | Self::MissingPermission { .. }
            | Self::QuotaExceeded { .. }
            | Self::AppUnavailable { .. }
            | Self::IpDenied { .. }
            | Self::TokenRejected { .. }
            | Self::InvalidArgument { .. } => true,
            Self::Api { code, .. } => self.is_not_found() || PARAMETER_CODES.contains(code),
            Self::InvalidPageRequest { .. }
            | Self::RecursionRefused { .. }
            | Self::RateLimited { .. }
            | Self::Transport { .. }
            | Self::Decode { .. }
            | Self::Paging { .. } => false,
        }
    }

    /// Whether Feishu said the object does not exist (41012, 40015, 42002, 99992351–99992381)
    /// — or that its id is not one this app can use.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { code, .. }
            if NOT_FOUND_CODES.contains(code) || IDS_NOT_FOUND_CODES.contains(code))
    }

    /// What an admin has to do about it, when there is something to do.
    pub fn fix(&self) -> Option<&'static str> {
        Some(match self {
            Self::BadCredentials { .. } => FIX_CREDENTIALS,
            Self::RootDepartmentOutOfScope { .. } => FIX_ROOT_SCOPE,
            Self::DepartmentOutOfScope { .. } => FIX_DEPARTMENT_SCOPE,
            Self::UserOutOfScope { .. } => FIX_USER_SCOPE,
            Self::GroupOutOfScope { .. } => FIX_GROUP_SCOPE,
            Self::MissingPermission { .. } => FIX_PERMISSION,
            Self::QuotaExceeded { .. } => FIX_QUOTA,
            Self::AppUnavailable { .. } => FIX_APP_UNAVAILABLE,
            Self::IpDenied { .. } => FIX_IP_DENIED,
            Self::InvalidPageRequest { .. } | Self::Paging { .. } => FIX_PAGING,
            Self::RecursionRefused { .. } => FIX_RECURSION,
            Self::TokenRejected { .. } => FIX_TOKEN,
            Self::RateLimited { .. } => FIX_RATE_LIMITED,
            Self::Transport { .. } => FIX_TRANSPORT,
            Self::Decode { .. } => FIX_DECODE,
            Self::Api { .. } if self.is_not_found() => FIX_NOT_FOUND,
            Self::Api { code, .. } if PARAMETER_CODES.contains(code) => FIX_PARAMETER,
            Self::Config(_) | Self::Api { .. } | Self::InvalidArgument { .. } => return None,
        })
    }

    /// Whether Feishu said the object is outside the app's contact scope (40004, 40014,
    /// 41050, 42009, root included) — "not visible", which is not "deleted".
    pub fn is_out_of_scope(&self) -> bool {
        matches!(
            self,
            Self::RootDepartmentOutOfScope { .. }
                | Self::DepartmentOutOfScope { .. }
                | Self::UserOutOfScope { .. }
                | Self::GroupOutOfScope { .. }
        )
    }
}

/// What a request was about, so an error can name the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    None,
    Department(String),
    User(String),
    Group(String),
}

/// A non-zero `code` with its context, before it becomes a [`FeishuError`].
pub(crate) struct ApiFailure<'a> {
    pub code: i64,
    pub msg: String,
    pub endpoint: &'static str,
    pub subject: &'a Subject,
    pub http_status: u16,
    pub log_id: Option<String>,
    pub detail: Option<ApiErrorDetail>,
    pub token_endpoint: bool,
}

impl ApiFailure<'_> {
    pub(crate) fn into_error(self) -> FeishuError {
        let Self {
            code,
            msg,
            endpoint,
            subject,
            http_status,
            log_id,
            detail,
            token_endpoint,
        } = self;
        let endpoint_s = endpoint.to_owned();
        let department_id = match subject {
            Subject::Department(id) => Some(id.clone()),
            _ => None,
        };
        match code {
            // 10003 is a generic "invalid parameter" elsewhere; only the token endpoint
            // means credentials by it.
            c if token_endpoint && BAD_CREDENTIAL_CODES.contains(&c) => {
                FeishuError::BadCredentials { code, msg, log_id }
            }
            CODE_NO_DEPT_AUTHORITY | CODE_NO_PARENT_DEPT_AUTHORITY
                if department_id.as_deref() == Some(ROOT_DEPARTMENT_ID) =>
            {
                FeishuError::RootDepartmentOutOfScope {
                    code,
                    msg,
                    endpoint: endpoint_s,
                    log_id,
                }
            }
            CODE_NO_DEPT_AUTHORITY | CODE_NO_PARENT_DEPT_AUTHORITY => {
                FeishuError::DepartmentOutOfScope {
                    department_id,
                    code,
                    msg,
                    endpoint: endpoint_s,
                    log_id,
                }
            }
            CODE_NO_USER_AUTHORITY => FeishuError::UserOutOfScope {
                user_id: match subject {
                    Subject::User(id) => Some(id.clone()),
                    _ => None,
                },
                code,
                msg,
                endpoint: endpoint_s,
                log_id,
            },
            CODE_NO_GROUP_AUTHORITY => FeishuError::GroupOutOfScope {
                group_id: match subject {
                    Subject::Group(id) => Some(id.clone()),
                    _ => None,
                },
                code,
                msg,
                endpoint: endpoint_s,
                log_id,
            },
            CODE_SCOPE_REQUIRED => FeishuError::MissingPermission {
                scopes: missing_scopes(detail.as_ref(), &msg),
                code,
                msg,
                endpoint: endpoint_s,
                log_id,
            },
            CODE_MONTHLY_QUOTA => FeishuError::QuotaExceeded {
                code,
                msg,
                endpoint: endpoint_s,
                log_id,
            },
            c if APP_UNAVAILABLE_CODES.contains(&c) => FeishuError::AppUnavailable {
                code,
                msg,
                endpoint: endpoint_s,
                log_id,
            },
            CODE_IP_DENIED => FeishuError::IpDenied {
                ip: denied_ip(&msg),
                code,
                msg,
                endpoint: endpoint_s,
                log_id,
            },
            CODE_PAGE_SIZE_INVALID | CODE_PAGE_TOKEN_INVALID => FeishuError::InvalidPageRequest {
                code,
                msg,
                endpoint: endpoint_s,
                log_id,
            },
            CODE_BIG_DEPT_NO_RECURSION => FeishuError::RecursionRefused {
                department_id,
                code,
                msg,
                endpoint: endpoint_s,
                log_id,
            },
            c if TOKEN_INVALID_CODES.contains(&c) => FeishuError::TokenRejected {
                code,
                msg,
                endpoint: endpoint_s,
                log_id,
            },
            _ => FeishuError::Api {
                code,
                msg,
                endpoint: endpoint_s,
                http_status,
                log_id,
            },
        }
    }
}

/// The scope names of `error.permission_violations[].subject`; without them, the
/// bracketed list Feishu puts in `msg` ("… is required: [a, b]").
fn missing_scopes(detail: Option<&ApiErrorDetail>, msg: &str) -> Vec<String> {
    let mut scopes: Vec<String> = detail
        .and_then(|d| d.permission_violations.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| v.subject.clone())
        .filter(|s| !s.trim().is_empty())
        .collect();
    if scopes.is_empty()
        && let Some(start) = msg.find('[')
        && let Some(len) = msg[start + 1..].find(']')
    {
        scopes = msg[start + 1..start + 1 + len]
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
    }
    scopes.dedup();
    scopes
}

/// `ip 203.0.113.7 is denied by app setting` → `203.0.113.7`.
fn denied_ip(msg: &str) -> Option<String> {
    let rest = msg.trim().strip_prefix("ip ")?;
    let ip = rest.split_whitespace().next()?;
    (!ip.is_empty()).then(|| ip.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PermissionViolation;

    fn failure(code: i64, msg: &str, subject: &Subject) -> FeishuError {
        ApiFailure {
            code,
            msg: msg.to_owned(),
            endpoint: "contact/v3/departments/:department_id/children",
            subject,
            http_status: 400,
            log_id: Some("202401010000".to_owned()),
            detail: None,
            token_endpoint: false,
        }
        .into_error()
    }

    #[test]
    fn root_and_other_departments_get_different_advice() {
        let root = failure(
            40004,
            "no dept authority error",
            &Subject::Department("0".into()),
        );
        let text = root.to_string();
        assert!(
            text.starts_with("failed to get Feishu organization departments"),
            "{text}"
        );
        assert!(text.contains("all members") && text.contains("publish a new app version"));
        assert!(text.contains("202401010000"));
        assert_eq!(root.code(), Some(40004));
        assert!(root.is_out_of_scope());

        let other = failure(
            40014,
            "no parent dept authority error",
            &Subject::Department("od-1".into()),
        );
        assert!(
            other
                .to_string()
                .contains("the parent of Feishu department od-1"),
            "{other}"
        );
    }

    #[test]
    fn scopes_come_from_violations_or_the_message() {
        let from_msg = failure(
            99991672,
            "Access denied. One of the following scopes is required: [contact:contact.base:readonly, contact:contact:readonly_as_app].",
            &Subject::None,
        );
        assert!(
            matches!(&from_msg, FeishuError::MissingPermission { scopes, .. } if scopes.len() == 2),
            "{from_msg:?}"
        );
        let detail = ApiErrorDetail {
            permission_violations: Some(vec![PermissionViolation {
                subject: Some("contact:user.base:readonly".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(
            missing_scopes(Some(&detail), "Access denied"),
            vec!["contact:user.base:readonly"]
        );
    }

    #[test]
    fn permanent_errors_are_told_from_transient_and_unknown_ones() {
        let none = Subject::None;
        // Cannot pass by asking again: the object, the app's set-up or a parameter must change.
        for code in [
            41012, 40015, 42002, 99992351, 40001, 41074, 10003, 99991672, 41050,
        ] {
            let e = failure(code, "refused", &none);
            assert!(e.is_permanent(), "{code}: {e}");
            assert!(!e.is_retryable(), "{code}");
            assert!(e.fix().is_some(), "{code} has no fix: {e}");
        }
        let user = failure(
            41012,
            "user id invalid error",
            &Subject::User("ou_x".into()),
        );
        assert!(user.fix().is_some_and(|f| f.contains("reconciliation")));
        assert!(user.is_not_found() && failure(42002, "invalid group_id", &none).is_not_found());
        assert!(!failure(40001, "param error", &none).is_not_found());
        // Later, by itself.
        for code in [40003, 99991400] {
            let e = failure(code, "busy", &none);
            assert!(!e.is_permanent(), "{code}");
        }
        assert!(failure(40003, "internal error", &none).is_retryable());
        // A code orgsync does not know is neither: retried within a budget.
        let unknown = failure(49999, "something new", &none);
        assert!(!unknown.is_permanent() && !unknown.is_retryable());
        assert!(unknown.fix().is_none());
    }

    #[test]
    fn ip_and_retryability() {
        let ip = failure(
            99991401,
            "ip 203.0.113.7 is denied by app setting",
            &Subject::None,
        );
        assert!(ip.to_string().contains("203.0.113.7"));
        assert!(!ip.is_retryable());
        assert!(failure(40003, "internal error", &Subject::None).is_retryable());
        // 10003 outside the token endpoint is a parameter error, not credentials.
        assert!(matches!(
            failure(10003, "invalid param", &Subject::None),
            FeishuError::Api { .. }
        ));
    }
}
