//! What a session's owner (the OBS output, a status display) shares with the running
//! session: live figures it reads at any time and requests it makes.
//!
//! Figures OBS's status bar polls every second are atomics; the rest sits behind a mutex
//! that only the session's own thread and occasional readers take. Nothing here is touched
//! on a producer's hot path.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

use super::Cutover;

/// Shared between a session and its owner; see the module documentation.
#[derive(Debug, Default)]
pub struct SessionHandle {
    bytes_sent: AtomicU64,
    dropped_frames: AtomicU64,
    congestion: AtomicU32,
    connect_time_ms: AtomicU32,
    buffer_bytes: AtomicUsize,
    video_bitrate_kbps: AtomicU32,
    status: Mutex<Status>,
    move_request: Mutex<Option<String>>,
    wake: Notify,
}

/// A snapshot of the session for a status display.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// The server publishing now (key redacted), empty while not connected.
    pub server: String,
    /// Every move so far.
    pub moves: Vec<Cutover>,
    /// Frames never delivered.
    pub lost: u64,
    /// Frames sent more than once.
    pub duplicates: u64,
    /// Payload bytes held for resuming.
    pub buffer_bytes: usize,
}

impl SessionHandle {
    /// Media bytes handed to connections.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    /// Video frames dropped because the connection could not keep up.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames.load(Ordering::Relaxed)
    }

    /// Unsent media over the drop threshold (0: none waiting, 1: dropping), as OBS shows it.
    pub fn congestion(&self) -> f32 {
        f32::from_bits(self.congestion.load(Ordering::Relaxed))
    }

    /// How long the first connection took to start publishing, in milliseconds.
    pub fn connect_time_ms(&self) -> u32 {
        self.connect_time_ms.load(Ordering::Relaxed)
    }

    /// The video bitrate (kb/s) dynamic bitrate asks of the encoder now; 0 when the session
    /// does not manage it.
    pub fn video_bitrate_kbps(&self) -> u32 {
        self.video_bitrate_kbps.load(Ordering::Relaxed)
    }

    /// A copy of the status.
    pub fn status(&self) -> Status {
        let mut status = self
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        status.buffer_bytes = self.buffer_bytes.load(Ordering::Relaxed);
        status
    }

    /// Asks the session to move the stream to `server` (an `rtmp://host/app` URL, resolved
    /// like a Reconnect Request's tcUrl, so the stream key stays) at the next keyframe,
    /// make-before-break.
    pub fn request_move(&self, server: &str) {
        *self
            .move_request
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(server.to_string());
        self.wake.notify_one();
    }

    pub(crate) fn take_move_request(&self) -> Option<String> {
        self.move_request
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    pub(crate) async fn requested(&self) {
        self.wake.notified().await;
    }

    pub(crate) fn add_bytes_sent(&self, bytes: u64) {
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn add_dropped_frames(&self, frames: u64) {
        self.dropped_frames.fetch_add(frames, Ordering::Relaxed);
    }

    pub(crate) fn set_buffer_bytes(&self, bytes: usize) {
        self.buffer_bytes.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn set_video_bitrate(&self, kbps: u32) {
        self.video_bitrate_kbps.store(kbps, Ordering::Relaxed);
    }

    pub(crate) fn set_congestion(&self, level: f32) {
        self.congestion.store(level.to_bits(), Ordering::Relaxed);
    }

    pub(crate) fn set_connect_time(&self, ms: u32) {
        // Only the first connection counts, as in OBS's status bar.
        let _ = self.connect_time_ms.compare_exchange(
            0,
            ms.max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut Status)) {
        change(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }
}
