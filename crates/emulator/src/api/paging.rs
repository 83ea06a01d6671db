//! Page sizes and opaque page tokens.
//!
//! A page token is standard base64 (with `+`, `/`, `=`) of a 4-byte offset and a 12-byte
//! MAC over the offset and the list it belongs to (app, endpoint, list parameters). A token
//! that was altered, made up, or taken from another list answers 40012, as Feishu does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::errors::ApiError;
use super::params::Params;
use crate::config::PageSizeOutOfRange;

const MAC_LEN: usize = 12;

/// Signs and checks page tokens with a per-emulator key.
#[derive(Debug, Clone)]
pub struct PageCodec {
    key: [u8; 32],
}

impl PageCodec {
    pub fn new(seed: u64) -> Self {
        let mut h = Sha256::new();
        h.update(b"emulator page token key");
        h.update(seed.to_be_bytes());
        Self {
            key: h.finalize().into(),
        }
    }

    fn mac(&self, binding: &str, offset: u32) -> [u8; MAC_LEN] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(binding.as_bytes());
        h.update(offset.to_be_bytes());
        let digest = h.finalize();
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&digest[..MAC_LEN]);
        mac
    }

    /// The token of the page starting at `offset` of the list named by `binding`.
    pub fn encode(&self, binding: &str, offset: usize) -> String {
        let offset = u32::try_from(offset).unwrap_or(u32::MAX);
        let mut raw = offset.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.mac(binding, offset));
        STANDARD.encode(raw)
    }

    /// The offset a token stands for, or 40012.
    pub fn decode(&self, binding: &str, token: &str) -> Result<usize, ApiError> {
        let raw = STANDARD
            .decode(token)
            .map_err(|_| ApiError::page_token_invalid())?;
        if raw.len() != 4 + MAC_LEN {
            return Err(ApiError::page_token_invalid());
        }
        let (offset, mac) = raw.split_at(4);
        let offset = u32::from_be_bytes([offset[0], offset[1], offset[2], offset[3]]);
        if mac != self.mac(binding, offset) {
            return Err(ApiError::page_token_invalid());
        }
        usize::try_from(offset).map_err(|_| ApiError::page_token_invalid())
    }
}

/// Default and maximum `page_size` of a list endpoint.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    pub default: usize,
    pub max: usize,
}

pub const CHILDREN: PageLimits = PageLimits {
    default: 10,
    max: 50,
};
pub const USERS_BY_DEPARTMENT: PageLimits = PageLimits {
    default: 10,
    max: 50,
};
pub const SCOPES: PageLimits = PageLimits {
    default: 50,
    max: 100,
};
pub const GROUPS: PageLimits = PageLimits {
    default: 50,
    max: 100,
};
pub const GROUP_MEMBERS: PageLimits = PageLimits {
    default: 50,
    max: 100,
};
pub const MEMBER_BELONG: PageLimits = PageLimits {
    default: 500,
    max: 1000,
};

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub offset: usize,
    pub size: usize,
}

impl PageRequest {
    /// Reads `page_size` and `page_token`.
    pub fn parse(
        params: &Params,
        limits: PageLimits,
        mode: PageSizeOutOfRange,
        codec: &PageCodec,
        binding: &str,
    ) -> Result<Self, ApiError> {
        let size = match params.get("page_size").filter(|s| !s.is_empty()) {
            None => limits.default,
            Some(raw) => {
                let n: i64 = raw.trim().parse().map_err(|_| {
                    ApiError::field("page_size", raw, "page_size must be an integer")
                })?;
                match (mode, usize::try_from(n)) {
                    (_, Ok(n)) if (1..=limits.max).contains(&n) => n,
                    (PageSizeOutOfRange::Reject, _) => return Err(ApiError::page_size_invalid()),
                    (PageSizeOutOfRange::Clamp, Ok(n)) if n > limits.max => limits.max,
                    (PageSizeOutOfRange::Clamp, _) => limits.default,
                }
            }
        };
        let offset = match params.get("page_token").filter(|s| !s.is_empty()) {
            None => 0,
            Some(token) => codec.decode(binding, token)?,
        };
        Ok(Self { offset, size })
    }

    /// The page of `items`, whether more follow, and the next token.
    pub fn slice<'a, T>(
        &self,
        items: &'a [T],
        codec: &PageCodec,
        binding: &str,
    ) -> (&'a [T], bool, Option<String>) {
        let start = self.offset.min(items.len());
        let end = start.saturating_add(self.size).min(items.len());
        let has_more = end < items.len();
        let token = has_more.then(|| codec.encode(binding, end));
        (&items[start..end], has_more, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_bound_to_their_list() {
        let codec = PageCodec::new(1);
        let t = codec.encode("app|children|od-1", 50);
        assert!(t.ends_with('='));
        assert_eq!(codec.decode("app|children|od-1", &t).unwrap(), 50);
        assert_eq!(
            codec.decode("app|children|od-2", &t).unwrap_err().code,
            40012
        );
        assert_eq!(
            PageCodec::new(2)
                .decode("app|children|od-1", &t)
                .unwrap_err()
                .code,
            40012
        );
        for bad in ["", "abc", "!!!!", &t[1..]] {
            assert_eq!(
                codec.decode("app|children|od-1", bad).unwrap_err().code,
                40012
            );
        }
        // Flipping a bit of the offset breaks the MAC.
        let mut raw = STANDARD.decode(&t).unwrap();
        raw[3] ^= 1;
        assert_eq!(
            codec
                .decode("app|children|od-1", &STANDARD.encode(raw))
                .unwrap_err()
                .code,
            40012
        );
    }

    #[test]
    fn page_sizes_are_checked_or_clamped() {
        let codec = PageCodec::new(0);
        let parse = |q: &str, mode| {
            PageRequest::parse(&Params::parse(Some(q)), CHILDREN, mode, &codec, "b")
        };
        assert_eq!(parse("", PageSizeOutOfRange::Reject).unwrap().size, 10);
        assert_eq!(
            parse("page_size=50", PageSizeOutOfRange::Reject)
                .unwrap()
                .size,
            50
        );
        for q in ["page_size=51", "page_size=0", "page_size=-1"] {
            assert_eq!(
                parse(q, PageSizeOutOfRange::Reject).unwrap_err().code,
                40011
            );
        }
        assert_eq!(
            parse("page_size=51", PageSizeOutOfRange::Clamp)
                .unwrap()
                .size,
            50
        );
        assert_eq!(
            parse("page_size=0", PageSizeOutOfRange::Clamp)
                .unwrap()
                .size,
            10
        );
        assert_eq!(
            parse("page_size=ten", PageSizeOutOfRange::Reject)
                .unwrap_err()
                .code,
            99992402
        );
    }
}
