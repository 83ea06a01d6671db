//! The long connection's test vectors (docs/long-connection.md, "Vectors"): a worked
//! `contact.user.created_v3` event frame, its acknowledgement, a ping, a pong and the same
//! event split in two, byte for byte. Shared by the client's, the emulator's and the
//! integration tests.

use super::config::ClientConfig;
use super::frame::Frame;

/// The `service_id` of every observed connection URL.
pub const SERVICE_ID: i32 = 33_554_678;
pub const MESSAGE_ID: &str = "0b7c9f3e-2d41-4a8e-9c65-3f1e2d4c5b6a";
pub const TRACE_ID: &str = "4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c";
pub const TIMESTAMP: &str = "1700000000200";

/// The event: compact JSON, raw UTF-8, 530 bytes.
pub const EVENT_PAYLOAD: &str = r#"{"schema":"2.0","header":{"event_id":"5e3702a84e847582be8db7fb73283c02","token":"vt_test_token_001","create_time":"1700000000123","event_type":"contact.user.created_v3","tenant_key":"2ca1d211f64f6438","app_id":"cli_a1b2c3d4e5f60718"},"event":{"object":{"open_id":"ou_7dab8a3d3cdcc9da365777c7ad535d62","union_id":"on_576833b917ada3d939b9a3c2d53e72c8","name":"张三","department_ids":["od-4e6ac4d14bcd5071a37a39de902c7141"],"status":{"is_frozen":false,"is_resigned":false,"is_activated":true,"is_exited":false,"is_unjoin":false}}}}"#;
pub const EVENT_PAYLOAD_SHA256: &str =
    "3db34ee3e3ef435ab08d2686ff2616074dfb30b31a3ac1a9b8f89f86a9aac7bd";
/// The encoded data frame: 714 bytes.
pub const EVENT_FRAME_SHA256: &str =
    "6ee331448a031147bb3db0353ef634ec066ac2a2d0b01b544a451dafaaa0c3a8";
/// Its first 184 bytes: fields 1–5 and the tag and length of the payload.
pub const EVENT_FRAME_HEAD_HEX: &str = concat!(
    "08ac0210959a97ece39fe7cb1718f681801020012a1a0a0974696d657374616d",
    "70120d313730303030303030303230302a0d0a047479706512056576656e742a",
    "320a0a6d6573736167655f6964122430623763396633652d326434312d346138",
    "652d396336352d3366316532643463356236612a080a0373756d1201312a080a",
    "037365711201302a2c0a0874726163655f696412203466336132623163306439",
    "653866376136623563346433653266316130623963429204",
);
/// The acknowledgement after 12 ms: 209 bytes.
pub const ACK_HEX: &str = concat!(
    "08ac0210959a97ece39fe7cb1718f681801020012a1a0a0974696d657374616d",
    "70120d313730303030303030303230302a0d0a047479706512056576656e742a",
    "320a0a6d6573736167655f6964122430623763396633652d326434312d346138",
    "652d396336352d3366316532643463356236612a080a0373756d1201312a080a",
    "037365711201302a2c0a0874726163655f696412203466336132623163306439",
    "6538663761366235633464336532663161306239632a0c0a0662697a5f727412",
    "023132420c7b22636f6465223a3230307d",
);
pub const ACK_SHA256: &str = "afca8c81ebf9e6c0f90de3013ba1e4d98319c27db0b52c83bebd0d852eeb0ef2";
/// A ping (what the official Python SDK sends).
pub const PING_HEX: &str = "0800100018f681801020002a0c0a0474797065120470696e67";
/// A pong carrying the SDKs' default config with `ReconnectCount` -1.
pub const PONG_HEX: &str = concat!(
    "0800100018f681801020002a0c0a04747970651204706f6e6742547b22526563",
    "6f6e6e656374436f756e74223a2d312c225265636f6e6e656374496e74657276",
    "616c223a3132302c225265636f6e6e6563744e6f6e6365223a33302c2250696e",
    "67496e74657276616c223a3132307d",
);

/// The config the pong vector carries.
pub fn pong_config() -> ClientConfig {
    ClientConfig {
        reconnect_count: Some(-1),
        reconnect_interval: Some(120),
        reconnect_nonce: Some(30),
        ping_interval: Some(120),
    }
}

fn data_frame(seq_id: u64, log_id: u64, sum: usize, seq: usize, payload: &[u8]) -> Frame {
    Frame::event(
        seq_id,
        log_id,
        SERVICE_ID,
        TIMESTAMP,
        MESSAGE_ID,
        (seq, sum),
        TRACE_ID,
        payload,
    )
}

/// The worked event frame, unsplit.
pub fn event_frame() -> Frame {
    data_frame(
        300,
        1_700_000_000_123_456_789,
        1,
        0,
        EVENT_PAYLOAD.as_bytes(),
    )
}

/// The same event in two fragments, cut at byte 360 (inside `张`).
pub fn split_event_frames() -> [Frame; 2] {
    let bytes = EVENT_PAYLOAD.as_bytes();
    [
        data_frame(301, 1_700_000_000_123_456_790, 2, 0, &bytes[..360]),
        data_frame(302, 1_700_000_000_123_456_791, 2, 1, &bytes[360..]),
    ]
}
