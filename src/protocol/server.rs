//! The ingest side of a publishing connection as a sans-IO state machine.
//!
//! Same shape as [`super::publisher::Publisher`]: bytes in through
//! [`ServerSession::handle_input`], decisions through commands
//! ([`ServerSession::accept_connect`], [`ServerSession::accept_publish`],
//! [`ServerSession::send_go_away`], ...), bytes out through [`Transmit`](super::Transmit),
//! happenings through [`ServerSession::poll_event`]. Who may connect (authentication) and
//! which publisher may take a stream key are policy, so they are left to the caller.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

use super::amf0::Value;
use super::chunk::RawMessage;
use super::handshake::ServerHandshake;
use super::message::{Command, Message, UserControl};
use super::wire::Wire;
use super::{ProtocolError, Sticky};
use crate::media::{Tag, TagKind};

const CSID_COMMAND: u32 = 3;
const STREAM_ID: u32 = 1;
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

/// What a publisher did.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `connect` arrived: answer with accept_connect or reject_connect.
    ConnectRequested {
        /// Application name, without the query.
        app: String,
        /// The query after the application name (`authmod=adobe&user=...`), without `?`;
        /// from tcUrl if the application name has none.
        query: Option<String>,
        /// The tcUrl the client used, if it sent one (query included).
        tc_url: Option<String>,
        /// Whether it announced Go Away support (`supportsGoAway: true`).
        supports_go_away: bool,
        /// Its Enhanced RTMP `capsEx` bitmask (0 if absent).
        caps_ex: u32,
    },
    /// `publish(key)`: answer with accept_publish or reject_publish.
    PublishRequested {
        /// The stream key, query string included.
        key: String,
    },
    /// A media or metadata tag (`@setDataFrame` removed from script tags).
    Media(Tag),
    /// FCUnpublish or deleteStream: the publisher ended the stream on purpose.
    Unpublished,
}

/// One publisher connection as seen by the ingest.
#[derive(Debug)]
pub struct ServerSession {
    handshake: ServerHandshake,
    wire: Wire,
    /// Transaction id of the `connect` awaiting an answer.
    pending_connect: Option<f64>,
    /// Whether `connect` was accepted: until then every other command is ignored, so a
    /// client cannot publish past a refused (unauthenticated) `connect`.
    connected: bool,
    publishing: bool,
    events: VecDeque<ServerEvent>,
    error: Sticky,
}

impl ServerSession {
    /// A session waiting for C0+C1.
    pub fn new(epoch: u32, random: &[u8]) -> Self {
        Self {
            handshake: ServerHandshake::new(epoch, random),
            wire: Wire::default(),
            pending_connect: None,
            connected: false,
            publishing: false,
            events: VecDeque::new(),
            error: Sticky::default(),
        }
    }

    /// Never sends Acknowledgement, as some servers do not: publishers then have no
    /// protocol-level proof of delivery.
    pub fn never_acknowledge(&mut self) {
        self.wire.never_acknowledge();
    }

