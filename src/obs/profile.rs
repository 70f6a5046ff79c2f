//! The current profile's stream service, as the frontend holds it: reading it, turning
//! lossless streaming on and off ([`super::conversion`] decides what; this module asks
//! libobs), and saving it the way OBS's own Settings do (service.json).
//!
//! Called from OBS's UI thread (the dialog) and from obs-websocket's request threads, as
//! obs-websocket's own SetStreamServiceSettings does; a lock keeps conversions whole.

use std::ffi::{c_char, c_void};
use std::fmt;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use obs_sys::{
    config_t, obs_data_has_user_value, obs_data_set_bool, obs_data_set_int, obs_data_set_obj,
    obs_data_set_string, obs_data_unset_user_value, obs_frontend_get_profile_config,
    obs_frontend_get_streaming_service, obs_frontend_save_streaming_service,
    obs_frontend_set_streaming_service, obs_obj_get_data, obs_queue_task, obs_service_create,
    obs_service_get_settings, obs_service_get_type, obs_service_release,
    obs_task_type_OBS_TASK_DESTROY, obs_task_type_OBS_TASK_UI,
};
use obs_wrapper::data::DataObj;
use obs_wrapper::wrapper::PtrWrapper;

use super::conversion::{self, ConversionError, Restore, CUSTOM_ID};
use super::ffi::{c_string, cstr, guard, text};
use super::locale::{self, tr, with_detail};
use super::settings::{key, Destination, Sink, Source, StoredService};
use super::version::Running;
use super::wrapped;
use super::SERVICE_ID;

// libobs's config functions (util/config-file.h, which the generated bindings leave out).
extern "C" {
    fn config_get_bool(config: *mut config_t, section: *const c_char, name: *const c_char) -> bool;
    fn config_has_user_value(
        config: *mut config_t,
        section: *const c_char,
        name: *const c_char,
    ) -> bool;
    fn config_set_bool(
        config: *mut config_t,
        section: *const c_char,
        name: *const c_char,
        value: bool,
    );
    fn config_save_safe(
        config: *mut config_t,
        temp_ext: *const c_char,
        backup_ext: *const c_char,
    ) -> i32;
}

/// One conversion at a time (the dialog and obs-websocket may ask at once).
static CONVERTING: Mutex<()> = Mutex::new(());
/// Our service instances the plugin replaced itself (their data, as addresses): one of them
/// going away is expected, however late. libobs destroys a service only once the output
/// using it has stopped, so `Disable` right after a stream ends (or during one) sees ours
/// destroyed after the replacement is over.
static RETIRED: Mutex<Vec<usize>> = Mutex::new(Vec::new());
/// OBS is switching profiles or quitting: it drops the profile's service itself.
static FRONTEND_DROPS_SERVICE: AtomicBool = AtomicBool::new(false);
/// OBS may have set Enhanced Broadcasting up for the loaded profile. It decides that when
/// the profile loads and keeps the decision until the profile loads again: turning the
/// profile's option off in between changes nothing (see [`sets_up_multitrack`]).
static MULTITRACK_SET_UP: AtomicBool = AtomicBool::new(false);

/// Why a profile operation failed.
#[derive(Debug)]
pub(crate) enum ProfileError {
    Conversion(ConversionError),
    /// OBS has no stream service (only while it starts up or quits).
    NoService,
    /// libobs could not create the service (its plugin is missing).
    CannotCreate(String),
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Conversion(error) => error.fmt(f),
            Self::NoService => f.write_str("OBS has no stream service now"),
            Self::CannotCreate(id) => write!(f, "OBS could not create a \"{id}\" service"),
        }
    }
}

impl ProfileError {
    /// The message in the user's language.
    pub(crate) fn localized(&self) -> String {
        match self {
            Self::Conversion(ConversionError::AlreadyOn) => locale::text(tr!("Error.AlreadyOn")),
            Self::Conversion(ConversionError::AlreadyOff) => locale::text(tr!("Error.AlreadyOff")),
            Self::Conversion(ConversionError::Unsupported(id)) => {
                with_detail(tr!("Error.Unsupported"), id)
            }
            Self::Conversion(ConversionError::NoServer) => locale::text(tr!("Error.NoServer")),
            Self::NoService => locale::text(tr!("Error.NoService")),
            Self::CannotCreate(id) => with_detail(tr!("Error.CannotCreate"), id),
        }
    }
}

