//! The Feishu / Lark protocol layer of orgsync.
//!
//! - [`crypto`]: AES-256-CBC event encryption, signatures, token comparison (pure).
//! - [`envelope`]: one entry point that turns an event request (headers + raw body +
//!   the connection's secrets) into a typed envelope or a typed rejection (pure).
//! - [`events`]: typed contact events, 2.0 and legacy 1.0 (pure).
//! - [`model`] and [`ids`]: the Open API wire types and id types.
//! - [`client`]: the async Open API client (token cache, paging, pacing, retries).
//! - [`long_connection`]: the long connection's frames, fragments, endpoint and reconnect
//!   schedule (pure).
//!
//! Nothing here touches a database or an HTTP server.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod client;
pub mod crypto;
pub mod envelope;
pub mod events;
pub mod ids;
pub mod long_connection;
pub mod model;
mod serde_util;
pub mod vectors;
