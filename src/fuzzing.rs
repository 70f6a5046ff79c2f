//! The bodies of the fuzz targets in `fuzz/`: every decoder fed by the network or a file,
//! driven with arbitrary bytes, asserting no panic and the properties each must keep
//! (round trips, incremental equals one-shot decoding, sticky errors).
//!
//! They live here rather than in `fuzz/` so that `cargo test` runs the committed seed
//! corpora and regression inputs through the same code on stable (see the test at the end),
//! and so that they reach crate-private parsers (the authentication refusal reader).
//! Only compiled for tests and with the `fuzzing` feature, which `fuzz/Cargo.toml` enables.

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;

use bytes::{Bytes, BytesMut};

use crate::media::{self, annexb, av1, avc, flv, hevc, Tag, TagKind};
use crate::protocol::amf0::{self, Value};
use crate::protocol::auth::{
    self, AuthMethod, ClientAuth, Credentials, ServerAuth, Verdict, SERVER_RANDOM_LEN,
};
use crate::protocol::chunk::{ChunkReader, ChunkWriter, RawMessage};
use crate::protocol::handshake::{ClientHandshake, ServerHandshake, PACKET_SIZE};
use crate::protocol::message::Message;
use crate::protocol::{Event, PublishConfig, Publisher, ServerEvent, ServerSession, Transmit};
use crate::transport::{RtmpUrl, Scheme};

/// A fuzz target body: arbitrary bytes in, a panic on any defect.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("chunk_reader", chunk_reader),
    ("chunk_roundtrip", chunk_roundtrip),
    ("amf0", amf0),
    ("handshake", handshake),
    ("message", message),
    ("publisher", publisher),
    ("server", server),
    ("flv", flv),
    ("annexb", annexb),
    ("codec_config", codec_config),
    ("auth", auth),
    ("url", url),
    ("tag", tag),
];

/// Reads fuzz input as a sequence of small numbers, then the rest; zeros once exhausted.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.0 = rest;
        first
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// Feeds `data` in pieces whose sizes cycle through `step` (1..=256 bytes each).
fn pieces(data: &[u8], step: u8) -> impl Iterator<Item = &[u8]> {
    data.chunks(usize::from(step) + 1)
}

/// Takes everything an endpoint queued for sending, as the driver would.
fn drain(endpoint: &mut impl Transmit) -> usize {
    let mut total = 0;
    loop {
        let mut slices = [IoSlice::new(&[]); 16];
        let n = endpoint.io_slices(&mut slices);
        let len: usize = slices[..n].iter().map(|s| s.len()).sum();
        if n == 0 {
            assert_eq!(endpoint.queued(), 0, "queued bytes without slices");
            return total;
        }
        endpoint.advance(len);
        total += len;
    }
}

