//! `goaway_rtmp_output`: OBS's Start Streaming runs this output; it hands encoder packets to
//! a [`LiveOutput`] and reports back to OBS (data capture, status bar, errors, reconnects).

use std::ffi::{c_char, c_void};
use std::path::Path;
use std::ptr;
use std::sync::{Arc, Mutex, PoisonError};

use obs_sys::{
    audio_output_get_channels, bfree, calldata_set_data, calldata_t, encoder_packet, obs_data_t,
    obs_encoder_audio, obs_encoder_get_caps, obs_encoder_get_codec, obs_encoder_get_extra_data,
    obs_encoder_get_height, obs_encoder_get_name, obs_encoder_get_ref, obs_encoder_get_sample_rate,
    obs_encoder_get_settings, obs_encoder_get_width, obs_encoder_release, obs_encoder_t,
    obs_encoder_update, obs_encoder_video, obs_output_begin_data_capture,
    obs_output_can_begin_data_capture, obs_output_end_data_capture, obs_output_get_audio_encoder,
    obs_output_get_delay, obs_output_get_service, obs_output_get_settings,
    obs_output_get_signal_handler, obs_output_get_video_encoder, obs_output_info,
    obs_output_info_29_1, obs_output_initialize_encoders, obs_output_set_last_error,
    obs_output_signal_stop, obs_output_t, obs_register_output_s, obs_service_get_settings,
    signal_handler_signal, video_output_get_frame_rate, OBS_ENCODER_CAP_DYN_BITRATE, OBS_OUTPUT_AV,
    OBS_OUTPUT_CONNECT_FAILED, OBS_OUTPUT_ENCODED, OBS_OUTPUT_ENCODE_ERROR, OBS_OUTPUT_ERROR,
    OBS_OUTPUT_INVALID_STREAM, OBS_OUTPUT_SERVICE, OBS_OUTPUT_SUCCESS,
};
use obs_wrapper::data::DataObj;
use obs_wrapper::wrapper::PtrWrapper;

use super::ffi::{c_string, cstr, guard, text};
use super::locale::{self, text_ptr, tr, with_detail};
use super::packet;
use super::registration::Registration;
use super::settings::{session_config, Destination, Sink, Source};
use super::symbols::{connect_info, ConnectInfo};
use super::version::Running;
use crate::live::{
    AudioSetup, CodecHeaders, End, Failure, LiveOutput, Observer, StopCode, StreamSetup,
    VideoSetup, VodFormat, VodTrack,
};
use crate::media::VideoCodec;
use crate::session::{
    Cause, CutoverKind, DynamicBitrate, Resolver, SessionError, SessionEvent, SessionHandle,
};
use crate::transport::{tls, IpFamily, LocalEnd};

/// The output's audio index of the Twitch VOD track (OBS's frontend puts it there).
const VOD_TRACK: u64 = 1;
/// `OBS_OUTPUT_MULTI_TRACK` (29) / `OBS_OUTPUT_MULTI_TRACK_AUDIO` (30 and later): the same
/// bit under two names, so spelled out.
const MULTI_TRACK_AUDIO: u32 = 1 << 4;

/// OBS's output handle, passed to the runtime thread for callbacks into OBS.
#[derive(Clone, Copy)]
struct OutputPtr(*mut obs_output_t);
// SAFETY: libobs's output functions used here are thread-safe, and OBS destroys the
// output only after `destroy` (which shuts the runtime down) returned.
unsafe impl Send for OutputPtr {}
// SAFETY: as for Send: shared, it is only passed to those thread-safe functions.
unsafe impl Sync for OutputPtr {}

/// One output instance.
struct Output {
    output: OutputPtr,
    live: LiveOutput,
    /// The encoders of the last stream, kept alive until the next start or `destroy`
    /// (dropped after `live`, so after the stream ended).
    encoders: Mutex<HeldEncoders>,
}

