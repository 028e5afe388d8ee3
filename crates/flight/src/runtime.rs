//! The agent's container-runtime adapter: the few Docker Engine calls the agent makes.
//!
//! Long file: the [`Runtime`] trait and its one real implementation side by side, so that
//! each engine call's bounds (time, hardening) are read with its signature.
//!
//! [`Runtime`] lists them; [`DockerRuntime`] makes them through bollard against the local
//! engine, each bounded in time; `fake::FakeRuntime` (tests only) records them and answers from
//! a script. What isolates a pod (no network, no capabilities, no new privileges, memory and pid
//! limits, the tenant's uid) is fixed in `host_config`, and what confines a build (no network,
//! no pull, a memory limit) in `build_options`, not left to callers.
//!
//! The module is public so that developer and EM tooling (the `standins` crate, which builds the
//! stand-in base images) reaches the engine the same way the agent does, instead of carrying its
//! own Docker client: bollard stays inside `flight`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, ImportImageOptions, InspectContainerOptions,
    InspectNetworkOptions, ListContainersOptions, ListImagesOptions, LogsOptions,
    RemoveContainerOptions, RemoveImageOptions, StopContainerOptions, TagImageOptions,
    WaitContainerOptions,
};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;

use crate::error::Error;
#[path = "docker_io.rs"]
mod docker_io;
#[path = "pod_host.rs"]
mod pod_host;
#[path = "pod_ports.rs"]
mod pod_ports;
#[path = "step_images.rs"]
mod step_images;
#[path = "tenant_network.rs"]
mod tenant_network;
use self::docker_io::{bounded, drain_progress, file_stream, map_error, rfc3339_ms};
pub use self::pod_host::{Gpu, GpuDevice, NODE_CLASSES, NodeClass, detect_gpu};
pub(crate) use self::pod_host::{host_config, node_class};
pub use crate::logbook::LogBook;
pub use crate::names::{host_platform, short_id};
pub use step_images::StepImages;

/// The longest any short Docker call (inspect, tag, create, start, remove) may take.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest reading a container's logs may take.
const LOGS_TIMEOUT: Duration = Duration::from_secs(60);
/// bollard's own ceiling on waiting for response headers; every call is bounded tighter by the
/// agent, so this only has to be above the longest of those bounds.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(48 * 3600);
/// Memory limit of a pod (and swap: none beyond it).
pub(crate) const POD_MEMORY: i64 = 1 << 30;
/// The most processes a pod may run.
pub(crate) const POD_PIDS: i64 = 512;

/// Bytes read from a file per chunk of a request body.
const BODY_CHUNK: usize = 256 << 10;

/// A failed runtime call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeError {
    /// What kind of failure it is.
    pub kind: RuntimeErrorKind,
    /// The daemon's message, or what failed.
    pub message: String,
}

/// What kind of failure a [`RuntimeError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeErrorKind {
    /// No such image or container.
    NotFound,
    /// The call took longer than its bound.
    Timeout,
    /// Anything else.
    Failed,
}

impl RuntimeError {
    pub(crate) fn failed(message: impl Into<String>) -> RuntimeError {
        RuntimeError {
            kind: RuntimeErrorKind::Failed,
            message: message.into(),
        }
    }
}

/// The result of a runtime call.
pub type RtResult<T> = Result<T, RuntimeError>;

/// What the agent needs to know of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image id, `sha256:<hex>`.
    pub id: String,
    /// Its `ONBUILD` triggers.
    pub on_build: Vec<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `os/arch[/variant]` as the engine records it; empty when it does not say.
    pub platform: String,
    /// The names it carries, `repo:tag`; empty for a dangling image.
    pub repo_tags: Vec<String>,
    /// The paths its `VOLUME` instructions declare (a pod mounts a bounded tmpfs over each, so
    /// the engine creates no anonymous volume).
    pub volumes: Vec<String>,
}

/// One image as the engine lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSummary {
    /// The image id, `sha256:<hex>`.
    pub id: String,
    /// Its `repo:tag` names.
    pub repo_tags: Vec<String>,
    /// When it was created, seconds since the Unix epoch.
    pub created: i64,
    /// Its size in bytes.
    pub size: i64,
}

/// A request body: a file streamed from disk, or bytes in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Streamed from this file.
    File(PathBuf),
    /// Sent from memory.
    Bytes(Vec<u8>),
}

/// An air-gapped image build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    /// The full reference to tag.
    pub tag: String,
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    /// Labels set on the image.
    pub labels: BTreeMap<String, String>,
    /// The context, an uncompressed tar.
    pub context: Body,
    /// The only images whose layers the build may reuse: the tenant's own. Empty: no cache at
    /// all (the classic builder would otherwise reuse any image the engine holds, another
    /// tenant's included).
    pub cache_from: Vec<String>,
}

/// A pod's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The container's name.
    pub name: String,
    /// The image reference or id it runs.
    pub image: String,
    /// `uid:gid`.
    pub user: String,
    /// The container's hostname.
    pub hostname: String,
    /// Replaces the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's command.
    pub cmd: Option<Vec<String>>,
    /// `NAME=value` pairs.
    pub env: Vec<String>,
    /// The volume folder, mounted read-write at `/data`.
    pub data_dir: PathBuf,
    /// Labels set on the container.
    pub labels: BTreeMap<String, String>,
    /// The size of the tmpfs at `/tmp`, the one writable place besides `/data` (the root
    /// filesystem is read-only).
    pub tmp_bytes: u64,
    /// The most of its output the engine keeps, in each of its two log files.
    pub log_bytes: u64,
    /// The image's declared `VOLUME` paths: each gets a tmpfs of `tmp_bytes`, so the engine
    /// creates no anonymous volume, which would grow outside every disk limit.
    pub image_volumes: Vec<String>,
    /// Its node class: its CPU and memory limits.
    pub node: NodeClass,
    /// The internal network it joins (its hostname an alias there), or `None`: no network.
    pub network: Option<String>,
    /// `name:address` lines for its `/etc/hosts` (where the onboard services are).
    pub extra_hosts: Vec<String>,
    /// The GPU it gets (a `GPU` pod's: the machine's), or none.
    pub gpu: Gpu,
}

/// Where a container stands: how a pod left by a restarted agent is taken up again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Created, never started.
    #[default]
    Created,
    /// Started and not stopped yet (running, paused, restarting, stopping).
    Running,
    /// Stopped: its exit code is final (exited, dead, being removed).
    Stopped,
}

