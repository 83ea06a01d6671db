//! Shared pieces of the console: the page context, errors, paging and formatting.

use askama::Template;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use directory::admin::AdminError;
use directory::model::UserPool;

use super::assets;
use super::session::Session;
use crate::error::HttpError;

/// What every page's layout needs.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// The CSRF token for forms; empty on pages rendered without a session (errors), where
    /// the layout links to the logout page instead of posting.
    pub csrf: String,
    /// Which nav entry is active.
    pub section: &'static str,
    /// The user pool the page is about (nav links for pool pages go there).
    pub pool_id: Option<String>,
    pub pool_name: Option<String>,
    /// A one-line confirmation shown above the page ("Pool created").
    pub notice: Option<String>,
}

impl Ctx {
    pub fn new(session: &Session, section: &'static str) -> Self {
        Self {
            csrf: session.csrf.clone(),
            section,
            ..Self::default()
        }
    }

    pub fn pool(mut self, pool: &UserPool) -> Self {
        self.pool_id = Some(pool.id.to_string());
        self.pool_name = Some(pool.name.clone());
        self
    }

    pub fn notice(mut self, notice: Option<&str>) -> Self {
        self.notice = notice.and_then(notice_text).map(str::to_owned);
        self
    }

    /// A pool page (`tree`, `users`, `groups`, `parked`) of the current pool, or the
    /// redirect that picks one.
    pub fn pool_link(&self, what: &str) -> String {
        match &self.pool_id {
            Some(p) => format!("/console/pools/{p}/{what}"),
            None => format!("/console/go/{what}"),
        }
    }

    pub fn asset(&self, name: &str) -> String {
        assets::url(name)
    }

    /// String equality for templates (`selected` options).
    pub fn is(&self, a: &str, b: &str) -> bool {
        a == b
    }

    pub fn active(&self, section: &str) -> &'static str {
        if self.section == section {
            "active"
        } else {
            ""
        }
    }
}

/// Confirmations passed along a redirect as `?done=…` (fixed texts, never echoed input).
fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "pool_created" => "User pool created.",
        "pool_renamed" => "User pool renamed.",
        "pool_deleted" => "User pool deleted with all its data.",
        "connection_created" => {
            "Connection saved, and its credentials tested right away (below). Next: fix what the test names, then start the import."
        }
        "connection_updated" => "Connection updated.",
        "connection_deleted" => "Connection deleted; the directory objects stay.",
        "approved" => "Deletion approved: the object was soft-deleted.",
        "rejected" => "Deletion rejected: the object stays.",
        "withdrawn" => {
            "Nothing to approve: the object was already deleted by another path (an event or a job); the entry is withdrawn."
        }
        "logged_out" => "You are logged out.",
        "credential_revoked" => "Credential revoked: its next request is refused.",
        "feed_settings_saved" => "Change feed settings saved.",
        "webhook_enabled" => "Webhook endpoint enabled: it resumes from its cursor now.",
        "webhook_disabled" => "Webhook endpoint disabled: nothing is sent until it is enabled.",
        "webhook_deleted" => "Webhook endpoint deleted.",
        "ldap_settings_saved" => {
            "LDAP view settings saved. Connections already bound keep the old settings until they bind again."
        }
        "app_password_revoked" => {
            "App password revoked: the next login with it fails, and a connection bound with it is refused at its next request."
        }
        _ => return None,
    })
}

pub fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// Percent-encodes a query component.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `path?k=v&…` with the empty values left out.
pub fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    let q: Vec<String> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

/// `2025-01-31 08:15:02 UTC` from Unix milliseconds.
pub fn fmt_ms(ms: i64) -> String {
    let (y, m, d, secs) = directory::ids::civil(ms);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

pub fn fmt_opt_ms(ms: Option<i64>) -> String {
    ms.map(fmt_ms).unwrap_or_default()
}

/// `340 ms`, `1.2 s`, `3 min 4 s`.
pub fn fmt_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000)
    }
}

/// Previous / next links of a list.
#[derive(Debug, Clone, Default)]
pub struct Pager {
    pub prev: Option<String>,
    /// `← Previous`, or `← First page` for a cursor walk (it only goes forward).
    pub prev_label: &'static str,
    pub next: Option<String>,
    /// `Showing 51–100 of 230`.
    pub summary: String,
}

