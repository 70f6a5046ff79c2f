//! Secrets out of text that is logged or shown: the stream key and the password become
//! placeholders, the way a URL is shown as `rtmp://host/app/<key>`.
//!
//! Servers echo what they were sent: nginx-rtmp's and others' `onStatus` and `_error`
//! descriptions name the stream (the key), and a Reconnect Request's tcUrl may carry it.
//! Every server string goes through [`Secrets::redact`] where it enters (the publisher), so
//! logs, errors, OBS's last error and the status the dialog shows never carry a secret.

/// What stands for the stream key.
pub const KEY: &str = "<key>";
/// What stands for the password.
pub const PASSWORD: &str = "<password>";

/// The secrets of one connection.
#[derive(Clone, Copy)]
pub struct Secrets<'a> {
    /// The stream key, query string included.
    pub key: &'a str,
    /// The password, if any.
    pub password: Option<&'a str>,
}

impl Secrets<'_> {
    /// `text` with the key (whole, and its stream name without the query string, which
    /// servers echo on its own) and the password replaced by placeholders.
    pub fn redact(&self, text: &str) -> String {
        let name = self.key.split('?').next().unwrap_or_default();
        // Longest first, in one pass over the original text: a placeholder is never
        // searched again (a key such as "key" would otherwise match inside "<key>").
        let mut secrets: Vec<(&str, &str)> = [(self.key, KEY), (name, KEY)]
            .into_iter()
            .chain(self.password.map(|password| (password, PASSWORD)))
            .filter(|(secret, _)| !secret.is_empty())
            .collect();
        secrets.sort_by_key(|(secret, _)| std::cmp::Reverse(secret.len()));
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            match secrets.iter().find(|(secret, _)| rest.starts_with(secret)) {
                Some((secret, placeholder)) => {
                    out.push_str(placeholder);
                    rest = &rest[secret.len()..];
                }
                None => {
                    out.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        out
    }
}

impl std::fmt::Debug for Secrets<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_its_stream_name_and_the_password_become_placeholders() {
        let secrets = Secrets {
            key: "live_123_abc?token=xyz",
            password: Some("hunter2"),
        };
        assert_eq!(
            secrets.redact("live_123_abc?token=xyz is now published"),
            "<key> is now published"
        );
        assert_eq!(
            secrets.redact("Already publishing: live_123_abc (user hunter2)"),
            "Already publishing: <key> (user <password>)"
        );
        assert_eq!(secrets.redact("nothing secret"), "nothing secret");
    }

    #[test]
    fn a_placeholder_is_not_redacted_again() {
        let secrets = Secrets {
            key: "key",
            password: None,
        };
        assert_eq!(secrets.redact("key and key?x, né"), "<key> and <key>?x, né");
    }

    #[test]
    fn empty_secrets_change_nothing() {
        let secrets = Secrets {
            key: "",
            password: Some(""),
        };
        assert_eq!(secrets.redact("text"), "text");
    }
}
