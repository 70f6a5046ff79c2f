//! What both ends of an RTMP connection do alike once the handshake is over: chunking,
//! flow-control acknowledgements, pings and chunk size changes.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use super::chunk::{ChunkReader, ChunkWriter, RawMessage};
use super::message::{Message, UserControl};
use super::ProtocolError;

/// Chunk stream of protocol control messages.
pub(crate) const CSID_CONTROL: u32 = 2;

/// The shared part of a sans-IO RTMP endpoint.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    reader: ChunkReader,
    writer: ChunkWriter,
    input: BytesMut,
    transmit: VecDeque<Bytes>,
    /// Bytes queued but not yet taken by the driver.
    queued: usize,
    /// Bytes received since the connection opened (handshake included).
    bytes_in: u64,
    last_ack_sent: u64,
    /// How often the peer wants acknowledgements (0: never asked).
    peer_window: u32,
    /// Bytes handed to the driver for sending, handshake included.
    bytes_out: u64,
    /// The highest byte count the peer has acknowledged.
    acked_out: u64,
    /// Never acknowledge, whatever the peer asks (a server that does not).
    mute: bool,
}

impl Wire {
    /// Adds received bytes; counts them for acknowledgements.
    pub(crate) fn feed(&mut self, data: &[u8]) {
        self.bytes_in += data.len() as u64;
        self.input.extend_from_slice(data);
    }

