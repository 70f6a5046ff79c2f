//! The publishing client as a sans-IO state machine.
//!
//! The [`Publisher`] owns no socket and reads no clock. Its methods fall in four kinds:
//! - inputs: [`Publisher::handle_input`] with the bytes the server sent;
//! - commands: [`Publisher::send_tag`], [`Publisher::finish_stream`];
//! - outputs: [`Transmit`](super::Transmit) (bytes to write, in order),
//!   then [`Publisher::poll_event`] (what happened), to be polled after every input or command;
//! - getters: [`Publisher::is_publishing`], [`Publisher::bytes_acked`], ...
//!
//! The connect → releaseStream → FCPublish → createStream → publish sequence runs by itself
//! once the handshake completes; [`Event::Publishing`] says media may flow.
//!
//! With [`PublishConfig::auth`], `connect` carries the authentication query. A server that
//! answers with a challenge refuses that `connect`, which ends the connection: the publisher
//! then stops and [`Publisher::reauthenticate`] gives the authentication to open the next
//! connection with (see [`super::auth`]).

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;
use md5::{Digest, Md5};

use super::amf0::Value;
use super::auth::{self, AuthError, ClientAuth};
use super::chunk::RawMessage;
use super::handshake::ClientHandshake;
use super::message::{Command, Message};
use super::redact::Secrets;
use super::wire::Wire;
use super::{ProtocolError, Sticky};
use crate::media::{Tag, TagKind, ADDITIONAL_MEDIA};

const CSID_COMMAND: u32 = 3;
const CSID_AUDIO: u32 = 4;
const CSID_DATA: u32 = 5;
const CSID_VIDEO: u32 = 6;

const TXN_CONNECT: f64 = 1.0;
const TXN_CREATE_STREAM: f64 = 4.0;
const TXN_PUBLISH: f64 = 5.0;

/// Enhanced RTMP `capsEx` bit: the client handles `NetConnection.Connect.ReconnectRequest`.
pub const CAPS_EX_RECONNECT: f64 = 1.0;

/// What a publisher says in `connect` and `publish`.
#[derive(Debug, Clone)]
pub struct PublishConfig {
    /// Application name (`live`, or `app/instance`).
    pub app: String,
    /// `rtmp[s]://host[:port]/app`, the URL without the stream key.
    pub tc_url: String,
    /// Stream key (query string included).
    pub stream_key: String,
    /// Announce Go Away support (`supportsGoAway`) and act on Go Away.
    pub announce_go_away: bool,
    /// Announce Reconnect Request support (`capsEx`) and act on Reconnect Requests.
    pub announce_reconnect: bool,
    /// Enhanced RTMP codecs to list in `fourCcList` (empty: none).
    pub fourcc_list: Vec<String>,
    /// Outgoing chunk size (4096 or more keeps header overhead under 0.3 %).
    pub chunk_size: u32,
    /// How often the server should acknowledge, in bytes: the granularity with which the
    /// publisher knows what the server has received.
    pub ack_window: u32,
    /// Authentication in progress (`None`: connect without credentials).
    pub auth: Option<ClientAuth>,
}

impl PublishConfig {
    /// A configuration with the defaults for everything but the target.
    pub fn new(app: &str, tc_url: &str, stream_key: &str) -> Self {
        Self {
            app: app.to_owned(),
            tc_url: tc_url.to_owned(),
            stream_key: stream_key.to_owned(),
            announce_go_away: true,
            announce_reconnect: true,
            fourcc_list: Vec::new(),
            chunk_size: 4096,
            ack_window: 32 * 1024,
            auth: None,
        }
    }
}

