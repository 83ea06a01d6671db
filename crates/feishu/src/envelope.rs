//! The event request decoder (protocol §4.2–4.6): one pure entry point that takes what an
//! HTTP handler has — headers, the raw body, the connection's secrets — and returns either a
//! typed envelope or a typed rejection that names the failed check and its HTTP status.
//!
//! Order of checks: signature over the raw bytes (never over re-serialised JSON), then
//! decryption, then parsing, then the Verification Token, then the replay window.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::crypto::{self, DecryptError};
use crate::events::{self, ContactEvent, LegacyEnvelopeEvent};
use crate::serde_util::timestamp_to_millis;

pub const HEADER_TIMESTAMP: &str = "x-lark-request-timestamp";
pub const HEADER_NONCE: &str = "x-lark-request-nonce";
pub const HEADER_SIGNATURE: &str = "x-lark-signature";

/// What a connection knows to authenticate Feishu's requests.
#[derive(Clone, PartialEq, Eq)]
pub struct EventSecrets {
    /// Always set in the Feishu console (事件与回调 → 加密策略).
    pub verification_token: String,
    /// Optional; when set every body is encrypted and signed with it.
    pub encrypt_key: Option<String>,
}

impl EventSecrets {
    pub fn new(verification_token: impl Into<String>, encrypt_key: Option<String>) -> Self {
        Self {
            verification_token: verification_token.into(),
            encrypt_key: encrypt_key.filter(|k| !k.is_empty()),
        }
    }
}

impl std::fmt::Debug for EventSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSecrets")
            .field("verification_token", &"***")
            .field("encrypt_key", &self.encrypt_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// How strictly to treat the `X-Lark-*` signature headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Headers must be present (except on url_verification, where Feishu may omit them)
    /// and must verify.
    Required,
    /// Verified when present; absent headers are accepted.
    IfPresent,
    /// Not looked at.
    Ignore,
}

/// Switches for the points the protocol reference marks UNVERIFIED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Signature policy when the connection has an Encrypt Key. The SDKs verify then.
    pub signature_when_encrypted: SignatureCheck,
    /// Signature policy without an Encrypt Key (the key term is `""`). Real traffic carries
    /// verifiable headers then too, but the SDKs do not check them; off by default.
    pub signature_when_plaintext: SignatureCheck,
    /// Accept an unencrypted body although the connection has an Encrypt Key.
    pub accept_plaintext_with_key: bool,
    /// Reject requests whose `X-Lark-Request-Timestamp` is further than this from now.
    /// `None` (default): Feishu's clock skew is unknown; dedupe by event id instead.
    pub replay_window: Option<Duration>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            signature_when_encrypted: SignatureCheck::Required,
            signature_when_plaintext: SignatureCheck::Ignore,
            accept_plaintext_with_key: false,
            replay_window: None,
        }
    }
}

/// A request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    /// The URL check: answer HTTP 200 with [`Envelope::challenge_response`].
    UrlVerification { challenge: String },
    /// A schema 2.0 event.
    V2(Box<EventV2>),
    /// A legacy 1.0 event.
    V1(Box<EventV1>),
}