impl Pager {
    /// A page of a cursor walk: `next` links the page after this one (when there is one),
    /// `first` the start of the list (when this is not it).
    pub fn cursor(shown: usize, next: Option<String>, first: Option<String>) -> Self {
        let summary = match (shown, first.is_some()) {
            (0, true) => "Nothing more".to_owned(),
            (0, false) => String::new(),
            (n, false) => format!("Showing the first {n}"),
            (n, true) => format!("Showing {n} more"),
        };
        Self {
            prev: first,
            prev_label: "← First page",
            next,
            summary,
        }
    }

    /// A page of a walk by key ([`Pager::cursor`]), with the list's total when known.
    pub fn keyed(
        shown: usize,
        total: Option<u64>,
        next: Option<String>,
        first: Option<String>,
    ) -> Self {
        let mut pager = Self::cursor(shown, next, first);
        if let Some(total) = total
            && shown > 0
        {
            pager.summary = format!("{} of {total}", pager.summary);
        }
        pager
    }

    /// `link(offset)` builds the URL of another page; `total` when known, else a full page
    /// means there may be more.
    pub fn new(
        offset: u64,
        limit: u64,
        shown: usize,
        total: Option<u64>,
        link: impl Fn(u64) -> String,
    ) -> Self {
        let shown = shown as u64;
        let more = match total {
            Some(t) => offset + shown < t,
            None => shown >= limit,
        };
        // An empty first page says nothing: the list itself says "no users" etc.
        let summary = if shown == 0 {
            if offset > 0 {
                "Nothing more".to_owned()
            } else {
                String::new()
            }
        } else {
            let range = format!("{}–{}", offset + 1, offset + shown);
            match total {
                Some(t) => format!("Showing {range} of {t}"),
                None => format!("Showing {range}"),
            }
        };
        Self {
            prev: (offset > 0).then(|| link(offset.saturating_sub(limit))),
            prev_label: "← Previous",
            next: more.then(|| link(offset + limit)),
            summary,
        }
    }
}

/// Renders a template to an HTML answer with the console's headers.
pub fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => (status, no_store(), Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// Console pages show directory data: keep them out of shared caches and the back-forward
/// history of other users of the machine.
fn no_store() -> [(header::HeaderName, &'static str); 1] {
    [(header::CACHE_CONTROL, "no-store")]
}

pub fn ok<T: Template>(page: &T) -> Response {
    render(StatusCode::OK, page)
}

/// An error page: status, what went wrong and what to do.
#[derive(Debug, Clone)]
pub struct ConsoleError {
    pub status: StatusCode,
    pub message: String,
    pub fix: Option<String>,
    csrf: String,
}

impl ConsoleError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            fix: None,
            csrf: String::new(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
            .with_fix("Check the link: the id may be mistyped, or the object was deleted.")
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn with_csrf(mut self, csrf: &str) -> Self {
        self.csrf = csrf.to_owned();
        self
    }
}

impl From<AdminError> for ConsoleError {
    fn from(e: AdminError) -> Self {
        let default_fix = match &e {
            AdminError::NotFound(_) => {
                Some("Check the link: the id may be mistyped, or the object was deleted.")
            }
            AdminError::Invalid(_) => Some("Correct the value and submit again."),
            AdminError::Store(_) => Some("See the server log for details, then try again."),
            _ => None,
        };
        let http = HttpError::from(e);
        let fix = http.body.error.fix.or(default_fix.map(str::to_owned));
        Self {
            status: http.status,
            message: http.body.error.message,
            fix,
            csrf: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub ctx: Ctx,
    pub status: u16,
    pub reason: String,
    pub message: String,
    pub fix: Option<String>,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            ctx: Ctx {
                csrf: self.csrf,
                ..Ctx::default()
            },
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            message: self.message,
            fix: self.fix,
        };
        render(self.status, &page)
    }
}

pub type ConsoleResult<T = Response> = Result<T, ConsoleError>;

/// An optional query value: empty means absent.
pub fn opt(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_pages() {
        assert_eq!(fmt_ms(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(fmt_ms(1_700_000_000_123), "2023-11-14 22:13:20 UTC");
        assert_eq!(fmt_ms(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(urlencode("a b/é"), "a%20b%2F%C3%A9");
        assert_eq!(with_query("/x", &[("a", "1"), ("b", "")]), "/x?a=1");
        let p = Pager::new(50, 50, 50, Some(120), |o| format!("?o={o}"));
        assert_eq!(p.prev.as_deref(), Some("?o=0"));
        assert_eq!(p.next.as_deref(), Some("?o=100"));
        assert_eq!(p.summary, "Showing 51–100 of 120");
        let last = Pager::new(100, 50, 20, Some(120), |o| format!("?o={o}"));
        assert!(last.next.is_none());
    }
}