/// Something the server did that the layer above must know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `connect` succeeded.
    Connected,
    /// `NetStream.Publish.Start`: media may be sent.
    Publishing,
    /// Go Away (message type 32): move at the next keyframe. Only raised when announced.
    GoAway,
    /// Enhanced RTMP Reconnect Request. Only raised when announced.
    ReconnectRequest {
        /// Where to reconnect (absolute or relative to the current tcUrl); `None`: same place.
        tc_url: Option<String>,
        /// The server's reason, if given.
        description: Option<String>,
    },
    /// Any other status the server sent after publishing started (for logs).
    Status {
        /// `code` of the info object.
        code: String,
        /// `description`, if any.
        description: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Connecting,
    CreatingStream,
    StartingPublish,
    Publishing,
    Finished,
    /// `connect` was refused with an authentication step to take on a new connection.
    Reauthenticating,
}

/// A publishing RTMP client connection, without I/O.
#[derive(Debug)]
pub struct Publisher {
    config: PublishConfig,
    handshake: ClientHandshake,
    wire: Wire,
    state: State,
    stream_id: u32,
    events: VecDeque<Event>,
    error: Sticky,
    /// Randomness for our own authentication challenge.
    nonce: [u8; 4],
    /// The authentication for the next connection, once the server asked for one.
    reauthenticate: Option<ClientAuth>,
}

impl Publisher {
    /// Starts a connection: C0+C1 is queued at once.
    ///
    /// `epoch` (ms) and `random` fill the handshake (and seed the authentication challenge);
    /// the driver supplies them so the state machine stays deterministic.
    pub fn new(config: PublishConfig, epoch: u32, random: &[u8]) -> Self {
        let (handshake, c0c1) = ClientHandshake::start(epoch, random);
        let digest: [u8; 16] = Md5::digest(random).into();
        let mut nonce = [0; 4];
        nonce.copy_from_slice(&digest[..4]);
        let mut wire = Wire::default();
        wire.queue_bytes(c0c1);
        Self {
            config,
            handshake,
            wire,
            state: State::Handshake,
            stream_id: 0,
            events: VecDeque::new(),
            error: Sticky::default(),
            nonce,
            reauthenticate: None,
        }
    }

