//! Preflight on the ground: the `preflight` crate run over what each `docker.build` and
//! `docker.load` task of an operation will find onboard, and over the image of each `pod.run`,
//! when the operation is validated or applied, before an execution starts, and on the
//! dashboard.
//!
//! The volume a task sees is rebuilt here, in task order: the ground's mirror of the volume
//! onboard (paths and sizes only; their bytes are not on the ground), overlaid with the files the
//! operation's earlier uplink tasks place in it, as the executor compiles them from the
//! namespace's latest files (their bytes are blobs, read lazily and only as far as preflight
//! needs). Images that earlier build and load tasks of the operation produce count as the
//! tenant's images, and so do those the system reported built or loaded by the tenant's earlier
//! executions (`db::reported_images`): the tenant's images known onboard. A `pod.run` image must
//! be one of them or a catalogue image of the system, classified as the flight agent classifies
//! it (`preflight::lint_pod_image`). A Dockerfile or archive known only from the mirror cannot be read, so its
//! task is not checked; a file that exists only onboard is present, but not looked into.
//!
//! What an earlier `pod.run` on the same volume writes cannot be known: with one before it, a
//! missing Dockerfile, archive or COPY source is a warning instead of an error.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;

use wire::names::{NamespacePath, VolumeName, VolumePath};
use wire::{Digest, TaskKind};

use crate::Ground;
use crate::blobs::BlobStore;
use crate::config::limits;
use crate::db::{self, VolumeFileRow};
use crate::error::ApiError;
use crate::executor::{self, Source};
use crate::operation::{self, Operation, TaskSpec};

/// One preflight finding in an operation: where (task, file in the volume, line and column) and
/// what (the rule code, its severity, a message and a help line). See `docs/api.md`.
///
/// Not serializable: the API shows it as an `api::PreflightFinding`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightFinding {
    /// The id of the `docker.build`, `docker.load` or `pod.run` task.
    pub task: String,
    /// The file, as a path in the task's volume (`Dockerfile`, `ctx/app`, `images/app.tar`);
    /// empty for a `pod.run`'s image.
    pub file: String,
    /// 1-based line, or 0 when the finding is about the whole file.
    pub line: u32,
    /// 1-based column, or 0 with `line == 0`.
    pub column: u32,
    /// The preflight rule (`OD201`), documented in `crates/preflight/RULES.md`.
    pub code: &'static str,
    /// `error` (the task would fail onboard), `warning` or `info`.
    pub severity: preflight::Severity,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

/// Most entries of one mirrored volume taken into account.
const MAX_MIRROR_ENTRIES: i64 = 1_000_000;
/// Most images the system reported for the tenant taken into account (the latest).
const MAX_REPORTED_IMAGES: i64 = 10_000;
/// The name the flight agent gives a Dockerfile that lies outside its build context.
const CONTEXT_DOCKERFILE: &str = ".orbitdock.Dockerfile";

/// The system an operation runs on when the request names none: the operation's, else `em`.
pub(crate) fn operation_system(op: &Operation) -> String {
    op.system
        .as_ref()
        .map_or_else(|| "em".to_string(), |s| s.to_string())
}

/// Preflight for a validated operation on `system`, as the tenant would start it now. Reads
/// nothing of a namespace that belongs to another tenant (and finds nothing there).
pub(crate) async fn check_operation(
    ground: &Ground,
    tenant: &str,
    op: &Operation,
    system: &str,
) -> Result<Vec<PreflightFinding>, ApiError> {
    if !has_checks(op) {
        return Ok(Vec::new());
    }
    match db::namespace_owner(ground.db(), &op.namespace).await? {
        Some(owner) if owner != tenant => return Ok(Vec::new()),
        _ => {}
    }
    let sources = executor::resolve_sources(ground, &op.namespace, op).await?;
    check_with_sources(ground, tenant, op, system, &sources).await
}

/// Refuses to start an execution whose builds, loads or pods preflight finds errors in
/// (`ApiError::Preflight`). An operation with a missing uplink source is let through: it fails
/// before anything is sent, with the clearer `File not found`.
pub(crate) async fn gate(
    ground: &Ground,
    tenant: &str,
    op: &Operation,
    system: &str,
    sources: &HashMap<NamespacePath, Source>,
) -> Result<(), ApiError> {
    if !has_checks(op) || sources.values().any(|s| *s == Source::Missing) {
        return Ok(());
    }
    let findings = check_with_sources(ground, tenant, op, system, sources).await?;
    let errors: Vec<&PreflightFinding> = findings
        .iter()
        .filter(|f| f.severity == preflight::Severity::Error)
        .collect();
    let Some(first) = errors.first() else {
        return Ok(());
    };
    let n = errors.len();
    let message = format!(
        "preflight found {n} error{} (send \"force\": true to start anyway): {}",
        if n == 1 { "" } else { "s" },
        one_line(first)
    );
    Err(ApiError::Preflight { message, findings })
}

