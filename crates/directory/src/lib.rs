//! orgsync's directory: user pools, connections and the mirrored organization, and the engine
//! that keeps it equal to Feishu (snapshot → plan → apply; event ingestion and application).
//!
//! - [`model`], [`ids`]: the directory's objects and ids.
//! - [`secrets`]: sealing connection secrets with the master key.
//! - [`feed`]: the change feed's catalogue, derivation and envelope (pure).
//! - [`credentials`]: service credentials of downstream systems.
//! - [`webhooks`]: signed deliveries of the feed to endpoints (Standard Webhooks).
//! - [`store`]: the storage port, implemented for SQLite and PostgreSQL by the `store` crate.
//! - [`snapshot`]: what one full pull saw of Feishu.
//! - [`merge`]: Feishu object → directory object (omitted = unknown, not cleared).
//! - [`plan`]: snapshot + stored state → ordered, logged, thresholded writes (pure).
//! - [`admin`]: the admin operations behind the REST API, the console and the CLI.
//! - [`compare`]: the directory comparison (snapshot vs store), object by object.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod app_passwords;
pub mod compare;
pub mod credentials;
pub mod dn;
pub mod engine;
pub mod feed;
pub mod fetch;
pub mod ids;
pub mod ingest;
pub mod ldap_view;
pub mod merge;
pub mod model;
pub mod plan;
pub mod schedule;
pub mod secrets;
pub mod snapshot;
pub mod store;
pub mod webhooks;
pub mod worker;