    /// Processes bytes received from the server.
    ///
    /// Errors are sticky: after one, every call returns it again.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        self.error.check()?;
        self.wire.feed(data);
        let result = self.process();
        self.error.record(result)
    }

    fn process(&mut self) -> Result<(), ProtocolError> {
        if self.state == State::Handshake {
            let Some(c2) = self.handshake.read(self.wire.input())? else {
                return Ok(());
            };
            self.wire.queue_bytes(c2);
            self.wire.set_chunk_size(self.config.chunk_size);
            self.wire
                .queue_control(&Message::WindowAckSize(self.config.ack_window));
            self.send_connect();
            self.state = State::Connecting;
        }
        while let Some((raw, message)) = self.wire.next_message()? {
            match message {
                Message::Command(command) => self.on_command(command, raw.stream_id)?,
                Message::GoAway if self.config.announce_go_away => {
                    self.events.push_back(Event::GoAway);
                }
                Message::GoAway => log::debug!("ignoring Go Away: support was not announced"),
                other => log::trace!("ignoring {other:?}"),
            }
        }
        Ok(())
    }

    fn send_connect(&mut self) {
        let c = &self.config;
        // librtmp and FFmpeg append the authentication query to both app and tcUrl.
        let query = c.auth.as_ref().map(ClientAuth::query).unwrap_or_default();
        let mut object = vec![
            ("app".into(), Value::String(format!("{}{query}", c.app))),
            ("type".into(), Value::String("nonprivate".into())),
        ];
        if c.announce_go_away {
            object.push(("supportsGoAway".into(), Value::Boolean(true)));
        }
        object.extend([
            (
                "flashVer".into(),
                Value::String(
                    concat!(
                        "FMLE/3.0 (compatible; obs-goaway/",
                        env!("CARGO_PKG_VERSION"),
                        ")"
                    )
                    .into(),
                ),
            ),
            ("swfUrl".into(), Value::String(c.tc_url.clone())),
            (
                "tcUrl".into(),
                Value::String(format!("{}{query}", c.tc_url)),
            ),
        ]);
        if c.announce_reconnect {
            object.push(("capsEx".into(), Value::Number(CAPS_EX_RECONNECT)));
        }
        if !c.fourcc_list.is_empty() {
            let list = c.fourcc_list.iter().cloned().map(Value::String).collect();
            object.push(("fourCcList".into(), Value::StrictArray(list)));
        }
        let connect = Command {
            name: "connect".into(),
            transaction: TXN_CONNECT,
            object: Value::Object(object),
            args: Vec::new(),
        };
        self.send_command(&connect, 0);
    }

    fn send_command(&mut self, command: &Command, stream_id: u32) {
        let (type_id, payload) = Message::Command(command.clone()).encode();
        self.wire.queue(&RawMessage {
            csid: CSID_COMMAND,
            timestamp: 0,
            type_id,
            stream_id,
            payload,
        });
    }

    fn on_command(&mut self, command: Command, stream_id: u32) -> Result<(), ProtocolError> {
        if self.state == State::Reauthenticating {
            // This connection is over; whatever else the server says does not matter.
            return Ok(());
        }
        let key = Value::String(self.config.stream_key.clone());
        match (command.name.as_str(), self.state) {
            ("_result", State::Connecting) if command.transaction == TXN_CONNECT => {
                self.events.push_back(Event::Connected);
                self.send_command(&Command::new("releaseStream", 2.0, vec![key.clone()]), 0);
                self.send_command(&Command::new("FCPublish", 3.0, vec![key]), 0);
                self.send_command(&Command::new("createStream", TXN_CREATE_STREAM, vec![]), 0);
                self.state = State::CreatingStream;
            }
            ("_result", State::CreatingStream) if command.transaction == TXN_CREATE_STREAM => {
                let id = command.args.first().and_then(Value::as_number);
                self.stream_id = id.filter(|n| *n >= 0.0 && *n < 1e9).unwrap_or(1.0) as u32;
                let publish = Command::new(
                    "publish",
                    TXN_PUBLISH,
                    vec![key, Value::String("live".into())],
                );
                self.send_command(&publish, self.stream_id);
                self.state = State::StartingPublish;
            }
            ("_error", State::Connecting) if command.transaction == TXN_CONNECT => {
                self.on_connect_refused(&command)?;
            }
            ("_error", State::Connecting | State::CreatingStream | State::StartingPublish)
                if command.transaction == TXN_CONNECT
                    || command.transaction == TXN_CREATE_STREAM
                    || command.transaction == TXN_PUBLISH =>
            {
                return Err(rejected(&command, self.state, self.secrets()));
            }
            ("onStatus", _) => self.on_status(&command)?,
            _ => log::trace!("ignoring command {} on stream {stream_id}", command.name),
        }
        Ok(())
    }

    /// A refused `connect`: an authentication step to take on a new connection, or the end.
    fn on_connect_refused(&mut self, command: &Command) -> Result<(), ProtocolError> {
        let description = command.info_field("description").unwrap_or_default();
        let step = auth::after_refusal(
            self.config.auth.as_ref(),
            description,
            &self.config.app,
            self.nonce,
        );
        match step {
            None => Err(rejected(command, self.state, self.secrets())),
            Some(Err(AuthError::UnsupportedMethod(method))) => Err(ProtocolError::Auth(
                AuthError::UnsupportedMethod(self.secrets().redact(&method)),
            )),
            Some(Err(error)) => Err(ProtocolError::Auth(error)),
            Some(Ok(next)) => {
                log::debug!(
                    "connect refused with an authentication step (authmod={}); connecting again",
                    next.method()
                );
                self.reauthenticate = Some(next);
                self.state = State::Reauthenticating;
                Ok(())
            }
        }
    }

    /// The secrets no server text may carry on into logs, errors or status.
    fn secrets(&self) -> Secrets<'_> {
        Secrets {
            key: &self.config.stream_key,
            password: self
                .config
                .auth
                .as_ref()
                .map(|auth| auth.credentials().password()),
        }
    }

    fn on_status(&mut self, command: &Command) -> Result<(), ProtocolError> {
        let secrets = self.secrets();
        let raw_code = command.info_field("code").unwrap_or_default();
        let code = secrets.redact(raw_code);
        let level = command.info_field("level").unwrap_or_default();
        let description = command
            .info_field("description")
            .map(|text| secrets.redact(text));
        if raw_code == "NetConnection.Connect.ReconnectRequest" {
            if self.config.announce_reconnect {
                self.events.push_back(Event::ReconnectRequest {
                    tc_url: command.info_field("tcUrl").map(str::to_owned),
                    description,
                });
            }
            return Ok(());
        }
        if raw_code == "NetStream.Publish.Start" && self.state == State::StartingPublish {
            self.state = State::Publishing;
            self.events.push_back(Event::Publishing);
        } else if level == "error" && self.state != State::Publishing {
            return Err(rejected(command, self.state, secrets));
        } else if self.state == State::Publishing || level == "error" {
            self.events.push_back(Event::Status { code, description });
        }
        Ok(())
    }

    /// Sends one tag on the published stream; returns the output byte count after it, which
    /// [`Publisher::bytes_acked`] reaching it proves delivered.
    ///
    /// Script tags (`onMetaData`) are wrapped in `@setDataFrame` as servers expect.
    pub fn send_tag(&mut self, tag: &Tag) -> Result<u64, ProtocolError> {
        if self.state != State::Publishing {
            return Err(ProtocolError::NotPublishing);
        }
        let (csid, payload) = match tag.kind {
            TagKind::Audio => (CSID_AUDIO, tag.data.clone()),
            TagKind::Video => (CSID_VIDEO, tag.data.clone()),
            TagKind::Script => (CSID_DATA, with_set_data_frame(&tag.data)),
        };
        Ok(self.wire.queue(&RawMessage {
            csid,
            timestamp: tag.timestamp,
            type_id: tag.kind.type_id(),
            stream_id: self.stream_id,
            payload,
        }))
    }

    /// Ends the stream politely (FCUnpublish, deleteStream), for a stop the user asked for.
    ///
    /// Never used when moving to a new connection: deleteStream would tear down the
    /// server-side state the next connection resumes.
    pub fn finish_stream(&mut self) {
        if self.state == State::Publishing {
            let key = Value::String(self.config.stream_key.clone());
            self.send_command(&Command::new("FCUnpublish", 6.0, vec![key]), self.stream_id);
            let id = Value::Number(f64::from(self.stream_id));
            self.send_command(&Command::new("deleteStream", 7.0, vec![id]), 0);
        }
        self.state = State::Finished;
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The step of the publish sequence in progress, for error messages.
    pub fn stage(&self) -> &'static str {
        match self.state {
            State::Handshake => "the handshake",
            State::Connecting => "connect (is the application name right?)",
            State::CreatingStream => "createStream",
            State::StartingPublish => "publish (is the stream key right?)",
            State::Publishing => "streaming",
            State::Finished => "the end of the stream",
            State::Reauthenticating => "authentication",
        }
    }

    /// Once the server refused `connect` with an authentication step: the authentication to
    /// open the next connection with (this one is finished).
    pub fn reauthenticate(&self) -> Option<&ClientAuth> {
        self.reauthenticate.as_ref()
    }

    /// Whether media may be sent.
    pub fn is_publishing(&self) -> bool {
        self.state == State::Publishing
    }

    /// Total bytes produced for the server.
    pub fn bytes_sent(&self) -> u64 {
        self.wire.bytes_out()
    }

    /// Total bytes the server has acknowledged receiving.
    pub fn bytes_acked(&self) -> u64 {
        self.wire.acked_out()
    }

    /// The configuration this connection was made with.
    pub fn config(&self) -> &PublishConfig {
        &self.config
    }
}