/// Strong references to the encoders a stream used.
///
/// When OBS quits while streaming, its frontend releases its encoders before it destroys
/// the stream output. libobs 30.2 then frees each encoder's reference count while the
/// encoder is still running, and ending the output's data capture afterwards
/// (`obs_encoder_stop`) takes a reference in freed memory: heap corruption, a crash at
/// exit (fixed in OBS 31 by outputs holding strong references themselves). Holding our
/// own references makes every OBS version release the encoders only once the output is
/// done with them.
///
/// The VOD track's encoder needs one more care: when the next stream's service has no VOD
/// track, OBS's frontend (29.0 to 32.2, `clear_archive_encoder`) takes that encoder off
/// the output and releases a reference to it that it never took. Ours then stands in for
/// that release: it is kept, not released a second time, which would free the encoder
/// under the frontend (a crash when OBS quits).
struct HeldEncoders {
    output: *mut obs_output_t,
    /// Video and main audio.
    encoders: Vec<*mut obs_encoder_t>,
    /// The VOD track's (NULL: none).
    vod: *mut obs_encoder_t,
}

impl Default for HeldEncoders {
    fn default() -> Self {
        Self {
            output: ptr::null_mut(),
            encoders: Vec::new(),
            vod: ptr::null_mut(),
        }
    }
}

// SAFETY: encoder references are atomic counts; releasing one is safe on any thread.
unsafe impl Send for HeldEncoders {}

impl HeldEncoders {
    /// References to `output`'s video and audio encoders.
    ///
    /// # Safety
    /// `output` is a live output, and still is whenever these are dropped.
    unsafe fn of(output: *mut obs_output_t) -> Self {
        let encoders = [
            obs_output_get_video_encoder(output),
            obs_output_get_audio_encoder(output, 0),
        ];
        Self {
            output,
            encoders: encoders
                .into_iter()
                .map(|encoder| obs_encoder_get_ref(encoder))
                .filter(|encoder| !encoder.is_null())
                .collect(),
            vod: obs_encoder_get_ref(obs_output_get_audio_encoder(output, VOD_TRACK)),
        }
    }
}

impl Drop for HeldEncoders {
    fn drop(&mut self) {
        for encoder in self.encoders.drain(..) {
            // SAFETY: each pointer holds one reference, taken in `of`.
            unsafe { obs_encoder_release(encoder) };
        }
        if self.vod.is_null() {
            return;
        }
        // SAFETY: the output is live (see `of`); the VOD pointer holds one reference.
        unsafe {
            if obs_output_get_audio_encoder(self.output, VOD_TRACK).is_null() {
                log::info!("OBS took the VOD track's encoder off the output and released a reference it never took (its clear_archive_encoder): ours stands in for it");
            } else {
                obs_encoder_release(self.vod);
            }
        }
    }
}

/// The sessions of this process's streaming outputs, by output: what the settings dialog
/// and obs-websocket read the status of and ask to switch servers. An entry is added
/// before a stream's session runs (so its end always comes after) and removed when it
/// ends, when it cannot start, or when the output goes away.
static RUNNING: Mutex<Vec<(usize, Arc<SessionHandle>)>> = Mutex::new(Vec::new());

fn set_running(output: OutputPtr, handle: Option<Arc<SessionHandle>>) {
    let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    running.retain(|(id, _)| *id != output.0 as usize);
    running.extend(handle.map(|h| (output.0 as usize, h)));
}

/// The most recently started stream that is still running.
pub(crate) fn running_session() -> Option<Arc<SessionHandle>> {
    RUNNING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .last()
        .map(|(_, handle)| Arc::clone(handle))
}

/// Takes ownership of a settings reference OBS gave us.
///
/// # Safety
/// `data` is NULL or a settings object whose reference the caller owns.
unsafe fn owned(data: *mut obs_data_t) -> Option<DataObj<'static>> {
    (!data.is_null()).then(|| DataObj::from_raw(data))
}

