//! orgsync's directory: user pools, connections and the mirrored organization, and the engine
//! that keeps it equal to Feishu (snapshot → plan → apply; event ingestion and application).
//!
//! - [`model`], [`ids`]: the directory's objects and ids.
//! - [`secrets`]: sealing connection secrets with the master key.
//! - [`store`]: the storage port, implemented for SQLite and PostgreSQL by the `store` crate.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod fetch;
pub mod ids;
pub mod model;
pub mod secrets;
pub mod snapshot;
pub mod store;
