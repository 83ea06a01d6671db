//! orgsync's integration tests: the real engine, store and emulator in-process, driven the way
//! a deployment drives them. Every storage-touching test runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)]

mod support;

mod changelog;
mod crash;
mod events;
mod import;
mod jobs;
