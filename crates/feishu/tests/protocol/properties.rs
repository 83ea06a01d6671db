//! Property tests: round trips, tamper detection, and a decoder that never panics.

use feishu::crypto;
use feishu::envelope::{self, DecodeOptions, EventSecrets, SignatureCheck};
use http::{HeaderMap, HeaderValue};

use super::envelope::decode_checked;
use proptest::prelude::*;

fn flip(bytes: &mut [u8], index: usize, mask: u8) {
    let i = index % bytes.len();
    bytes[i] ^= mask;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encrypt_then_decrypt_returns_any_bytes(key in ".{0,40}", plain in proptest::collection::vec(any::<u8>(), 0..600)) {
        let enc = crypto::encrypt(&key, &plain);
        prop_assert_eq!(crypto::decrypt_bytes(&key, &enc).unwrap(), plain);
    }

    #[test]
    fn encrypt_then_decrypt_returns_any_text(key in "\\PC{1,32}", plain in "\\PC{0,300}", iv in any::<[u8; 16]>()) {
        let enc = crypto::encrypt_with_iv(&key, plain.as_bytes(), iv);
        prop_assert_eq!(crypto::decrypt(&key, &enc).unwrap(), plain);
    }

    #[test]
    fn tampering_with_any_byte_fails_verification(
        body in proptest::collection::vec(any::<u8>(), 1..400),
        timestamp in "[0-9]{10}",
        nonce in "[0-9]{1,12}",
        key in "[ -~]{1,32}",
        which in 0usize..4,
        index in any::<usize>(),
        mask in 1u8..=255,
    ) {
        let sig = crypto::signature(&timestamp, &nonce, &key, &body);
        prop_assert!(crypto::verify_signature(&timestamp, &nonce, &key, &body, &sig));
        let (mut t, mut n, mut k, mut b) =
            (timestamp.into_bytes(), nonce.into_bytes(), key.into_bytes(), body);
        match which {
            0 => flip(&mut b, index, mask),
            1 => flip(&mut t, index, mask),
            2 => flip(&mut n, index, mask),
            _ => flip(&mut k, index, mask),
        }
        // A flipped byte may leave the text invalid UTF-8; compare as lossy text, which still
        // differs from the original because the flipped byte changed.
        let t = String::from_utf8_lossy(&t);
        let n = String::from_utf8_lossy(&n);
        let k = String::from_utf8_lossy(&k);
        prop_assert!(!crypto::verify_signature(&t, &n, &k, &b, &sig));
    }

    #[test]
    fn decrypt_never_panics(key in ".{0,20}", input in ".{0,300}") {
        let _ = crypto::decrypt(&key, &input);
    }

    #[test]
    fn decrypt_of_valid_shape_with_random_bytes_never_panics(
        key in ".{0,20}",
        raw in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        let _ = crypto::decrypt(&key, &b64);
    }

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(
        body in proptest::collection::vec(any::<u8>(), 0..400),
        key in proptest::option::of("[a-z]{1,8}"),
        ts in proptest::option::of("[0-9a-z]{0,12}"),
        sig in proptest::option::of("[0-9a-f]{0,64}"),
    ) {
        let mut headers = HeaderMap::new();
        if let Some(ts) = ts {
            headers.insert(envelope::HEADER_TIMESTAMP, HeaderValue::from_str(&ts).unwrap());
            headers.insert(envelope::HEADER_NONCE, HeaderValue::from_static("1"));
        }
        if let Some(sig) = sig {
            headers.insert(envelope::HEADER_SIGNATURE, HeaderValue::from_str(&sig).unwrap());
        }
        let secrets = EventSecrets::new("token", key);
        let options = DecodeOptions {
            signature_when_plaintext: SignatureCheck::IfPresent,
            replay_window: Some(std::time::Duration::from_secs(300)),
            ..DecodeOptions::default()
        };
        let _ = decode_checked(&headers, &body, &secrets, &options);
    }

    #[test]
    fn decoder_never_panics_on_authentic_requests_with_arbitrary_json(
        doc in arbitrary_json(),
        encrypted in any::<bool>(),
    ) {
        // Authentic (right key, right signature) but arbitrary content: the decoder must
        // reach the parsing stage and still never panic.
        let key = encrypted.then(|| "k".to_owned());
        let sealed = envelope::seal(&doc.to_string(), key.as_deref(), "1700000000", "42");
        let secrets = EventSecrets::new("token", key);
        let _ = decode_checked(&sealed.headers(), sealed.body.as_bytes(), &secrets, &DecodeOptions::default());
    }
}

/// JSON documents shaped like Feishu envelopes, with random holes and wrong types.
fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-z_.0-9]{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("token")),
        Just(serde_json::Value::from("2.0")),
        Just(serde_json::Value::from("contact.user.created_v3")),
        Just(serde_json::Value::from("contact.department.updated_v3")),
        Just(serde_json::Value::from("user_add")),
        Just(serde_json::Value::from("url_verification")),
    ];
    let keys = prop_oneof![
        Just("schema".to_owned()),
        Just("header".to_owned()),
        Just("event".to_owned()),
        Just("token".to_owned()),
        Just("type".to_owned()),
        Just("uuid".to_owned()),
        Just("event_id".to_owned()),
        Just("event_type".to_owned()),
        Just("create_time".to_owned()),
        Just("object".to_owned()),
        Just("old_object".to_owned()),
        Just("challenge".to_owned()),
        Just("open_id".to_owned()),
        Just("department_ids".to_owned()),
        Just("status".to_owned()),
        Just("order".to_owned()),
        Just("leaders".to_owned()),
        "[a-z]{1,6}".prop_map(|s| s),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