    /// The unparsed input, for the handshake to consume from.
    pub(crate) fn input(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Queues raw bytes (handshake packets).
    pub(crate) fn queue_bytes(&mut self, bytes: Bytes) {
        self.queued += bytes.len();
        self.bytes_out += bytes.len() as u64;
        self.transmit.push_back(bytes);
    }

    /// Queues a message; returns the total output byte count after it.
    pub(crate) fn queue(&mut self, msg: &RawMessage) -> u64 {
        let n = self.writer.write(msg, &mut self.transmit);
        self.queued += n;
        self.bytes_out += n as u64;
        self.bytes_out
    }

    /// Queues a protocol control or user control message.
    pub(crate) fn queue_control(&mut self, message: &Message) {
        let (type_id, payload) = message.encode();
        self.queue(&RawMessage {
            csid: CSID_CONTROL,
            timestamp: 0,
            type_id,
            stream_id: 0,
            payload,
        });
    }

    /// Announces and starts using a larger outgoing chunk size.
    pub(crate) fn set_chunk_size(&mut self, size: u32) {
        self.queue_control(&Message::SetChunkSize(size));
        self.writer.set_chunk_size(size as usize);
    }

    /// Decodes the next message, handling flow control, pings and chunk size itself.
    ///
    /// Returns the messages the endpoint's own logic must see, with their raw envelope.
    pub(crate) fn next_message(&mut self) -> Result<Option<(RawMessage, Message)>, ProtocolError> {
        self.maybe_acknowledge();
        while let Some(raw) = self.reader.read(&mut self.input)? {
            let message = Message::decode(raw.type_id, raw.payload.clone())?;
            match message {
                Message::SetChunkSize(size) => self.reader.set_chunk_size(size)?,
                Message::Abort(csid) => self.reader.abort(csid),
                Message::WindowAckSize(size) => self.peer_window = size,
                Message::Acknowledgement(seq) => self.acknowledged(seq),
                Message::UserControl(UserControl::PingRequest(ts)) => {
                    self.queue_control(&Message::UserControl(UserControl::PingResponse(ts)));
                }
                _ => return Ok(Some((raw, message))),
            }
        }
        Ok(None)
    }

    fn maybe_acknowledge(&mut self) {
        if !self.mute
            && self.peer_window > 0
            && self.bytes_in - self.last_ack_sent >= u64::from(self.peer_window)
        {
            self.last_ack_sent = self.bytes_in;
            self.queue_control(&Message::Acknowledgement(self.bytes_in as u32));
        }
    }

    /// Stops acknowledging what the peer sends.
    pub(crate) fn never_acknowledge(&mut self) {
        self.mute = true;
    }

    /// Widens the peer's 32-bit wrapping byte count to our 64-bit one.
    fn acknowledged(&mut self, seq: u32) {
        let base = self.acked_out & !0xffff_ffff;
        let mut total = base | u64::from(seq);
        if total < self.acked_out {
            total += 1 << 32;
        }
        if total <= self.bytes_out {
            self.acked_out = total;
        }
    }

    /// Fills `slices` with queued output; returns how many were filled.
    pub(crate) fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, bytes) in slices.iter_mut().zip(&self.transmit) {
            *slot = IoSlice::new(bytes);
            n += 1;
        }
        n
    }

    /// Drops `n` bytes from the front of the output queue: the driver wrote them.
    pub(crate) fn advance(&mut self, mut n: usize) {
        self.queued -= n.min(self.queued);
        while n > 0 {
            let Some(front) = self.transmit.front_mut() else {
                return;
            };
            if front.len() > n {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.transmit.pop_front();
        }
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Takes all queued output as one buffer.
    #[cfg(test)]
    pub(crate) fn take_all(&mut self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.queued);
        for b in self.transmit.drain(..) {
            out.extend_from_slice(&b);
        }
        self.queued = 0;
        out.freeze()
    }

    /// Total bytes produced for the peer.
    pub(crate) fn bytes_out(&self) -> u64 {
        self.bytes_out
    }

    /// Highest byte count the peer has acknowledged.
    pub(crate) fn acked_out(&self) -> u64 {
        self.acked_out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control_bytes(messages: &[Message]) -> Vec<u8> {
        let mut peer = Wire::default();
        for m in messages {
            peer.queue_control(m);
        }
        peer.take_all().to_vec()
    }

    #[test]
    fn acknowledges_each_time_the_peer_window_is_crossed() {
        let mut wire = Wire::default();
        wire.feed(&control_bytes(&[Message::WindowAckSize(100)]));
        assert!(wire.next_message().unwrap().is_none());
        assert_eq!(wire.queued(), 0, "16 bytes in: below the window");
        wire.feed(&[0u8; 0]);
        let ping = control_bytes(&vec![Message::UserControl(UserControl::StreamBegin(1)); 10]);
        wire.feed(&ping);
        while wire.next_message().unwrap().is_some() {}
        let out = wire.take_all();
        let mut reader = ChunkReader::new();
        let raw = reader.read(&mut BytesMut::from(&out[..])).unwrap().unwrap();
        assert_eq!(
            Message::decode(raw.type_id, raw.payload).unwrap(),
            Message::Acknowledgement(wire.bytes_in as u32)
        );
    }

    #[test]
    fn a_mute_wire_never_acknowledges() {
        let mut wire = Wire::default();
        wire.never_acknowledge();
        // As in the test above, which gets an acknowledgement.
        wire.feed(&control_bytes(&[Message::WindowAckSize(100)]));
        assert!(wire.next_message().unwrap().is_none());
        let ping = control_bytes(&vec![Message::UserControl(UserControl::StreamBegin(1)); 10]);
        wire.feed(&ping);
        while wire.next_message().unwrap().is_some() {}
        assert_eq!(wire.queued(), 0, "acknowledged although mute");
    }

    #[test]
    fn answers_ping_requests() {
        let mut wire = Wire::default();
        wire.feed(&control_bytes(&[Message::UserControl(
            UserControl::PingRequest(42),
        )]));
        assert!(wire.next_message().unwrap().is_none());
        let out = wire.take_all();
        let raw = ChunkReader::new()
            .read(&mut BytesMut::from(&out[..]))
            .unwrap()
            .unwrap();
        assert_eq!(
            Message::decode(raw.type_id, raw.payload).unwrap(),
            Message::UserControl(UserControl::PingResponse(42))
        );
    }

    #[test]
    fn acknowledgements_widen_across_the_32_bit_wrap() {
        let mut wire = Wire {
            bytes_out: (1 << 32) + 500,
            acked_out: 0xffff_ff00,
            ..Wire::default()
        };
        wire.acknowledged(400);
        assert_eq!(wire.acked_out(), (1 << 32) + 400);
        wire.acknowledged(10_000);
        assert_eq!(wire.acked_out(), (1 << 32) + 400, "beyond what was sent");
    }

    #[test]
    fn advance_splits_partially_written_slices() {
        let mut wire = Wire::default();
        wire.queue_bytes(Bytes::from_static(b"abcdef"));
        wire.queue_bytes(Bytes::from_static(b"gh"));
        wire.advance(4);
        assert_eq!(wire.queued(), 4);
        assert_eq!(&wire.take_all()[..], b"efgh");
    }
}