/// Reads every message `reader` can get out of `buf`, up to the first error.
fn read_all(reader: &mut ChunkReader, buf: &mut BytesMut, out: &mut Vec<RawMessage>) -> bool {
    loop {
        match reader.read(buf) {
            Ok(Some(message)) => out.push(message),
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// The chunk stream reader on arbitrary bytes: never panics, and reading the bytes one at a
/// time yields exactly what reading them at once does.
pub fn chunk_reader(data: &[u8]) {
    let mut input = Input(data);
    let size = u32::from(input.u16()) + 1;
    let data = input.rest();
    let reader = || {
        let mut reader = ChunkReader::new();
        reader.set_chunk_size(size).expect("a valid chunk size");
        reader
    };

    let mut whole = Vec::new();
    let whole_ok = read_all(&mut reader(), &mut BytesMut::from(data), &mut whole);

    let mut trickled = Vec::new();
    let mut incremental = reader();
    let mut buf = BytesMut::new();
    let mut trickled_ok = true;
    for byte in data {
        buf.extend_from_slice(std::slice::from_ref(byte));
        if !read_all(&mut incremental, &mut buf, &mut trickled) {
            trickled_ok = false;
            break;
        }
    }
    assert_eq!(whole, trickled, "byte-by-byte reading differs");
    assert_eq!(whole_ok, trickled_ok, "only one way of reading failed");
}

/// Messages built from the input, chunked by the writer and read back: the same messages.
pub fn chunk_roundtrip(data: &[u8]) {
    let mut input = Input(data);
    let chunk_size = usize::from(input.u16()) + 1;
    let mut writer = ChunkWriter::new();
    writer.set_chunk_size(chunk_size);
    let mut reader = ChunkReader::new();
    reader
        .set_chunk_size(chunk_size as u32)
        .expect("a valid chunk size");
    let mut timestamps: HashMap<u32, u32> = HashMap::new();
    let mut messages = Vec::new();
    let mut out = VecDeque::new();
    while !input.0.is_empty() && messages.len() < 64 {
        let csid = 2 + u32::from(input.u16()) % (crate::protocol::chunk::MAX_CHUNK_STREAM_ID - 1);
        let flags = input.byte();
        let step = input.u32();
        let timestamp = timestamps.entry(csid).or_default();
        // Mostly forward, as real streams go; sometimes anywhere (a fmt 0 restart).
        *timestamp = if flags & 1 == 0 {
            timestamp.wrapping_add(step % 0x0200_0000)
        } else {
            step
        };
        let len = usize::from(input.u16() % 2048);
        let message = RawMessage {
            csid,
            timestamp: *timestamp,
            type_id: input.byte(),
            stream_id: if flags & 2 == 0 { 1 } else { input.u32() },
            payload: Bytes::from((0..len).map(|i| i as u8 ^ flags).collect::<Vec<_>>()),
        };
        writer.write(&message, &mut out);
        messages.push(message);
    }
    let mut bytes = BytesMut::new();
    for piece in out {
        bytes.extend_from_slice(&piece);
    }
    let mut got = Vec::new();
    while let Some(message) = reader.read(&mut bytes).expect("our own chunks decode") {
        got.push(message);
    }
    assert!(bytes.is_empty(), "{} bytes left undecoded", bytes.len());
    assert_eq!(got, messages);
}

fn encoded(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    value.encode(&mut out);
    out
}

/// AMF0 values from arbitrary bytes; whatever decodes re-encodes to bytes that decode to
/// the same encoding (byte comparison, since NaN is not equal to itself).
pub fn amf0(data: &[u8]) {
    let mut rest = data;
    while !rest.is_empty() {
        let Ok(value) = Value::decode(&mut rest) else {
            return;
        };
        let bytes = encoded(&value);
        let again = Value::decode_all(&bytes).expect("an encoded value decodes");
        assert_eq!(again.len(), 1, "one value encoded, several decoded");
        assert_eq!(encoded(&again[0]), bytes, "decode(encode(x)) != x");
        assert_eq!(amf0::encode_all(&again), bytes);
    }
}

/// Both sides of the handshake fed the input in pieces: an error, a wait, or the right
/// answer (C2 echoes S1, S2 echoes C1).
pub fn handshake(data: &[u8]) {
    let mut input = Input(data);
    let step = input.byte();
    let data = input.rest();

    let (mut client, _c0c1) = ClientHandshake::start(1, b"client");
    let mut buf = BytesMut::new();
    for piece in pieces(data, step) {
        buf.extend_from_slice(piece);
        match client.read(&mut buf) {
            Err(_) => break,
            Ok(Some(c2)) => {
                assert_eq!(c2[..], data[1..=PACKET_SIZE], "C2 is not S1");
                assert!(client.is_done());
            }
            Ok(None) => {}
        }
    }

    let mut server = ServerHandshake::new(2, b"server");
    let mut buf = BytesMut::new();
    for piece in pieces(data, step) {
        buf.extend_from_slice(piece);
        match server.read(&mut buf) {
            Err(_) => break,
            Ok(Some(s012)) => {
                assert_eq!(s012.len(), 1 + 2 * PACKET_SIZE);
                assert_eq!(
                    s012[1 + PACKET_SIZE..],
                    data[1..=PACKET_SIZE],
                    "S2 is not C1"
                );
            }
            Ok(None) => {}
        }
    }
    assert!(!server.is_done() || data.len() > 2 * PACKET_SIZE);
}

/// One message body of any type: decodes or fails cleanly; what decodes round-trips.
pub fn message(data: &[u8]) {
    let Some((&type_id, body)) = data.split_first() else {
        return;
    };
    let Ok(message) = Message::decode(type_id, Bytes::copy_from_slice(body)) else {
        return;
    };
    let (type_id, body) = message.encode();
    let again = Message::decode(type_id, body.clone()).expect("an encoded message decodes");
    assert_eq!(again.encode(), (type_id, body), "decode(encode(x)) != x");
}

/// A valid S0+S1+S2 from a server.
fn server_handshake() -> Vec<u8> {
    let mut bytes = vec![3];
    bytes.resize(1 + 2 * PACKET_SIZE, 0x5a);
    bytes
}

/// A valid C0+C1+C2 from a publisher.
fn client_handshake() -> Vec<u8> {
    let mut bytes = vec![3];
    bytes.resize(1 + 2 * PACKET_SIZE, 0xa5);
    bytes
}

/// The publisher after a valid handshake, fed arbitrary server bytes: errors are sticky,
/// no more is acknowledged than was sent, and media is accepted only while publishing.
pub fn publisher(data: &[u8]) {
    let mut input = Input(data);
    let flags = input.byte();
    let step = input.byte();
    let mut config = PublishConfig::new("live", "rtmp://127.0.0.1/live", "key");
    config.announce_go_away = flags & 1 != 0;
    config.announce_reconnect = flags & 2 != 0;
    if flags & 4 != 0 {
        config.auth = Some(ClientAuth::new(Credentials::new("obs", "secret")));
    }
    let mut publisher = Publisher::new(config, 0, b"fuzz");
    publisher
        .handle_input(&server_handshake())
        .expect("a valid handshake");
    let frame = Tag::video(0, Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]));
    for piece in pieces(input.rest(), step) {
        let result = publisher.handle_input(piece);
        drain(&mut publisher);
        while let Some(event) = publisher.poll_event() {
            if let Event::ReconnectRequest { tc_url, .. } = event {
                assert!(publisher.config().announce_reconnect);
                if let Some(tc_url) = tc_url {
                    reconnect_target(&tc_url);
                }
            }
        }
        assert!(publisher.bytes_acked() <= publisher.bytes_sent());
        let sent = publisher.send_tag(&frame);
        assert_eq!(sent.is_ok(), publisher.is_publishing());
        if let Err(error) = result {
            assert_eq!(publisher.handle_input(&[]), Err(error), "error not sticky");
            return;
        }
    }
    publisher.finish_stream();
    drain(&mut publisher);
}

fn reconnect_target(tc_url: &str) {
    let base = RtmpUrl::parse("rtmps://ingest.example.com:4443/live/key").expect("valid URL");
    if let Ok(target) = base.resolve_reconnect(tc_url) {
        assert_eq!(target.scheme, Scheme::Rtmps, "moved to plain RTMP");
        assert_eq!(target.key(), "key");
    }
}

/// The ingest's session after a valid handshake, fed arbitrary publisher bytes, answering
/// as the ingest would (accept, refuse, signal a move) as the input chooses.
pub fn server(data: &[u8]) {
    let mut input = Input(data);
    let flags = input.byte();
    let step = input.byte();
    let mut session = ServerSession::new(0, b"fuzz");
    session
        .handle_input(&client_handshake())
        .expect("a valid handshake");
    for piece in pieces(input.rest(), step) {
        let result = session.handle_input(piece);
        while let Some(event) = session.poll_event() {
            match event {
                ServerEvent::ConnectRequested { query, .. } => {
                    if let Some(query) = query {
                        server_auth(&query);
                    }
                    if flags & 1 == 0 {
                        session.accept_connect();
                    } else {
                        session.reject_connect("no");
                    }
                }
                ServerEvent::PublishRequested { .. } if flags & 2 == 0 => session.accept_publish(),
                ServerEvent::PublishRequested { .. } => {
                    session.reject_publish("NetStream.Publish.BadName", "in use");
                }
                ServerEvent::Media(tag) => {
                    tag_properties(&tag);
                    if flags & 4 != 0 {
                        session.send_go_away();
                    }
                    if flags & 8 != 0 {
                        session.send_reconnect_request(Some("//other/live"), "move");
                    }
                }
                ServerEvent::Unpublished => {}
            }
        }
        drain(&mut session);
        if let Err(error) = result {
            assert_eq!(session.handle_input(&[]), Err(error), "error not sticky");
            return;
        }
    }
}

/// An ingest checking an arbitrary `connect` query with both schemes.
fn server_auth(query: &str) {
    for method in [AuthMethod::Adobe, AuthMethod::Llnw] {
        let mut server = ServerAuth::new(method, vec![Credentials::new("obs", "secret")]);
        let verdict = server.check("live", Some(query), &[7; SERVER_RANDOM_LEN]);
        assert!(
            !matches!(verdict, Verdict::Accept { .. }),
            "accepted an answer to a challenge never sent"
        );
    }
}

/// FLV files: read without panic or more allocation than the input holds; what was read
/// writes back to a file that reads the same.
pub fn flv(data: &[u8]) {
    let Ok(reader) = flv::FlvReader::new(data) else {
        return;
    };
    let tags: Vec<Tag> = reader.map_while(Result::ok).collect();
    let mut writer = flv::FlvWriter::new(Vec::new()).expect("writing to memory");
    for tag in &tags {
        tag_properties(tag);
        writer.write_tag(tag).expect("writing to memory");
    }
    let again: Vec<Tag> = flv::FlvReader::new(&writer.get_mut()[..])
        .expect("our own header")
        .collect::<Result<_, _>>()
        .expect("our own tags");
    assert_eq!(again, tags);
}

/// Annex-B to length-prefixed: the output splits back into exactly the NAL units found.
pub fn annexb(data: &[u8]) {
    let mut out = BytesMut::new();
    annexb::to_length_prefixed(data, &mut out);
    let units: Vec<&[u8]> = annexb::nal_units(data).collect();
    if units.is_empty() && !data.windows(3).any(|w| w == [0, 0, 1]) {
        assert_eq!(&out[..], data, "input without start codes is copied");
        return;
    }
    let mut rest = &out[..];
    for unit in units {
        assert!(!unit.is_empty(), "empty NAL unit");
        let (len, tail) = rest.split_at(4);
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        assert_eq!(&tail[..len], unit);
        rest = &tail[len..];
    }
    assert!(rest.is_empty(), "bytes after the last unit");
}

/// Reads `n` 16-bit-length-prefixed units from `record`.
fn units16<'a>(record: &mut &'a [u8], n: usize) -> Vec<&'a [u8]> {
    (0..n)
        .map(|_| {
            let len = usize::from(u16::from_be_bytes([record[0], record[1]]));
            let unit = &record[2..2 + len];
            *record = &record[2 + len..];
            unit
        })
        .collect()
}

