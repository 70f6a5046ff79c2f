//! Turning lossless streaming on and off for a profile: which service settings become
//! `goaway_rtmp_service`'s, and which service comes back.
//!
//! Pure rules over [`Source`]/[`Sink`], so they are tested without libobs; the OBS glue
//! ([`super::profile`]) reads and writes the real service through them.

use std::fmt;

use super::settings::{copy_options, key, Destination, Sink, Source, StoredService};
use super::SERVICE_ID;

/// OBS's "Custom..." service.
pub(crate) const CUSTOM_ID: &str = "rtmp_custom";
/// OBS's listed services (Twitch, YouTube, ...).
pub(crate) const LISTED_ID: &str = "rtmp_common";

/// Why a conversion cannot be made; shown to the user (localized by the glue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConversionError {
    /// The profile's service is already ours.
    AlreadyOn,
    /// The profile's service is not ours.
    AlreadyOff,
    /// A service type we cannot take the destination from (WHIP, another plugin's).
    Unsupported(String),
    /// The service names no server to publish to.
    NoServer,
}

impl fmt::Display for ConversionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyOn => f.write_str("lossless streaming is already on"),
            Self::AlreadyOff => f.write_str("lossless streaming is already off"),
            Self::Unsupported(id) => write!(f, "the stream service \"{id}\" is not RTMP"),
            Self::NoServer => f.write_str("the stream service has no server"),
        }
    }
}

/// The destination a listed service resolves to (its server URL and key), as a private
/// instance of that service reports them.
pub(crate) struct Resolved {
    pub(crate) server: String,
    pub(crate) key: String,
}

/// Writes the settings of `goaway_rtmp_service` that replace `current` (whose settings are
/// `settings`), with the options in `options`. A listed service's destination comes from
/// `resolve`, called only for listed services (it asks OBS's own service code).
pub(crate) fn enable(
    current: &StoredService,
    settings: &impl Source,
    options: &impl Source,
    resolve: impl FnOnce() -> Resolved,
    out: &mut impl Sink,
) -> Result<Destination, ConversionError> {
    let destination = match current.id.as_str() {
        SERVICE_ID => return Err(ConversionError::AlreadyOn),
        CUSTOM_ID => Destination::read(settings),
        LISTED_ID => {
            let resolved = resolve();
            Destination {
                server: resolved.server.trim().to_string(),
                key: resolved.key.trim().to_string(),
                username: None,
                password: None,
            }
        }
        other => return Err(ConversionError::Unsupported(other.to_string())),
    };
    if destination.server.is_empty() {
        return Err(ConversionError::NoServer);
    }
    write_destination(&destination, out);
    copy_options(options, out);
    out.set_service(key::PREVIOUS, current);
    Ok(destination)
}

/// Writes `destination` as OBS's Custom service keys (which our service shares).
pub(crate) fn write_destination(destination: &Destination, out: &mut impl Sink) {
    out.set_string(key::SERVER, &destination.server);
    out.set_string(key::KEY, &destination.key);
    match (&destination.username, &destination.password) {
        (Some(username), Some(password)) => {
            out.set_bool(key::USE_AUTH, true);
            out.set_string(key::USERNAME, username);
            out.set_string(key::PASSWORD, password);
        }
        _ => {
            out.set_bool(key::USE_AUTH, false);
            out.remove(key::USERNAME);
            out.remove(key::PASSWORD);
        }
    }
}

/// What turning lossless streaming off brings back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Restore {
    /// The service the profile had, exactly.
    Previous(StoredService),
    /// No previous service is known (service.json was written by hand): a Custom service
    /// with our destination, so the profile keeps streaming to the same place.
    Custom(Destination),
}

