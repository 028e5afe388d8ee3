//! What bounds a pod on the host (part of `runtime`): `host_config`, where the isolation rules
//! live, the node classes of `pod.run`'s `node`, and its tmpfs mounts.

use std::collections::HashMap;

use bollard::models::{HostConfig, HostConfigLogConfig, Mount, MountType};

use super::{ContainerSpec, POD_MEMORY, POD_PIDS};

/// A node class a pod asks for (`pod.run`'s `node`), as this machine serves it: its CPUs and
/// memory (swap included). Clustergate-2's nodes are an MPU (Cortex-A53), an FPGA SoC (whose A53
/// cores run the default pods) and a GPU module (Jetson Orin); one engine stands for all three
/// here, and the class bounds what a pod may take of it. No device is passed to a GPU pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeClass {
    /// The class's name as the API spells it.
    pub name: &'static str,
    /// CPUs, in billionths (Docker's `NanoCpus`).
    pub nano_cpus: i64,
    /// Memory in bytes, swap included.
    pub memory: i64,
}

pub(crate) const CPU: i64 = 1_000_000_000;

/// The node classes, `default` first.
pub const NODE_CLASSES: [NodeClass; 4] = [
    NodeClass {
        name: "default",
        nano_cpus: 2 * CPU,
        memory: POD_MEMORY,
    },
    NodeClass {
        name: "MPU",
        nano_cpus: CPU,
        memory: 512 << 20,
    },
    NodeClass {
        name: "FPGA",
        nano_cpus: 2 * CPU,
        memory: POD_MEMORY,
    },
    NodeClass {
        name: "GPU",
        nano_cpus: 4 * CPU,
        memory: 4 << 30,
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

/// The host settings of every pod: the isolation rules live here.
pub(crate) fn host_config(spec: &ContainerSpec) -> HostConfig {
    HostConfig {
        mounts: Some(vec![Mount {
            target: Some("/data".into()),
            source: Some(spec.data_dir.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(false),
            ..Default::default()
        }]),
        network_mode: Some(spec.network.clone().unwrap_or_else(|| "none".into())),
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
    }
}
