//! The tasks of a plan: one method per [`wire::TaskKind`], each ending in a [`TaskResult`].
//!
//! Every input from the plan is checked here before it reaches the filesystem or Docker; every
//! failure becomes a [`wire::TaskError`] with a Clustergate-2 code, never a panic or an agent
//! error. Blocking filesystem work runs on tokio's blocking pool; every runtime call is bounded.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use wire::{
    Digest, ErrorCode, FileRef, ImageEntry, ImageRef, Message, PlanTask, TaskError, TaskKind,
    TaskOutputs, TaskState, UplinkFile,
};

mod camera;
mod files;
mod images;
mod limits;
mod pod_network;
mod pod_record;
mod pod_running;
mod pods;
mod quotas;

pub(crate) use self::camera::fisheye_png;
pub(crate) use self::pod_running::RunningPods;
use self::pods::Pod;
use crate::agent::Outgoing;
use crate::fsutil;
use crate::logbook::LogBook;
use crate::names::{self, tenant_image};
use crate::runtime::{Body, BuildRequest, ContainerSpec, Runtime, RuntimeErrorKind};
use crate::store::ObjectStore;
use crate::volumes::{self, Owner, PathError, RelPath, VolumeDir, Volumes};

/// How long a build may run when its task sets no `max_duration`.
const DEFAULT_BUILD_DURATION: Duration = Duration::from_secs(3600);
/// How long a pod may run when its task sets no `max_duration`.
const DEFAULT_POD_DURATION: Duration = Duration::from_secs(24 * 3600);
/// How long `docker load` may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long an uplink waits for its objects before failing.
pub(crate) const OBJECT_WAIT: Duration = Duration::from_secs(24 * 3600);
/// How long none of an uplink's objects may arrive before it asks for the missing ones again (the
/// interval then doubles). The link session resumes its transfers by itself; this is only a
/// safety net, for a request or a transfer lost with the session's state.
const NEED_RETRY: Duration = Duration::from_secs(30 * 60);
/// The priority of a downlink's objects on the link (messages go first, at 0).
const DOWNLINK_PRIORITY: u8 = 2;
/// Time between SIGTERM and SIGKILL when a pod overruns, or a pod.stop sets none.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);
/// The longest grace a pod.stop may ask for.
const MAX_STOP_GRACE: Duration = Duration::from_secs(600);
/// How often a running pod's disk use is looked at (free space, the tenant's volumes).
const POD_DISK_CHECK: Duration = Duration::from_secs(5);
/// Bytes of a pod's output kept in `<volume>/.logs/<pod>.log`.
const POD_LOG_KEEP: usize = 16 << 20;
/// The most files one downlink sends.
const MAX_DOWNLINK_FILES: usize = 10_000;
/// The most entries of a listing.
pub(crate) const MAX_LISTING: usize = 10_000;
/// The name given to a Dockerfile added to the build context.
const CONTEXT_DOCKERFILE: &str = ".orbitdock.Dockerfile";

/// The outcome of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskResult {
    /// Why the task failed; `None` when it succeeded.
    pub error: Option<TaskError>,
    /// What the task produced (also when it failed: a pod's exit code and log tail).
    pub outputs: TaskOutputs,
}

impl TaskResult {
    /// Whether the task succeeded.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }

    /// `Success` or `Failed`.
    pub fn state(&self) -> TaskState {
        if self.succeeded() {
            TaskState::Success
        } else {
            TaskState::Failed
        }
    }

    fn ok(outputs: TaskOutputs) -> TaskResult {
        TaskResult {
            error: None,
            outputs,
        }
    }

    fn fail(code: ErrorCode, message: impl Into<String>) -> TaskResult {
        TaskResult {
            error: Some(TaskError {
                code,
                message: message.into(),
                log_tail: Vec::new(),
            }),
            outputs: TaskOutputs::default(),
        }
    }

    /// A task stopped, or never started, because its execution was cancelled (`message` says
    /// which).
    pub(crate) fn cancelled(message: impl Into<String>) -> TaskResult {
        TaskResult::fail(ErrorCode::Cancelled, message)
    }

    /// Whether the task was stopped, or never started, by its execution's cancel.
    pub(crate) fn was_cancelled(&self) -> bool {
        self.error
            .as_ref()
            .is_some_and(|e| e.code == ErrorCode::Cancelled)
    }

    /// Adds a log tail to the error and the outputs.
    fn tail(mut self, lines: Vec<String>) -> TaskResult {
        if let Some(e) = &mut self.error {
            e.log_tail = lines.clone();
        }
        self.outputs.log_tail = lines;
        self
    }
}

