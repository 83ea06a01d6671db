//! Fuzzes the event envelope decoder: any body, any signature headers, with and without an
//! Encrypt Key. The decoder must return Ok or a typed error, never panic.
#![no_main]

use feishu::envelope::{self, DecodeOptions, EventSecrets, SignatureCheck};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte picks the mode; the next few, optional header values; the rest is the body.
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (header_bytes, body) = rest.split_at(rest.len().min(8));
    let mut headers = http::HeaderMap::new();
    if mode & 1 == 1 {
        let text = String::from_utf8_lossy(header_bytes).into_owned();
        if let Ok(v) = http::HeaderValue::from_str(&text) {
            headers.insert(envelope::HEADER_TIMESTAMP, v.clone());
            headers.insert(envelope::HEADER_NONCE, v.clone());
            headers.insert(envelope::HEADER_SIGNATURE, v);
        }
    }
    let key = (mode & 2 == 2).then(|| "fuzz key".to_owned());
    let secrets = EventSecrets::new("token", key);
    let options = DecodeOptions {
        signature_when_encrypted: if mode & 4 == 4 { SignatureCheck::Ignore } else { SignatureCheck::Required },
        signature_when_plaintext: SignatureCheck::IfPresent,
        accept_plaintext_with_key: mode & 8 == 8,
        replay_window: (mode & 16 == 16).then(|| std::time::Duration::from_secs(300)),
    };
    let _ = envelope::decode_request(&headers, body, &secrets, &options);
});
