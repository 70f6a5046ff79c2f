//! A live output fed by an encoder: what the OBS plugin drives, free of any OBS type.
//!
//! The encoder side hands [`EncodedPacket`]s to a [`PacketSender`] (lock-free, never
//! blocks); everything else happens on the output's own tokio runtime: packaging into
//! tags, the session with its moves and resumes, dropping video under congestion. The owner
//! hears what happened through an [`Observer`] and reads live figures from the
//! [`SessionHandle`].
//!
//! ```text
//! encoder thread ──EncodedPacket──▶ channel ──▶ [runtime: packaging ─▶ session ─▶ sockets]
//!                                                     │
//!                            Observer ◀── publishing, moves, reconnects, the end
//! ```

mod packaging;

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, Notify};

use crate::media::{Tag, VideoCodec};
use crate::session::{
    self, packet_channel, PacketReceiver, PacketSender, Report, SessionConfig, SessionError,
    SessionEvent, SessionHandle, TagInput,
};
use crate::transport::QueueLimits;
use packaging::Packager;

/// Packets the channel holds: seconds of media, although a live session takes them at once.
pub const CHANNEL_CAPACITY: usize = 2048;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// Encoded video (Annex-B H.264/HEVC, AV1 OBUs).
    Video,
    /// Raw AAC frames.
    Audio,
}

/// One encoded packet, as an encoder produced it.
#[derive(Debug, Clone)]
pub struct EncodedPacket {
    /// Audio or video.
    pub kind: MediaKind,
    /// The payload (for OBS: its reference-counted buffer, not a copy).
    pub data: Bytes,
    /// Presentation time, in `timebase_num / timebase_den` seconds.
    pub pts: i64,
    /// Decode time, same unit.
    pub dts: i64,
    /// Time base numerator.
    pub timebase_num: i32,
    /// Time base denominator.
    pub timebase_den: i32,
    /// A video keyframe.
    pub keyframe: bool,
    /// System time (µs) of the packet's dts: what a stop request is expressed in.
    pub sys_dts_usec: i64,
}

impl EncodedPacket {
    fn ms(&self, value: i64) -> i64 {
        let den = i128::from(self.timebase_den.max(1));
        (i128::from(value) * i128::from(self.timebase_num) * 1000 / den) as i64
    }

    /// Decode time in milliseconds.
    pub fn dts_ms(&self) -> i64 {
        self.ms(self.dts)
    }

    /// Presentation time in milliseconds.
    pub fn pts_ms(&self) -> i64 {
        self.ms(self.pts)
    }
}

/// The video encoder's output format.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoSetup {
    /// Codec.
    pub codec: VideoCodec,
    /// Parameter sets (Annex-B for H.264/HEVC, a sequence header OBU for AV1).
    pub extradata: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: f64,
    /// Target bitrate.
    pub bitrate_kbps: u32,
}

/// The audio encoder's output format (AAC).
#[derive(Debug, Clone, PartialEq)]
pub struct AudioSetup {
    /// AudioSpecificConfig.
    pub extradata: Vec<u8>,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u32,
    /// Target bitrate.
    pub bitrate_kbps: u32,
}

/// What the stream carries, known once the encoders are initialized.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSetup {
    /// Video, if any.
    pub video: Option<VideoSetup>,
    /// Audio, if any.
    pub audio: Option<AudioSetup>,
    /// The `encoder` field of `onMetaData`.
    pub encoder: String,
}

/// How a session ended.
#[derive(Debug)]
pub enum Outcome {
    /// Stopped on request, after sending everything up to the stop point.
    Stopped(Report),
    /// Failed; `published` tells whether any connection ever published.
    Failed {
        /// Why.
        error: SessionError,
        /// Whether media had started flowing (OBS: data capture had begun).
        published: bool,
    },
    /// Stopped at once on request (forced stop, or a stop before anything was published),
    /// or the drain took longer than allowed.
    Abandoned {
        /// Whether media had started flowing.
        published: bool,
    },
}

