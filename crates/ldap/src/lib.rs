//! A read-only LDAP view of orgsync's user pools (docs/ldap.md).
//!
//! This crate translates LDAP into the directory's read model: DNs, entries, filters and
//! paging cookies here; it never touches SQL.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cookie;
pub mod departments;
pub use directory::dn;
pub mod entry;
pub mod filter;
pub mod limiter;
pub mod schema;
pub mod search;
pub mod server;
pub mod session;
pub mod tree;