/// The dashboard's preflight of one operation: its system and the findings of its latest
/// revision there (nothing when the YAML does not validate; the validation says why).
pub(crate) async fn operation_findings(
    ground: &Ground,
    user: &str,
    yaml: String,
) -> Result<(String, Vec<PreflightFinding>), ApiError> {
    let Ok(op) = operation::parse_off_workers(yaml).await? else {
        return Ok(("em".to_string(), Vec::new()));
    };
    let system = operation_system(&op);
    let findings = check_operation(ground, user, &op, &system).await?;
    Ok((system, findings))
}

/// `task: file:line:col: error[OD101]: message`.
fn one_line(f: &PreflightFinding) -> String {
    let place = if f.file.is_empty() {
        String::new()
    } else if f.line == 0 {
        format!("{}: ", f.file)
    } else {
        format!("{}:{}:{}: ", f.file, f.line, f.column)
    };
    format!(
        "task '{}': {place}{}[{}]: {}",
        f.task,
        f.severity.as_str(),
        f.code,
        f.message
    )
}

fn has_checks(op: &Operation) -> bool {
    op.tasks.iter().any(|t| {
        matches!(
            t.spec,
            TaskSpec::DockerBuild { .. } | TaskSpec::DockerLoad { .. } | TaskSpec::PodRun { .. }
        )
    })
}

async fn check_with_sources(
    ground: &Ground,
    tenant: &str,
    op: &Operation,
    system: &str,
    sources: &HashMap<NamespacePath, Source>,
) -> Result<Vec<PreflightFinding>, ApiError> {
    let mut mirror = BTreeMap::new();
    for volume in checked_volumes(op, tenant) {
        let rows = mirrored_volume(ground, system, tenant, &volume).await?;
        mirror.insert(volume, rows);
    }
    let reported = db::reported_images(ground.db(), tenant, system, MAX_REPORTED_IMAGES).await?;
    let checks = plan(op, tenant, sources, &mirror, &reported);
    let system = system_of(ground, system).await?;
    let blobs = ground.blobs().clone();
    fetch_blobs(&checks, &blobs).await;
    tokio::task::spawn_blocking(move || run(&checks, &system, &blobs))
        .await
        .map_err(|e| ApiError::internal(format!("preflight stopped: {e}")))
}

/// Makes the blobs the checks may read local (with a shared blob store, a replica may not hold
/// them yet). One that cannot be fetched is logged, and the check reading it reports it missing.
async fn fetch_blobs(checks: &[Check], blobs: &BlobStore) {
    if !blobs.is_shared() {
        return;
    }
    let mut digests = BTreeSet::new();
    for check in checks {
        match check {
            Check::Build { context, .. } => {
                digests.extend(context.values().filter_map(|item| match item {
                    Item::Blob { digest, .. } => Some(*digest),
                    Item::Onboard { .. } => None,
                }));
            }
            Check::Load { blob, .. } => {
                digests.insert(*blob);
            }
            _ => {}
        }
    }
    for digest in digests {
        if let Err(e) = blobs.ensure(&digest).await {
            tracing::warn!(%digest, error = %e, "preflight could not fetch a blob from the shared store");
        }
    }
}

/// The volumes the operation's build and load tasks use.
fn checked_volumes(op: &Operation, tenant: &str) -> BTreeSet<String> {
    op.tasks
        .iter()
        .filter_map(|t| match &t.spec {
            TaskSpec::DockerBuild { volume, .. } | TaskSpec::DockerLoad { volume, .. } => {
                Some(volume_name(volume.as_ref(), tenant))
            }
            _ => None,
        })
        .collect()
}

fn volume_name(volume: Option<&VolumeName>, tenant: &str) -> String {
    executor::volume_or_default(volume, tenant)
}

async fn mirrored_volume(
    ground: &Ground,
    system: &str,
    tenant: &str,
    volume: &str,
) -> Result<Vec<VolumeFileRow>, ApiError> {
    let mut out = Vec::new();
    loop {
        let page = db::volume_files(
            ground.db(),
            system,
            tenant,
            volume,
            limits::PAGE_MAX,
            out.len() as i64,
        )
        .await?;
        let full = page.len() as i64 == limits::PAGE_MAX;
        out.extend(page);
        if !full || out.len() as i64 >= MAX_MIRROR_ENTRIES {
            return Ok(out);
        }
    }
}

