//! RTMP URLs: `rtmp[s]://[user:password@]host[:port]/app[/instance]/key[?query]`.
//!
//! The stream key and the password are secrets: [`RtmpUrl`]'s `Display` and `Debug` never
//! show them (the key's placeholder is [`redact::KEY`], the one server text gets too).

use std::fmt;

use percent_encoding::percent_decode_str;
use thiserror::Error;
use url::Url;

use crate::protocol::auth::Credentials;
use crate::protocol::redact;

/// Plain TCP or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `rtmp://`, default port 1935.
    Rtmp,
    /// `rtmps://`, default port 443.
    Rtmps,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Self::Rtmp => 1935,
            Self::Rtmps => 443,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Rtmp => "rtmp",
            Self::Rtmps => "rtmps",
        }
    }
}

/// Why a URL cannot be published to. Messages never contain the stream key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("invalid URL: {0}")]
    Syntax(String),
    /// A scheme other than rtmp or rtmps.
    #[error("unsupported scheme \"{0}\": use rtmp:// or rtmps://")]
    Scheme(String),
    /// No host name or address.
    #[error("URL has no host")]
    MissingHost,
    /// No application name in the path.
    #[error("URL has no application name (expected rtmp://host/app/key)")]
    MissingApp,
    /// No stream key in the path.
    #[error("URL has no stream key (expected rtmp://host/app/key)")]
    MissingKey,
    /// A reconnect target that would drop TLS.
    #[error("refusing to move an rtmps:// stream to plain rtmp://")]
    Downgrade,
}

/// A parsed publishing URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// rtmp or rtmps.
    pub scheme: Scheme,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port, defaulted from the scheme.
    pub port: u16,
    /// Whether the port was written in the URL (kept in tcUrl as written).
    explicit_port: bool,
    /// Application name, possibly with an instance (`app/instance`).
    pub app: String,
    /// Stream key including any query string.
    key: String,
    /// Username and password for servers that require authentication.
    credentials: Option<Credentials>,
}

impl RtmpUrl {
    /// Parses a full URL whose last path segment (plus query) is the stream key; a
    /// percent-encoded `user:password@` gives the credentials.
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        let url = parse_url(input)?;
        let path = url.path().trim_start_matches('/');
        let (app, key) = path.rsplit_once('/').ok_or(if path.is_empty() {
            UrlError::MissingApp
        } else {
            UrlError::MissingKey
        })?;
        let mut key = key.to_owned();
        if let Some(query) = url.query() {
            key.push('?');
            key.push_str(query);
        }
        // As in with_key: `rtmp://host/live//key` is application `live`.
        Self::from_parts(&url, app.trim_end_matches('/'), key)
    }

    /// Combines a server URL (`rtmp://host/app`, credentials as in [`RtmpUrl::parse`]) and a
    /// separate stream key, as OBS's service settings hold them.
    pub fn with_key(server: &str, key: &str) -> Result<Self, UrlError> {
        let url = parse_url(server)?;
        let app = url.path().trim_matches('/');
        Self::from_parts(&url, app, key.to_owned())
    }

    fn from_parts(url: &Url, app: &str, key: String) -> Result<Self, UrlError> {
        let scheme = match url.scheme() {
            "rtmp" => Scheme::Rtmp,
            "rtmps" => Scheme::Rtmps,
            other => return Err(UrlError::Scheme(other.to_owned())),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(UrlError::MissingHost)?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if app.is_empty() {
            return Err(UrlError::MissingApp);
        }
        if key.is_empty() || key.starts_with('?') {
            return Err(UrlError::MissingKey);
        }
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, password) => Some(Credentials::new(
                decode(user)?,
                decode(password.unwrap_or_default())?,
            )),
        };
        Ok(Self {
            scheme,
            host,
            port: url.port().unwrap_or_else(|| scheme.default_port()),
            explicit_port: url.port().is_some(),
            app: app.to_owned(),
            key,
            credentials,
        })
    }

    /// The stream key (a secret: never log it).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The username and password to authenticate with, if any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// This URL with `credentials` instead of its own.
    #[must_use]
    pub fn with_credentials(self, credentials: Option<Credentials>) -> Self {
        Self {
            credentials,
            ..self
        }
    }

    /// `scheme://host[:port]/app`, what `connect` carries as tcUrl.
    pub fn tc_url(&self) -> String {
        format!("{}/{}", self.origin(), self.app)
    }

    fn origin(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.explicit_port {
            format!("{}://{}:{}", self.scheme.as_str(), host, self.port)
        } else {
            format!("{}://{}", self.scheme.as_str(), host)
        }
    }

    /// Resolves an Enhanced RTMP reconnect `tcUrl` (absolute, `//host/app` or `/app`)
    /// against this URL; the stream key stays the same.
    ///
    /// The credentials stay the same too, even on another host (any user info in the
    /// reference is ignored). They follow the stream key, which the target gets anyway: the
    /// server that redirects is the one the stream was entrusted to, and an ingest cluster
    /// that requires authentication needs it on every member. The password itself never
    /// crosses the wire (only a salted hash answer), and moving rtmps to plain rtmp is
    /// refused.
    pub fn resolve_reconnect(&self, reference: &str) -> Result<Self, UrlError> {
        let base = parse_url(&self.tc_url())?;
        let target = base
            .join(reference)
            .map_err(|e| UrlError::Syntax(e.to_string()))?;
        let resolved =
            Self::with_key(target.as_str(), &self.key)?.with_credentials(self.credentials.clone());
        if self.scheme == Scheme::Rtmps && resolved.scheme == Scheme::Rtmp {
            return Err(UrlError::Downgrade);
        }
        Ok(resolved)
    }
}