/// A task's early exit: the failed result.
///
/// A failure *is* the task's result (a [`TaskResult`], some 200 bytes), made once per task;
/// carrying it by value through `?` is simpler than boxing it, and costs nothing that matters
/// (hence the `result_large_err` allowances below).
type Step<T> = Result<T, TaskResult>;

fn invalid(message: String) -> TaskResult {
    TaskResult::fail(ErrorCode::ValidationError, message)
}

fn execution_error(message: impl std::fmt::Display) -> TaskResult {
    TaskResult::fail(ErrorCode::ExecutionError, message.to_string())
}

/// A regular file of a volume, open for reading, or the task's "not found" failure with `code`.
#[allow(clippy::result_large_err)]
fn volume_file(
    root: &VolumeDir,
    rel: &RelPath,
    code: ErrorCode,
    what: &str,
) -> Step<(File, volumes::Meta)> {
    root.open_file(rel).map_err(|e| match e {
        PathError::NotFound(_) => {
            TaskResult::fail(code, format!("{what} not found: {}", rel.display()))
        }
        e => path_failure(e, code),
    })
}

/// The open root of a volume that exists, or the failure `missing` when it does not.
#[allow(clippy::result_large_err)]
fn existing_volume(
    volumes: &Volumes,
    tenant: &str,
    volume: &str,
    missing: impl FnOnce() -> TaskResult,
) -> Step<VolumeDir> {
    match volumes.open_volume(tenant, volume) {
        Ok(Some(dir)) => Ok(dir),
        Ok(None) => Err(missing()),
        Err(e) => Err(execution_error(e)),
    }
}

/// Maps a path error: malformed paths are validation errors, a missing path gets `missing`.
fn path_failure(e: PathError, missing: ErrorCode) -> TaskResult {
    match e {
        PathError::Invalid(m) => invalid(m),
        PathError::NotFound(m) => TaskResult::fail(missing, m),
        PathError::Exists(shown) => execution_error(format!("{shown} exists")),
        PathError::Link(m) | PathError::Io(m) => execution_error(m),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Step<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| execution_error(format!("internal error: {e}")))
}

fn duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(1))).to_string()
}

/// Runs tasks. Cheap to share behind the agent's `Arc`, and to clone (a detached pod's
/// supervisor holds a clone).
#[derive(Clone)]
pub(crate) struct Executor {
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) volumes: Arc<Volumes>,
    pub(crate) store: Arc<ObjectStore>,
    /// The disk limits and the state reserve (see `crate::disk`).
    pub(crate) disk: Arc<crate::disk::Disk>,
    /// Where archives and build contexts are staged.
    pub(crate) scratch: PathBuf,
    /// What goes to the ground (objects of a downlink, requests for objects).
    pub(crate) outbox: mpsc::Sender<Outgoing>,
    /// Canonical names of the catalogue images.
    pub(crate) catalogue: Vec<String>,
    /// The catalogue's images as declared (names, platforms, pinned digests).
    pub(crate) bases: Vec<wire::BaseImage>,
    /// The builder the engine builds with: Dockerfiles are judged as it reads them.
    pub(crate) builder: wire::Builder,
    pub(crate) object_wait: Duration,
    /// The detached pods running (see `pods`).
    pub(crate) pods: Arc<RunningPods>,
    /// The tenants' quotas, as the operator declared them.
    pub(crate) quotas: Arc<crate::Quotas>,
    /// What the tenants used of them today (see `crate::quota`).
    pub(crate) ledger: Arc<crate::quota::Ledger>,
    /// The GPU a pod of the `GPU` node class gets, found at start.
    pub(crate) gpu: crate::runtime::Gpu,
    /// The cancel orders, and each execution's signal (see `crate::cancels`).
    pub(crate) cancels: Arc<crate::cancels::Cancels>,
    /// Held by a build, a load or an image deletion, of any tenant, while it changes the Docker
    /// Engine's storage: a build's storage is measured as the fall of free space on the
    /// engine's data root (`disk::BuildWatch`), which another one's writes or deletions there
    /// would change. Fair: they take it in the order they asked.
    pub(crate) engine_storage: Arc<tokio::sync::Mutex<()>>,
    /// The mission clock `scheduled_time` and triggers are judged by (see `crate::clock`).
    pub(crate) clock: crate::MissionClock,
    /// The onboard telemetry service, which pods reach on their tenant's network.
    pub(crate) telemetry: crate::telemetry::Telemetry,
}