impl Output {
    /// Starts connecting; false (with OBS's last error set) if the stream cannot start.
    fn start(&self) -> Result<(), String> {
        let output = self.output.0;
        // SAFETY: `output` is live while OBS calls our callbacks.
        unsafe {
            if !obs_output_can_begin_data_capture(output, 0) {
                return Err(locale::text(tr!("Error.CannotCapture")));
            }
            if !obs_output_initialize_encoders(output, 0) {
                return Err(locale::text(tr!("Error.Encoders")));
            }
            // The previous stream's encoders go only now that it is over.
            *self.encoders.lock().unwrap_or_else(PoisonError::into_inner) =
                HeldEncoders::of(output);
        }
        // SAFETY: as above; the settings reference is ours to release.
        let settings = unsafe { owned(obs_output_get_settings(output)) };
        let local = settings.as_ref().map(local_end);
        let setup = self.setup()?;
        // The frontend passes OBS's "Dynamically change bitrate to manage congestion".
        let dynamic_bitrate = if settings.and_then(|s| s.boolean("dyn_bitrate")) == Some(true) {
            self.dynamic_bitrate(&setup)
        } else {
            None
        };
        let handle = Arc::new(SessionHandle::default());
        let observer = ObsObserver {
            output: self.output,
            server: String::new(),
            target: None,
            bitrate: dynamic_bitrate.map(|dbr| EncoderBitrate {
                output: self.output,
                original: dbr.video_kbps,
                current: dbr.video_kbps,
            }),
        };
        let described = format!(
            "{}, {}x{}",
            setup
                .video
                .as_ref()
                .map_or("no video", |v| v.codec.fourcc()),
            setup.video.as_ref().map_or(0, |v| v.width),
            setup.video.as_ref().map_or(0, |v| v.height),
        );
        let (target, session_handle) = (self.output, Arc::clone(&handle));
        // Asked on the runtime, not here on OBS's UI thread: a listed service resolves its
        // server now (Twitch's "auto" may refresh OBS's ingest list for seconds).
        let configure = move || {
            let (destination, options) = destination(target)?;
            let mut config =
                session_config(&destination, &options).map_err(|error| error.to_string())?;
            config.handle = session_handle;
            // Later connections to the same server ask the service again, as OBS's own
            // output does at every connection (Twitch's "auto" follows the ingest list).
            config.resolve = Some(Resolver(Arc::new(move || {
                let (now, _) = self::destination(target)?;
                now.url().map_err(|error| error.to_string())
            })));
            if let Some(local) = local {
                config.link.local = local;
            }
            // For rtmps:// (the service's own, or a server a move names): the CAs OBS's own
            // RTMPS output trusts, read at each stream start.
            config.link.tls = Some(
                tls::client_config_with_dir(Path::new(tls::SYSTEM_CA_DIR))
                    .map_err(|error| error.to_string())?,
            );
            config.congestion = Some(Default::default());
            config.dynamic_bitrate = dynamic_bitrate;
            log::info!("connecting to {} ({described})", config.url);
            Ok(config)
        };
        let headers = self.codec_headers();
        set_running(self.output, Some(Arc::clone(&handle)));
        self.live
            .start_configuring(handle, configure, setup, Some(Box::new(headers)), observer)
            .map_err(|error| {
                set_running(self.output, None);
                with_detail(tr!("Error.CannotStart"), &error)
            })?;
        Ok(())
    }

    /// Dynamic bitrate for this stream, if it can work here, under OBS's own conditions
    /// (rtmp-stream.c, init_connect): the encoder must take a new bitrate while running, and
    /// no stream delay may stand between a change and the congestion it answers (the loop
    /// would react to the past).
    fn dynamic_bitrate(&self, setup: &StreamSetup) -> Option<DynamicBitrate> {
        let video = setup.video.as_ref()?;
        // SAFETY: the output is live, its video encoder initialized (setup read it).
        unsafe {
            let encoder = obs_output_get_video_encoder(self.output.0);
            if encoder.is_null() {
                return None;
            }
            if obs_encoder_get_caps(encoder) & OBS_ENCODER_CAP_DYN_BITRATE == 0 {
                log::info!(
                    "Dynamic bitrate disabled. The encoder '{}' does not support on-the-fly bitrate reconfiguration.",
                    text(obs_encoder_get_name(encoder))
                );
                return None;
            }
            if obs_output_get_delay(self.output.0) != 0 {
                log::info!(
                    "Dynamic bitrate disabled. Stream delay and dynamic bitrate are incompatible."
                );
                return None;
            }
        }
        if video.bitrate_kbps == 0 {
            log::info!("Dynamic bitrate disabled: the video encoder has no bitrate setting.");
            return None;
        }
        log::info!("Dynamic bitrate enabled.  Dropped frames begone!");
        let audio_kbps = setup.audio.as_ref().map_or(0, |a| a.bitrate_kbps);
        Some(DynamicBitrate::new(video.bitrate_kbps, audio_kbps))
    }