/// Told what happens to a session, on the output's runtime thread. Must return quickly.
pub trait Observer: Send + 'static {
    /// The first connection publishes: time to let media flow.
    fn publishing(&mut self);
    /// Something worth showing (moves, reconnects).
    fn event(&mut self, event: &SessionEvent);
    /// The session is over.
    fn ended(&mut self, outcome: Outcome);
}

/// When and how to stop: shared by the owner and the session's input.
#[derive(Debug)]
struct StopSignal {
    /// Packets whose `sys_dts_usec` is at or past this end the input (`i64::MAX`: running).
    at_usec: AtomicI64,
    changed: Notify,
}

impl StopSignal {
    const RUNNING: i64 = i64::MAX;
    const NOW: i64 = i64::MIN;

    fn new() -> Self {
        Self {
            at_usec: AtomicI64::new(Self::RUNNING),
            changed: Notify::new(),
        }
    }

    fn set(&self, at_usec: i64) {
        self.at_usec.fetch_min(at_usec, Ordering::AcqRel);
        self.changed.notify_waiters();
        self.changed.notify_one();
    }

    fn at(&self) -> i64 {
        self.at_usec.load(Ordering::Acquire)
    }
}

/// The session's input: packets from the channel, packaged, until the stop point.
struct LiveInput {
    packets: PacketReceiver<EncodedPacket>,
    packager: Packager,
    pending: VecDeque<Tag>,
    stop: Arc<StopSignal>,
    ended: bool,
}

impl LiveInput {
    async fn next(&mut self) -> Option<Tag> {
        loop {
            if let Some(tag) = self.pending.pop_front() {
                return Some(tag);
            }
            if self.ended || self.stop.at() == StopSignal::NOW {
                return None;
            }
            let stop = Arc::clone(&self.stop);
            let stopping = stop.at() != StopSignal::RUNNING;
            let packet = tokio::select! {
                packet = self.packets.recv() => packet,
                () = stop.changed.notified(), if !stopping => continue,
                // Encoders that went quiet after a stop request have nothing more to give.
                () = tokio::time::sleep(STOP_IDLE), if stopping => None,
            };
            let Some(packet) = packet else {
                self.ended = true;
                continue;
            };
            if packet.sys_dts_usec >= self.stop.at() {
                self.ended = true;
                continue;
            }
            self.packager.package(&packet, &mut self.pending);
        }
    }
}

impl TagInput for LiveInput {
    fn next_tag(&mut self) -> impl std::future::Future<Output = Option<Tag>> + Send {
        self.next()
    }
}

/// The running part of one stream.
struct Running {
    stop: Arc<StopSignal>,
    handle: Arc<SessionHandle>,
    /// Set just before the observer hears how the stream ended.
    ended: Arc<AtomicBool>,
}

/// One output: its runtime, its packet channel, and the stream running on them, if any.
pub struct LiveOutput {
    runtime: Option<Runtime>,
    sender: PacketSender<EncodedPacket>,
    receiver: PacketReceiver<EncodedPacket>,
    current: Mutex<Option<Running>>,
    /// Frames the channel refused (the session is gone or hopelessly behind).
    refused: Arc<AtomicU64>,
}

/// After a stop request, this long without a packet ends the stream.
const STOP_IDLE: Duration = Duration::from_secs(1);
/// How long a stop may take to send what is due before the connection is dropped.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long dropping an output waits for its runtime's threads.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(3);