/// Prefixes an FLV script tag body with `@setDataFrame` unless it already has it, or is
/// OBS 29's `additionalMedia` (which that OBS sends as a plain data message).
fn with_set_data_frame(body: &Bytes) -> Bytes {
    const PREFIX: &[u8] = b"\x02\x00\x0d@setDataFrame";
    if body.starts_with(PREFIX) || body.starts_with(ADDITIONAL_MEDIA) {
        return body.clone();
    }
    let mut out = Vec::with_capacity(PREFIX.len() + body.len());
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(body);
    out.into()
}

/// The server's refusal, its text without the connection's secrets.
fn rejected(command: &Command, state: State, secrets: Secrets<'_>) -> ProtocolError {
    let stage = match state {
        State::Connecting => "connect",
        State::CreatingStream => "createStream",
        _ => "publish",
    };
    ProtocolError::Rejected {
        stage,
        code: secrets.redact(command.info_field("code").unwrap_or("(no code)")),
        description: secrets.redact(
            command
                .info_field("description")
                .unwrap_or("(no description)"),
        ),
    }
}

impl super::Transmit for Publisher {
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
    use crate::protocol::auth::{AuthError, AuthMethod, Credentials, ServerAuth, Verdict};
    use crate::protocol::server::{ServerEvent, ServerSession};
    use crate::protocol::Transmit;

