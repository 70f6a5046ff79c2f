//! The libobs the plugin runs in, and what it accepts at registration.

use std::fmt;

use obs_sys::obs_get_version;

/// The running libobs's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Running(u32);

impl Running {
    pub(crate) fn detect() -> Self {
        // SAFETY: a plain getter, callable any time after libobs loaded us.
        Self(unsafe { obs_get_version() })
    }

    /// A libobs version as `obs_get_version` encodes it.
    #[cfg(test)]
    pub(crate) fn from_version(major: u32, minor: u32, patch: u32) -> Self {
        Self(major << 24 | minor << 16 | patch)
    }

    fn major_minor(self) -> (u32, u32) {
        (self.0 >> 24, (self.0 >> 16) & 0xff)
    }

    /// 29.1 appended `protocols` to `obs_output_info` and the connect-info callbacks to
    /// `obs_service_info`; both structs are unchanged from there to 32.
    pub(crate) fn has_protocols(self) -> bool {
        self.major_minor() >= (29, 1)
    }

    /// 30.2 added Enhanced Broadcasting (multitrack video), whose profile setting makes the
    /// Stream button bypass any plugin output.
    pub(crate) fn has_multitrack(self) -> bool {
        self.major_minor() >= (30, 2)
    }

    /// 30.2 sends extra audio tracks (the Twitch VOD track) as Enhanced RTMP multitrack
    /// audio; 29.0 to 30.1 as `additionalMedia` script tags.
    pub(crate) fn has_multitrack_audio(self) -> bool {
        self.major_minor() >= (30, 2)
    }

    /// 32.0 sets Enhanced Broadcasting up only for a service that supports it (Custom, or one
    /// naming a multitrack configuration URL); 30.2 to 31 for any service.
    pub(crate) fn multitrack_needs_capable_service(self) -> bool {
        self.major_minor() >= (32, 0)
    }
}

impl fmt::Display for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor) = self.major_minor();
        write!(f, "{major}.{minor}.{}", self.0 & 0xffff)
    }
}