/// The system's facts for preflight: its declaration (`declared::declaration`: platform,
/// builder, catalogue with what each image holds), each catalogue image without a pinned digest
/// taking the id its agent last reported for it, so a `FROM name@sha256:…` is checked against
/// what is onboard.
async fn system_of(ground: &Ground, name: &str) -> Result<preflight::System, ApiError> {
    let row = db::system(ground.db(), name).await?;
    let reported = row.map(|r| {
        let mut ids: Vec<(String, String)> =
            db::json_or_default::<Vec<wire::BaseImage>>(&r.catalogue)
                .into_iter()
                .filter_map(|b| Some((b.name, b.digest?.to_string())))
                .collect();
        if let Some(engine) = r.engine_report() {
            ids.extend(engine.images.into_iter().map(|i| (i.name, i.id)));
        }
        ids
    });
    Ok(system_from(
        name,
        &crate::declared::declaration(ground, name),
        reported.unwrap_or_default(),
    ))
}

/// The system preflight judges against: the declaration, with the ids `reported` (name, id)
/// filling the digests it does not pin.
fn system_from(
    name: &str,
    declared: &wire::SystemDescription,
    reported: Vec<(String, String)>,
) -> preflight::System {
    let mut system = preflight::System::declared(name, declared);
    for image in &mut system.catalogue.images {
        if image.digest.is_none() {
            image.digest = reported
                .iter()
                .find(|(n, _)| wire::normalize_image_ref(n) == image.name)
                .map(|(_, id)| id.clone());
        }
    }
    system
}

// ---- the virtual volume and the checks (pure) ----

/// A path of a rebuilt volume.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// Placed by an earlier uplink task of the operation: its bytes are this blob.
    Blob {
        digest: Digest,
        size: u64,
        mode: u32,
    },
    /// Already onboard (the mirror): its size is known, its bytes are not.
    Onboard { size: u64, dir: bool },
}

/// A volume as a task will find it: volume path (no leading `/`) → item.
type Volume = BTreeMap<String, Item>;

/// One preflight run.
#[derive(Debug, Clone, PartialEq)]
enum Check {
    Build {
        task: String,
        /// The build context: paths relative to it.
        context: Volume,
        /// The context folder in the volume (`""` for the root).
        context_dir: String,
        /// The Dockerfile's name in `context`.
        dockerfile: String,
        /// The Dockerfile's path in the volume.
        dockerfile_path: String,
        tenant_images: Vec<String>,
        after_pod: bool,
    },
    Load {
        task: String,
        tarfile: String,
        blob: Digest,
        /// The image the task loads, `name:tag`: the archive must hold it.
        image: String,
    },
    /// A `pod.run`'s image: a catalogue image, or one of the tenant's.
    Pod {
        task: String,
        image: String,
        node: Option<String>,
        tenant_images: Vec<String>,
    },
    /// A Dockerfile or archive that is neither placed by an earlier uplink nor onboard.
    Missing {
        task: String,
        file: String,
        volume: String,
        what: &'static str,
        after_pod: bool,
        /// A file of the same name the volume does hold (an operation written for placing
        /// uplinked files by name alone looks for it at the wrong path).
        elsewhere: Option<String>,
    },
}