impl Executor {
    /// Runs task `index` of `tenant`'s execution.
    pub(crate) async fn run(
        &self,
        tenant: &str,
        execution: &str,
        index: usize,
        task: &PlanTask,
    ) -> TaskResult {
        if let Err(m) = names::check_tenant(tenant) {
            return invalid(m);
        }
        let result = match &task.kind {
            // Waiting for objects may last long: a cancel ends the wait. Files appear in the
            // volume only whole, so nothing is left half placed.
            TaskKind::Uplink { volume, files } => tokio::select! {
                r = self.uplink(tenant, volume, files) => r,
                () = self.cancels.cancelled(execution) => Err(TaskResult::cancelled(
                    "stopped while it waited for its files: the execution was cancelled",
                )),
            },
            TaskKind::Downlink { volume, sources } => {
                self.downlink(tenant, execution, index, volume, sources)
                    .await
            }
            TaskKind::FilesList {
                volume,
                folder,
                depth,
            } => {
                self.files_list(tenant, volume.as_deref(), folder, *depth)
                    .await
            }
            TaskKind::DockerBuild {
                volume,
                dockerfile,
                context,
                image,
                max_duration_ms,
            } => {
                let limit = max_duration_ms.map_or(DEFAULT_BUILD_DURATION, Duration::from_millis);
                self.build(tenant, execution, volume, dockerfile, context, image, limit)
                    .await
            }
            TaskKind::DockerLoad {
                volume,
                tarfile,
                image,
            } => self.load(tenant, execution, volume, tarfile, image).await,
            TaskKind::PodRun {
                pod_name,
                image,
                command,
                args,
                env,
                volume,
                max_duration_ms,
                scheduled_ms,
                detached,
                node,
                merged,
                ports,
            } => {
                let pod = Pod {
                    name: pod_name,
                    image,
                    command: command.as_deref(),
                    args: args.as_deref(),
                    env,
                    volume,
                    limit: max_duration_ms.map_or(DEFAULT_POD_DURATION, Duration::from_millis),
                    scheduled_ms: *scheduled_ms,
                    detached: *detached,
                    node: node.as_deref(),
                    merged: *merged,
                    ports,
                };
                self.pod_run(tenant, execution, index, pod).await
            }
            TaskKind::PodStop { pod_name, grace_ms } => {
                let grace = grace_ms
                    .map_or(STOP_GRACE, Duration::from_millis)
                    .min(MAX_STOP_GRACE);
                self.pod_stop(tenant, pod_name, grace).await
            }
            TaskKind::PodLogs { pod_name, volume } => self.pod_logs(tenant, pod_name, volume).await,
            TaskKind::FilesDelete { volume, paths } => {
                self.files_delete(tenant, volume, paths).await
            }
            TaskKind::ImageList => self.image_list(tenant).await,
            TaskKind::FilesMove {
                volume,
                source,
                destination,
            } => self.files_move(tenant, volume, source, destination).await,
            TaskKind::ImageDelete { image } => self.image_delete(tenant, image).await,
            TaskKind::CameraCapture { volume, path, size } => {
                self.camera_capture(tenant, volume, path, *size).await
            }
        };
        result.unwrap_or_else(|failed| failed)
    }

    async fn inspect(&self, reference: &str) -> Step<Option<crate::runtime::ImageInfo>> {
        self.runtime
            .inspect_image(reference)
            .await
            .map_err(|e| execution_error(format!("cannot inspect {reference}: {}", e.message)))
    }

    fn scratch_file(&self, what: &str) -> PathBuf {
        self.scratch
            .join(format!("{what}-{:016x}.tar", rand::random::<u64>()))
    }
}

/// The label naming the execution that made a container or an image.
pub(crate) const EXECUTION_LABEL: &str = "org.orbitdock.execution";

fn labels(tenant: &str, execution: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("org.orbitdock.tenant".to_string(), tenant.to_string()),
        (EXECUTION_LABEL.to_string(), execution.to_string()),
    ])
}

#[cfg(test)]
pub(crate) mod tests {
    pub(super) use std::io::Read;
    pub(super) use std::os::unix::fs::PermissionsExt;

    pub(super) use wire::OnFailure;

    pub(super) use super::*;
    pub(super) use crate::runtime::ImageInfo;
    pub(super) use crate::runtime::fake::{Call, FakeRuntime, Script};

