//! HTTPS served by the ground itself: a certificate chain and its private key, read from PEM
//! files into a rustls server configuration (ring as the crypto provider; HTTP/1.1 only, the
//! protocol the server loop speaks).
//!
//! Every failure names the file it comes from: a file that cannot be read, holds no certificate
//! or no private key, is not PEM, or a key that is not the certificate's.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A PEM file larger than this is refused before it is parsed: a certificate chain or a key is
/// a few kilobytes.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// The ground's TLS server configuration, made by [`TlsConfig::from_pem_files`]: serve with it
/// through [`crate::serve_tls`].
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

/// Why the certificate or the key could not be used; the message names the file.
#[derive(Debug)]
pub struct TlsError {
    kind: TlsErrorKind,
    path: PathBuf,
    detail: String,
}

/// What was wrong with a TLS file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The file could not be read (missing, unreadable, too large).
    Unreadable,
    /// The file is not PEM, or holds no item of the kind asked for.
    NotPem,
    /// The key file's key is not the one the certificate names (or rustls refused the pair).
    Mismatch,
}

impl TlsError {
    /// What was wrong.
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }

    /// The file at fault.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.detail)
    }
}

impl std::error::Error for TlsError {}

impl TlsConfig {
    /// Reads the certificate chain (`cert`: PEM, the server's certificate first, then any
    /// intermediates) and its private key (`key`: PEM, PKCS#8, PKCS#1 or SEC1), and checks that
    /// the key is the certificate's.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsConfig, TlsError> {
        let cert_pem = read_pem(cert, "certificate")?;
        let key_pem = read_pem(key, "private key")?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| not_pem(cert, format!("not a PEM certificate file ({e})")))?;
        if chain.is_empty() {
            return Err(not_pem(
                cert,
                "holds no certificate (no \"-----BEGIN CERTIFICATE-----\" block)".to_string(),
            ));
        }
        let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => not_pem(
                key,
                "holds no private key (no \"-----BEGIN PRIVATE KEY-----\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" block)".to_string(),
            ),
            e => not_pem(key, format!("not a PEM private key file ({e})")),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| mismatch(key, cert, &e))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| mismatch(key, cert, &e))?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            server: Arc::new(server),
        })
    }

    pub(crate) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    let unreadable = |detail: String| TlsError {
        kind: TlsErrorKind::Unreadable,
        path: path.to_path_buf(),
        detail,
    };
    let meta = std::fs::metadata(path)
        .map_err(|e| unreadable(format!("cannot read the TLS {what}: {e}")))?;
    if meta.len() > MAX_PEM_BYTES {
        return Err(unreadable(format!(
            "the TLS {what} file is {} bytes, more than the {MAX_PEM_BYTES} a PEM file may have",
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| unreadable(format!("cannot read the TLS {what}: {e}")))
}

fn not_pem(path: &Path, detail: String) -> TlsError {
    TlsError {
        kind: TlsErrorKind::NotPem,
        path: path.to_path_buf(),
        detail,
    }
}

fn mismatch(key: &Path, cert: &Path, e: &rustls::Error) -> TlsError {
    let detail = match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "this private key is not the key of the certificate in {}",
            cert.display()
        ),
        e => format!(
            "this private key cannot serve the certificate in {}: {e}",
            cert.display()
        ),
    };
    TlsError {
        kind: TlsErrorKind::Mismatch,
        path: key.to_path_buf(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn a_certificate_and_its_key_make_a_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair();
        let c = write(dir.path(), "cert.pem", &cert);
        let k = write(dir.path(), "key.pem", &key);
        let tls = TlsConfig::from_pem_files(&c, &k).unwrap();
        assert_eq!(
            tls.server_config().alpn_protocols,
            vec![b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn each_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair();
        let (_, other_key) = pair();
        let c = write(dir.path(), "cert.pem", &cert);
        let k = write(dir.path(), "key.pem", &key);
        let other = write(dir.path(), "other-key.pem", &other_key);
        let garbage = write(dir.path(), "garbage.pem", "not a pem file\n");
        let missing = dir.path().join("missing.pem");

        let e = TlsConfig::from_pem_files(&missing, &k).unwrap_err();
        assert_eq!((e.kind(), e.path()), (TlsErrorKind::Unreadable, &*missing));
        assert!(
            e.to_string()
                .contains("missing.pem: cannot read the TLS certificate")
        );

        let e = TlsConfig::from_pem_files(&c, &missing).unwrap_err();
        assert_eq!((e.kind(), e.path()), (TlsErrorKind::Unreadable, &*missing));
        assert!(e.to_string().contains("private key"), "{e}");

        let e = TlsConfig::from_pem_files(&garbage, &k).unwrap_err();
        assert_eq!((e.kind(), e.path()), (TlsErrorKind::NotPem, &*garbage));
        assert!(e.to_string().contains("holds no certificate"), "{e}");

        // A certificate given as the key: PEM, but no key in it.
        let e = TlsConfig::from_pem_files(&c, &c).unwrap_err();
        assert_eq!((e.kind(), e.path()), (TlsErrorKind::NotPem, &*c));
        assert!(e.to_string().contains("holds no private key"), "{e}");

        let e = TlsConfig::from_pem_files(&c, &other).unwrap_err();
        assert_eq!((e.kind(), e.path()), (TlsErrorKind::Mismatch, &*other));
        assert!(
            e.to_string().contains(&format!(
                "is not the key of the certificate in {}",
                c.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn a_truncated_pem_block_is_refused_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair();
        let cut = write(dir.path(), "cut.pem", &cert[..cert.len() / 2]);
        let k = write(dir.path(), "key.pem", &key);
        let e = TlsConfig::from_pem_files(&cut, &k).unwrap_err();
        assert_eq!((e.kind(), e.path()), (TlsErrorKind::NotPem, &*cut));
    }
}