    /// Processes bytes from the publisher. Errors are sticky.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        self.error.check()?;
        self.wire.feed(data);
        let result = self.process();
        self.error.record(result)
    }

    fn process(&mut self) -> Result<(), ProtocolError> {
        if !self.handshake.is_done() {
            if let Some(s012) = self.handshake.read(self.wire.input())? {
                self.wire.queue_bytes(s012);
            }
            self.handshake.read(self.wire.input())?;
            if !self.handshake.is_done() {
                return Ok(());
            }
        }
        while let Some((raw, message)) = self.wire.next_message()? {
            match message {
                Message::Command(command) => self.on_command(command),
                Message::Audio(data) if self.publishing => {
                    self.media(TagKind::Audio, raw.timestamp, data)
                }
                Message::Video(data) if self.publishing => {
                    self.media(TagKind::Video, raw.timestamp, data)
                }
                Message::Data(data) if self.publishing => {
                    let data = data.strip_prefix(SET_DATA_FRAME).map_or_else(
                        || data.clone(),
                        |rest| data.slice(data.len() - rest.len()..),
                    );
                    self.media(TagKind::Script, raw.timestamp, data);
                }
                other => log::trace!("ingest ignoring {other:?}"),
            }
        }
        Ok(())
    }

    fn media(&mut self, kind: TagKind, timestamp: u32, data: Bytes) {
        self.events.push_back(ServerEvent::Media(Tag {
            kind,
            timestamp,
            data,
        }));
    }

    fn on_command(&mut self, command: Command) {
        let txn = command.transaction;
        if !self.connected && command.name != "connect" {
            log::trace!(
                "ingest ignoring {} before connect was accepted",
                command.name
            );
            return;
        }
        match command.name.as_str() {
            "connect" => {
                let field = |name| command.object.get(name).and_then(Value::as_str);
                let tc_url = field("tcUrl").map(str::to_owned);
                let (app, app_query) = split_query(field("app").unwrap_or_default());
                let query = app_query
                    .or_else(|| tc_url.as_deref().and_then(|url| split_query(url).1))
                    .map(str::to_owned);
                self.pending_connect = Some(txn);
                self.events.push_back(ServerEvent::ConnectRequested {
                    app: app.to_owned(),
                    query,
                    tc_url,
                    supports_go_away: command.object.get("supportsGoAway")
                        == Some(&Value::Boolean(true)),
                    caps_ex: command
                        .object
                        .get("capsEx")
                        .and_then(Value::as_number)
                        .filter(|n| (0.0..=f64::from(u32::MAX)).contains(n))
                        .unwrap_or(0.0) as u32,
                });
            }
            "createStream" => self.send(
                Command::new("_result", txn, vec![Value::Number(f64::from(STREAM_ID))]),
                0,
            ),
            "releaseStream" => self.send(Command::new("_result", txn, vec![]), 0),
            "FCPublish" => self.send(Command::new("onFCPublish", 0.0, vec![]), 0),
            "publish" => {
                let key = command
                    .args
                    .first()
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                self.events.push_back(ServerEvent::PublishRequested {
                    key: key.to_owned(),
                });
            }
            "FCUnpublish" | "deleteStream" => {
                if std::mem::take(&mut self.publishing) {
                    self.events.push_back(ServerEvent::Unpublished);
                }
            }
            other => log::trace!("ingest ignoring command {other}"),
        }
    }

    fn send(&mut self, command: Command, stream_id: u32) {
        let (type_id, payload) = Message::Command(command).encode();
        self.wire.queue(&RawMessage {
            csid: CSID_COMMAND,
            timestamp: 0,
            type_id,
            stream_id,
            payload,
        });
    }

    fn on_status(
        &mut self,
        level: &str,
        code: &str,
        description: &str,
        extra: Vec<(String, Value)>,
    ) {
        let info = status(level, code, description, extra);
        self.send(Command::new("onStatus", 0.0, vec![info]), STREAM_ID);
    }

    /// Accepts the requested `connect` (NetConnection.Connect.Success).
    pub fn accept_connect(&mut self) {
        let Some(txn) = self.pending_connect.take() else {
            return;
        };
        self.connected = true;
        self.wire.queue_control(&Message::WindowAckSize(2_500_000));
        self.wire.queue_control(&Message::SetPeerBandwidth {
            size: 2_500_000,
            limit: 2,
        });
        self.wire.set_chunk_size(4096);
        let properties = Value::Object(vec![
            ("fmsVer".into(), Value::String("FMS/3,0,1,123".into())),
            ("capabilities".into(), Value::Number(31.0)),
        ]);
        let info = status(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
            vec![("objectEncoding".into(), Value::Number(0.0))],
        );
        self.send(
            Command {
                name: "_result".into(),
                transaction: txn,
                object: properties,
                args: vec![info],
            },
            0,
        );
    }

    /// Refuses the requested `connect` with `_error` NetConnection.Connect.Rejected and
    /// `description` (close the connection after it). Authentication challenges travel in
    /// the description, as Adobe Media Server sends them.
    pub fn reject_connect(&mut self, description: &str) {
        let Some(txn) = self.pending_connect.take() else {
            return;
        };
        let info = status(
            "error",
            "NetConnection.Connect.Rejected",
            description,
            vec![],
        );
        self.send(Command::new("_error", txn, vec![info]), 0);
    }

    /// Lets the requested publish start.
    pub fn accept_publish(&mut self) {
        self.wire
            .queue_control(&Message::UserControl(UserControl::StreamBegin(STREAM_ID)));
        self.on_status(
            "status",
            "NetStream.Publish.Start",
            "Start publishing",
            vec![],
        );
        self.publishing = true;
    }

    /// Refuses the requested publish with an error status (close the connection after it).
    pub fn reject_publish(&mut self, code: &str, description: &str) {
        self.on_status("error", code, description, vec![]);
    }

    /// Sends Go Away (message type 32): the publisher should move to a new connection.
    pub fn send_go_away(&mut self) {
        let (type_id, payload) = Message::GoAway.encode();
        self.wire.queue(&RawMessage {
            csid: 2,
            timestamp: 0,
            type_id,
            stream_id: 0,
            payload,
        });
    }

    /// Sends Enhanced RTMP `NetConnection.Connect.ReconnectRequest`, optionally naming the
    /// tcUrl to move to.
    pub fn send_reconnect_request(&mut self, tc_url: Option<&str>, description: &str) {
        let extra = tc_url
            .map(|url| vec![("tcUrl".to_owned(), Value::String(url.to_owned()))])
            .unwrap_or_default();
        let info = status(
            "status",
            "NetConnection.Connect.ReconnectRequest",
            description,
            extra,
        );
        self.send(Command::new("onStatus", 0.0, vec![info]), 0);
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }
}

