//! Tools -> "Lossless RTMP (Go Away)…": the plugin's settings in OBS's own properties
//! dialog.
//!
//! OBS shows a properties dialog only for sources, and Settings -> Stream lists only OBS's
//! built-in services, so the dialog belongs to a private input source that has no video or
//! audio and is hidden from "Add Source" (`OBS_SOURCE_CAP_DISABLED`). Its settings are a
//! view of the profile's stream service, filled in each time the dialog opens and applied
//! when the user clicks OK (`OBS_PROPERTIES_DEFER_UPDATE`, so Cancel changes nothing).

use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, PoisonError};

use obs_sys::{
    obs_data_get_bool, obs_data_set_default_bool, obs_data_t, obs_frontend_add_event_callback,
    obs_frontend_add_tools_menu_item, obs_frontend_event,
    obs_frontend_event_OBS_FRONTEND_EVENT_EXIT,
    obs_frontend_event_OBS_FRONTEND_EVENT_FINISHED_LOADING,
    obs_frontend_event_OBS_FRONTEND_EVENT_PROFILE_CHANGED,
    obs_frontend_event_OBS_FRONTEND_EVENT_PROFILE_CHANGING, obs_frontend_open_source_properties,
    obs_group_type_OBS_GROUP_NORMAL, obs_properties_add_button2, obs_properties_add_group,
    obs_properties_add_text, obs_properties_get, obs_properties_set_flags, obs_properties_t,
    obs_property_int_set_suffix, obs_property_set_long_description,
    obs_property_set_modified_callback, obs_property_set_visible, obs_property_t,
    obs_property_text_set_info_type, obs_property_text_set_info_word_wrap, obs_register_source_s,
    obs_source_create_private, obs_source_get_settings, obs_source_info, obs_source_release,
    obs_source_t, obs_source_type_OBS_SOURCE_TYPE_INPUT, obs_text_info_type_OBS_TEXT_INFO_WARNING,
    obs_text_type_OBS_TEXT_INFO, OBS_PROPERTIES_DEFER_UPDATE, OBS_SOURCE_CAP_DISABLED,
};
use obs_wrapper::data::DataObj;
use obs_wrapper::properties::{BoolProp, NumberProp, Properties, TextProp, TextType};
use obs_wrapper::string::ObsString;
use obs_wrapper::wrapper::PtrWrapper;

use super::conversion::write_destination;
use super::ffi::{c_string, cstr, guard};
use super::locale::{text, text_ptr, tr, with_detail};
use super::output::running_session;
use super::profile::{self, Current};
use super::settings::{copy_options, key, strategy, timestamps, Destination, Sink, Source};
use super::status;
use super::version::Running;
use super::websocket;

/// The dialog source's type id (never listed: `OBS_SOURCE_CAP_DISABLED`).
const SOURCE_ID: &str = "goaway_settings";

/// Keys only the dialog has.
mod dialog_key {
    pub(super) const ENABLED: &str = "goaway_enabled";
    pub(super) const STATUS_SERVER: &str = "status_server";
    pub(super) const STATUS_MOVES: &str = "status_moves";
    pub(super) const STATUS_FRAMES: &str = "status_frames";
    pub(super) const STATUS_BUFFER: &str = "status_buffer";
    pub(super) const SWITCH_URL: &str = "switch_url";
    pub(super) const SWITCH_RESULT: &str = "switch_result";
}

/// Why the dialog's last OK changed nothing (localized), shown at its top until an OK
/// succeeds: the dialog is closed by then, and the log is not where users look.
static APPLY_ERROR: Mutex<String> = Mutex::new(String::new());

/// The dialog's source, made on first use and released when OBS quits.
static SOURCE: AtomicPtr<obs_source_t> = AtomicPtr::new(ptr::null_mut());

/// The dialog source's instance data: the source, for button callbacks.
struct Dialog {
    source: *mut obs_source_t,
}

/// The dialog source's settings (a new reference).
fn settings_of(source: *mut obs_source_t) -> Option<DataObj<'static>> {
    // SAFETY: the source is live while its dialog or our static holds it.
    let raw = unsafe { obs_source_get_settings(source) };
    // SAFETY: the reference is ours to release.
    (!raw.is_null()).then(|| unsafe { DataObj::from_raw(raw) })
}

/// Writes the running stream's status into the dialog's settings.
fn write_status(settings: &mut DataObj<'static>) {
    let status = running_session().map(|handle| handle.status());
    let lines = status::lines(status.as_ref());
    settings.set_string(dialog_key::STATUS_SERVER, &lines.server);
    settings.set_string(dialog_key::STATUS_MOVES, &lines.moves);
    settings.set_string(dialog_key::STATUS_FRAMES, &lines.frames);
    settings.set_string(dialog_key::STATUS_BUFFER, &lines.buffer);
}

