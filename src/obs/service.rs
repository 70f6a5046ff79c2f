//! `goaway_rtmp_service`: the service that makes OBS's Stream button use our output. It
//! wraps the profile's own service ([`super::wrapped`]): its settings are that service's
//! (`service`, `server`, `key`, ...) plus our options, and it answers OBS with that
//! service's answers. A service.json written by hand with OBS's Custom service keys and no
//! wrapped type streams to its own `server` and `key`.

use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr;

use obs_sys::{
    obs_data_addref, obs_data_set_default_bool, obs_data_set_default_int,
    obs_data_set_default_string, obs_data_t, obs_properties_t, obs_register_service_s,
    obs_service_info, obs_service_info_29_1, obs_service_resolution, obs_service_t,
};
use obs_wrapper::data::DataObj;
use obs_wrapper::properties::{BoolProp, Properties, TextProp, TextType};
use obs_wrapper::string::ObsString;
use obs_wrapper::wrapper::PtrWrapper;

use super::ffi::{c_string, cstr, guard};
use super::locale::{text, text_ptr, tr};
use super::profile;
use super::registration::Registration;
use super::settings::{key, Destination, Setting, Source, OPTIONS};
use super::symbols::ConnectInfo;
use super::version::Running;
use super::wrapped::Wrapped;

/// A NULL-terminated list of static C strings, as OBS's codec callbacks return.
struct CodecList<const N: usize>([*const c_char; N]);
// SAFETY: the pointers are to immutable static strings.
unsafe impl<const N: usize> Sync for CodecList<N> {}

static VIDEO_CODECS: CodecList<4> =
    CodecList([cstr!("h264"), cstr!("hevc"), cstr!("av1"), ptr::null()]);
static AUDIO_CODECS: CodecList<2> = CodecList([cstr!("aac"), ptr::null()]);

/// One service instance: the profile's own service wrapped, or (a service.json written by
/// hand, or its type missing) a destination of its own, as C strings OBS can borrow.
struct Service {
    destination: Destination,
    server: CString,
    key: CString,
    username: CString,
    password: CString,
    wrapped: Option<Wrapped>,
    /// The settings last applied: our options, wrapped again if OBS replaces this service.
    settings: Option<DataObj<'static>>,
}

impl Service {
    fn new(settings: *mut obs_data_t) -> Self {
        let mut service = Self {
            destination: Destination::default(),
            server: CString::default(),
            key: CString::default(),
            username: CString::default(),
            password: CString::default(),
            wrapped: None,
            settings: None,
        };
        service.update(settings);
        service
    }

    fn update(&mut self, settings: *mut obs_data_t) {
        // SAFETY: OBS passes live settings; the DataObj takes its own reference.
        let data = unsafe {
            obs_data_addref(settings);
            DataObj::from_raw(settings)
        };
        let destination = Destination::read(&data);
        self.server = c_string(&destination.server);
        self.key = c_string(&destination.key);
        self.username = c_string(destination.username.as_deref().unwrap_or_default());
        self.password = c_string(destination.password.as_deref().unwrap_or_default());
        self.destination = destination;
        let wrapped_type = data.string(key::WRAPPED_TYPE).filter(|id| !id.is_empty());
        match (&self.wrapped, wrapped_type) {
            (Some(wrapped), Some(id)) if wrapped.id() == id => wrapped.update(settings),
            (_, Some(id)) => {
                self.wrapped = Wrapped::create(&id, settings);
                if self.wrapped.is_none() {
                    log::warn!("cannot create a \"{id}\" service to wrap: streaming to the server in our own settings");
                }
            }
            (_, None) => self.wrapped = None,
        }
        self.settings = Some(data);
    }

    fn connect_info(&self, what: u32) -> *const c_char {
        if let Some(wrapped) = &self.wrapped {
            return wrapped.connect_info(what);
        }
        match what {
            0 => self.server.as_ptr(),
            2 => self.key.as_ptr(),
            4 if self.destination.username.is_some() => self.username.as_ptr(),
            6 if self.destination.password.is_some() => self.password.as_ptr(),
            _ => ptr::null(),
        }
    }
}

/// The service behind `data`.
///
/// # Safety
/// `data` is NULL or what `create` returned and `destroy` has not yet freed.
unsafe fn service<'a>(data: *mut c_void) -> Option<&'a mut Service> {
    data.cast::<Service>().as_mut()
}

