//! A thin client of the ground's HTTP API (docs/api.md): requests go out, the body types of the
//! `api` crate come back.
//!
//! HTTPS is rustls with ring as the crypto provider. A server's certificate is checked against
//! the CA certificates of `--cacert` (only those, like curl's) when given, else against the
//! system's roots; one that does not verify is a [`TlsRefused`] (exit status 4).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

use crate::session::Session;

pub(crate) struct Client {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
    /// The CA file the server's certificate is checked against (for the message when it fails).
    cacert: Option<PathBuf>,
}

/// An error answer from the API.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    /// The error body; `None` when the answer was not one (a proxy's page, say).
    pub(crate) body: Option<api::ErrorDetail>,
    /// The answer's text, when it was not an error body.
    text: String,
}

impl ApiError {
    fn from_answer(status: StatusCode, bytes: &[u8]) -> ApiError {
        match serde_json::from_slice::<api::ErrorBody>(bytes) {
            Ok(b) => ApiError {
                status,
                body: Some(b.error),
                text: String::new(),
            },
            Err(_) => ApiError {
                status,
                body: None,
                text: String::from_utf8_lossy(bytes).trim().to_string(),
            },
        }
    }

    /// The problems of an operation that failed validation (none for other errors).
    pub(crate) fn diagnostics(&self) -> &[api::Diagnostic] {
        self.body
            .as_ref()
            .and_then(|b| b.diagnostics.as_deref())
            .unwrap_or_default()
    }

    /// With `-o json` or `-o yaml`, prints the API's error body on standard output, so a script
    /// reads the diagnostics or findings as the API gave them.
    pub(crate) fn print_body(&self, output: crate::args::Output) -> anyhow::Result<()> {
        if let Some(body) = &self.body {
            let body = api::ErrorBody {
                error: body.clone(),
            };
            crate::output::print_document(output, &body)?;
        }
        Ok(())
    }

    /// The findings of a preflight that refused to start an execution.
    pub(crate) fn preflight(&self) -> Option<&[api::PreflightFinding]> {
        self.body.as_ref().and_then(|b| b.preflight.as_deref())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let msg = match &self.body {
            Some(b) => b.message.as_str(),
            None if self.text.is_empty() => "no message",
            None => self.text.as_str(),
        };
        write!(f, "{} ({})", msg, self.status)
    }
}

impl std::error::Error for ApiError {}

/// The server's certificate did not verify: the TLS handshake refused it (exit status 4).
#[derive(Debug)]
pub(crate) struct TlsRefused {
    server: String,
    /// Why rustls refused it.
    reason: rustls::CertificateError,
    /// The CA file the certificate was checked against, if any.
    cacert: Option<PathBuf>,
}

impl std::fmt::Display for TlsRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the TLS certificate of {} did not verify: {}",
            self.server,
            rustls::Error::InvalidCertificate(self.reason.clone())
        )?;
        if format!("{:?}", self.reason).contains("CaUsedAsEndEntity") {
            return f.write_str(
                "; the server presents a CA certificate as its own: give it one made with basicConstraints CA:FALSE (docs/dashboard.md, \"HTTPS\")",
            );
        }
        if !matches!(
            self.reason,
            rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature
        ) {
            return Ok(());
        }
        match &self.cacert {
            Some(ca) => write!(
                f,
                "; no CA certificate of {} (from --cacert, ORBITDOCK_CACERT or the context) signed it",
                ca.display()
            ),
            None => f.write_str(
                "; no CA this system trusts signed it: give the CA certificate that did with --cacert FILE or ORBITDOCK_CACERT",
            ),
        }
    }
}

impl std::error::Error for TlsRefused {}

/// A PEM file of CA certificates larger than this is refused: a bundle of every public CA is
/// about 200 KiB.
const MAX_CACERT_BYTES: u64 = 4 << 20;

/// Makes ring the process's rustls crypto provider (once; reqwest builds its TLS configuration
/// with the process's provider).
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when a provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An HTTP client that trusts only the CA certificates of `cacert` (PEM) when given, else the
/// system's roots.
pub(crate) fn http_client(cacert: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder();
    if let Some(path) = cacert {
        builder = builder.tls_certs_only(read_cacert(path)?);
    }
    builder
        .build()
        .context("cannot set up the HTTP client (its TLS configuration)")
}