/// Fills the dialog with the profile's state: on or off, the destination it streams to,
/// our options while on (kept from the last dialog while off), the status.
fn fill(settings: &mut DataObj<'static>) {
    let current = Current::get();
    let enabled = current.as_ref().is_some_and(Current::is_ours);
    settings.set_bool(dialog_key::ENABLED, enabled);
    if let Some(current) = &current {
        write_destination(&current.destination(), settings);
        if enabled {
            copy_options(&current.settings, settings);
        }
    }
    settings.set_string(dialog_key::SWITCH_RESULT, "");
    write_status(settings);
}

/// Tools menu callback: opens the dialog.
unsafe extern "C" fn open(_data: *mut c_void) {
    guard("open the dialog", (), || {
        let mut source = SOURCE.load(Ordering::Acquire);
        if source.is_null() {
            let id = c_string(SOURCE_ID);
            source = obs_source_create_private(
                id.as_ptr(),
                text_ptr(tr!("Dialog.Name")),
                ptr::null_mut(),
            );
            if source.is_null() {
                log::error!("cannot create the settings dialog's source");
                return;
            }
            SOURCE.store(source, Ordering::Release);
        }
        if let Some(mut settings) = settings_of(source) {
            fill(&mut settings);
        }
        obs_frontend_open_source_properties(source);
    })
}

/// OK in the dialog: applies it to the profile.
fn apply(settings: &DataObj<'static>) {
    let want = settings.boolean(dialog_key::ENABLED).unwrap_or(false);
    let destination = Destination::read(settings);
    let result = match (profile::is_enabled(), want) {
        (false, true) => profile::enable(settings, Some(&destination)).map(drop),
        (true, true) => profile::update(&destination, settings),
        (true, false) => profile::disable().map(drop),
        (false, false) => Ok(()),
    };
    let mut shown = APPLY_ERROR.lock().unwrap_or_else(PoisonError::into_inner);
    match result {
        Ok(()) => shown.clear(),
        Err(error) => {
            log::warn!("the dialog's settings were not applied: {error}");
            *shown = error.localized();
        }
    }
}

unsafe extern "C" fn get_name(_type_data: *mut c_void) -> *const c_char {
    guard("dialog get_name", cstr!("Lossless RTMP"), || {
        text_ptr(tr!("Dialog.Name"))
    })
}

unsafe extern "C" fn create(_settings: *mut obs_data_t, source: *mut obs_source_t) -> *mut c_void {
    guard("dialog create", ptr::null_mut(), || {
        Box::into_raw(Box::new(Dialog { source })).cast()
    })
}

unsafe extern "C" fn destroy(data: *mut c_void) {
    guard("dialog destroy", (), || {
        if !data.is_null() {
            drop(Box::from_raw(data.cast::<Dialog>()));
        }
    })
}

unsafe extern "C" fn update(_data: *mut c_void, settings: *mut obs_data_t) {
    guard("dialog update", (), || {
        obs_sys::obs_data_addref(settings);
        apply(&DataObj::from_raw(settings));
    })
}

unsafe extern "C" fn get_defaults(settings: *mut obs_data_t) {
    guard("dialog get_defaults", (), || {
        super::service::set_option_defaults(settings);
        let enabled = c_string(dialog_key::ENABLED);
        obs_data_set_default_bool(settings, enabled.as_ptr(), false);
    })
}

/// "Refresh": reads the status again.
unsafe extern "C" fn refresh_clicked(
    _props: *mut obs_properties_t,
    _property: *mut obs_property_t,
    data: *mut c_void,
) -> bool {
    guard("refresh status", false, || {
        let Some(dialog) = data.cast::<Dialog>().as_ref() else {
            return false;
        };
        if let Some(mut settings) = settings_of(dialog.source) {
            write_status(&mut settings);
        }
        true
    })
}

/// "Switch server now": moves the running stream to the URL typed above it.
unsafe extern "C" fn switch_clicked(
    props: *mut obs_properties_t,
    _property: *mut obs_property_t,
    data: *mut c_void,
) -> bool {
    guard("switch server", false, || {
        let Some(dialog) = data.cast::<Dialog>().as_ref() else {
            return false;
        };
        let Some(mut settings) = settings_of(dialog.source) else {
            return false;
        };
        let url = settings.string(dialog_key::SWITCH_URL).unwrap_or_default();
        let result = match websocket::switch_server(&url) {
            Ok(target) => with_detail(tr!("Switch.Requested"), &target),
            Err(error) => error.localized(),
        };
        settings.set_string(dialog_key::SWITCH_RESULT, &result);
        write_status(&mut settings);
        let line = obs_properties_get(props, c_string(dialog_key::SWITCH_RESULT).as_ptr());
        if !line.is_null() {
            obs_property_set_visible(line, true);
        }
        true
    })
}