    /// The encoders' codec headers, read when the first packet is packaged.
    fn codec_headers(&self) -> EncoderHeaders {
        // SAFETY: the output is live; its encoders stay attached (and referenced, see
        // HeldEncoders) until after the stream ended.
        unsafe {
            EncoderHeaders {
                video: obs_output_get_video_encoder(self.output.0),
                audio: obs_output_get_audio_encoder(self.output.0, 0),
                vod: obs_output_get_audio_encoder(self.output.0, VOD_TRACK),
            }
        }
    }

    /// What the encoders produce, read once they are initialized.
    fn setup(&self) -> Result<StreamSetup, String> {
        // SAFETY: encoders attached to a live output; returned settings are released.
        unsafe {
            let video = obs_output_get_video_encoder(self.output.0);
            let audio = obs_output_get_audio_encoder(self.output.0, 0);
            let vod = obs_output_get_audio_encoder(self.output.0, VOD_TRACK);
            let format = if Running::detect().has_multitrack_audio() {
                VodFormat::Multitrack
            } else {
                VodFormat::AdditionalMedia
            };
            Ok(StreamSetup {
                video: if video.is_null() {
                    None
                } else {
                    Some(video_setup(video)?)
                },
                audio: (!audio.is_null()).then(|| audio_setup(audio)),
                vod: (!vod.is_null()).then(|| VodTrack {
                    audio: audio_setup(vod),
                    format,
                }),
                encoder: format!("obs-goaway {}", env!("CARGO_PKG_VERSION")),
            })
        }
    }
}

/// Where `output`'s service publishes now, and its settings (our options, if it is ours):
/// the service's connect info, which ours answers for the service it wraps.
fn destination(output: OutputPtr) -> Result<(Destination, DataObj<'static>), String> {
    // SAFETY: the output and its service stay alive while the output is active (OBS does
    // not replace an active output's service); settings references are ours.
    unsafe {
        let service = obs_output_get_service(output.0);
        if service.is_null() {
            return Err(locale::text(tr!("Error.NoService")));
        }
        let options = owned(obs_service_get_settings(service))
            .ok_or_else(|| locale::text(tr!("Error.NoService")))?;
        // A service answers with credentials only with authentication on.
        let optional = |text: String| (!text.is_empty()).then_some(text);
        let destination = Destination {
            server: connect_info(service, ConnectInfo::ServerUrl),
            key: connect_info(service, ConnectInfo::StreamKey),
            username: optional(connect_info(service, ConnectInfo::Username)),
            password: optional(connect_info(service, ConnectInfo::Password)),
        };
        Ok((destination, options))
    }
}

/// # Safety
/// `encoder` is a live, initialized encoder.
unsafe fn extra_data(encoder: *mut obs_encoder_t) -> Vec<u8> {
    let mut data: *mut u8 = ptr::null_mut();
    let mut size = 0;
    if obs_encoder_get_extra_data(encoder, &mut data, &mut size) && !data.is_null() {
        std::slice::from_raw_parts(data, size as usize).to_vec()
    } else {
        Vec::new()
    }
}

/// A stream's encoders, asked for their extra data when the first packet is packaged
/// (OBS's own output reads it when it sends its first packet): encoders such as Apple
/// VideoToolbox fill it in only with their first keyframe.
struct EncoderHeaders {
    video: *mut obs_encoder_t,
    audio: *mut obs_encoder_t,
    vod: *mut obs_encoder_t,
}

// SAFETY: `obs_encoder_get_extra_data` may be called from any thread; the encoders are
// referenced until the stream ended (HeldEncoders), and the runtime that uses this ends
// before the output does.
unsafe impl Send for EncoderHeaders {}

impl EncoderHeaders {
    fn read(encoder: *mut obs_encoder_t) -> Option<Vec<u8>> {
        // SAFETY: see the Send impl.
        (!encoder.is_null())
            .then(|| unsafe { extra_data(encoder) })
            .filter(|data| !data.is_empty())
    }
}

