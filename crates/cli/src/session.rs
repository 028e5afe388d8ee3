//! Saved logins as contexts, like kubectl's: each a server with its user and bearer token (and,
//! for an HTTPS server with a private CA, the CA certificate file it was logged in with), one of
//! them current. `ORBITDOCK_SERVER` and `ORBITDOCK_TOKEN` (for CI) take the place of the file.
//!
//! The file is `$ORBITDOCK_SESSION`, else `$XDG_CONFIG_HOME/orbitdock/session.json`, else
//! `~/.config/orbitdock/session.json`, mode 0600:
//!
//! ```json
//! {"current": "lab", "contexts": {"lab": {"server": "https://ground.lab:7700", "user": "demo", "token": "…", "cacert": "/etc/orbitdock/lab-ca.pem"}}}
//! ```
//!
//! A file of an older orbitdock (one session, no contexts) reads as the context `default`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Session {
    pub(crate) server: String,
    pub(crate) user: String,
    pub(crate) token: String,
    /// The PEM file of the CA certificates the server's certificate is checked against (an
    /// absolute path); none for the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cacert: Option<PathBuf>,
}

/// Every saved context and the current one's name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Contexts {
    #[serde(default)]
    pub(crate) current: Option<String>,
    #[serde(default)]
    pub(crate) contexts: BTreeMap<String, Session>,
}

/// No usable session: the caller must log in (exit status 3).
#[derive(Debug)]
pub(crate) struct NotLoggedIn(pub(crate) String);

impl std::fmt::Display for NotLoggedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotLoggedIn {}

pub(crate) fn path() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("ORBITDOCK_SESSION") {
        return Ok(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(x) if !x.is_empty() => PathBuf::from(x),
        _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(base.join("orbitdock").join("session.json"))
}

/// The saved contexts (none when the file does not exist).
pub(crate) fn contexts() -> anyhow::Result<Contexts> {
    let path = path()?;
    let body = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Contexts::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if let Ok(c) = serde_json::from_slice::<Contexts>(&body)
        && (c.current.is_some() || !c.contexts.is_empty())
    {
        return Ok(c);
    }
    let old: Session = serde_json::from_slice(&body)
        .with_context(|| format!("{} is not a valid session file", path.display()))?;
    Ok(Contexts {
        current: Some("default".to_string()),
        contexts: BTreeMap::from([("default".to_string(), old)]),
    })
}

/// Writes the contexts atomically, readable by the owner only.
pub(crate) fn save_contexts(c: &Contexts) -> anyhow::Result<PathBuf> {
    let path = path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec_pretty(c)?;
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Saves a login as context `name` and makes it current.
pub(crate) fn save(name: &str, session: &Session) -> anyhow::Result<PathBuf> {
    let mut c = contexts()?;
    c.contexts.insert(name.to_string(), session.clone());
    c.current = Some(name.to_string());
    save_contexts(&c)
}

/// A context's default name: the server's `host:port`.
pub(crate) fn default_name(server: &str) -> String {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// The session to use: `ORBITDOCK_TOKEN` (with `ORBITDOCK_SERVER`, or the context's server),
/// else the context named (`--context`), else the current one.
pub(crate) fn load(context: Option<&str>) -> anyhow::Result<Session> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let saved = contexts()?;
    let chosen = match context {
        Some(name) => Some(saved.contexts.get(name).cloned().ok_or_else(|| {
            NotLoggedIn(format!(
                "no context {name:?} (saved: {}); log in with `orbitdock login --name {name} …`",
                names(&saved)
            ))
        })?),
        None => saved
            .current
            .as_ref()
            .and_then(|n| saved.contexts.get(n))
            .cloned(),
    };
    if let Some(token) = env("ORBITDOCK_TOKEN") {
        let server = env("ORBITDOCK_SERVER")
            .or_else(|| chosen.as_ref().map(|s| s.server.clone()))
            .ok_or_else(|| {
                NotLoggedIn("ORBITDOCK_TOKEN is set but ORBITDOCK_SERVER is not".to_string())
            })?;
        // The context's CA file goes with the context's server only.
        let cacert = match env("ORBITDOCK_SERVER") {
            Some(_) => None,
            None => chosen.and_then(|s| s.cacert),
        };
        return Ok(Session {
            server: server.trim_end_matches('/').to_string(),
            user: String::new(),
            token,
            cacert,
        });
    }
    chosen.ok_or_else(|| {
        NotLoggedIn(format!(
            "not logged in ({} holds no current context): run `orbitdock login --server URL --user U --password-stdin`, or set ORBITDOCK_SERVER and ORBITDOCK_TOKEN",
            path().map(|p| p.display().to_string()).unwrap_or_default()
        ))
        .into()
    })
}

fn names(c: &Contexts) -> String {
    if c.contexts.is_empty() {
        "none".to_string()
    } else {
        c.contexts.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_is_named_after_its_server() {
        assert_eq!(default_name("http://127.0.0.1:7700/"), "127.0.0.1:7700");
        assert_eq!(
            default_name("https://ground.example:443"),
            "ground.example:443"
        );
        assert_eq!(default_name("127.0.0.1:7700"), "127.0.0.1:7700");
    }

    #[test]
    fn an_old_session_file_reads_as_the_default_context() {
        let old = r#"{"server":"http://127.0.0.1:7700","user":"demo","token":"t"}"#;
        let c: Result<Contexts, _> = serde_json::from_str(old);
        // Unknown fields are ignored, so the old file parses as an empty Contexts…
        assert!(c.is_ok_and(|c| c.contexts.is_empty() && c.current.is_none()));
        // …and `contexts()` then reads it as one session.
        let s: Session = serde_json::from_str(old).unwrap();
        assert_eq!(s.user, "demo");
    }
}
