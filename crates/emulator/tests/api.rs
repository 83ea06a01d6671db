//! The emulator's one integration test binary: the emulator runs in-process on port 0 and
//! is driven by the real `feishu` client (raw reqwest where bytes and headers matter).
#![allow(clippy::unwrap_used)]

#[path = "api/support.rs"]
mod support;

#[path = "api/admin.rs"]
mod admin;
#[path = "api/auth.rs"]
mod auth;
#[path = "api/faults.rs"]
mod faults;
#[path = "api/fields.rs"]
mod fields;
#[path = "api/import.rs"]
mod import;
#[path = "api/long_connection.rs"]
mod long_connection;
#[path = "api/paging.rs"]
mod paging;
#[path = "api/pusher.rs"]
mod pusher;
#[path = "api/ratelimit.rs"]
mod ratelimit;
#[path = "api/scope.rs"]
mod scope;
#[path = "api/surface.rs"]
mod surface;
