//! The service's settings: OBS's Custom service keys (`server`, `key`, `use_auth`,
//! `username`, `password`) plus ours, read into a [`SessionConfig`].
//!
//! Reading goes through [`Source`] so the rules are tested without libobs.

use std::borrow::Cow;
use std::time::Duration;

use obs_wrapper::data::DataObj;

use crate::protocol::auth::Credentials;
use crate::session::{BufferLimits, MigrationMode, SessionConfig};
use crate::transport::{RtmpUrl, UrlError};

/// Setting keys, shared with the properties and the defaults.
pub(crate) mod key {
    pub(crate) const SERVER: &str = "server";
    pub(crate) const KEY: &str = "key";
    pub(crate) const USE_AUTH: &str = "use_auth";
    pub(crate) const USERNAME: &str = "username";
    pub(crate) const PASSWORD: &str = "password";
    pub(crate) const ANNOUNCE_GO_AWAY: &str = "goaway_announce_go_away";
    pub(crate) const ANNOUNCE_RECONNECT: &str = "goaway_announce_reconnect";
    pub(crate) const STRATEGY: &str = "goaway_strategy";
    pub(crate) const KEYFRAME_DEADLINE: &str = "goaway_keyframe_deadline";
    pub(crate) const BUFFER_SECS: &str = "goaway_buffer_secs";
    pub(crate) const BUFFER_MIB: &str = "goaway_buffer_mib";
    pub(crate) const TIMESTAMPS: &str = "goaway_timestamps";
    pub(crate) const RETRY_DELAY: &str = "goaway_retry_delay";
    pub(crate) const STEADY_ATTEMPTS: &str = "goaway_steady_attempts";
    pub(crate) const MAX_RETRIES: &str = "goaway_max_retries";
    /// The service the profile had before lossless streaming was turned on
    /// (`{"type", "settings"}`), restored exactly when it is turned off.
    pub(crate) const PREVIOUS: &str = "goaway_previous";
    /// The type of the service ours wraps (`rtmp_common`, `rtmp_custom`), whose keys our
    /// settings carry. Absent in a service.json written by hand (and before services were
    /// wrapped): ours then streams to its own `server` and `key`.
    pub(crate) const WRAPPED_TYPE: &str = "goaway_wrapped_type";
    /// What every key of ours starts with: the rest belong to the wrapped service.
    pub(crate) const PREFIX: &str = "goaway_";
    /// The profile had Enhanced Broadcasting on when lossless streaming turned it off: it
    /// comes back on with the previous service.
    pub(crate) const PREVIOUS_MULTITRACK: &str = "goaway_previous_multitrack";
}

/// Values of [`key::STRATEGY`].
pub(crate) mod strategy {
    pub(crate) const MAKE_BEFORE_BREAK: &str = "make_before_break";
    pub(crate) const BREAK_BEFORE_MAKE: &str = "break_before_make";
}

/// Values of [`key::TIMESTAMPS`].
pub(crate) mod timestamps {
    pub(crate) const CONTINUE: &str = "continue";
    pub(crate) const RESTART: &str = "restart";
}

/// Defaults: right for almost everyone.
pub(crate) mod default {
    pub(crate) const ANNOUNCE_GO_AWAY: bool = true;
    pub(crate) const ANNOUNCE_RECONNECT: bool = true;
    pub(crate) const STRATEGY: &str = super::strategy::MAKE_BEFORE_BREAK;
    pub(crate) const KEYFRAME_DEADLINE: i64 = 10;
    pub(crate) const BUFFER_SECS: i64 = 30;
    pub(crate) const BUFFER_MIB: i64 = 256;
    pub(crate) const TIMESTAMPS: &str = super::timestamps::CONTINUE;
    pub(crate) const RETRY_DELAY: i64 = 1;
    /// Attempts at the retry delay before backing off: a restarting ingest is usually back
    /// within seconds.
    pub(crate) const STEADY_ATTEMPTS: i64 = 5;
    pub(crate) const MAX_RETRIES: i64 = 25;
}

