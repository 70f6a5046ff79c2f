//! The RTMP chunk stream: messages cut into chunks, interleaved on chunk stream ids.
//!
//! The writer never copies payloads: it emits a small header `Bytes` and a `Bytes` slice of
//! the payload per chunk, for the driver to hand to one vectored write. The reader is
//! incremental: bytes go in as they arrive, whole messages come out.

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Chunk size every RTMP peer starts with.
pub const DEFAULT_CHUNK_SIZE: usize = 128;
/// Largest chunk stream id a 3-byte basic header can carry.
pub const MAX_CHUNK_STREAM_ID: u32 = 65599;
/// Largest chunk size a peer may announce (the top bit must be zero).
const MAX_CHUNK_SIZE: u32 = 0x7fff_ffff;
/// Timestamps at or above this value travel in the extended timestamp field.
const EXTENDED: u32 = 0x00ff_ffff;
/// A peer that opens more chunk streams than this is misbehaving (real peers use under 10).
const MAX_OPEN_STREAMS: usize = 256;
/// Bytes of unfinished messages held at once, over all chunk streams: bounds what a peer
/// can make us buffer by starting large messages and never finishing them.
const MAX_PENDING: usize = 64 << 20;

/// One RTMP message as the chunk layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Chunk stream id it travels on (2..=65599).
    pub csid: u32,
    /// Absolute timestamp in milliseconds (wraps at 2^32).
    pub timestamp: u32,
    /// Message type id (8 audio, 9 video, 20 command, 32 go away, ...).
    pub type_id: u8,
    /// Message stream id (0 for control and connection commands).
    pub stream_id: u32,
    /// The message body.
    pub payload: Bytes,
}

/// Why incoming chunk bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChunkError {
    /// A continuation or compressed header arrived on a chunk stream with no prior message.
    #[error("chunk stream {0} continues a message that never started")]
    UnknownStream(u32),
    /// The peer announced an impossible chunk size.
    #[error("invalid chunk size {0}")]
    InvalidChunkSize(u32),
    /// The peer opened far more chunk streams than any real peer does.
    #[error("too many chunk streams open at once")]
    TooManyStreams,
    /// The peer left too many bytes of unfinished messages.
    #[error("more than {} MiB of unfinished messages", MAX_PENDING >> 20)]
    TooMuchPending,
}

#[derive(Debug, Default, Clone, Copy)]
struct Header {
    timestamp: u32,
    /// Delta applied by a fmt 3 header that starts a new message (0 after a fmt 0 header).
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Whether the last fmt 0/1/2 header used the extended timestamp field, which fmt 3
    /// chunks then repeat.
    extended: bool,
}

/// What the writer remembers of the last message header on a chunk stream.
#[derive(Debug, Clone, Copy)]
struct OutHeader {
    timestamp: u32,
    /// The delta a fmt 3 header would repeat: only known after a fmt 1 or 2 header, since
    /// peers disagree on what fmt 3 means after fmt 0.
    delta: Option<u32>,
    length: u32,
    type_id: u8,
    stream_id: u32,
    extended: bool,
}

