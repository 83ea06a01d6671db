//! The cookie of RFC 2696 paged results, stateless: the server keeps nothing between pages,
//! so open paged searches cost no memory however many clients leave them open.
//!
//! A cookie names where the walk stopped (which part of the search, and the store's keyset
//! key in it) and the search it belongs to (a hash of base, scope, filter and attributes),
//! and is signed with the instance's key: a client can neither forge a position nor reuse a
//! cookie for another search (docs/ldap.md, "Paged results").

use directory::secrets::MasterKey;
use subtle::ConstantTimeEq;

/// Where a paged walk stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The part of the search (e.g. people, then groups, then departments for a subtree
    /// search of a pool's base).
    pub stage: u8,
    /// The store's key after the last entry returned (`None`: the stage's start).
    pub after: Option<String>,
}

/// Why a cookie was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    #[error("the paged-results cookie is not one this server issued")]
    Forged,
    #[error("the paged-results cookie belongs to another search")]
    OtherSearch,
}

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const SEARCH_LEN: usize = 16;

/// A stable fingerprint of a search request, so that a cookie is only accepted by the search
/// that issued it (RFC 2696: the other parameters must not change between pages).
pub fn search_fingerprint(key: &MasterKey, parts: &[&str]) -> [u8; SEARCH_LEN] {
    let mut data = Vec::new();
    for p in parts {
        data.extend_from_slice(&(p.len() as u64).to_be_bytes());
        data.extend_from_slice(p.as_bytes());
    }
    let full = key.keyed_hash(&[b"ldap-search\0".as_slice(), &data].concat());
    let mut out = [0u8; SEARCH_LEN];
    out.copy_from_slice(&full[..SEARCH_LEN]);
    out
}

/// `version | search | stage | key length (u32) | key | has key | tag`.
pub fn seal(key: &MasterKey, search: &[u8; SEARCH_LEN], position: &Position) -> Vec<u8> {
    let after = position.after.as_deref().unwrap_or("");
    let mut out = Vec::with_capacity(1 + SEARCH_LEN + 3 + after.len() + TAG_LEN);
    out.push(VERSION);
    out.extend_from_slice(search);
    out.push(position.stage);
    let len = u32::try_from(after.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(after.as_bytes());
    out.push(u8::from(position.after.is_some()));
    let tag = tag(key, &out);
    out.extend_from_slice(&tag);
    out
}

/// The position of a cookie issued by [`seal`] for the same search.
pub fn open(
    key: &MasterKey,
    search: &[u8; SEARCH_LEN],
    cookie: &[u8],
) -> Result<Position, CookieError> {
    if cookie.len() < 1 + SEARCH_LEN + 6 + TAG_LEN {
        return Err(CookieError::Forged);
    }
    let (body, presented) = cookie.split_at(cookie.len() - TAG_LEN);
    if !bool::from(tag(key, body).as_slice().ct_eq(presented)) {
        return Err(CookieError::Forged);
    }
    if body[0] != VERSION {
        return Err(CookieError::Forged);
    }
    if &body[1..1 + SEARCH_LEN] != search {
        return Err(CookieError::OtherSearch);
    }
    let stage = body[1 + SEARCH_LEN];
    let at = 2 + SEARCH_LEN;
    let len = u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
    let len = usize::try_from(len).map_err(|_| CookieError::Forged)?;
    let key_bytes = body
        .get(at + 4..at.saturating_add(4).saturating_add(len))
        .ok_or(CookieError::Forged)?;
    let has_key = *body.get(at + 4 + len).ok_or(CookieError::Forged)? == 1;
    let after = String::from_utf8(key_bytes.to_vec()).map_err(|_| CookieError::Forged)?;
    Ok(Position {
        stage,
        after: has_key.then_some(after),
    })
}

fn tag(key: &MasterKey, body: &[u8]) -> [u8; TAG_LEN] {
    let full = key.keyed_hash(&[b"ldap-cookie\0".as_slice(), body].concat());
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&full[..TAG_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes([byte; 32])
    }

    #[test]
    fn a_cookie_opens_only_for_its_search_and_key() {
        let k = key(1);
        let search = search_fingerprint(&k, &["ou=people,dc=x", "sub", "(uid=*)", "*"]);
        let other = search_fingerprint(&k, &["ou=people,dc=x", "sub", "(uid=a*)", "*"]);
        let at = Position {
            stage: 2,
            after: Some("1733500800000:abc".into()),
        };
        let cookie = seal(&k, &search, &at);
        assert_eq!(open(&k, &search, &cookie), Ok(at));
        assert_eq!(open(&k, &other, &cookie), Err(CookieError::OtherSearch));
        assert_eq!(open(&key(2), &search, &cookie), Err(CookieError::Forged));
        let mut edited = cookie.clone();
        edited[1 + SEARCH_LEN] ^= 1;
        assert_eq!(open(&k, &search, &edited), Err(CookieError::Forged));
        assert_eq!(open(&k, &search, b"short"), Err(CookieError::Forged));
        let start = Position {
            stage: 0,
            after: None,
        };
        assert_eq!(open(&k, &search, &seal(&k, &search, &start)), Ok(start));
    }

    proptest! {
        #[test]
        fn any_position_round_trips(stage in 0u8..8, after in proptest::option::of("\\PC{0,80}")) {
            let k = key(7);
            let search = search_fingerprint(&k, &["b", "one"]);
            let at = Position { stage, after };
            prop_assert_eq!(open(&k, &search, &seal(&k, &search, &at)), Ok(at));
        }

        #[test]
        fn garbage_never_opens(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let k = key(7);
            let search = search_fingerprint(&k, &["b", "one"]);
            prop_assert!(open(&k, &search, &bytes).is_err());
        }
    }
}
