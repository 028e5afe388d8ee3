//! A thin client of the ground's HTTP API (docs/api.md): requests go out, the body types of the
//! `api` crate come back.

use anyhow::{Context, bail};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

use crate::session::Session;

pub(crate) struct Client {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
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

    /// With `-o json`, prints the API's error body on standard output, so a script reads the
    /// diagnostics or findings as the API gave them.
    pub(crate) fn print_json_body(&self, json: bool) -> anyhow::Result<()> {
        if let (true, Some(body)) = (json, &self.body) {
            let body = api::ErrorBody {
                error: body.clone(),
            };
            println!("{}", serde_json::to_string_pretty(&body)?);
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

impl Client {
    pub(crate) fn anonymous(server: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            server: server.trim_end_matches('/').to_string(),
            token: None,
        }
    }

    pub(crate) fn from_session(session: &Session) -> Client {
        Client {
            token: Some(session.token.clone()),
            ..Client::anonymous(&session.server)
        }
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
        let resp = rb
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.server))?;
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
        let mut resp = self
            .request(Method::GET, path)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.server))?;
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