/// Percent-decodes URL user info.
fn decode(text: &str) -> Result<String, UrlError> {
    percent_decode_str(text)
        .decode_utf8()
        .map(String::from)
        .map_err(|_| UrlError::Syntax("the user name or password is not valid UTF-8".into()))
}

fn parse_url(input: &str) -> Result<Url, UrlError> {
    Url::parse(input.trim()).map_err(|e| match e {
        url::ParseError::EmptyHost => UrlError::MissingHost,
        url::ParseError::RelativeUrlWithoutBase => {
            UrlError::Syntax("not an absolute URL (expected rtmp://host/app/key)".into())
        }
        other => UrlError::Syntax(other.to_string()),
    })
}

impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tc_url(), redact::KEY)
    }
}

impl fmt::Debug for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RtmpUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_app_instance_key_and_query() {
        let url = RtmpUrl::parse("rtmp://live.example.com/app/inst/abc-123?s_bl=1&a=b").unwrap();
        assert_eq!(url.scheme, Scheme::Rtmp);
        assert_eq!(url.host, "live.example.com");
        assert_eq!(url.port, 1935);
        assert_eq!(url.app, "app/inst");
        assert_eq!(url.key(), "abc-123?s_bl=1&a=b");
        assert_eq!(url.tc_url(), "rtmp://live.example.com/app/inst");
    }

    #[test]
    fn default_and_explicit_ports() {
        assert_eq!(RtmpUrl::parse("rtmps://h/app/k").unwrap().port, 443);
        let url = RtmpUrl::parse("rtmps://h:4443/app/k").unwrap();
        assert_eq!(url.port, 4443);
        assert_eq!(url.tc_url(), "rtmps://h:4443/app");
    }

    #[test]
    fn ipv4_and_ipv6_literals() {
        assert_eq!(
            RtmpUrl::parse("rtmp://127.0.0.1:1936/live/k").unwrap().host,
            "127.0.0.1"
        );
        let v6 = RtmpUrl::parse("rtmp://[::1]:1937/live/k").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.tc_url(), "rtmp://[::1]:1937/live");
    }

    #[test]
    fn server_and_key_given_apart() {
        let url = RtmpUrl::with_key("rtmp://h/live/", "secret?x=1").unwrap();
        assert_eq!((url.app.as_str(), url.key()), ("live", "secret?x=1"));
    }

    #[test]
    fn an_empty_path_segment_before_the_key_is_not_part_of_the_app() {
        // Found by the url fuzz target: parse kept `live/` where with_key, given the same
        // server, gives `live`, so tcUrl did not round-trip.
        let url = RtmpUrl::parse("rtmp://h/live//key").unwrap();
        assert_eq!((url.app.as_str(), url.key()), ("live", "key"));
        assert_eq!(url.tc_url(), "rtmp://h/live");
    }

    #[test]
    fn bad_urls_get_clear_errors() {
        let cases = [
            (
                "http://h/app/key",
                "unsupported scheme \"http\": use rtmp:// or rtmps://",
            ),
            (
                "rtmp://h/key",
                "URL has no stream key (expected rtmp://host/app/key)",
            ),
            (
                "rtmp://h/app/",
                "URL has no stream key (expected rtmp://host/app/key)",
            ),
            (
                "rtmp://h",
                "URL has no application name (expected rtmp://host/app/key)",
            ),
            ("rtmp:///app/key", "URL has no host"),
            (
                "live/key",
                "invalid URL: not an absolute URL (expected rtmp://host/app/key)",
            ),
            ("rtmp://h:99999/app/key", "invalid URL: invalid port number"),
        ];
        for (input, message) in cases {
            assert_eq!(
                RtmpUrl::parse(input).unwrap_err().to_string(),
                message,
                "{input}"
            );
        }
    }

    #[test]
    fn display_never_shows_the_key() {
        let url = RtmpUrl::parse("rtmp://h/app/supersecret?token=abc").unwrap();
        let shown = format!("{url} {url:?}");
        assert!(
            !shown.contains("supersecret") && !shown.contains("abc"),
            "{shown}"
        );
        assert_eq!(url.to_string(), "rtmp://h/app/<key>");
    }

    #[test]
    fn user_info_gives_the_credentials_and_is_never_shown() {
        let url = RtmpUrl::parse("rtmp://obs:s3cret%21%40%3A@h:1936/live/k").unwrap();
        let credentials = url.credentials().unwrap();
        assert_eq!(
            (credentials.username.as_str(), credentials.password()),
            ("obs", "s3cret!@:")
        );
        assert_eq!(url.tc_url(), "rtmp://h:1936/live");
        let shown = format!("{url} {url:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("obs"),
            "{shown}"
        );
        let user_only = RtmpUrl::with_key("rtmp://obs@h/live", "k").unwrap();
        assert_eq!(user_only.credentials().unwrap().password(), "");
        assert_eq!(
            RtmpUrl::parse("rtmp://h/live/k").unwrap().credentials(),
            None
        );
    }

    #[test]
    fn credentials_follow_every_redirect() {
        let url = RtmpUrl::parse("rtmp://obs:pw@a.example/live/k").unwrap();
        for reference in [
            "/live2",
            "//b.example/live",
            "rtmp://eve:other@c.example/app",
        ] {
            let target = url.resolve_reconnect(reference).unwrap();
            assert_eq!(target.credentials(), url.credentials(), "{reference}");
        }
    }

    #[test]
    fn reconnect_targets_resolve_relative_to_the_tc_url() {
        let url = RtmpUrl::parse("rtmps://a.example:443/live/k?q=1").unwrap();
        let same_host = url.resolve_reconnect("/live2").unwrap();
        assert_eq!(same_host.tc_url(), "rtmps://a.example:443/live2");
        assert_eq!(same_host.key(), "k?q=1");
        let other_host = url.resolve_reconnect("//b.example/live").unwrap();
        assert_eq!(other_host.tc_url(), "rtmps://b.example/live");
        let absolute = url.resolve_reconnect("rtmps://c.example:8443/app").unwrap();
        assert_eq!((absolute.host.as_str(), absolute.port), ("c.example", 8443));
        assert_eq!(
            url.resolve_reconnect("rtmp://d.example/live"),
            Err(UrlError::Downgrade)
        );
        let plain = RtmpUrl::parse("rtmp://a/live/k").unwrap();
        assert_eq!(
            plain.resolve_reconnect("rtmps://b/live").unwrap().scheme,
            Scheme::Rtmps
        );
    }
}