unsafe extern "C" fn get_name(_type_data: *mut c_void) -> *const c_char {
    guard("service get_name", cstr!("Lossless RTMP"), || {
        text_ptr(tr!("Service.Name"))
    })
}

unsafe extern "C" fn create(
    settings: *mut obs_data_t,
    _service: *mut obs_service_t,
) -> *mut c_void {
    guard("service create", ptr::null_mut(), || {
        Box::into_raw(Box::new(Service::new(settings))).cast()
    })
}

unsafe extern "C" fn destroy(data: *mut c_void) {
    guard("service destroy", (), || {
        if !data.is_null() {
            let mut service = Box::from_raw(data.cast::<Service>());
            // While `data` is still allocated: no other service can have its address yet.
            profile::service_destroyed(data, service.settings.take());
            drop(service);
        }
    })
}

unsafe extern "C" fn update(data: *mut c_void, settings: *mut obs_data_t) {
    guard("service update", (), || {
        if let Some(service) = service(data) {
            service.update(settings);
        }
    })
}

/// Our options' defaults (the Custom service keys default to empty).
pub(crate) unsafe extern "C" fn get_defaults(settings: *mut obs_data_t) {
    guard("service get_defaults", (), || set_option_defaults(settings))
}

/// Registers every option's default in `settings`.
///
/// # Safety
/// `settings` is live.
pub(crate) unsafe fn set_option_defaults(settings: *mut obs_data_t) {
    for option in OPTIONS {
        match option {
            Setting::Bool(name, value) => {
                obs_data_set_default_bool(settings, c_string(name).as_ptr(), value);
            }
            Setting::Int(name, value) => {
                obs_data_set_default_int(settings, c_string(name).as_ptr(), value);
            }
            Setting::Text(name, value) => {
                let value = c_string(value);
                obs_data_set_default_string(settings, c_string(name).as_ptr(), value.as_ptr());
            }
        }
    }
}

unsafe extern "C" fn get_properties(_data: *mut c_void) -> *mut obs_properties_t {
    guard("service get_properties", ptr::null_mut(), || {
        let mut props = Properties::new();
        let label = |k: &'static [u8]| ObsString::from(text(k));
        props
            .add(
                ObsString::from(key::SERVER),
                label(tr!("Server")),
                TextProp::new(TextType::Default),
            )
            .add(
                ObsString::from(key::KEY),
                label(tr!("StreamKey")),
                TextProp::new(TextType::Password),
            )
            .add(
                ObsString::from(key::USE_AUTH),
                label(tr!("UseAuth")),
                BoolProp,
            )
            .add(
                ObsString::from(key::USERNAME),
                label(tr!("Username")),
                TextProp::new(TextType::Default),
            )
            .add(
                ObsString::from(key::PASSWORD),
                label(tr!("Password")),
                TextProp::new(TextType::Password),
            );
        props.into_raw()
    })
}

/// libobs 29.0's getters, each one connection detail.
macro_rules! getter {
    ($name:ident, $what:expr) => {
        unsafe extern "C" fn $name(data: *mut c_void) -> *const c_char {
            guard(stringify!($name), ptr::null(), || {
                service(data).map_or(ptr::null(), |s| s.connect_info($what as u32))
            })
        }
    };
}
getter!(get_url, ConnectInfo::ServerUrl);
getter!(get_key, ConnectInfo::StreamKey);
getter!(get_username, ConnectInfo::Username);
getter!(get_password, ConnectInfo::Password);

unsafe extern "C" fn get_output_type(_data: *mut c_void) -> *const c_char {
    cstr!("goaway_rtmp_output")
}

/// The wrapped service's codecs (`ask`), else (none wrapped, or no restriction) `ours`.
///
/// # Safety
/// As [`service`].
unsafe fn codecs(
    data: *mut c_void,
    ask: fn(&Wrapped) -> *mut *const c_char,
    ours: *const *const c_char,
) -> *mut *const c_char {
    service(data)
        .and_then(|s| s.wrapped.as_ref())
        .map(ask)
        .filter(|codecs| !codecs.is_null())
        .unwrap_or_else(|| ours.cast_mut())
}

unsafe extern "C" fn get_supported_video_codecs(data: *mut c_void) -> *mut *const c_char {
    guard("get_supported_video_codecs", ptr::null_mut(), || {
        codecs(
            data,
            Wrapped::supported_video_codecs,
            VIDEO_CODECS.0.as_ptr(),
        )
    })
}