/// One option of ours with its default, so that the dialog, the service and the
/// conversion copy the same set.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Setting {
    Bool(&'static str, bool),
    Int(&'static str, i64),
    Text(&'static str, &'static str),
}

/// Every option beyond the destination.
pub(crate) const OPTIONS: [Setting; 10] = [
    Setting::Bool(key::ANNOUNCE_GO_AWAY, default::ANNOUNCE_GO_AWAY),
    Setting::Bool(key::ANNOUNCE_RECONNECT, default::ANNOUNCE_RECONNECT),
    Setting::Text(key::STRATEGY, default::STRATEGY),
    Setting::Int(key::KEYFRAME_DEADLINE, default::KEYFRAME_DEADLINE),
    Setting::Int(key::BUFFER_SECS, default::BUFFER_SECS),
    Setting::Int(key::BUFFER_MIB, default::BUFFER_MIB),
    Setting::Text(key::TIMESTAMPS, default::TIMESTAMPS),
    Setting::Int(key::RETRY_DELAY, default::RETRY_DELAY),
    Setting::Int(key::STEADY_ATTEMPTS, default::STEADY_ATTEMPTS),
    Setting::Int(key::MAX_RETRIES, default::MAX_RETRIES),
];

/// A stream service as a profile stores it (service.json): its type and its settings as
/// OBS's JSON text, kept verbatim so that it comes back exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredService {
    pub(crate) id: String,
    pub(crate) settings_json: String,
}

/// Where settings are read from: OBS data, or a map in tests.
pub(crate) trait Source {
    fn string(&self, key: &str) -> Option<String>;
    fn boolean(&self, key: &str) -> Option<bool>;
    fn int(&self, key: &str) -> Option<i64>;
    /// A nested `{"type", "settings"}` object.
    fn service(&self, key: &str) -> Option<StoredService>;
}

/// Where settings are written: OBS data, or a map in tests.
pub(crate) trait Sink {
    fn set_string(&mut self, key: &str, value: &str);
    fn set_bool(&mut self, key: &str, value: bool);
    fn set_int(&mut self, key: &str, value: i64);
    fn set_service(&mut self, key: &str, value: &StoredService);
    fn remove(&mut self, key: &str);
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
    fn service(&self, key: &str) -> Option<StoredService> {
        let object = self.get::<DataObj<'_>>(key)?;
        Some(StoredService {
            id: object.string("type")?,
            settings_json: object
                .get::<DataObj<'_>>("settings")
                .and_then(|s| s.get_json())
                .unwrap_or_else(|| "{}".into()),
        })
    }
}