/// The 2.0 `header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader {
    pub event_id: String,
    pub event_type: String,
    /// As sent (13 digits in real traffic, 16 in the docs' sample).
    pub create_time: Option<String>,
    /// `create_time` normalised to Unix milliseconds.
    pub create_time_ms: Option<i64>,
    pub tenant_key: Option<String>,
    pub app_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventV2 {
    pub header: EventHeader,
    pub event: ContactEvent,
    /// The plaintext JSON document, as Feishu sent it (decrypted when it was encrypted). It
    /// carries the Verification Token: keep [`EventV2::without_token`] instead.
    pub plaintext: String,
    /// The document without the Verification Token (`header.token`): what may be stored or
    /// shown. [`parse_plaintext`] reads it back to the same event.
    pub without_token: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventV1 {
    pub uuid: String,
    /// Send time, seconds with a fraction, as sent.
    pub ts: Option<String>,
    pub ts_ms: Option<i64>,
    pub event: LegacyEnvelopeEvent,
    /// As [`EventV2::plaintext`]: carries the Verification Token (top-level `token`).
    pub plaintext: String,
    /// The document without the Verification Token.
    pub without_token: String,
}

impl Envelope {
    /// The body to answer a url_verification with (not encrypted, per protocol §4.2).
    pub fn challenge_response(challenge: &str) -> String {
        serde_json::json!({ "challenge": challenge }).to_string()
    }

    /// The dedupe key: `header.event_id` (2.0) or `uuid` (1.0).
    pub fn event_id(&self) -> Option<&str> {
        match self {
            Self::UrlVerification { .. } => None,
            Self::V2(e) => Some(&e.header.event_id),
            Self::V1(e) => Some(&e.uuid),
        }
    }

    /// The event type: `header.event_type` (2.0) or `event.type` (1.0).
    pub fn event_type(&self) -> &str {
        match self {
            Self::UrlVerification { .. } => "url_verification",
            Self::V2(e) => &e.header.event_type,
            Self::V1(e) => e.event.event.event_type(),
        }
    }

    /// When Feishu created the event (2.0) or sent it (1.0), in Unix milliseconds.
    pub fn created_at_ms(&self) -> Option<i64> {
        match self {
            Self::UrlVerification { .. } => None,
            Self::V2(e) => e.header.create_time_ms,
            Self::V1(e) => e.ts_ms,
        }
    }

    /// The decrypted JSON document, Verification Token included.
    pub fn plaintext(&self) -> Option<&str> {
        match self {
            Self::UrlVerification { .. } => None,
            Self::V2(e) => Some(&e.plaintext),
            Self::V1(e) => Some(&e.plaintext),
        }
    }

    /// The decrypted JSON document without the Verification Token: the token is a secret
    /// and has no use once the request is verified, so this is what to store.
    pub fn without_token(&self) -> Option<&str> {
        match self {
            Self::UrlVerification { .. } => None,
            Self::V2(e) => Some(&e.without_token),
            Self::V1(e) => Some(&e.without_token),
        }
    }
}

/// Why a request was rejected. Every message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    #[error("the request body is not a JSON object: {0}")]
    BodyNotJson(String),
    #[error(
        "the request is encrypted but this connection has no Encrypt Key: copy the Encrypt Key from the Feishu console (Events & Callbacks → Encryption Strategy) into the connection"
    )]
    EncryptedWithoutKey,
    #[error(
        "the request is not encrypted but this connection has an Encrypt Key: set the same Encrypt Key in the Feishu console (Events & Callbacks → Encryption Strategy), or remove it from the connection"
    )]
    PlaintextWithKey,
    #[error("the \"encrypt\" field could not be decrypted: {0}")]
    Decrypt(DecryptError),
    #[error("the decrypted payload is not a JSON object: {0}")]
    PlaintextNotJson(String),
    #[error(
        "the payload is neither a url_verification, a schema 2.0 event nor a 1.0 event (no \"type\", \"schema\" or \"uuid\")"
    )]
    UnknownEnvelope,
    #[error("the payload has no {0}")]
    MissingField(&'static str),
    #[error(
        "the {0} header is missing: Feishu signs every event when an Encrypt Key is set; a proxy may have dropped the X-Lark-* headers"
    )]
    MissingSignature(&'static str),
    #[error(
        "the X-Lark-Signature does not match the body: the Encrypt Key differs from the one in the Feishu console, or the body was altered on the way"
    )]
    BadSignature,
    #[error("the payload carries no Verification Token")]
    MissingToken,
    #[error(
        "the Verification Token does not match: copy it from the Feishu console (Events & Callbacks → Encryption Strategy) into the connection"
    )]
    BadToken,
    #[error(
        "the request timestamp is {skew_secs} s away from this server's clock, beyond the replay window"
    )]
    StaleTimestamp { skew_secs: i64 },
}