/// What the engine says of an existing container: how a pod left by a restarted agent is
/// recognised (its labels) and taken up (its status, and when it started).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerState {
    /// Where it stands.
    pub status: ContainerStatus,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// When it started, milliseconds since the Unix epoch; `None` when it never started.
    pub started_ms: Option<u64>,
}

/// The Docker Engine calls the agent makes. Methods return boxed futures so the trait can be a
/// `dyn` object.
pub trait Runtime: Send + Sync + 'static {
    /// The image, or `None` when there is no such image.
    fn inspect_image<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, RtResult<Option<ImageInfo>>>;
    /// The images whose names match `reference` (a `docker images` reference filter such as
    /// `tenants/alice/*`; empty: every image).
    fn list_images<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, RtResult<Vec<ImageSummary>>>;
    /// The dangling images: without a name, and no image's parent.
    fn dangling_images(&self) -> BoxFuture<'_, RtResult<Vec<ImageSummary>>>;
    /// Builds with the legacy builder, without network and without pulling; every output line
    /// goes to `log`, and the images its steps made to `steps`. The caller bounds the time
    /// (dropping the future cancels the build).
    fn build_image<'a>(
        &'a self,
        request: &'a BuildRequest,
        log: &'a LogBook,
        steps: &'a StepImages,
    ) -> BoxFuture<'a, RtResult<()>>;
    /// `docker load` of an archive, quietly; output to `log`. The caller bounds the time.
    fn load_image<'a>(&'a self, archive: &'a Path, log: &'a LogBook)
    -> BoxFuture<'a, RtResult<()>>;
    /// Tags `image` (a reference or an id) as `repo:tag`.
    fn tag_image<'a>(
        &'a self,
        image: &'a str,
        repo: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, RtResult<()>>;
    /// The container named `name` (status, labels, start time), or `None` when there is no such
    /// container.
    fn inspect_container<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, RtResult<Option<ContainerState>>>;
    /// Makes sure the network `name` exists, internal (no route out of it) and labelled
    /// `labels`, and that its containers reach the host only at the network's gateway on TCP
    /// port `host_port` (where the agent serves them, see `crate::telemetry`), nothing else of
    /// the host; returns that gateway. An existing network of that name that is not internal
    /// or lacks a label is an error, never used.
    fn ensure_network<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
        host_port: u16,
    ) -> BoxFuture<'a, RtResult<IpAddr>>;
    /// Removes the network `name` (and what `ensure_network` let through to the host) if no
    /// container uses it any more; a missing network, or one in use, is not an error.
    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>>;
    /// Lets the other containers on the network `network` (made by `ensure_network`, which
    /// drops traffic between its containers) reach the running container `name` on `ports`, and
    /// on no other port: firewall rules labelled with its name (see `pod_ports`).
    fn open_ports<'a>(
        &'a self,
        network: &'a str,
        name: &'a str,
        ports: &'a [wire::PodPort],
    ) -> BoxFuture<'a, RtResult<()>>;
    /// Removes what `open_ports` did for the container `name`; nothing to remove is not an
    /// error.
    fn close_ports<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>>;
    /// The names of the containers `open_ports` opened ports of.
    fn opened_ports(&self) -> BoxFuture<'_, RtResult<Vec<String>>>;
    /// The names of every container (running or not) labelled `key=value`.
    fn list_containers<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, RtResult<Vec<String>>>;
    /// Creates a pod's container; returns its id.
    fn create_container<'a>(&'a self, spec: &'a ContainerSpec) -> BoxFuture<'a, RtResult<String>>;
    /// Starts the created container.
    fn start_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, RtResult<()>>;
    /// Waits for the container to stop; returns its exit code. The caller bounds the time.
    fn wait_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, RtResult<i64>>;
    /// Stops the container: SIGTERM, then SIGKILL after `grace`.
    fn stop_container<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, RtResult<()>>;
    /// Appends the container's stdout and stderr to `log`.
    fn container_logs<'a>(&'a self, id: &'a str, log: &'a LogBook) -> BoxFuture<'a, RtResult<()>>;
    /// Removes the container (forcefully); a missing container is not an error.
    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, RtResult<()>>;
    /// Removes an image by id, never forcefully: an image a container uses, or that carries
    /// a name, stays (an error the caller may ignore); a missing image is not an error.
    fn remove_image<'a>(&'a self, id: &'a str) -> BoxFuture<'a, RtResult<()>>;
    /// The engine's data root (`DockerRootDir` of `docker info`): where images, layers and
    /// build containers are stored.
    fn data_root(&self) -> BoxFuture<'_, RtResult<PathBuf>>;
    /// The image's layers (`RootFS.Layers`: DiffIDs, `sha256:<hex>`, bottom first), or `None`
    /// when there is no such image.
    fn image_layers<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, RtResult<Option<Vec<String>>>>;
    /// `docker save` of one image into the file `to` (created; the caller removes it), within
    /// [`SAVE_TIMEOUT`].
    fn save_image<'a>(&'a self, reference: &'a str, to: &'a Path) -> BoxFuture<'a, RtResult<()>>;
}

/// The longest a `docker save` of a base image may take.
pub(crate) const SAVE_TIMEOUT: Duration = Duration::from_secs(600);

/// The options of every build (legacy builder). Nothing can be pulled, `RUN` steps get no
/// network, and each step's container gets the pods' memory limit, swap included.
///
/// A process limit is not set: the Engine's build endpoint takes `ulimits` and `cgroupparent`
/// (and nothing like `pids_limit`), but bollard's `BuildImageOptions` exposes neither, only
/// `memory`, `memswap`, `cpu*` and `shmsize`. Setting them would take a hand-made request (or a
/// `cgroupparent` with a pids limit prepared on the host); until then a `RUN` fork bomb is bounded
/// by the memory limit and the build's time limit only.
pub(crate) fn build_options(request: &BuildRequest) -> BuildImageOptions {
    BuildImageOptions {
        dockerfile: request.dockerfile.clone(),
        t: Some(request.tag.clone()),
        pull: Some("false".into()),
        networkmode: Some("none".into()),
        rm: true,
        forcerm: true,
        memory: Some(BUILD_MEMORY),
        memswap: Some(BUILD_MEMORY),
        // One CPU's worth of time for each step's container.
        cpuperiod: Some(BUILD_CPU_PERIOD_US),
        cpuquota: Some(BUILD_CPU_PERIOD_US),
        // With `cachefrom`, the classic builder takes a cached step only from those images'
        // chains: a tenant's build never reuses a layer another tenant's build made.
        nocache: request.cache_from.is_empty(),
        cachefrom: (!request.cache_from.is_empty()).then(|| request.cache_from.clone()),
        labels: Some(
            request
                .labels
                .clone()
                .into_iter()
                .collect::<HashMap<_, _>>(),
        ),
        ..Default::default()
    }
}

