//! What is kept of a pod: its record in the state folder until its plan finishes (see `pods`),
//! the time a pod taken up after a restart has left, and its log in its volume (rotated).

use super::*;
use crate::fsutil::now_ms;

/// What the state folder keeps of a pod.run task until its plan finishes: when it started (written
/// just before the start, so a restart that finds no container knows the pod ran), then its
/// outcome (written before the container is removed). A detached pod's outcome is its start.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct PodRecord {
    #[serde(default)]
    pub(super) started_ms: Option<u64>,
    #[serde(default)]
    pub(super) outcome: Option<KeptOutcome>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct KeptOutcome {
    error: Option<TaskError>,
    outputs: TaskOutputs,
}

impl KeptOutcome {
    pub(super) fn result(&self) -> TaskResult {
        TaskResult {
            error: self.error.clone(),
            outputs: self.outputs.clone(),
        }
    }
}

impl PodRecord {
    pub(super) fn ended(result: &TaskResult) -> PodRecord {
        PodRecord {
            started_ms: None,
            outcome: Some(KeptOutcome {
                error: result.error.clone(),
                outputs: result.outputs.clone(),
            }),
        }
    }
}

/// The kept record of a pod, if there is one that reads.
pub(super) async fn read_pod_record(path: Option<&Path>) -> Option<PodRecord> {
    let path = path?.to_path_buf();
    let bytes = match blocking(move || fs::read(&path)).await.ok()? {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a pod's kept record");
            return None;
        }
    };
    match serde_json::from_slice::<PodRecord>(&bytes) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "a pod's kept record does not read; set aside");
            None
        }
    }
}

/// Keeps a pod's record, synced. A failure only warns: the container is removed all the same,
/// so a restart before the plan's progress is saved would run the pod again; that takes a state
/// folder that cannot be written as well as a crash.
pub(super) async fn write_pod_record(path: Option<&Path>, record: &PodRecord) {
    let Some(path) = path.map(Path::to_path_buf) else {
        return;
    };
    let Ok(bytes) = serde_json::to_vec(record) else {
        return;
    };
    let written = blocking(move || -> io::Result<()> {
        let Some(dir) = path.parent() else {
            return Ok(());
        };
        fs::create_dir_all(dir)?;
        // The new folders' entries are synced too, or the record could vanish with a crash.
        for d in [dir.parent(), Some(dir)].into_iter().flatten() {
            File::open(d)?.sync_all()?;
        }
        fsutil::write_atomic(&path, &bytes)
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot keep a pod's record"),
        Err(_) => tracing::warn!("cannot keep a pod's record"),
    }
}

/// What is left of `limit` for a pod that started at `started_ms` (by the onboard clock); the
/// whole of it when the start is not known.
pub(super) fn remaining(limit: Duration, started_ms: Option<u64>) -> Duration {
    match started_ms {
        Some(started) => {
            limit.saturating_sub(Duration::from_millis(now_ms().saturating_sub(started)))
        }
        None => limit,
    }
}

impl Executor {
    /// Moves the log of the pod's last run in this volume to `<pod>.log.1` (replacing the one
    /// before): a pod's logs take at most twice [`POD_LOG_KEEP`]. Done beneath the volume's open
    /// root, following no symlink. A failure only warns.
    pub(super) async fn rotate_pod_log(&self, root: &Path, pod: &str) {
        let (volumes, root) = (self.volumes.clone(), root.to_path_buf());
        let pod = pod.to_string();
        let rotated = blocking(move || -> Result<(), String> {
            let current = RelPath::parse(&format!(".logs/{pod}.log"))?;
            let old = RelPath::parse(&format!(".logs/{pod}.log.1"))?;
            let Some(dir) = volumes.open_volume_at(&root).map_err(|e| e.to_string())? else {
                return Ok(());
            };
            dir.rename_file_over(&current, &old)
                .map(|_| ())
                .map_err(|e| e.message().to_string())
        })
        .await;
        match rotated {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot rotate a pod's log"),
            Err(_) => tracing::warn!("cannot rotate a pod's log"),
        }
    }

    /// Keeps the pod's output in `<volume>/.logs/<pod>.log`, written beneath the volume's open
    /// root, following no symlink; a failure only warns.
    pub(super) async fn write_pod_log(&self, root: &Path, owner: Owner, pod: &str, log: &LogBook) {
        let (volumes, root, bytes) = (self.volumes.clone(), root.to_path_buf(), log.kept());
        let rel = RelPath::parse(&format!(".logs/{pod}.log"));
        let written = blocking(move || -> Result<(), String> {
            let rel = rel?;
            let dir = volumes
                .open_volume_at(&root)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("the volume {} is gone", root.display()))?;
            dir.write_file(&volumes, &rel, owner, &mut bytes.as_slice(), 0o644)
                .map(|_| ())
                .map_err(|e| e.message().to_string())
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(pod, error = %e, "cannot write the pod's log to its volume")
            }
            Err(_) => tracing::warn!(pod, "cannot write the pod's log to its volume"),
        }
    }
}
