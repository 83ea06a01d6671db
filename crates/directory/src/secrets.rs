//! Secrets at rest (App Secret, Encrypt Key, Verification Token): sealed with AES-256-GCM
//! under a master key that comes from the environment or a key file (design.md §2).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

const PREFIX: &str = "v1:";

/// A sealed secret as stored: `v1:` + base64(nonce ‖ ciphertext ‖ tag). Never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedSecret(pub String);

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedSecret(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "the master key must be 32 bytes given as 64 hex digits or standard base64; got {0} characters"
    )]
    BadMasterKey(usize),
    #[error(
        "a stored secret cannot be opened: it was sealed with another master key, or the database was altered"
    )]
    CannotOpen,
    #[error("a stored secret is not in the sealed format")]
    Malformed,
}

/// The key that seals every secret of this installation.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    /// Keys the hash of service-credential secrets: derived, so that the sealing key itself
    /// never serves a second purpose.
    hash_key: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        use sha2::Digest;
        let mut derive = sha2::Sha256::new();
        derive.update(b"orgsync/service-credential-hash/v1\0");
        derive.update(bytes);
        Self {
            cipher: Aes256Gcm::new(&bytes.into()),
            hash_key: derive.finalize().into(),
        }
    }

    /// HMAC-SHA256 of `data` under a key derived from this one (docs/service-credentials.md):
    /// a stolen database alone does not let anyone test guesses of a credential's secret.
    pub fn keyed_hash(&self, data: &[u8]) -> [u8; 32] {
        use hmac::{KeyInit as _, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.hash_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Parses 64 hex digits or base64 of 32 bytes (surrounding white space ignored).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            BASE64.decode(text).ok()
        };
        let bytes: [u8; 32] = bytes
            .and_then(|b| b.try_into().ok())
            .ok_or(SecretError::BadMasterKey(text.len()))?;
        Ok(Self::from_bytes(bytes))
    }

    /// A new random key and its hex text (for a key file).
    pub fn generate() -> (Self, String) {
        let bytes: [u8; 32] = rand::random();
        (Self::from_bytes(bytes), hex::encode(bytes))
    }

    pub fn seal(&self, plaintext: &str) -> SealedSecret {
        let nonce_bytes: [u8; 12] = rand::random();
        let nonce = Nonce::from(nonce_bytes);
        // Encryption with a valid key and nonce cannot fail for inputs of this size.
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(12 + ciphertext.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        SealedSecret(format!("{PREFIX}{}", BASE64.encode(out)))
    }

    pub fn open(&self, sealed: &SealedSecret) -> Result<String, SecretError> {
        let body = sealed
            .0
            .strip_prefix(PREFIX)
            .ok_or(SecretError::Malformed)?;
        let raw = BASE64.decode(body).map_err(|_| SecretError::Malformed)?;
        if raw.len() < 12 + 16 {
            return Err(SecretError::Malformed);
        }
        let (nonce, ciphertext) = raw.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| SecretError::Malformed)?;
        let plain = self
            .cipher
            .decrypt(&Nonce::from(nonce), ciphertext)
            .map_err(|_| SecretError::CannotOpen)?;
        String::from_utf8(plain).map_err(|_| SecretError::CannotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_and_wrong_key_fails() {
        let (key, text) = MasterKey::generate();
        let sealed = key.seal("app-secret-123");
        assert!(sealed.0.starts_with("v1:"));
        assert!(!sealed.0.contains("app-secret-123"));
        assert_eq!(key.open(&sealed).unwrap(), "app-secret-123");
        assert_eq!(
            MasterKey::parse(&text).unwrap().open(&sealed).unwrap(),
            "app-secret-123"
        );
        let (other, _) = MasterKey::generate();
        assert_eq!(other.open(&sealed), Err(SecretError::CannotOpen));
        assert_eq!(
            key.open(&SealedSecret("plain".into())),
            Err(SecretError::Malformed)
        );
        assert!(format!("{sealed:?}").contains("***"));
    }

    #[test]
    fn master_key_formats() {
        assert!(MasterKey::parse(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::parse(&BASE64.encode([7u8; 32])).is_ok());
        assert_eq!(
            MasterKey::parse("short").err(),
            Some(SecretError::BadMasterKey(5))
        );
    }
}