/// Shows username and password only with authentication on.
unsafe extern "C" fn auth_modified(
    props: *mut obs_properties_t,
    _property: *mut obs_property_t,
    settings: *mut obs_data_t,
) -> bool {
    guard("auth modified", false, || {
        let on = obs_data_get_bool(settings, c_string(key::USE_AUTH).as_ptr());
        for name in [key::USERNAME, key::PASSWORD] {
            let property = obs_properties_get(props, c_string(name).as_ptr());
            if !property.is_null() {
                obs_property_set_visible(property, on);
            }
        }
        true
    })
}

/// Sets the tooltip (OBS's long description) of property `name`.
///
/// # Safety
/// `props` is live.
unsafe fn tooltip(props: *mut obs_properties_t, name: &str, key: &'static [u8]) {
    let property = obs_properties_get(props, c_string(name).as_ptr());
    if !property.is_null() {
        obs_property_set_long_description(property, text_ptr(key));
    }
}

/// Adds a read-only line: `label` on the left, the setting `name`'s text on the right (or
/// `label` across the dialog when `name` holds no text).
///
/// # Safety
/// `props` is live.
unsafe fn info(
    props: *mut obs_properties_t,
    name: &str,
    label: &'static [u8],
) -> *mut obs_property_t {
    let property = obs_properties_add_text(
        props,
        c_string(name).as_ptr(),
        text_ptr(label),
        obs_text_type_OBS_TEXT_INFO,
    );
    obs_property_text_set_info_word_wrap(property, true);
    property
}

/// Adds the sub-properties `content` as a titled group.
///
/// # Safety
/// `props` is live; `content` is owned and handed to OBS.
unsafe fn group(
    props: *mut obs_properties_t,
    name: &str,
    title: &'static [u8],
    content: Properties,
) {
    obs_properties_add_group(
        props,
        c_string(name).as_ptr(),
        text_ptr(title),
        obs_group_type_OBS_GROUP_NORMAL,
        content.into_raw(),
    );
}

fn label(key: &'static [u8]) -> ObsString {
    ObsString::from(text(key))
}

fn name(key: &str) -> ObsString {
    ObsString::from(key)
}

/// An integer field with a unit.
///
/// # Safety
/// `props` is live.
unsafe fn int(
    props: &mut Properties,
    key: &str,
    title: &'static [u8],
    range: std::ops::RangeInclusive<i64>,
    unit: Option<&'static [u8]>,
) {
    props.add(
        name(key),
        label(title),
        NumberProp::<i64>::new_int().with_range(range),
    );
    let property = obs_properties_get(props.as_ptr_mut(), c_string(key).as_ptr());
    if let Some(unit) = unit.filter(|_| !property.is_null()) {
        obs_property_int_set_suffix(property, text_ptr(unit));
    }
}

