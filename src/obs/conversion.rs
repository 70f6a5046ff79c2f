//! Turning lossless streaming on and off for a profile: `goaway_rtmp_service` wraps the
//! profile's service (its settings are that service's plus ours), and turning it off gives
//! that service back.
//!
//! Pure rules over [`Source`]/[`Sink`] and JSON text, so they are tested without libobs;
//! the OBS glue ([`super::profile`]) reads and writes the real service through them.

use std::fmt;

use serde_json::Value;

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
    /// A service type we cannot wrap (WHIP, another plugin's).
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

/// Whether ours can wrap a service of type `id`.
pub(crate) fn wraps(id: &str) -> bool {
    id == CUSTOM_ID || id == LISTED_ID
}

/// Writes the settings of `goaway_rtmp_service` wrapping `current`, with the options in
/// `options`. `out` starts as a copy of `current`'s settings: every key stays, since the
/// wrapped service reads them (and OBS's per-service logic reads `service`). `edited`, when
/// it differs from them, is the destination the user typed in our dialog. Returns the
/// destination as the settings name it (a listed service's server may be a placeholder
/// such as Twitch's "auto", resolved at each connection).
pub(crate) fn enable(
    current: &StoredService,
    options: &impl Source,
    edited: Option<&Destination>,
    out: &mut (impl Sink + Source),
) -> Result<Destination, ConversionError> {
    match current.id.as_str() {
        SERVICE_ID => return Err(ConversionError::AlreadyOn),
        id if wraps(id) => {}
        other => return Err(ConversionError::Unsupported(other.to_string())),
    }
    let stored = Destination::read(out);
    let destination = edited
        .filter(|d| !d.server.is_empty())
        .cloned()
        .unwrap_or_else(|| stored.clone());
    if destination.server.is_empty() {
        return Err(ConversionError::NoServer);
    }
    if destination != stored {
        write_destination(&destination, out);
    }
    copy_options(options, out);
    out.set_service(key::PREVIOUS, current);
    out.set_string(key::WRAPPED_TYPE, &current.id);
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
    /// The service the profile had: exactly, unless its settings changed while ours
    /// wrapped it (a key written by OBS's account integration, a server edited in our
    /// dialog), which it then keeps.
    Previous(StoredService),
    /// No previous service is known (service.json was written by hand): a Custom service
    /// with our destination, so the profile keeps streaming to the same place.
    Custom(Destination),
}

/// The service that replaces ours (of type `current_id`, with `settings`, whose JSON text
/// is `settings_json`).
pub(crate) fn disable(
    current_id: &str,
    settings: &impl Source,
    settings_json: &str,
) -> Result<Restore, ConversionError> {
    if current_id != SERVICE_ID {
        return Err(ConversionError::AlreadyOff);
    }
    let previous = settings.service(key::PREVIOUS);
    let wrapped = settings
        .string(key::WRAPPED_TYPE)
        .filter(|id| !id.is_empty());
    Ok(match (wrapped, previous) {
        (Some(id), previous) => {
            let now = wrapped_settings(settings_json);
            let settings_json = match previous {
                Some(previous) if previous.id == id && same_json(&previous.settings_json, &now) => {
                    previous.settings_json
                }
                _ => now,
            };
            Restore::Previous(StoredService { id, settings_json })
        }
        // Saved before ours wrapped services: our settings hold a resolved destination.
        (None, Some(previous)) => Restore::Previous(previous),
        (None, None) => Restore::Custom(Destination::read(settings)),
    })
}

/// The wrapped service's settings in ours (`settings_json`): every key but ours.
pub(crate) fn wrapped_settings(settings_json: &str) -> String {
    let mut settings = match serde_json::from_str::<Value>(settings_json) {
        Ok(Value::Object(settings)) => settings,
        _ => serde_json::Map::new(),
    };
    settings.retain(|name, _| !name.starts_with(key::PREFIX));
    Value::Object(settings).to_string()
}

