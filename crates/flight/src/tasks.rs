//! The tasks of a plan: one method per [`wire::TaskKind`], each ending in a [`TaskResult`].
//!
//! Every input from the plan is checked here before it reaches the filesystem or Docker; every
//! failure becomes a [`wire::TaskError`] with a Clustergate-2 code, never a panic or an agent
//! error. Blocking filesystem work runs on tokio's blocking pool; every runtime call is bounded.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use wire::{
    Digest, ErrorCode, FileRef, ImageRef, Message, PlanTask, TaskError, TaskKind, TaskOutputs,
    TaskState, UplinkFile,
};

use crate::agent::Outgoing;
use crate::dockerfile::{self, Target};
use crate::fsutil;
use crate::logbook::LogBook;
use crate::names::{self, tenant_image};
use crate::runtime::{Body, BuildRequest, ContainerSpec, Runtime, RuntimeErrorKind};
use crate::store::ObjectStore;
use crate::volumes::{self, Owner, PathError, RelPath, Volumes};

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
/// Time between SIGTERM and SIGKILL when a pod overruns.
const STOP_GRACE: Duration = Duration::from_secs(5);
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

/// A regular file of a volume, or the task's "not found" failure with `code`.
#[allow(clippy::result_large_err)]
fn volume_file(
    root: &std::path::Path,
    rel: &RelPath,
    code: ErrorCode,
    what: &str,
) -> Step<std::path::PathBuf> {
    let not_found = || TaskResult::fail(code, format!("{what} not found: {}", rel.display()));
    let path = volumes::resolve_existing(root, rel).map_err(|e| match e {
        PathError::NotFound(_) => not_found(),
        e => path_failure(e, code),
    })?;
    if !path.is_file() {
        return Err(not_found());
    }
    Ok(path)
}

