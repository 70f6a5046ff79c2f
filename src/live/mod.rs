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

mod lifecycle;
mod packaging;

use std::any::Any;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, Notify};

use crate::media::{Tag, VideoCodec};
use crate::session::{
    self, packet_channel, PacketReceiver, PacketSender, SessionConfig, SessionEvent, SessionHandle,
    TagInput,
};
use crate::transport::io::sleep_until_some;
use crate::transport::QueueLimits;
pub use lifecycle::{End, Failure, Lifecycle, Outcome, Phase, StopAt, StopCode, StopReply};
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
    /// The output's audio track: 0 the main one, 1 the VOD track ([`StreamSetup::vod`]);
    /// 0 for video.
    pub track: u8,
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
    /// A second audio track (Twitch's VOD track), if the stream has one.
    pub vod: Option<VodTrack>,
    /// The `encoder` field of `onMetaData`.
    pub encoder: String,
}

/// The stream's second audio track: a soundtrack without the music a platform may not
/// archive (Twitch's VOD track), sent as the OBS version in use sends it, so the platform
/// sees what it sees without lossless streaming.
#[derive(Debug, Clone, PartialEq)]
pub struct VodTrack {
    /// Its encoder's output format (AAC).
    pub audio: AudioSetup,
    /// How it goes on the wire.
    pub format: VodFormat,
}

/// How a [`VodTrack`] goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VodFormat {
    /// Enhanced RTMP multitrack audio, track 1 (OBS 30.2 and later).
    Multitrack,
    /// `additionalMedia` script tags announced by `onExpectAdditionalMedia` (OBS 29 to 30.1).
    AdditionalMedia,
}

/// The codec headers (encoder extra data) as the encoders know them now.
///
/// Read when the stream's first packet is packaged, not when the stream starts: some
/// encoders (Apple VideoToolbox, per OBS's source) fill them in only with their first
/// keyframe, as OBS's own output allows for.
pub trait CodecHeaders: Send + 'static {
    /// The video encoder's extra data, if it has any now.
    fn video(&mut self) -> Option<Vec<u8>>;
    /// The audio encoder's extra data, if it has any now.
    fn audio(&mut self) -> Option<Vec<u8>>;
    /// The VOD track's encoder's extra data (none by default: no VOD track).
    fn vod_audio(&mut self) -> Option<Vec<u8>> {
        None
    }
}

/// Told what happens to a stream. Must return quickly.
pub trait Observer: Send + 'static {
    /// The first connection publishes: let media flow. False if that failed (the stream
    /// then ends as an error). Not called if a stop, a failure or the output's end came
    /// first.
    fn publishing(&mut self) -> bool;
    /// Something worth showing (moves, reconnects), on the output's runtime thread.
    fn event(&mut self, event: &SessionEvent);
    /// The stream is over: called exactly once per stream (never after the output is
    /// dropped), with the output's state locked, so a stop requested meanwhile is
    /// answered by this. May read [`LiveOutput::handle`] and [`LiveOutput::refused`]
    /// (OBS does, from inside the calls that end the stream); must not call anything else
    /// of the [`LiveOutput`].
    fn ended(&mut self, end: End);
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
    /// After a stop request: when the encoders count as quiet if nothing came by then.
    /// Kept here, not in `next`'s future, so that a `next` the session cancels (it waits
    /// for links and timers too) does not restart the wait.
    quiet_at: Option<tokio::time::Instant>,
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
            let quiet_at = stopping.then(|| {
                *self
                    .quiet_at
                    .get_or_insert_with(|| tokio::time::Instant::now() + STOP_IDLE)
            });
            let packet = tokio::select! {
                packet = self.packets.recv() => packet,
                () = stop.changed.notified(), if !stopping => continue,
                // Encoders that went quiet after a stop request have nothing more to give.
                () = sleep_until_some(quiet_at), if stopping => None,
            };
            self.quiet_at = None;
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
struct Stream {
    stop: Arc<StopSignal>,
}

impl Stream {
    fn apply(&self, stop: Option<StopAt>) {
        match stop {
            Some(StopAt::Drain(at_usec)) => self.stop.set(at_usec),
            Some(StopAt::Now) => self.stop.set(StopSignal::NOW),
            None => {}
        }
    }
}