/// The service that replaces ours (of type `current_id`, with `settings`).
pub(crate) fn disable(
    current_id: &str,
    settings: &impl Source,
) -> Result<Restore, ConversionError> {
    if current_id != SERVICE_ID {
        return Err(ConversionError::AlreadyOff);
    }
    Ok(settings.service(key::PREVIOUS).map_or_else(
        || Restore::Custom(Destination::read(settings)),
        Restore::Previous,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obs::settings::map::{map, Map};

    fn stored(id: &str, json: &str) -> StoredService {
        StoredService {
            id: id.into(),
            settings_json: json.into(),
        }
    }

    fn unresolvable() -> Resolved {
        panic!("only listed services are resolved")
    }

    #[test]
    fn custom_keeps_server_and_key_and_comes_back_exactly() {
        let json = r#"{"server": "rtmp://a.example/live", "key": "k1", "bwtest": false}"#;
        let current = stored(CUSTOM_ID, json);
        let settings = map(&[("server", "rtmp://a.example/live"), ("key", "k1")]);
        let options = map(&[("goaway_strategy", "break_before_make")]);
        let mut ours = Map::default();
        let destination = enable(&current, &settings, &options, unresolvable, &mut ours).unwrap();
        assert_eq!(destination.server, "rtmp://a.example/live");
        assert_eq!(
            ours.string("server").as_deref(),
            Some("rtmp://a.example/live")
        );
        assert_eq!(ours.string("key").as_deref(), Some("k1"));
        assert_eq!(ours.boolean("use_auth"), Some(false));
        assert_eq!(
            ours.string("goaway_strategy").as_deref(),
            Some("break_before_make")
        );
        // Options the user never set are written with their defaults.
        assert_eq!(ours.boolean("goaway_announce_reconnect"), Some(true));
        assert_eq!(
            disable(SERVICE_ID, &ours).unwrap(),
            Restore::Previous(current)
        );
    }

    #[test]
    fn authentication_is_kept() {
        let current = stored(CUSTOM_ID, "{}");
        let settings = map(&[
            ("server", "rtmps://a.example/app"),
            ("key", "k"),
            ("use_auth", "true"),
            ("username", "me"),
            ("password", "pw"),
        ]);
        let mut ours = Map::default();
        enable(
            &current,
            &settings,
            &Map::default(),
            unresolvable,
            &mut ours,
        )
        .unwrap();
        assert_eq!(ours.boolean("use_auth"), Some(true));
        assert_eq!(ours.string("username").as_deref(), Some("me"));
        assert_eq!(ours.string("password").as_deref(), Some("pw"));
        assert_eq!(Destination::read(&ours).password.as_deref(), Some("pw"));
    }

    #[test]
    fn listed_services_publish_where_obs_resolves_them() {
        let json = r#"{"service": "YouTube - RTMPS", "server": "rtmps://a.rtmps.youtube.com:443/live2", "key": "abcd-efgh"}"#;
        let current = stored(LISTED_ID, json);
        // The listed settings' own "server" is not trusted: it may be a placeholder such as
        // Twitch's "auto", which only the service resolves.
        let settings = map(&[("service", "Twitch"), ("server", "auto"), ("key", "x")]);
        let mut ours = Map::default();
        let mut asked = false;
        let resolve = || {
            asked = true;
            Resolved {
                server: " rtmps://a.rtmps.youtube.com:443/live2 ".into(),
                key: "abcd-efgh".into(),
            }
        };
        enable(&current, &settings, &Map::default(), resolve, &mut ours).unwrap();
        assert!(asked);
        assert_eq!(
            ours.string("server").as_deref(),
            Some("rtmps://a.rtmps.youtube.com:443/live2")
        );
        assert_eq!(ours.string("key").as_deref(), Some("abcd-efgh"));
        assert_eq!(ours.service("goaway_previous"), Some(current));
    }

    #[test]
    fn other_services_and_repeats_are_refused() {
        let mut ours = Map::default();
        let empty = Map::default();
        assert_eq!(
            enable(
                &stored("whip_custom", "{}"),
                &empty,
                &empty,
                unresolvable,
                &mut ours
            ),
            Err(ConversionError::Unsupported("whip_custom".into()))
        );
        assert_eq!(
            enable(
                &stored(SERVICE_ID, "{}"),
                &empty,
                &empty,
                unresolvable,
                &mut ours
            ),
            Err(ConversionError::AlreadyOn)
        );
        assert_eq!(
            enable(
                &stored(CUSTOM_ID, "{}"),
                &empty,
                &empty,
                unresolvable,
                &mut ours
            ),
            Err(ConversionError::NoServer)
        );
        assert_eq!(ours, Map::default(), "nothing written on failure");
        assert_eq!(disable(CUSTOM_ID, &empty), Err(ConversionError::AlreadyOff));
    }

    #[test]
    fn a_hand_written_service_falls_back_to_custom() {
        let ours = map(&[
            ("server", "rtmp://a.example/live"),
            ("key", "k"),
            ("use_auth", "true"),
            ("username", "u"),
            ("password", "p"),
        ]);
        let Restore::Custom(destination) = disable(SERVICE_ID, &ours).unwrap() else {
            panic!("no previous service was stored")
        };
        let mut custom = Map::default();
        write_destination(&destination, &mut custom);
        assert_eq!(Destination::read(&custom), Destination::read(&ours));
    }
}