/// The CFS period of a build step's container, µs; its quota is one period (one CPU).
const BUILD_CPU_PERIOD_US: i32 = 100_000;

/// The memory of each build step's container, swap included (bollard takes an `i32`).
const BUILD_MEMORY: i32 = 1 << 30;
const _: () = assert!(BUILD_MEMORY as i64 == POD_MEMORY);

/// The local Docker Engine, through bollard.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
}

impl DockerRuntime {
    /// `docker images` with at most one filter.
    async fn list_filtered(&self, filter: Option<(&str, String)>) -> RtResult<Vec<ImageSummary>> {
        let options = ListImagesOptions {
            filters: filter.map(|(k, v)| HashMap::from([(k.to_string(), vec![v])])),
            ..Default::default()
        };
        let listed = bounded("list images", self.docker.list_images(Some(options))).await?;
        Ok(listed
            .into_iter()
            // An engine before API 1.44 names a nameless image `<none>:<none>`.
            .map(|i| ImageSummary {
                id: i.id,
                repo_tags: i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                created: i.created,
                size: i.size,
            })
            .collect())
    }

    /// Connects to the local engine (`DOCKER_HOST` or the default socket) and negotiates the API
    /// version (the engine may be older than bollard).
    pub async fn connect() -> Result<DockerRuntime, Error> {
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let where_ = format!("cannot reach the Docker Engine at {host}");
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| Error::docker(&where_, e))?
            .with_timeout(CLIENT_TIMEOUT);
        let docker = match tokio::time::timeout(CALL_TIMEOUT, docker.negotiate_version()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return Err(Error::docker(&where_, e)),
            Err(_) => {
                return Err(Error::docker(
                    &where_,
                    format!("no answer within {CALL_TIMEOUT:?}"),
                ));
            }
        };
        Ok(DockerRuntime { docker })
    }
}

