//! RTMP messages: protocol control, user control, commands, data and media.

use bytes::{Buf, BufMut, Bytes};
use thiserror::Error;

use super::amf0::{Amf0Error, Value};

/// Message type ids.
pub mod type_id {
    /// Set Chunk Size.
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort.
    pub const ABORT: u8 = 2;
    /// Acknowledgement.
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control.
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size.
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Set Peer Bandwidth.
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio.
    pub const AUDIO: u8 = 8;
    /// Video.
    pub const VIDEO: u8 = 9;
    /// Data (AMF3).
    pub const DATA_AMF3: u8 = 15;
    /// Command (AMF3).
    pub const COMMAND_AMF3: u8 = 17;
    /// Data (AMF0): `@setDataFrame` / `onMetaData`.
    pub const DATA_AMF0: u8 = 18;
    /// Command (AMF0).
    pub const COMMAND_AMF0: u8 = 20;
    /// Go Away (facebookincubator/rtmp-go-away).
    pub const GO_AWAY: u8 = 32;
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// The peer's new maximum chunk size.
    SetChunkSize(u32),
    /// Discard the partial message on this chunk stream.
    Abort(u32),
    /// Total bytes the peer has received so far (wrapping at 2^32).
    Acknowledgement(u32),
    /// Stream and ping events.
    UserControl(UserControl),
    /// How many bytes may pass before the receiver must acknowledge.
    WindowAckSize(u32),
    /// The peer's output bandwidth limit (advisory; answered with a Window Ack Size).
    SetPeerBandwidth {
        /// Window size in bytes.
        size: u32,
        /// 0 hard, 1 soft, 2 dynamic.
        limit: u8,
    },
    /// An AMF0 command: `connect`, `_result`, `onStatus`, ...
    Command(Command),
    /// An AMF0 data message, kept raw so it can be forwarded byte for byte.
    Data(Bytes),
    /// An audio tag body.
    Audio(Bytes),
    /// A video tag body.
    Video(Bytes),
    /// The server is about to shut down: move to a new connection.
    GoAway,
    /// Anything else (aggregate, AMF3, shared objects): ignored by both sides.
    Other(u8),
}

/// User Control events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserControl {
    /// The stream is ready.
    StreamBegin(u32),
    /// The stream ended.
    StreamEof(u32),
    /// A keep-alive the receiver must answer with the same timestamp.
    PingRequest(u32),
    /// The answer to a PingRequest.
    PingResponse(u32),
    /// Any other event (buffer length, recorded, dry): no action needed.
    Other(u16),
}

/// An AMF0 command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Procedure name.
    pub name: String,
    /// Transaction id; 0 for notifications such as `onStatus`.
    pub transaction: f64,
    /// The command object (often `null`).
    pub object: Value,
    /// Further arguments.
    pub args: Vec<Value>,
}

/// Why a message body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    /// A control message shorter than its fixed layout.
    #[error("message type {type_id} truncated ({len} bytes)")]
    Truncated {
        /// The message type.
        type_id: u8,
        /// Its actual length.
        len: usize,
    },
    /// A command whose AMF0 did not decode.
    #[error("malformed command: {0}")]
    Amf0(#[from] Amf0Error),
    /// A command that does not start with its name.
    #[error("command message without a name")]
    BadCommand,
}

impl Command {
    /// A command with a `null` object.
    pub fn new(name: &str, transaction: f64, args: Vec<Value>) -> Self {
        Self {
            name: name.to_owned(),
            transaction,
            object: Value::Null,
            args,
        }
    }

    /// The `code` of the info object of an `onStatus` or `_error`, if any.
    pub fn info_field(&self, field: &str) -> Option<&str> {
        self.args
            .iter()
            .chain(std::iter::once(&self.object))
            .find_map(|v| v.get(field).and_then(Value::as_str))
    }

    fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(256);
        Value::String(self.name.clone()).encode(&mut out);
        Value::Number(self.transaction).encode(&mut out);
        self.object.encode(&mut out);
        for arg in &self.args {
            arg.encode(&mut out);
        }
        out.into()
    }
}

