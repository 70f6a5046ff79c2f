//! Writing a sans-IO endpoint's output with vectored writes: chunk headers and payload
//! slices go to the kernel (or TLS) in one call, never copied into a staging buffer.

use std::io::{self, IoSlice};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::protocol::Transmit;

/// Slices offered per write: enough for 32 chunks of header + payload.
const MAX_SLICES: usize = 64;

/// One vectored write of the endpoint's queued output, flushed through any TLS layer;
/// returns the bytes written.
///
/// Cancel-safe: bytes are accounted only when this returns; a TLS layer keeps what it
/// accepted and sends it with the next write or flush.
pub(crate) async fn write_some<W, T>(writer: &mut W, endpoint: &T) -> io::Result<usize>
where
    W: AsyncWrite + Unpin,
    T: Transmit,
{
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    let n = endpoint.io_slices(&mut slices);
    let written = writer.write_vectored(&slices[..n]).await?;
    if written == 0 && n > 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    writer.flush().await?;
    Ok(written)
}

/// Writes everything the endpoint has queued.
pub(crate) async fn flush_all<W, T>(writer: &mut W, endpoint: &mut T) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
    T: Transmit,
{
    while endpoint.queued() > 0 {
        let n = write_some(writer, endpoint).await?;
        endpoint.advance(n);
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
