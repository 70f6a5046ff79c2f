//! The profile's own service (OBS's listed `rtmp_common` or Custom `rtmp_custom`), held as a
//! private instance inside `goaway_rtmp_service`, which asks it everything OBS asks a
//! service: where to connect (resolved at each connection, so Twitch's "auto" follows
//! OBS's ingest list), the encoder settings the platform wants, its limits. Lossless
//! streaming changes the transport and nothing else.

use std::ffi::{c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};

use obs_sys::{
    obs_data_t, obs_service_apply_encoder_settings, obs_service_create_private,
    obs_service_get_max_bitrate, obs_service_get_max_fps, obs_service_get_supported_resolutions,
    obs_service_get_supported_video_codecs, obs_service_release, obs_service_resolution,
    obs_service_t, obs_service_update,
};

use super::ffi::{c_string, cstr};
use super::symbols;

/// OBS is quitting: libobs destroys every service left, in list order, whatever their
/// references, so a wrapped service may be gone before ours. From then on ours never
/// releases it (libobs frees it itself).
static QUITTING: AtomicBool = AtomicBool::new(false);

/// Called on OBS's exit event, before the frontend drops its services.
pub(crate) fn obs_quitting() {
    QUITTING.store(true, Ordering::Release);
}

/// Whether OBS is quitting (see [`obs_quitting`]).
pub(crate) fn is_quitting() -> bool {
    QUITTING.load(Ordering::Acquire)
}

/// A private instance of another service type.
pub(crate) struct Wrapped {
    service: *mut obs_service_t,
    id: String,
}

impl Wrapped {
    /// A private `id` service with `settings` (ours: the wrapped service ignores our keys);
    /// `None` if libobs cannot create it (its plugin is missing).
    pub(crate) fn create(id: &str, settings: *mut obs_data_t) -> Option<Self> {
        let id_c = c_string(id);
        // SAFETY: `settings` is live; libobs copies it into the new service.
        let service = unsafe {
            obs_service_create_private(id_c.as_ptr(), cstr!("obs-goaway wrapped service"), settings)
        };
        (!service.is_null()).then(|| Self {
            service,
            id: id.to_owned(),
        })
    }

    /// The wrapped service's type.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// New settings (OBS's account integration writes the key into ours, for example).
    pub(crate) fn update(&self, settings: *mut obs_data_t) {
        // SAFETY: the service is live while `self` is; libobs copies the settings.
        unsafe { obs_service_update(self.service, settings) };
    }

    /// A connection detail (`OBS_SERVICE_CONNECT_INFO_*`), resolved now: the wrapped
    /// service's own string, valid until it is asked again.
    pub(crate) fn connect_info(&self, what: u32) -> *const c_char {
        // SAFETY: as in `update`.
        unsafe { symbols::connect_info_raw(self.service, what) }
    }

    /// "RTMP", "RTMPS", ...; NULL before libobs 29.1.
    pub(crate) fn protocol(&self) -> *const c_char {
        // SAFETY: as in `update`.
        unsafe { symbols::protocol(self.service) }
    }

    /// Whether the wrapped service can connect (`None` before libobs 29.1).
    pub(crate) fn can_try_to_connect(&self) -> Option<bool> {
        // SAFETY: as in `update`.
        unsafe { symbols::can_try_to_connect(self.service) }
    }

    /// Applies the platform's encoder settings (keyframe interval, CBR, bitrate caps).
    pub(crate) fn apply_encoder_settings(&self, video: *mut obs_data_t, audio: *mut obs_data_t) {
        // SAFETY: as in `update`; NULL settings are allowed by libobs.
        unsafe { obs_service_apply_encoder_settings(self.service, video, audio) };
    }

    /// Writes the maximum frame rate (left alone: no limit).
    pub(crate) fn max_fps(&self, fps: *mut c_int) {
        // SAFETY: as in `update`; `fps` is libobs's out parameter.
        unsafe { obs_service_get_max_fps(self.service, fps) };
    }

    /// Writes the maximum video and audio bitrates (left alone: no limit).
    pub(crate) fn max_bitrate(&self, video: *mut c_int, audio: *mut c_int) {
        // SAFETY: as in `max_fps`.
        unsafe { obs_service_get_max_bitrate(self.service, video, audio) };
    }

    /// Writes the supported resolutions (an array the caller frees with bfree).
    pub(crate) fn supported_resolutions(
        &self,
        resolutions: *mut *mut obs_service_resolution,
        count: *mut u64,
    ) {
        // SAFETY: as in `max_fps`.
        unsafe { obs_service_get_supported_resolutions(self.service, resolutions, count) };
    }

    /// The supported video codecs (NULL: no restriction).
    pub(crate) fn supported_video_codecs(&self) -> *mut *const c_char {
        // SAFETY: as in `update`.
        unsafe { obs_service_get_supported_video_codecs(self.service).cast_mut() }
    }

    /// The supported audio codecs (NULL: no restriction, or before libobs 29.1).
    pub(crate) fn supported_audio_codecs(&self) -> *mut *const c_char {
        // SAFETY: as in `update`.
        unsafe { symbols::supported_audio_codecs(self.service) }
    }
}

// SAFETY: libobs's service functions may be called from any thread (OBS's own outputs ask
// their service from their connect threads).
unsafe impl Send for Wrapped {}

impl Drop for Wrapped {
    fn drop(&mut self) {
        if is_quitting() {
            return;
        }
        // SAFETY: this holds the only reference, taken by `create`.
        unsafe { obs_service_release(self.service) };
    }
}