/// The lifecycle and the stream it governs, under one lock.
#[derive(Default)]
struct State {
    lifecycle: Lifecycle,
    stream: Option<Stream>,
}

/// What the output shares with its stream's tasks. Lock order: `state`, then `observer`.
struct Shared {
    state: Mutex<State>,
    observer: Mutex<Option<Box<dyn Observer>>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn observer(&self) -> MutexGuard<'_, Option<Box<dyn Observer>>> {
        self.observer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session published: begins capture if nothing stopped the stream first.
    fn publishing(&self) {
        if !self.state().lifecycle.publishing() {
            return;
        }
        let began = self.observer().as_mut().is_some_and(|o| o.publishing());
        if !began {
            let mut state = self.state();
            let stop = state.lifecycle.capture_refused();
            if let Some(stream) = &state.stream {
                stream.apply(stop);
            }
        }
    }

    /// Reports the stream's end (once; the lifecycle decides), the state locked throughout.
    fn conclude(&self, end: impl FnOnce(&mut Lifecycle) -> Option<End>) {
        let mut state = self.state();
        if let Some(end) = end(&mut state.lifecycle) {
            if let Some(observer) = self.observer().as_mut() {
                observer.ended(end);
            }
        }
    }
}

/// One output: its runtime, its packet channel, and the stream running on them, if any.
pub struct LiveOutput {
    runtime: Option<Runtime>,
    sender: PacketSender<EncodedPacket>,
    receiver: PacketReceiver<EncodedPacket>,
    shared: Arc<Shared>,
    /// The current (or last) stream's live figures. Apart from the state: OBS reads them
    /// (`get_dropped_frames`) from inside the calls that report the end, made with the
    /// state locked.
    handle: Mutex<Option<Arc<SessionHandle>>>,
    /// Frames the channel refused during the current stream (the session is gone or
    /// hopelessly behind).
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
            shared: Arc::new(Shared {
                state: Mutex::default(),
                observer: Mutex::new(None),
            }),
            handle: Mutex::new(None),
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

    /// Starts a stream: connects in the background; `observer` hears when it publishes and
    /// how it ends. `config.handle` receives the stream's live figures. `headers`, if
    /// given, supplies the codec headers when the first packet is packaged (else the
    /// setup's are used).
    pub fn start(
        &self,
        config: SessionConfig,
        setup: StreamSetup,
        headers: Option<Box<dyn CodecHeaders>>,
        observer: impl Observer,
    ) -> io::Result<()> {
        let handle = Arc::clone(&config.handle);
        self.start_configuring(handle, move || Ok(config), setup, headers, observer)
    }