/// Maps a path error: malformed paths are validation errors, a missing path gets `missing`.
fn path_failure(e: PathError, missing: ErrorCode) -> TaskResult {
    match e {
        PathError::Invalid(m) => invalid(m),
        PathError::NotFound(m) => TaskResult::fail(missing, m),
        PathError::Escapes(m) | PathError::Io(m) => execution_error(m),
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

/// Runs tasks. Cheap to share behind the agent's `Arc`.
pub(crate) struct Executor {
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) volumes: Arc<Volumes>,
    pub(crate) store: Arc<ObjectStore>,
    /// Where archives and build contexts are staged.
    pub(crate) scratch: PathBuf,
    /// What goes to the ground (objects of a downlink, requests for objects).
    pub(crate) outbox: mpsc::Sender<Outgoing>,
    /// Canonical names of the catalogue images.
    pub(crate) catalogue: Vec<String>,
    pub(crate) object_wait: Duration,
}

impl Executor {
    /// Runs one task of `tenant`'s execution.
    pub(crate) async fn run(&self, tenant: &str, execution: &str, task: &PlanTask) -> TaskResult {
        if let Err(m) = names::check_tenant(tenant) {
            return invalid(m);
        }
        let result = match &task.kind {
            TaskKind::Uplink { volume, files } => self.uplink(tenant, volume, files).await,
            TaskKind::Downlink { volume, sources } => self.downlink(tenant, volume, sources).await,
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
            } => self.load(tenant, volume, tarfile, image).await,
            TaskKind::PodRun {
                pod_name,
                image,
                command,
                args,
                env,
                volume,
                max_duration_ms,
            } => {
                let pod = Pod {
                    name: pod_name,
                    image,
                    command: command.as_deref(),
                    args: args.as_deref(),
                    env,
                    volume,
                    limit: max_duration_ms.map_or(DEFAULT_POD_DURATION, Duration::from_millis),
                };
                self.pod_run(tenant, execution, pod).await
            }
        };
        result.unwrap_or_else(|failed| failed)
    }

    #[allow(clippy::result_large_err)]
    async fn uplink(&self, tenant: &str, volume: &str, files: &[UplinkFile]) -> Step<TaskResult> {
        names::check_volume(volume).map_err(invalid)?;
        let mut targets = Vec::with_capacity(files.len());
        for f in files {
            let rel = RelPath::parse(&f.path).map_err(invalid)?;
            if rel.is_root() {
                return Err(invalid(format!(
                    "uplink file {:?} names the volume root",
                    f.path
                )));
            }
            targets.push((rel, f.digest, f.mode));
        }
        let digests: Vec<Digest> = files.iter().map(|f| f.digest).collect();
        let outbox = self.outbox.clone();
        let missing = self
            .store
            .wait_for(&digests, self.object_wait, NEED_RETRY, &mut |stalled| {
                tracing::info!(
                    objects = stalled.len(),
                    "asking again for objects that stopped arriving"
                );
                // Best effort: when the outbox is full, the next round asks again.
                let need = Message::Need { digests: stalled };
                let _ = outbox.try_send(Outgoing::Message(need));
            })
            .await;
        if !missing.is_empty() {
            let some: Vec<String> = missing.iter().take(3).map(Digest::to_string).collect();
            return Err(TaskResult::fail(
                ErrorCode::TransferFailed,
                format!(
                    "{} of {} objects did not arrive within {}: {}{}",
                    missing.len(),
                    digests.len(),
                    duration(self.object_wait),
                    some.join(", "),
                    if missing.len() > 3 { ", ..." } else { "" }
                ),
            ));
        }
        let (root, owner) = self
            .volumes
            .ensure_volume(tenant, volume)
            .map_err(execution_error)?;
        let (volumes, store) = (self.volumes.clone(), self.store.clone());
        let (count, bytes) = blocking(move || -> Step<(usize, u64)> {
            let mut bytes = 0;
            for (rel, digest, mode) in &targets {
                let path = volumes::prepare_write(&volumes, &root, rel, owner)
                    .map_err(|e| path_failure(e, ErrorCode::ExecutionError))?;
                let mut source = File::open(store.path(digest)).map_err(|e| {
                    execution_error(format!("object {digest} for {}: {e}", rel.display()))
                })?;
                bytes += fsutil::write_atomic_from(&path, &mut source, Some(*mode))
                    .map_err(|e| execution_error(format!("cannot write {}: {e}", rel.display())))?;
                volumes.chown(&path, owner);
            }
            Ok((targets.len(), bytes))
        })
        .await??;
        Ok(TaskResult::ok(TaskOutputs {
            message: Some(format!("{count} files, {bytes} bytes")),
            ..TaskOutputs::default()
        }))
    }

    #[allow(clippy::result_large_err)]
    async fn downlink(&self, tenant: &str, volume: &str, sources: &[String]) -> Step<TaskResult> {
        names::check_volume(volume).map_err(invalid)?;
        if sources.is_empty() {
            return Err(invalid("the downlink names no source".into()));
        }
        let root = self.volumes.volume_dir(tenant, volume);
        if !root.is_dir() {
            return Err(execution_error(format!("volume {volume} does not exist")));
        }
        let sources = sources.to_vec();
        let files = blocking(move || -> Step<BTreeMap<String, PathBuf>> {
            let mut all = BTreeMap::new();
            for source in &sources {
                let found = volumes::expand(&root, source)
                    .map_err(|e| path_failure(e, ErrorCode::ExecutionError))?;
                if found.is_empty() {
                    return Err(execution_error(format!("File not found: {source}")));
                }
                all.extend(found);
                if all.len() > MAX_DOWNLINK_FILES {
                    return Err(invalid(format!(
                        "the downlink names more than {MAX_DOWNLINK_FILES} files"
                    )));
                }
            }
            Ok(all)
        })
        .await??;
        // Each file becomes an object of the store first: what is sent is that snapshot, whatever
        // happens to the file later. Nothing is queued unless every file could be read.
        let mut refs = Vec::with_capacity(files.len());
        let mut objects = Vec::new();
        let mut seen = HashSet::new();
        let mut total = 0;
        for (rel, path) in files {
            let store = self.store.clone();
            let (digest, size) = blocking(move || store.add_file(&path))
                .await?
                .map_err(|e| {
                    execution_error(format!("cannot copy /{rel} for the downlink: {e}"))
                })?;
            if seen.insert(digest) {
                objects.push((digest, size));
            }
            total += size;
            refs.push(FileRef {
                path: format!("/{rel}"),
                digest,
                size,
            });
        }
        // The link delivers the objects, perhaps long after the task's event; the ground waits
        // for them.
        for (digest, size) in objects {
            let object = Outgoing::Object {
                digest,
                size,
                priority: DOWNLINK_PRIORITY,
            };
            self.outbox
                .send(object)
                .await
                .map_err(|_| execution_error("the link to the ground has stopped"))?;
        }
        Ok(TaskResult::ok(TaskOutputs {
            message: Some(format!("{} files, {total} bytes", refs.len())),
            files: refs,
            ..TaskOutputs::default()
        }))
    }

    async fn files_list(
        &self,
        tenant: &str,
        volume: Option<&str>,
        folder: &str,
        depth: u32,
    ) -> Step<TaskResult> {
        let folder = RelPath::parse(folder).map_err(invalid)?;
        let root = match volume {
            Some(v) => {
                names::check_volume(v).map_err(invalid)?;
                let root = self.volumes.volume_dir(tenant, v);
                if !root.is_dir() {
                    return Err(execution_error(format!("volume {v} does not exist")));
                }
                root
            }
            None => {
                let root = self.volumes.tenant_dir(tenant);
                if !root.is_dir() && folder.is_root() {
                    return Ok(TaskResult::ok(TaskOutputs {
                        message: Some("0 entries".into()),
                        ..TaskOutputs::default()
                    }));
                }
                root
            }
        };
        let dir = volumes::resolve_existing(&root, &folder).map_err(|e| match e {
            PathError::NotFound(_) => {
                execution_error(format!("Folder not found: {}", folder.display()))
            }
            e => path_failure(e, ErrorCode::ExecutionError),
        })?;
        if !dir.is_dir() {
            return Err(execution_error(format!(
                "{} is not a folder",
                folder.display()
            )));
        }
        let prefix = if folder.is_root() {
            String::new()
        } else {
            folder.display()
        };
        let (listing, truncated) =
            blocking(move || volumes::list(&dir, &prefix, depth.max(1), MAX_LISTING)).await?;
        let mut message = format!("{} entries", listing.len());
        if truncated {
            message.push_str(&format!(", cut at {MAX_LISTING}"));
        }
        Ok(TaskResult::ok(TaskOutputs {
            listing,
            message: Some(message),
            ..TaskOutputs::default()
        }))
    }

    #[allow(clippy::too_many_arguments)]
    async fn build(
        &self,
        tenant: &str,
        execution: &str,
        volume: &str,
        dockerfile: &str,
        context: &str,
        image: &ImageRef,
        limit: Duration,
    ) -> Step<TaskResult> {
        names::check_volume(volume).map_err(invalid)?;
        names::check_image_name(&image.name).map_err(invalid)?;
        names::check_tag(&image.tag).map_err(invalid)?;
        let root = self.volumes.volume_dir(tenant, volume);
        let df_rel = RelPath::parse(dockerfile).map_err(invalid)?;
        let ctx_rel = RelPath::parse(context).map_err(invalid)?;
        let df_path = volume_file(
            &root,
            &df_rel,
            ErrorCode::DockerDockerfileNotFound,
            "Dockerfile",
        )?;
        let text = read_dockerfile(&df_path).map_err(|m| {
            TaskResult::fail(ErrorCode::FormatError, format!("{}: {m}", df_rel.display()))
        })?;
        let build_failed =
            |m: String| TaskResult::fail(ErrorCode::DockerBuildFailed, format!("Dockerfile {m}"));
        let parsed = dockerfile::parse(&text).map_err(build_failed)?;
        let uses = parsed.references(&self.catalogue).map_err(build_failed)?;
        if let Some((line, url)) = parsed.downloads().into_iter().next() {
            return Err(TaskResult::fail(
                ErrorCode::DockerBuildFailed,
                if url.contains('$') {
                    format!(
                        "ADD {url} (Dockerfile line {line}): a variable in an ADD source could name a URL, and nothing can be downloaded onboard; use COPY"
                    )
                } else {
                    format!("ADD {url} (Dockerfile line {line}): nothing can be downloaded onboard")
                },
            ));
        }

        // Every image the build names must exist onboard; tenant images get their prefix.
        let mut replacements = Vec::new();
        for u in &uses {
            match &u.target {
                Target::Scratch | Target::Stage => {}
                Target::Catalogue(name) => {
                    self.inspect(name).await?.ok_or_else(|| {
                        TaskResult::fail(
                            ErrorCode::DockerImageNotFound,
                            format!("{} (Dockerfile line {}): the catalogue image {name} is not loaded onboard", u.image, u.line),
                        )
                    })?;
                    if u.image != *name {
                        replacements.push((u.instruction, name.clone()));
                    }
                }
                Target::Tenant { name, tag } => {
                    let full = tenant_image(tenant, name, tag);
                    let info = self.inspect(&full).await?.ok_or_else(|| {
                        TaskResult::fail(
                            ErrorCode::DockerImageNotFound,
                            u.not_found(&self.catalogue),
                        )
                    })?;
                    // ONBUILD triggers run in this build: one copying from another image could
                    // reach an image that is not the tenant's.
                    if info.on_build.iter().any(|t| {
                        t.to_ascii_lowercase().contains("--from")
                            || !dockerfile::remote_words(t).is_empty()
                    }) {
                        return Err(TaskResult::fail(
                            ErrorCode::DockerBuildFailed,
                            format!(
                                "{} (Dockerfile line {}): its ONBUILD instructions copy from another image or download, which is not allowed onboard",
                                u.image, u.line
                            ),
                        ));
                    }
                    replacements.push((u.instruction, full));
                }
                Target::Unknown => {
                    return Err(TaskResult::fail(
                        ErrorCode::DockerImageNotFound,
                        u.not_found(&self.catalogue),
                    ));
                }
            }
        }
        let rewritten = if replacements.is_empty() {
            None
        } else {
            Some(parsed.rewrite(&replacements).map_err(build_failed)?)
        };

        let ctx_dir = volumes::resolve_existing(&root, &ctx_rel).map_err(|e| match e {
            PathError::NotFound(_) => {
                execution_error(format!("Build context not found: {}", ctx_rel.display()))
            }
            e => path_failure(e, ErrorCode::ExecutionError),
        })?;
        if !ctx_dir.is_dir() {
            return Err(execution_error(format!(
                "Build context {} is not a folder",
                ctx_rel.display()
            )));
        }
        let (dockerfile_name, extra) = match (rewritten, df_path.strip_prefix(&ctx_dir)) {
            (None, Ok(inside)) => (inside.to_string_lossy().into_owned(), None),
            (rewritten, _) => (
                CONTEXT_DOCKERFILE.to_string(),
                Some(rewritten.unwrap_or(text).into_bytes()),
            ),
        };
        let tar_path = self.scratch_file("build");
        let (ctx, out) = (ctx_dir.clone(), tar_path.clone());
        blocking(move || tar_context(&ctx, extra.as_deref(), &out))
            .await?
            .map_err(|e| {
                execution_error(format!(
                    "cannot pack the build context {}: {e}",
                    ctx_rel.display()
                ))
            })?;

        let full = tenant_image(tenant, &image.name, &image.tag);
        let request = BuildRequest {
            tag: full.clone(),
            dockerfile: dockerfile_name,
            labels: labels(tenant, execution),
            context: Body::File(tar_path.clone()),
        };
        let log = LogBook::new(0);
        let outcome = tokio::time::timeout(limit, self.runtime.build_image(&request, &log)).await;
        let _ = fs::remove_file(&tar_path);
        match outcome {
            Err(_) => Err(TaskResult::fail(
                ErrorCode::MaxDurationExceeded,
                format!("build stopped after {}", duration(limit)),
            )
            .tail(log.tail())),
            Ok(Err(e)) => {
                Err(TaskResult::fail(ErrorCode::DockerBuildFailed, e.message).tail(log.tail()))
            }
            Ok(Ok(())) => {
                let id = self.inspect(&full).await?.map(|i| i.id).unwrap_or_default();
                Ok(TaskResult::ok(TaskOutputs {
                    image: Some(full.clone()),
                    message: Some(format!("built {full} ({})", names::short_id(&id))),
                    ..TaskOutputs::default()
                })
                .tail(log.tail()))
            }
        }
    }

    async fn load(
        &self,
        tenant: &str,
        volume: &str,
        tarfile: &str,
        image: &ImageRef,
    ) -> Step<TaskResult> {
        names::check_volume(volume).map_err(invalid)?;
        names::check_image_name(&image.name).map_err(invalid)?;
        names::check_tag(&image.tag).map_err(invalid)?;
        let root = self.volumes.volume_dir(tenant, volume);
        let rel = RelPath::parse(tarfile).map_err(invalid)?;
        let path = volume_file(&root, &rel, ErrorCode::DockerTarfileNotFound, "Tar file")?;
        let load_failed = |m: String| TaskResult::fail(ErrorCode::DockerTarfileLoadFailed, m);
        let p = path.clone();
        let archive = blocking(move || imagefmt::inspect_file(&p))
            .await?
            .map_err(|e| load_failed(format!("{}: {e}", rel.display())))?;
        let wanted = format!("{}:{}", image.name, image.tag);
        let Some(index) = archive.find(&wanted) else {
            return Err(TaskResult::fail(
                ErrorCode::DockerImageLoadFailed,
                format!("archive holds {}, not {wanted}", archive.describe_tags()),
            ));
        };
        let id = archive.images()[index].id.to_string();

        // Load a copy that names nothing, then tag the image id ourselves.
        let staged = self.scratch_file("load");
        let (p, out) = (path.clone(), staged.clone());
        let rewritten = blocking(move || -> Result<(), String> {
            let input = File::open(&p).map_err(|e| e.to_string())?;
            let output = File::create(&out).map_err(|e| e.to_string())?;
            imagefmt::write_unnamed(
                BufReader::new(input),
                &archive,
                index,
                BufWriter::new(output),
            )
            .map_err(|e| e.to_string())
        })
        .await?;
        if let Err(m) = rewritten {
            let _ = fs::remove_file(&staged);
            return Err(load_failed(format!("{}: {m}", rel.display())));
        }
        let log = LogBook::new(0);
        let outcome =
            tokio::time::timeout(LOAD_TIMEOUT, self.runtime.load_image(&staged, &log)).await;
        let _ = fs::remove_file(&staged);
        match outcome {
            Err(_) => {
                return Err(load_failed(format!(
                    "docker load did not finish within {}",
                    duration(LOAD_TIMEOUT)
                ))
                .tail(log.tail()));
            }
            Ok(Err(e)) => return Err(load_failed(e.message).tail(log.tail())),
            Ok(Ok(())) => {}
        }
        if self.inspect(&id).await?.is_none() {
            return Err(load_failed(format!(
                "the archive loaded, but its image {id} is not there"
            ))
            .tail(log.tail()));
        }
        let repo = format!("{}/{tenant}/{}", names::TENANT_IMAGE_PREFIX, image.name);
        self.runtime
            .tag_image(&id, &repo, &image.tag)
            .await
            .map_err(|e| {
                load_failed(format!(
                    "cannot tag {id} as {repo}:{}: {}",
                    image.tag, e.message
                ))
            })?;
        let full = tenant_image(tenant, &image.name, &image.tag);
        Ok(TaskResult::ok(TaskOutputs {
            image: Some(full.clone()),
            message: Some(format!("loaded {full} ({})", names::short_id(&id))),
            ..TaskOutputs::default()
        })
        .tail(log.tail()))
    }

    async fn pod_run(&self, tenant: &str, execution: &str, pod: Pod<'_>) -> Step<TaskResult> {
        names::check_pod_name(pod.name).map_err(invalid)?;
        names::check_volume(pod.volume).map_err(invalid)?;
        let image = self.resolve_image(tenant, pod.image).await?;
        let mut env = Vec::with_capacity(pod.env.len());
        for (k, v) in pod.env {
            if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                return Err(invalid(format!("environment variable {k:?} is invalid")));
            }
            env.push(format!("{k}={v}"));
        }
        let (root, owner) = self
            .volumes
            .ensure_volume(tenant, pod.volume)
            .map_err(execution_error)?;
        let short: String = execution.chars().take(8).collect();
        let name = format!("orbitdock-{tenant}-{}-{short}", pod.name);
        // A container of the same name is a leftover of this task cut short by a restart.
        if let Err(e) = self.runtime.remove_container(&name).await {
            tracing::warn!(container = name, error = %e.message, "cannot remove a leftover container");
        }
        let mut labels = labels(tenant, execution);
        labels.insert("org.orbitdock".into(), "1".into());
        labels.insert("org.orbitdock.pod".into(), pod.name.into());
        let non_empty = |v: Option<&[String]>| v.filter(|v| !v.is_empty()).map(<[String]>::to_vec);
        let spec = ContainerSpec {
            name,
            image: image.clone(),
            user: format!("{}:{}", owner.uid, owner.gid),
            hostname: hostname(tenant, pod.name),
            entrypoint: non_empty(pod.command),
            cmd: non_empty(pod.args),
            env,
            data_dir: root.clone(),
            labels,
        };
        let id = match self.runtime.create_container(&spec).await {
            Ok(id) => id,
            Err(e) if e.kind == RuntimeErrorKind::NotFound => {
                return Err(TaskResult::fail(
                    ErrorCode::DockerImageNotFound,
                    format!("image {image}: {}", e.message),
                ));
            }
            Err(e) => {
                return Err(execution_error(format!(
                    "cannot create the pod: {}",
                    e.message
                )));
            }
        };
        let log = LogBook::new(POD_LOG_KEEP);
        let outcome = self.supervise(&id, pod.limit).await;
        if let Err(e) = self.runtime.container_logs(&id, &log).await {
            log.push_line(&format!(
                "[orbitdock: the pod's output could not be read: {}]",
                e.message
            ));
        }
        if let Err(e) = self.runtime.remove_container(&id).await {
            tracing::warn!(container = id, error = %e.message, "cannot remove a pod's container");
        }
        self.write_pod_log(&root, owner, pod.name, &log).await;
        let tail = log.tail();
        let exec_format = |text: &str| text.to_ascii_lowercase().contains("exec format error");
        let result = match outcome {
            PodOutcome::StartFailed(m) if exec_format(&m) => TaskResult::fail(
                ErrorCode::DockerExecFormatError,
                format!(
                    "the image's binary is not for {}: {m}",
                    names::host_platform()
                ),
            ),
            PodOutcome::StartFailed(m) => execution_error(format!("the pod did not start: {m}")),
            PodOutcome::WaitFailed(m) => execution_error(format!("lost track of the pod: {m}")),
            PodOutcome::TimedOut => TaskResult::fail(
                ErrorCode::MaxDurationExceeded,
                format!("stopped after {}", duration(pod.limit)),
            ),
            PodOutcome::Exited(0) => TaskResult::ok(TaskOutputs {
                exit_code: Some(0),
                message: Some("exited with code 0".into()),
                ..TaskOutputs::default()
            }),
            PodOutcome::Exited(code) => {
                let mut r = if tail.iter().any(|l| exec_format(l)) {
                    TaskResult::fail(
                        ErrorCode::DockerExecFormatError,
                        format!(
                            "container exited with code {code}: exec format error (the binary is not for {})",
                            names::host_platform()
                        ),
                    )
                } else {
                    execution_error(format!("container exited with code {code}"))
                };
                r.outputs.exit_code = Some(code);
                r
            }
        };
        Ok(result.tail(tail))
    }

    /// Starts the container and waits for it within `limit`, stopping it when it overruns.
    async fn supervise(&self, id: &str, limit: Duration) -> PodOutcome {
        if let Err(e) = self.runtime.start_container(id).await {
            return PodOutcome::StartFailed(e.message);
        }
        match tokio::time::timeout(limit, self.runtime.wait_container(id)).await {
            Ok(Ok(code)) => PodOutcome::Exited(code),
            Ok(Err(e)) => PodOutcome::WaitFailed(e.message),
            Err(_) => {
                if let Err(e) = self.runtime.stop_container(id, STOP_GRACE).await {
                    tracing::warn!(container = id, error = %e.message, "cannot stop an overrunning pod");
                }
                PodOutcome::TimedOut
            }
        }
    }

    /// Keeps the pod's output in `<volume>/.logs/<pod>.log`; a failure only warns.
    async fn write_pod_log(&self, root: &Path, owner: Owner, pod: &str, log: &LogBook) {
        let (volumes, root, bytes) = (self.volumes.clone(), root.to_path_buf(), log.kept());
        let rel = RelPath::parse(&format!(".logs/{pod}.log"));
        let written = blocking(move || -> Result<(), String> {
            let rel = rel?;
            let path = volumes::prepare_write(&volumes, &root, &rel, owner)
                .map_err(|e| e.message().to_string())?;
            fsutil::write_atomic(&path, &bytes).map_err(|e| e.to_string())?;
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o644));
            volumes.chown(&path, owner);
            Ok(())
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

    /// The reference to run: a catalogue image as is, else the tenant's own.
    async fn resolve_image(&self, tenant: &str, image: &ImageRef) -> Step<String> {
        let written = format!("{}:{}", image.name, image.tag);
        let normalized = wire::normalize_image_ref(&written);
        if self.catalogue.contains(&normalized) {
            return match self.inspect(&normalized).await? {
                Some(_) => Ok(normalized),
                None => Err(TaskResult::fail(
                    ErrorCode::DockerImageNotFound,
                    format!("the catalogue image {normalized} is not loaded onboard"),
                )),
            };
        }
        let not_found = || {
            TaskResult::fail(
                ErrorCode::DockerImageNotFound,
                format!(
                    "image {written} is neither in the onboard catalogue ({}) nor one of your images; nothing can be pulled onboard",
                    self.catalogue.join(", ")
                ),
            )
        };
        if names::check_image_name(&image.name).is_err() || names::check_tag(&image.tag).is_err() {
            return Err(not_found());
        }
        let full = tenant_image(tenant, &image.name, &image.tag);
        match self.inspect(&full).await? {
            Some(_) => Ok(full),
            None => Err(not_found()),
        }
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

/// The fields of a pod.run task.
struct Pod<'a> {
    name: &'a str,
    image: &'a ImageRef,
    command: Option<&'a [String]>,
    args: Option<&'a [String]>,
    env: &'a [(String, String)],
    volume: &'a str,
    limit: Duration,
}

enum PodOutcome {
    StartFailed(String),
    WaitFailed(String),
    TimedOut,
    Exited(i64),
}

fn labels(tenant: &str, execution: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("org.orbitdock.tenant".to_string(), tenant.to_string()),
        ("org.orbitdock.execution".to_string(), execution.to_string()),
    ])
}