impl CodecHeaders for EncoderHeaders {
    fn video(&mut self) -> Option<Vec<u8>> {
        Self::read(self.video)
    }

    fn audio(&mut self) -> Option<Vec<u8>> {
        Self::read(self.audio)
    }

    fn vod_audio(&mut self) -> Option<Vec<u8>> {
        Self::read(self.vod)
    }
}

/// # Safety
/// As [`extra_data`].
unsafe fn bitrate(encoder: *mut obs_encoder_t) -> u32 {
    owned(obs_encoder_get_settings(encoder))
        .and_then(|settings| settings.int("bitrate"))
        .map_or(0, |b| b.clamp(0, i64::from(u32::MAX)) as u32)
}

/// # Safety
/// As [`extra_data`].
unsafe fn video_setup(encoder: *mut obs_encoder_t) -> Result<VideoSetup, String> {
    let codec = match text(obs_encoder_get_codec(encoder)).as_str() {
        "h264" => VideoCodec::H264,
        "hevc" => VideoCodec::Hevc,
        "av1" => VideoCodec::Av1,
        other => return Err(with_detail(tr!("Error.Codec"), &other)),
    };
    let video = obs_encoder_video(encoder);
    Ok(VideoSetup {
        codec,
        extradata: extra_data(encoder),
        width: obs_encoder_get_width(encoder),
        height: obs_encoder_get_height(encoder),
        fps: if video.is_null() {
            0.0
        } else {
            video_output_get_frame_rate(video)
        },
        bitrate_kbps: bitrate(encoder),
    })
}

/// # Safety
/// As [`extra_data`].
unsafe fn audio_setup(encoder: *mut obs_encoder_t) -> AudioSetup {
    let audio = obs_encoder_audio(encoder);
    AudioSetup {
        extradata: extra_data(encoder),
        sample_rate: obs_encoder_get_sample_rate(encoder),
        channels: if audio.is_null() {
            2
        } else {
            audio_output_get_channels(audio) as u32
        },
        bitrate_kbps: bitrate(encoder),
    }
}

/// OBS's "Bind to IP" and "IP family" (Advanced settings), as the frontend passes them.
fn local_end(settings: &impl Source) -> LocalEnd {
    let bind = settings
        .string("bind_ip")
        .filter(|ip| ip != "default")
        .and_then(|ip| ip.parse().ok());
    let family = match settings.string("ip_family").as_deref() {
        Some("IPv4") => IpFamily::V4,
        Some("IPv6") => IpFamily::V6,
        _ => IpFamily::Any,
    };
    LocalEnd {
        bind,
        family,
        send_buffer: None,
    }
}

/// The video encoder's bitrate while dynamic bitrate manages it: changed when the session
/// asks, and put back when the stream ends (dropping this), as OBS does when its send
/// thread ends, so the next stream, and a recording sharing the encoder, get the configured
/// bitrate again.
struct EncoderBitrate {
    output: OutputPtr,
    original: u32,
    current: u32,
}

impl EncoderBitrate {
    /// Applies `kbps` to the output's video encoder. Called on the output's runtime thread,
    /// never on an OBS encoder thread, holding no lock: `obs_encoder_update` only stores the
    /// settings and flags the encoder, which reconfigures itself before its next frame.
    fn set(&mut self, kbps: u32) {
        // SAFETY: the output is live (see OutputPtr) and its video encoder cannot be
        // replaced while it is active; the settings reference is ours to release.
        unsafe {
            let encoder = obs_output_get_video_encoder(self.output.0);
            if encoder.is_null() {
                return;
            }
            let Some(mut settings) = owned(obs_encoder_get_settings(encoder)) else {
                return;
            };
            settings.set_int("bitrate", i64::from(kbps));
            obs_encoder_update(encoder, settings.as_ptr_mut());
        }
        self.current = kbps;
    }
}

impl Drop for EncoderBitrate {
    fn drop(&mut self) {
        if self.current != self.original {
            self.set(self.original);
            log::info!("bitrate restored to: {}", self.original);
        }
    }
}