/// Splits outgoing messages into chunks with the most compact valid headers.
#[derive(Debug)]
pub struct ChunkWriter {
    chunk_size: usize,
    last: HashMap<u32, OutHeader>,
    scratch: BytesMut,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkWriter {
    /// A writer at the protocol's initial chunk size of 128.
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            last: HashMap::new(),
            scratch: BytesMut::with_capacity(4096),
        }
    }

    /// Uses `size` for every message written after this call; send Set Chunk Size first.
    pub fn set_chunk_size(&mut self, size: usize) {
        self.chunk_size = size.clamp(1, MAX_CHUNK_SIZE as usize);
    }

    /// Appends the chunks of `msg` to `out` as alternating header and payload slices.
    ///
    /// Returns the number of bytes appended.
    pub fn write(&mut self, msg: &RawMessage, out: &mut VecDeque<Bytes>) -> usize {
        let length = msg.payload.len() as u32;
        let prev = self.last.get(&msg.csid).copied();
        let (fmt, field) = match prev {
            Some(p) if p.stream_id == msg.stream_id && msg.timestamp >= p.timestamp => {
                let delta = msg.timestamp - p.timestamp;
                if p.length != length || p.type_id != msg.type_id {
                    (1, delta)
                } else if p.delta == Some(delta) {
                    (3, delta)
                } else {
                    (2, delta)
                }
            }
            _ => (0, msg.timestamp),
        };
        let extended = match prev {
            Some(p) if fmt == 3 => p.extended,
            _ => field >= EXTENDED,
        };
        self.last.insert(
            msg.csid,
            OutHeader {
                timestamp: msg.timestamp,
                delta: (fmt != 0).then_some(field),
                length,
                type_id: msg.type_id,
                stream_id: msg.stream_id,
                extended,
            },
        );

        let mut written = 0;
        put_basic_header(&mut self.scratch, fmt, msg.csid);
        let short_field = field.min(EXTENDED);
        if fmt <= 2 {
            self.scratch.put_uint(u64::from(short_field), 3);
        }
        if fmt <= 1 {
            self.scratch.put_uint(u64::from(length), 3);
            self.scratch.put_u8(msg.type_id);
        }
        if fmt == 0 {
            self.scratch.put_u32_le(msg.stream_id);
        }
        if extended {
            self.scratch.put_u32(field);
        }
        let mut offset = 0;
        loop {
            let head = self.scratch.split().freeze();
            written += head.len();
            out.push_back(head);
            let end = (offset + self.chunk_size).min(msg.payload.len());
            if end > offset {
                out.push_back(msg.payload.slice(offset..end));
                written += end - offset;
            }
            offset = end;
            if offset >= msg.payload.len() {
                return written;
            }
            put_basic_header(&mut self.scratch, 3, msg.csid);
            if extended {
                self.scratch.put_u32(field);
            }
        }
    }
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    match csid {
        2..=63 => out.put_u8(fmt << 6 | csid as u8),
        64..=319 => {
            out.put_u8(fmt << 6);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            out.put_u8(fmt << 6 | 1);
            out.put_u16_le((csid - 64) as u16);
        }
    }
}

#[derive(Debug, Default)]
struct InStream {
    header: Header,
    partial: BytesMut,
    /// Bytes of the current message still to come; 0 when no message is in progress.
    remaining: usize,
}

/// Reassembles messages from incoming chunk bytes.
#[derive(Debug)]
pub struct ChunkReader {
    chunk_size: usize,
    streams: HashMap<u32, InStream>,
    /// Sum of the streams' partial message bytes.
    pending: usize,
}