/// Walks the operation's tasks in order, rebuilding each volume, and lists what to check.
/// `mirror` holds the onboard listing of every volume a build or load task uses; `reported`, the
/// tenant's images the system reported built or loaded (`name:tag`).
fn plan(
    op: &Operation,
    tenant: &str,
    sources: &HashMap<NamespacePath, Source>,
    mirror: &BTreeMap<String, Vec<VolumeFileRow>>,
    reported: &[String],
) -> Vec<Check> {
    let mut volumes: BTreeMap<String, Volume> = mirror
        .iter()
        .map(|(name, rows)| {
            let volume = rows
                .iter()
                .filter_map(|r| {
                    let path = String::from(VolumePath::parse(&r.path).ok()?);
                    let item = Item::Onboard {
                        size: u64::try_from(r.size).unwrap_or(0),
                        dir: r.is_dir,
                    };
                    (!path.is_empty()).then_some((path, item))
                })
                .collect();
            (name.clone(), volume)
        })
        .collect();
    let mut pods: BTreeSet<String> = BTreeSet::new();
    let mut images: Vec<String> = reported.to_vec();
    let mut checks = Vec::new();
    for task in &op.tasks {
        match &task.spec {
            TaskSpec::Uplink { .. } => {
                let Some(files) = uplink_files(op, task, tenant, sources) else {
                    continue;
                };
                let (volume, files) = files;
                // Only volumes something checks are kept.
                if let Some(v) = volumes.get_mut(&volume) {
                    for f in files {
                        let item = Item::Blob {
                            digest: f.digest,
                            size: f.size,
                            mode: f.mode,
                        };
                        v.insert(f.path, item);
                    }
                }
            }
            TaskSpec::PodRun {
                volume,
                image,
                node,
                ..
            } => {
                pods.insert(volume_name(volume.as_ref(), tenant));
                checks.push(Check::Pod {
                    task: task.id.to_string(),
                    image: format!("{}:{}", image.name, image.tag),
                    node: node.clone(),
                    tenant_images: images.clone(),
                });
            }
            TaskSpec::DockerBuild {
                dockerfile,
                context,
                image,
                volume,
                ..
            } => {
                let name = volume_name(volume.as_ref(), tenant);
                let after_pod = pods.contains(&name);
                let empty = Volume::new();
                let v = volumes.get(&name).unwrap_or(&empty);
                let missing = || Check::Missing {
                    task: task.id.to_string(),
                    file: dockerfile.to_string(),
                    volume: name.clone(),
                    what: "Dockerfile",
                    after_pod,
                    elsewhere: same_name(v, dockerfile),
                };
                match v.get(dockerfile.as_str()) {
                    Some(Item::Blob { .. }) => {
                        let mut ctx = context_of(v, context);
                        let inside = under(dockerfile, context);
                        let df_name = match inside {
                            Some(rel) => rel.to_string(),
                            None => {
                                // The agent sends it into the context under its own name.
                                if let Some(item) = v.get(dockerfile.as_str()) {
                                    ctx.insert(CONTEXT_DOCKERFILE.to_string(), item.clone());
                                }
                                CONTEXT_DOCKERFILE.to_string()
                            }
                        };
                        checks.push(Check::Build {
                            task: task.id.to_string(),
                            context: ctx,
                            context_dir: context.to_string(),
                            dockerfile: df_name,
                            dockerfile_path: dockerfile.to_string(),
                            tenant_images: images.clone(),
                            after_pod,
                        });
                    }
                    Some(Item::Onboard { dir: false, .. }) => {
                        // Onboard from an earlier execution: its text is not on the ground.
                    }
                    Some(Item::Onboard { dir: true, .. }) | None => checks.push(missing()),
                }
                images.push(format!("{}:{}", image.name, image.tag));
            }
            TaskSpec::DockerLoad {
                tarfile,
                image,
                volume,
            } => {
                let name = volume_name(volume.as_ref(), tenant);
                let after_pod = pods.contains(&name);
                let v = volumes.get(&name);
                match v.and_then(|v| v.get(tarfile.as_str())) {
                    Some(Item::Blob { digest, .. }) => checks.push(Check::Load {
                        task: task.id.to_string(),
                        tarfile: tarfile.to_string(),
                        blob: *digest,
                        image: image.to_string(),
                    }),
                    Some(Item::Onboard { dir: false, .. }) => {}
                    Some(Item::Onboard { dir: true, .. }) | None => checks.push(Check::Missing {
                        task: task.id.to_string(),
                        file: tarfile.to_string(),
                        volume: name,
                        what: "archive",
                        after_pod,
                        elsewhere: v.and_then(|v| same_name(v, tarfile)),
                    }),
                }
                images.push(format!("{}:{}", image.name, image.tag));
            }
            TaskSpec::FilesDelete { sources, volume } => {
                if let Some(v) = volumes.get_mut(&volume_name(volume.as_ref(), tenant)) {
                    for p in sources {
                        let (path, under) = (p.as_str(), format!("{}/", p.as_str()));
                        v.retain(|k, _| !p.is_root() && k != path && !k.starts_with(&under));
                    }
                }
            }
            TaskSpec::FilesMove { paths, volume } => {
                // What a move leaves where: every entry at or under the source, under the
                // destination instead, unless something stands at the destination (the agent
                // refuses the move then; both by the one judge, `wire::FileMove`).
                if let Some(v) = volumes.get_mut(&volume_name(volume.as_ref(), tenant))
                    && !v.keys().any(|k| paths.blocked_by(k))
                {
                    let moved: Vec<(String, String)> = v
                        .keys()
                        .filter_map(|k| Some((k.clone(), paths.moved(k)?)))
                        .collect();
                    for (from, to) in moved {
                        if let Some(item) = v.remove(&from) {
                            v.insert(to, item);
                        }
                    }
                }
            }
            TaskSpec::ImageDelete { image } => {
                // A later pod.run of it will not find it.
                let gone = format!("{}:{}", image.name, image.tag);
                images.retain(|i| *i != gone);
            }
            // A picture is nothing a later task's preflight reads.
            TaskSpec::Downlink { .. }
            | TaskSpec::FilesList { .. }
            | TaskSpec::ImageList
            | TaskSpec::CameraCapture { .. }
            | TaskSpec::PodStop { .. }
            | TaskSpec::PodLogs { .. } => {}
        }
    }
    checks
}

/// A file of the volume named like `path` (its last component), at another path.
fn same_name(volume: &Volume, path: &VolumePath) -> Option<String> {
    let name = path.components().last()?;
    volume
        .iter()
        .find(|(k, item)| {
            k.rsplit('/').next() == Some(name)
                && *k != path.as_str()
                && !matches!(item, Item::Onboard { dir: true, .. })
        })
        .map(|(k, _)| k.clone())
}