impl From<ConversionError> for ProfileError {
    fn from(error: ConversionError) -> Self {
        Self::Conversion(error)
    }
}

/// Writes into OBS data; nested services are built from their JSON text.
impl Sink for DataObj<'_> {
    fn set_string(&mut self, key: &str, value: &str) {
        let (key, value) = (c_string(key), c_string(value));
        // SAFETY: the object is live; libobs copies both strings.
        unsafe { obs_data_set_string(self.as_ptr_mut(), key.as_ptr(), value.as_ptr()) };
    }
    fn set_bool(&mut self, key: &str, value: bool) {
        let key = c_string(key);
        // SAFETY: as above.
        unsafe { obs_data_set_bool(self.as_ptr_mut(), key.as_ptr(), value) };
    }
    fn set_int(&mut self, key: &str, value: i64) {
        let key = c_string(key);
        // SAFETY: as above.
        unsafe { obs_data_set_int(self.as_ptr_mut(), key.as_ptr(), value) };
    }
    fn set_service(&mut self, key: &str, value: &StoredService) {
        let mut settings = DataObj::from_json(value.settings_json.as_str()).unwrap_or_default();
        let mut object = DataObj::new();
        object.set_string("type", &value.id);
        let (key, settings_key) = (c_string(key), cstr!("settings"));
        // SAFETY: all three objects are live; obs_data_set_obj takes its own references.
        unsafe {
            obs_data_set_obj(object.as_ptr_mut(), settings_key, settings.as_ptr_mut());
            obs_data_set_obj(self.as_ptr_mut(), key.as_ptr(), object.as_ptr_mut());
        }
    }
    fn remove(&mut self, key: &str) {
        let key = c_string(key);
        // SAFETY: as above.
        unsafe { obs_data_unset_user_value(self.as_ptr_mut(), key.as_ptr()) };
    }
}

/// The profile's stream service (the frontend's reference, borrowed) and its settings.
pub(crate) struct Current {
    pub(crate) id: String,
    pub(crate) settings: DataObj<'static>,
}

impl Current {
    /// The service now, or `None` while OBS has none.
    pub(crate) fn get() -> Option<Self> {
        // SAFETY: plain frontend getters; the settings reference returned is ours.
        unsafe {
            let service = obs_frontend_get_streaming_service();
            if service.is_null() {
                return None;
            }
            let settings = obs_service_get_settings(service);
            (!settings.is_null()).then(|| Self {
                id: text(obs_service_get_type(service)),
                settings: DataObj::from_raw(settings),
            })
        }
    }

    pub(crate) fn is_ours(&self) -> bool {
        self.id == SERVICE_ID
    }

    fn stored(&self) -> StoredService {
        StoredService {
            id: self.id.clone(),
            settings_json: self.json(),
        }
    }

    /// The destination its settings name (a listed service's server may be a placeholder
    /// such as Twitch's "auto": only the service resolves it, when a stream starts).
    pub(crate) fn destination(&self) -> Destination {
        Destination::read(&self.settings)
    }

    fn json(&self) -> String {
        self.settings.get_json().unwrap_or_else(|| "{}".into())
    }
}

/// Makes a service of type `id` with `settings` the profile's and saves it to service.json,
/// as OBS's Settings and obs-websocket do.
fn replace(id: &str, mut settings: DataObj<'static>) -> Result<(), ProfileError> {
    let id_c = c_string(id);
    // SAFETY: the frontend takes its own reference to the new service; ours is released.
    let created = unsafe {
        let service = obs_service_create(
            id_c.as_ptr(),
            cstr!("default_service"),
            settings.as_ptr_mut(),
            ptr::null_mut(),
        );
        if !service.is_null() {
            retire_current();
            obs_frontend_set_streaming_service(service);
            obs_frontend_save_streaming_service();
            obs_service_release(service);
        }
        !service.is_null()
    };
    if created {
        Ok(())
    } else {
        Err(ProfileError::CannotCreate(id.to_string()))
    }
}

/// Notes the profile's service, if it is ours, as replaced by the plugin (see [`RETIRED`]).
fn retire_current() {
    // SAFETY: the frontend's service is live while it is current; its data is a `Service`
    // when its type is ours, and only its address is kept.
    unsafe {
        let service = obs_frontend_get_streaming_service();
        if service.is_null() || text(obs_service_get_type(service)) != SERVICE_ID {
            return;
        }
        let data = obs_obj_get_data(service.cast());
        if !data.is_null() {
            RETIRED
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(data as usize);
        }
    }
}