impl EnvelopeError {
    /// 401 for failed authentication, 400 for a request we cannot read.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingSignature(_)
            | Self::BadSignature
            | Self::MissingToken
            | Self::BadToken
            | Self::StaleTimestamp { .. } => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BodyNotJson(_) => "body_not_json",
            Self::EncryptedWithoutKey => "encrypted_without_key",
            Self::PlaintextWithKey => "plaintext_with_key",
            Self::Decrypt(_) => "decrypt_failed",
            Self::PlaintextNotJson(_) => "plaintext_not_json",
            Self::UnknownEnvelope => "unknown_envelope",
            Self::MissingField(_) => "missing_field",
            Self::MissingSignature(_) => "missing_signature",
            Self::BadSignature => "bad_signature",
            Self::MissingToken => "missing_token",
            Self::BadToken => "bad_token",
            Self::StaleTimestamp { .. } => "stale_timestamp",
        }
    }
}

/// The signature headers, when all three are present.
struct SignatureHeaders<'a> {
    timestamp: &'a str,
    nonce: &'a str,
    signature: &'a str,
}

/// Looks for the three `X-Lark-*` headers. `Ok(None)` when none is present; a partial or
/// non-text set is an error naming the first missing header.
fn signature_headers(headers: &HeaderMap) -> Result<Option<SignatureHeaders<'_>>, EnvelopeError> {
    let get = |name: &'static str| headers.get(name).map(|v| v.to_str().map_err(|_| name));
    match (
        get(HEADER_TIMESTAMP),
        get(HEADER_NONCE),
        get(HEADER_SIGNATURE),
    ) {
        (None, None, None) => Ok(None),
        (Some(Ok(timestamp)), Some(Ok(nonce)), Some(Ok(signature))) => Ok(Some(SignatureHeaders {
            timestamp,
            nonce,
            signature,
        })),
        (t, n, _) => Err(EnvelopeError::MissingSignature(match (t, n) {
            (None | Some(Err(_)), _) => "X-Lark-Request-Timestamp",
            (_, None | Some(Err(_))) => "X-Lark-Request-Nonce",
            _ => "X-Lark-Signature",
        })),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Step 1 of both decoders: the signature policy for the connection's secrets, and the
/// signature headers (absent or ignored: `None`), checked over the raw body.
fn check_signature<'h>(
    headers: &'h HeaderMap,
    body: &[u8],
    secrets: &EventSecrets,
    options: &DecodeOptions,
) -> Result<(SignatureCheck, Option<SignatureHeaders<'h>>), EnvelopeError> {
    let (key_term, policy) = match &secrets.encrypt_key {
        Some(key) => (key.as_str(), options.signature_when_encrypted),
        None => ("", options.signature_when_plaintext),
    };
    let sig_headers = match policy {
        SignatureCheck::Ignore => None,
        _ => signature_headers(headers)?,
    };
    if let Some(h) = &sig_headers
        && !crypto::verify_signature(h.timestamp, h.nonce, key_term, body, h.signature)
    {
        return Err(EnvelopeError::BadSignature);
    }
    Ok((policy, sig_headers))
}

/// Steps 4 and 5 of both decoders, for an event (not a URL check): signed when the policy
/// says so, and sent within the replay window.
fn check_signed_and_fresh(
    policy: SignatureCheck,
    sig_headers: Option<&SignatureHeaders<'_>>,
    options: &DecodeOptions,
    now_unix: i64,
) -> Result<(), EnvelopeError> {
    if policy == SignatureCheck::Required && sig_headers.is_none() {
        return Err(EnvelopeError::MissingSignature("X-Lark-Signature"));
    }
    if let (Some(window), Some(h)) = (options.replay_window, sig_headers) {
        let sent: i64 = h
            .timestamp
            .trim()
            .parse()
            .map_err(|_| EnvelopeError::StaleTimestamp {
                skew_secs: i64::MAX,
            })?;
        let skew = now_unix.saturating_sub(sent);
        if skew.unsigned_abs() > window.as_secs() {
            return Err(EnvelopeError::StaleTimestamp { skew_secs: skew });
        }
    }
    Ok(())
}

/// Decodes an event request using the system clock for the replay window.
pub fn decode_request(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &EventSecrets,
    options: &DecodeOptions,
) -> Result<Envelope, EnvelopeError> {
    decode_request_at(headers, body, secrets, options, unix_now())
}