impl Default for ChunkReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkReader {
    /// A reader at the protocol's initial chunk size of 128.
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            pending: 0,
        }
    }

    /// Applies the peer's Set Chunk Size.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(ChunkError::InvalidChunkSize(size));
        }
        self.chunk_size = size as usize;
        Ok(())
    }

    /// Applies the peer's Abort: drops the partly received message on `csid`.
    pub fn abort(&mut self, csid: u32) {
        if let Some(stream) = self.streams.get_mut(&csid) {
            self.pending -= stream.partial.len();
            stream.partial.clear();
            stream.remaining = 0;
        }
    }

    /// Consumes whole chunks from the front of `buf` until a message completes.
    ///
    /// Returns `Ok(None)` when `buf` holds no complete chunk; the partial bytes stay in `buf`.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            let Some((csid, header_len, fmt)) = parse_basic_header(buf) else {
                return Ok(None);
            };
            let known = self.streams.get(&csid);
            if fmt != 0 && known.is_none() {
                return Err(ChunkError::UnknownStream(csid));
            }
            if known.is_none() && self.streams.len() >= MAX_OPEN_STREAMS {
                return Err(ChunkError::TooManyStreams);
            }
            let prev = known.map(|s| s.header).unwrap_or_default();
            let in_progress = known.is_some_and(|s| s.remaining > 0);
            let mut cursor = &buf[header_len..];
            let field_len = [11, 7, 3, 0][usize::from(fmt)];
            if cursor.len() < field_len {
                return Ok(None);
            }
            let mut header = prev;
            let mut field = 0;
            if fmt <= 2 {
                field = cursor.get_uint(3) as u32;
            }
            if fmt <= 1 {
                header.length = cursor.get_uint(3) as u32;
                header.type_id = cursor.get_u8();
            }
            if fmt == 0 {
                header.stream_id = cursor.get_u32_le();
            }
            let extended = if fmt <= 2 {
                field == EXTENDED
            } else {
                prev.extended
            };
            if extended {
                if cursor.len() < 4 {
                    return Ok(None);
                }
                let ext = cursor.get_u32();
                if fmt <= 2 {
                    field = ext;
                }
            }
            header.extended = extended;
            let consumed = buf.len() - cursor.len();
            let starts_message = fmt != 3 || !in_progress;
            let remaining = if starts_message {
                header.length as usize
            } else {
                known.map_or(0, |s| s.remaining)
            };
            let take = remaining.min(self.chunk_size);
            if buf.len() < consumed + take {
                return Ok(None);
            }
            if fmt != 3 && in_progress {
                // A new header in the middle of a message: the peer dropped the rest.
                log::debug!("chunk stream {csid}: message interrupted by a new header");
            }
            if starts_message {
                match fmt {
                    0 => {
                        header.timestamp = field;
                        header.delta = 0;
                    }
                    1 | 2 => {
                        header.timestamp = prev.timestamp.wrapping_add(field);
                        header.delta = field;
                    }
                    _ => header.timestamp = prev.timestamp.wrapping_add(prev.delta),
                }
            }
            buf.advance(consumed);
            let stream = self.streams.entry(csid).or_default();
            stream.header = header;
            if starts_message {
                self.pending -= stream.partial.len();
                stream.partial.clear();
            }
            stream.remaining = remaining - take;
            if stream.remaining == 0 && stream.partial.is_empty() {
                let payload = buf.split_to(take).freeze();
                return Ok(Some(message(csid, &header, payload)));
            }
            if self.pending + take > MAX_PENDING {
                return Err(ChunkError::TooMuchPending);
            }
            self.pending += take;
            stream.partial.extend_from_slice(&buf[..take]);
            buf.advance(take);
            if stream.remaining == 0 {
                self.pending -= stream.partial.len();
                let payload = stream.partial.split().freeze();
                return Ok(Some(message(csid, &header, payload)));
            }
        }
    }
}

fn message(csid: u32, header: &Header, payload: Bytes) -> RawMessage {
    RawMessage {
        csid,
        timestamp: header.timestamp,
        type_id: header.type_id,
        stream_id: header.stream_id,
        payload,
    }
}

