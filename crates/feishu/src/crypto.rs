//! Event crypto (protocol §4.3–4.5): AES-256-CBC with a SHA-256-derived key, the
//! `X-Lark-Signature` digest, and constant-time secret comparison. Pure functions.

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const BLOCK: usize = 16;

/// Why an `encrypt` value could not be decrypted. Each says what was wrong with the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("the encrypted value is not valid standard base64: {0}")]
    Base64(String),
    #[error(
        "the encrypted value is {0} bytes after base64 decoding; it needs a 16-byte IV and at least one 16-byte block"
    )]
    TooShort(usize),
    #[error(
        "the ciphertext is {0} bytes, not a multiple of the 16-byte AES block: the value was cut or altered"
    )]
    NotBlockAligned(usize),
    #[error(
        "the decrypted data has no valid PKCS#7 padding: the Encrypt Key is probably not the one set in the Feishu console"
    )]
    BadPadding,
    #[error(
        "the decrypted data is not UTF-8 text (invalid byte at offset {0}): the Encrypt Key is probably wrong"
    )]
    NotUtf8(usize),
}

/// The AES-256 key: SHA-256 of the Encrypt Key's UTF-8 bytes.
pub fn aes_key(encrypt_key: &str) -> [u8; 32] {
    Sha256::digest(encrypt_key.as_bytes()).into()
}

/// Decrypts an `encrypt` value to its bytes (`base64(iv ‖ AES-256-CBC(pkcs7(plain)))`).
pub fn decrypt_bytes(encrypt_key: &str, encrypted: &str) -> Result<Vec<u8>, DecryptError> {
    let raw = BASE64
        .decode(encrypted.trim())
        .map_err(|e| DecryptError::Base64(e.to_string()))?;
    if raw.len() < 2 * BLOCK {
        return Err(DecryptError::TooShort(raw.len()));
    }
    let (iv, ciphertext) = raw.split_at(BLOCK);
    if ciphertext.len() % BLOCK != 0 {
        return Err(DecryptError::NotBlockAligned(ciphertext.len()));
    }
    let key = aes_key(encrypt_key);
    let decryptor = cbc::Decryptor::<Aes256>::new_from_slices(&key, iv)
        .map_err(|_| DecryptError::TooShort(raw.len()))?;
    let mut plain = decryptor
        .decrypt_padded_vec::<NoPadding>(ciphertext)
        .map_err(|_| DecryptError::NotBlockAligned(ciphertext.len()))?;
    let unpadded = pkcs7_unpadded_len(&plain).ok_or(DecryptError::BadPadding)?;
    plain.truncate(unpadded);
    Ok(plain)
}

/// Decrypts an `encrypt` value to the UTF-8 text Feishu encrypted (a JSON document).
pub fn decrypt(encrypt_key: &str, encrypted: &str) -> Result<String, DecryptError> {
    String::from_utf8(decrypt_bytes(encrypt_key, encrypted)?)
        .map_err(|e| DecryptError::NotUtf8(e.utf8_error().valid_up_to()))
}

/// Strict PKCS#7: 1..=16 trailing bytes, each equal to the pad length.
fn pkcs7_unpadded_len(data: &[u8]) -> Option<usize> {
    let &last = data.last()?;
    let pad = usize::from(last);
    if pad == 0 || pad > BLOCK || pad > data.len() {
        return None;
    }
    let tail = &data[data.len() - pad..];
    // Constant time over the tail, so padding checks leak nothing about where they fail.
    let ok = tail
        .iter()
        .fold(0u8, |acc, &b| acc | (b ^ last))
        .ct_eq(&0u8);
    bool::from(ok).then_some(data.len() - pad)
}

/// Encrypts with a caller-chosen IV (the emulator and the vectors need a fixed one).
pub fn encrypt_with_iv(encrypt_key: &str, plaintext: &[u8], iv: [u8; BLOCK]) -> String {
    let key = aes_key(encrypt_key);
    let encryptor = cbc::Encryptor::<Aes256>::new(&key.into(), &iv.into());
    let mut padded = Vec::with_capacity(plaintext.len() + BLOCK);
    padded.extend_from_slice(plaintext);
    let pad = BLOCK - plaintext.len() % BLOCK;
    padded.resize(plaintext.len() + pad, pad as u8);
    let ciphertext = encryptor.encrypt_padded_vec::<NoPadding>(&padded);
    let mut out = Vec::with_capacity(BLOCK + ciphertext.len());
    out.extend_from_slice(&iv);
    out.extend_from_slice(&ciphertext);
    BASE64.encode(out)
}