/// Reports a session's life to OBS, from the output's runtime thread.
struct ObsObserver {
    output: OutputPtr,
    /// Where the stream goes now (key redacted), for the log.
    server: String,
    /// Where a requested move goes (key redacted).
    target: Option<String>,
    /// With dynamic bitrate: the encoder's bitrate, restored when this goes.
    bitrate: Option<EncoderBitrate>,
}

impl ObsObserver {
    fn signal(&self, name: &'static [u8], timeout_sec: Option<i64>) {
        let mut data = calldata_t::default();
        let output = self.output.0;
        // SAFETY: calldata is used as libobs's inline helpers do (set_data copies the
        // value, bfree releases the stack); the handler is the live output's.
        unsafe {
            calldata_set_data(
                &mut data,
                cstr!("output"),
                ptr::addr_of!(output).cast(),
                size_of::<*mut obs_output_t>() as _,
            );
            if let Some(timeout) = timeout_sec {
                let value: i64 = timeout;
                calldata_set_data(
                    &mut data,
                    cstr!("timeout_sec"),
                    ptr::addr_of!(value).cast(),
                    size_of::<i64>() as _,
                );
            }
            signal_handler_signal(
                obs_output_get_signal_handler(output),
                name.as_ptr().cast(),
                &mut data,
            );
            bfree(data.stack.cast());
        }
    }

    /// Ends the stream with OBS's stop `code`; OBS's "Failed to connect"/"Disconnected"
    /// dialog shows the user the localized `headline` with the session's `detail` (the log
    /// keeps the detail alone, in English).
    fn fail(&self, headline: &'static [u8], detail: &dyn std::fmt::Display, code: i32) {
        log::error!("stream stopped: {detail}");
        let message = c_string(&with_detail(headline, detail));
        // SAFETY: the output is live; OBS copies the error text.
        unsafe {
            obs_output_set_last_error(self.output.0, message.as_ptr());
            obs_output_signal_stop(self.output.0, code);
        }
    }
}

impl Observer for ObsObserver {
    fn publishing(&mut self) -> bool {
        // SAFETY: the output is live and its encoders initialized.
        unsafe { obs_output_begin_data_capture(self.output.0, 0) }
    }

    fn event(&mut self, event: &SessionEvent) {
        match event {
            SessionEvent::Publishing { url, connect_time } => {
                if self.server.is_empty() {
                    self.server.clone_from(url);
                }
                log::info!(
                    "publishing to {url} (connected in {} ms)",
                    connect_time.as_millis()
                );
            }
            SessionEvent::MoveRequested { target, .. } => self.target = Some(target.clone()),
            SessionEvent::Moved(cutover) => {
                let from = self.server.clone();
                if let Some(target) = self.target.take() {
                    self.server = target;
                }
                log::info!(
                    "move: {} ({}) from {from} to {} at keyframe {} ms, {} ms after the signal, {} frames resent",
                    cutover.cause,
                    cutover.kind,
                    self.server,
                    cutover.keyframe_timestamp,
                    cutover.took.as_millis(),
                    cutover.duplicates
                );
                if cutover.kind == CutoverKind::Resumed || cutover.cause == Cause::ConnectionLost {
                    self.signal(b"reconnect_success\0", None);
                }
            }
            SessionEvent::ConnectionLost { error } => {
                log::warn!(
                    "connection to {} lost: {error}; resuming losslessly",
                    self.server
                );
            }
            SessionEvent::Reconnecting { attempt, delay } => {
                log::info!("reconnection attempt {attempt} in {} ms", delay.as_millis());
                self.signal(b"reconnect\0", Some(delay.as_secs() as i64));
            }
            SessionEvent::FramesDropped { count } => {
                log::warn!("resume buffer full: {count} frames dropped");
            }
            SessionEvent::BitrateChanged(change) => {
                log::info!("{change}");
                if let Some(bitrate) = &mut self.bitrate {
                    bitrate.set(change.kbps);
                }
            }
        }
    }

