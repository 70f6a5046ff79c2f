//! The service's settings: OBS's Custom service keys (`server`, `key`, `use_auth`,
//! `username`, `password`) plus ours, read into a [`SessionConfig`].
//!
//! Reading goes through [`Source`] so the rules are tested without libobs.

use std::borrow::Cow;
use std::time::Duration;

use obs_wrapper::data::DataObj;

use crate::session::{BufferLimits, MigrationMode, SessionConfig};
use crate::transport::{RtmpUrl, UrlError};

/// Setting keys, shared with the properties and the defaults.
pub(crate) mod key {
    pub(crate) const SERVER: &str = "server";
    pub(crate) const KEY: &str = "key";
    pub(crate) const USE_AUTH: &str = "use_auth";
    pub(crate) const USERNAME: &str = "username";
    pub(crate) const PASSWORD: &str = "password";
    pub(crate) const ANNOUNCE: &str = "goaway_announce";
    pub(crate) const BREAK_BEFORE_MAKE: &str = "goaway_break_before_make";
    pub(crate) const KEYFRAME_DEADLINE: &str = "goaway_keyframe_deadline";
    pub(crate) const BUFFER_SECS: &str = "goaway_buffer_secs";
    pub(crate) const BUFFER_MIB: &str = "goaway_buffer_mib";
    pub(crate) const REBASE: &str = "goaway_rebase_timestamps";
    pub(crate) const RETRY_DELAY: &str = "goaway_retry_delay";
    pub(crate) const MAX_RETRIES: &str = "goaway_max_retries";
}

/// Defaults: right for almost everyone.
pub(crate) mod default {
    pub(crate) const ANNOUNCE: bool = true;
    pub(crate) const BREAK_BEFORE_MAKE: bool = false;
    pub(crate) const KEYFRAME_DEADLINE: i64 = 10;
    pub(crate) const BUFFER_SECS: i64 = 30;
    pub(crate) const BUFFER_MIB: i64 = 256;
    pub(crate) const REBASE: bool = false;
    pub(crate) const RETRY_DELAY: i64 = 1;
    /// Attempts at the retry delay before backing off: a restarting ingest is usually back
    /// within seconds.
    pub(crate) const STEADY_ATTEMPTS: u32 = 5;
    pub(crate) const MAX_RETRIES: i64 = 25;
}

/// Where settings are read from: OBS data, or a map in tests.
pub(crate) trait Source {
    fn string(&self, key: &str) -> Option<String>;
    fn boolean(&self, key: &str) -> Option<bool>;
    fn int(&self, key: &str) -> Option<i64>;
}

impl Source for DataObj<'_> {
    fn string(&self, key: &str) -> Option<String> {
        self.get::<Cow<'_, str>>(key).map(Cow::into_owned)
    }
    fn boolean(&self, key: &str) -> Option<bool> {
        self.get::<bool>(key)
    }
    fn int(&self, key: &str) -> Option<i64> {
        self.get::<i64>(key)
    }
}

/// Where to publish, as the Custom service describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Destination {
    pub(crate) server: String,
    pub(crate) key: String,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
}

impl Destination {
    pub(crate) fn read(source: &impl Source) -> Self {
        let text = |k| source.string(k).unwrap_or_default().trim().to_string();
        let auth = source.boolean(key::USE_AUTH).unwrap_or(false);
        Self {
            server: text(key::SERVER),
            key: text(key::KEY),
            username: auth.then(|| text(key::USERNAME)),
            password: auth.then(|| text(key::PASSWORD)),
        }
    }

    /// "RTMPS" or "RTMP": what OBS 29.1+ asks the service (never NULL).
    pub(crate) fn protocol(&self) -> &'static str {
        if self.server.to_ascii_lowercase().starts_with("rtmps://") {
            "RTMPS"
        } else {
            "RTMP"
        }
    }
}

fn seconds(source: &impl Source, name: &str, fallback: i64) -> Duration {
    Duration::from_secs(source.int(name).unwrap_or(fallback).clamp(0, 3600) as u64)
}

