//! Feishu's long connection (使用长连接接收事件, docs/long-connection.md): the app dials out,
//! keeps one WebSocket open and receives its events as protobuf frames. All but [`socket`]
//! is pure.
//!
//! - [`frame`]: the `pbbp2.Frame` codec; pings, pongs, acknowledgements.
//! - [`reassembly`]: payloads split over several data frames, joined with bounded memory.
//! - [`endpoint`]: endpoint discovery's request and response, the connection URL, and what
//!   each documented failure means for the admin.
//! - [`config`]: the server-sent client config, clamped, and the reconnect schedule.
//! - [`socket`]: the client itself (the endpoint call and the WebSocket are its only I/O).
//! - [`vectors`]: byte-exact frames for the tests of every layer.

pub mod config;
pub mod endpoint;
pub mod frame;
pub mod reassembly;
pub mod socket;
pub mod vectors;

pub use config::{Bounds, ClientConfig, Schedule, Settings};
pub use endpoint::{ConnectFailure, ConnectionUrl, EndpointRequest, EndpointResponse};
pub use frame::{DataHeaders, Frame, FrameError, FrameKind, Header};
pub use reassembly::{Complete, FragmentError, Limits, Reassembly};
pub use socket::{EventSink, SocketConfig, Status};