    /// Takes everything an endpoint has queued for its peer.
    macro_rules! drain {
        ($endpoint:expr) => {{
            let mut buf = [IoSlice::new(&[]); 1024];
            let n = $endpoint.io_slices(&mut buf);
            let out: Vec<u8> = buf[..n].iter().flat_map(|s| s.iter().copied()).collect();
            $endpoint.advance(out.len());
            out
        }};
    }

    /// A publisher and a server session wired back to back, without sockets; the server
    /// authenticates with `auth` if set.
    struct Pair {
        client: Publisher,
        server: ServerSession,
        server_events: Vec<ServerEvent>,
        auth: Option<ServerAuth>,
        /// Refuse the publish with this code and description.
        refusal: Option<(String, String)>,
    }

    impl Pair {
        fn new(config: PublishConfig) -> Self {
            Self {
                client: Publisher::new(config, 0, b"c"),
                server: ServerSession::new(0, b"s"),
                server_events: Vec::new(),
                auth: None,
                refusal: None,
            }
        }

        fn on_connect(&mut self, app: &str, query: Option<&str>) {
            let verdict = self
                .auth
                .as_mut()
                .map(|auth| auth.check(app, query, &[7; 18]));
            match verdict {
                Some(Verdict::Refuse { description, .. }) => {
                    self.server.reject_connect(&description);
                }
                None | Some(Verdict::Accept { .. }) => self.server.accept_connect(),
            }
        }

        /// Exchanges bytes until both sides are idle or the client fails.
        fn drive(&mut self) -> Result<(), ProtocolError> {
            loop {
                let to_server = drain!(self.client);
                let to_client = drain!(self.server);
                if to_server.is_empty() && to_client.is_empty() {
                    return Ok(());
                }
                self.server.handle_input(&to_server).unwrap();
                while let Some(ev) = self.server.poll_event() {
                    match &ev {
                        ServerEvent::ConnectRequested { app, query, .. } => {
                            self.on_connect(&app.clone(), query.clone().as_deref());
                        }
                        ServerEvent::PublishRequested { .. } => match &self.refusal {
                            Some((code, description)) => {
                                self.server.reject_publish(code, description);
                            }
                            None => self.server.accept_publish(),
                        },
                        _ => {}
                    }
                    self.server_events.push(ev);
                }
                self.client.handle_input(&to_client)?;
            }
        }
    }

