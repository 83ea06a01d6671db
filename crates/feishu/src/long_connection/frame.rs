//! The `pbbp2.Frame` of the long connection (docs/long-connection.md, "Frames"): one per
//! binary WebSocket message, protobuf (proto2). Fields 1–4 are `required` and always on the
//! wire, zeros included: every official SDK rejects a frame without them.

use prost::Message;
use serde::{Deserialize, Serialize};

use super::config::ClientConfig;

/// `method` of a control frame (ping, pong).
pub const METHOD_CONTROL: i32 = 0;
/// `method` of a data frame (an event, or its acknowledgement).
pub const METHOD_DATA: i32 = 1;

/// Header keys (exact, case-sensitive).
pub mod keys {
    pub const TYPE: &str = "type";
    pub const MESSAGE_ID: &str = "message_id";
    pub const SUM: &str = "sum";
    pub const SEQ: &str = "seq";
    pub const TRACE_ID: &str = "trace_id";
    pub const TIMESTAMP: &str = "timestamp";
    pub const BIZ_RT: &str = "biz_rt";
}

/// Values of the `type` header.
pub mod types {
    pub const PING: &str = "ping";
    pub const PONG: &str = "pong";
    pub const EVENT: &str = "event";
    pub const CARD: &str = "card";
}

/// One key/value pair of a frame; values are strings, numbers in decimal.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Header {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub value: String,
}

impl Header {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// A frame as the wire has it. `seq_id` and `log_id` use the full `u64` range (real log ids
/// do); fields 6, 7 and 9 are kept and echoed, never read.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Frame {
    #[prost(uint64, required, tag = "1")]
    pub seq_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub log_id: u64,
    #[prost(int32, required, tag = "3")]
    pub service: i32,
    #[prost(int32, required, tag = "4")]
    pub method: i32,
    #[prost(message, repeated, tag = "5")]
    pub headers: Vec<Header>,
    #[prost(string, optional, tag = "6")]
    pub payload_encoding: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub payload_type: Option<String>,
    #[prost(bytes = "vec", optional, tag = "8")]
    pub payload: Option<Vec<u8>>,
    #[prost(string, optional, tag = "9")]
    pub log_id_new: Option<String>,
}

/// Why a received frame cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not a pbbp2 frame: {0}")]
    Decode(String),
    #[error("data frame without the `{0}` header")]
    MissingHeader(&'static str),
    #[error("data frame header `{key}` is not a number: {value:?}")]
    BadNumber { key: &'static str, value: String },
    #[error("pong with a client config that is not JSON: {0}")]
    BadConfig(String),
}

/// What a received frame is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameKind {
    /// The server's answer to a ping: the client config to apply, if it carries one.
    Pong,
    /// A server ping: the SDKs neither answer nor act on it.
    Ping,
    /// A pushed message (or one fragment of it): `event`, `card`, or another type.
    Data(String),
    /// A control frame of another type, or a method the protocol does not define.
    Unknown,
}

/// The headers every data frame carries (docs/long-connection.md, "Frames"): which message
/// it is, and which fragment of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataHeaders {
    pub message_id: String,
    /// Number of fragments, at least 1.
    pub sum: u32,
    /// 0-based index of this fragment.
    pub seq: u32,
    pub trace_id: String,
}

/// The JSON payload of an acknowledgement: an HTTP-style status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AckBody {
    pub code: u16,
}

impl Frame {
    /// Decodes one binary WebSocket message.
    pub fn decode_bytes(bytes: &[u8]) -> Result<Self, FrameError> {
        Self::decode(bytes).map_err(|e| FrameError::Decode(e.to_string()))
    }

