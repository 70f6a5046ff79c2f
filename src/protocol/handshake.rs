//! The RTMP handshake (the "simple" variant, version 3).
//!
//! Every server in use accepts the simple handshake from a publisher, and a server that
//! answers a digest ("complex") handshake with a simple one is accepted by publishers too,
//! so neither side needs the digest scheme. Randomness and time are inputs: the core stays
//! deterministic.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Size of C1, C2, S1 and S2.
pub const PACKET_SIZE: usize = 1536;
const VERSION: u8 = 3;

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// The peer asked for a version other than plain RTMP 3 (e.g. 6, RTMPE encryption),
    /// or is not speaking RTMP at all (an HTTP or TLS server answers with other bytes).
    #[error(
        "peer sent handshake version {0}, not RTMP 3 (is this an RTMP port? for TLS use rtmps://)"
    )]
    Version(u8),
}

/// Builds C1/S1: a time stamp, four zero bytes, then random filler.
fn first_packet(epoch: u32, random: &[u8]) -> [u8; PACKET_SIZE] {
    let mut packet = [0u8; PACKET_SIZE];
    packet[..4].copy_from_slice(&epoch.to_be_bytes());
    for (dst, src) in packet[8..].iter_mut().zip(random.iter().cycle()) {
        *dst = *src;
    }
    packet
}

/// The publisher's side: sends C0+C1 at once, answers S0+S1+S2 with C2.
#[derive(Debug)]
pub struct ClientHandshake {
    done: bool,
}

impl ClientHandshake {
    /// Starts a handshake; returns it and C0+C1, to be sent first.
    ///
    /// `random` fills C1 (cycled if short); it need not be cryptographically strong.
    pub fn start(epoch: u32, random: &[u8]) -> (Self, Bytes) {
        let mut out = BytesMut::with_capacity(1 + PACKET_SIZE);
        out.put_u8(VERSION);
        out.put_slice(&first_packet(epoch, random));
        (Self { done: false }, out.freeze())
    }

    /// Consumes S0+S1+S2 from `buf` once complete and returns C2.
    ///
    /// `Ok(None)` means more bytes are needed; bytes after S2 are left in `buf`.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, HandshakeError> {
        if self.done {
            return Ok(None);
        }
        if let Some(&version) = buf.first() {
            if version != VERSION {
                return Err(HandshakeError::Version(version));
            }
        }
        if buf.len() < 1 + 2 * PACKET_SIZE {
            return Ok(None);
        }
        let server = buf.split_to(1 + 2 * PACKET_SIZE);
        self.done = true;
        Ok(Some(Bytes::copy_from_slice(&server[1..=PACKET_SIZE])))
    }

    /// Whether S0+S1+S2 have been received (and C2 produced).
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// The ingest's side: answers C0+C1 with S0+S1+S2, then waits for C2.
#[derive(Debug)]
pub struct ServerHandshake {
    epoch: u32,
    random: Vec<u8>,
    sent: bool,
    done: bool,
}

impl ServerHandshake {
    /// A handshake that will use `epoch` and `random` for S1.
    pub fn new(epoch: u32, random: &[u8]) -> Self {
        Self {
            epoch,
            random: random.to_vec(),
            sent: false,
            done: false,
        }
    }

    /// Consumes handshake bytes from `buf`; returns S0+S1+S2 when C0+C1 is complete.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, HandshakeError> {
        if !self.sent {
            if let Some(&version) = buf.first() {
                if version != VERSION {
                    return Err(HandshakeError::Version(version));
                }
            }
            if buf.len() < 1 + PACKET_SIZE {
                return Ok(None);
            }
            let c0c1 = buf.split_to(1 + PACKET_SIZE);
            let mut out = BytesMut::with_capacity(1 + 2 * PACKET_SIZE);
            out.put_u8(VERSION);
            out.put_slice(&first_packet(self.epoch, &self.random));
            out.put_slice(&c0c1[1..]);
            self.sent = true;
            return Ok(Some(out.freeze()));
        }
        if !self.done && buf.len() >= PACKET_SIZE {
            let _c2 = buf.split_to(PACKET_SIZE);
            self.done = true;
        }
        Ok(None)
    }

    /// Whether C2 has arrived: chunk bytes follow.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_complete_each_other() {
        let (mut client, c0c1) = ClientHandshake::start(7, b"client");
        let mut server = ServerHandshake::new(9, b"server");
        let mut to_server = BytesMut::from(&c0c1[..]);
        let s012 = server.read(&mut to_server).unwrap().unwrap();
        assert_eq!(s012.len(), 1 + 2 * PACKET_SIZE);
        assert_eq!(&s012[1 + PACKET_SIZE..], &c0c1[1..], "S2 echoes C1");

        // S0+S1+S2 arriving one byte at a time, followed by the first chunk bytes.
        let mut to_client = BytesMut::new();
        let mut c2 = None;
        for byte in s012.iter().chain(&[0x02]) {
            to_client.put_u8(*byte);
            if let Some(out) = client.read(&mut to_client).unwrap() {
                c2 = Some(out);
            }
        }
        let c2 = c2.unwrap();
        assert_eq!(&to_client[..], &[0x02], "bytes after S2 are kept");
        assert_eq!(&c2[..], &s012[1..=PACKET_SIZE], "C2 echoes S1");
        assert!(client.is_done());

        let mut c2_buf = BytesMut::from(&c2[..]);
        server.read(&mut c2_buf).unwrap();
        assert!(server.is_done());
    }

    #[test]
    fn c1_carries_epoch_and_zero_field() {
        let (_, c0c1) = ClientHandshake::start(0x0102_0304, b"r");
        assert_eq!(&c0c1[..9], &[3, 1, 2, 3, 4, 0, 0, 0, 0]);
        assert_eq!(c0c1[9], b'r');
    }

    #[test]
    fn wrong_version_is_refused_at_once() {
        let (mut client, _) = ClientHandshake::start(0, b"x");
        assert_eq!(
            client.read(&mut BytesMut::from(&b"HTTP/1.1 400"[..])),
            Err(HandshakeError::Version(b'H'))
        );
        let mut server = ServerHandshake::new(0, b"x");
        assert_eq!(
            server.read(&mut BytesMut::from(&[0x16u8, 3, 1][..])),
            Err(HandshakeError::Version(0x16))
        );
    }
}