    /// [`LiveOutput::start`] with the configuration made by `configure` on the output's
    /// runtime, just before connecting, not on the caller's thread: finding out where to
    /// publish may take seconds (OBS's listed Twitch service refreshes its ingest list
    /// then), and the caller may be a UI thread. An error ends the stream, saying why.
    /// `handle` is the one the configuration carries.
    pub fn start_configuring(
        &self,
        handle: Arc<SessionHandle>,
        configure: impl FnOnce() -> Result<SessionConfig, String> + Send + 'static,
        setup: StreamSetup,
        headers: Option<Box<dyn CodecHeaders>>,
        observer: impl Observer,
    ) -> io::Result<()> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| io::Error::other("output shut down"))?;
        if !self.shared.state().lifecycle.begin() {
            return Err(io::Error::other("a stream is already running"));
        }
        // Whatever a previous stream left in the channel is stale.
        let mut packets = self.receiver.clone();
        while packets.try_recv().is_some() {}
        self.refused.store(0, Ordering::Relaxed);
        let stop = Arc::new(StopSignal::new());
        let fourcc = setup
            .video
            .as_ref()
            .filter(|video| video.codec != VideoCodec::H264)
            .map(|video| video.codec.fourcc().to_string());
        let configure = move || {
            let mut config = configure()?;
            config.live_source = true;
            config.link.queue = QueueLimits::LIVE;
            if let Some(fourcc) = fourcc {
                config.link.fourcc_list = vec![fourcc];
            }
            Ok(config)
        };
        let input = LiveInput {
            packets,
            packager: Packager::new(setup, headers),
            pending: VecDeque::new(),
            stop: Arc::clone(&stop),
            ended: false,
            quiet_at: None,
        };
        *self.shared.observer() = Some(Box::new(observer));
        *self.handle.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        {
            let mut state = self.shared.state();
            let stream = Stream {
                stop: Arc::clone(&stop),
            };
            stream.apply(state.lifecycle.spawned());
            state.stream = Some(stream);
        }
        let shared_for_task = Arc::clone(&self.shared);
        let task = runtime.spawn(async move {
            let config = match tokio::task::spawn_blocking(configure).await {
                Ok(Ok(config)) => config,
                Ok(Err(message)) => return Outcome::Unconfigured(message),
                Err(error) => {
                    return Outcome::Unconfigured(format!(
                        "making the configuration failed: {error}"
                    ))
                }
            };
            if stop.at() == StopSignal::NOW {
                return Outcome::Abandoned;
            }
            run_stream(config, input, stop, shared_for_task).await
        });
        let shared = Arc::clone(&self.shared);
        runtime.spawn(async move {
            match task.await {
                Ok(outcome) => shared.conclude(|life| life.ended(outcome)),
                Err(error) if error.is_panic() => {
                    let message = panic_message(error.into_panic());
                    log::error!("the stream's task panicked: {message}");
                    shared.conclude(|life| life.panicked(message));
                }
                // Cancelled: the runtime is shutting down with the output.
                Err(_) => {}
            }
        });
        Ok(())
    }

    /// Stops the stream: sends what the encoders produced before system time `at_usec`,
    /// ends the stream cleanly, and reports through the observer. `None` stops at once.
    /// False if no stream runs (none started, or its end was already reported): the
    /// caller must then conclude the stop itself.
    pub fn stop(&self, at_usec: Option<i64>) -> bool {
        let mut state = self.shared.state();
        match state.lifecycle.stop(at_usec) {
            StopReply::Session(at) => {
                if let Some(stream) = &state.stream {
                    stream.apply(Some(at));
                }
                true
            }
            StopReply::Pending => true,
            StopReply::NothingRuns => false,
        }
    }

    /// Ends the stream at once because of `failure` (the encoder failed, a callback
    /// panicked); the observer hears it as the stream's end.
    pub fn fail(&self, failure: Failure) {
        let mut state = self.shared.state();
        let stop = state.lifecycle.fail(failure);
        if let Some(stream) = &state.stream {
            stream.apply(stop);
        }
    }

    /// The current (or last) stream's live figures.
    pub fn handle(&self) -> Option<Arc<SessionHandle>> {
        self.handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Packets the channel refused during the current (or last) stream.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// One stream's session, feeding its events to the observer, until it ends.
async fn run_stream(
    config: SessionConfig,
    input: LiveInput,
    stop: Arc<StopSignal>,
    shared: Arc<Shared>,
) -> Outcome {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let session = session::run(config, input, Some(events_tx));
    tokio::pin!(session);
    let mut drain_deadline = None;
    loop {
        let forced = async {
            loop {
                match (stop.at(), drain_deadline) {
                    (StopSignal::NOW, _) => return,
                    (StopSignal::RUNNING, _) => stop.changed.notified().await,
                    (_, None) => {
                        drain_deadline = Some(tokio::time::Instant::now() + SHUTDOWN_TIMEOUT);
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
        // Biased: a forced stop wins over anything else that is ready at the same time.
        tokio::select! {
            biased;
            () = forced => return Outcome::Abandoned,
            result = &mut session => return match result {
                Ok(report) => Outcome::Stopped(report),
                Err(error) => Outcome::Failed(error),
            },
            Some(event) = events.recv() => {
                if matches!(event, SessionEvent::Publishing { .. }) {
                    shared.publishing();
                }
                if let Some(observer) = shared.observer().as_mut() {
                    observer.event(&event);
                }
            }
        }
    }
}

/// The text a panic carried.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

impl Drop for LiveOutput {
    fn drop(&mut self) {
        {
            let mut state = self.shared.state();
            let stop = state.lifecycle.destroy();
            if let Some(stream) = &state.stream {
                stream.apply(stop);
            }
        }
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