/// Decodes an event request; `now_unix` (seconds) is only used for the replay window.
pub fn decode_request_at(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &EventSecrets,
    options: &DecodeOptions,
    now_unix: i64,
) -> Result<Envelope, EnvelopeError> {
    let outer: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| EnvelopeError::BodyNotJson(e.to_string()))?;

    let encrypted = outer.get("encrypt");
    // 1. Signature over the raw bytes.
    let (policy, sig_headers) = check_signature(headers, body, secrets, options)?;

    // 2. Decryption.
    let plaintext: String = match (encrypted, &secrets.encrypt_key) {
        (Some(Value::String(value)), Some(key)) => {
            crypto::decrypt(key, value).map_err(EnvelopeError::Decrypt)?
        }
        (Some(Value::String(_)), None) => return Err(EnvelopeError::EncryptedWithoutKey),
        (Some(_), _) => {
            return Err(EnvelopeError::BodyNotJson(
                "\"encrypt\" is not a string".to_owned(),
            ));
        }
        (None, Some(_)) if !options.accept_plaintext_with_key => {
            return Err(EnvelopeError::PlaintextWithKey);
        }
        (None, _) => String::from_utf8_lossy(body).into_owned(),
    };
    let doc: Map<String, Value> = if encrypted.is_some() {
        serde_json::from_str(&plaintext)
            .map_err(|e| EnvelopeError::PlaintextNotJson(e.to_string()))?
    } else {
        outer
    };

    // 3. Classification and the Verification Token.
    let envelope = classify(doc, plaintext, Some(&secrets.verification_token))?;
    if matches!(envelope, Envelope::UrlVerification { .. }) {
        // Feishu may send the URL check unsigned (protocol §4.2, UNVERIFIED): never require it.
        return Ok(envelope);
    }

    // 4. and 5. Signed when the policy says so, within the replay window.
    check_signed_and_fresh(policy, sig_headers.as_ref(), options, now_unix)?;

    Ok(envelope)
}

/// A request that passed every check of [`decode_request`], read only as far as storing it
/// needs: the event body stays text (the worker types it when it applies the event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The URL check: answer HTTP 200 with [`Envelope::challenge_response`].
    UrlVerification {
        challenge: String,
    },
    Event(VerifiedEvent),
}

/// An event's dedupe and ordering fields and the document to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEvent {
    /// `header.event_id` (2.0) or `uuid` (1.0).
    pub event_id: String,
    /// `header.event_type` (2.0) or `event.type` (1.0).
    pub event_type: String,
    /// `header.create_time` (2.0) or `ts` (1.0) in Unix milliseconds.
    pub created_at_ms: Option<i64>,
    /// The plaintext document without the Verification Token, as [`Envelope::without_token`]
    /// (top-level keys sorted, values as sent); [`parse_plaintext`] reads it to the event.
    pub without_token: String,
}

/// The same checks as [`decode_request`] in the same order, with the same rejections, but
/// without building the typed event or a JSON tree of the payload: the ingest path's decoder.
pub fn verify_request(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &EventSecrets,
    options: &DecodeOptions,
) -> Result<Verified, EnvelopeError> {
    verify_request_at(headers, body, secrets, options, unix_now())
}

