//! orgsync's own ids. Every object gets a stable id of its own; Feishu ids live in the
//! per-connection external-id mapping (design.md §2), so a pool can later hold several sources.

use std::fmt;

use serde::{Deserialize, Serialize};

/// 24 lowercase hex digits (12 random bytes), the shape of a user pool id.
pub fn new_id() -> String {
    let bytes: [u8; 12] = rand::random();
    hex::encode(bytes)
}

/// Whether `s` has the shape of an id made by [`new_id`].
pub fn is_id(s: &str) -> bool {
    s.len() == 24
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// A fresh random id.
            pub fn generate() -> Self {
                Self(new_id())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

id_type!(
    /// A user pool.
    PoolId
);
id_type!(
    /// A connection (one Feishu / Lark app inside a pool).
    ConnectionId
);
id_type!(
    /// A user in a pool.
    UserId
);
id_type!(
    /// A department in a pool.
    DepartmentId
);
id_type!(
    /// A user group in a pool.
    GroupId
);
id_type!(
    /// A sync job (import or reconciliation).
    JobId
);

/// Milliseconds since the Unix epoch: the one time type of the directory (portable across
/// SQLite and PostgreSQL, and what Feishu's `create_time` is in).
pub type Millis = i64;

/// `2025-01-31T08:15:02.345Z` from Unix milliseconds.
pub fn iso8601(ms: Millis) -> String {
    let (y, m, d, secs) = civil(ms);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        ms.rem_euclid(1000)
    )
}

/// Year, month, day and seconds of the day (UTC) of Unix milliseconds (Howard Hinnant's
/// civil_from_days).
pub fn civil(ms: Millis) -> (i64, i64, i64, i64) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem)
}

/// The current time in [`Millis`].
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_24_hex_and_distinct() {
        let a = PoolId::generate();
        let b = PoolId::generate();
        assert!(is_id(a.as_str()));
        assert_ne!(a, b);
        assert!(!is_id("xyz"));
    }
}