/// Encrypts with a random IV, as Feishu does.
pub fn encrypt(encrypt_key: &str, plaintext: &[u8]) -> String {
    encrypt_with_iv(encrypt_key, plaintext, rand::random())
}

/// The HTTP body Feishu sends when encryption is on: `{"encrypt":"…"}`, compact.
pub fn encrypted_body(encrypted: &str) -> String {
    // base64 has no characters that JSON would escape.
    format!(r#"{{"encrypt":"{encrypted}"}}"#)
}

/// `X-Lark-Signature`: lowercase hex SHA-256 of timestamp ‖ nonce ‖ encrypt key ‖ raw body.
/// The key is `""` when no Encrypt Key is configured.
pub fn signature(timestamp: &str, nonce: &str, encrypt_key: &str, body: &[u8]) -> String {
    hex::encode(signature_digest(timestamp, nonce, encrypt_key, body))
}

fn signature_digest(timestamp: &str, nonce: &str, encrypt_key: &str, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(timestamp.as_bytes());
    h.update(nonce.as_bytes());
    h.update(encrypt_key.as_bytes());
    h.update(body);
    h.finalize().into()
}

/// Checks a received signature in constant time. Hex case is ignored; anything that is not
/// 64 hex digits is simply invalid.
pub fn verify_signature(
    timestamp: &str,
    nonce: &str,
    encrypt_key: &str,
    body: &[u8],
    received: &str,
) -> bool {
    let Ok(received) = hex::decode(received.trim()) else {
        return false;
    };
    let expected = signature_digest(timestamp, nonce, encrypt_key, body);
    received.len() == expected.len() && bool::from(received.as_slice().ct_eq(&expected))
}

/// Compares two secrets (Verification Tokens) in constant time for equal lengths.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs7_is_strict() {
        assert_eq!(pkcs7_unpadded_len(&[b'a', 1]), Some(1));
        assert_eq!(pkcs7_unpadded_len(&[16; 16]), Some(0));
        assert_eq!(pkcs7_unpadded_len(&[b'a', 0]), None);
        assert_eq!(pkcs7_unpadded_len(&[b'a', 17]), None);
        assert_eq!(pkcs7_unpadded_len(&[b'a', 3, 2, 3]), None);
        assert_eq!(pkcs7_unpadded_len(&[3, 3]), None);
        assert_eq!(pkcs7_unpadded_len(&[]), None);
    }

    #[test]
    fn malformed_inputs_give_typed_errors() {
        assert!(matches!(decrypt("k", "%%%"), Err(DecryptError::Base64(_))));
        assert!(matches!(
            decrypt("k", &BASE64.encode([0u8; 16])),
            Err(DecryptError::TooShort(16))
        ));
        assert!(matches!(
            decrypt("k", &BASE64.encode([0u8; 40])),
            Err(DecryptError::NotBlockAligned(24))
        ));
        // A valid shape under the wrong key almost always fails the padding check.
        let enc = encrypt("right", b"{\"a\":1}");
        assert!(decrypt("wrong", &enc).is_err());
        // Non-UTF-8 plaintext.
        let enc = encrypt_with_iv("k", &[0xff, 0xfe, b'a'], [0; 16]);
        assert_eq!(decrypt("k", &enc), Err(DecryptError::NotUtf8(0)));
        assert_eq!(decrypt_bytes("k", &enc).unwrap(), vec![0xff, 0xfe, b'a']);
    }

    #[test]
    fn signature_ignores_hex_case_and_rejects_garbage() {
        let sig = signature("1", "2", "k", b"body");
        assert!(verify_signature("1", "2", "k", b"body", &sig));
        assert!(verify_signature(
            "1",
            "2",
            "k",
            b"body",
            &sig.to_uppercase()
        ));
        assert!(!verify_signature("1", "2", "k", b"body", "zz"));
        assert!(!verify_signature("1", "2", "k", b"body", &sig[..62]));
        assert!(!verify_signature("1", "2", "k", b"body", ""));
    }

    #[test]
    fn secrets_compare() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "ab"));
    }
}
