//! The ingest's side: refuse `connect` until the publisher proves its password.

use std::collections::VecDeque;

use thiserror::Error;

use super::{digest, query_param, AuthMethod, Credentials};

/// Random bytes [`ServerAuth::check`] needs per call: three 6-byte tokens (salt, challenge
/// and opaque for adobe; a nonce for llnw).
pub const SERVER_RANDOM_LEN: usize = 18;

/// Challenges awaiting their answer, oldest dropped first: an answer comes on the
/// publisher's very next connection, so a few per concurrent publisher suffice.
const PENDING_LIMIT: usize = 64;

/// The verdict on one `connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accept: `user` proved the password.
    Accept {
        /// Who connected.
        user: String,
    },
    /// Refuse with `_error` `NetConnection.Connect.Rejected` carrying `description`, then
    /// close the connection.
    Refuse {
        /// The info object's description: what the publisher's authentication reads.
        description: String,
        /// Why, for the server's log.
        reason: Refusal,
    },
}

/// Why a `connect` was refused (a challenge is a refusal too: the answer comes on a new
/// connection).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// No `authmod` of ours or no user: asked for them.
    #[error("no authmod={0} credentials; asked for them")]
    Unidentified(AuthMethod),
    /// A challenge was sent.
    #[error("challenge sent to user \"{0}\"")]
    Challenged(String),
    /// An unknown user.
    #[error("no user \"{0}\"")]
    NoSuchUser(String),
    /// The answer did not match.
    #[error("wrong password for user \"{0}\"")]
    WrongPassword(String),
    /// An answer to a challenge this server did not send, or already used (a replay).
    #[error("user \"{0}\" answered an unknown or used challenge")]
    UnknownChallenge(String),
}

/// An issued challenge.
#[derive(Debug)]
struct Pending {
    user: String,
    /// adobe: the opaque value, llnw: the nonce; the answer names it.
    token: String,
    /// adobe only (empty for llnw).
    salt: String,
}

/// Publisher authentication for an ingest: the users it knows and the challenges it sent,
/// shared by all its connections (the answer to a challenge arrives on a new one).
#[derive(Debug)]
pub struct ServerAuth {
    method: AuthMethod,
    users: Vec<Credentials>,
    pending: VecDeque<Pending>,
}

impl ServerAuth {
    /// Accepts `users`, asking for `method`.
    pub fn new(method: AuthMethod, users: Vec<Credentials>) -> Self {
        Self {
            method,
            users,
            pending: VecDeque::new(),
        }
    }

    /// The scheme asked for.
    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// Decides a `connect` to `app` (without its query) that carried `query`; `random` seeds
    /// a new challenge if one is needed.
    pub fn check(
        &mut self,
        app: &str,
        query: Option<&str>,
        random: &[u8; SERVER_RANDOM_LEN],
    ) -> Verdict {
        let method = self.method;
        let query = query.unwrap_or_default();
        let user = query_param(query, "user")
            .filter(|_| query_param(query, "authmod") == Some(method.as_str()));
        let Some(user) = user else {
            return Verdict::Refuse {
                description: format!(
                    "[ AccessManager.Reject ] : [ code=403 need auth; authmod={method} ] : "
                ),
                reason: Refusal::Unidentified(method),
            };
        };
        let Some(password) = self
            .users
            .iter()
            .find(|c| c.username == user)
            .map(|c| c.password().to_owned())
        else {
            return self.refuse("nosuchuser", Refusal::NoSuchUser(user.to_owned()));
        };
        match query_param(query, "response") {
            None => self.challenge(user, random),
            Some(response) => self.verify(app, query, user, &password, response),
        }
    }

    fn refuse(&self, reason: &str, refusal: Refusal) -> Verdict {
        Verdict::Refuse {
            description: format!(
                "[ AccessManager.Reject ] : [ authmod={} ] : ?reason={reason}",
                self.method
            ),
            reason: refusal,
        }
    }

    fn challenge(&mut self, user: &str, random: &[u8; SERVER_RANDOM_LEN]) -> Verdict {
        let (salt, rest) = random.split_at(6);
        let (challenge, opaque) = rest.split_at(6);
        let (token, salt, params) = match self.method {
            AuthMethod::Adobe => {
                let (salt, challenge, opaque) = (
                    digest::token(salt),
                    digest::token(challenge),
                    digest::token(opaque),
                );
                let params = format!("&salt={salt}&challenge={challenge}&opaque={opaque}");
                (opaque, salt, params)
            }
            AuthMethod::Llnw => {
                let nonce = digest::token(random);
                let params = format!("&nonce={nonce}");
                (nonce, String::new(), params)
            }
        };
        if self.pending.len() >= PENDING_LIMIT {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending {
            user: user.to_owned(),
            token,
            salt,
        });
        Verdict::Refuse {
            description: format!(
                "[ AccessManager.Reject ] : [ authmod={} ] : ?reason=needauth&user={user}{params}",
                self.method
            ),
            reason: Refusal::Challenged(user.to_owned()),
        }
    }