/// [`verify_request`] with `now_unix` (seconds) for the replay window.
pub fn verify_request_at(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &EventSecrets,
    options: &DecodeOptions,
    now_unix: i64,
) -> Result<Verified, EnvelopeError> {
    /// Only `encrypt` matters in the outer body; the rest is skipped, not copied.
    #[derive(serde::Deserialize)]
    struct Outer<'a> {
        #[serde(borrow)]
        encrypt: Option<&'a RawValue>,
    }
    let outer: Outer<'_> =
        serde_json::from_slice(body).map_err(|e| EnvelopeError::BodyNotJson(e.to_string()))?;
    // A struct also reads from an array; the body must be an object.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(EnvelopeError::BodyNotJson(
            "invalid type: sequence, expected a map".to_owned(),
        ));
    }
    // 1. Signature over the raw bytes.
    let (policy, sig_headers) = check_signature(headers, body, secrets, options)?;

    // 2. Decryption.
    let encrypted = match outer.encrypt {
        Some(raw) if raw.get().starts_with('"') => Some(
            serde_json::from_str::<std::borrow::Cow<'_, str>>(raw.get())
                .map_err(|e| EnvelopeError::BodyNotJson(e.to_string()))?,
        ),
        Some(_) => {
            return Err(EnvelopeError::BodyNotJson(
                "\"encrypt\" is not a string".to_owned(),
            ));
        }
        None => None,
    };
    let decrypted: String;
    let plaintext: &str = match (&encrypted, &secrets.encrypt_key) {
        (Some(value), Some(key)) => {
            decrypted = crypto::decrypt(key, value).map_err(EnvelopeError::Decrypt)?;
            &decrypted
        }
        (Some(_), None) => return Err(EnvelopeError::EncryptedWithoutKey),
        (None, Some(_)) if !options.accept_plaintext_with_key => {
            return Err(EnvelopeError::PlaintextWithKey);
        }
        // Parsed as JSON above, so UTF-8.
        (None, _) => {
            std::str::from_utf8(body).map_err(|e| EnvelopeError::BodyNotJson(e.to_string()))?
        }
    };
    let doc: RawMap<'_> = serde_json::from_str(plaintext).map_err(|e| {
        if encrypted.is_some() {
            EnvelopeError::PlaintextNotJson(e.to_string())
        } else {
            EnvelopeError::BodyNotJson(e.to_string())
        }
    })?;

    // 3. Classification and the Verification Token.
    let verified = classify_raw(doc, &secrets.verification_token)?;
    if matches!(verified, Verified::UrlVerification { .. }) {
        return Ok(verified);
    }

    // 4. and 5. Signed when the policy says so, within the replay window.
    check_signed_and_fresh(policy, sig_headers.as_ref(), options, now_unix)?;
    Ok(verified)
}

/// A JSON object's members, values unparsed (keys sorted, the last of a repeated key wins, as
/// in a `serde_json::Map`).
type RawMap<'a> = std::collections::BTreeMap<std::borrow::Cow<'a, str>, &'a RawValue>;

