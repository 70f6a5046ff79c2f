//! Writing a sans-IO endpoint's output with vectored writes: chunk headers and payload
//! slices go to the kernel (or TLS) in one call, never copied into a staging buffer.

use std::io::{self, IoSlice};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::protocol::Transmit;

/// Slices offered per write: enough for 32 chunks of header + payload.
const MAX_SLICES: usize = 64;

/// Sends a sans-IO endpoint's output in steps: vectored writes, each followed by a flush
/// that moves what a TLS layer took out to the socket.
///
/// Each step is cancel-safe, so drivers can `select!` on [`Sending::step`]: a write that
/// took bytes returns at once, and a flush can be started again. (A write followed by a
/// flush in one future is not: a `select!` dropping it while the flush waits would lose the
/// count of bytes the TLS layer already took, and send them twice.)
#[derive(Debug, Default)]
pub(crate) struct Sending {
    /// An earlier write may have left bytes in a TLS layer.
    unflushed: bool,
}

/// What one [`Sending::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// This many bytes of the endpoint's output were taken.
    Bytes(usize),
    /// What earlier writes left in a TLS layer went out to the socket.
    Flushed,
}

impl Sending {
    /// Whether anything is left to write or flush.
    pub(crate) fn pending(&self, endpoint: &impl Transmit) -> bool {
        endpoint.queued() > 0 || self.unflushed
    }

    /// Flushes if an earlier write left bytes behind, otherwise writes once; hand the
    /// result to [`Sending::done`].
    pub(crate) async fn step<W, T>(&self, writer: &mut W, endpoint: &T) -> io::Result<Sent>
    where
        W: AsyncWrite + Unpin,
        T: Transmit,
    {
        if self.unflushed {
            writer.flush().await?;
            return Ok(Sent::Flushed);
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = endpoint.io_slices(&mut slices);
        let written = writer.write_vectored(&slices[..n]).await?;
        if written == 0 && n > 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        Ok(Sent::Bytes(written))
    }

    /// Accounts a finished step: advances the endpoint past what a write took.
    pub(crate) fn done(&mut self, sent: Sent, endpoint: &mut impl Transmit) {
        match sent {
            Sent::Bytes(n) => {
                endpoint.advance(n);
                self.unflushed = true;
            }
            Sent::Flushed => self.unflushed = false,
        }
    }
}

/// Writes and flushes everything the endpoint has queued.
pub(crate) async fn flush_all<W, T>(writer: &mut W, endpoint: &mut T) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
    T: Transmit,
{
    let mut sending = Sending::default();
    while sending.pending(endpoint) {
        let sent = sending.step(writer, endpoint).await?;
        sending.done(sent, endpoint);
    }
    Ok(())
}

/// What the driver feeds a handshake: the wall-clock time in ms (wrapping) and filler bytes.
/// The filler only has to differ between connections, not be secret.
pub(crate) fn handshake_seed() -> (u32, [u8; 64]) {
    let mut random = [0u8; 64];
    if let Err(e) = getrandom::fill(&mut random) {
        log::debug!("no OS randomness for the handshake filler: {e}");
    }
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u32);
    (epoch, random)
}

/// Sleeps until `deadline`, or forever without one: a `select!` branch for an optional timer.
pub(crate) async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::{pin, Pin};
    use std::task::{Context, Poll, Waker};

    use super::*;

    /// Output waiting to be written, offered in 3-byte slices.
    struct Queue(Vec<u8>);

    impl Transmit for Queue {
        fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
            let mut filled = 0;
            for (slot, chunk) in slices.iter_mut().zip(self.0.chunks(3)) {
                *slot = IoSlice::new(chunk);
                filled += 1;
            }
            filled
        }
        fn advance(&mut self, n: usize) {
            self.0.drain(..n);
        }
        fn queued(&self) -> usize {
            self.0.len()
        }
    }

    /// A writer like a TLS layer: each write takes up to 5 bytes into its own buffer, and
    /// a flush needs a second poll before they reach the socket (`out`).
    #[derive(Default)]
    struct Layered {
        buffered: Vec<u8>,
        out: Vec<u8>,
        flush_polls: u32,
    }

    impl AsyncWrite for Layered {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(5);
            self.buffered.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flush_polls += 1;
            if self.flush_polls % 2 == 1 {
                return Poll::Pending;
            }
            let this = &mut *self;
            this.out.append(&mut this.buffered);
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Every step that does not finish at its first poll is dropped, as by a `select!`
    /// whose other branch won: every byte still reaches the socket exactly once, in order.
    #[test]
    fn send_is_cancel_safe() {
        let data: Vec<u8> = (0..=255).collect();
        let mut queue = Queue(data.clone());
        let mut writer = Layered::default();
        let mut sending = Sending::default();
        let mut cx = Context::from_waker(Waker::noop());
        let mut dropped = 0;
        while sending.pending(&queue) {
            let polled = pin!(sending.step(&mut writer, &queue)).poll(&mut cx);
            match polled {
                Poll::Ready(Ok(sent)) => sending.done(sent, &mut queue),
                Poll::Ready(Err(e)) => panic!("{e}"),
                Poll::Pending => dropped += 1,
            }
        }
        assert!(dropped > 0, "no send was ever dropped");
        assert_eq!(writer.out, data);
    }
}
