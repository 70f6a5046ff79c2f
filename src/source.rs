//! Producers that feed a session from a file: the CLI's FLV reader.
//!
//! The reader runs on its own thread (file I/O and pacing sleeps are blocking) and hands
//! tags over the same [`PacketSender`] OBS's encoder callback uses.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::media::flv::{FlvError, FlvReader};
use crate::session::PacketSender;

/// How fast a file is fed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As fast as the session takes it.
    AsFastAsPossible,
    /// By timestamps, `speed` times real time (1.0: real time).
    Timestamps {
        /// Multiple of real time.
        speed: f64,
    },
}

/// Counters a progress display can read while the source runs.
#[derive(Debug, Default)]
pub struct SourceProgress {
    /// Tags handed to the session.
    pub tags: AtomicU64,
    /// Audio and video frames handed to the session.
    pub frames: AtomicU64,
    /// Payload bytes handed to the session.
    pub bytes: AtomicU64,
    /// Timestamp (ms) of the last tag handed over.
    pub timestamp: AtomicU64,
}

/// Starts a thread that reads `reader` as FLV and sends every tag to `sender`; the channel
/// closes (ending the session's input) when the file ends or fails.
pub fn spawn_flv_source<R: Read + Send + 'static>(
    reader: R,
    sender: PacketSender,
    pacing: Pacing,
    progress: Arc<SourceProgress>,
) -> std::io::Result<JoinHandle<Result<(), FlvError>>> {
    std::thread::Builder::new()
        .name("goaway-flv-source".into())
        .spawn(move || {
            let start = Instant::now();
            let mut first_ts = None;
            for tag in FlvReader::new(reader)? {
                let tag = tag?;
                if let Pacing::Timestamps { speed } = pacing {
                    let first = *first_ts.get_or_insert(tag.timestamp);
                    let media = Duration::from_millis(u64::from(tag.timestamp.wrapping_sub(first)));
                    let due = start + media.div_f64(speed.max(0.001));
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                }
                progress.tags.fetch_add(1, Ordering::Relaxed);
                progress
                    .frames
                    .fetch_add(u64::from(tag.is_frame()), Ordering::Relaxed);
                progress
                    .bytes
                    .fetch_add(tag.data.len() as u64, Ordering::Relaxed);
                progress
                    .timestamp
                    .store(u64::from(tag.timestamp), Ordering::Relaxed);
                if sender.send_blocking(tag).is_err() {
                    break; // the session ended (its error is reported there)
                }
            }
            Ok(())
        })
}