/// [`classify`] over unparsed values: the same decisions and rejections.
fn classify_raw(doc: RawMap<'_>, verification_token: &str) -> Result<Verified, EnvelopeError> {
    let value = |raw: Option<&&RawValue>| -> Option<Value> {
        raw.and_then(|r| serde_json::from_str(r.get()).ok())
    };
    let string = |raw: Option<&&RawValue>| -> Option<String> {
        raw.filter(|r| r.get().starts_with('"'))
            .and_then(|r| serde_json::from_str(r.get()).ok())
    };
    let check_token = |token: Option<String>| match token {
        None => Err(EnvelopeError::MissingToken),
        Some(t) if crypto::secrets_equal(&t, verification_token) => Ok(()),
        Some(_) => Err(EnvelopeError::BadToken),
    };
    // As `classify`'s `text`: a string, or a number written as digits.
    let text = |raw: Option<&&RawValue>| match value(raw) {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let header: Option<RawMap<'_>> = doc
        .get("header")
        .filter(|r| r.get().starts_with('{'))
        .and_then(|r| serde_json::from_str(r.get()).ok());

    if string(doc.get("type")).as_deref() == Some("url_verification") {
        let token = match doc.get("token") {
            Some(t) => string(Some(t)),
            None => header.as_ref().and_then(|h| string(h.get("token"))),
        };
        check_token(token)?;
        let challenge =
            string(doc.get("challenge")).ok_or(EnvelopeError::MissingField("\"challenge\""))?;
        return Ok(Verified::UrlVerification { challenge });
    }

    let event = if doc.contains_key("schema") {
        let header = header.ok_or(EnvelopeError::MissingField("\"header\" object"))?;
        check_token(string(header.get("token")))?;
        let event_id = text(header.get("event_id"))
            .filter(|s| !s.is_empty())
            .ok_or(EnvelopeError::MissingField("header.event_id"))?;
        let event_type = text(header.get("event_type"))
            .filter(|s| !s.is_empty())
            .ok_or(EnvelopeError::MissingField("header.event_type"))?;
        let created_at_ms = text(header.get("create_time"))
            .as_deref()
            .and_then(timestamp_to_millis);
        VerifiedEvent {
            event_id,
            event_type,
            created_at_ms,
            without_token: raw_without_token(&doc, Some(&header)),
        }
    } else if doc.contains_key("uuid") {
        check_token(string(doc.get("token")))?;
        let uuid = string(doc.get("uuid"))
            .filter(|s| !s.is_empty())
            .ok_or(EnvelopeError::MissingField("\"uuid\""))?;
        let ts_ms = text(doc.get("ts")).as_deref().and_then(timestamp_to_millis);
        let event: RawMap<'_> = doc
            .get("event")
            .filter(|r| r.get().starts_with('{'))
            .and_then(|r| serde_json::from_str(r.get()).ok())
            .ok_or(EnvelopeError::MissingField("\"event\" object"))?;
        VerifiedEvent {
            event_id: uuid,
            // As `LegacyEvent::event_type`: `event.type`, empty when it is not a string.
            event_type: string(event.get("type")).unwrap_or_default(),
            created_at_ms: ts_ms,
            without_token: raw_without_token(&doc, header.as_ref()),
        }
    } else {
        return Err(EnvelopeError::UnknownEnvelope);
    };
    Ok(Verified::Event(event))
}

/// The document without top-level `token` and `header.token`; every other value is copied as
/// sent, not re-serialised.
fn raw_without_token(doc: &RawMap<'_>, header: Option<&RawMap<'_>>) -> String {
    fn write_object<'a>(
        out: &mut String,
        members: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    ) {
        out.push('{');
        let mut first = true;
        for (key, value) in members {
            if !first {
                out.push(',');
            }
            first = false;
            // A key serialises without fail.
            out.push_str(&serde_json::to_string(key).unwrap_or_default());
            out.push(':');
            if let Some(value) = value {
                out.push_str(value);
            }
        }
        out.push('}');
    }
    let mut out = String::with_capacity(doc.values().map(|v| v.get().len() + 16).sum());
    let mut members = Vec::with_capacity(doc.len());
    let mut header_text = None;
    if let Some(header) = header {
        let mut text = String::new();
        write_object(
            &mut text,
            header
                .iter()
                .filter(|(k, _)| k.as_ref() != "token")
                .map(|(k, v)| (k.as_ref(), Some(v.get()))),
        );
        header_text = Some(text);
    }
    for (key, value) in doc {
        match key.as_ref() {
            "token" => {}
            "header" if header_text.is_some() => members.push((key.as_ref(), None)),
            _ => members.push((key.as_ref(), Some(value.get()))),
        }
    }
    write_object(
        &mut out,
        members.into_iter().map(|(k, v)| match v {
            Some(v) => (k, Some(v)),
            None => (k, header_text.as_deref()),
        }),
    );
    out
}

/// Re-reads an envelope that was already verified (e.g. the plaintext an inbox stored): the
/// same classification and typing as [`decode_request`], without crypto or token checks.
pub fn parse_plaintext(plaintext: &str) -> Result<Envelope, EnvelopeError> {
    let doc: Map<String, Value> = serde_json::from_str(plaintext)
        .map_err(|e| EnvelopeError::PlaintextNotJson(e.to_string()))?;
    classify(doc, plaintext.to_owned(), None)
}

