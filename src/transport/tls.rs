//! TLS for rtmps:// with rustls: the webpki root store, plus an optional CA file for
//! private ingests and tests. Each connection gets a fresh session (no resumption state is
//! shared between the old and new connection of a migration).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use thiserror::Error;

/// Why a TLS configuration could not be built.
#[derive(Debug, Error)]
pub enum TlsConfigError {
    /// A PEM file could not be read or held nothing usable.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn pem_error(path: &Path, reason: impl fmt::Display) -> TlsConfigError {
    TlsConfigError::Pem {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file; none is an error.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no certificates found"));
    }
    Ok(certs)
}

/// The webpki roots (Mozilla's list, built in).
fn webpki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

fn client_config_trusting(roots: RootCertStore) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Client configuration trusting the webpki roots and, if given, the CAs in `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = webpki_roots();
    if let Some(path) = ca_file {
        for cert in certificates(path)? {
            roots.add(cert)?;
        }
    }
    client_config_trusting(roots)
}

/// Where OBS's own RTMPS output (librtmp with mbedTLS) reads the CAs it trusts on Linux:
/// every certificate in every file of this directory.
pub const SYSTEM_CA_DIR: &str = "/etc/ssl/certs";

/// Client configuration trusting the webpki roots and every certificate found in the files
/// of `dir` (unreadable files and other PEM items skipped): with [`SYSTEM_CA_DIR`], what
/// OBS's own RTMPS output trusts on Linux, so a private or company CA the system trusts
/// works with lossless streaming as without it. A missing directory adds nothing.
pub fn client_config_with_dir(dir: &Path) -> Result<Arc<ClientConfig>, TlsConfigError> {
    client_config_trusting(roots_with_dir(dir))
}

/// The webpki roots and the parsable certificates in the files of `dir`.
fn roots_with_dir(dir: &Path) -> RootCertStore {
    let mut roots = webpki_roots();
    for file in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Ok(certs) = CertificateDer::pem_file_iter(file.path()) {
            roots.add_parsable_certificates(certs.flatten());
        }
    }
    roots
}

/// Server configuration for the reference ingest's rtmps:// listener.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let certs = certificates(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| pem_error(key_file, e))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_ca_files_are_named() {
        let err = client_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/ca.pem: "),
            "{err}"
        );
        let empty = tempfile::NamedTempFile::new().unwrap();
        let err = client_config(Some(empty.path())).unwrap_err();
        assert!(err.to_string().ends_with("no certificates found"), "{err}");
        assert!(client_config(None).is_ok());
    }

    #[test]
    fn a_directory_adds_the_certificates_in_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("test-ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("README"), "not a certificate").unwrap();
        std::fs::create_dir(dir.path().join("subdir")).unwrap();
        let webpki = webpki_roots().len();
        assert_eq!(roots_with_dir(dir.path()).len(), webpki + 1);
        assert_eq!(roots_with_dir(&dir.path().join("missing")).len(), webpki);
        assert!(client_config_with_dir(dir.path()).is_ok());
    }
}