    fn ended(&mut self, end: End) {
        set_running(self.output, None);
        // The configured bitrate is back before OBS hears that the stream ended (OBS's order).
        drop(self.bitrate.take());
        let output = self.output.0;
        let capture_began = match end {
            End::Stopped {
                report,
                capture_began,
            } => {
                log::info!(
                    "stream ended: {} frames, {} moves, {} lost, {} duplicated",
                    report.frames_in,
                    report.cutovers.len(),
                    report.lost,
                    report.duplicates
                );
                capture_began
            }
            End::Abandoned { capture_began } => {
                log::info!("stream stopped at once (forced stop, or nothing to send)");
                capture_began
            }
            End::Failed {
                failure,
                code,
                capture_began: _,
            } => {
                let (headline, detail) = match &failure {
                    Failure::Encoder => (tr!("Fail.Encoder"), "the encoder failed".to_string()),
                    Failure::Internal(message) => {
                        (tr!("Fail.Internal"), format!("internal error: {message}"))
                    }
                    Failure::CaptureRefused => (
                        tr!("Error.CannotCapture"),
                        "OBS refused to begin data capture".to_string(),
                    ),
                    Failure::Session(error) => (session_headline(error, code), error.to_string()),
                    Failure::Destination(message) => (tr!("Error.BadServer"), message.clone()),
                };
                // A stop code other than "disconnected" ends data capture (if it began)
                // without handing the output to libobs's reconnect loop.
                self.fail(headline, &detail, obs_code(code));
                return;
            }
        };
        // SAFETY: the output is live; data capture began only if it published.
        unsafe {
            if capture_began {
                obs_output_end_data_capture(output);
            } else {
                obs_output_signal_stop(output, OBS_OUTPUT_SUCCESS as i32);
            }
        }
    }
}

/// The headline OBS's error dialog shows for a session's failure.
fn session_headline(error: &SessionError, code: StopCode) -> &'static [u8] {
    match (code, error) {
        (StopCode::InvalidStream, _) => tr!("Fail.Rejected"),
        (StopCode::ConnectFailed, _) => tr!("Fail.Connect"),
        (_, SessionError::GaveUp { .. }) => tr!("Fail.GaveUp"),
        _ => tr!("Fail.Disconnected"),
    }
}

/// OBS's value for a stop code.
fn obs_code(code: StopCode) -> i32 {
    match code {
        StopCode::Success => OBS_OUTPUT_SUCCESS as i32,
        StopCode::ConnectFailed => OBS_OUTPUT_CONNECT_FAILED,
        StopCode::InvalidStream => OBS_OUTPUT_INVALID_STREAM,
        StopCode::Error => OBS_OUTPUT_ERROR,
        StopCode::EncodeError => OBS_OUTPUT_ENCODE_ERROR,
    }
}

/// The output behind `data`.
///
/// # Safety
/// `data` is NULL or what `create` returned and `destroy` has not yet freed.
unsafe fn instance<'a>(data: *mut c_void) -> Option<&'a Output> {
    data.cast::<Output>().as_ref()
}

unsafe extern "C" fn get_name(_type_data: *mut c_void) -> *const c_char {
    guard("output get_name", cstr!("Lossless RTMP"), || {
        text_ptr(tr!("Output.Name"))
    })
}

unsafe extern "C" fn create(_settings: *mut obs_data_t, output: *mut obs_output_t) -> *mut c_void {
    guard("output create", ptr::null_mut(), || {
        match LiveOutput::new("obs-goaway") {
            Ok(live) => Box::into_raw(Box::new(Output {
                output: OutputPtr(output),
                live,
                encoders: Mutex::default(),
            }))
            .cast(),
            Err(error) => {
                log::error!("cannot create the output's runtime: {error}");
                ptr::null_mut()
            }
        }
    })
}

unsafe extern "C" fn destroy(data: *mut c_void) {
    guard("output destroy", (), || {
        if !data.is_null() {
            let output = Box::from_raw(data.cast::<Output>());
            set_running(output.output, None);
            // Stops any stream and shuts the runtime down (bounded), on OBS's thread.
            drop(output);
        }
    })
}

unsafe extern "C" fn start(data: *mut c_void) -> bool {
    guard("output start", false, || {
        let Some(output) = instance(data) else {
            return false;
        };
        match output.start() {
            Ok(()) => true,
            Err(message) => {
                log::error!("cannot start streaming: {message}");
                let message = c_string(&message);
                obs_output_set_last_error(output.output.0, message.as_ptr());
                false
            }
        }
    })
}