/// Returns (chunk stream id, basic header length, fmt) if the basic header is complete.
fn parse_basic_header(buf: &[u8]) -> Option<(u32, usize, u8)> {
    let first = *buf.first()?;
    let fmt = first >> 6;
    match first & 0x3f {
        0 => Some((u32::from(*buf.get(1)?) + 64, 2, fmt)),
        1 => {
            let low = u32::from(*buf.get(1)?);
            let high = u32::from(*buf.get(2)?);
            Some((high * 256 + low + 64, 3, fmt))
        }
        csid => Some((u32::from(csid), 1, fmt)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(csid: u32, timestamp: u32, type_id: u8, len: usize) -> RawMessage {
        RawMessage {
            csid,
            timestamp,
            type_id,
            stream_id: 1,
            payload: Bytes::from(
                (0..len)
                    .map(|i| (i * 7 + csid as usize) as u8)
                    .collect::<Vec<_>>(),
            ),
        }
    }

    fn encode(writer: &mut ChunkWriter, messages: &[RawMessage]) -> BytesMut {
        let mut out = VecDeque::new();
        let mut total = 0;
        for m in messages {
            total += writer.write(m, &mut out);
        }
        let mut bytes = BytesMut::new();
        for b in out {
            bytes.extend_from_slice(&b);
        }
        assert_eq!(bytes.len(), total);
        bytes
    }

    fn decode_all(reader: &mut ChunkReader, mut bytes: BytesMut) -> Vec<RawMessage> {
        let mut got = Vec::new();
        while let Some(m) = reader.read(&mut bytes).unwrap() {
            got.push(m);
        }
        assert!(bytes.is_empty(), "{} bytes left undecoded", bytes.len());
        got
    }

    fn round_trip(chunk_size: usize, messages: &[RawMessage]) -> BytesMut {
        let mut writer = ChunkWriter::new();
        writer.set_chunk_size(chunk_size);
        let mut reader = ChunkReader::new();
        reader.set_chunk_size(chunk_size as u32).unwrap();
        let bytes = encode(&mut writer, messages);
        assert_eq!(decode_all(&mut reader, bytes.clone()), messages);
        bytes
    }

    #[test]
    fn every_header_format_is_used_and_decoded() {
        let messages = [
            msg(6, 1000, 9, 300), // fmt 0: first on the stream
            msg(6, 1033, 9, 200), // fmt 1: new length
            msg(6, 1083, 9, 200), // fmt 2: same length, new delta
            msg(6, 1133, 9, 200), // fmt 3: same delta
            msg(6, 1133, 9, 200), // fmt 2: delta 0
            msg(6, 500, 9, 200),  // fmt 0: timestamp went backwards
        ];
        let bytes = round_trip(128, &messages);
        assert_eq!(bytes[0] >> 6, 0);
        let fmts: Vec<u8> = {
            let mut writer = ChunkWriter::new();
            messages
                .iter()
                .map(|m| {
                    let mut out = VecDeque::new();
                    writer.write(m, &mut out);
                    out[0][0] >> 6
                })
                .collect()
        };
        assert_eq!(fmts, [0, 1, 2, 3, 2, 0]);
    }

    #[test]
    fn type_0_chunk_for_first_message_with_extended_timestamp() {
        let m = msg(4, 0x0100_0000, 8, 400);
        let bytes = round_trip(128, std::slice::from_ref(&m));
        assert_eq!(&bytes[1..4], &[0xff, 0xff, 0xff]);
        // Every fmt 3 continuation repeats the 4-byte extended timestamp.
        let continuation = 1 + 11 + 4 + 128;
        assert_eq!(bytes[continuation], 0xc4);
        assert_eq!(&bytes[continuation + 1..continuation + 5], &[1, 0, 0, 0]);
    }

    #[test]
    fn extended_deltas_and_wrapping_timestamps_round_trip() {
        round_trip(
            64,
            &[
                msg(5, 10, 9, 100),
                msg(5, 0x0200_0000, 9, 100),
                msg(5, 0x0400_0000 - 10, 9, 100),
                msg(5, 0xffff_fff0, 9, 10),
            ],
        );
    }

    #[test]
    fn one_two_and_three_byte_basic_headers() {
        for csid in [2, 63, 64, 319, 320, 1000, MAX_CHUNK_STREAM_ID] {
            let bytes = round_trip(128, &[msg(csid, 5, 20, 300), msg(csid, 9, 20, 300)]);
            let expected_len = match csid {
                2..=63 => 1,
                64..=319 => 2,
                _ => 3,
            };
            assert_eq!(parse_basic_header(&bytes).unwrap(), (csid, expected_len, 0));
        }
    }

    #[test]
    fn three_byte_basic_header_is_little_endian() {
        assert_eq!(
            parse_basic_header(&[0x01, 0x01, 0x02]),
            Some((64 + 1 + 512, 3, 0))
        );
    }

    #[test]
    fn interleaved_messages_on_several_streams() {
        let audio = msg(4, 100, 8, 300);
        let video = msg(6, 100, 9, 300);
        let mut writer = ChunkWriter::new();
        let mut a = VecDeque::new();
        let mut v = VecDeque::new();
        writer.write(&audio, &mut a);
        writer.write(&video, &mut v);
        // Interleave the chunks: (header, payload) pairs, alternating streams.
        let mut bytes = BytesMut::new();
        let (a, v): (Vec<_>, Vec<_>) = (a.into(), v.into());
        for (ac, vc) in a.chunks(2).zip(v.chunks(2)) {
            for b in ac.iter().chain(vc) {
                bytes.extend_from_slice(b);
            }
        }
        let got = decode_all(&mut ChunkReader::new(), bytes);
        assert_eq!(got, [audio, video]);
    }

    #[test]
    fn split_reads_yield_the_same_messages() {
        let messages = [msg(3, 0, 20, 500), msg(6, 40, 9, 5000), msg(6, 80, 9, 5000)];
        let bytes = encode(&mut ChunkWriter::new(), &messages);
        for step in [1, 7, 128, 1000] {
            let mut reader = ChunkReader::new();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in bytes.chunks(step) {
                buf.extend_from_slice(piece);
                while let Some(m) = reader.read(&mut buf).unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, messages, "step {step}");
        }
    }

    #[test]
    fn abort_drops_the_partial_message() {
        let mut bytes = encode(&mut ChunkWriter::new(), &[msg(6, 0, 9, 300)]);
        bytes.truncate(1 + 11 + 128);
        let mut reader = ChunkReader::new();
        assert_eq!(reader.read(&mut bytes).unwrap(), None);
        reader.abort(6);
        let next = msg(6, 10, 9, 50);
        let mut more = encode(&mut ChunkWriter::new(), std::slice::from_ref(&next));
        assert_eq!(reader.read(&mut more).unwrap(), Some(next));
    }

    #[test]
    fn unfinished_messages_are_bounded() {
        let mut writer = ChunkWriter::new();
        writer.set_chunk_size(1 << 16);
        let mut reader = ChunkReader::new();
        reader.set_chunk_size(1 << 16).unwrap();
        // Start 16 MiB messages on one chunk stream after another, never finishing any.
        let result = (3..20).try_for_each(|csid| {
            let mut bytes = encode(&mut writer, &[msg(csid, 0, 9, 0x00ff_ffff)]);
            bytes.truncate(bytes.len() - 1);
            match reader.read(&mut bytes)? {
                None => Ok(()),
                Some(_) => panic!("an unfinished message came out"),
            }
        });
        assert_eq!(result, Err(ChunkError::TooMuchPending));
    }

    #[test]
    fn zero_length_messages() {
        round_trip(128, &[msg(3, 0, 20, 0), msg(3, 5, 20, 0)]);
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut reader = ChunkReader::new();
        assert_eq!(
            reader.read(&mut BytesMut::from(&[0xc5u8, 0, 0][..])),
            Err(ChunkError::UnknownStream(5))
        );
        assert_eq!(
            reader.set_chunk_size(0),
            Err(ChunkError::InvalidChunkSize(0))
        );
        assert_eq!(
            reader.set_chunk_size(0x8000_0000),
            Err(ChunkError::InvalidChunkSize(0x8000_0000))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), size in 1u32..300) {
            let mut reader = ChunkReader::new();
            reader.set_chunk_size(size).unwrap();
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = reader.read(&mut buf) {}
        }

        #[test]
        fn arbitrary_message_sequences_round_trip(
            specs in proptest::collection::vec((2u32..400, any::<u32>(), 0usize..700, 8u8..10), 1..20),
            size in 1usize..600,
        ) {
            let mut ts = HashMap::new();
            let messages: Vec<_> = specs.iter().map(|&(csid, delta, len, ty)| {
                let t: &mut u32 = ts.entry(csid).or_default();
                *t = t.saturating_add(delta % 0x0300_0000);
                msg(csid, *t, ty, len)
            }).collect();
            round_trip(size, &messages);
        }
    }
}