    /// An executor on a fake runtime, in a temporary directory, with its outbox.
    pub(crate) struct Rig {
        pub(crate) _dir: tempfile::TempDir,
        pub(crate) fake: Arc<FakeRuntime>,
        pub(crate) exec: Executor,
        pub(crate) rx: mpsc::Receiver<Outgoing>,
    }

    pub(crate) fn rig(script: impl FnOnce(&mut Script)) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let data_root = dir.path().to_path_buf();
        let fake = Arc::new(FakeRuntime::with(|s| {
            s.data_root = Some(data_root);
            for name in ["busybox:latest", "gcr.io/distroless/static-debian12:latest"] {
                s.images.insert(
                    name.into(),
                    ImageInfo {
                        id: format!("sha256:{}", "b".repeat(64)),
                        ..Default::default()
                    },
                );
            }
            script(s)
        }));
        let (outbox, rx) = mpsc::channel(1024);
        let scratch = dir.path().join("tmp");
        fs::create_dir_all(&scratch).unwrap();
        let exec = Executor {
            clock: crate::MissionClock::HOST,
            runtime: fake.clone(),
            volumes: Arc::new(Volumes::open(&dir.path().join("volumes"), dir.path()).unwrap()),
            store: Arc::new(ObjectStore::open(dir.path()).unwrap()),
            disk: Arc::new(crate::disk::Disk::open(
                crate::DiskLimits {
                    reserve_bytes: 1 << 20,
                    ..crate::DiskLimits::default()
                },
                dir.path(),
                dir.path(),
            )),
            scratch,
            outbox,
            catalogue: wire::catalogue("linux/amd64")
                .into_iter()
                .map(|b| b.name)
                .collect(),
            bases: wire::catalogue("linux/amd64"),
            builder: wire::Builder::Classic,
            object_wait: Duration::from_millis(200),
            pods: Arc::default(),
            quotas: Arc::default(),
            ledger: Arc::new(crate::quota::Ledger::open(dir.path())),
            gpu: crate::runtime::Gpu::None,
            engine_storage: Arc::default(),
            cancels: Arc::new(
                crate::cancels::Cancels::open(dir.path(), 0, |_| {
                    crate::cancels::PlanStanding::Absent
                })
                .unwrap(),
            ),
            telemetry: crate::telemetry::Telemetry::open(dir.path(), crate::MissionClock::HOST)
                .unwrap(),
        };
        Rig {
            _dir: dir,
            fake,
            exec,
            rx,
        }
    }

    impl Rig {
        pub(crate) async fn run(&self, kind: TaskKind) -> TaskResult {
            self.run_as("alice", kind).await
        }

        /// Runs a task of `tenant`'s.
        pub(crate) async fn run_as(&self, tenant: &str, kind: TaskKind) -> TaskResult {
            self.run_at(tenant, 0, kind).await
        }

        /// Runs `kind` as task `index` of `tenant`'s execution.
        pub(crate) async fn run_at(
            &self,
            tenant: &str,
            index: usize,
            kind: TaskKind,
        ) -> TaskResult {
            let task = PlanTask {
                id: "t".into(),
                on_failure: OnFailure::Stop,
                trigger: None,
                kind,
            };
            self.exec.run(tenant, "exec0123456789", index, &task).await
        }

        pub(crate) fn volume(&self) -> PathBuf {
            self.exec.volumes.volume_dir("alice", "pvc")
        }

        /// Writes files into alice's volume `pvc`.
        pub(crate) fn put(&self, files: &[(&str, &[u8])]) {
            self.exec.volumes.ensure_volume("alice", "pvc").unwrap();
            for (path, data) in files {
                let p = self.volume().join(path);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(p, data).unwrap();
            }
        }
    }

    pub(super) fn code(r: &TaskResult) -> Option<u16> {
        r.error.as_ref().map(|e| e.code.code())
    }

    pub(super) fn image(name: &str, tag: &str) -> ImageRef {
        ImageRef {
            name: name.into(),
            tag: tag.into(),
        }
    }

    pub(super) fn build(dockerfile: &str) -> TaskKind {
        TaskKind::DockerBuild {
            volume: "pvc".into(),
            dockerfile: dockerfile.into(),
            context: "/app".into(),
            image: image("hello", "v1"),
            max_duration_ms: None,
        }
    }

    pub(super) fn tar_names(bytes: &[u8]) -> BTreeMap<String, String> {
        let mut a = tar::Archive::new(bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut s = String::new();
                let _ = e.read_to_string(&mut s);
                (e.path().unwrap().to_string_lossy().into_owned(), s)
            })
            .collect()
    }
}