/// What turning lossless streaming on did.
pub(crate) struct Enabled {
    /// Where the stream will go.
    pub(crate) destination: Destination,
    /// The profile's Enhanced Broadcasting was on and is now off.
    pub(crate) multitrack_cleared: bool,
    /// OBS still has Enhanced Broadcasting set up: the stream goes through us only once the
    /// profile loads again (see [`multitrack_set_up`]).
    pub(crate) reload_required: bool,
}

/// Turns lossless streaming on: the profile's service becomes ours, wrapping the current
/// one (publishing to `destination` instead when given and different: the dialog's edits),
/// with `options`.
pub(crate) fn enable(
    options: &impl Source,
    destination: Option<&Destination>,
) -> Result<Enabled, ProfileError> {
    let _converting = CONVERTING.lock().unwrap_or_else(PoisonError::into_inner);
    let current = Current::get().ok_or(ProfileError::NoService)?;
    let set_up = sets_up_multitrack(&current);
    let stored = current.stored();
    let mut settings = DataObj::from_json(stored.settings_json.as_str()).unwrap_or_default();
    let destination = conversion::enable(&stored, options, destination, &mut settings)?;
    if multitrack_on() {
        settings.set_bool(key::PREVIOUS_MULTITRACK, true);
    }
    replace(SERVICE_ID, settings)?;
    log::info!(
        "lossless streaming turned on for this profile, wrapping its \"{}\" service",
        current.id
    );
    let multitrack_cleared = clear_multitrack();
    MULTITRACK_SET_UP.fetch_or(set_up, Ordering::AcqRel);
    let reload_required = multitrack_set_up();
    if reload_required {
        warn_reload_required();
    }
    Ok(Enabled {
        destination,
        multitrack_cleared,
        reload_required,
    })
}

/// Saves a new destination (written only if it changed: a listed service keeps its own)
/// and options into our service, keeping the service it wraps and will restore.
pub(crate) fn update(destination: &Destination, options: &impl Source) -> Result<(), ProfileError> {
    let _converting = CONVERTING.lock().unwrap_or_else(PoisonError::into_inner);
    let current = Current::get().ok_or(ProfileError::NoService)?;
    if !current.is_ours() {
        return Err(ConversionError::AlreadyOff.into());
    }
    let mut settings = DataObj::from_json(current.json().as_str()).unwrap_or_default();
    if *destination != current.destination() && !destination.server.is_empty() {
        conversion::write_destination(destination, &mut settings);
    }
    super::settings::copy_options(options, &mut settings);
    replace(SERVICE_ID, settings)?;
    log::info!("lossless streaming settings saved for this profile");
    Ok(())
}

/// Turns lossless streaming off: the previous service comes back exactly, and Enhanced
/// Broadcasting if turning lossless streaming on had turned it off.
pub(crate) fn disable() -> Result<Disabled, ProfileError> {
    let _converting = CONVERTING.lock().unwrap_or_else(PoisonError::into_inner);
    let current = Current::get().ok_or(ProfileError::NoService)?;
    let (id, settings) = match conversion::disable(&current.id, &current.settings, &current.json())?
    {
        Restore::Previous(previous) => {
            let settings = DataObj::from_json(previous.settings_json.as_str()).unwrap_or_default();
            (previous.id, settings)
        }
        Restore::Custom(destination) => {
            let mut settings = DataObj::new();
            conversion::write_destination(&destination, &mut settings);
            (CUSTOM_ID.to_string(), settings)
        }
    };
    replace(&id, settings)?;
    log::info!("lossless streaming turned off for this profile (back to \"{id}\")");
    let multitrack_restored =
        current.settings.boolean(key::PREVIOUS_MULTITRACK) == Some(true) && set_multitrack(true);
    if multitrack_restored {
        log::info!("Enhanced Broadcasting (multitrack video) turned back on for this profile: OBS uses it once it loads the profile again");
    }
    Ok(Disabled {
        restored_type: id,
        multitrack_restored,
    })
}

/// What turning lossless streaming off brought back.
pub(crate) struct Disabled {
    /// The service type restored.
    pub(crate) restored_type: String,
    /// Enhanced Broadcasting, which turning lossless streaming on had turned off, is on again.
    pub(crate) multitrack_restored: bool,
}