impl Runtime for DockerRuntime {
    fn inspect_image<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, RtResult<Option<ImageInfo>>> {
        Box::pin(async move {
            match bounded("inspect image", self.docker.inspect_image(reference)).await {
                Ok(i) => {
                    let config = i.config.unwrap_or_default();
                    let platform = match (i.os, i.architecture, i.variant) {
                        (Some(os), Some(arch), Some(v)) if !v.is_empty() => {
                            format!("{os}/{arch}/{v}")
                        }
                        (Some(os), Some(arch), _) => format!("{os}/{arch}"),
                        _ => String::new(),
                    };
                    Ok(Some(ImageInfo {
                        id: i.id.unwrap_or_default(),
                        on_build: config.on_build.unwrap_or_default(),
                        labels: config.labels.unwrap_or_default().into_iter().collect(),
                        platform,
                        repo_tags: i.repo_tags.unwrap_or_default(),
                        volumes: config.volumes.unwrap_or_default(),
                    }))
                }
                Err(e) if e.kind == RuntimeErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn list_images<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, RtResult<Vec<ImageSummary>>> {
        let filter = (!reference.is_empty()).then(|| ("reference", reference.to_string()));
        Box::pin(self.list_filtered(filter))
    }

    fn dangling_images(&self) -> BoxFuture<'_, RtResult<Vec<ImageSummary>>> {
        Box::pin(self.list_filtered(Some(("dangling", "true".into()))))
    }

    fn build_image<'a>(
        &'a self,
        request: &'a BuildRequest,
        log: &'a LogBook,
        steps: &'a StepImages,
    ) -> BoxFuture<'a, RtResult<()>> {
        Box::pin(async move {
            let options = build_options(request);
            let body = match &request.context {
                Body::Bytes(b) => bollard::body_full(Bytes::from(b.clone())),
                Body::File(p) => bollard::body_try_stream(file_stream(p).await?),
            };
            drain_progress(
                "build",
                self.docker.build_image(options, None, Some(body)),
                log,
                Some(steps),
            )
            .await
        })
    }

    fn load_image<'a>(
        &'a self,
        archive: &'a Path,
        log: &'a LogBook,
    ) -> BoxFuture<'a, RtResult<()>> {
        Box::pin(async move {
            let options = ImportImageOptions {
                quiet: true,
                ..Default::default()
            };
            let stream = file_stream(archive).await?;
            drain_progress(
                "load",
                self.docker.import_image_stream(options, stream, None),
                log,
                None,
            )
            .await
        })
    }

    fn tag_image<'a>(
        &'a self,
        image: &'a str,
        repo: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, RtResult<()>> {
        Box::pin(async move {
            let options = TagImageOptions {
                repo: Some(repo.into()),
                tag: Some(tag.into()),
            };
            bounded("tag image", self.docker.tag_image(image, Some(options))).await
        })
    }

    fn inspect_container<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, RtResult<Option<ContainerState>>> {
        Box::pin(async move {
            use bollard::models::ContainerStateStatusEnum as S;
            let inspected = bounded(
                "inspect container",
                self.docker
                    .inspect_container(name, None::<InspectContainerOptions>),
            )
            .await;
            match inspected {
                Ok(c) => {
                    let state = c.state.unwrap_or_default();
                    let status = match state.status.unwrap_or(S::EMPTY) {
                        S::CREATED => ContainerStatus::Created,
                        S::EXITED | S::DEAD | S::REMOVING => ContainerStatus::Stopped,
                        S::RUNNING | S::PAUSED | S::RESTARTING | S::STOPPING | S::EMPTY => {
                            ContainerStatus::Running
                        }
                    };
                    let started_ms = match status {
                        ContainerStatus::Created => None,
                        _ => state.started_at.as_deref().and_then(rfc3339_ms),
                    };
                    Ok(Some(ContainerState {
                        status,
                        labels: c
                            .config
                            .and_then(|c| c.labels)
                            .unwrap_or_default()
                            .into_iter()
                            .collect(),
                        started_ms,
                    }))
                }
                Err(e) if e.kind == RuntimeErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn ensure_network<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
        host_port: u16,
    ) -> BoxFuture<'a, RtResult<IpAddr>> {
        Box::pin(tenant_network::ensure(self, name, labels, host_port))
    }

    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>> {
        Box::pin(async move {
            match bounded("remove network", self.docker.remove_network(name)).await {
                Err(e) if e.kind == RuntimeErrorKind::NotFound => pod_ports::close_host(name).await,
                // Another pod of the tenant still uses it: the last one removes it.
                Err(e) if e.message.contains("active endpoints") => Ok(()),
                Err(e) => Err(e),
                Ok(()) => pod_ports::close_host(name).await,
            }
        })
    }

    fn open_ports<'a>(
        &'a self,
        network: &'a str,
        name: &'a str,
        ports: &'a [wire::PodPort],
    ) -> BoxFuture<'a, RtResult<()>> {
        Box::pin(async move {
            if ports.is_empty() {
                return Ok(());
            }
            let inspected = bounded(
                "inspect container",
                self.docker
                    .inspect_container(name, None::<InspectContainerOptions>),
            )
            .await?;
            let endpoint = inspected
                .network_settings
                .and_then(|s| s.networks)
                .and_then(|mut n| n.remove(network))
                .ok_or_else(|| {
                    RuntimeError::failed(format!("container {name} is not on network {network}"))
                })?;
            let (Some(ip), Some(id)) = (
                endpoint.ip_address.filter(|a| !a.is_empty()),
                endpoint.network_id.filter(|i| i.len() >= 12),
            ) else {
                return Err(RuntimeError::failed(format!(
                    "container {name} has no address on network {network}"
                )));
            };
            pod_ports::open(&pod_ports::bridge(&id), &ip, name, ports).await
        })
    }

    fn close_ports<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>> {
        Box::pin(pod_ports::close(name))
    }

    fn opened_ports(&self) -> BoxFuture<'_, RtResult<Vec<String>>> {
        Box::pin(pod_ports::holders())
    }

    fn list_containers<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, RtResult<Vec<String>>> {
        Box::pin(async move {
            let options = ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([(
                    "label".to_string(),
                    vec![format!("{key}={value}")],
                )])),
                ..Default::default()
            };
            let listed = bounded(
                "list containers",
                self.docker.list_containers(Some(options)),
            )
            .await?;
            Ok(listed
                .into_iter()
                .filter_map(|c| c.names?.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string())
                .collect())
        })
    }

    fn create_container<'a>(&'a self, spec: &'a ContainerSpec) -> BoxFuture<'a, RtResult<String>> {
        Box::pin(async move {
            let body = ContainerCreateBody {
                image: Some(spec.image.clone()),
                user: Some(spec.user.clone()),
                hostname: Some(spec.hostname.clone()),
                entrypoint: spec.entrypoint.clone(),
                cmd: spec.cmd.clone(),
                env: Some(spec.env.clone()),
                labels: Some(spec.labels.clone().into_iter().collect()),
                network_disabled: Some(spec.network.is_none()),
                networking_config: spec.network.as_ref().map(|n| NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(
                        n.clone(),
                        EndpointSettings {
                            aliases: Some(vec![spec.hostname.clone()]),
                            ..Default::default()
                        },
                    )])),
                }),
                tty: Some(false),
                attach_stdin: Some(false),
                open_stdin: Some(false),
                host_config: Some(host_config(spec)),
                ..Default::default()
            };
            let options = CreateContainerOptions {
                name: Some(spec.name.clone()),
                ..Default::default()
            };
            let created = bounded(
                "create container",
                self.docker.create_container(Some(options), body),
            )
            .await?;
            Ok(created.id)
        })
    }

    fn start_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, RtResult<()>> {
        Box::pin(bounded(
            "start container",
            self.docker.start_container(id, None),
        ))
    }

    fn wait_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, RtResult<i64>> {
        Box::pin(async move {
            let mut stream =
                std::pin::pin!(self.docker.wait_container(id, None::<WaitContainerOptions>));
            match stream.next().await {
                Some(Ok(r)) => Ok(r.status_code),
                // bollard reports a non-zero exit as an error carrying the code.
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    Ok(code)
                }
                Some(Err(e)) => Err(map_error("wait for container", e)),
                None => Err(RuntimeError::failed(
                    "wait for container: the engine sent no status",
                )),
            }
        })
    }

    fn stop_container<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, RtResult<()>> {
        Box::pin(async move {
            let options = StopContainerOptions {
                t: Some(grace.as_secs() as i32),
                signal: None,
            };
            let stop = self.docker.stop_container(id, Some(options));
            match tokio::time::timeout(grace + CALL_TIMEOUT, stop).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 304 | 404,
                    ..
                })) => Ok(()),
                Ok(Err(e)) => Err(map_error("stop container", e)),
                Err(_) => Err(RuntimeError {
                    kind: RuntimeErrorKind::Timeout,
                    message: "stop container: no answer from the Docker Engine".into(),
                }),
            }
        })
    }

    fn container_logs<'a>(&'a self, id: &'a str, log: &'a LogBook) -> BoxFuture<'a, RtResult<()>> {
        Box::pin(async move {
            let options = LogsOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            };
            let read = async {
                let mut stream = std::pin::pin!(self.docker.logs(id, Some(options)));
                while let Some(item) = stream.next().await {
                    let item = item.map_err(|e| map_error("container logs", e))?;
                    log.push_bytes(item.as_ref());
                }
                Ok(())
            };
            match tokio::time::timeout(LOGS_TIMEOUT, read).await {
                Ok(r) => r,
                Err(_) => Err(RuntimeError {
                    kind: RuntimeErrorKind::Timeout,
                    message: format!("container logs: not read within {LOGS_TIMEOUT:?}"),
                }),
            }
        })
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, RtResult<()>> {
        Box::pin(async move {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            };
            match bounded(
                "remove container",
                self.docker.remove_container(id, Some(options)),
            )
            .await
            {
                Err(e) if e.kind == RuntimeErrorKind::NotFound => Ok(()),
                // "removal already in progress"
                Err(e) if e.message.contains("already in progress") => Ok(()),
                r => r,
            }
        })
    }

    fn remove_image<'a>(&'a self, id: &'a str) -> BoxFuture<'a, RtResult<()>> {
        Box::pin(async move {
            let options = RemoveImageOptions {
                force: false,
                noprune: false,
                platforms: None,
            };
            match bounded(
                "remove image",
                self.docker.remove_image(id, Some(options), None),
            )
            .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.kind == RuntimeErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    fn data_root(&self) -> BoxFuture<'_, RtResult<PathBuf>> {
        Box::pin(async move {
            let info = bounded("docker info", self.docker.info()).await?;
            match info.docker_root_dir.filter(|d| d.starts_with('/')) {
                Some(dir) => Ok(PathBuf::from(dir)),
                None => Err(RuntimeError::failed("docker info names no data root")),
            }
        })
    }

    fn image_layers<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, RtResult<Option<Vec<String>>>> {
        Box::pin(async move {
            match bounded("inspect image", self.docker.inspect_image(reference)).await {
                Ok(i) => Ok(Some(i.root_fs.and_then(|r| r.layers).unwrap_or_default())),
                Err(e) if e.kind == RuntimeErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn save_image<'a>(&'a self, reference: &'a str, to: &'a Path) -> BoxFuture<'a, RtResult<()>> {
        Box::pin(async move {
            use tokio::io::AsyncWriteExt;
            let write_failed =
                |e: std::io::Error| RuntimeError::failed(format!("save {reference}: {e}"));
            let save = async {
                let mut file = tokio::fs::File::create_new(to)
                    .await
                    .map_err(write_failed)?;
                let mut stream = std::pin::pin!(self.docker.export_image(reference));
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| map_error("save image", e))?;
                    file.write_all(&chunk).await.map_err(write_failed)?;
                }
                file.sync_all().await.map_err(write_failed)
            };
            match tokio::time::timeout(SAVE_TIMEOUT, save).await {
                Ok(r) => r,
                Err(_) => Err(RuntimeError {
                    kind: RuntimeErrorKind::Timeout,
                    message: format!("save {reference}: not done within {SAVE_TIMEOUT:?}"),
                }),
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A scripted, recording [`Runtime`] for tests of the task logic.

    use std::sync::Mutex;

    use super::*;

    /// A call the agent made.
    #[derive(Debug, Clone, PartialEq, Eq)]
    // Test-only: the size of a recorded call does not matter.
    #[allow(clippy::large_enum_variant)]
    pub(crate) enum Call {
        Inspect(String),
        List(String),
        Build {
            tag: String,
            dockerfile: String,
            labels: BTreeMap<String, String>,
        },
        Load,
        Tag {
            image: String,
            repo: String,
            tag: String,
        },
        Status(String),
        Create(ContainerSpec),
        Start(String),
        Wait(String),
        Stop(String),
        Logs(String),
        Remove(String),
        RemoveImage(String),
        Network(String),
        RemoveNetwork(String),
        OpenPorts {
            network: String,
            name: String,
            ports: Vec<wire::PodPort>,
        },
        ClosePorts(String),
    }

    /// What the fake answers, and what it saw.
    #[derive(Debug, Default)]
    pub(crate) struct Script {
        /// Images by reference (and by id).
        pub(crate) images: BTreeMap<String, ImageInfo>,
        /// `Err(message)` makes builds fail with that message.
        pub(crate) build_error: Option<String>,
        /// Lines every build logs.
        pub(crate) build_log: Vec<String>,
        /// Builds never end.
        pub(crate) build_hangs: bool,
        /// Makes starting fail with this message.
        pub(crate) start_error: Option<String>,
        /// The exit code of every container; `None`: containers never exit.
        pub(crate) exit_code: Option<i64>,
        /// What containers print.
        pub(crate) logs: Vec<u8>,
        /// Containers by name, as a restarted agent finds them.
        pub(crate) containers: BTreeMap<String, ContainerState>,
        /// The engine's data root `docker info` names; `None`: it names none.
        pub(crate) data_root: Option<PathBuf>,
        /// Images without a name (listed by `dangling_images`; removed by id).
        pub(crate) dangling: Vec<ImageSummary>,
        /// What a failing build leaves dangling (created when it fails).
        pub(crate) build_leaves: Option<String>,
        /// Images' layers (DiffID as the engine writes it, and the layer tar `save_image`
        /// writes), by name.
        pub(crate) layers: BTreeMap<String, Vec<(String, Vec<u8>)>>,
        /// Every call, in order.
        pub(crate) calls: Vec<Call>,
        /// The contexts of builds, and the archives loaded.
        pub(crate) bodies: Vec<Vec<u8>>,
    }

    /// The fake runtime.
    #[derive(Debug, Default)]
    pub(crate) struct FakeRuntime {
        pub(crate) script: Mutex<Script>,
    }

    impl FakeRuntime {
        pub(crate) fn with(f: impl FnOnce(&mut Script)) -> FakeRuntime {
            let fake = FakeRuntime::default();
            f(&mut fake.script.lock().unwrap());
            fake
        }

        pub(crate) fn calls(&self) -> Vec<Call> {
            self.script.lock().unwrap().calls.clone()
        }

        fn record(&self, call: Call) {
            self.script.lock().unwrap().calls.push(call);
        }
    }

    fn body(b: &Body) -> Vec<u8> {
        match b {
            Body::Bytes(b) => b.clone(),
            Body::File(p) => std::fs::read(p).unwrap(),
        }
    }

    impl Runtime for FakeRuntime {
        fn inspect_image<'a>(
            &'a self,
            reference: &'a str,
        ) -> BoxFuture<'a, RtResult<Option<ImageInfo>>> {
            self.record(Call::Inspect(reference.into()));
            let found = self.script.lock().unwrap().images.get(reference).cloned();
            Box::pin(async move { Ok(found) })
        }

        /// Matches the names by `reference` read as a prefix up to its first `*`.
        fn list_images<'a>(
            &'a self,
            reference: &'a str,
        ) -> BoxFuture<'a, RtResult<Vec<ImageSummary>>> {
            self.record(Call::List(reference.into()));
            let prefix = reference.split('*').next().unwrap_or_default();
            let listed = self
                .script
                .lock()
                .unwrap()
                .images
                .iter()
                .filter(|(name, _)| name.starts_with(prefix) && name.contains(':'))
                .map(|(name, info)| ImageSummary {
                    id: info.id.clone(),
                    repo_tags: vec![name.clone()],
                    created: 1_700_000_000,
                    size: 1000,
                })
                .collect();
            Box::pin(async move { Ok(listed) })
        }

        fn dangling_images(&self) -> BoxFuture<'_, RtResult<Vec<ImageSummary>>> {
            let dangling = self.script.lock().unwrap().dangling.clone();
            Box::pin(async move { Ok(dangling) })
        }

        fn build_image<'a>(
            &'a self,
            request: &'a BuildRequest,
            log: &'a LogBook,
            steps: &'a StepImages,
        ) -> BoxFuture<'a, RtResult<()>> {
            Box::pin(async move {
                let (error, hangs) = {
                    let mut s = self.script.lock().unwrap();
                    s.calls.push(Call::Build {
                        tag: request.tag.clone(),
                        dockerfile: request.dockerfile.clone(),
                        labels: request.labels.clone(),
                    });
                    s.bodies.push(body(&request.context));
                    for l in &s.build_log {
                        log.push_line(l);
                        steps.note(l);
                    }
                    (s.build_error.clone(), s.build_hangs)
                };
                if hangs {
                    std::future::pending::<()>().await;
                }
                if let Some(e) = error {
                    log.push_line(&e);
                    let mut s = self.script.lock().unwrap();
                    if let Some(id) = s.build_leaves.clone() {
                        let short = &id.trim_start_matches("sha256:")[..12];
                        log.push_line(&format!(" ---> {short}"));
                        steps.note(&format!(" ---> {short}"));
                        let created = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs() as i64);
                        s.dangling.push(ImageSummary {
                            id,
                            created,
                            ..Default::default()
                        });
                    }
                    return Err(RuntimeError::failed(e));
                }
                let id = format!("sha256:{}", wire::Digest::of(request.tag.as_bytes()).hex());
                self.script.lock().unwrap().images.insert(
                    request.tag.clone(),
                    ImageInfo {
                        id,
                        ..Default::default()
                    },
                );
                Ok(())
            })
        }

        fn load_image<'a>(
            &'a self,
            archive: &'a Path,
            log: &'a LogBook,
        ) -> BoxFuture<'a, RtResult<()>> {
            Box::pin(async move {
                let bytes = std::fs::read(archive).unwrap();
                let archive = imagefmt::inspect(std::io::Cursor::new(&bytes))
                    .map_err(|e| RuntimeError::failed(e.to_string()))?;
                let mut s = self.script.lock().unwrap();
                s.calls.push(Call::Load);
                for i in archive.images() {
                    let id = i.id.to_string();
                    log.push_line(&format!("Loaded image ID: {id}"));
                    s.images.insert(
                        id.clone(),
                        ImageInfo {
                            id,
                            ..Default::default()
                        },
                    );
                }
                s.bodies.push(bytes);
                Ok(())
            })
        }

        fn tag_image<'a>(
            &'a self,
            image: &'a str,
            repo: &'a str,
            tag: &'a str,
        ) -> BoxFuture<'a, RtResult<()>> {
            Box::pin(async move {
                let mut s = self.script.lock().unwrap();
                s.calls.push(Call::Tag {
                    image: image.into(),
                    repo: repo.into(),
                    tag: tag.into(),
                });
                let Some(info) = s.images.get(image).cloned() else {
                    return Err(RuntimeError {
                        kind: RuntimeErrorKind::NotFound,
                        message: "no such image".into(),
                    });
                };
                s.images.insert(format!("{repo}:{tag}"), info);
                Ok(())
            })
        }

        fn inspect_container<'a>(
            &'a self,
            name: &'a str,
        ) -> BoxFuture<'a, RtResult<Option<ContainerState>>> {
            self.record(Call::Status(name.into()));
            let status = self.script.lock().unwrap().containers.get(name).cloned();
            Box::pin(async move { Ok(status) })
        }

        fn ensure_network<'a>(
            &'a self,
            name: &'a str,
            _labels: &'a BTreeMap<String, String>,
            _host_port: u16,
        ) -> BoxFuture<'a, RtResult<IpAddr>> {
            self.record(Call::Network(name.into()));
            // A documentation address (TEST-NET-1): nothing listens there.
            Box::pin(async { Ok(IpAddr::from([192, 0, 2, 1])) })
        }

        fn remove_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>> {
            self.record(Call::RemoveNetwork(name.into()));
            Box::pin(async { Ok(()) })
        }

        fn open_ports<'a>(
            &'a self,
            network: &'a str,
            name: &'a str,
            ports: &'a [wire::PodPort],
        ) -> BoxFuture<'a, RtResult<()>> {
            self.record(Call::OpenPorts {
                network: network.into(),
                name: name.into(),
                ports: ports.to_vec(),
            });
            Box::pin(async { Ok(()) })
        }

        fn close_ports<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>> {
            self.record(Call::ClosePorts(name.into()));
            Box::pin(async { Ok(()) })
        }

        fn opened_ports(&self) -> BoxFuture<'_, RtResult<Vec<String>>> {
            Box::pin(async { Ok(Vec::new()) })
        }

        fn list_containers<'a>(
            &'a self,
            key: &'a str,
            value: &'a str,
        ) -> BoxFuture<'a, RtResult<Vec<String>>> {
            let names = self
                .script
                .lock()
                .unwrap()
                .containers
                .iter()
                .filter(|(_, c)| c.labels.get(key).map(String::as_str) == Some(value))
                .map(|(n, _)| n.clone())
                .collect();
            Box::pin(async move { Ok(names) })
        }

        fn create_container<'a>(
            &'a self,
            spec: &'a ContainerSpec,
        ) -> BoxFuture<'a, RtResult<String>> {
            self.record(Call::Create(spec.clone()));
            Box::pin(async move { Ok(format!("id-{}", spec.name)) })
        }

        fn start_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, RtResult<()>> {
            self.record(Call::Start(id.into()));
            let error = self.script.lock().unwrap().start_error.clone();
            Box::pin(async move { error.map_or(Ok(()), |e| Err(RuntimeError::failed(e))) })
        }

        fn wait_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, RtResult<i64>> {
            self.record(Call::Wait(id.into()));
            let code = self.script.lock().unwrap().exit_code;
            Box::pin(async move {
                match code {
                    Some(c) => Ok(c),
                    None => std::future::pending().await,
                }
            })
        }

        fn stop_container<'a>(
            &'a self,
            id: &'a str,
            _grace: Duration,
        ) -> BoxFuture<'a, RtResult<()>> {
            self.record(Call::Stop(id.into()));
            Box::pin(async { Ok(()) })
        }

        fn container_logs<'a>(
            &'a self,
            id: &'a str,
            log: &'a LogBook,
        ) -> BoxFuture<'a, RtResult<()>> {
            self.record(Call::Logs(id.into()));
            log.push_bytes(&self.script.lock().unwrap().logs);
            Box::pin(async { Ok(()) })
        }

        fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, RtResult<()>> {
            self.record(Call::Remove(id.into()));
            Box::pin(async { Ok(()) })
        }

        fn remove_image<'a>(&'a self, id: &'a str) -> BoxFuture<'a, RtResult<()>> {
            self.record(Call::RemoveImage(id.into()));
            self.script.lock().unwrap().dangling.retain(|i| i.id != id);
            Box::pin(async { Ok(()) })
        }

        fn data_root(&self) -> BoxFuture<'_, RtResult<PathBuf>> {
            let root = self.script.lock().unwrap().data_root.clone();
            Box::pin(async move {
                root.ok_or_else(|| RuntimeError::failed("docker info names no data root"))
            })
        }

        /// The layers scripted for the image (none for an image scripted without).
        fn image_layers<'a>(
            &'a self,
            reference: &'a str,
        ) -> BoxFuture<'a, RtResult<Option<Vec<String>>>> {
            let s = self.script.lock().unwrap();
            let found = s.images.get(reference).map(|_| {
                s.layers
                    .get(reference)
                    .map(|l| l.iter().map(|(d, _)| d.clone()).collect())
                    .unwrap_or_default()
            });
            Box::pin(async move { Ok(found) })
        }

        /// A tar of the scripted layers as `<n>/layer.tar` members.
        fn save_image<'a>(
            &'a self,
            reference: &'a str,
            to: &'a Path,
        ) -> BoxFuture<'a, RtResult<()>> {
            let layers = self.script.lock().unwrap().layers.get(reference).cloned();
            Box::pin(async move {
                let layers = layers.ok_or_else(|| RuntimeError {
                    kind: RuntimeErrorKind::NotFound,
                    message: format!("no such image: {reference}"),
                })?;
                let mut b = tar::Builder::new(std::fs::File::create_new(to).unwrap());
                for (i, (_, bytes)) in layers.iter().enumerate() {
                    let mut h = tar::Header::new_ustar();
                    h.set_size(bytes.len() as u64);
                    h.set_mode(0o644);
                    h.set_cksum();
                    b.append_data(&mut h, format!("{i}/layer.tar"), &bytes[..])
                        .unwrap();
                }
                b.finish().unwrap();
                Ok(())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_are_limited() {
        let request = BuildRequest {
            tag: "tenants/alice/app:1".into(),
            dockerfile: "Dockerfile".into(),
            labels: BTreeMap::new(),
            context: Body::Bytes(Vec::new()),
            cache_from: Vec::new(),
        };
        let o = build_options(&request);
        assert_eq!(o.memory, Some(1 << 30));
        assert_eq!(o.memswap, Some(1 << 30));
        assert_eq!(o.networkmode.as_deref(), Some("none"));
        assert_eq!(o.pull.as_deref(), Some("false"));
        assert_eq!((o.cpuperiod, o.cpuquota), (Some(100_000), Some(100_000)));
        assert!(o.rm && o.forcerm);
        // No image of the tenant's yet: no cache at all, never another tenant's.
        assert!(o.nocache && o.cachefrom.is_none());
        let own = BuildRequest {
            cache_from: vec!["tenants/alice/app:0".into()],
            ..request
        };
        let o = build_options(&own);
        assert!(!o.nocache);
        assert_eq!(o.cachefrom, Some(vec!["tenants/alice/app:0".to_string()]));
    }

    #[test]
    fn pods_are_isolated() {
        let spec = ContainerSpec {
            name: "orbitdock-alice-p-12345678".into(),
            image: "busybox:latest".into(),
            user: "200000:200000".into(),
            hostname: "alice-p".into(),
            entrypoint: None,
            cmd: None,
            env: vec![],
            data_dir: "/v/alice/pvc".into(),
            labels: BTreeMap::new(),
            tmp_bytes: 1 << 20,
            log_bytes: 1 << 16,
            image_volumes: vec![],
            node: NODE_CLASSES[0],
            network: None,
            extra_hosts: Vec::new(),
            gpu: Gpu::None,
        };
        let h = host_config(&spec);
        assert_eq!(h.readonly_rootfs, Some(true));
        assert_eq!(
            h.tmpfs.as_ref().unwrap()["/tmp"],
            "rw,nosuid,nodev,mode=1777,size=1048576"
        );
        let log = h.log_config.as_ref().unwrap();
        assert_eq!(log.typ.as_deref(), Some("json-file"));
        assert_eq!(log.config.as_ref().unwrap()["max-size"], "65536");
        assert_eq!(h.network_mode.as_deref(), Some("none"));
        assert_eq!(h.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(h.security_opt, Some(vec!["no-new-privileges".to_string()]));
        assert_eq!(h.memory, Some(1 << 30));
        assert_eq!(h.pids_limit, Some(512));
        assert_eq!(h.privileged, Some(false));
        assert!(h.binds.is_none() && h.cap_add.is_none() && h.devices.is_none());
        assert!(h.volumes_from.is_none() && h.volume_driver.is_none());
        let m = &h.mounts.unwrap()[0];
        assert_eq!(
            (m.source.as_deref(), m.target.as_deref()),
            (Some("/v/alice/pvc"), Some("/data"))
        );
    }

    /// An image's `VOLUME`s get a bounded tmpfs each, so the engine makes no anonymous volume;
    /// `/data` (the tenant's volume) and paths under it are left to the bind mount.
    #[test]
    fn image_volumes_become_bounded_tmpfs() {
        let spec = ContainerSpec {
            name: "n".into(),
            image: "i".into(),
            user: "1:1".into(),
            hostname: "h".into(),
            entrypoint: None,
            cmd: None,
            env: vec![],
            data_dir: "/v".into(),
            labels: BTreeMap::new(),
            tmp_bytes: 1 << 20,
            log_bytes: 1 << 16,
            image_volumes: [
                "/var/lib/db",
                "//state/./x/",
                "/tmp",
                "/data",
                "/data/sub",
                "relative",
                "/",
                "/a/../etc",
                "/b,uid=0",
            ]
            .map(String::from)
            .to_vec(),
            node: NODE_CLASSES[0],
            network: Some("orbitdock-alice".into()),
            extra_hosts: vec!["satellite-telemetry.dphi-tm:172.18.0.1".into()],
            gpu: Gpu::None,
        };
        let t = pod_host::tmpfs_mounts(&spec);
        let mut keys: Vec<&str> = t.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["/state/x", "/tmp", "/var/lib/db"]);
        assert!(
            t.values()
                .all(|o| o == "rw,nosuid,nodev,mode=1777,size=1048576")
        );
        assert_eq!(host_config(&spec).tmpfs, Some(t));
        // A pod joins its tenant's internal network, and only that, and is told where the
        // onboard services are on it.
        assert_eq!(
            host_config(&spec).network_mode.as_deref(),
            Some("orbitdock-alice")
        );
        assert_eq!(
            host_config(&spec).extra_hosts,
            Some(vec!["satellite-telemetry.dphi-tm:172.18.0.1".to_string()])
        );
        // Names outside the network are asked of the gateway, which answers none.
        assert_eq!(host_config(&spec).dns, Some(vec!["172.18.0.1".to_string()]));
    }

    use super::pod_host::CPU;

    #[test]
    fn a_gpu_is_found_under_dev_and_passed_to_gpu_pods_only() {
        let dev = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let path = std::env::join_paths([bin.path()]).unwrap();
        assert_eq!(detect_gpu(dev.path(), Some(&path)), Gpu::None);
        // DRM render nodes (card nodes are for displays, not passed).
        std::fs::create_dir(dev.path().join("dri")).unwrap();
        for f in ["card0", "renderD129", "renderD128"] {
            std::fs::write(dev.path().join("dri").join(f), b"").unwrap();
        }
        let gid = std::os::unix::fs::MetadataExt::gid(
            &std::fs::metadata(dev.path().join("dri/renderD128")).unwrap(),
        );
        let dri = detect_gpu(dev.path(), Some(&path));
        let at = |n: &str| {
            dev.path()
                .join("dri")
                .join(n)
                .to_string_lossy()
                .into_owned()
        };
        assert_eq!(
            dri,
            Gpu::Dri(vec![
                GpuDevice {
                    path: at("renderD128"),
                    gid
                },
                GpuDevice {
                    path: at("renderD129"),
                    gid
                },
            ])
        );
        // An NVIDIA device counts only with the toolkit's hook on the PATH.
        std::fs::write(dev.path().join("nvidiactl"), b"").unwrap();
        assert_eq!(detect_gpu(dev.path(), Some(&path)), dri);
        std::fs::write(bin.path().join("nvidia-container-runtime-hook"), b"").unwrap();
        assert_eq!(detect_gpu(dev.path(), Some(&path)), Gpu::Nvidia);
        assert_eq!(detect_gpu(dev.path(), None), dri);

        // What the engine is asked for: `--gpus all` for NVIDIA; the render nodes and their
        // groups otherwise; nothing without a GPU.
        let spec = |gpu: Gpu| ContainerSpec {
            name: "n".into(),
            image: "i".into(),
            user: "1:1".into(),
            hostname: "h".into(),
            entrypoint: None,
            cmd: None,
            env: vec![],
            data_dir: "/v".into(),
            labels: BTreeMap::new(),
            tmp_bytes: 1 << 20,
            log_bytes: 1 << 16,
            image_volumes: vec![],
            node: node_class(Some("GPU")).unwrap(),
            network: None,
            extra_hosts: Vec::new(),
            gpu,
        };
        let h = host_config(&spec(Gpu::Nvidia));
        assert_eq!(
            h.device_requests,
            Some(vec![bollard::models::DeviceRequest {
                driver: Some("nvidia".into()),
                count: Some(-1),
                capabilities: Some(vec![vec!["gpu".into()]]),
                ..Default::default()
            }])
        );
        assert!(h.devices.is_none() && h.group_add.is_none());
        let h = host_config(&spec(dri));
        assert!(h.device_requests.is_none());
        let devices = h.devices.unwrap();
        assert_eq!(
            devices
                .iter()
                .map(|d| (
                    d.path_on_host.clone().unwrap(),
                    d.path_in_container.clone().unwrap(),
                    d.cgroup_permissions.clone().unwrap()
                ))
                .collect::<Vec<_>>(),
            [
                (at("renderD128"), at("renderD128"), "rw".to_string()),
                (at("renderD129"), at("renderD129"), "rw".to_string())
            ]
        );
        assert_eq!(h.group_add, Some(vec![gid.to_string()]));
        // Still hardened.
        assert_eq!(h.privileged, Some(false));
        assert_eq!(h.cap_drop, Some(vec!["ALL".to_string()]));
        let h = host_config(&spec(Gpu::None));
        assert!(h.device_requests.is_none() && h.devices.is_none() && h.group_add.is_none());
    }

    #[test]
    fn node_classes() {
        let host = std::thread::available_parallelism().unwrap().get() as i64;
        for (name, class, cpus, memory) in [
            (None, "default", 2, 1 << 30),
            (Some("Fpga"), "FPGA", 2, 1 << 30),
            (Some("mpu1"), "MPU", 1, 512 << 20),
            (Some("MPU"), "MPU", 1, 512 << 20),
            (Some("gpu"), "GPU", 4, 4 << 30),
        ] {
            let c = node_class(name).unwrap();
            assert_eq!(
                (c.name, c.nano_cpus, c.memory),
                (class, cpus.min(host) * CPU, memory),
                "{name:?}"
            );
        }
        assert_eq!(
            node_class(Some("TPU")),
            Err("unknown node 'TPU': expected one of default, MPU, FPGA, GPU".into())
        );
    }

    #[test]
    fn engine_times_read() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            rfc3339_ms("2026-12-03T00:19:57.123456789Z"),
            Some(1_796_257_197_123)
        );
        assert_eq!(rfc3339_ms("0001-01-01T00:00:00Z"), None);
        assert_eq!(rfc3339_ms("soon"), None);
    }
}