/// The AVC, HEVC and AV1 configuration records built from arbitrary extradata: an error, or
/// a record that parses back to the parameter sets it was built from.
pub fn codec_config(data: &[u8]) {
    let Some((&codec, extradata)) = data.split_first() else {
        return;
    };
    match codec % 3 {
        0 => {
            let Ok(record) = avc::decoder_configuration_record(extradata) else {
                return;
            };
            let mut rest = &record[6..];
            let sps = units16(&mut rest, usize::from(record[5] & 0x1f));
            let pps_count = usize::from(rest[0]);
            rest = &rest[1..];
            let pps = units16(&mut rest, pps_count);
            assert!(rest.is_empty(), "bytes after the PPS");
            assert!(sps.iter().all(|u| u[0] & 0x1f == 7));
            assert!(pps.iter().all(|u| u[0] & 0x1f == 8));
        }
        1 => {
            let Ok(record) = hevc::decoder_configuration_record(extradata) else {
                return;
            };
            assert_eq!(record[21] >> 6, 0, "constantFrameRate set");
            assert!(
                (1..=7).contains(&(record[21] >> 3 & 7)),
                "numTemporalLayers"
            );
            let mut rest = &record[23..];
            for _ in 0..record[22] {
                let nal_type = rest[0] & 0x3f;
                let count = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
                rest = &rest[3..];
                for unit in units16(&mut rest, count) {
                    assert_eq!(unit[0] >> 1 & 0x3f, nal_type);
                }
            }
            assert!(rest.is_empty(), "bytes after the arrays");
        }
        _ => {
            let Ok(record) = av1::decoder_configuration_record(extradata) else {
                return;
            };
            assert_eq!(record[0], 0x81);
            let obu = &record[4..];
            assert_eq!(obu[0] >> 3 & 0x0f, 1, "not a sequence header OBU");
            assert!(
                extradata.windows(obu.len()).any(|w| w == obu),
                "the OBU is not from the input"
            );
        }
    }
}