    fn config() -> PublishConfig {
        PublishConfig::new("live", "rtmp://127.0.0.1/live", "key?token=1")
    }

    #[test]
    fn publishes_and_announces_go_away_support() {
        let mut pair = Pair::new(config());
        pair.drive().unwrap();
        assert_eq!(pair.client.poll_event(), Some(Event::Connected));
        assert_eq!(pair.client.poll_event(), Some(Event::Publishing));
        assert!(pair.server_events.iter().any(|e| matches!(e,
            ServerEvent::ConnectRequested { app, supports_go_away: true, caps_ex, .. }
                if app == "live" && *caps_ex == 1)));
        assert!(pair.server_events.iter().any(|e| matches!(e,
            ServerEvent::PublishRequested { key, .. } if key == "key?token=1")));

        pair.client
            .send_tag(&Tag::video(40, Bytes::from_static(&[0x17, 1, 0, 0, 0])))
            .unwrap();
        pair.drive().unwrap();
        assert!(pair.server_events.iter().any(|e| matches!(e,
            ServerEvent::Media(tag) if tag.timestamp == 40 && tag.is_keyframe())));
    }

    #[test]
    fn go_away_and_reconnect_request_become_events() {
        let mut pair = Pair::new(config());
        pair.drive().unwrap();
        while pair.client.poll_event().is_some() {}
        pair.server.send_go_away();
        pair.server
            .send_reconnect_request(Some("rtmp://other/live"), "maintenance");
        pair.drive().unwrap();
        assert_eq!(pair.client.poll_event(), Some(Event::GoAway));
        assert_eq!(
            pair.client.poll_event(),
            Some(Event::ReconnectRequest {
                tc_url: Some("rtmp://other/live".into()),
                description: Some("maintenance".into()),
            })
        );
    }

    #[test]
    fn server_text_echoing_the_key_is_redacted() {
        // nginx-rtmp and others name the stream (the key) in their descriptions.
        let mut pair = Pair::new(config());
        pair.refusal = Some((
            "NetStream.Publish.BadName key?token=1".into(),
            "Already publishing key?token=1 (stream key)".into(),
        ));
        let error = pair.drive().unwrap_err();
        assert_eq!(
            error.to_string(),
            "server refused publish: NetStream.Publish.BadName <key> (Already publishing <key> (stream <key>))"
        );
        assert!(error.is_key_in_use(), "redaction hid the refusal's meaning");

        let mut pair = Pair::new(config());
        pair.drive().unwrap();
        while pair.client.poll_event().is_some() {}
        pair.server
            .send_reconnect_request(Some("/live"), "moving key to another server");
        pair.drive().unwrap();
        assert_eq!(
            pair.client.poll_event(),
            Some(Event::ReconnectRequest {
                tc_url: Some("/live".into()),
                description: Some("moving <key> to another server".into()),
            })
        );
    }

    #[test]
    fn signals_are_ignored_when_not_announced() {
        let mut pair = Pair::new(PublishConfig {
            announce_go_away: false,
            announce_reconnect: false,
            ..config()
        });
        pair.drive().unwrap();
        assert!(pair.server_events.iter().any(|e| matches!(
            e,
            ServerEvent::ConnectRequested {
                supports_go_away: false,
                caps_ex: 0,
                ..
            }
        )));
        while pair.client.poll_event().is_some() {}
        pair.server.send_go_away();
        pair.server.send_reconnect_request(None, "x");
        pair.drive().unwrap();
        assert_eq!(pair.client.poll_event(), None);
    }