/// The files an uplink task places, compiled by the executor exactly as an execution would
/// (the task alone, so that another task's missing source does not hide this one's files).
fn uplink_files(
    op: &Operation,
    task: &operation::Task,
    tenant: &str,
    sources: &HashMap<NamespacePath, Source>,
) -> Option<(String, Vec<wire::UplinkFile>)> {
    let single = Operation {
        tasks: vec![task.clone()],
        ..op.clone()
    };
    let plan = executor::compile(&single, tenant, "preflight", sources).ok()?;
    match plan.tasks.into_iter().next()?.kind {
        TaskKind::Uplink { volume, files } => Some((volume, files)),
        _ => None,
    }
}

/// `path` relative to `dir` (`""` is the root), if it lies under it.
fn under<'a>(path: &'a str, dir: &str) -> Option<&'a str> {
    if dir.is_empty() {
        return Some(path);
    }
    path.strip_prefix(dir)?.strip_prefix('/')
}

/// The part of a volume under the context folder, relative to it.
fn context_of(volume: &Volume, context: &str) -> Volume {
    if context.is_empty() {
        return volume.clone();
    }
    let prefix = format!("{context}/");
    volume
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, item)| (k[prefix.len()..].to_string(), item.clone()))
        .collect()
}

/// Runs every check; blocking (reads blobs).
fn run(checks: &[Check], system: &preflight::System, blobs: &BlobStore) -> Vec<PreflightFinding> {
    let mut out = Vec::new();
    for check in checks {
        match check {
            Check::Build {
                task,
                context,
                context_dir,
                dockerfile,
                dockerfile_path,
                tenant_images,
                after_pod,
            } => {
                let source = BlobContext {
                    items: context,
                    blobs,
                };
                let options = preflight::Options {
                    tenant_images: tenant_images.clone(),
                    ..preflight::Options::onboard()
                };
                let report = preflight::lint_source(&source, dockerfile, system, &options);
                for d in report.diagnostics {
                    let file = if d.file == *dockerfile {
                        dockerfile_path.clone()
                    } else {
                        join(context_dir, &d.file)
                    };
                    let mut f = finding(task, file, d);
                    if *after_pod && f.code == "OD302" {
                        soften(&mut f);
                    }
                    out.push(f);
                }
            }
            Check::Load {
                task,
                tarfile,
                blob,
                image,
            } => {
                let options = preflight::ArchiveOptions {
                    known_layers: &[],
                    eta: preflight::Eta::None,
                };
                let report =
                    preflight::lint_archive(&blobs.path(blob), Some(image), system, &options);
                for d in report.diagnostics {
                    out.push(finding(task, tarfile.clone(), d));
                }
            }
            Check::Pod {
                task,
                image,
                node,
                tenant_images,
            } => {
                let report = preflight::lint_pod_image(image, system, tenant_images);
                let on_node = preflight::lint_pod_node(node.as_deref(), system);
                for d in report.diagnostics.into_iter().chain(on_node.diagnostics) {
                    out.push(finding(task, String::new(), d));
                }
            }
            Check::Missing {
                task,
                file,
                volume,
                what,
                after_pod,
                elsewhere,
            } => {
                let help = match elsewhere {
                    Some(other) => format!(
                        "the volume has `{other}`: an uplinked file lands at `destination` followed by its whole namespace path, folders included; name that path here"
                    ),
                    None => "uplink it in a task before this one (`source` in the namespace, `destination` in the volume), or fix the path".to_string(),
                };
                let mut f = PreflightFinding {
                    task: task.clone(),
                    file: file.clone(),
                    line: 0,
                    column: 0,
                    code: "OD000",
                    severity: preflight::Severity::Error,
                    message: format!(
                        "the {what} `{file}` is not in volume `{volume}`: no earlier uplink task places it and it is not onboard"
                    ),
                    help: Some(help),
                };
                if *after_pod {
                    soften(&mut f);
                }
                out.push(f);
            }
        }
    }
    out
}

fn finding(task: &str, file: String, d: preflight::Diagnostic) -> PreflightFinding {
    PreflightFinding {
        task: task.to_string(),
        file,
        line: d.line,
        column: d.column,
        code: d.code,
        severity: d.severity,
        message: d.message,
        help: d.help,
    }
}

/// A missing file that an earlier `pod.run` on the same volume may create.
fn soften(f: &mut PreflightFinding) {
    if f.severity == preflight::Severity::Error {
        f.severity = preflight::Severity::Warning;
        f.message
            .push_str(" (unless an earlier pod.run task on this volume creates it)");
    }
}

fn join(dir: &str, rel: &str) -> String {
    if dir.is_empty() {
        rel.to_string()
    } else {
        format!("{dir}/{rel}")
    }
}

/// A build context over a rebuilt volume: uplinked files read from the blob store, onboard-only
/// files listed without content.
struct BlobContext<'a> {
    items: &'a Volume,
    blobs: &'a BlobStore,
}

