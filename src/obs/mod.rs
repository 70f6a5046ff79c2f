//! The OBS Studio plugin: everything that touches libobs, and the crate's only `unsafe`.
//!
//! Each OBS callback is a thin shell (see `ffi::guard`) over a safe type that owns the
//! state: `output` drives a [`crate::live::LiveOutput`], `service` wraps the profile's own
//! service (a private instance of it: `wrapped`), `dialog` is the Tools menu's settings
//! dialog, `profile` turns the profile's stream service into ours and back (`conversion`
//! has the rules), `websocket` answers obs-websocket vendor requests.
//! Nothing of OBS leaks below this module: the session sees packets and a configuration.
//!
//! Built against the oldest supported headers (libobs 29.0) and run on 29.0 through 32.x:
//! `version` picks the registration sizes the running libobs knows, and functions that
//! exist only in some versions are looked up at run time (`symbols`), because OBS 32
//! refuses a module with a single unresolved import.

mod conversion;
mod dialog;
mod ffi;
mod locale;
mod logger;
mod output;
pub mod packet;
mod profile;
mod registration;
mod service;
mod settings;
mod status;
mod symbols;
mod version;
mod websocket;
mod wrapped;

use obs_wrapper::module::{LoadContext, Module, ModuleContext};
use obs_wrapper::obs_string;
use obs_wrapper::string::ObsString;

/// Output id: what our service names as its output type.
pub const OUTPUT_ID: &str = "goaway_rtmp_output";
/// Service id: what a profile's service.json names.
pub const SERVICE_ID: &str = "goaway_rtmp_service";

/// The module as obs-wrapper sees it.
pub struct GoAwayModule {
    context: ModuleContext,
}

impl Module for GoAwayModule {
    fn new(context: ModuleContext) -> Self {
        Self { context }
    }

    fn get_ctx(&self) -> &ModuleContext {
        &self.context
    }

    fn load(&mut self, _load_context: &mut LoadContext) -> bool {
        ffi::guard("module load", false, || {
            logger::init();
            let running = version::Running::detect();
            log::info!(
                "obs-goaway {} loaded in libobs {running} (built with libobs {}.{}.{} headers; \
                 registration for {})",
                env!("CARGO_PKG_VERSION"),
                obs_sys::LIBOBS_API_MAJOR_VER,
                obs_sys::LIBOBS_API_MINOR_VER,
                obs_sys::LIBOBS_API_PATCH_VER,
                if running.has_protocols() {
                    "29.1 and later"
                } else {
                    "29.0"
                }
            );
            output::register(running);
            service::register(running);
            dialog::register();
            dialog::install();
            true
        })
    }

    /// obs-websocket registers its API during its own load: vendor requests can only be
    /// added once every module is loaded.
    fn post_load(&mut self) {
        ffi::guard("module post_load", (), websocket::register);
    }

    fn unload(&mut self) {
        ffi::guard("module unload", (), locale::free);
    }

    // obs-wrapper's exports return these strings' pointers after the ObsString is gone:
    // only static strings stay valid (OBS 32's plugin manager reads them; a heap string
    // there crashed OBS at startup).
    fn description() -> ObsString {
        obs_string!("Lossless RTMP reconnection (Go Away and Enhanced RTMP Reconnect Request)")
    }

    fn name() -> ObsString {
        obs_string!("obs-goaway")
    }

    fn author() -> ObsString {
        obs_string!("obs-goaway developers")
    }
}

/// The exports OBS looks for (`obs_module_load`, `obs_module_set_pointer`, ...).
mod entry {
    #![allow(missing_docs, unreachable_pub)]
    use super::GoAwayModule;
    use obs_wrapper::module::{Module, ModuleContext};
    use obs_wrapper::obs_register_module;

    obs_register_module!(GoAwayModule);
}