/// Whether the profile streams through us.
pub(crate) fn is_enabled() -> bool {
    Current::get().is_some_and(|c| c.is_ours())
}

/// Whether OBS sets Enhanced Broadcasting up for the profile's stream with `service` and the
/// profile's option as they are now. OBS's output handler decides it once, when the profile
/// loads (`BasicOutputHandler`'s constructor), and every Start Streaming follows that
/// decision (`SetupMultitrackVideo` only asks whether it was set up): 30.2 to 31 follow the
/// option or, never set, whether the service names a multitrack configuration URL (Twitch);
/// 32 needs the option and a service that is Custom or names that URL (32.0.0: only the
/// URL; taking Custom too only errs on the side of asking for a restart).
fn sets_up_multitrack(service: &Current) -> bool {
    let running = Running::detect();
    let Some(option) = MultitrackOption::read(running) else {
        return false;
    };
    // SAFETY: the service's settings are live.
    let has_url = unsafe {
        obs_data_has_user_value(
            service.settings.as_ptr().cast_mut(),
            cstr!("multitrack_video_configuration_url"),
        )
    };
    if running.multitrack_needs_capable_service() {
        option.on && (has_url || service.id == CUSTOM_ID)
    } else if option.set {
        option.on
    } else {
        has_url
    }
}

/// Whether OBS still has Enhanced Broadcasting set up for this profile (set up when the
/// profile loaded, or since). While it does, Start Streaming bypasses our output whatever
/// the profile's service, until the profile loads again: OBS restarts, or the user switches
/// to another profile and back. Plugins cannot make OBS load the profile again: the frontend
/// ignores a switch to the current profile.
pub(crate) fn multitrack_set_up() -> bool {
    MULTITRACK_SET_UP.load(Ordering::Acquire)
        || Current::get().is_some_and(|c| sets_up_multitrack(&c))
}

fn warn_reload_required() {
    log::warn!(
        "OBS keeps Enhanced Broadcasting set up for this profile until it loads the profile again: restart OBS (or switch to another profile and back) before streaming, or the stream will not go through lossless streaming"
    );
}

/// The current profile's Enhanced Broadcasting option (`Stream1` / `EnableMultitrackVideo` in
/// its basic.ini).
struct MultitrackOption {
    config: *mut config_t,
    /// Whether the profile sets it (rather than leaving OBS's default).
    set: bool,
    on: bool,
}

impl MultitrackOption {
    const SECTION: *const c_char = cstr!("Stream1");
    const NAME: *const c_char = cstr!("EnableMultitrackVideo");

    /// The option, on OBS 30.2+ with a profile loaded.
    fn read(running: Running) -> Option<Self> {
        if !running.has_multitrack() {
            return None;
        }
        // SAFETY: the profile's config lives as long as the profile; libobs's config calls
        // lock it.
        unsafe {
            let config = obs_frontend_get_profile_config();
            (!config.is_null()).then(|| Self {
                config,
                set: config_has_user_value(config, Self::SECTION, Self::NAME),
                on: config_get_bool(config, Self::SECTION, Self::NAME),
            })
        }
    }
}

/// Whether the profile's Enhanced Broadcasting option is on (OBS 30.2+).
fn multitrack_on() -> bool {
    MultitrackOption::read(Running::detect()).is_some_and(|option| option.on)
}

/// Sets the profile's Enhanced Broadcasting option and saves the profile (OBS 30.2+). True
/// if it changed.
fn set_multitrack(on: bool) -> bool {
    let Some(option) = MultitrackOption::read(Running::detect()) else {
        return false;
    };
    if option.on == on {
        return false;
    }
    // SAFETY: as in `MultitrackOption::read`.
    unsafe {
        config_set_bool(
            option.config,
            MultitrackOption::SECTION,
            MultitrackOption::NAME,
            on,
        );
        config_save_safe(option.config, cstr!("tmp"), ptr::null());
    }
    true
}

/// On OBS 30.2+, turns the profile's Enhanced Broadcasting off: with it on, the Stream
/// button starts OBS's own multitrack output and never ours. True if it was on.
fn clear_multitrack() -> bool {
    let cleared = set_multitrack(false);
    if cleared {
        log::warn!("Enhanced Broadcasting (multitrack video) turned off for this profile: it would bypass lossless streaming");
    }
    cleared
}