/// The CA certificates of a PEM file, every error naming the file.
fn read_cacert(path: &Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let what = || format!("the CA certificate file {}", path.display());
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", what()))?
        .len();
    if len > MAX_CACERT_BYTES {
        bail!(
            "{} is {len} bytes, more than the {MAX_CACERT_BYTES} a PEM file of CA certificates may have",
            what()
        );
    }
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", what()))?;
    let ders = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{} is not a PEM certificate file ({e})", what()))?;
    if ders.is_empty() {
        bail!(
            "{} holds no certificate (no \"-----BEGIN CERTIFICATE-----\" block)",
            what()
        );
    }
    ders.iter()
        .map(|der| {
            reqwest::Certificate::from_der(der)
                .with_context(|| format!("{} holds a certificate that cannot be read", what()))
        })
        .collect()
}

/// Why the server's certificate was refused, if a TLS handshake failed on it somewhere in
/// `e`'s chain. An `io::Error` hides the error it wraps from `source()` (and the connector wraps
/// the TLS stream's `io::Error` in another), so each is opened.
pub(crate) fn certificate_refused(
    e: &(dyn std::error::Error + 'static),
) -> Option<rustls::CertificateError> {
    let mut next = Some(e);
    while let Some(mut err) = next {
        while let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            err = inner;
        }
        if let Some(rustls::Error::InvalidCertificate(c)) = err.downcast_ref::<rustls::Error>() {
            return Some(c.clone());
        }
        next = err.source();
    }
    None
}

impl Client {
    /// A client without a session (to log in), trusting `cacert`'s CAs when given.
    pub(crate) fn anonymous(server: &str, cacert: Option<&Path>) -> anyhow::Result<Client> {
        Ok(Client {
            http: http_client(cacert)?,
            server: server.trim_end_matches('/').to_string(),
            token: None,
            cacert: cacert.map(Path::to_path_buf),
        })
    }

    /// A client of `session`, trusting `cacert`'s CAs when given, else the session's.
    pub(crate) fn from_session(session: &Session, cacert: Option<&Path>) -> anyhow::Result<Client> {
        let cacert = cacert.or(session.cacert.as_deref());
        Ok(Client {
            token: Some(session.token.clone()),
            ..Client::anonymous(&session.server, cacert)?
        })
    }

    /// Sends `rb`; a failure to connect names the server, and a certificate that did not
    /// verify is a [`TlsRefused`].
    async fn send(&self, rb: RequestBuilder) -> anyhow::Result<reqwest::Response> {
        rb.send().await.map_err(|e| match certificate_refused(&e) {
            Some(reason) => TlsRefused {
                server: self.server.clone(),
                reason,
                cacert: self.cacert.clone(),
            }
            .into(),
            None => anyhow::Error::new(e).context(format!("cannot reach {}", self.server)),
        })
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self
            .http
            .request(method, format!("{}{}", self.server, path));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Sends and decodes a JSON answer into `T`; a non-2xx answer becomes an [`ApiError`].
    pub(crate) async fn json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> anyhow::Result<T> {
        let resp = self.send(rb).await?;
        let status = resp.status();
        let path = resp.url().path().to_string();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            return Err(ApiError::from_answer(status, &bytes).into());
        }
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the answer of {} to {path} is not what this orbitdock understands (is it another version?)",
                self.server
            )
        })
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.json(self.request(Method::GET, path)).await
    }

    /// Downloads raw bytes into `dest` (written to a temporary name, then renamed).
    /// Downloads to `dest` (through a `.part` file), counting the bytes on `bar`.
    pub(crate) async fn download(
        &self,
        path: &str,
        dest: &std::path::Path,
        bar: &indicatif::ProgressBar,
    ) -> anyhow::Result<u64> {
        use tokio::io::AsyncWriteExt;
        let mut resp = self.send(self.request(Method::GET, path)).await?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await.unwrap_or_default();
            bail!(ApiError::from_answer(status, &bytes));
        }
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = dest.with_file_name(format!(
            ".{}.part",
            dest.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("download")
        ));
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .with_context(|| format!("writing {}", tmp.display()))?;
        let mut n = 0u64;
        while let Some(chunk) = resp.chunk().await? {
            n += chunk.len() as u64;
            bar.inc(chunk.len() as u64);
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&tmp, dest)
            .await
            .with_context(|| format!("writing {}", dest.display()))?;
        Ok(n)
    }
}

/// Percent-encodes a path for a URL, keeping `/`: the ground builds its URIs with the same
/// function.
pub(crate) use api::encode_path;
