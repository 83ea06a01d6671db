//! A faithful Feishu / Lark emulator (protocol §7): a fake tenant served over the Contact v3
//! API, with scopes, permissions, rate limits, faults and event pushes.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod tenant;
