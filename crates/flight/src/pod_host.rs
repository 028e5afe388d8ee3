//! What bounds a pod on the host (part of `runtime`): `host_config`, where the isolation rules
//! live, the node classes of `pod.run`'s `node`, the GPU a `GPU` pod gets, and its tmpfs mounts.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bollard::models::{
    DeviceMapping, DeviceRequest, HostConfig, HostConfigLogConfig, Mount, MountType,
};

use super::{ContainerSpec, POD_MEMORY, POD_PIDS};

/// A node class a pod asks for (`pod.run`'s `node`), as this machine serves it: its CPUs and
/// memory (swap included). Clustergate-2's nodes are an MPU (Cortex-A53), an FPGA SoC (whose A53
/// cores run the default pods) and a GPU module (Jetson Orin); one engine stands for all three
/// here, and the class bounds what a pod may take of it. A `GPU` pod gets the machine's GPU
/// ([`Gpu`]), and is refused where there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeClass {
    /// The class's name as the API spells it.
    pub name: &'static str,
    /// CPUs, in billionths (Docker's `NanoCpus`).
    pub nano_cpus: i64,
    /// Memory in bytes, swap included.
    pub memory: i64,
    /// Whether its pods get the machine's GPU.
    pub gpu: bool,
}

/// The GPU this machine can give a pod of the `GPU` class, as [`detect_gpu`] found it at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Gpu {
    /// None: a `GPU` pod is refused.
    #[default]
    None,
    /// An NVIDIA GPU (`/dev/nvidiactl`) with the NVIDIA container toolkit, whose hook gives the
    /// engine its `nvidia` device driver: a device request for every GPU (`docker run --gpus
    /// all`).
    Nvidia,
    /// DRM render nodes (`/dev/dri/renderD*`: Intel, AMD, Mali, …): passed as devices, the pod
    /// joining each one's group so that the tenant's uid may open it.
    Dri(Vec<GpuDevice>),
}

/// A device file passed to a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuDevice {
    /// Its path, the same on the host and in the pod.
    pub path: String,
    /// The group that owns it.
    pub gid: u32,
}

impl Gpu {
    /// What was found, in words.
    pub fn describe(&self) -> String {
        match self {
            Gpu::None => "none".into(),
            Gpu::Nvidia => "NVIDIA (device requests to the nvidia driver)".into(),
            Gpu::Dri(d) => {
                let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
                format!("DRM render nodes {}", paths.join(", "))
            }
        }
    }
}