/// Whether two JSON texts hold the same value (OBS may order or space keys differently).
fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
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

    /// Our settings as JSON text, the way OBS would serialize the map.
    fn json_of(settings: &Map) -> String {
        let mut object: serde_json::Map<String, Value> = settings
            .values
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        for (k, service) in &settings.services {
            object.insert(k.clone(), serde_json::json!({"type": service.id}));
        }
        Value::Object(object).to_string()
    }

    #[test]
    fn custom_is_wrapped_with_its_keys_and_comes_back_exactly() {
        let json = r#"{"server":"rtmp://a.example/live","key":"k1"}"#;
        let current = stored(CUSTOM_ID, json);
        let mut ours = map(&[("server", "rtmp://a.example/live"), ("key", "k1")]);
        let options = map(&[("goaway_strategy", "break_before_make")]);
        let destination = enable(&current, &options, None, &mut ours).unwrap();
        assert_eq!(destination.server, "rtmp://a.example/live");
        assert_eq!(ours.string("key").as_deref(), Some("k1"));
        assert_eq!(ours.string("use_auth"), None, "no key of Custom's added");
        assert_eq!(
            ours.string("goaway_wrapped_type").as_deref(),
            Some(CUSTOM_ID)
        );
        assert_eq!(
            ours.string("goaway_strategy").as_deref(),
            Some("break_before_make")
        );
        // Options the user never set are written with their defaults.
        assert_eq!(ours.boolean("goaway_announce_reconnect"), Some(true));
        assert_eq!(
            disable(SERVICE_ID, &ours, &json_of(&ours)).unwrap(),
            Restore::Previous(current)
        );
    }

    #[test]
    fn listed_services_keep_their_keys_and_placeholders() {
        let json = r#"{"service":"Twitch","server":"auto","key":"x"}"#;
        let current = stored(LISTED_ID, json);
        let mut ours = map(&[("service", "Twitch"), ("server", "auto"), ("key", "x")]);
        let destination = enable(&current, &Map::default(), None, &mut ours).unwrap();
        assert_eq!(destination.server, "auto", "resolved at each connection");
        assert_eq!(ours.string("service").as_deref(), Some("Twitch"));
        assert_eq!(
            ours.string("goaway_wrapped_type").as_deref(),
            Some(LISTED_ID)
        );
        assert_eq!(ours.service("goaway_previous"), Some(current));
    }

    #[test]
    fn a_key_written_while_wrapped_is_kept_when_turned_off() {
        let current = stored(
            LISTED_ID,
            r#"{"service":"Twitch","server":"auto","key":"old"}"#,
        );
        let mut ours = map(&[("service", "Twitch"), ("server", "auto"), ("key", "old")]);
        enable(&current, &Map::default(), None, &mut ours).unwrap();
        // OBS's Twitch account integration writes the key into the current service.
        ours.set_string("key", "new");
        let Restore::Previous(restored) = disable(SERVICE_ID, &ours, &json_of(&ours)).unwrap()
        else {
            panic!("the wrapped service comes back")
        };
        assert_eq!(restored.id, LISTED_ID);
        let settings: Value = serde_json::from_str(&restored.settings_json).unwrap();
        assert_eq!(
            settings,
            serde_json::json!({"service": "Twitch", "server": "auto", "key": "new"})
        );
    }

    #[test]
    fn a_destination_edited_in_the_dialog_replaces_the_wrapped_one() {
        let current = stored(CUSTOM_ID, "{}");
        let mut ours = map(&[("server", "rtmp://a.example/app"), ("key", "k")]);
        let edited = Destination {
            server: "rtmps://b.example/app".into(),
            key: "k2".into(),
            username: Some("me".into()),
            password: Some("pw".into()),
        };
        assert_eq!(
            enable(&current, &Map::default(), Some(&edited), &mut ours).unwrap(),
            edited
        );
        assert_eq!(ours.boolean("use_auth"), Some(true));
        assert_eq!(Destination::read(&ours), edited);
    }

    #[test]
    fn other_services_and_repeats_are_refused() {
        let mut ours = Map::default();
        let empty = Map::default();
        for (id, error) in [
            (
                "whip_custom",
                ConversionError::Unsupported("whip_custom".into()),
            ),
            (SERVICE_ID, ConversionError::AlreadyOn),
            (CUSTOM_ID, ConversionError::NoServer),
        ] {
            assert_eq!(
                enable(&stored(id, "{}"), &empty, None, &mut ours),
                Err(error)
            );
        }
        assert_eq!(ours, Map::default(), "nothing written on failure");
        assert_eq!(
            disable(CUSTOM_ID, &empty, "{}"),
            Err(ConversionError::AlreadyOff)
        );
    }

    #[test]
    fn services_saved_before_wrapping_come_back_as_saved() {
        let previous = stored(
            LISTED_ID,
            r#"{"service":"Twitch","server":"auto","key":"x"}"#,
        );
        let mut ours = map(&[("server", "rtmp://resolved.example/app"), ("key", "x")]);
        ours.set_service("goaway_previous", &previous);
        assert_eq!(
            disable(SERVICE_ID, &ours, &json_of(&ours)).unwrap(),
            Restore::Previous(previous)
        );
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
        let Restore::Custom(destination) = disable(SERVICE_ID, &ours, &json_of(&ours)).unwrap()
        else {
            panic!("no previous service was stored")
        };
        let mut custom = Map::default();
        write_destination(&destination, &mut custom);
        assert_eq!(Destination::read(&custom), Destination::read(&ours));
    }

    #[test]
    fn wrapped_settings_drop_only_our_keys() {
        let json = r#"{"service":"Twitch","key":"k","goaway_strategy":"x","goaway_previous":{"type":"rtmp_common"}}"#;
        let settings: Value = serde_json::from_str(&wrapped_settings(json)).unwrap();
        assert_eq!(
            settings,
            serde_json::json!({"service": "Twitch", "key": "k"})
        );
        assert_eq!(wrapped_settings("not json"), "{}");
    }
}