    /// The value of the first header named `key` (exact name).
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.key == key)
            .map(|h| h.value.as_str())
    }

    /// The client's ping: `SeqID`/`LogID` 0, the connection's `service`, one `type` header.
    pub fn ping(service: i32) -> Self {
        Self {
            service,
            method: METHOD_CONTROL,
            headers: vec![Header::new(keys::TYPE, types::PING)],
            ..Self::default()
        }
    }

    /// A pushed event's data frame (or one fragment of it, `seq` of `sum`), with the headers
    /// every SDK requires, in the server's order.
    #[allow(clippy::too_many_arguments)]
    pub fn event(
        seq_id: u64,
        log_id: u64,
        service: i32,
        timestamp: &str,
        message_id: &str,
        (seq, sum): (usize, usize),
        trace_id: &str,
        payload: &[u8],
    ) -> Self {
        Self {
            seq_id,
            log_id,
            service,
            method: METHOD_DATA,
            headers: vec![
                Header::new(keys::TIMESTAMP, timestamp),
                Header::new(keys::TYPE, types::EVENT),
                Header::new(keys::MESSAGE_ID, message_id),
                Header::new(keys::SUM, sum.to_string()),
                Header::new(keys::SEQ, seq.to_string()),
                Header::new(keys::TRACE_ID, trace_id),
            ],
            payload: Some(payload.to_vec()),
            ..Self::default()
        }
    }

    /// The server's pong, carrying the client config (always: one SDK fails on a pong
    /// without it).
    pub fn pong(service: i32, config: &ClientConfig) -> Self {
        Self {
            service,
            method: METHOD_CONTROL,
            headers: vec![Header::new(keys::TYPE, types::PONG)],
            payload: Some(serde_json::to_vec(config).unwrap_or_default()),
            ..Self::default()
        }
    }

    pub fn kind(&self) -> FrameKind {
        let kind = self.header(keys::TYPE).unwrap_or_default();
        match self.method {
            METHOD_CONTROL => match kind {
                types::PONG => FrameKind::Pong,
                types::PING => FrameKind::Ping,
                _ => FrameKind::Unknown,
            },
            METHOD_DATA => FrameKind::Data(kind.to_owned()),
            _ => FrameKind::Unknown,
        }
    }

    /// The client config a pong carries (`None`: no payload; unknown keys ignored).
    pub fn client_config(&self) -> Result<Option<ClientConfig>, FrameError> {
        match self.payload.as_deref() {
            None | Some([]) => Ok(None),
            Some(bytes) => serde_json::from_slice(bytes)
                .map(Some)
                .map_err(|e| FrameError::BadConfig(e.to_string())),
        }
    }

    /// The message and fragment a data frame belongs to; the SDKs refuse data frames
    /// without these headers, so do we.
    pub fn data_headers(&self) -> Result<DataHeaders, FrameError> {
        let get = |key: &'static str| self.header(key).ok_or(FrameError::MissingHeader(key));
        let number = |key: &'static str| -> Result<u32, FrameError> {
            let value = get(key)?;
            value.trim().parse().map_err(|_| FrameError::BadNumber {
                key,
                value: value.to_owned(),
            })
        };
        Ok(DataHeaders {
            message_id: get(keys::MESSAGE_ID)?.to_owned(),
            sum: number(keys::SUM)?.max(1),
            seq: number(keys::SEQ)?,
            trace_id: get(keys::TRACE_ID)?.to_owned(),
        })
    }

    /// The acknowledgement of a (complete) data frame: the frame echoed with every field and
    /// header, plus `biz_rt` (the handling time in ms), and `{"code":…}` as its payload.
    pub fn ack(mut self, code: u16, biz_rt_ms: i64) -> Self {
        self.headers
            .push(Header::new(keys::BIZ_RT, biz_rt_ms.to_string()));
        self.payload = Some(serde_json::to_vec(&AckBody { code }).unwrap_or_default());
        self
    }

    /// The status an acknowledgement carries (for the emulator): `None` when the payload is
    /// not `{"code": n, …}`.
    pub fn ack_code(&self) -> Option<u16> {
        let body: AckBody = serde_json::from_slice(self.payload.as_deref()?).ok()?;
        Some(body.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::long_connection::vectors as v;
    use sha2::{Digest, Sha256};

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn the_ping_keeps_its_zero_required_fields() {
        let ping = Frame::ping(v::SERVICE_ID).encode_to_vec();
        assert_eq!(hex::encode(&ping), v::PING_HEX);
        let back = Frame::decode_bytes(&ping).unwrap();
        assert_eq!(back.kind(), FrameKind::Ping);
        assert_eq!(back.service, v::SERVICE_ID);
    }

    #[test]
    fn the_go_sdks_empty_optional_fields_decode_and_echo() {
        let mut bytes = hex::decode(v::PING_HEX).unwrap();
        bytes.extend_from_slice(&[0x32, 0x00, 0x3a, 0x00, 0x4a, 0x00]);
        let frame = Frame::decode_bytes(&bytes).unwrap();
        assert_eq!(frame.payload_encoding.as_deref(), Some(""));
        assert_eq!(frame.log_id_new.as_deref(), Some(""));
        assert_eq!(frame.encode_to_vec(), bytes);
    }

    #[test]
    fn the_pong_carries_the_client_config() {
        let pong = Frame::decode_bytes(&hex::decode(v::PONG_HEX).unwrap()).unwrap();
        assert_eq!(pong.kind(), FrameKind::Pong);
        let config = pong.client_config().unwrap().unwrap();
        assert_eq!(config, v::pong_config());
        // The emulator's pong is the same bytes.
        assert_eq!(
            hex::encode(Frame::pong(v::SERVICE_ID, &config).encode_to_vec()),
            v::PONG_HEX
        );
    }

    #[test]
    fn the_worked_data_frame_and_its_ack_are_byte_exact() {
        let payload = v::EVENT_PAYLOAD.as_bytes();
        assert_eq!(payload.len(), 530);
        assert_eq!(sha(payload), v::EVENT_PAYLOAD_SHA256);
        let frame = v::event_frame();
        let bytes = frame.encode_to_vec();
        assert_eq!(bytes.len(), 714);
        assert_eq!(sha(&bytes), v::EVENT_FRAME_SHA256);
        assert_eq!(hex::encode(&bytes[..184]), v::EVENT_FRAME_HEAD_HEX);

        let got = Frame::decode_bytes(&bytes).unwrap();
        assert_eq!(got, frame);
        assert_eq!(got.kind(), FrameKind::Data("event".into()));
        let headers = got.data_headers().unwrap();
        assert_eq!(
            (headers.message_id.as_str(), headers.sum, headers.seq),
            (v::MESSAGE_ID, 1, 0)
        );
        let ack = got.ack(200, 12).encode_to_vec();
        assert_eq!(ack.len(), 209);
        assert_eq!(sha(&ack), v::ACK_SHA256);
        assert_eq!(hex::encode(&ack), v::ACK_HEX);
        assert_eq!(Frame::decode_bytes(&ack).unwrap().ack_code(), Some(200));
    }

    #[test]
    fn data_frames_without_their_headers_are_refused() {
        for missing in [keys::MESSAGE_ID, keys::SUM, keys::SEQ, keys::TRACE_ID] {
            let mut frame = v::event_frame();
            frame.headers.retain(|h| h.key != missing);
            assert_eq!(
                frame.data_headers(),
                Err(FrameError::MissingHeader(missing))
            );
        }
        let mut frame = v::event_frame();
        for h in &mut frame.headers {
            if h.key == keys::SUM {
                h.value = "two".into();
            }
        }
        assert!(matches!(
            frame.data_headers(),
            Err(FrameError::BadNumber { key: "sum", .. })
        ));
        assert!(matches!(
            Frame::decode_bytes(&[0xff, 0xff, 0xff]),
            Err(FrameError::Decode(_))
        ));
    }

    #[test]
    fn full_u64_ids_round_trip() {
        let mut frame = v::event_frame();
        frame.seq_id = u64::MAX;
        frame.log_id = 1_787_235_810_156_317_278;
        let back = Frame::decode_bytes(&frame.encode_to_vec()).unwrap();
        assert_eq!((back.seq_id, back.log_id), (frame.seq_id, frame.log_id));
    }

    #[test]
    fn a_real_frame_head_decodes_as_reported() {
        // The first 30 bytes of a real data frame (docs/long-connection.md, "Frames"): the
        // four required fields and the start of the `timestamp` header.
        let head =
            hex::decode("08ceddf2b31710de94e6d180b0e2e61818f681801020012a1a0a0974696d").unwrap();
        let mut buf = &head[..23];
        let mut frame = Frame::default();
        while !buf.is_empty() {
            let (tag, wire) = prost::encoding::decode_key(&mut buf).unwrap();
            frame
                .merge_field(tag, wire, &mut buf, Default::default())
                .unwrap();
        }
        assert_eq!(frame.seq_id, 6_282_849_998);
        assert_eq!(frame.log_id, 1_787_235_810_156_317_278);
        assert_eq!(frame.service, 33_554_678);
        assert_eq!(frame.method, METHOD_DATA);
    }
}