/// The session configuration for `destination` with the options in `source`.
pub(crate) fn session_config(
    destination: &Destination,
    source: &impl Source,
) -> Result<SessionConfig, UrlError> {
    let url = RtmpUrl::with_key(&destination.server, &destination.key)?;
    let mut config = SessionConfig::new(url);
    config.link.announce_reconnect = source.boolean(key::ANNOUNCE).unwrap_or(default::ANNOUNCE);
    if source
        .boolean(key::BREAK_BEFORE_MAKE)
        .unwrap_or(default::BREAK_BEFORE_MAKE)
    {
        config.mode = MigrationMode::BreakBeforeMake;
    }
    config.keyframe_deadline = seconds(source, key::KEYFRAME_DEADLINE, default::KEYFRAME_DEADLINE)
        .max(Duration::from_secs(1));
    config.buffer = BufferLimits {
        max_duration: seconds(source, key::BUFFER_SECS, default::BUFFER_SECS)
            .max(Duration::from_secs(2)),
        max_bytes: (source
            .int(key::BUFFER_MIB)
            .unwrap_or(default::BUFFER_MIB)
            .clamp(8, 4096) as usize)
            << 20,
    };
    config.rebase_timestamps = source.boolean(key::REBASE).unwrap_or(default::REBASE);
    config.reconnect.initial_delay = seconds(source, key::RETRY_DELAY, default::RETRY_DELAY);
    config.reconnect.steady_attempts = default::STEADY_ATTEMPTS;
    config.reconnect.max_retries = source
        .int(key::MAX_RETRIES)
        .unwrap_or(default::MAX_RETRIES)
        .clamp(0, 10_000) as u32;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Map(HashMap<&'static str, String>);

    impl Source for Map {
        fn string(&self, key: &str) -> Option<String> {
            self.0.get(key).cloned()
        }
        fn boolean(&self, key: &str) -> Option<bool> {
            self.0.get(key).map(|v| v == "true")
        }
        fn int(&self, key: &str) -> Option<i64> {
            self.0.get(key).and_then(|v| v.parse().ok())
        }
    }

    fn map(pairs: &[(&'static str, &str)]) -> Map {
        Map(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
    }

    #[test]
    fn custom_service_keys_make_the_url() {
        let source = map(&[("server", " rtmp://a.example/live "), ("key", "sekrit")]);
        let destination = Destination::read(&source);
        assert_eq!(destination.protocol(), "RTMP");
        assert_eq!(destination.username, None);
        let config = session_config(&destination, &source).unwrap();
        assert_eq!(config.url.key(), "sekrit");
        assert!(!config.url.to_string().contains("sekrit"));
        assert_eq!(config.mode, MigrationMode::MakeBeforeBreak);
        assert!(config.link.announce_reconnect);
    }

    #[test]
    fn authentication_is_read_only_when_enabled() {
        let mut source = map(&[
            ("server", "rtmps://a.example/live"),
            ("username", "u"),
            ("password", "p"),
        ]);
        assert_eq!(Destination::read(&source).password, None);
        source.0.insert("use_auth", "true".into());
        let destination = Destination::read(&source);
        assert_eq!(destination.username.as_deref(), Some("u"));
        assert_eq!(destination.protocol(), "RTMPS");
    }

    #[test]
    fn options_are_clamped_to_sane_ranges() {
        let source = map(&[
            ("server", "rtmp://a.example/live"),
            ("key", "k"),
            ("goaway_buffer_mib", "999999"),
            ("goaway_keyframe_deadline", "0"),
            ("goaway_break_before_make", "true"),
        ]);
        let config = session_config(&Destination::read(&source), &source).unwrap();
        assert_eq!(config.buffer.max_bytes, 4096 << 20);
        assert_eq!(config.keyframe_deadline, Duration::from_secs(1));
        assert_eq!(config.mode, MigrationMode::BreakBeforeMake);
    }

    #[test]
    fn a_bad_server_is_a_clear_error() {
        let source = map(&[("server", "http://a.example/live"), ("key", "k")]);
        let error = session_config(&Destination::read(&source), &source).unwrap_err();
        assert!(!error.to_string().is_empty());
    }
}