/// The dialog's controls, each with its tooltip.
unsafe fn properties() -> *mut obs_properties_t {
    let mut top = Properties::new();
    top.add(name(dialog_key::ENABLED), label(tr!("Enable")), BoolProp);
    let raw = top.as_ptr_mut();
    tooltip(raw, dialog_key::ENABLED, tr!("Enable.Tooltip"));
    let error = APPLY_ERROR
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if !error.is_empty() {
        let property = obs_properties_add_text(
            raw,
            cstr!("apply_error"),
            c_string(&error).as_ptr(),
            obs_text_type_OBS_TEXT_INFO,
        );
        obs_property_text_set_info_type(property, obs_text_info_type_OBS_TEXT_INFO_WARNING);
        obs_property_text_set_info_word_wrap(property, true);
    }
    info(raw, "notice_stream_page", tr!("Notice.StreamPage"));
    if Running::detect().has_multitrack() {
        info(raw, "notice_multitrack", tr!("Notice.Multitrack"));
        // Said before OK as well: the dialog closes on OK, and users rarely reopen it
        // before streaming.
        if profile::multitrack_set_up() {
            let warning = info(raw, "notice_reload", tr!("Notice.Reload"));
            obs_property_text_set_info_type(warning, obs_text_info_type_OBS_TEXT_INFO_WARNING);
        }
    }
    info(raw, "notice_next_start", tr!("Notice.NextStart"));

    let mut destination = Properties::new();
    destination
        .add(
            name(key::SERVER),
            label(tr!("Server")),
            TextProp::new(TextType::Default),
        )
        .add(
            name(key::KEY),
            label(tr!("StreamKey")),
            TextProp::new(TextType::Password),
        )
        .add(name(key::USE_AUTH), label(tr!("UseAuth")), BoolProp)
        .add(
            name(key::USERNAME),
            label(tr!("Username")),
            TextProp::new(TextType::Default),
        )
        .add(
            name(key::PASSWORD),
            label(tr!("Password")),
            TextProp::new(TextType::Password),
        );
    let raw = destination.as_ptr_mut();
    tooltip(raw, key::SERVER, tr!("Server.Tooltip"));
    tooltip(raw, key::KEY, tr!("StreamKey.Tooltip"));
    tooltip(raw, key::USE_AUTH, tr!("UseAuth.Tooltip"));
    tooltip(raw, key::USERNAME, tr!("Username.Tooltip"));
    tooltip(raw, key::PASSWORD, tr!("Password.Tooltip"));
    let use_auth = obs_properties_get(raw, c_string(key::USE_AUTH).as_ptr());
    obs_property_set_modified_callback(use_auth, Some(auth_modified));
    group(
        top.as_ptr_mut(),
        "group_destination",
        tr!("Group.Destination"),
        destination,
    );

    let mut moves = Properties::new();
    moves
        .add(
            name(key::ANNOUNCE_GO_AWAY),
            label(tr!("AnnounceGoAway")),
            BoolProp,
        )
        .add(
            name(key::ANNOUNCE_RECONNECT),
            label(tr!("AnnounceReconnect")),
            BoolProp,
        );
    {
        let mut list =
            moves.add_list::<ObsString>(name(key::STRATEGY), label(tr!("Strategy")), false);
        list.push(
            label(tr!("Strategy.MakeBeforeBreak")),
            name(strategy::MAKE_BEFORE_BREAK),
        );
        list.push(
            label(tr!("Strategy.BreakBeforeMake")),
            name(strategy::BREAK_BEFORE_MAKE),
        );
    }
    int(
        &mut moves,
        key::KEYFRAME_DEADLINE,
        tr!("KeyframeDeadline"),
        1..=60,
        Some(tr!("Unit.Seconds")),
    );
    int(
        &mut moves,
        key::BUFFER_SECS,
        tr!("BufferSecs"),
        2..=600,
        Some(tr!("Unit.Seconds")),
    );
    int(
        &mut moves,
        key::BUFFER_MIB,
        tr!("BufferMib"),
        8..=4096,
        Some(tr!("Unit.MiB")),
    );
    {
        let mut list =
            moves.add_list::<ObsString>(name(key::TIMESTAMPS), label(tr!("Timestamps")), false);
        list.push(
            label(tr!("Timestamps.Continue")),
            name(timestamps::CONTINUE),
        );
        list.push(label(tr!("Timestamps.Restart")), name(timestamps::RESTART));
    }
    let raw = moves.as_ptr_mut();
    tooltip(raw, key::ANNOUNCE_GO_AWAY, tr!("AnnounceGoAway.Tooltip"));
    tooltip(
        raw,
        key::ANNOUNCE_RECONNECT,
        tr!("AnnounceReconnect.Tooltip"),
    );
    tooltip(raw, key::STRATEGY, tr!("Strategy.Tooltip"));
    tooltip(raw, key::KEYFRAME_DEADLINE, tr!("KeyframeDeadline.Tooltip"));
    tooltip(raw, key::BUFFER_SECS, tr!("BufferSecs.Tooltip"));
    tooltip(raw, key::BUFFER_MIB, tr!("BufferMib.Tooltip"));
    tooltip(raw, key::TIMESTAMPS, tr!("Timestamps.Tooltip"));
    group(top.as_ptr_mut(), "group_moves", tr!("Group.Moves"), moves);

    let mut reconnect = Properties::new();
    int(
        &mut reconnect,
        key::RETRY_DELAY,
        tr!("RetryDelay"),
        0..=60,
        Some(tr!("Unit.Seconds")),
    );
    int(
        &mut reconnect,
        key::STEADY_ATTEMPTS,
        tr!("SteadyAttempts"),
        0..=100,
        None,
    );
    int(
        &mut reconnect,
        key::MAX_RETRIES,
        tr!("MaxRetries"),
        0..=10_000,
        None,
    );
    let raw = reconnect.as_ptr_mut();
    tooltip(raw, key::RETRY_DELAY, tr!("RetryDelay.Tooltip"));
    tooltip(raw, key::STEADY_ATTEMPTS, tr!("SteadyAttempts.Tooltip"));
    tooltip(raw, key::MAX_RETRIES, tr!("MaxRetries.Tooltip"));
    group(
        top.as_ptr_mut(),
        "group_reconnect",
        tr!("Group.Reconnect"),
        reconnect,
    );

    let mut live = Properties::new();
    let raw = live.as_ptr_mut();
    info(raw, dialog_key::STATUS_SERVER, tr!("Status.Server"));
    info(raw, dialog_key::STATUS_MOVES, tr!("Status.Moves"));
    info(raw, dialog_key::STATUS_FRAMES, tr!("Status.Frames"));
    info(raw, dialog_key::STATUS_BUFFER, tr!("Status.Buffer"));
    obs_properties_add_button2(
        raw,
        cstr!("status_refresh"),
        text_ptr(tr!("Status.Refresh")),
        Some(refresh_clicked),
        ptr::null_mut(),
    );
    live.add(
        name(dialog_key::SWITCH_URL),
        label(tr!("Switch.Url")),
        TextProp::new(TextType::Default),
    );
    obs_properties_add_button2(
        raw,
        cstr!("switch_now"),
        text_ptr(tr!("Switch.Button")),
        Some(switch_clicked),
        ptr::null_mut(),
    );
    info(raw, dialog_key::SWITCH_RESULT, tr!("Switch.Result"));
    // Shown once "Switch server now" has something to say.
    obs_property_set_visible(
        obs_properties_get(raw, c_string(dialog_key::SWITCH_RESULT).as_ptr()),
        false,
    );
    tooltip(raw, dialog_key::STATUS_SERVER, tr!("Status.Server.Tooltip"));
    tooltip(raw, "status_refresh", tr!("Status.Refresh.Tooltip"));
    tooltip(raw, dialog_key::SWITCH_URL, tr!("Switch.Url.Tooltip"));
    tooltip(raw, "switch_now", tr!("Switch.Button.Tooltip"));
    group(top.as_ptr_mut(), "group_status", tr!("Group.Status"), live);

    obs_properties_set_flags(top.as_ptr_mut(), OBS_PROPERTIES_DEFER_UPDATE);
    top.into_raw()
}