impl LiveOutput {
    /// An idle output with its runtime (threads named `name`).
    pub fn new(name: &str) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .thread_name(name)
            .enable_all()
            .build()?;
        let (sender, receiver) = packet_channel(CHANNEL_CAPACITY);
        Ok(Self {
            runtime: Some(runtime),
            sender,
            receiver,
            current: Mutex::new(None),
            refused: Arc::default(),
        })
    }

    /// The encoder side's end of the channel (valid for the output's whole life).
    pub fn sender(&self) -> &PacketSender<EncodedPacket> {
        &self.sender
    }

    /// Counts a packet the channel refused.
    pub fn note_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts a stream: connects in the background; `observer` hears when it publishes.
    pub fn start(
        &self,
        mut config: SessionConfig,
        setup: StreamSetup,
        mut observer: impl Observer,
    ) -> io::Result<()> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| io::Error::other("output shut down"))?;
        // Whatever a previous stream left in the channel is stale.
        let mut packets = self.receiver.clone();
        while packets.try_recv().is_some() {}
        let stop = Arc::new(StopSignal::new());
        let handle = Arc::new(SessionHandle::default());
        config.handle = Arc::clone(&handle);
        config.live_source = true;
        config.link.queue = QueueLimits::LIVE;
        if let Some(video) = &setup.video {
            if video.codec != VideoCodec::H264 {
                config.link.fourcc_list = vec![video.codec.fourcc().to_string()];
            }
        }
        let input = LiveInput {
            packets,
            packager: Packager::new(setup),
            pending: VecDeque::new(),
            stop: Arc::clone(&stop),
            ended: false,
        };
        let ended = Arc::new(AtomicBool::new(false));
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(Running {
            stop: Arc::clone(&stop),
            handle,
            ended: Arc::clone(&ended),
        });
        let (events_tx, mut events) = mpsc::unbounded_channel();
        runtime.spawn(async move {
            let session = session::run(config, input, Some(events_tx));
            tokio::pin!(session);
            let mut published = false;
            let mut drain_deadline = None;
            let outcome = loop {
                let was_published = published;
                let forced = async {
                    loop {
                        match (stop.at(), drain_deadline) {
                            (StopSignal::NOW, _) => return,
                            (StopSignal::RUNNING, _) => stop.changed.notified().await,
                            // Nothing flows yet: nothing to drain.
                            _ if !was_published => return,
                            (_, None) => {
                                drain_deadline =
                                    Some(tokio::time::Instant::now() + SHUTDOWN_TIMEOUT);
                            }
                            (_, Some(deadline)) => {
                                tokio::select! {
                                    () = tokio::time::sleep_until(deadline) => return,
                                    () = stop.changed.notified() => {}
                                }
                            }
                        }
                    }
                };
                tokio::select! {
                    result = &mut session => break match result {
                        Ok(report) => Outcome::Stopped(report),
                        Err(error) => Outcome::Failed { error, published },
                    },
                    Some(event) = events.recv() => {
                        if matches!(event, SessionEvent::Publishing { .. }) && !published {
                            published = true;
                            observer.publishing();
                        }
                        observer.event(&event);
                    }
                    () = forced => break Outcome::Abandoned { published },
                }
            };
            ended.store(true, Ordering::Release);
            observer.ended(outcome);
        });
        Ok(())
    }

    /// Stops the stream: sends what the encoders produced before system time `at_usec`,
    /// ends the stream cleanly, and reports through the observer. `None` stops at once.
    pub fn stop(&self, at_usec: Option<i64>) {
        if let Some(running) = &*self.current.lock().unwrap_or_else(PoisonError::into_inner) {
            running.stop.set(at_usec.unwrap_or(StopSignal::NOW));
        }
    }

    /// Whether a stream started and has not ended yet (its observer has not heard the end,
    /// or is hearing it now). A stop asked of an ended stream changes nothing: the caller
    /// must conclude the stop itself.
    pub fn is_streaming(&self) -> bool {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|r| !r.ended.load(Ordering::Acquire))
    }

    /// The current (or last) stream's live figures.
    pub fn handle(&self) -> Option<Arc<SessionHandle>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|r| Arc::clone(&r.handle))
    }

    /// Packets the channel refused since the output was made.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for LiveOutput {
    fn drop(&mut self) {
        self.stop(None);
        if let Some(runtime) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Inside some runtime a blocking wait would panic: let the threads finish
                // on their own.
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
            }
        }
    }
}