/// After a profile loads (startup, profile switch): notes whether OBS set Enhanced
/// Broadcasting up (it did just before this event), logs the profile's state, and keeps
/// Enhanced Broadcasting off while the profile streams through us.
pub(crate) fn profile_loaded() {
    FRONTEND_DROPS_SERVICE.store(false, Ordering::Release);
    let Some(current) = Current::get() else {
        return;
    };
    // An `enable` may have come first (obs-websocket answers before this event).
    MULTITRACK_SET_UP.fetch_or(sets_up_multitrack(&current), Ordering::AcqRel);
    if current.is_ours() {
        log::info!("lossless streaming is on for this profile");
        clear_multitrack();
        if multitrack_set_up() {
            warn_reload_required();
        }
    }
}

/// OBS is about to switch profiles or quit: it drops our service itself, and sets the next
/// profile's stream up anew.
pub(crate) fn profile_unloading() {
    FRONTEND_DROPS_SERVICE.store(true, Ordering::Release);
    MULTITRACK_SET_UP.store(false, Ordering::Release);
}

/// Our service (`data`, whose last settings are `settings`) went away. Unless we or OBS replaced
/// it on purpose, the user saved Settings -> Stream (or a script set another service): the
/// new service is wrapped in turn, with our options, so lossless streaming stays on. That
/// happens in a task on OBS's UI thread, once the frontend's own call (which is destroying
/// ours right now) is over.
///
/// The task goes through libobs's destroy thread first: the frontend runs a UI task queued
/// from the UI thread itself at once (Qt::AutoConnection, OBS 29 to 32), and Settings ->
/// Stream saves on the UI thread, with ours still the profile's service until the frontend
/// has dropped it: the new service was never wrapped. Queued from another thread, the UI
/// task waits for the UI thread's current call to end.
pub(crate) fn service_destroyed(data: *mut c_void, settings: Option<DataObj<'static>>) {
    let retired = {
        let mut retired = RETIRED.lock().unwrap_or_else(PoisonError::into_inner);
        let index = retired.iter().position(|&address| address == data as usize);
        index.map(|index| retired.swap_remove(index)).is_some()
    };
    if retired {
        log::info!("the lossless streaming service replaced earlier is gone");
        return;
    }
    if FRONTEND_DROPS_SERVICE.load(Ordering::Acquire) || wrapped::is_quitting() {
        return;
    }
    let options = settings.and_then(|s| s.get_json()).unwrap_or_default();
    let param = Box::into_raw(Box::new(options));
    // SAFETY: the task takes the box back exactly once.
    unsafe {
        obs_queue_task(
            obs_task_type_OBS_TASK_DESTROY,
            Some(queue_rewrap_task),
            param.cast(),
            false,
        );
    }
}

/// On libobs's destroy thread: queues [`rewrap_task`] for the UI thread.
unsafe extern "C" fn queue_rewrap_task(param: *mut c_void) {
    // SAFETY: the box `service_destroyed` queued passes on to `rewrap_task`, untouched.
    unsafe { obs_queue_task(obs_task_type_OBS_TASK_UI, Some(rewrap_task), param, false) };
}

unsafe extern "C" fn rewrap_task(param: *mut c_void) {
    guard("wrap the new stream service", (), || {
        // SAFETY: `service_destroyed` queued this with a boxed String, once.
        let options = unsafe { Box::from_raw(param.cast::<String>()) };
        rewrap(&options);
    });
}

/// Wraps the profile's new service with our options (`options_json`, the replaced
/// service's settings), unless OBS is quitting or the new service cannot be wrapped.
fn rewrap(options_json: &str) {
    if wrapped::is_quitting() {
        return;
    }
    let Some(current) = Current::get() else {
        return;
    };
    if current.is_ours() {
        return;
    }
    if !conversion::wraps(&current.id) {
        log::warn!(
            "the new stream service \"{}\" is not RTMP: lossless streaming is off for this profile",
            current.id
        );
        return;
    }
    log::info!(
        "the stream service was replaced (Settings -> Stream or a script): wrapping the new \"{}\" service, lossless streaming stays on",
        current.id
    );
    let options = DataObj::from_json(options_json).unwrap_or_default();
    if let Err(error) = enable(&options, None) {
        log::warn!("the new stream service was not wrapped: {error}; lossless streaming is off for this profile");
    }
}