unsafe extern "C" fn get_supported_audio_codecs(data: *mut c_void) -> *mut *const c_char {
    guard("get_supported_audio_codecs", ptr::null_mut(), || {
        codecs(
            data,
            Wrapped::supported_audio_codecs,
            AUDIO_CODECS.0.as_ptr(),
        )
    })
}

/// Never NULL: OBS 30 and later compare it with strcmp at startup.
unsafe extern "C" fn get_protocol(data: *mut c_void) -> *const c_char {
    guard("get_protocol", cstr!("RTMP"), || {
        let Some(service) = service(data) else {
            return cstr!("RTMP");
        };
        if let Some(protocol) = service
            .wrapped
            .as_ref()
            .map(Wrapped::protocol)
            .filter(|p| !p.is_null())
        {
            return protocol;
        }
        match service.destination.protocol() {
            "RTMPS" => cstr!("RTMPS"),
            _ => cstr!("RTMP"),
        }
    })
}

unsafe extern "C" fn get_connect_info(data: *mut c_void, what: u32) -> *const c_char {
    guard("get_connect_info", ptr::null(), || {
        service(data).map_or(ptr::null(), |s| s.connect_info(what))
    })
}

unsafe extern "C" fn can_try_to_connect(data: *mut c_void) -> bool {
    guard("can_try_to_connect", false, || {
        service(data).is_some_and(|s| match &s.wrapped {
            Some(wrapped) => wrapped.can_try_to_connect().unwrap_or(true),
            None => !s.destination.server.is_empty(),
        })
    })
}

/// The platform's encoder settings (Twitch: keyframe every 2 s, CBR, bitrate caps), as OBS
/// applies them at every stream start when its own service is the profile's.
unsafe extern "C" fn apply_encoder_settings(
    data: *mut c_void,
    video: *mut obs_data_t,
    audio: *mut obs_data_t,
) {
    guard("apply_encoder_settings", (), || {
        if let Some(wrapped) = service(data).and_then(|s| s.wrapped.as_ref()) {
            wrapped.apply_encoder_settings(video, audio);
        }
    })
}

unsafe extern "C" fn get_max_fps(data: *mut c_void, fps: *mut c_int) {
    guard("get_max_fps", (), || {
        if let Some(wrapped) = service(data).and_then(|s| s.wrapped.as_ref()) {
            wrapped.max_fps(fps);
        }
    })
}

unsafe extern "C" fn get_max_bitrate(data: *mut c_void, video: *mut c_int, audio: *mut c_int) {
    guard("get_max_bitrate", (), || {
        if let Some(wrapped) = service(data).and_then(|s| s.wrapped.as_ref()) {
            wrapped.max_bitrate(video, audio);
        }
    })
}

unsafe extern "C" fn get_supported_resolutions(
    data: *mut c_void,
    resolutions: *mut *mut obs_service_resolution,
    count: *mut u64,
) {
    guard("get_supported_resolutions", (), || {
        if let Some(wrapped) = service(data).and_then(|s| s.wrapped.as_ref()) {
            wrapped.supported_resolutions(resolutions, count);
        }
    })
}

/// Registers the service with the struct size the running libobs knows.
pub(crate) fn register(running: Running) {
    let registration = Box::leak(Registration::new(
        obs_service_info {
            id: cstr!("goaway_rtmp_service"),
            get_name: Some(get_name),
            create: Some(create),
            destroy: Some(destroy),
            update: Some(update),
            get_defaults: Some(get_defaults),
            get_properties: Some(get_properties),
            get_url: Some(get_url),
            get_key: Some(get_key),
            get_username: Some(get_username),
            get_password: Some(get_password),
            get_output_type: Some(get_output_type),
            get_supported_video_codecs: Some(get_supported_video_codecs),
            apply_encoder_settings: Some(apply_encoder_settings),
            get_max_fps: Some(get_max_fps),
            get_max_bitrate: Some(get_max_bitrate),
            get_supported_resolutions: Some(get_supported_resolutions),
            ..Default::default()
        },
        obs_service_info_29_1 {
            get_protocol: Some(get_protocol),
            get_supported_audio_codecs: Some(get_supported_audio_codecs),
            get_connect_info: Some(get_connect_info),
            can_try_to_connect: Some(can_try_to_connect),
        },
    ));
    // SAFETY: the registration is leaked (lives as long as the process) and holds `size`
    // bytes laid out as libobs's struct.
    unsafe { obs_register_service_s(registration.info(), registration.size(running) as _) };
}
