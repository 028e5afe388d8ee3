//! The labels of a pod's container: who it belongs to, which task made it, and what a
//! restarted agent reads back to take it up (every `org.orbitdock` label set by the agent, over
//! any its image carries).

use super::*;

/// The label naming a pod's task index in its plan.
pub(super) const TASK_LABEL: &str = "org.orbitdock.task";
/// The label naming the pod.
pub(super) const POD_LABEL: &str = "org.orbitdock.pod";
/// The label of a detached pod's container (`1`): what a restarted agent supervises again.
pub(super) const DETACHED_LABEL: &str = "org.orbitdock.detached";
/// The label giving a pod's volume.
pub(super) const VOLUME_LABEL: &str = "org.orbitdock.volume";
/// The label giving a pod's `max_duration` in milliseconds.
pub(super) const MAX_LABEL: &str = "org.orbitdock.max-duration-ms";
/// The label giving the CPUs a pod is charged for, in billionths (its node class's).
pub(super) const CPUS_LABEL: &str = "org.orbitdock.nano-cpus";
/// The label giving the ports a merged pod opens to its peers (`8080/tcp,53/udp`).
pub(super) const PORTS_LABEL: &str = "org.orbitdock.ports";

/// The labels of a pod's container: who it belongs to and which task made it.
pub(super) fn pod_labels(
    tenant: &str,
    execution: &str,
    index: usize,
    pod: &str,
) -> BTreeMap<String, String> {
    let mut labels = labels(tenant, execution);
    labels.insert("org.orbitdock".into(), "1".into());
    labels.insert(POD_LABEL.into(), pod.into());
    labels.insert(TASK_LABEL.into(), index.to_string());
    labels
}

/// The labels of a pod's container, the agent's own (`org.orbitdock` and `org.orbitdock.*`)
/// each set, over the image's: the engine gives a container every label of its image it is
/// not given itself, and the tenant writes the image's, so each `org.orbitdock` label the image
/// carries and the agent does not set is set empty. What the agent reads back from a container
/// is then only ever what it wrote.
pub(super) fn over_image_labels(
    mut labels: BTreeMap<String, String>,
    image: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    for key in image.keys() {
        if key == "org.orbitdock" || key.starts_with("org.orbitdock.") {
            labels.entry(key.clone()).or_default();
        }
    }
    labels
}

/// Refuses to take up a container that is not this task's pod: a container of the same name
/// (the name holds only 8 characters of the execution id) made by another execution, another
/// task or anyone else.
#[allow(clippy::result_large_err)]
pub(super) fn check_labels(
    name: &str,
    state: &ContainerState,
    want: &BTreeMap<String, String>,
) -> Step<()> {
    let wrong: Vec<String> = want
        .iter()
        .filter(|(k, v)| state.labels.get(*k) != Some(*v))
        .map(|(k, v)| match state.labels.get(k) {
            Some(got) => format!("{k}={got:?}, not {v:?}"),
            None => format!("{k} missing (want {v:?})"),
        })
        .collect();
    if wrong.is_empty() {
        return Ok(());
    }
    Err(execution_error(format!(
        "a container named {name} exists but is not this task's pod ({}); it is left alone and \
         the pod is not started",
        wrong.join("; ")
    )))
}

/// The ports a pod opens, as its label gives them: `8080/tcp,53/udp`.
pub(super) fn ports_label(ports: &[wire::PodPort]) -> String {
    let each: Vec<String> = ports
        .iter()
        .map(|p| format!("{}/{}", p.container, p.protocol.as_str()))
        .collect();
    each.join(",")
}

/// The ports of a [`PORTS_LABEL`]; what does not read is left out.
pub(super) fn read_ports_label(label: &str) -> Vec<wire::PodPort> {
    label
        .split(',')
        .filter_map(|p| {
            let (number, protocol) = p.split_once('/')?;
            Some(wire::PodPort {
                container: number.parse().ok().filter(|n| *n > 0)?,
                protocol: match protocol {
                    "tcp" => wire::PortProtocol::Tcp,
                    "udp" => wire::PortProtocol::Udp,
                    _ => return None,
                },
            })
        })
        .collect()
}
