//! The publisher's side: what to append to `connect`, and what a refusal means.

use super::rejection::{self, Demand};
use super::{digest, query_param, AuthError, AuthMethod, Credentials};

/// A publisher's progress through authentication, carried from one connection to the next
/// (every refusal ends its connection, so each step is a new `connect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    credentials: Credentials,
    method: AuthMethod,
    stage: Stage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// Naming the user so that the server answers with its challenge. `switched`: the
    /// server already made us change the method once (it may not bounce us forever).
    Identify { switched: bool },
    /// Answering a challenge: the whole query of the next `connect`.
    Answer(String),
}

impl ClientAuth {
    /// Starts with Adobe's scheme and names the user at once, so the first refusal already
    /// carries the challenge: one connection fewer than librtmp, which first connects
    /// without credentials to learn that the server wants them.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            method: AuthMethod::Adobe,
            stage: Stage::Identify { switched: false },
        }
    }

    /// The query to append to `connect`'s `app` and `tcUrl`, starting with `?`.
    pub fn query(&self) -> String {
        match &self.stage {
            Stage::Identify { .. } => {
                format!(
                    "?authmod={}&user={}",
                    self.method, self.credentials.username
                )
            }
            Stage::Answer(query) => query.clone(),
        }
    }

    /// The username and password (a secret: never log it).
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The scheme in use.
    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// The next step after a refusal of `method` asking `demand`.
    fn next(
        &self,
        method: AuthMethod,
        demand: Demand<'_>,
        app: &str,
        nonce: [u8; 4],
    ) -> Result<Self, AuthError> {
        let user = &self.credentials.username;
        match (demand, &self.stage) {
            (Demand::WrongPassword, _) => Err(AuthError::WrongPassword(user.clone())),
            (Demand::NoSuchUser, _) => Err(AuthError::NoSuchUser(user.clone())),
            (Demand::Identify, Stage::Identify { switched: false }) if method != self.method => {
                Ok(Self {
                    method,
                    stage: Stage::Identify { switched: true },
                    ..self.clone()
                })
            }
            (Demand::Identify, _) => Err(AuthError::Refused(format!(
                "the server did not take user \"{user}\" (authmod={method})"
            ))),
            (Demand::Challenge(params), Stage::Identify { .. }) => {
                self.answer(method, params, app, nonce)
            }
            (Demand::Challenge(_), Stage::Answer(_)) => Err(AuthError::Refused(
                "the server sent a new challenge instead of accepting the answer".into(),
            )),
            (Demand::Unknown, _) => Err(AuthError::Refused(format!(
                "the server refused authmod={method} without a reason"
            ))),
        }
    }

    /// Answers a challenge whose parameters (`&user=..&salt=..`) are `params`.
    fn answer(
        &self,
        method: AuthMethod,
        params: &str,
        app: &str,
        nonce: [u8; 4],
    ) -> Result<Self, AuthError> {
        let missing = |name: &str| {
            AuthError::Refused(format!(
                "the server's authmod={method} challenge has no {name}"
            ))
        };
        // The server's spelling of the user is the one it hashes with.
        let user = query_param(params, "user").unwrap_or(&self.credentials.username);
        let password = self.credentials.password();
        let mine = digest::client_nonce(nonce);
        let query = match method {
            AuthMethod::Adobe => {
                let salt = query_param(params, "salt").ok_or_else(|| missing("salt"))?;
                let opaque = query_param(params, "opaque");
                let challenge = query_param(params, "challenge");
                let seed = opaque.or(challenge).unwrap_or_default();
                let response = digest::adobe(user, salt, password, seed, &mine);
                let mut query =
                    format!("?authmod=adobe&user={user}&challenge={mine}&response={response}");
                if let Some(opaque) = opaque {
                    query.push_str("&opaque=");
                    query.push_str(opaque);
                }
                query
            }
            AuthMethod::Llnw => {
                let server_nonce = query_param(params, "nonce").ok_or_else(|| missing("nonce"))?;
                let response = digest::llnw(user, password, app, server_nonce, &mine);
                format!(
                    "?authmod=llnw&user={user}&nonce={server_nonce}&cnonce={mine}&nc={}&response={response}",
                    digest::LLNW_NC
                )
            }
        };
        Ok(Self {
            method,
            stage: Stage::Answer(query),
            ..self.clone()
        })
    }
}

