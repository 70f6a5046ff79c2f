//! Reading a server's refusal of `connect`: does it ask for authentication, and how?
//!
//! Servers put everything in the `description` of the `_error` info object, in Adobe's
//! format, e.g. `[ AccessManager.Reject ] : [ code=403 need auth; authmod=adobe ] : `.
//! Like librtmp and FFmpeg, only the markers are looked for, not the exact layout.

use super::{AuthError, AuthMethod};

/// What an authentication refusal asks of the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Demand<'a> {
    /// `code=403 need auth`: say who you are (`?authmod=...&user=...`).
    Identify,
    /// `?reason=needauth&...`: answer this challenge; the query parameters follow.
    Challenge(&'a str),
    /// `?reason=authfailed` (llnw: `authfail`): the answer was wrong.
    WrongPassword,
    /// `?reason=nosuchuser`.
    NoSuchUser,
    /// An authentication refusal with none of the above.
    Unknown,
}

/// Parses a refusal: `None` if it is not about authentication (no `authmod=`), an error if
/// it names a scheme this crate does not speak.
pub(crate) fn parse(description: &str) -> Option<Result<(AuthMethod, Demand<'_>), AuthError>> {
    let (_, rest) = description.split_once("authmod=")?;
    let name: String = rest
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    let method = match name.parse::<AuthMethod>() {
        Ok(method) => method,
        Err(error) => return Some(Err(error)),
    };
    let demand = if let Some((_, params)) = description.split_once("?reason=needauth") {
        Demand::Challenge(params.trim_end())
    } else if description.contains("?reason=authfail") {
        Demand::WrongPassword
    } else if description.contains("?reason=nosuchuser") {
        Demand::NoSuchUser
    } else if description.contains("need auth") {
        Demand::Identify
    } else {
        Demand::Unknown
    };
    Some(Ok((method, demand)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_adobe_media_server_refusals() {
        let cases = [
            (
                "[ AccessManager.Reject ] : [ code=403 need auth; authmod=adobe ] : ",
                AuthMethod::Adobe,
                Demand::Identify,
            ),
            (
                "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=needauth&user=obs&salt=S&challenge=C&opaque=O",
                AuthMethod::Adobe,
                Demand::Challenge("&user=obs&salt=S&challenge=C&opaque=O"),
            ),
            (
                "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=authfailed&opaque=O",
                AuthMethod::Adobe,
                Demand::WrongPassword,
            ),
            (
                "[ AccessManager.Reject ] : [ authmod=llnw ] : ?reason=authfail",
                AuthMethod::Llnw,
                Demand::WrongPassword,
            ),
            (
                "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=nosuchuser",
                AuthMethod::Adobe,
                Demand::NoSuchUser,
            ),
            (
                "authmod=llnw: go away",
                AuthMethod::Llnw,
                Demand::Unknown,
            ),
        ];
        for (description, method, demand) in cases {
            assert_eq!(
                parse(description),
                Some(Ok((method, demand))),
                "{description}"
            );
        }
    }

    #[test]
    fn other_refusals_are_not_about_authentication() {
        assert_eq!(parse("Connection rejected: unknown application"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn unknown_schemes_are_named() {
        assert_eq!(
            parse("[ AccessManager.Reject ] : [ code=403 need auth; authmod=kerberos ] : "),
            Some(Err(AuthError::UnsupportedMethod("kerberos".into())))
        );
    }
}
