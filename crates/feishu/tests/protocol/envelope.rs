//! The envelope decoder end to end on the reference vectors, and every rejection.

use std::time::Duration;

use feishu::crypto;
use feishu::envelope::{
    self, DecodeOptions, Envelope, EnvelopeError, EventSecrets, SignatureCheck, Verified,
};
use feishu::events::{ContactEvent, LegacyEvent};
use feishu::vectors::*;
use http::{HeaderMap, HeaderValue, StatusCode};

fn headers(timestamp: &str, nonce: &str, signature: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "X-Lark-Request-Timestamp",
        HeaderValue::from_str(timestamp).unwrap(),
    );
    h.insert(
        "X-Lark-Request-Nonce",
        HeaderValue::from_str(nonce).unwrap(),
    );
    h.insert(
        "X-Lark-Signature",
        HeaderValue::from_str(signature).unwrap(),
    );
    h
}

fn worked_secrets() -> EventSecrets {
    EventSecrets::new(WORKED_VERIFICATION_TOKEN, Some(WORKED_KEY.to_owned()))
}

fn worked_encrypted_body() -> String {
    crypto::encrypted_body(WORKED_ENCRYPT)
}

fn decode(h: &HeaderMap, body: &str, secrets: &EventSecrets) -> Result<Envelope, EnvelopeError> {
    decode_checked(h, body.as_bytes(), secrets, &DecodeOptions::default())
}