/// The GPU under the device folder `dev` (`/dev`): an NVIDIA one when `nvidiactl` is there and
/// the NVIDIA container toolkit's hook (`nvidia-container-runtime-hook`) is on `path` (the
/// `PATH` the engine finds it on too), else the DRM render nodes of `dev/dri`, else none.
pub fn detect_gpu(dev: &Path, path: Option<&OsStr>) -> Gpu {
    let hook = path.is_some_and(|p| {
        std::env::split_paths(p).any(|d| d.join("nvidia-container-runtime-hook").is_file())
    });
    if hook && dev.join("nvidiactl").exists() {
        return Gpu::Nvidia;
    }
    let mut nodes: Vec<GpuDevice> = std::fs::read_dir(dev.join("dri"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("renderD"))
        .filter_map(|e| {
            Some(GpuDevice {
                path: e.path().to_str()?.to_string(),
                gid: e.metadata().ok()?.gid(),
            })
        })
        .collect();
    nodes.sort_by(|a, b| a.path.cmp(&b.path));
    if nodes.is_empty() {
        Gpu::None
    } else {
        Gpu::Dri(nodes)
    }
}

/// Gives the pod with host settings `h` the GPU `gpu`: a device request, or devices and their
/// groups; nothing for none.
fn give_gpu(gpu: &Gpu, h: &mut HostConfig) {
    match gpu {
        Gpu::None => {}
        Gpu::Nvidia => {
            h.device_requests = Some(vec![DeviceRequest {
                driver: Some("nvidia".into()),
                count: Some(-1),
                capabilities: Some(vec![vec!["gpu".into()]]),
                ..Default::default()
            }]);
        }
        Gpu::Dri(nodes) => {
            h.devices = Some(
                nodes
                    .iter()
                    .map(|n| DeviceMapping {
                        path_on_host: Some(n.path.clone()),
                        path_in_container: Some(n.path.clone()),
                        cgroup_permissions: Some("rw".into()),
                    })
                    .collect(),
            );
            let mut groups: Vec<String> = nodes.iter().map(|n| n.gid.to_string()).collect();
            groups.sort();
            groups.dedup();
            h.group_add = Some(groups);
        }
    }
}

pub(crate) const CPU: i64 = 1_000_000_000;

/// The node classes, `default` first.
pub const NODE_CLASSES: [NodeClass; 4] = [
    NodeClass {
        name: "default",
        nano_cpus: 2 * CPU,
        memory: POD_MEMORY,
        gpu: false,
    },
    NodeClass {
        name: "MPU",
        nano_cpus: CPU,
        memory: 512 << 20,
        gpu: false,
    },
    NodeClass {
        name: "FPGA",
        nano_cpus: 2 * CPU,
        memory: POD_MEMORY,
        gpu: false,
    },
    NodeClass {
        name: "GPU",
        nano_cpus: 4 * CPU,
        memory: 4 << 30,
        gpu: true,
    },
];

/// The class a pod's `node` names (any case; `mpu1` is the MPU, as CG2's EM calls it), with its
/// CPUs capped at this machine's (the engine refuses more than it has). `None` is `default`.
pub(crate) fn node_class(node: Option<&str>) -> Result<NodeClass, String> {
    let wanted = node.unwrap_or("default").to_ascii_lowercase();
    let wanted = if wanted == "mpu1" {
        "mpu".into()
    } else {
        wanted
    };
    let mut class = NODE_CLASSES
        .into_iter()
        .find(|c| c.name.eq_ignore_ascii_case(&wanted))
        .ok_or_else(|| {
            format!(
                "unknown node '{}': expected one of {}",
                node.unwrap_or_default(),
                NODE_CLASSES.map(|c| c.name).join(", ")
            )
        })?;
    let host = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
    class.nano_cpus = class.nano_cpus.min(host * CPU);
    Ok(class)
}

/// The tmpfs mounts of a pod: `/tmp`, and one over each `VOLUME` path of its image (the engine
/// skips an image volume whose destination is already mounted, so none is created). Each is
/// bounded by `tmp_bytes` and counts against the pod's memory limit. A declared path at or under
/// `/data` is left alone: the tenant's volume is there.
pub(crate) fn tmpfs_mounts(spec: &ContainerSpec) -> HashMap<String, String> {
    let options = format!("rw,nosuid,nodev,mode=1777,size={}", spec.tmp_bytes);
    let mut mounts = HashMap::from([("/tmp".to_string(), options.clone())]);
    for declared in &spec.image_volumes {
        let Some(path) = clean_container_path(declared) else {
            continue;
        };
        if path == "/data" || path.starts_with("/data/") {
            continue;
        }
        mounts.entry(path).or_insert_with(|| options.clone());
    }
    mounts
}

/// An absolute container path as the engine cleans it (`filepath.Clean`): `//a/./b/` is
/// `/a/b`. `None` for the root, a relative path or one that climbs (`..`).
fn clean_container_path(p: &str) -> Option<String> {
    if !p.starts_with('/') || p.contains(['\0', ',', ':']) {
        return None;
    }
    let mut parts = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| format!("/{}", parts.join("/")))
}

/// The host settings of every pod: the isolation rules live here. A GPU pod's device is the one
/// thing it gets of the host beyond its volume (`spec.gpu`, none for other classes).
pub(crate) fn host_config(spec: &ContainerSpec) -> HostConfig {
    let mut h = HostConfig {
        mounts: Some(vec![Mount {
            target: Some("/data".into()),
            source: Some(spec.data_dir.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(false),
            ..Default::default()
        }]),
        network_mode: Some(spec.network.clone().unwrap_or_else(|| "none".into())),
        extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
        // On its network, the engine's resolver answers the pods' names and sends every other
        // question to the gateway, which drops it: nothing leaves by DNS (older engines
        // forwarded from the host's side otherwise).
        dns: spec
            .network
            .as_ref()
            .and_then(|_| spec.extra_hosts.first())
            .and_then(|h| h.split_once(':'))
            .map(|(_, gateway)| vec![gateway.to_string()]),
        // The firewall that keeps a pod to its network is IPv4's: no IPv6 in a pod on one.
        sysctls: (spec.network.is_some() && Path::new("/proc/sys/net/ipv6").exists()).then(|| {
            HashMap::from([
                (
                    "net.ipv6.conf.all.disable_ipv6".to_string(),
                    "1".to_string(),
                ),
                (
                    "net.ipv6.conf.default.disable_ipv6".to_string(),
                    "1".to_string(),
                ),
            ])
        }),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        memory: Some(spec.node.memory),
        memory_swap: Some(spec.node.memory),
        nano_cpus: Some(spec.node.nano_cpus),
        pids_limit: Some(POD_PIDS),
        privileged: Some(false),
        // Nothing grows in the engine's storage: a read-only root (its writable layer stays
        // empty), a bounded tmpfs for scratch, bounded logs. (`storage_opt` size limits would
        // need overlay2 on xfs with quotas, which an engine on fuse-overlayfs or vfs lacks.)
        readonly_rootfs: Some(true),
        tmpfs: Some(tmpfs_mounts(spec)),
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::from([
                ("max-size".to_string(), spec.log_bytes.to_string()),
                ("max-file".to_string(), "2".to_string()),
            ])),
        }),
        ..Default::default()
    };
    give_gpu(&spec.gpu, &mut h);
    h
}