/// Copies every option from `from` (its value, else the default) to `to`.
pub(crate) fn copy_options(from: &impl Source, to: &mut impl Sink) {
    for option in OPTIONS {
        match option {
            Setting::Bool(name, fallback) => {
                to.set_bool(name, from.boolean(name).unwrap_or(fallback));
            }
            Setting::Int(name, fallback) => to.set_int(name, from.int(name).unwrap_or(fallback)),
            Setting::Text(name, fallback) => {
                to.set_string(name, &from.string(name).unwrap_or_else(|| fallback.into()));
            }
        }
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
    /// The URL to publish to, with the credentials.
    pub(crate) fn url(&self) -> Result<RtmpUrl, UrlError> {
        let url = RtmpUrl::with_key(&self.server, &self.key)?;
        Ok(match self.credentials() {
            Some(credentials) => url.with_credentials(Some(credentials)),
            None => url,
        })
    }

    pub(crate) fn read(source: &impl Source) -> Self {
        let text = |k| source.string(k).unwrap_or_default().trim().to_string();
        let auth = source.boolean(key::USE_AUTH).unwrap_or(false);
        Self {
            server: text(key::SERVER),
            key: text(key::KEY),
            username: auth.then(|| text(key::USERNAME)),
            // As OBS's Custom service keeps it: spaces may belong to a password.
            password: auth.then(|| source.string(key::PASSWORD).unwrap_or_default()),
        }
    }

    /// The credentials to authenticate with: only with authentication on and a username
    /// (OBS's own output needs both too). Without them, a server that requires
    /// authentication refuses the stream with an error that says so.
    pub(crate) fn credentials(&self) -> Option<Credentials> {
        match (&self.username, &self.password) {
            (Some(username), Some(password)) if !username.is_empty() => {
                Some(Credentials::new(username.as_str(), password.as_str()))
            }
            _ => None,
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
    let mut config = SessionConfig::new(destination.url()?);
    config.link.announce_go_away = source
        .boolean(key::ANNOUNCE_GO_AWAY)
        .unwrap_or(default::ANNOUNCE_GO_AWAY);
    config.link.announce_reconnect = source
        .boolean(key::ANNOUNCE_RECONNECT)
        .unwrap_or(default::ANNOUNCE_RECONNECT);
    if source.string(key::STRATEGY).as_deref() == Some(strategy::BREAK_BEFORE_MAKE) {
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
    config.rebase_timestamps =
        source.string(key::TIMESTAMPS).as_deref() == Some(timestamps::RESTART);
    config.reconnect.initial_delay = seconds(source, key::RETRY_DELAY, default::RETRY_DELAY);
    config.reconnect.steady_attempts = source
        .int(key::STEADY_ATTEMPTS)
        .unwrap_or(default::STEADY_ATTEMPTS)
        .clamp(0, 1000) as u32;
    config.reconnect.max_retries = source
        .int(key::MAX_RETRIES)
        .unwrap_or(default::MAX_RETRIES)
        .clamp(0, 10_000) as u32;
    Ok(config)
}

#[cfg(test)]
pub(crate) mod map {
    //! Settings in a map, for tests without libobs.
    use super::{Sink, Source, StoredService};
    use std::collections::BTreeMap;

    /// Values as text (booleans "true"/"false"), nested services apart.
    #[derive(Debug, Default, Clone, PartialEq, Eq)]
    pub(crate) struct Map {
        pub(crate) values: BTreeMap<String, String>,
        pub(crate) services: BTreeMap<String, StoredService>,
    }

    impl Source for Map {
        fn string(&self, key: &str) -> Option<String> {
            self.values.get(key).cloned()
        }
        fn boolean(&self, key: &str) -> Option<bool> {
            self.values.get(key).map(|v| v == "true")
        }
        fn int(&self, key: &str) -> Option<i64> {
            self.values.get(key).and_then(|v| v.parse().ok())
        }
        fn service(&self, key: &str) -> Option<StoredService> {
            self.services.get(key).cloned()
        }
    }

    impl Sink for Map {
        fn set_string(&mut self, key: &str, value: &str) {
            self.values.insert(key.into(), value.into());
        }
        fn set_bool(&mut self, key: &str, value: bool) {
            self.values.insert(key.into(), value.to_string());
        }
        fn set_int(&mut self, key: &str, value: i64) {
            self.values.insert(key.into(), value.to_string());
        }
        fn set_service(&mut self, key: &str, value: &StoredService) {
            self.services.insert(key.into(), value.clone());
        }
        fn remove(&mut self, key: &str) {
            self.values.remove(key);
            self.services.remove(key);
        }
    }

    /// A map with these text values.
    pub(crate) fn map(pairs: &[(&str, &str)]) -> Map {
        Map {
            values: pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            services: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::map::map;
    use super::*;

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
        assert!(config.link.announce_go_away && config.link.announce_reconnect);
        assert!(!config.rebase_timestamps);
        assert_eq!(config.reconnect.steady_attempts, 5);
    }

    #[test]
    fn authentication_is_read_only_when_enabled() {
        let mut source = map(&[
            ("server", "rtmps://a.example/live"),
            ("key", "k"),
            ("username", "u"),
            ("password", "p"),
        ]);
        assert_eq!(Destination::read(&source).password, None);
        assert_eq!(
            session_config(&Destination::read(&source), &source)
                .unwrap()
                .url
                .credentials(),
            None
        );
        source.set_bool("use_auth", true);
        source.set_string("password", " p ");
        let destination = Destination::read(&source);
        assert_eq!(destination.username.as_deref(), Some("u"));
        assert_eq!(destination.protocol(), "RTMPS");
        let config = session_config(&destination, &source).unwrap();
        assert_eq!(
            config.url.credentials(),
            Some(&Credentials::new("u", " p ")),
            "the session authenticates, the password as typed"
        );
        assert!(!format!("{:?}", config.url).contains(" p "));
    }

    #[test]
    fn authentication_without_a_username_sends_nothing() {
        let source = map(&[
            ("server", "rtmp://a.example/live"),
            ("key", "k"),
            ("use_auth", "true"),
            ("password", "p"),
        ]);
        let destination = Destination::read(&source);
        assert_eq!(destination.credentials(), None);
        assert_eq!(
            session_config(&destination, &source)
                .unwrap()
                .url
                .credentials(),
            None
        );
    }

    #[test]
    fn options_are_clamped_to_sane_ranges() {
        let source = map(&[
            ("server", "rtmp://a.example/live"),
            ("key", "k"),
            ("goaway_buffer_mib", "999999"),
            ("goaway_keyframe_deadline", "0"),
            ("goaway_strategy", "break_before_make"),
            ("goaway_timestamps", "restart"),
            ("goaway_announce_go_away", "false"),
        ]);
        let config = session_config(&Destination::read(&source), &source).unwrap();
        assert_eq!(config.buffer.max_bytes, 4096 << 20);
        assert_eq!(config.keyframe_deadline, Duration::from_secs(1));
        assert_eq!(config.mode, MigrationMode::BreakBeforeMake);
        assert!(config.rebase_timestamps);
        assert!(!config.link.announce_go_away && config.link.announce_reconnect);
    }

    #[test]
    fn a_bad_server_is_a_clear_error() {
        let source = map(&[("server", "http://a.example/live"), ("key", "k")]);
        let error = session_config(&Destination::read(&source), &source).unwrap_err();
        assert!(!error.to_string().is_empty());
    }
}