    /// Each signal is announced and honoured on its own: a user may accept Reconnect
    /// Requests (which name the next server) but not Go Away, or the other way round.
    #[test]
    fn each_signal_is_announced_on_its_own() {
        for (go_away, reconnect) in [(true, false), (false, true)] {
            let mut pair = Pair::new(PublishConfig {
                announce_go_away: go_away,
                announce_reconnect: reconnect,
                ..config()
            });
            pair.drive().unwrap();
            let expected_caps = u32::from(reconnect);
            assert!(pair.server_events.iter().any(|e| matches!(
                e,
                ServerEvent::ConnectRequested { supports_go_away, caps_ex, .. }
                    if *supports_go_away == go_away && *caps_ex == expected_caps
            )));
            while pair.client.poll_event().is_some() {}
            pair.server.send_go_away();
            pair.server.send_reconnect_request(None, "x");
            pair.drive().unwrap();
            let expected = if go_away {
                Event::GoAway
            } else {
                Event::ReconnectRequest {
                    tc_url: None,
                    description: Some("x".into()),
                }
            };
            assert_eq!(pair.client.poll_event(), Some(expected));
            assert_eq!(pair.client.poll_event(), None);
        }
    }

    #[test]
    fn refused_publish_names_the_servers_code() {
        let mut client = Publisher::new(config(), 0, b"c");
        let mut server = ServerSession::new(0, b"s");
        let mut error = None;
        for _ in 0..20 {
            let to_server = drain!(client);
            server.handle_input(&to_server).unwrap();
            while let Some(ev) = server.poll_event() {
                match ev {
                    ServerEvent::ConnectRequested { .. } => server.accept_connect(),
                    ServerEvent::PublishRequested { .. } => {
                        server.reject_publish("NetStream.Publish.BadName", "Already publishing");
                    }
                    _ => {}
                }
            }
            let to_client = drain!(server);
            if let Err(e) = client.handle_input(&to_client) {
                error = Some(e);
                break;
            }
        }
        let error = error.expect("publish must be refused");
        assert_eq!(
            error.to_string(),
            "server refused publish: NetStream.Publish.BadName (Already publishing)"
        );
        assert_eq!(client.handle_input(&[]), Err(error), "errors are sticky");
    }

    fn with_credentials(password: &str) -> PublishConfig {
        PublishConfig {
            auth: Some(ClientAuth::new(Credentials::new("obs", password))),
            ..config()
        }
    }

    /// The authentication query of the `connect` the server saw last.
    fn last_connect_query(pair: &Pair) -> Option<String> {
        pair.server_events.iter().rev().find_map(|e| match e {
            ServerEvent::ConnectRequested { query, .. } => query.clone(),
            _ => None,
        })
    }

    #[test]
    fn connect_names_the_user_in_app_and_tc_url() {
        let mut pair = Pair::new(with_credentials("s3cret!"));
        pair.drive().unwrap();
        assert!(pair.server_events.iter().any(|e| matches!(e,
            ServerEvent::ConnectRequested { app, query: Some(query), tc_url: Some(tc_url), .. }
                if app == "live"
                    && query == "authmod=adobe&user=obs"
                    && tc_url == "rtmp://127.0.0.1/live?authmod=adobe&user=obs")));
        assert!(
            pair.client.is_publishing(),
            "a server without authentication accepts"
        );
    }

    /// The answer to a challenge, byte for byte: the nonce comes from the handshake
    /// randomness (`b"c"`: md5 starts 4a8a08f0), the response was computed with Python's
    /// hashlib and base64 from user obs, salt Xy9zQw, password s3cret!, opaque opq1Zz.
    #[test]
    fn a_challenge_becomes_the_exact_answer_for_the_next_connection() {
        let mut client = Publisher::new(with_credentials("s3cret!"), 0, b"c");
        let mut server = ServerSession::new(0, b"s");
        for _ in 0..5 {
            server.handle_input(&drain!(client)).unwrap();
            while let Some(event) = server.poll_event() {
                if let ServerEvent::ConnectRequested { .. } = event {
                    server.reject_connect("[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=needauth&user=obs&salt=Xy9zQw&challenge=ch4llg&opaque=opq1Zz");
                }
            }
            client.handle_input(&drain!(server)).unwrap();
        }
        assert_eq!(client.stage(), "authentication");
        assert_eq!(
            client.reauthenticate().map(ClientAuth::query).as_deref(),
            Some("?authmod=adobe&user=obs&challenge=4a8a08f0&response=A+7JUuKDzzatmn/5RvJW+A==&opaque=opq1Zz")
        );
        assert_eq!(
            client.send_tag(&Tag::audio(0, Bytes::new())),
            Err(ProtocolError::NotPublishing)
        );
    }

