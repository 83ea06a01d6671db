//! Console sessions and CSRF protection, both stateless.
//!
//! - The session cookie is `{expiry}.{hmac(session_key, expiry)}`; `session_key` is derived
//!   from the admin token's SHA-256, so rotating the admin token ends every session.
//! - The CSRF token of a session is `hmac(session_key, "csrf:" + cookie)`. Every POST carries
//!   it (form field `_csrf` or header `X-CSRF-Token`, which htmx sends); a missing or wrong
//!   token is refused with 403 before the handler runs.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::util::{ConsoleError, is_htmx, urlencode};
use crate::AppState;
use crate::auth::AdminToken;

pub const COOKIE: &str = "orgsync_session";
/// How long a login lasts.
pub const SESSION_SECS: i64 = 12 * 3600;
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest console form accepted.
const FORM_LIMIT: usize = 256 * 1024;

fn mac(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        m.update(p);
    }
    m
}

fn session_key(token: &AdminToken) -> [u8; 32] {
    mac(
        token.hash_hex().as_bytes(),
        &[b"orgsync console session key v1"],
    )
    .finalize()
    .into_bytes()
    .into()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A new session cookie value, valid for [`SESSION_SECS`].
pub fn issue(token: &AdminToken) -> String {
    let expiry = (now_secs() + SESSION_SECS).to_string();
    let sig = mac(&session_key(token), &[b"session:", expiry.as_bytes()])
        .finalize()
        .into_bytes();
    format!("{expiry}.{}", hex::encode(sig))
}

/// Whether a cookie value is a live session signed with the current admin token.
pub fn verify(token: &AdminToken, value: &str) -> bool {
    let Some((expiry, sig)) = value.split_once('.') else {
        return false;
    };
    let Ok(exp) = expiry.parse::<i64>() else {
        return false;
    };
    if exp <= now_secs() {
        return false;
    }
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    mac(&session_key(token), &[b"session:", expiry.as_bytes()])
        .verify_slice(&sig)
        .is_ok()
}

/// The CSRF token that goes with a session cookie.
pub fn csrf_token(token: &AdminToken, cookie: &str) -> String {
    hex::encode(
        mac(&session_key(token), &[b"csrf:", cookie.as_bytes()])
            .finalize()
            .into_bytes(),
    )
}

/// `Set-Cookie` value for a new session (or an expired one when `value` is empty).
pub fn set_cookie(value: &str, secure: bool) -> String {
    let max_age = if value.is_empty() { 0 } else { SESSION_SECS };
    format!(
        "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The session cookie of a request, if any.
pub fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// A logged-in admin. Extracting it redirects to the login page when there is no live
/// session (htmx requests get `HX-Redirect`, so the whole page goes there).
#[derive(Debug, Clone)]
pub struct Session {
    /// The CSRF token to put in forms.
    pub csrf: String,
    /// The request came from htmx (answer with a fragment).
    pub htmx: bool,
}

impl Session {
    fn from_parts(parts: &Parts, state: &AppState) -> Option<Self> {
        let cookie = cookie_of(&parts.headers)?;
        let token = &state.settings.admin_token;
        verify(token, &cookie).then(|| Self {
            csrf: csrf_token(token, &cookie),
            htmx: is_htmx(&parts.headers),
        })
    }

    fn check_csrf(&self, presented: Option<&str>) -> Result<(), ConsoleError> {
        let ok = presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(self.csrf.as_bytes())));
        if ok {
            Ok(())
        } else {
            Err(ConsoleError::new(
                StatusCode::FORBIDDEN,
                "The form's CSRF token is missing or wrong, so the request was refused.",
            )
            .with_fix(
                "Go back, reload the page (your session may have expired or the form is stale) and submit again.",
            )
            .with_csrf(&self.csrf))
        }
    }
}

fn to_login(parts: &Parts) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| p.starts_with("/console") && parts.method == http::Method::GET)
        .unwrap_or("/console");
    let login = format!("/console/login?next={}", urlencode(next));
    if is_htmx(&parts.headers) {
        (StatusCode::UNAUTHORIZED, [("hx-redirect", login)]).into_response()
    } else {
        Redirect::to(&login).into_response()
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        Self::from_parts(parts, state).ok_or_else(|| to_login(parts))
    }
}

/// A form without fields of its own (just the CSRF token).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
pub struct NoFields {}

/// A POSTed console form from a logged-in admin whose CSRF token checked out.
pub struct CsrfForm<T>(pub Session, pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let session = Session::from_parts(&parts, state).ok_or_else(|| to_login(&parts))?;
        let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
            ConsoleError::new(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.")
                .into_response()
        })?;
        let fields: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        let header_token = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let field_token = fields
            .iter()
            .find(|(k, _)| k == CSRF_FIELD)
            .map(|(_, v)| v.as_str());
        session
            .check_csrf(header_token.or(field_token))
            .map_err(IntoResponse::into_response)?;
        let form = serde_urlencoded::from_bytes::<T>(&bytes).map_err(|e| {
            ConsoleError::new(
                StatusCode::BAD_REQUEST,
                format!("The form is not valid: {e}"),
            )
            .with_fix("Reload the page and fill in the form again.")
            .with_csrf(&session.csrf)
            .into_response()
        })?;
        Ok(Self(session, form))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_signed_and_expire() {
        let token = AdminToken::from_plaintext("t1");
        let other = AdminToken::from_plaintext("t2");
        let cookie = issue(&token);
        assert!(verify(&token, &cookie));
        assert!(!verify(&other, &cookie));
        let (exp, sig) = cookie.split_once('.').unwrap();
        let later = format!("{}.{sig}", exp.parse::<i64>().unwrap() + 1000);
        assert!(!verify(&token, &later));
        let old = format!("{}.{sig}", now_secs() - 1);
        assert!(!verify(&token, &old));
        assert!(!verify(&token, "garbage"));
        assert_ne!(csrf_token(&token, &cookie), csrf_token(&other, &cookie));
        assert!(set_cookie(&cookie, true).contains("; Secure"));
        assert!(set_cookie(&cookie, false).contains("HttpOnly; SameSite=Lax"));
    }
}