/// `<tenant>-<pod>` as a hostname: letters, digits and `-`, at most 63.
fn hostname(tenant: &str, pod: &str) -> String {
    let s: String = format!("{tenant}-{pod}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    s.trim_matches('-').to_string()
}

fn read_dockerfile(path: &Path) -> Result<String, String> {
    let len = fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > dockerfile::MAX_DOCKERFILE as u64 {
        return Err(format!(
            "the Dockerfile is larger than {} bytes",
            dockerfile::MAX_DOCKERFILE
        ));
    }
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "the Dockerfile is not UTF-8 text".to_string())
}

/// Packs a build context into an uncompressed tar at `out`, without following symlinks (they
/// go in as symlinks; the daemon resolves them inside the context). Files belong to root in the
/// tar. `extra` is added as [`CONTEXT_DOCKERFILE`].
fn tar_context(dir: &Path, extra: Option<&[u8]>, out: &Path) -> io::Result<()> {
    let (entries, truncated) = volumes::walk(dir, u32::MAX, volumes::MAX_WALK);
    if truncated {
        return Err(io::Error::other(format!(
            "more than {} entries",
            volumes::MAX_WALK
        )));
    }
    let mut tar = tar::Builder::new(BufWriter::new(File::create(out)?));
    for e in entries {
        if e.rel == CONTEXT_DOCKERFILE {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(e.meta.permissions().mode() & 0o7777);
        h.set_mtime(e.meta.modified().map(fsutil::unix_ms).unwrap_or(0) / 1000);
        let kind = e.meta.file_type();
        if kind.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            tar.append_data(&mut h, format!("{}/", e.rel), io::empty())?;
        } else if kind.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            tar.append_link(&mut h, &e.rel, fs::read_link(&e.path)?)?;
        } else if kind.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(e.meta.len());
            tar.append_data(&mut h, &e.rel, File::open(&e.path)?)?;
        }
    }
    if let Some(bytes) = extra {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        tar.append_data(&mut h, CONTEXT_DOCKERFILE, bytes)?;
    }
    tar.into_inner()?.flush()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Read;

    use wire::OnFailure;

    use super::*;
    use crate::runtime::ImageInfo;
    use crate::runtime::fake::{Call, FakeRuntime, Script};

    /// An executor on a fake runtime, in a temporary directory, with its outbox.
    pub(crate) struct Rig {
        pub(crate) _dir: tempfile::TempDir,
        pub(crate) fake: Arc<FakeRuntime>,
        pub(crate) exec: Executor,
        pub(crate) rx: mpsc::Receiver<Outgoing>,
    }

    pub(crate) fn rig(script: impl FnOnce(&mut Script)) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(FakeRuntime::with(|s| {
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
            runtime: fake.clone(),
            volumes: Arc::new(Volumes::open(&dir.path().join("volumes"), dir.path()).unwrap()),
            store: Arc::new(ObjectStore::open(dir.path()).unwrap()),
            scratch,
            outbox,
            catalogue: wire::catalogue("linux/amd64")
                .into_iter()
                .map(|b| b.name)
                .collect(),
            object_wait: Duration::from_millis(200),
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
            let task = PlanTask {
                id: "t".into(),
                on_failure: OnFailure::Stop,
                kind,
            };
            self.exec.run("alice", "exec0123456789", &task).await
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

    fn code(r: &TaskResult) -> Option<u16> {
        r.error.as_ref().map(|e| e.code.code())
    }

    fn image(name: &str, tag: &str) -> ImageRef {
        ImageRef {
            name: name.into(),
            tag: tag.into(),
        }
    }

    fn build(dockerfile: &str) -> TaskKind {
        TaskKind::DockerBuild {
            volume: "pvc".into(),
            dockerfile: dockerfile.into(),
            context: "/app".into(),
            image: image("hello", "v1"),
            max_duration_ms: None,
        }
    }

    fn tar_names(bytes: &[u8]) -> BTreeMap<String, String> {
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

    #[tokio::test]
    async fn uplink_places_verified_objects() {
        let r = rig(|_| {});
        let a = r.exec.store.put(b"input data\n");
        let b = r.exec.store.put(b"#!/bin/sh\n");
        let files = vec![
            UplinkFile {
                path: "/in/input.txt".into(),
                digest: a,
                size: 11,
                mode: 0o644,
            },
            UplinkFile {
                path: "bin/run.sh".into(),
                digest: b,
                size: 10,
                mode: 0o755,
            },
        ];
        let res = r
            .run(TaskKind::Uplink {
                volume: "pvc".into(),
                files,
            })
            .await;
        assert!(res.succeeded(), "{res:?}");
        assert_eq!(res.outputs.message.as_deref(), Some("2 files, 21 bytes"));
        assert_eq!(
            fs::read(r.volume().join("in/input.txt")).unwrap(),
            b"input data\n"
        );
        let mode = fs::metadata(r.volume().join("bin/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[tokio::test]
    async fn uplink_fails_when_objects_never_come() {
        let r = rig(|_| {});
        let d = Digest::of(b"never sent");
        let files = vec![UplinkFile {
            path: "x".into(),
            digest: d,
            size: 10,
            mode: 0o644,
        }];
        let res = r
            .run(TaskKind::Uplink {
                volume: "pvc".into(),
                files,
            })
            .await;
        assert_eq!(code(&res), Some(21), "{res:?}");
        for bad in ["../x", "/"] {
            let files = vec![UplinkFile {
                path: bad.into(),
                digest: d,
                size: 1,
                mode: 0o644,
            }];
            let res = r
                .run(TaskKind::Uplink {
                    volume: "pvc".into(),
                    files,
                })
                .await;
            assert_eq!(code(&res), Some(2), "{bad}: {res:?}");
        }
        let res = r
            .run(TaskKind::Uplink {
                volume: "../pvc".into(),
                files: vec![],
            })
            .await;
        assert_eq!(code(&res), Some(2));
    }

    #[tokio::test]
    async fn downlink_makes_objects_and_queues_each_once() {
        let mut r = rig(|_| {});
        let big = vec![7u8; (1 << 20) + 10];
        r.put(&[
            ("out/a.txt", b"a"),
            ("out/b.bin", &big),
            ("out/same.txt", b"a"),
            ("out/empty", b""),
        ]);
        let res = r
            .run(TaskKind::Downlink {
                volume: "pvc".into(),
                sources: vec!["out/*".into()],
            })
            .await;
        assert!(res.succeeded(), "{res:?}");
        let paths: Vec<(&str, u64)> = res
            .outputs
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.size))
            .collect();
        assert_eq!(
            paths,
            [
                ("/out/a.txt", 1),
                ("/out/b.bin", big.len() as u64),
                ("/out/empty", 0),
                ("/out/same.txt", 1)
            ]
        );
        // Every file is an object of the store; identical files are queued once.
        let mut queued = Vec::new();
        while let Ok(Outgoing::Object {
            digest,
            size,
            priority,
        }) = r.rx.try_recv()
        {
            assert_eq!(priority, DOWNLINK_PRIORITY);
            assert_eq!(
                fs::metadata(r.exec.store.path(&digest)).unwrap().len(),
                size
            );
            queued.push(digest);
        }
        assert_eq!(queued.len(), 3);
        for f in &res.outputs.files {
            assert!(queued.contains(&f.digest));
            assert_eq!(
                Digest::of(&fs::read(r.exec.store.path(&f.digest)).unwrap()),
                f.digest
            );
        }

        let res = r
            .run(TaskKind::Downlink {
                volume: "pvc".into(),
                sources: vec!["out/a.txt".into(), "nope*.txt".into()],
            })
            .await;
        assert_eq!(code(&res), Some(4));
        assert_eq!(res.error.unwrap().message, "File not found: nope*.txt");
        let res = r
            .run(TaskKind::Downlink {
                volume: "pvc".into(),
                sources: vec!["../../etc/passwd".into()],
            })
            .await;
        assert_eq!(code(&res), Some(2));
    }

    #[tokio::test]
    async fn lists_a_volume_or_all_of_them() {
        let r = rig(|_| {});
        r.put(&[("a/b/c.txt", b"abc"), ("top.txt", b"t")]);
        let res = r
            .run(TaskKind::FilesList {
                volume: Some("pvc".into()),
                folder: "/a".into(),
                depth: 1,
            })
            .await;
        let paths: Vec<&str> = res
            .outputs
            .listing
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(paths, ["/a/b"]);
        let res = r
            .run(TaskKind::FilesList {
                volume: None,
                folder: "/".into(),
                depth: 2,
            })
            .await;
        let paths: Vec<&str> = res
            .outputs
            .listing
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(paths, ["/pvc", "/pvc/a", "/pvc/top.txt"]);
        let res = r
            .run(TaskKind::FilesList {
                volume: Some("pvc".into()),
                folder: "/nope".into(),
                depth: 1,
            })
            .await;
        assert_eq!(code(&res), Some(4));
    }

    #[tokio::test]
    async fn build_checks_every_base_and_rewrites_tenant_images() {
        let r = rig(|s| {
            s.images.insert(
                "tenants/alice/base:1".into(),
                ImageInfo {
                    id: "sha256:c".into(),
                    ..Default::default()
                },
            );
            s.build_log = vec!["Step 1/3 : FROM x".into()];
        });
        r.put(&[
            ("app/Dockerfile", b"FROM busybox:latest\nCOPY x /x\n"),
            ("app/x", b"x"),
            (
                "Dockerfile.tenant",
                b"FROM fpga.dphi.space:5000/busybox AS b\nFROM base:1\nCOPY --from=b /bin /bin\n",
            ),
            ("Dockerfile.ubuntu", b"FROM ubuntu:22.04\n"),
            ("Dockerfile.other", b"FROM base:2\n"),
            (
                "Dockerfile.add",
                b"FROM busybox\nADD https://example.com/x /x\n",
            ),
        ]);
        std::os::unix::fs::symlink("/etc/passwd", r.volume().join("app/link")).unwrap();

        // A Dockerfile inside the context, unchanged: sent as is.
        let res = r.run(build("app/Dockerfile")).await;
        assert!(res.succeeded(), "{res:?}");
        assert_eq!(res.outputs.image.as_deref(), Some("tenants/alice/hello:v1"));
        assert_eq!(res.outputs.log_tail, ["Step 1/3 : FROM x"]);
        let context = tar_names(&r.fake.script.lock().unwrap().bodies[0]);
        assert_eq!(
            context.keys().collect::<Vec<_>>(),
            ["Dockerfile", "link", "x"]
        );

        // Outside the context and rewritten: added as .orbitdock.Dockerfile.
        let res = r.run(build("Dockerfile.tenant")).await;
        assert!(res.succeeded(), "{res:?}");
        let context = tar_names(&r.fake.script.lock().unwrap().bodies[1]);
        assert_eq!(
            context[CONTEXT_DOCKERFILE],
            "FROM busybox:latest AS b\nFROM tenants/alice/base:1\nCOPY --from=b /bin /bin\n"
        );
        let builds: Vec<Call> = r
            .fake
            .calls()
            .into_iter()
            .filter(|c| matches!(c, Call::Build { .. }))
            .collect();
        let Call::Build {
            tag,
            dockerfile,
            labels,
        } = &builds[1]
        else {
            unreachable!()
        };
        assert_eq!(
            (tag.as_str(), dockerfile.as_str()),
            ("tenants/alice/hello:v1", CONTEXT_DOCKERFILE)
        );
        assert_eq!(labels["org.orbitdock.tenant"], "alice");

        let res = r.run(build("Dockerfile.ubuntu")).await;
        assert_eq!(code(&res), Some(15));
        assert!(res.error.unwrap().message.starts_with("FROM ubuntu:22.04 (Dockerfile line 1): not in the onboard catalogue (gcr.io/distroless/static-debian12:latest"));
        let res = r.run(build("Dockerfile.other")).await;
        assert_eq!(code(&res), Some(15));
        let res = r.run(build("Dockerfile.add")).await;
        assert_eq!(code(&res), Some(12));
        assert_eq!(
            res.error.unwrap().message,
            "ADD https://example.com/x (Dockerfile line 2): nothing can be downloaded onboard"
        );
        let res = r.run(build("missing/Dockerfile")).await;
        assert_eq!(code(&res), Some(13));
        assert_eq!(
            res.error.unwrap().message,
            "Dockerfile not found: /missing/Dockerfile"
        );
        // Only the two good builds reached the runtime.
        assert_eq!(
            r.fake
                .calls()
                .iter()
                .filter(|c| matches!(c, Call::Build { .. }))
                .count(),
            2
        );
    }

    #[tokio::test]
    async fn build_failures_carry_the_daemon_message_and_log() {
        let r = rig(|s| {
            s.build_log = vec![
                "Step 2/2 : RUN wget x".into(),
                "wget: bad address 'x'".into(),
            ];
            s.build_error =
                Some("The command '/bin/sh -c wget x' returned a non-zero code: 1".into());
        });
        r.put(&[("app/Dockerfile", b"FROM busybox\nRUN wget x\n")]);
        let res = r.run(build("app/Dockerfile")).await;
        let e = res.error.unwrap();
        assert_eq!(e.code.code(), 12);
        assert_eq!(
            e.message,
            "The command '/bin/sh -c wget x' returned a non-zero code: 1"
        );
        assert_eq!(e.log_tail.len(), 3);

        let r = rig(|s| s.build_hangs = true);
        r.put(&[("app/Dockerfile", b"FROM busybox\n")]);
        let mut kind = build("app/Dockerfile");
        if let TaskKind::DockerBuild {
            max_duration_ms, ..
        } = &mut kind
        {
            *max_duration_ms = Some(50);
        }
        let res = r.run(kind).await;
        assert_eq!(code(&res), Some(20));
    }

    /// sha256 of `{}`, the config of [`save_archive`]'s image.
    const CONFIG_HEX: &str = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    fn save_archive(tags: &[&str]) -> Vec<u8> {
        save_archive_with(tags, CONFIG_HEX)
    }

    fn save_archive_with(tags: &[&str], hex: &str) -> Vec<u8> {
        let manifest =
            serde_json::json!([{"Config": format!("{hex}.json"), "RepoTags": tags, "Layers": []}]);
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [
            (format!("{hex}.json"), b"{}".to_vec()),
            ("repositories".into(), b"{}".to_vec()),
            (
                "manifest.json".into(),
                serde_json::to_vec(&manifest).unwrap(),
            ),
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, &data[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[tokio::test]
    async fn load_refuses_a_config_that_is_not_its_id() {
        let r = rig(|_| {});
        // The manifest claims an id (perhaps another tenant's image) its config does not hash to.
        r.put(&[("app.tar", &save_archive_with(&["app:1"], &"d".repeat(64)))]);
        let kind = TaskKind::DockerLoad {
            volume: "pvc".into(),
            tarfile: "/app.tar".into(),
            image: image("app", "1"),
        };
        let res = r.run(kind).await;
        assert_eq!(code(&res), Some(11), "{res:?}");
        assert!(
            res.error.unwrap().message.contains("not the sha256:dddd"),
            "message names the mismatch"
        );
        assert!(r.fake.script.lock().unwrap().bodies.is_empty());
    }

    #[tokio::test]
    async fn load_strips_names_and_tags_the_id() {
        let r = rig(|_| {});
        r.put(&[("app.tar", &save_archive(&["busybox:latest"]))]);
        let kind = TaskKind::DockerLoad {
            volume: "pvc".into(),
            tarfile: "/app.tar".into(),
            image: image("busybox", "latest"),
        };
        let res = r.run(kind).await;
        assert!(res.succeeded(), "{res:?}");
        assert_eq!(
            res.outputs.image.as_deref(),
            Some("tenants/alice/busybox:latest")
        );
        let loaded = r.fake.script.lock().unwrap().bodies[0].clone();
        let names = tar_names(&loaded);
        assert!(!names.contains_key("repositories"));
        assert!(
            names["manifest.json"].contains(r#""RepoTags":[]"#),
            "{}",
            names["manifest.json"]
        );
        assert!(r.fake.calls().contains(&Call::Tag {
            image: format!("sha256:{CONFIG_HEX}"),
            repo: "tenants/alice/busybox".into(),
            tag: "latest".into()
        }));

        let kind = TaskKind::DockerLoad {
            volume: "pvc".into(),
            tarfile: "/app.tar".into(),
            image: image("other", "1"),
        };
        let res = r.run(kind).await;
        assert_eq!(code(&res), Some(16));
        assert_eq!(
            res.error.unwrap().message,
            "archive holds [busybox:latest], not other:1"
        );
        let kind = TaskKind::DockerLoad {
            volume: "pvc".into(),
            tarfile: "/nope.tar".into(),
            image: image("x", "1"),
        };
        assert_eq!(code(&r.run(kind).await), Some(10));
        r.put(&[("junk.tar", b"junk")]);
        let kind = TaskKind::DockerLoad {
            volume: "pvc".into(),
            tarfile: "/junk.tar".into(),
            image: image("x", "1"),
        };
        assert_eq!(code(&r.run(kind).await), Some(11));
    }

    fn pod(image: ImageRef, max: Option<u64>) -> TaskKind {
        TaskKind::PodRun {
            pod_name: "p1".into(),
            image,
            command: Some(vec!["/bin/sh".into(), "-c".into()]),
            args: Some(vec!["echo hi".into()]),
            env: vec![("A".into(), "b".into())],
            volume: "pvc".into(),
            max_duration_ms: max,
        }
    }

    #[tokio::test]
    async fn pods_run_isolated_and_are_always_removed() {
        let r = rig(|s| {
            s.exit_code = Some(3);
            s.logs = b"hello\nboom\n".to_vec();
        });
        let res = r.run(pod(image("busybox", "latest"), Some(60_000))).await;
        assert_eq!(code(&res), Some(4));
        assert_eq!(
            res.error.as_ref().unwrap().message,
            "container exited with code 3"
        );
        assert_eq!(res.outputs.exit_code, Some(3));
        assert_eq!(res.outputs.log_tail, ["hello", "boom"]);
        assert_eq!(
            fs::read(r.volume().join(".logs/p1.log")).unwrap(),
            b"hello\nboom\n"
        );
        let calls = r.fake.calls();
        let Some(Call::Create(spec)) = calls.iter().find(|c| matches!(c, Call::Create(_))) else {
            panic!("{calls:?}")
        };
        let owner = r.exec.volumes.owner("alice").unwrap();
        assert_eq!(spec.name, "orbitdock-alice-p1-exec0123");
        assert_eq!(spec.image, "busybox:latest");
        assert_eq!(spec.user, format!("{}:{}", owner.uid, owner.gid));
        assert_eq!(
            spec.entrypoint.as_deref(),
            Some(&["/bin/sh".to_string(), "-c".to_string()][..])
        );
        assert_eq!(spec.cmd.as_deref(), Some(&["echo hi".to_string()][..]));
        assert_eq!(spec.env, ["A=b"]);
        assert_eq!(spec.labels["org.orbitdock.tenant"], "alice");
        assert_eq!(spec.labels["org.orbitdock"], "1");
        assert_eq!(spec.data_dir, r.volume());
        assert_eq!(
            calls.last(),
            Some(&Call::Remove("id-orbitdock-alice-p1-exec0123".into()))
        );

        // Overrunning: stopped, then removed.
        let r = rig(|s| s.exit_code = None);
        let res = r.run(pod(image("busybox", "latest"), Some(50))).await;
        assert_eq!(code(&res), Some(20));
        assert!(res.error.unwrap().message.starts_with("stopped after"));
        let calls = r.fake.calls();
        let stop = calls
            .iter()
            .position(|c| matches!(c, Call::Stop(_)))
            .unwrap();
        assert!(matches!(calls.last(), Some(Call::Remove(_))) && stop < calls.len() - 1);

        // Wrong architecture.
        let r = rig(|s| {
            s.start_error = Some("OCI runtime create failed: exec format error: unknown".into())
        });
        assert_eq!(
            code(&r.run(pod(image("busybox", "latest"), None)).await),
            Some(14)
        );
        let r = rig(|s| {
            s.exit_code = Some(1);
            s.logs = b"exec /app: exec format error\n".to_vec();
        });
        assert_eq!(
            code(&r.run(pod(image("busybox", "latest"), None)).await),
            Some(14)
        );
    }

    #[tokio::test]
    async fn pods_only_run_catalogue_or_own_images() {
        let r = rig(|s| {
            s.exit_code = Some(0);
            s.images
                .insert("tenants/alice/app:1".into(), ImageInfo::default());
            s.images
                .insert("tenants/bob/secret:1".into(), ImageInfo::default());
        });
        assert!(r.run(pod(image("app", "1"), None)).await.succeeded());
        for (name, tag) in [
            ("tenants/bob/secret", "1"),
            ("secret", "1"),
            ("ubuntu", "latest"),
            ("app", "bad:tag"),
        ] {
            let res = r.run(pod(image(name, tag), None)).await;
            assert_eq!(code(&res), Some(15), "{name}:{tag}");
        }
        let created: Vec<String> = r
            .fake
            .calls()
            .into_iter()
            .filter_map(|c| {
                if let Call::Create(s) = c {
                    Some(s.image)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(created, ["tenants/alice/app:1"]);
    }

    #[test]
    fn hostnames_are_valid() {
        assert_eq!(hostname("alice", "p_1.x"), "alice-p-1-x");
        assert_eq!(hostname(&"a".repeat(61), "zz").len(), 63);
        assert_eq!(hostname(&"a".repeat(62), "zz").len(), 62);
    }
}
