//! Publisher authentication inside `connect`, as Adobe Media Server (`authmod=adobe`) and
//! Limelight (`authmod=llnw`) define it and as librtmp (OBS) and FFmpeg speak it.
//!
//! The exchange lives in the query string appended to `connect`'s `app` and `tcUrl`, and it
//! spans connections, because a server that refuses `connect` closes the connection:
//!
//! ```text
//! connect app=live?authmod=adobe&user=U
//!     ← _error NetConnection.Connect.Rejected
//!       "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=needauth&user=U&salt=S&challenge=C&opaque=O"
//! (a new connection)
//! connect app=live?authmod=adobe&user=U&challenge=c&response=R&opaque=O
//!     ← _result NetConnection.Connect.Success
//! ```
//!
//! with `R = base64(md5(base64(md5(U + S + password)) + O + c))` and `c` the publisher's own
//! challenge; the password itself never crosses the wire. `llnw` is the same dance with an
//! HTTP-digest-like answer.
//!
//! [`ClientAuth`] is the publisher's progress through those connections and [`ServerAuth`]
//! the ingest's side. Both are pure: the randomness they need is an input.

mod client;
mod digest;
mod rejection;
mod server;

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

pub(crate) use client::after_refusal;
pub use client::ClientAuth;
pub use server::{Refusal, ServerAuth, Verdict, SERVER_RANDOM_LEN};

/// A username and password. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name, sent in clear in the `connect` query.
    pub username: String,
    password: String,
}

impl Credentials {
    /// Credentials for `username` with `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The password (a secret: never log it).
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<password>")
            .finish()
    }
}

/// The authentication schemes a server can ask for (`authmod=` in its refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Adobe Media Server's salted challenge-response (Wowza, many CDNs).
    Adobe,
    /// Limelight's HTTP-digest-like scheme.
    Llnw,
}

impl AuthMethod {
    /// The `authmod` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adobe => "adobe",
            Self::Llnw => "llnw",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuthMethod {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "adobe" => Ok(Self::Adobe),
            "llnw" => Ok(Self::Llnw),
            other => Err(AuthError::UnsupportedMethod(other.to_owned())),
        }
    }
}

/// Why authentication cannot succeed. None of these gets better by retrying.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// The server requires authentication and no username and password were given.
    #[error("the server requires a username and password (authmod={0})")]
    CredentialsRequired(AuthMethod),
    /// The server asks for a scheme this crate does not speak.
    #[error(
        "the server requires authentication method \"{0}\", which is not supported (adobe and llnw are)"
    )]
    UnsupportedMethod(String),
    /// `reason=authfailed`: the answer was wrong, so the password is.
    #[error("authentication failed: wrong password for user \"{0}\"")]
    WrongPassword(String),
    /// `reason=nosuchuser`.
    #[error("authentication failed: the server has no user \"{0}\"")]
    NoSuchUser(String),
    /// Anything else: the server went on refusing after the answer, or sent a challenge
    /// without what the answer needs.
    #[error("authentication failed: {0}")]
    Refused(String),
}

/// The value of `name` in a `a=b&c=d` query (no percent-decoding: the schemes compare the
/// raw text, as librtmp and FFmpeg send it).
pub(crate) fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .trim_start_matches('?')
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some((key, value)) if key == name => Some(value),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let shown = format!("{:?}", Credentials::new("obs", "s3cret!"));
        assert_eq!(
            shown,
            "Credentials { username: \"obs\", password: \"<password>\" }"
        );
    }

    #[test]
    fn query_params_are_found_by_exact_name() {
        let query = "?authmod=adobe&user=obs&challenge=0a1b&response=x=y";
        assert_eq!(query_param(query, "user"), Some("obs"));
        assert_eq!(query_param(query, "response"), Some("x=y"));
        assert_eq!(query_param(query, "challeng"), None);
        assert_eq!(query_param("", "user"), None);
    }
}