impl Message {
    /// Decodes the body of a message of type `type_id`.
    pub fn decode(type_id: u8, payload: Bytes) -> Result<Self, MessageError> {
        use type_id::*;
        let truncated = || MessageError::Truncated {
            type_id,
            len: payload.len(),
        };
        let u32_body = |p: &Bytes| -> Result<u32, MessageError> {
            p.get(..4).map(|mut b| b.get_u32()).ok_or_else(truncated)
        };
        Ok(match type_id {
            SET_CHUNK_SIZE => Self::SetChunkSize(u32_body(&payload)? & 0x7fff_ffff),
            ABORT => Self::Abort(u32_body(&payload)?),
            ACKNOWLEDGEMENT => Self::Acknowledgement(u32_body(&payload)?),
            WINDOW_ACK_SIZE => Self::WindowAckSize(u32_body(&payload)?),
            SET_PEER_BANDWIDTH => {
                let size = u32_body(&payload)?;
                Self::SetPeerBandwidth {
                    size,
                    limit: payload.get(4).copied().unwrap_or(2),
                }
            }
            USER_CONTROL => {
                if payload.len() < 2 {
                    return Err(truncated());
                }
                let mut p = &payload[..];
                let event = p.get_u16();
                let value = p.get(..4).map(|mut b| b.get_u32());
                Self::UserControl(match (event, value) {
                    (0, Some(v)) => UserControl::StreamBegin(v),
                    (1, Some(v)) => UserControl::StreamEof(v),
                    (6, Some(v)) => UserControl::PingRequest(v),
                    (7, Some(v)) => UserControl::PingResponse(v),
                    (0 | 1 | 6 | 7, None) => return Err(truncated()),
                    (other, _) => UserControl::Other(other),
                })
            }
            COMMAND_AMF0 => {
                let mut values = Value::decode_all(&payload)?.into_iter().peekable();
                let Some(Value::String(name)) = values.next() else {
                    return Err(MessageError::BadCommand);
                };
                // Some servers (ffmpeg's onFCPublish) send a bare name.
                let transaction = match values.peek() {
                    Some(Value::Number(n)) => {
                        let n = *n;
                        values.next();
                        n
                    }
                    _ => 0.0,
                };
                let object = values.next().unwrap_or(Value::Null);
                Self::Command(Command {
                    name,
                    transaction,
                    object,
                    args: values.collect(),
                })
            }
            DATA_AMF0 => Self::Data(payload),
            AUDIO => Self::Audio(payload),
            VIDEO => Self::Video(payload),
            GO_AWAY => Self::GoAway,
            other => Self::Other(other),
        })
    }

    /// Encodes the body; returns (type id, body).
    pub fn encode(&self) -> (u8, Bytes) {
        use type_id::*;
        let word = |v: u32| Bytes::copy_from_slice(&v.to_be_bytes());
        match self {
            Self::SetChunkSize(size) => (SET_CHUNK_SIZE, word(*size)),
            Self::Abort(csid) => (ABORT, word(*csid)),
            Self::Acknowledgement(n) => (ACKNOWLEDGEMENT, word(*n)),
            Self::WindowAckSize(n) => (WINDOW_ACK_SIZE, word(*n)),
            Self::SetPeerBandwidth { size, limit } => {
                let mut out = Vec::with_capacity(5);
                out.put_u32(*size);
                out.put_u8(*limit);
                (SET_PEER_BANDWIDTH, out.into())
            }
            Self::UserControl(event) => {
                let (kind, value) = match *event {
                    UserControl::StreamBegin(v) => (0, v),
                    UserControl::StreamEof(v) => (1, v),
                    UserControl::PingRequest(v) => (6, v),
                    UserControl::PingResponse(v) => (7, v),
                    UserControl::Other(kind) => (kind, 0),
                };
                let mut out = Vec::with_capacity(6);
                out.put_u16(kind);
                out.put_u32(value);
                (USER_CONTROL, out.into())
            }
            Self::Command(command) => (COMMAND_AMF0, command.encode()),
            Self::Data(body) => (DATA_AMF0, body.clone()),
            Self::Audio(body) => (AUDIO, body.clone()),
            Self::Video(body) => (VIDEO, body.clone()),
            Self::GoAway => (GO_AWAY, Bytes::new()),
            Self::Other(type_id) => (*type_id, Bytes::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(message: Message) {
        let (type_id, body) = message.encode();
        assert_eq!(Message::decode(type_id, body).unwrap(), message);
    }

    #[test]
    fn control_messages_round_trip() {
        round_trip(Message::SetChunkSize(4096));
        round_trip(Message::Abort(6));
        round_trip(Message::Acknowledgement(u32::MAX));
        round_trip(Message::WindowAckSize(2_500_000));
        round_trip(Message::SetPeerBandwidth {
            size: 2_500_000,
            limit: 2,
        });
        round_trip(Message::UserControl(UserControl::StreamBegin(1)));
        round_trip(Message::UserControl(UserControl::PingRequest(77)));
        round_trip(Message::UserControl(UserControl::PingResponse(77)));
        round_trip(Message::GoAway);
    }

    #[test]
    fn commands_round_trip() {
        round_trip(Message::Command(Command {
            name: "onStatus".into(),
            transaction: 0.0,
            object: Value::Null,
            args: vec![Value::Object(vec![(
                "code".into(),
                Value::String("NetConnection.Connect.ReconnectRequest".into()),
            )])],
        }));
    }

    #[test]
    fn go_away_payload_is_ignored() {
        assert_eq!(
            Message::decode(type_id::GO_AWAY, Bytes::from_static(b"anything")).unwrap(),
            Message::GoAway
        );
    }

    #[test]
    fn short_control_messages_are_errors() {
        assert!(matches!(
            Message::decode(type_id::SET_CHUNK_SIZE, Bytes::from_static(&[0, 1])),
            Err(MessageError::Truncated { .. })
        ));
        assert!(matches!(
            Message::decode(type_id::USER_CONTROL, Bytes::from_static(&[0, 6, 1])),
            Err(MessageError::Truncated { .. })
        ));
        assert_eq!(
            Message::decode(type_id::COMMAND_AMF0, Bytes::from_static(&[5])),
            Err(MessageError::BadCommand)
        );
        let bare = Message::decode(
            type_id::COMMAND_AMF0,
            Bytes::from_static(b"\x02\x00\x0bonFCPublish"),
        );
        assert_eq!(
            bare.unwrap(),
            Message::Command(Command::new("onFCPublish", 0.0, vec![]))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(type_id in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Message::decode(type_id, Bytes::from(body));
        }
    }
}