unsafe extern "C" fn get_properties(_data: *mut c_void) -> *mut obs_properties_t {
    guard("dialog get_properties", ptr::null_mut(), || properties())
}

/// Frontend events: the profile's state is logged (and Enhanced Broadcasting kept off)
/// whenever a profile loads; the dialog's source goes when OBS quits.
unsafe extern "C" fn on_event(event: obs_frontend_event, _data: *mut c_void) {
    guard("frontend event", (), || {
        #[allow(non_upper_case_globals)]
        match event {
            obs_frontend_event_OBS_FRONTEND_EVENT_FINISHED_LOADING
            | obs_frontend_event_OBS_FRONTEND_EVENT_PROFILE_CHANGED => profile::profile_loaded(),
            obs_frontend_event_OBS_FRONTEND_EVENT_PROFILE_CHANGING => {
                profile::profile_unloading();
            }
            obs_frontend_event_OBS_FRONTEND_EVENT_EXIT => {
                super::wrapped::obs_quitting();
                profile::profile_unloading();
                let source = SOURCE.swap(ptr::null_mut(), Ordering::AcqRel);
                if !source.is_null() {
                    obs_source_release(source);
                }
            }
            _ => {}
        }
    })
}

/// Registers the dialog's source type (at module load).
pub(crate) fn register() {
    let info = Box::leak(Box::new(obs_source_info {
        id: cstr!("goaway_settings"),
        type_: obs_source_type_OBS_SOURCE_TYPE_INPUT,
        output_flags: OBS_SOURCE_CAP_DISABLED,
        get_name: Some(get_name),
        create: Some(create),
        destroy: Some(destroy),
        get_defaults: Some(get_defaults),
        get_properties: Some(get_properties),
        update: Some(update),
        ..Default::default()
    }));
    // SAFETY: the info is leaked (lives as long as the process), its layout is libobs 29's,
    // which every later libobs accepts.
    unsafe { obs_register_source_s(info, size_of::<obs_source_info>() as _) };
}

/// Adds the Tools menu entry and listens to the frontend (once the frontend is up).
pub(crate) fn install() {
    // SAFETY: plain frontend calls; the menu text is copied.
    unsafe {
        obs_frontend_add_tools_menu_item(text_ptr(tr!("Menu")), Some(open), ptr::null_mut());
        obs_frontend_add_event_callback(Some(on_event), ptr::null_mut());
    }
}
