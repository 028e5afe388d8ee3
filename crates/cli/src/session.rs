//! The saved login: server URL, user and bearer token.

use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    pub(crate) server: String,
    pub(crate) user: String,
    pub(crate) token: String,
}

/// `$ORBITDOCK_SESSION`, else `$XDG_CONFIG_HOME/orbitdock/session.json`, else
/// `~/.config/orbitdock/session.json`.
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

pub(crate) fn save(session: &Session) -> anyhow::Result<PathBuf> {
    let path = path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec_pretty(session)?;
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

pub(crate) fn load() -> anyhow::Result<Session> {
    let path = path()?;
    let body = std::fs::read(&path).with_context(|| {
        format!("not logged in ({} is missing): run `orbitdock login --server URL --user U --password P`", path.display())
    })?;
    serde_json::from_slice(&body)
        .with_context(|| format!("{} is not a valid session file", path.display()))
}
