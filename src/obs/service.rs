//! `goaway_rtmp_service`: the destination (OBS's Custom service keys plus our options),
//! and the service that makes OBS's Stream button use our output.

use std::ffi::{c_char, c_void, CString};
use std::ptr;

use obs_sys::{
    obs_data_addref, obs_data_set_default_bool, obs_data_set_default_int,
    obs_data_set_default_string, obs_data_t, obs_properties_t, obs_register_service_s,
    obs_service_info, obs_service_info_29_1, obs_service_t,
};
use obs_wrapper::data::DataObj;
use obs_wrapper::properties::{BoolProp, Properties, TextProp, TextType};
use obs_wrapper::string::ObsString;
use obs_wrapper::wrapper::PtrWrapper;

use super::ffi::{c_string, cstr, guard};
use super::locale::{text, text_ptr, tr};
use super::profile;
use super::registration::Registration;
use super::settings::{key, Destination, Setting, OPTIONS};
use super::version::Running;

/// A NULL-terminated list of static C strings, as OBS's codec callbacks return.
struct CodecList<const N: usize>([*const c_char; N]);
// SAFETY: the pointers are to immutable static strings.
unsafe impl<const N: usize> Sync for CodecList<N> {}

static VIDEO_CODECS: CodecList<4> =
    CodecList([cstr!("h264"), cstr!("hevc"), cstr!("av1"), ptr::null()]);
static AUDIO_CODECS: CodecList<2> = CodecList([cstr!("aac"), ptr::null()]);

/// One service instance: the destination as C strings OBS can borrow.
struct Service {
    destination: Destination,
    server: CString,
    key: CString,
    username: CString,
    password: CString,
}

impl Service {
    fn new(settings: *mut obs_data_t) -> Self {
        let mut service = Self {
            destination: Destination::default(),
            server: CString::default(),
            key: CString::default(),
            username: CString::default(),
            password: CString::default(),
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
    }

    fn connect_info(&self, what: u32) -> *const c_char {
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
            drop(Box::from_raw(data.cast::<Service>()));
            profile::service_destroyed();
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

macro_rules! getter {
    ($name:ident, $field:ident) => {
        unsafe extern "C" fn $name(data: *mut c_void) -> *const c_char {
            guard(stringify!($name), ptr::null(), || {
                service(data).map_or(ptr::null(), |s| s.$field.as_ptr())
            })
        }
    };
}
getter!(get_url, server);
getter!(get_key, key);

unsafe extern "C" fn get_username(data: *mut c_void) -> *const c_char {
    guard("get_username", ptr::null(), || {
        service(data).map_or(ptr::null(), |s| s.connect_info(4))
    })
}

unsafe extern "C" fn get_password(data: *mut c_void) -> *const c_char {
    guard("get_password", ptr::null(), || {
        service(data).map_or(ptr::null(), |s| s.connect_info(6))
    })
}

unsafe extern "C" fn get_output_type(_data: *mut c_void) -> *const c_char {
    cstr!("goaway_rtmp_output")
}

unsafe extern "C" fn get_supported_video_codecs(_data: *mut c_void) -> *mut *const c_char {
    VIDEO_CODECS.0.as_ptr().cast_mut()
}

unsafe extern "C" fn get_supported_audio_codecs(_data: *mut c_void) -> *mut *const c_char {
    AUDIO_CODECS.0.as_ptr().cast_mut()
}

/// Never NULL: OBS 30 and later compare it with strcmp at startup.
unsafe extern "C" fn get_protocol(data: *mut c_void) -> *const c_char {
    guard("get_protocol", cstr!("RTMP"), || {
        match service(data).map(|s| s.destination.protocol()) {
            Some("RTMPS") => cstr!("RTMPS"),
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
        service(data).is_some_and(|s| !s.destination.server.is_empty())
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