    /// Connections one after the other, as the link makes them, against a server that
    /// requires authentication; returns the queries the server saw, or the client's error.
    fn authenticate(method: AuthMethod, password: &str) -> Result<Vec<String>, ProtocolError> {
        let mut server_auth = ServerAuth::new(method, vec![Credentials::new("obs", "s3cret!")]);
        let mut config = with_credentials(password);
        let mut queries = Vec::new();
        for _ in 0..4 {
            let mut pair = Pair::new(config.clone());
            pair.auth = Some(server_auth);
            let result = pair.drive();
            queries.extend(last_connect_query(&pair));
            result?;
            if pair.client.is_publishing() {
                return Ok(queries);
            }
            server_auth = pair.auth.take().unwrap();
            config.auth = pair.client.reauthenticate().cloned();
        }
        panic!("no outcome after four connections: {queries:?}");
    }

    #[test]
    fn authenticates_over_successive_connections() {
        let queries = authenticate(AuthMethod::Adobe, "s3cret!").unwrap();
        assert_eq!(queries.len(), 2, "{queries:?}");
        assert_eq!(queries[0], "authmod=adobe&user=obs");
        assert!(
            queries[1].starts_with("authmod=adobe&user=obs&challenge=4a8a08f0&response="),
            "{queries:?}"
        );
        let queries = authenticate(AuthMethod::Llnw, "s3cret!").unwrap();
        assert_eq!(
            queries.len(),
            3,
            "adobe, then llnw as asked, then the answer"
        );
        assert_eq!(queries[1], "authmod=llnw&user=obs");
    }

    #[test]
    fn a_wrong_password_is_a_clear_error() {
        let error = authenticate(AuthMethod::Adobe, "guess").unwrap_err();
        assert_eq!(
            error,
            ProtocolError::Auth(AuthError::WrongPassword("obs".into()))
        );
        assert_eq!(
            error.to_string(),
            "authentication failed: wrong password for user \"obs\""
        );
    }

    #[test]
    fn missing_credentials_are_named_when_the_server_requires_them() {
        let mut pair = Pair::new(config());
        pair.auth = Some(ServerAuth::new(AuthMethod::Adobe, vec![]));
        assert_eq!(
            pair.drive().unwrap_err().to_string(),
            "the server requires a username and password (authmod=adobe)"
        );
    }

    #[test]
    fn script_tags_get_set_data_frame_once() {
        let body = Bytes::from_static(b"\x02\x00\x0aonMetaData\x05");
        let wrapped = with_set_data_frame(&body);
        assert!(wrapped.starts_with(b"\x02\x00\x0d@setDataFrame\x02\x00\x0aonMetaData"));
        assert_eq!(with_set_data_frame(&wrapped), wrapped);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_server_bytes_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let mut client = Publisher::new(config(), 0, b"c");
            let mut hello = vec![3u8];
            hello.extend_from_slice(&[0u8; 2 * 1536]);
            client.handle_input(&hello).unwrap();
            let _ = client.handle_input(&body);
        }
    }

    #[test]
    fn media_before_publishing_is_refused() {
        let mut client = Publisher::new(config(), 0, b"c");
        assert_eq!(
            client.send_tag(&Tag::audio(0, Bytes::new())),
            Err(ProtocolError::NotPublishing)
        );
    }
}
