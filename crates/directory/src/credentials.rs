//! Service credentials: a downstream system's own key to one user pool
//! (docs/service-credentials.md).
//!
//! A credential's token is `osc_<id>_<secret>`: the id finds the row, the secret (256 random
//! bits) is checked against the keyed hash the store keeps. Pure, apart from the randomness of
//! [`generate`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::ids::{Millis, PoolId};
use crate::secrets::MasterKey;

/// What a credential may do, each within its own pool.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// Read the directory: users, departments, groups, and their look-ups.
    #[serde(rename = "directory:read")]
    DirectoryRead,
    /// Read the change feed.
    #[serde(rename = "events:read")]
    EventsRead,
    /// Manage the pool's webhook endpoints.
    #[serde(rename = "webhooks:admin")]
    WebhooksAdmin,
    /// Bind to the LDAP view and search the pool (docs/ldap.md).
    #[serde(rename = "ldap:search")]
    LdapSearch,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Self::DirectoryRead,
        Self::EventsRead,
        Self::WebhooksAdmin,
        Self::LdapSearch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DirectoryRead => "directory:read",
            Self::EventsRead => "events:read",
            Self::WebhooksAdmin => "webhooks:admin",
            Self::LdapSearch => "ldap:search",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// What the scope allows, for the console.
    pub fn describe(self) -> &'static str {
        match self {
            Self::DirectoryRead => "read users, departments and groups",
            Self::EventsRead => "read the change feed",
            Self::WebhooksAdmin => "manage webhook endpoints",
            Self::LdapSearch => "bind to the LDAP view and search it",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credential as the API shows it: never its secret.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCredential {
    /// 24 hex digits; also the middle of its token.
    pub id: String,
    pub pool_id: PoolId,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    /// Updated at most once a minute.
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

impl ServiceCredential {
    /// Why it cannot be used at `now`, if it cannot.
    pub fn unusable(&self, now: Millis) -> Option<&'static str> {
        if self.revoked_at.is_some() {
            Some("the service credential was revoked")
        } else if self.expires_at.is_some_and(|at| at <= now) {
            Some("the service credential has expired")
        } else {
            None
        }
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// The token's prefix: recognisable in logs and by secret scanners.
pub const PREFIX: &str = "osc_";

/// A new credential's id, its token (shown once) and the hash the store keeps.
pub fn generate(key: &MasterKey) -> (String, String, String) {
    let id = hex::encode(rand::random::<[u8; 12]>());
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = hash_secret(key, &secret);
    (id.clone(), format!("{PREFIX}{id}_{secret}"), hash)
}

/// The id and secret of a presented token; `None` when it is not shaped like one (then it
/// is not a service credential at all).
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty())
        .then_some((id, secret))
}

/// Hex of the keyed hash of a secret.
pub fn hash_secret(key: &MasterKey, secret: &str) -> String {
    hex::encode(key.keyed_hash(secret.as_bytes()))
}

/// Constant-time check of a presented secret against the stored hash.
pub fn secret_matches(key: &MasterKey, secret: &str, stored_hash: &str) -> bool {
    let presented = hash_secret(key, secret);
    presented.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_with_its_key_and_secret() {
        let (key, _) = MasterKey::generate();
        let (id, token, hash) = generate(&key);
        assert!(token.starts_with("osc_"));
        assert!(!hash.contains(&token[28..]));
        let (parsed_id, secret) = parse_token(&token).unwrap();
        assert_eq!(parsed_id, id);
        assert!(secret_matches(&key, secret, &hash));
        assert!(!secret_matches(&key, &format!("{secret}x"), &hash));
        let (other, _) = MasterKey::generate();
        assert!(!secret_matches(&other, secret, &hash));
    }

    #[test]
    fn tokens_of_another_shape_are_not_credentials() {
        for token in [
            "osat_abc",
            "osc_",
            "osc_nothex000000000000000000_x",
            "osc_0123456789abcdef01234567_",
            "osc_0123456789abcdef0123456_x",
        ] {
            assert_eq!(parse_token(token), None, "{token}");
        }
        assert!(parse_token("osc_0123456789abcdef01234567_s3cr3t").is_some());
    }

    #[test]
    fn scopes_round_trip_and_usability() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let mut c = ServiceCredential {
            id: "0".repeat(24),
            pool_id: PoolId("p".into()),
            name: "hr".into(),
            scopes: vec![Scope::DirectoryRead],
            created_at: 0,
            expires_at: Some(1_000),
            last_used_at: None,
            revoked_at: None,
        };
        assert_eq!(c.unusable(999), None);
        assert!(c.unusable(1_000).is_some());
        c.expires_at = None;
        c.revoked_at = Some(5);
        assert!(c.unusable(0).unwrap().contains("revoked"));
        assert!(c.allows(Scope::DirectoryRead) && !c.allows(Scope::EventsRead));
    }
}
