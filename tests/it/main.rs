//! orgsync's integration tests: the real engine, store and emulator in-process, driven the way
//! a deployment drives them. Every storage-touching test runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)]

mod serve_support;
mod support;

mod admin_ops;
mod api;
mod browser;
mod changelog;
mod concurrency;
mod console;
mod crash;
mod event_endpoint;
mod events;
mod feed;
mod import;
mod jobs;
mod ldap;
mod one_writer;
mod parked;
mod receiver;
mod webhooks;