/// A server's refusal of `connect` (arbitrary text) read by a publisher at each stage of
/// authentication; and an arbitrary `connect` query checked by an ingest.
pub fn auth(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    const PASSWORD: &str = "secret";
    let identify = ClientAuth::new(Credentials::new("obs", PASSWORD));
    let nonce = [1, 2, 3, 4];
    let answering = auth::after_refusal(
        Some(&identify),
        "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=needauth&user=obs&salt=s&challenge=c&opaque=o",
        "live",
        nonce,
    )
    .and_then(Result::ok)
    .expect("a valid challenge is answered");
    for auth in [None, Some(&identify), Some(&answering)] {
        if let Some(Ok(next)) = auth::after_refusal(auth, &text, "live", nonce) {
            assert!(next.query().starts_with("?authmod="));
            // Only a server that put the password in its own text gets it back.
            assert!(
                !next.query().contains(PASSWORD) || text.contains(PASSWORD),
                "the password went out"
            );
        }
    }
    server_auth(&text);
}

/// Publish URLs (user input) and Reconnect Request targets (from the server): parsed or
/// refused, and a parsed URL survives being taken apart and put together again.
pub fn url(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    reconnect_target(&text);
    if let Ok(url) = RtmpUrl::parse(&text) {
        let again = RtmpUrl::with_key(&url.tc_url(), url.key())
            .expect("tcUrl and key of a parsed URL parse")
            .with_credentials(url.credentials().cloned());
        assert_eq!(again, url);
        let _ = url.resolve_reconnect(&text);
    }
    if let Some((server, key)) = text.split_once('\n') {
        let _ = RtmpUrl::with_key(server, key);
    }
}

