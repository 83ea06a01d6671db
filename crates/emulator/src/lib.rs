//! A faithful Feishu / Lark emulator (protocol §7): a fake tenant served over the Contact v3
//! API, with scopes, permissions, rate limits, faults and event pushes.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod api;
pub mod avatar;
pub mod clock;
pub mod config;
pub mod events;
pub mod faults;
pub mod generate;
pub mod hub;
pub mod long_connection;
pub mod mutate;
pub mod names;
pub mod pusher;
pub mod ratelimit;
pub mod server;
pub mod tenant;

pub use config::{Behaviour, EmulatorConfig};
pub use server::{Emulator, EmulatorError, EmulatorState};