/// url_verification → 2.0 (`schema`) → 1.0 (`uuid`), checking the Verification Token when one
/// is given.
fn classify(
    doc: Map<String, Value>,
    plaintext: String,
    verification_token: Option<&str>,
) -> Result<Envelope, EnvelopeError> {
    let check_token = |token: Option<&Value>| -> Result<(), EnvelopeError> {
        let Some(expected) = verification_token else {
            return Ok(());
        };
        match token.and_then(Value::as_str) {
            None => Err(EnvelopeError::MissingToken),
            Some(t) if crypto::secrets_equal(t, expected) => Ok(()),
            Some(_) => Err(EnvelopeError::BadToken),
        }
    };
    let is_url_verification = doc.get("type").and_then(Value::as_str) == Some("url_verification");
    if is_url_verification {
        // The token is top-level in the flat form; a 2.0-shaped challenge (SDK vector B)
        // carries it in the header.
        let token = doc
            .get("token")
            .or_else(|| doc.get("header").and_then(|h| h.get("token")));
        check_token(token)?;
        let challenge = doc
            .get("challenge")
            .and_then(Value::as_str)
            .ok_or(EnvelopeError::MissingField("\"challenge\""))?;
        return Ok(Envelope::UrlVerification {
            challenge: challenge.to_owned(),
        });
    }

    let envelope = if doc.contains_key("schema") {
        let header = doc
            .get("header")
            .and_then(Value::as_object)
            .ok_or(EnvelopeError::MissingField("\"header\" object"))?;
        check_token(header.get("token"))?;
        let text = |key: &str| {
            header.get(key).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        let event_id = text("event_id")
            .filter(|s| !s.is_empty())
            .ok_or(EnvelopeError::MissingField("header.event_id"))?;
        let event_type = text("event_type")
            .filter(|s| !s.is_empty())
            .ok_or(EnvelopeError::MissingField("header.event_type"))?;
        let create_time = text("create_time");
        let header = EventHeader {
            create_time_ms: create_time.as_deref().and_then(timestamp_to_millis),
            create_time,
            tenant_key: text("tenant_key"),
            app_id: text("app_id"),
            event_id,
            event_type,
        };
        let event = events::parse_v2(
            &header.event_type,
            doc.get("event").cloned().unwrap_or(Value::Null),
        );
        Envelope::V2(Box::new(EventV2 {
            header,
            event,
            plaintext,
            without_token: without_token(doc),
        }))
    } else if doc.contains_key("uuid") {
        check_token(doc.get("token"))?;
        let uuid = doc
            .get("uuid")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(EnvelopeError::MissingField("\"uuid\""))?
            .to_owned();
        let ts = doc.get("ts").and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let event = doc
            .get("event")
            .filter(|v| v.is_object())
            .cloned()
            .ok_or(EnvelopeError::MissingField("\"event\" object"))?;
        Envelope::V1(Box::new(EventV1 {
            uuid,
            ts_ms: ts.as_deref().and_then(timestamp_to_millis),
            ts,
            event: events::parse_v1(event),
            plaintext,
            without_token: without_token(doc),
        }))
    } else {
        return Err(EnvelopeError::UnknownEnvelope);
    };
    Ok(envelope)
}

/// The document without the Verification Token, wherever Feishu puts it: top-level `token`
/// (1.0 events, the URL check) and `header.token` (2.0). Everything else is kept; serde_json
/// writes the keys in sorted order.
fn without_token(mut doc: Map<String, Value>) -> String {
    doc.remove("token");
    if let Some(Value::Object(header)) = doc.get_mut("header") {
        header.remove("token");
    }
    Value::Object(doc).to_string()
}

/// A request as Feishu would send it: the body and the three signature header values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRequest {
    pub body: String,
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
}

impl SealedRequest {
    /// The headers Feishu sends with an event POST (protocol §4.4).
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        let pairs = [
            ("content-type", "application/json;charset=utf-8"),
            ("user-agent", "Go-http-client/1.1"),
            (HEADER_TIMESTAMP, self.timestamp.as_str()),
            (HEADER_NONCE, self.nonce.as_str()),
            (HEADER_SIGNATURE, self.signature.as_str()),
        ];
        for (name, value) in pairs {
            if let Ok(v) = http::HeaderValue::from_str(value) {
                h.insert(name, v);
            }
        }
        h
    }
}

/// Builds a request the way Feishu does: encrypts `plaintext` when an Encrypt Key is given
/// (random IV), then signs the exact body with the key (or `""`).
pub fn seal(
    plaintext: &str,
    encrypt_key: Option<&str>,
    timestamp: &str,
    nonce: &str,
) -> SealedRequest {
    let body = match encrypt_key.filter(|k| !k.is_empty()) {
        Some(key) => crypto::encrypted_body(&crypto::encrypt(key, plaintext.as_bytes())),
        None => plaintext.to_owned(),
    };
    let signature = crypto::signature(timestamp, nonce, encrypt_key.unwrap_or(""), body.as_bytes());
    SealedRequest {
        body,
        timestamp: timestamp.to_owned(),
        nonce: nonce.to_owned(),
        signature,
    }
}