/// What a refused `connect` on `app` means for a publisher with `auth` (or without):
/// `None` if the refusal is not about authentication; otherwise the authentication to
/// connect again with, or why that is pointless. `nonce` is fresh randomness for the
/// publisher's own challenge.
pub(crate) fn after_refusal(
    auth: Option<&ClientAuth>,
    description: &str,
    app: &str,
    nonce: [u8; 4],
) -> Option<Result<ClientAuth, AuthError>> {
    let parsed = rejection::parse(description)?;
    Some(parsed.and_then(|(method, demand)| {
        auth.ok_or(AuthError::CredentialsRequired(method))?
            .next(method, demand, app, nonce)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: [u8; 4] = [0x0a, 0x1b, 0x2c, 0x3d];

    fn obs() -> ClientAuth {
        ClientAuth::new(Credentials::new("obs", "s3cret!"))
    }

    fn refuse(auth: Option<&ClientAuth>, description: &str) -> Result<ClientAuth, AuthError> {
        after_refusal(auth, description, "live", NONCE).expect("about authentication")
    }

    #[test]
    fn names_the_user_then_answers_the_adobe_challenge() {
        let auth = obs();
        assert_eq!(auth.query(), "?authmod=adobe&user=obs");
        let answered = refuse(
            Some(&auth),
            "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=needauth&user=obs&salt=Xy9zQw&challenge=ch4llg&opaque=opq1Zz",
        )
        .unwrap();
        // The response is the known-answer vector of digest::adobe.
        assert_eq!(
            answered.query(),
            "?authmod=adobe&user=obs&challenge=0a1b2c3d&response=Se1RvrK9WauLUX4F2KSVtw==&opaque=opq1Zz"
        );
    }

    #[test]
    fn without_opaque_the_servers_challenge_seeds_the_answer() {
        let answered = refuse(
            Some(&obs()),
            "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=needauth&user=obs&salt=Xy9zQw&challenge=ch4llg",
        )
        .unwrap();
        assert_eq!(
            answered.query(),
            "?authmod=adobe&user=obs&challenge=0a1b2c3d&response=EzyaUMBovmvY9zDhH2zrJA=="
        );
    }

    #[test]
    fn switches_to_llnw_once_when_the_server_wants_it() {
        let switched = refuse(
            Some(&obs()),
            "[ AccessManager.Reject ] : [ code=403 need auth; authmod=llnw ] : ",
        )
        .unwrap();
        assert_eq!(switched.query(), "?authmod=llnw&user=obs");
        let answered = after_refusal(
            Some(&switched),
            "[ AccessManager.Reject ] : [ authmod=llnw ] : ?reason=needauth&user=obs&nonce=nonce123",
            "live",
            [0xde, 0xad, 0xbe, 0xef],
        )
        .unwrap()
        .unwrap();
        // The response is the known-answer vector of digest::llnw.
        assert_eq!(
            answered.query(),
            "?authmod=llnw&user=obs&nonce=nonce123&cnonce=deadbeef&nc=00000001&response=d1a552ccad2bb4068ced49bdf1581123"
        );
        assert_eq!(answered.method(), AuthMethod::Llnw);
        // Asked to switch back: the server bounces the publisher; stop there.
        assert!(matches!(
            refuse(
                Some(&switched),
                "[ AccessManager.Reject ] : [ code=403 need auth; authmod=adobe ] : "
            ),
            Err(AuthError::Refused(_))
        ));
    }

    #[test]
    fn every_dead_end_is_a_specific_error() {
        let answered = refuse(
            Some(&obs()),
            "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=needauth&user=obs&salt=s&challenge=c&opaque=o",
        )
        .unwrap();
        let cases = [
            (
                None,
                "[ AccessManager.Reject ] : [ code=403 need auth; authmod=adobe ] : ",
                "the server requires a username and password (authmod=adobe)",
            ),
            (
                Some(&answered),
                "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=authfailed&opaque=o",
                "authentication failed: wrong password for user \"obs\"",
            ),
            (
                Some(&answered),
                "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=nosuchuser",
                "authentication failed: the server has no user \"obs\"",
            ),
            (
                Some(&answered),
                "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=needauth&user=obs&salt=s&challenge=c2&opaque=o2",
                "authentication failed: the server sent a new challenge instead of accepting the answer",
            ),
            (
                Some(&answered),
                "[ AccessManager.Reject ] : [ code=403 need auth; authmod=adobe ] : ",
                "authentication failed: the server did not take user \"obs\" (authmod=adobe)",
            ),
            (
                Some(&answered),
                "[ AccessManager.Reject ] : [ code=403 need auth; authmod=digest ] : ",
                "the server requires authentication method \"digest\", which is not supported (adobe and llnw are)",
            ),
            (
                Some(&obs()),
                "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=needauth&user=obs&challenge=c",
                "authentication failed: the server's authmod=adobe challenge has no salt",
            ),
        ];
        for (auth, description, message) in cases {
            assert_eq!(
                refuse(auth, description).unwrap_err().to_string(),
                message,
                "{description}"
            );
        }
    }

    #[test]
    fn refusals_without_authmod_are_left_to_the_caller() {
        assert_eq!(
            after_refusal(Some(&obs()), "Unknown application", "live", NONCE),
            None
        );
    }
}