unsafe extern "C" fn stop(data: *mut c_void, ts: u64) {
    guard("output stop", (), || {
        if let Some(output) = instance(data) {
            let at_usec = (ts != 0).then(|| i64::try_from(ts / 1000).unwrap_or(i64::MAX));
            // Nothing runs (it never started, or its end was already reported: a failure,
            // an encoder error): libobs still waits for this stop to conclude (its stopping
            // event), when quitting too. OBS's own RTMP output answers the same way.
            if !output.live.stop(at_usec) {
                obs_output_signal_stop(output.output.0, OBS_OUTPUT_SUCCESS as i32);
            }
        }
    })
}

/// The hot path, on OBS's encoder thread: take a reference, queue it, return.
unsafe extern "C" fn encoded_packet(data: *mut c_void, packet: *mut encoder_packet) {
    let handed_over = guard("encoded_packet", false, || {
        let Some(output) = instance(data) else {
            return true;
        };
        let Some(packet) = packet.as_ref() else {
            output.live.fail(Failure::Encoder);
            return true;
        };
        if output.live.sender().try_send(packet::take(packet)).is_err() {
            output.live.note_refused();
        }
        true
    });
    if !handed_over {
        if let Some(output) = instance(data) {
            // The stream ends as an error rather than running on in an unknown state.
            output
                .live
                .fail(Failure::Internal("encoded_packet panicked".into()));
        }
    }
}

unsafe extern "C" fn get_total_bytes(data: *mut c_void) -> u64 {
    guard("get_total_bytes", 0, || {
        instance(data)
            .and_then(|o| o.live.handle())
            .map_or(0, |h| h.bytes_sent())
    })
}

unsafe extern "C" fn get_dropped_frames(data: *mut c_void) -> i32 {
    guard("get_dropped_frames", 0, || {
        instance(data).map_or(0, |o| {
            let dropped = o.live.handle().map_or(0, |h| h.dropped_frames());
            i32::try_from(dropped + o.live.refused()).unwrap_or(i32::MAX)
        })
    })
}

unsafe extern "C" fn get_congestion(data: *mut c_void) -> f32 {
    guard("get_congestion", 0.0, || {
        instance(data)
            .and_then(|o| o.live.handle())
            .map_or(0.0, |h| h.congestion().clamp(0.0, 1.0))
    })
}

unsafe extern "C" fn get_connect_time_ms(data: *mut c_void) -> i32 {
    guard("get_connect_time_ms", 0, || {
        instance(data)
            .and_then(|o| o.live.handle())
            .map_or(0, |h| h.connect_time_ms() as i32)
    })
}

/// Registers the output with the struct size the running libobs knows.
pub(crate) fn register(running: Running) {
    let registration = Box::leak(Registration::new(
        obs_output_info {
            id: cstr!("goaway_rtmp_output"),
            // Several audio tracks: OBS adds the Twitch VOD track at audio index 1 only to
            // outputs that take them.
            flags: OBS_OUTPUT_AV | OBS_OUTPUT_ENCODED | OBS_OUTPUT_SERVICE | MULTI_TRACK_AUDIO,
            get_name: Some(get_name),
            create: Some(create),
            destroy: Some(destroy),
            start: Some(start),
            stop: Some(stop),
            encoded_packet: Some(encoded_packet),
            get_total_bytes: Some(get_total_bytes),
            get_dropped_frames: Some(get_dropped_frames),
            get_congestion: Some(get_congestion),
            get_connect_time_ms: Some(get_connect_time_ms),
            encoded_video_codecs: cstr!("h264;hevc;av1"),
            encoded_audio_codecs: cstr!("aac"),
            ..Default::default()
        },
        obs_output_info_29_1 {
            protocols: cstr!("RTMP;RTMPS"),
        },
    ));
    // SAFETY: the registration is leaked (lives as long as the process) and holds `size`
    // bytes laid out as libobs's struct.
    unsafe { obs_register_output_s(registration.info(), registration.size(running) as _) };
}
