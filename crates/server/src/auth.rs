//! The admin token: the API takes it as `Authorization: Bearer …`, the console as the login
//! password. Only its SHA-256 is kept in memory and on disk.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 of the admin token.
#[derive(Clone)]
pub struct AdminToken {
    hash: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl AdminToken {
    pub fn from_plaintext(token: &str) -> Self {
        Self {
            hash: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// From the hex SHA-256 kept in the data directory.
    pub fn from_hash_hex(hex_hash: &str) -> Option<Self> {
        let bytes = hex::decode(hex_hash.trim()).ok()?;
        Some(Self {
            hash: bytes.try_into().ok()?,
        })
    }

    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }

    /// A new random token: `osat_` + 43 url-safe base64 characters (256 bits).
    pub fn generate() -> (Self, String) {
        use base64::Engine as _;
        let bytes: [u8; 32] = rand::random();
        let token = format!(
            "osat_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        (Self::from_plaintext(&token), token)
    }

    /// Constant-time check of a presented token.
    pub fn verify(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.hash).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_token() {
        let (token, plain) = AdminToken::generate();
        assert!(token.verify(&plain));
        assert!(!token.verify(&format!("{plain}x")));
        assert!(!token.verify(""));
        let again = AdminToken::from_hash_hex(&token.hash_hex()).unwrap();
        assert!(again.verify(&plain));
        assert!(AdminToken::from_hash_hex("zz").is_none());
        assert!(format!("{token:?}").contains('…'));
    }
}