impl preflight::ContextSource for BlobContext<'_> {
    fn entries(&self) -> io::Result<Vec<preflight::Entry>> {
        let mut out = Vec::with_capacity(self.items.len());
        let mut dirs = BTreeSet::new();
        for (path, item) in self.items {
            let mut p = path.as_str();
            while let Some((parent, _)) = p.rsplit_once('/') {
                if !dirs.insert(parent.to_string()) {
                    break;
                }
                p = parent;
            }
            let (kind, size, mode) = match item {
                Item::Blob { size, mode, .. } => (preflight::EntryKind::File, *size, *mode),
                Item::Onboard { dir: true, .. } => (preflight::EntryKind::Dir, 0, 0o755),
                Item::Onboard { size, .. } => (preflight::EntryKind::File, *size, 0o644),
            };
            if kind == preflight::EntryKind::Dir {
                dirs.insert(path.clone());
                continue;
            }
            out.push(preflight::Entry {
                path: path.clone(),
                kind,
                size,
                mode,
            });
        }
        out.extend(dirs.into_iter().map(|d| preflight::Entry {
            path: d,
            kind: preflight::EntryKind::Dir,
            size: 0,
            mode: 0o755,
        }));
        Ok(out)
    }

    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let Some(Item::Blob { digest, .. }) = self.items.get(path) else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("`{path}` is onboard only; its content is not on the ground"),
            ));
        };
        let file = std::fs::File::open(self.blobs.path(digest))?;
        let mut done = 0;
        while done < buf.len() {
            // `offset` can come from a tenant's file (an ELF header): never overflow.
            let at = offset
                .checked_add(done as u64)
                .ok_or(io::ErrorKind::UnexpectedEof)?;
            let n = std::os::unix::fs::FileExt::read_at(&file, &mut buf[done..], at)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::FileRow;

    fn file(path: &str, content: &[u8]) -> FileRow {
        FileRow {
            path: path.into(),
            version: 1,
            digest: Digest::of(content).to_string(),
            size: content.len() as i64,
            mode: 0o644,
            created_at: 0,
            versions: 1,
        }
    }

    fn op(tasks: &str) -> Operation {
        operation::parse(&format!("id: o\nnamespace: ns\ntasks:\n{tasks}")).unwrap()
    }

    fn onboard(path: &str, dir: bool) -> VolumeFileRow {
        VolumeFileRow {
            path: path.into(),
            size: if dir { 0 } else { 5 },
            is_dir: dir,
            modified_ms: 0,
            digest: None,
        }
    }

    #[tokio::test]
    async fn blob_reads_at_the_largest_offsets_do_not_overflow() {
        use preflight::ContextSource as _;
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).await.unwrap();
        let digest = blobs.put(b"0123456789").await.unwrap();
        let items = Volume::from([(
            "app".to_string(),
            Item::Blob {
                digest,
                size: 10,
                mode: 0o755,
            },
        )]);
        let source = BlobContext {
            items: &items,
            blobs: &blobs,
        };
        let mut buf = [0u8; 4];
        assert_eq!(source.read_at("app", 8, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"89");
        for offset in [u64::MAX, u64::MAX - 2, 1 << 63, (1 << 63) - 1] {
            let n = source.read_at("app", offset, &mut buf).unwrap_or(0);
            assert_eq!(n, 0, "{offset}");
        }
    }

    #[test]
    fn builds_see_earlier_uplinks_over_the_onboard_mirror() {
        let op = op(concat!(
            "  - id: up\n    type: uplink\n    source: /src\n    destination: w\n",
            "  - id: build\n    type: docker.build\n    context: w/src\n    dockerfile: w/src/Dockerfile\n    image: app:1\n",
            "  - id: up2\n    type: uplink\n    source: /later\n",
            "  - id: build2\n    type: docker.build\n    dockerfile: w/src/Dockerfile\n    context: w\n    image: two\n",
        ));
        let sources = HashMap::from([
            (
                NamespacePath::parse("/src").unwrap(),
                Source::Folder(vec![
                    file("/src/Dockerfile", b"FROM x"),
                    file("/src/a", b"a"),
                ]),
            ),
            (
                NamespacePath::parse("/later").unwrap(),
                Source::File(file("/later", b"l")),
            ),
        ]);
        let mirror = BTreeMap::from([(
            "alice-pvc".to_string(),
            vec![
                onboard("/w", true),
                onboard("/w/src", true),
                onboard("/w/src/old.bin", false),
            ],
        )]);
        let checks = plan(&op, "alice", &sources, &mirror, &[]);
        assert_eq!(checks.len(), 2);
        let Check::Build {
            context,
            dockerfile,
            dockerfile_path,
            tenant_images,
            ..
        } = &checks[0]
        else {
            panic!("{checks:?}")
        };
        assert_eq!(
            context.keys().collect::<Vec<_>>(),
            ["Dockerfile", "a", "old.bin"]
        );
        assert_eq!(
            context["old.bin"],
            Item::Onboard {
                size: 5,
                dir: false
            }
        );
        assert_eq!(
            (dockerfile.as_str(), dockerfile_path.as_str()),
            ("Dockerfile", "w/src/Dockerfile")
        );
        assert!(tenant_images.is_empty());
        let Check::Build {
            context,
            dockerfile,
            tenant_images,
            ..
        } = &checks[1]
        else {
            panic!("{checks:?}")
        };
        // The later uplink went to the volume root, outside this context.
        assert!(!context.contains_key("later"));
        assert_eq!(dockerfile, "src/Dockerfile");
        assert_eq!(tenant_images, &["app:1".to_string()]);
    }

    #[test]
    fn a_selected_file_is_seen_where_it_lands() {
        // The archive keeps its folder: the load finds it at archives/app.tar, not app.tar.
        let op = op(concat!(
            "  - id: up\n    type: dphi.space.cg2.uplink\n    source: [/archives/app.tar, /in/input.txt]\n    destination: /\n",
            "  - id: load\n    type: docker.load\n    tarfile: /archives/app.tar\n    image: app:1\n",
            "  - id: flat\n    type: docker.load\n    tarfile: app.tar\n    image: flat:1\n",
        ));
        let sources = HashMap::from([
            (
                NamespacePath::parse("/archives/app.tar").unwrap(),
                Source::File(file("/archives/app.tar", b"tar")),
            ),
            (
                NamespacePath::parse("/in/input.txt").unwrap(),
                Source::File(file("/in/input.txt", b"in")),
            ),
        ]);
        let mirror = BTreeMap::from([("alice-pvc".to_string(), Vec::new())]);
        let checks = plan(&op, "alice", &sources, &mirror, &[]);
        assert_eq!(
            checks,
            [
                Check::Load {
                    task: "load".into(),
                    tarfile: "archives/app.tar".into(),
                    blob: Digest::of(b"tar"),
                    image: "app:1".into(),
                },
                Check::Missing {
                    task: "flat".into(),
                    file: "app.tar".into(),
                    volume: "alice-pvc".into(),
                    what: "archive",
                    after_pod: false,
                    elsewhere: Some("archives/app.tar".into()),
                },
            ]
        );
    }

    #[test]
    fn missing_and_onboard_only_inputs() {
        let op = op(concat!(
            "  - id: ls\n    type: files.list\n",
            "  - id: b1\n    type: docker.build\n    image: a\n",
            "  - id: l1\n    type: docker.load\n    tarfile: known.tar\n    image: k\n",
            "  - id: pod\n    type: pod.run\n    image: busybox\n",
            "  - id: l2\n    type: docker.load\n    tarfile: made.tar\n    image: m\n",
        ));
        let mirror =
            BTreeMap::from([("alice-pvc".to_string(), vec![onboard("/known.tar", false)])]);
        let checks = plan(&op, "alice", &HashMap::new(), &mirror, &[]);
        let summary: Vec<(&str, bool)> = checks
            .iter()
            .filter(|c| !matches!(c, Check::Pod { .. }))
            .map(|c| match c {
                Check::Missing {
                    file, after_pod, ..
                } => (file.as_str(), *after_pod),
                other => panic!("{other:?}"),
            })
            .collect();
        // known.tar is onboard (not checked); made.tar may come from the pod.
        assert_eq!(summary, [("Dockerfile", false), ("made.tar", true)]);
    }

    #[test]
    fn moves_and_image_deletes_change_what_later_tasks_see() {
        let op = op(concat!(
            "  - id: mv\n    type: files.move\n    source: old\n    destination: new/here\n",
            "  - id: l1\n    type: docker.load\n    tarfile: new/here/a.tar\n    image: a\n",
            "  - id: l2\n    type: docker.load\n    tarfile: old/a.tar\n    image: b\n",
            "  - id: keep\n    type: files.move\n    source: x.tar\n    destination: y.tar\n",
            "  - id: l3\n    type: docker.load\n    tarfile: x.tar\n    image: c\n",
            "  - id: rm\n    type: docker.image.delete\n    image: old:2\n",
            "  - id: p\n    type: pod.run\n    image: old:2\n",
        ));
        let mirror = BTreeMap::from([(
            "alice-pvc".to_string(),
            vec![
                onboard("/old", true),
                onboard("/old/a.tar", false),
                onboard("/x.tar", false),
                onboard("/y.tar", false),
            ],
        )]);
        let checks = plan(&op, "alice", &HashMap::new(), &mirror, &["old:2".into()]);
        let summary: Vec<String> = checks
            .iter()
            .map(|c| match c {
                Check::Missing { task, file, .. } => format!("{task} misses {file}"),
                Check::Pod {
                    task,
                    tenant_images,
                    ..
                } => format!("{task} sees {tenant_images:?}"),
                other => panic!("{other:?}"),
            })
            .collect();
        // The folder moved with its file; a move onto an existing file moves nothing (the agent
        // refuses it); the deleted image is gone for the pod.
        assert_eq!(
            summary,
            [
                "l2 misses old/a.tar",
                r#"p sees ["a:latest", "b:latest", "c:latest"]"#
            ]
        );
    }

    #[tokio::test]
    async fn pods_see_the_images_built_before_them_and_those_reported() {
        let op = op(concat!(
            "  - id: p1\n    type: pod.run\n    image: app:1\n",
            "  - id: b\n    type: docker.build\n    image: app:1\n",
            "  - id: p2\n    type: pod.run\n    image: {name: app, tag: '1'}\n",
        ));
        let checks = plan(
            &op,
            "alice",
            &HashMap::new(),
            &BTreeMap::new(),
            &["old:2".into()],
        );
        let pods: Vec<(&str, &str, &[String])> = checks
            .iter()
            .filter_map(|c| match c {
                Check::Pod {
                    task,
                    image,
                    tenant_images,
                    ..
                } => Some((task.as_str(), image.as_str(), tenant_images.as_slice())),
                _ => None,
            })
            .collect();
        assert_eq!(
            pods,
            [
                ("p1", "app:1", &["old:2".to_string()][..]),
                (
                    "p2",
                    "app:1",
                    &["old:2".to_string(), "app:1".to_string()][..]
                ),
            ]
        );
        let system = preflight::System::declared("sat1", &crate::declared::default_for("sat1"));
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).await.unwrap();
        let found: Vec<(String, &str)> = run(&checks, &system, &blobs)
            .into_iter()
            .map(|f| (f.task, f.code))
            .collect();
        assert_eq!(
            found,
            [("p1".to_string(), "OD106"), ("b".to_string(), "OD000")]
        );
    }

    /// A GPU pod is refused on a system declared without a GPU, and only there.
    #[tokio::test]
    async fn a_gpu_pod_needs_a_system_declared_with_a_gpu_or_not_declared() {
        let op = op(concat!(
            "  - id: infer\n    type: pod.run\n    image: busybox\n    node: gpu\n",
            "  - id: plain\n    type: pod.run\n    image: busybox\n    node: MPU\n",
        ));
        let checks = plan(&op, "alice", &HashMap::new(), &BTreeMap::new(), &[]);
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).await.unwrap();
        for (gpu, want) in [
            (Some(false), vec![("infer".to_string(), "OD107")]),
            (Some(true), vec![]),
            (None, vec![]),
        ] {
            let mut declared = crate::declared::default_for("sat1");
            declared.gpu = gpu;
            let system = system_from("sat1", &declared, Vec::new());
            let found: Vec<(String, &str)> = run(&checks, &system, &blobs)
                .into_iter()
                .map(|f| (f.task, f.code))
                .collect();
            assert_eq!(found, want, "{gpu:?}");
        }
    }

    #[test]
    fn the_declaration_rules_and_reports_fill_digests() {
        let mut declared = crate::declared::default_for("sat1");
        declared.catalogue.push(wire::CatalogueEntry {
            name: "alpine:3.20".into(),
            digest: None,
            platform: Some("linux/arm64".into()),
            description: String::new(),
            shell: true,
            libraries: vec!["libssl.so.3".into()],
            glibc: None,
            interpreters: vec!["/bin/sh".into()],
            layers: Vec::new(),
        });
        declared.builder = wire::Builder::BuildKit;
        let reported = vec![
            ("busybox".to_string(), Digest::of(b"bb").to_string()),
            ("custom/base:2".to_string(), Digest::of(b"cb").to_string()),
        ];
        let s = system_from("sat1", &declared, reported);
        assert_eq!(s.platform, "linux/arm64");
        assert_eq!(s.builder, preflight::Builder::BuildKit);
        let names: Vec<&str> = s.catalogue.images.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "gcr.io/distroless/static-debian12:latest",
                "gcr.io/distroless/cc-debian12:latest",
                "busybox:latest",
                "alpine:3.20"
            ]
        );
        let bb = s.base("busybox").unwrap();
        assert!(bb.shell);
        assert_eq!(bb.digest, Some(Digest::of(b"bb").to_string()));
        assert!(s.base("custom/base:2").is_none());
        assert_eq!(s.base("alpine:3.20").unwrap().libraries, ["libssl.so.3"]);
        let d = system_from("sat1", &crate::declared::default_for("sat1"), Vec::new());
        assert_eq!(d.platform, "linux/arm64");
        assert_eq!(d.catalogue.images.len(), 3);
        let em = system_from("em", &crate::declared::default_for("em"), Vec::new());
        assert_eq!(em.platform, preflight::host_platform());
    }
}
