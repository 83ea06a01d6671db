//! App passwords: what a person types into an application that logs users in over LDAP
//! (docs/ldap.md, "App passwords"). Feishu cannot check a user's own password for a third
//! party, so an admin issues one per application: shown once, stored as an argon2id hash,
//! labelled, optionally expiring, revoked when the user stops being active. Pure, apart from
//! the randomness of [`generate`].

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::ids::{Millis, PoolId, UserId};

/// The most live app passwords one user may hold: a bind checks each (argon2 on purpose
/// costs milliseconds), so the count bounds a bind's cost.
pub const MAX_LIVE_PER_USER: usize = 10;

/// An app password as the API shows it: never the password.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPassword {
    /// 24 hex digits.
    pub id: String,
    pub pool_id: PoolId,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user_id: UserId,
    /// Which application or device it is for, e.g. `gitlab`.
    pub label: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    /// Updated at most once a minute.
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

impl AppPassword {
    /// Whether it can log in at `now`.
    pub fn live(&self, now: Millis) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// The characters of a password: lower-case letters and digits without the ones people
/// confuse (0/o, 1/l/i), 5 bits each.
const ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz23456789-";

/// A new password's id, the password (shown once) and its hash: four groups of five
/// characters (100 random bits), e.g. `kx7qm-3vn8a-…`.
pub fn generate() -> (String, String, String) {
    let id = hex::encode(rand::random::<[u8; 12]>());
    let bytes: [u8; 20] = rand::random();
    let mut password = String::with_capacity(23);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            password.push('-');
        }
        // 31 symbols (the dash is only a separator): `b % 31` is close enough to uniform
        // (each symbol 8 or 9 of 256) and the 100 bits claimed are counted at 4.9 each.
        password.push(ALPHABET[usize::from(*b) % 31] as char);
    }
    let hash = hash_password(&password);
    (id, password, hash)
}

/// argon2id with the OWASP minimum (19 MiB, 2 passes, 1 lane): tens of milliseconds.
fn hasher() -> Argon2<'static> {
    // The parameters are constants within argon2's bounds.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of a password's argon2id hash (salt and parameters included).
pub fn hash_password(password: &str) -> String {
    // Neither step fails for 16 salt bytes and these parameters; were one to, the empty
    // hash matches no password (a refusal, never an open door).
    SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .ok()
        .and_then(|salt| {
            hasher()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .ok()
        })
        .unwrap_or_default()
}

/// Whether `password` is the one `stored` was made from (constant time in argon2's check).
/// A damaged stored hash matches nothing.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    hasher()
        .verify_password(password.trim().as_bytes(), &parsed)
        .is_ok()
}

/// Checks an admin's label: 1–64 characters after trimming.
pub fn valid_label(label: &str) -> Result<String, String> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 64 {
        return Err(format!(
            "label: give 1–64 characters naming the application or device (got {} characters)",
            label.chars().count()
        ));
    }
    Ok(label.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_only_against_its_own_hash() {
        let (id, password, hash) = generate();
        assert_eq!(id.len(), 24);
        assert_eq!(password.len(), 23);
        assert_eq!(password.matches('-').count(), 3);
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!hash.contains(&password));
        assert!(verify(&password, &hash));
        // Pasted with a trailing newline or space: still the password.
        assert!(verify(&format!("{password}\n"), &hash));
        assert!(!verify(&password.replace('-', ""), &hash));
        let (_, other, _) = generate();
        assert_ne!(password, other);
        assert!(!verify(&other, &hash));
        assert!(!verify(&password, "not a hash"));
        assert!(!verify(&password, ""));
    }

    #[test]
    fn liveness_and_labels() {
        let mut p = AppPassword {
            id: "0".repeat(24),
            pool_id: PoolId("p".into()),
            user_id: UserId("u".into()),
            label: "gitlab".into(),
            created_at: 0,
            expires_at: Some(10),
            last_used_at: None,
            revoked_at: None,
        };
        assert!(p.live(9) && !p.live(10));
        p.expires_at = None;
        p.revoked_at = Some(1);
        assert!(!p.live(0));
        assert_eq!(valid_label("  GitLab laptop ").unwrap(), "GitLab laptop");
        assert!(valid_label(" ").is_err());
        assert!(valid_label(&"x".repeat(65)).is_err());
    }
}
