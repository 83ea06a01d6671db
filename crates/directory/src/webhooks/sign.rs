//! Standard Webhooks 1.0.0 signatures (docs/webhooks.md): `whsec_` secrets, and
//! `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>` in `webhook-signature`, one per
//! secret, space-separated (during a rotation the old and the new secret both sign).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit as _, Mac};

/// The prefix of a secret's text.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret: 32 random bytes, as `whsec_<base64>`.
pub fn generate_secret() -> String {
    format!(
        "{SECRET_PREFIX}{}",
        BASE64.encode(rand::random::<[u8; 32]>())
    )
}

/// The key bytes of a secret's text (`whsec_` optional, as the reference libraries accept).
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    BASE64
        .decode(b64)
        .ok()
        .filter(|k| (16..=64).contains(&k.len()))
}

/// One `v1,` signature of a message.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: a signature per key, space-separated.
pub fn signature_header(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| sign(k, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a receiver checks (Standard Webhooks): the timestamp within `tolerance_secs` of
/// `now` and one `v1,` signature of the header made with `key`, compared in constant time.
pub fn verify(
    key: &[u8],
    id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
    now: i64,
    tolerance_secs: i64,
) -> Result<(), &'static str> {
    use subtle::ConstantTimeEq;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| "webhook-timestamp is not a number")?;
    if (now - ts).abs() > tolerance_secs {
        return Err("webhook-timestamp is too old or too new");
    }
    let expected = sign(key, id, ts, body);
    let matched = header
        .split(' ')
        .filter(|s| s.starts_with("v1,"))
        .any(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())));
    if matched {
        Ok(())
    } else {
        Err("no signature matches")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification and its reference libraries.
    #[test]
    fn the_specification_example_signs_the_same() {
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_round_trip_and_rotation_signs_twice() {
        let secret = generate_secret();
        assert!(secret.starts_with("whsec_"));
        let key = secret_key(&secret).unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(secret_key(&secret["whsec_".len()..]), Some(key.clone()));
        assert_eq!(secret_key("whsec_not base64"), None);
        assert_eq!(secret_key("whsec_AAAA"), None, "too short");
        let other = secret_key(&generate_secret()).unwrap();
        let header = signature_header(&[key.clone(), other], "evt_1", 5, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&key, "evt_1", 5, b"{}"));
        assert_ne!(parts[0], parts[1]);
        assert_eq!(verify(&key, "evt_1", "5", b"{}", &header, 100, 300), Ok(()));
        assert!(verify(&key, "evt_1", "5", b"{ }", &header, 100, 300).is_err());
        assert!(verify(&key, "evt_2", "5", b"{}", &header, 100, 300).is_err());
        assert!(verify(&key, "evt_1", "5", b"{}", &header, 400, 300).is_err());
        assert!(verify(&key, "evt_1", "x", b"{}", &header, 100, 300).is_err());
    }
}