/// `app?query` split at the first `?`.
fn split_query(text: &str) -> (&str, Option<&str>) {
    match text.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (text, None),
    }
}

fn status(level: &str, code: &str, description: &str, extra: Vec<(String, Value)>) -> Value {
    let mut props = vec![
        ("level".into(), Value::String(level.into())),
        ("code".into(), Value::String(code.into())),
        ("description".into(), Value::String(description.into())),
    ];
    props.extend(extra);
    Value::Object(props)
}

impl super::Transmit for ServerSession {
    fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        self.wire.io_slices(slices)
    }

    fn advance(&mut self, n: usize) {
        self.wire.advance(n);
    }

    fn queued(&self) -> usize {
        self.wire.queued()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// C0, C1 and C2 at once: the server needs nothing more from a handshake.
    fn hello() -> Vec<u8> {
        let mut hello = vec![3u8];
        hello.extend_from_slice(&[0u8; 2 * 1536]);
        hello
    }

    #[test]
    fn nothing_but_connect_counts_before_connect_is_accepted() {
        // A client that does not wait for the verdict: its publish must not get through
        // a refused (unauthenticated) connect.
        let mut session = ServerSession::new(0, b"s");
        let mut eager = Wire::default();
        for command in [
            Command::new("connect", 1.0, vec![]),
            Command::new("createStream", 4.0, vec![]),
            Command::new("publish", 5.0, vec![Value::String("key".into())]),
        ] {
            let (type_id, payload) = Message::Command(command).encode();
            eager.queue(&RawMessage {
                csid: CSID_COMMAND,
                timestamp: 0,
                type_id,
                stream_id: 0,
                payload,
            });
        }
        let mut input = hello();
        input.extend_from_slice(&eager.take_all());
        session.handle_input(&input).unwrap();
        let event = session.poll_event();
        assert!(
            matches!(event, Some(ServerEvent::ConnectRequested { .. })),
            "{event:?}"
        );
        session.reject_connect("no");
        assert_eq!(session.poll_event(), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_after_handshake_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut session = ServerSession::new(0, b"s");
            session.handle_input(&hello()).unwrap();
            let _ = session.handle_input(&body);
        }
    }
}