    fn verify(
        &mut self,
        app: &str,
        query: &str,
        user: &str,
        password: &str,
        response: &str,
    ) -> Verdict {
        let token_name = match self.method {
            AuthMethod::Adobe => "opaque",
            AuthMethod::Llnw => "nonce",
        };
        let token = query_param(query, token_name).unwrap_or_default();
        let index = self
            .pending
            .iter()
            .position(|p| p.token == token && p.user == user);
        // Each challenge is answered once: a replayed answer finds nothing.
        let Some(pending) = index.and_then(|i| self.pending.remove(i)) else {
            return self.refuse("authfailed", Refusal::UnknownChallenge(user.to_owned()));
        };
        let theirs = query_param(query, "challenge").unwrap_or_default();
        let expected = match self.method {
            AuthMethod::Adobe => digest::adobe(user, &pending.salt, password, token, theirs),
            AuthMethod::Llnw if query_param(query, "nc") == Some(digest::LLNW_NC) => {
                let cnonce = query_param(query, "cnonce").unwrap_or_default();
                digest::llnw(user, password, app, token, cnonce)
            }
            AuthMethod::Llnw => String::new(),
        };
        if digest::same_answer(response, &expected) {
            Verdict::Accept {
                user: user.to_owned(),
            }
        } else {
            self.refuse("authfailed", Refusal::WrongPassword(user.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::auth::{after_refusal, AuthError, ClientAuth};

    const RANDOM: [u8; SERVER_RANDOM_LEN] = [7; SERVER_RANDOM_LEN];

    fn server(method: AuthMethod) -> ServerAuth {
        ServerAuth::new(method, vec![Credentials::new("obs", "s3cret!")])
    }

    fn description(verdict: &Verdict) -> &str {
        match verdict {
            Verdict::Refuse { description, .. } => description,
            Verdict::Accept { .. } => panic!("accepted"),
        }
    }

    /// Runs the publisher's side against the server's until one accepts or fails.
    fn exchange(server: &mut ServerAuth, password: &str, app: &str) -> Result<String, AuthError> {
        let mut auth = ClientAuth::new(Credentials::new("obs", password));
        for _ in 0..4 {
            let query = auth.query();
            match server.check(app, Some(&query), &RANDOM) {
                Verdict::Accept { user } => return Ok(user),
                Verdict::Refuse { description, .. } => {
                    auth = after_refusal(Some(&auth), &description, app, [1, 2, 3, 4])
                        .expect("an authentication refusal")?;
                }
            }
        }
        panic!("no verdict after four connections");
    }

    #[test]
    fn the_publisher_passes_each_scheme_with_the_right_password_only() {
        for method in [AuthMethod::Adobe, AuthMethod::Llnw] {
            for app in ["live", "app/instance"] {
                let mut server = server(method);
                assert_eq!(exchange(&mut server, "s3cret!", app), Ok("obs".into()));
                assert_eq!(
                    exchange(&mut server, "guess", app),
                    Err(AuthError::WrongPassword("obs".into())),
                    "{method} {app}"
                );
            }
        }
    }

    #[test]
    fn asks_for_credentials_then_challenges() {
        let mut server = server(AuthMethod::Adobe);
        let verdict = server.check("live", None, &RANDOM);
        assert_eq!(
            description(&verdict),
            "[ AccessManager.Reject ] : [ code=403 need auth; authmod=adobe ] : "
        );
        let verdict = server.check("live", Some("authmod=adobe&user=obs"), &RANDOM);
        assert_eq!(
            description(&verdict),
            "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=needauth&user=obs&salt=BwcHBwcH&challenge=BwcHBwcH&opaque=BwcHBwcH"
        );
        let verdict = server.check("live", Some("authmod=adobe&user=eve"), &RANDOM);
        assert_eq!(
            verdict,
            Verdict::Refuse {
                description: "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=nosuchuser"
                    .into(),
                reason: Refusal::NoSuchUser("eve".into()),
            }
        );
    }

    #[test]
    fn an_answer_counts_once() {
        let mut server = server(AuthMethod::Adobe);
        server.check("live", Some("authmod=adobe&user=obs"), &RANDOM);
        let opaque = "BwcHBwcH";
        let response = digest::adobe("obs", "BwcHBwcH", "s3cret!", opaque, "0a1b2c3d");
        let answer = format!(
            "authmod=adobe&user=obs&challenge=0a1b2c3d&response={response}&opaque={opaque}"
        );
        assert_eq!(
            server.check("live", Some(&answer), &RANDOM),
            Verdict::Accept { user: "obs".into() }
        );
        assert!(matches!(
            server.check("live", Some(&answer), &RANDOM),
            Verdict::Refuse {
                reason: Refusal::UnknownChallenge(_),
                ..
            }
        ));
    }

    #[test]
    fn old_challenges_are_forgotten_beyond_the_limit() {
        let mut server = server(AuthMethod::Llnw);
        for _ in 0..PENDING_LIMIT + 10 {
            server.check("live", Some("authmod=llnw&user=obs"), &RANDOM);
        }
        assert_eq!(server.pending.len(), PENDING_LIMIT);
    }
}