/// [`envelope::decode_request`], checking that [`envelope::verify_request`] (the ingest
/// path's decoder, which builds no typed event) agrees: the same rejection, or the same
/// dedupe and ordering fields and the same stored document.
pub(super) fn decode_checked(
    h: &HeaderMap,
    body: &[u8],
    secrets: &EventSecrets,
    options: &DecodeOptions,
) -> Result<Envelope, EnvelopeError> {
    decode_checked_at(h, body, secrets, options, now())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(super) fn decode_checked_at(
    h: &HeaderMap,
    body: &[u8],
    secrets: &EventSecrets,
    options: &DecodeOptions,
    now: i64,
) -> Result<Envelope, EnvelopeError> {
    let decoded = envelope::decode_request_at(h, body, secrets, options, now);
    let verified = envelope::verify_request_at(h, body, secrets, options, now);
    match (&decoded, &verified) {
        (
            Ok(Envelope::UrlVerification { challenge }),
            Ok(Verified::UrlVerification { challenge: c }),
        ) => {
            assert_eq!(challenge, c);
        }
        (Ok(env), Ok(Verified::Event(v))) => {
            assert_eq!(env.event_id(), Some(v.event_id.as_str()));
            assert_eq!(env.event_type(), v.event_type);
            assert_eq!(env.created_at_ms(), v.created_at_ms);
            let stored: serde_json::Value = serde_json::from_str(&v.without_token).unwrap();
            let expected: serde_json::Value =
                serde_json::from_str(env.without_token().unwrap()).unwrap();
            assert_eq!(stored, expected, "{}", v.without_token);
        }
        // serde's wording differs between the two parsers; the kind must not.
        (Err(a), Err(b)) => {
            assert_eq!(
                (a.reason(), a.status()),
                (b.reason(), b.status()),
                "{a} / {b}"
            );
            if !matches!(
                a,
                EnvelopeError::BodyNotJson(_) | EnvelopeError::PlaintextNotJson(_)
            ) {
                assert_eq!(a, b);
            }
        }
        _ => panic!("decode_request gave {decoded:?}, verify_request {verified:?}"),
    }
    decoded
}

#[test]
fn worked_example_encrypted_event_decodes_to_a_typed_department_created() {
    let h = headers(WORKED_TIMESTAMP, WORKED_NONCE, WORKED_SIGNATURE_ENCRYPTED);
    let env = decode(&h, &worked_encrypted_body(), &worked_secrets()).unwrap();
    assert_eq!(env.event_id(), Some("0f6e3f6c9b8a4d2e8f1a2b3c4d5e6f70"));
    assert_eq!(env.event_type(), "contact.department.created_v3");
    assert_eq!(env.created_at_ms(), Some(1_700_000_000_123));
    assert_eq!(env.plaintext(), Some(WORKED_PLAINTEXT));
    let Envelope::V2(v2) = env else {
        panic!("expected a 2.0 event")
    };
    assert_eq!(v2.header.tenant_key.as_deref(), Some("2ca1d211f64f6438"));
    assert_eq!(v2.header.app_id.as_deref(), Some("cli_a1b2c3d4e5f60718"));
    let ContactEvent::DepartmentCreated { object } = v2.event else {
        panic!("expected DepartmentCreated, got {:?}", v2.event)
    };
    assert_eq!(object.name.as_deref(), Some("研发部"));
    assert_eq!(object.order, Some(1000));
    assert_eq!(
        object.open_department_id.as_deref(),
        Some("od-4e6ac4d14bcd5071a37a39de902c7141")
    );
}

#[test]
fn worked_example_in_plaintext_mode_verifies_with_the_empty_key() {
    let secrets = EventSecrets::new(WORKED_VERIFICATION_TOKEN, None);
    let h = headers(WORKED_TIMESTAMP, WORKED_NONCE, WORKED_SIGNATURE_PLAINTEXT);
    for policy in [
        SignatureCheck::Ignore,
        SignatureCheck::IfPresent,
        SignatureCheck::Required,
    ] {
        let options = DecodeOptions {
            signature_when_plaintext: policy,
            ..DecodeOptions::default()
        };
        let env = decode_checked(&h, WORKED_PLAINTEXT.as_bytes(), &secrets, &options).unwrap();
        assert_eq!(env.event_type(), "contact.department.created_v3");
    }
    // With checking on, a wrong signature is refused; with the default (off) it is not looked at.
    let bad = headers(WORKED_TIMESTAMP, WORKED_NONCE, WORKED_SIGNATURE_ENCRYPTED);
    let strict = DecodeOptions {
        signature_when_plaintext: SignatureCheck::IfPresent,
        ..DecodeOptions::default()
    };
    assert_eq!(
        decode_checked(&bad, WORKED_PLAINTEXT.as_bytes(), &secrets, &strict),
        Err(EnvelopeError::BadSignature)
    );
    assert!(decode(&bad, WORKED_PLAINTEXT, &secrets).is_ok());
}

#[test]
fn encrypted_url_verification_needs_no_signature_headers() {
    let body = crypto::encrypted_body(WORKED_URL_VERIFICATION_ENCRYPT);
    let env = decode(&HeaderMap::new(), &body, &worked_secrets()).unwrap();
    assert_eq!(
        env,
        Envelope::UrlVerification {
            challenge: WORKED_URL_VERIFICATION_CHALLENGE.to_owned()
        }
    );
    assert_eq!(
        Envelope::challenge_response(WORKED_URL_VERIFICATION_CHALLENGE),
        r#"{"challenge":"3d8f2a10-5b7c-4e9d-a1f6-0c2b4e6d8f10"}"#
    );
}

#[test]
fn node_sdk_challenge_vector_d() {
    let secrets = EventSecrets::new(D_VERIFICATION_TOKEN, Some(D_KEY.to_owned()));
    let env = decode(
        &HeaderMap::new(),
        &crypto::encrypted_body(D_CIPHERTEXT),
        &secrets,
    )
    .unwrap();
    assert_eq!(
        env,
        Envelope::UrlVerification {
            challenge: D_CHALLENGE.to_owned()
        }
    );
    // A wrong Verification Token is refused even for the URL check.
    let wrong = EventSecrets::new("other", Some(D_KEY.to_owned()));
    let err = decode(
        &HeaderMap::new(),
        &crypto::encrypted_body(D_CIPHERTEXT),
        &wrong,
    )
    .unwrap_err();
    assert_eq!(err, EnvelopeError::BadToken);
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn vector_b_is_a_url_verification_because_type_wins() {
    // (B) carries both a 2.0 header and "type":"url_verification"; discrimination checks
    // the type first (protocol §4.6).
    let secrets = EventSecrets::new("v", Some(B_KEY.to_owned()));
    let env = decode(
        &HeaderMap::new(),
        &crypto::encrypted_body(B_CIPHERTEXT),
        &secrets,
    )
    .unwrap();
    assert_eq!(
        env,
        Envelope::UrlVerification {
            challenge: "1212".to_owned()
        }
    );
}

#[test]
fn vector_c_is_a_user_created_event_with_a_16_digit_create_time() {
    // (C) differs from (B) in "type":"url_verification1", so it is an ordinary 2.0 event;
    // the Go SDK signature vector signs the (B) plaintext, so sign (C) the same way here.
    let secrets = EventSecrets::new("v", Some(C_KEY.to_owned()));
    let body = crypto::encrypted_body(C_CIPHERTEXT);
    let sig = crypto::signature("1603977298", "7", C_KEY, body.as_bytes());
    let env = decode(&headers("1603977298", "7", &sig), &body, &secrets).unwrap();
    assert_eq!(env.created_at_ms(), Some(1_603_977_298_000));
    let Envelope::V2(v2) = env else {
        panic!("expected 2.0")
    };
    let ContactEvent::UserCreated { object } = v2.event else {
        panic!("expected UserCreated, got {:?}", v2.event)
    };
    assert_eq!(object.name.as_deref(), Some("张三"));
    assert_eq!(object.user_id.as_deref(), Some("e33ggbyz"));
    assert_eq!(
        object.open_id.as_deref(),
        Some("ou_7dab8a3d3cdcc9da365777c7ad535d62")
    );
}

#[test]
fn real_traffic_plaintext_delivery_verifies_and_unknown_types_are_kept() {
    let secrets = EventSecrets::new(REAL_TRAFFIC_VERIFICATION_TOKEN, None);
    let h = headers(
        REAL_TRAFFIC_TIMESTAMP,
        REAL_TRAFFIC_NONCE,
        REAL_TRAFFIC_SIGNATURE,
    );
    let options = DecodeOptions {
        signature_when_plaintext: SignatureCheck::Required,
        ..DecodeOptions::default()
    };
    let env = decode_checked(&h, REAL_TRAFFIC_BODY.as_bytes(), &secrets, &options).unwrap();
    assert_eq!(env.event_type(), "im.message.receive_v1");
    assert_eq!(env.event_id(), Some("1290b470b9fa072e63f8f374da25caca"));
    let Envelope::V2(v2) = env else {
        panic!("expected 2.0")
    };
    assert!(
        matches!(v2.event, ContactEvent::Unrecognized { .. }),
        "{:?}",
        v2.event
    );
}

#[test]
fn legacy_1_0_event_decodes() {
    let doc = r#"{"ts":"1502199207.7171419","uuid":"bc447199585340d1f3728d26b1c0297a","token":"tok","type":"event_callback","event":{"type":"user_leave","app_id":"cli_1","tenant_key":"t1","open_id":"ou_1","employee_id":"e1","union_id":"on_1"}}"#;
    let sealed = envelope::seal(doc, Some("k"), "1502199207", "9");
    let secrets = EventSecrets::new("tok", Some("k".to_owned()));
    let env = decode(&sealed.headers(), &sealed.body, &secrets).unwrap();
    assert_eq!(env.event_id(), Some("bc447199585340d1f3728d26b1c0297a"));
    assert_eq!(env.event_type(), "user_leave");
    assert_eq!(env.created_at_ms(), Some(1_502_199_207_717));
    let Envelope::V1(v1) = env else {
        panic!("expected 1.0")
    };
    assert!(matches!(v1.event.event, LegacyEvent::UserLeave(_)));
}

#[test]
fn every_rejection_has_its_status_and_reason() {
    let secrets = worked_secrets();
    let body = worked_encrypted_body();
    let good = headers(WORKED_TIMESTAMP, WORKED_NONCE, WORKED_SIGNATURE_ENCRYPTED);
    let cases: Vec<(HeaderMap, String, EventSecrets, &str, StatusCode)> = vec![
        // The body was altered in transit.
        (
            good.clone(),
            body.replacen("AAEC", "AAED", 1),
            secrets.clone(),
            "bad_signature",
            StatusCode::UNAUTHORIZED,
        ),
        // The connection has another Encrypt Key.
        (
            good.clone(),
            body.clone(),
            EventSecrets::new(WORKED_VERIFICATION_TOKEN, Some("other".into())),
            "bad_signature",
            StatusCode::UNAUTHORIZED,
        ),
        // Signed correctly, wrong Verification Token.
        (
            good.clone(),
            body.clone(),
            EventSecrets::new("not-the-token", Some(WORKED_KEY.into())),
            "bad_token",
            StatusCode::UNAUTHORIZED,
        ),
        // An encrypted event without the signature headers.
        (
            HeaderMap::new(),
            body.clone(),
            secrets.clone(),
            "missing_signature",
            StatusCode::UNAUTHORIZED,
        ),
        // Only part of the signature headers.
        (
            {
                let mut h = good.clone();
                h.remove("X-Lark-Request-Nonce");
                h
            },
            body.clone(),
            secrets.clone(),
            "missing_signature",
            StatusCode::UNAUTHORIZED,
        ),
        // Encrypted, but the connection has no Encrypt Key.
        (
            HeaderMap::new(),
            body.clone(),
            EventSecrets::new(WORKED_VERIFICATION_TOKEN, None),
            "encrypted_without_key",
            StatusCode::BAD_REQUEST,
        ),
        // Plaintext, but the connection expects encryption.
        (
            HeaderMap::new(),
            WORKED_PLAINTEXT.to_owned(),
            secrets.clone(),
            "plaintext_with_key",
            StatusCode::BAD_REQUEST,
        ),
        (
            HeaderMap::new(),
            "not json".to_owned(),
            secrets.clone(),
            "body_not_json",
            StatusCode::BAD_REQUEST,
        ),
        (
            HeaderMap::new(),
            "[1,2]".to_owned(),
            secrets.clone(),
            "body_not_json",
            StatusCode::BAD_REQUEST,
        ),
        (
            HeaderMap::new(),
            r#"{"hello":"world"}"#.to_owned(),
            EventSecrets::new("t", None),
            "unknown_envelope",
            StatusCode::BAD_REQUEST,
        ),
        (
            HeaderMap::new(),
            r#"{"schema":"2.0","header":{"token":"t","event_type":"x"},"event":{}}"#.to_owned(),
            EventSecrets::new("t", None),
            "missing_field",
            StatusCode::BAD_REQUEST,
        ),
        (
            HeaderMap::new(),
            r#"{"schema":"2.0","header":{"event_id":"e","event_type":"x"},"event":{}}"#.to_owned(),
            EventSecrets::new("t", None),
            "missing_token",
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (i, (h, body, secrets, reason, status)) in cases.into_iter().enumerate() {
        let err = decode(&h, &body, &secrets).expect_err(&format!("case {i} must fail"));
        assert_eq!(err.reason(), reason, "case {i}: {err}");
        assert_eq!(err.status(), status, "case {i}: {err}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn undecryptable_value_with_a_valid_signature_is_a_bad_request() {
    // Signed with the right key, but the "encrypt" value is not a ciphertext.
    let secrets = EventSecrets::new("t", Some("k".to_owned()));
    let body = r#"{"encrypt":"bm90IGEgY2lwaGVydGV4dA=="}"#;
    let sig = crypto::signature("1", "2", "k", body.as_bytes());
    let err = decode(&headers("1", "2", &sig), body, &secrets).unwrap_err();
    assert_eq!(err.reason(), "decrypt_failed");
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn plaintext_with_key_can_be_allowed() {
    let secrets = EventSecrets::new(WORKED_VERIFICATION_TOKEN, Some(WORKED_KEY.to_owned()));
    let sig = crypto::signature(
        WORKED_TIMESTAMP,
        WORKED_NONCE,
        WORKED_KEY,
        WORKED_PLAINTEXT.as_bytes(),
    );
    let options = DecodeOptions {
        accept_plaintext_with_key: true,
        ..DecodeOptions::default()
    };
    let env = decode_checked(
        &headers(WORKED_TIMESTAMP, WORKED_NONCE, &sig),
        WORKED_PLAINTEXT.as_bytes(),
        &secrets,
        &options,
    )
    .unwrap();
    assert_eq!(env.event_type(), "contact.department.created_v3");
}

#[test]
fn replay_window_is_optional_and_checked_when_set() {
    let h = headers(WORKED_TIMESTAMP, WORKED_NONCE, WORKED_SIGNATURE_ENCRYPTED);
    let body = worked_encrypted_body();
    let options = DecodeOptions {
        replay_window: Some(Duration::from_secs(300)),
        ..DecodeOptions::default()
    };
    let at = |now| decode_checked_at(&h, body.as_bytes(), &worked_secrets(), &options, now);
    assert!(at(1_700_000_100).is_ok());
    assert_eq!(
        at(1_700_001_000),
        Err(EnvelopeError::StaleTimestamp { skew_secs: 1000 })
    );
    // Without a window an old delivery (Feishu retries for ~7 h) is accepted.
    assert!(
        decode_checked_at(
            &h,
            body.as_bytes(),
            &worked_secrets(),
            &DecodeOptions::default(),
            1_800_000_000
        )
        .is_ok()
    );
}

#[test]
fn seal_produces_what_decode_accepts() {
    let doc = WORKED_PLAINTEXT;
    for key in [None, Some("another key")] {
        let sealed = envelope::seal(doc, key, "1700000000", "5");
        let secrets = EventSecrets::new(WORKED_VERIFICATION_TOKEN, key.map(str::to_owned));
        let env = decode(&sealed.headers(), &sealed.body, &secrets).unwrap();
        assert_eq!(env.plaintext(), Some(doc));
    }
}

#[test]
fn stored_plaintext_parses_back_to_the_same_envelope() {
    let h = headers(WORKED_TIMESTAMP, WORKED_NONCE, WORKED_SIGNATURE_ENCRYPTED);
    let env = decode(&h, &worked_encrypted_body(), &worked_secrets()).unwrap();
    let again = envelope::parse_plaintext(env.plaintext().unwrap()).unwrap();
    assert_eq!(again, env);
    assert!(envelope::parse_plaintext("not json").is_err());
}

/// The inbox keeps `without_token`: no Verification Token, everything else kept, and it reads
/// back (without any token check) to the same event with the same dedupe and ordering fields.
#[test]
fn without_token_drops_the_verification_token_and_parses_back_to_the_same_event() {
    let h = headers(WORKED_TIMESTAMP, WORKED_NONCE, WORKED_SIGNATURE_ENCRYPTED);
    let v2 = decode(&h, &worked_encrypted_body(), &worked_secrets()).unwrap();
    let v1_doc = r#"{"ts":"1502199207.7171419","uuid":"bc447199585340d1f3728d26b1c0297a","token":"tok-v1-secret","type":"event_callback","event":{"type":"user_leave","app_id":"cli_1","tenant_key":"t1","open_id":"ou_1","employee_id":"e1","union_id":"on_1"}}"#;
    let v1 = decode(
        &HeaderMap::new(),
        v1_doc,
        &EventSecrets::new("tok-v1-secret", None),
    )
    .unwrap();
    for (env, token) in [(v2, WORKED_VERIFICATION_TOKEN), (v1, "tok-v1-secret")] {
        assert!(env.plaintext().unwrap().contains(token));
        let kept = env.without_token().unwrap();
        assert!(!kept.contains(token), "{kept}");
        assert!(!kept.contains("\"token\""), "{kept}");
        let again = envelope::parse_plaintext(kept).unwrap();
        assert_eq!(again.event_id(), env.event_id());
        assert_eq!(again.event_type(), env.event_type());
        assert_eq!(again.created_at_ms(), env.created_at_ms());
        assert_eq!(again.without_token(), Some(kept));
        match (&again, &env) {
            (Envelope::V2(a), Envelope::V2(b)) => {
                assert_eq!(a.header, b.header);
                assert_eq!(a.event, b.event);
            }
            (Envelope::V1(a), Envelope::V1(b)) => {
                assert_eq!((&a.uuid, &a.ts, &a.event), (&b.uuid, &b.ts, &b.event));
            }
            _ => panic!("{again:?} is not the kind of {env:?}"),
        }
        // Everything but the token is still there.
        let mut full: serde_json::Value = serde_json::from_str(env.plaintext().unwrap()).unwrap();
        if let Some(header) = full.get_mut("header").and_then(|h| h.as_object_mut()) {
            header.remove("token");
        }
        if let Some(doc) = full.as_object_mut() {
            doc.remove("token");
        }
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(kept).unwrap(),
            full
        );
    }
}
