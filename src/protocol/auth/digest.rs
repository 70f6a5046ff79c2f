//! The answers both schemes compute, byte for byte as librtmp and FFmpeg compute them.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use md5::{Digest, Md5};

/// llnw's fixed realm, method, quality of protection and nonce count (one answer per
/// nonce, as both reference clients send it).
const LLNW_REALM: &str = "live";
const LLNW_METHOD: &str = "publish";
const LLNW_QOP: &str = "auth";
pub(crate) const LLNW_NC: &str = "00000001";

fn md5(parts: &[&str]) -> [u8; 16] {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Adobe: `base64(md5(base64(md5(user + salt + password)) + opaque + client_challenge))`,
/// padded base64. `opaque` is the server's `opaque`, or its `challenge` when it sent no
/// opaque (what both reference clients do).
pub(crate) fn adobe(
    user: &str,
    salt: &str,
    password: &str,
    opaque: &str,
    client_challenge: &str,
) -> String {
    let salted = STANDARD.encode(md5(&[user, salt, password]));
    STANDARD.encode(md5(&[&salted, opaque, client_challenge]))
}

/// Limelight: RFC 2617 digest with realm `live`, method `publish` and the URI `/app`, where
/// an application without an instance gets Wowza's default instance `/_definst_`. `app` is
/// the application without any query.
pub(crate) fn llnw(user: &str, password: &str, app: &str, nonce: &str, cnonce: &str) -> String {
    let ha1 = hex(&md5(&[user, ":", LLNW_REALM, ":", password]));
    let instance = if app.contains('/') { "" } else { "/_definst_" };
    let ha2 = hex(&md5(&[LLNW_METHOD, ":/", app, instance]));
    hex(&md5(&[
        &ha1, ":", nonce, ":", LLNW_NC, ":", cnonce, ":", LLNW_QOP, ":", &ha2,
    ]))
}

/// Random bytes as the 8 lowercase hex digits FFmpeg uses for its own challenge and cnonce.
pub(crate) fn client_nonce(random: [u8; 4]) -> String {
    hex(&random)
}

/// A server-side token (salt, challenge, opaque, nonce): URL-safe base64 without padding,
/// so it never contains `&`, `=` or a space that would cut the query apart.
pub(crate) fn token(random: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
}

/// Compares two answers without an early exit on the first differing byte.
pub(crate) fn same_answer(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answers computed independently with Python's hashlib and base64:
    //   h1 = b64encode(md5(b"obs" b"Xy9zQw" b"s3cret!").digest())
    //   b64encode(md5(h1 + b"opq1Zz" + b"0a1b2c3d").digest())  (b"ch4llg" for the second)
    // and for llnw, with hexdigest():
    //   ha1 = md5(b"obs:live:s3cret!"), ha2 = md5(b"publish:/live/_definst_")
    //   md5(ha1 + b":nonce123:00000001:deadbeef:auth:" + ha2)

    #[test]
    fn adobe_answer_matches_the_known_vector() {
        assert_eq!(
            adobe("obs", "Xy9zQw", "s3cret!", "opq1Zz", "0a1b2c3d"),
            "Se1RvrK9WauLUX4F2KSVtw=="
        );
        assert_eq!(
            adobe("obs", "Xy9zQw", "s3cret!", "ch4llg", "0a1b2c3d"),
            "EzyaUMBovmvY9zDhH2zrJA=="
        );
    }

    #[test]
    fn llnw_answer_matches_the_known_vector() {
        assert_eq!(
            llnw("obs", "s3cret!", "live", "nonce123", "deadbeef"),
            "d1a552ccad2bb4068ced49bdf1581123"
        );
        assert_eq!(
            llnw("obs", "s3cret!", "app/inst", "nonce123", "deadbeef"),
            "1836f8e936e66893c0b138828cfec9a4",
            "an explicit instance is used as is"
        );
    }

    #[test]
    fn tokens_and_nonces_are_query_safe() {
        assert_eq!(client_nonce([0x0a, 0x1b, 0x2c, 0x3d]), "0a1b2c3d");
        let t = token(&[0xfb, 0xff, 0xbf, 0x00, 0x01, 0x02]);
        assert_eq!(t.len(), 8);
        assert!(!t.contains(['&', '=', ' ', '+', '/']), "{t}");
    }

    #[test]
    fn answers_compare_whole() {
        assert!(same_answer("abc", "abc"));
        assert!(!same_answer("abc", "abd"));
        assert!(!same_answer("abc", "ab"));
    }
}