/// What the session and ingest read from a tag body: keyframe, header, frame, drop
/// priority, frame identity.
pub fn tag(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let kind = match kind % 3 {
        0 => TagKind::Audio,
        1 => TagKind::Video,
        _ => TagKind::Script,
    };
    tag_properties(&Tag {
        kind,
        timestamp: 0,
        data: Bytes::copy_from_slice(body),
    });
}

fn tag_properties(tag: &Tag) {
    let keyframe = tag.is_keyframe();
    let frame = tag.is_frame();
    assert!(!keyframe || frame, "a keyframe that is not a frame");
    assert!(
        !(frame && tag.is_sequence_header()),
        "a frame that is a header"
    );
    let priority = media::priority::priority(tag);
    assert!(!keyframe || priority == media::priority::Priority::Highest);
    assert_eq!(media::compare::FrameId::of(tag).is_some(), frame);
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use bytes::Bytes;

    use super::*;
    use crate::media::packager;

    fn fuzz_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
    }

    /// Every committed seed and regression input runs through its target without a panic:
    /// the fuzzers' findings stay fixed without a nightly toolchain.
    #[test]
    fn seed_corpora_and_regressions_pass() {
        let fuzz = fuzz_dir();
        for (name, target) in TARGETS {
            assert!(
                fuzz.join("fuzz_targets")
                    .join(format!("{name}.rs"))
                    .is_file(),
                "fuzz/fuzz_targets/{name}.rs missing"
            );
            let mut seeds = 0;
            for dir in ["corpus", "regressions"] {
                let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(name)) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.expect("listing the corpus").path();
                    let data = std::fs::read(&path).expect("reading a corpus file");
                    let outcome = std::panic::catch_unwind(|| target(&data));
                    assert!(outcome.is_ok(), "{name} panics on {}", path.display());
                    seeds += 1;
                }
            }
            assert!(
                seeds > 0,
                "no seed corpus for {name} (see write_seed_corpora)"
            );
        }
    }

    /// Everything `endpoint` queued, as bytes.
    fn output(endpoint: &mut impl Transmit) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut slices = [IoSlice::new(&[]); 64];
            let n = endpoint.io_slices(&mut slices);
            if n == 0 {
                return out;
            }
            let len: usize = slices[..n].iter().map(|s| s.len()).sum();
            for slice in &slices[..n] {
                out.extend_from_slice(slice);
            }
            endpoint.advance(len);
        }
    }

    /// A publisher and the ingest's session talking in memory: the bytes each sent after
    /// the handshake (server to publisher, publisher to server).
    fn conversation(auth: bool, signal: bool) -> (Vec<u8>, Vec<u8>) {
        let mut config = PublishConfig::new("live", "rtmp://127.0.0.1/live", "key");
        if auth {
            config.auth = Some(ClientAuth::new(Credentials::new("obs", "secret")));
        }
        let mut publisher = Publisher::new(config, 0, b"seed");
        let mut server = ServerSession::new(0, b"seed");
        let mut ingest_auth =
            ServerAuth::new(AuthMethod::Adobe, vec![Credentials::new("obs", "x")]);
        let (mut to_publisher, mut to_server) = (Vec::new(), Vec::new());
        let tags = [
            Tag::video(
                0,
                Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff]),
            ),
            Tag::audio(0, Bytes::from_static(&[0xaf, 0, 0x12, 0x10])),
            Tag::video(
                33,
                Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88]),
            ),
            Tag::audio(21, Bytes::from_static(&[0xaf, 1, 0x21, 0x10, 0x04])),
            Tag::video(
                66,
                Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a]),
            ),
        ];
        let mut sent_tags = 0;
        for _ in 0..16 {
            let bytes = output(&mut publisher);
            to_server.extend_from_slice(&bytes);
            if server.handle_input(&bytes).is_err() {
                break;
            }
            while let Some(event) = server.poll_event() {
                match event {
                    ServerEvent::ConnectRequested { query, .. } if auth => {
                        match ingest_auth.check("live", query.as_deref(), &[9; SERVER_RANDOM_LEN]) {
                            Verdict::Accept { .. } => server.accept_connect(),
                            Verdict::Refuse { description, .. } => {
                                server.reject_connect(&description)
                            }
                        }
                    }
                    ServerEvent::ConnectRequested { .. } => server.accept_connect(),
                    ServerEvent::PublishRequested { .. } => server.accept_publish(),
                    _ => {}
                }
            }
            let bytes = output(&mut server);
            to_publisher.extend_from_slice(&bytes);
            if publisher.handle_input(&bytes).is_err() {
                break;
            }
            while publisher.poll_event().is_some() {}
            if publisher.is_publishing() && sent_tags < tags.len() {
                for tag in &tags {
                    publisher.send_tag(tag).expect("publishing");
                }
                sent_tags = tags.len();
                if signal {
                    server.send_go_away();
                    server.send_reconnect_request(Some("//other.example.com/live"), "maintenance");
                }
            }
        }
        assert_eq!(
            publisher.is_publishing(),
            !auth,
            "the conversation went wrong"
        );
        let handshake = 1 + 2 * PACKET_SIZE;
        (
            to_publisher.split_off(handshake.min(to_publisher.len())),
            to_server.split_off(handshake.min(to_server.len())),
        )
    }

    fn with_prefix(prefix: &[u8], data: &[u8]) -> Vec<u8> {
        [prefix, data].concat()
    }

    fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
        let (plain_in, plain_out) = conversation(false, true);
        let (auth_in, auth_out) = conversation(true, false);
        let command = Message::Command(crate::protocol::message::Command::new(
            "onStatus",
            0.0,
            vec![Value::Object(vec![
                ("level".into(), Value::String("status".into())),
                (
                    "code".into(),
                    Value::String("NetConnection.Connect.ReconnectRequest".into()),
                ),
                ("tcUrl".into(), Value::String("rtmp://other/live".into())),
            ])],
        ));
        let (_, command_body) = command.encode();
        let mut metadata = Vec::new();
        Value::EcmaArray(vec![
            ("width".into(), Value::Number(1280.0)),
            ("encoder".into(), Value::String("obs".into())),
            (
                "list".into(),
                Value::StrictArray(vec![Value::Boolean(true), Value::Null]),
            ),
            (
                "date".into(),
                Value::Date {
                    millis: 1e12,
                    time_zone: 0,
                },
            ),
        ])
        .encode(&mut metadata);
        let messages: Vec<Vec<u8>> = [
            Message::SetChunkSize(4096),
            Message::Abort(4),
            Message::Acknowledgement(1 << 20),
            Message::WindowAckSize(2_500_000),
            Message::SetPeerBandwidth {
                size: 2_500_000,
                limit: 2,
            },
            Message::UserControl(crate::protocol::message::UserControl::PingRequest(7)),
            Message::GoAway,
            command,
        ]
        .iter()
        .map(|m| {
            let (type_id, body) = m.encode();
            with_prefix(&[type_id], &body)
        })
        .collect();
        let flv = {
            let mut writer = flv::FlvWriter::new(Vec::new()).expect("memory");
            let sample =
                std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample.flv"))
                    .expect("data/sample.flv");
            for tag in flv::FlvReader::new(&sample[..]).expect("sample").take(6) {
                let mut tag = tag.expect("sample tag");
                tag.data.truncate(64);
                writer.write_tag(&tag).expect("memory");
            }
            writer.get_mut().clone()
        };
        let hevc = include_bytes!("media/testdata/x265-main-320x240.hevc");
        let av1 = include_bytes!("media/testdata/aom-320x240.obu");
        let avc: &[u8] = &[
            0, 0, 0, 1, 0x67, 0x64, 0, 0x1f, 0xac, 0, 0, 1, 0x68, 0xee, 0x3c, 0x80,
        ];
        let challenge = match ServerAuth::new(AuthMethod::Adobe, vec![Credentials::new("obs", "x")])
            .check(
                "live",
                Some("authmod=adobe&user=obs"),
                &[3; SERVER_RANDOM_LEN],
            ) {
            Verdict::Refuse { description, .. } => description,
            Verdict::Accept { .. } => unreachable!("a challenge first"),
        };
        let video = packager::video_frame(packager::VideoCodec::Hevc, hevc, 0, 0, true);
        vec![
            ("chunk_reader", vec![with_prefix(&[0, 127], &plain_in), with_prefix(&[0x0f, 0xff], &plain_out)]),
            ("chunk_roundtrip", vec![
                vec![0, 127, 0, 4, 0, 0, 0, 0, 40, 0, 100, 9, 0, 4, 0, 0, 0, 0, 33, 0, 100, 9],
                vec![0, 0, 1, 0, 3, 0xff, 0xff, 0xff, 0, 1, 0, 8, 0, 1, 1, 1, 0, 0, 0, 200, 8],
            ]),
            ("amf0", vec![command_body.to_vec(), metadata]),
            ("handshake", vec![with_prefix(&[0xff], &[vec![3u8], vec![7; 2 * PACKET_SIZE]].concat())]),
            ("message", messages),
            ("publisher", vec![with_prefix(&[3, 255], &plain_in), with_prefix(&[7, 100], &auth_in)]),
            ("server", vec![with_prefix(&[0, 255], &plain_out), with_prefix(&[12, 60], &auth_out)]),
            ("flv", vec![flv]),
            ("annexb", vec![hevc.to_vec(), avc.to_vec()]),
            ("codec_config", vec![with_prefix(&[0], avc), with_prefix(&[1], hevc), with_prefix(&[2], av1)]),
            ("auth", vec![
                challenge.into_bytes(),
                b"[ AccessManager.Reject ] : [ code=403 need auth; authmod=llnw ] : ".to_vec(),
                b"[ AccessManager.Reject ] : [ authmod=llnw ] : ?reason=needauth&user=obs&nonce=abc".to_vec(),
                b"authmod=adobe&user=obs&challenge=0a1b&response=x&opaque=o".to_vec(),
            ]),
            ("url", vec![
                b"rtmp://user:p%40ss@ingest.example.com:1935/live/key?x=1".to_vec(),
                b"rtmps://[::1]/app/inst/key".to_vec(),
                b"//other.example.com/live".to_vec(),
            ]),
            ("tag", vec![
                with_prefix(&[1], &video.data),
                vec![1, 0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x01, 0x9a],
                vec![0, 0xaf, 0, 0x12, 0x10],
            ]),
        ]
    }

    /// Writes the seed corpora (`fuzz/corpus/<target>/seed-*`) from the crate's own
    /// encoders: `cargo test --lib fuzzing::tests::write_seed_corpora -- --ignored`.
    #[test]
    #[ignore = "writes files: run by hand when the targets' input formats change"]
    fn write_seed_corpora() {
        for (name, inputs) in seeds() {
            let dir = fuzz_dir().join("corpus").join(name);
            std::fs::create_dir_all(&dir).expect("creating the corpus directory");
            for (i, input) in inputs.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i}")), input).expect("writing a seed");
            }
        }
    }
}
