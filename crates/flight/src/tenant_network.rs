//! A tenant's internal network as the engine makes it (part of `runtime`): internal, labelled,
//! no traffic between its containers (see `pod_ports`), and the host closed to it but for the
//! port the agent serves its pods on at the network's gateway.

use std::net::IpAddr;

use super::*;

/// [`Runtime::ensure_network`] on the Docker Engine.
pub(super) async fn ensure(
    rt: &DockerRuntime,
    name: &str,
    labels: &BTreeMap<String, String>,
    host_port: u16,
) -> RtResult<IpAddr> {
    rt.make_network(name, labels).await?;
    let n = bounded(
        "inspect network",
        rt.docker
            .inspect_network(name, None::<InspectNetworkOptions>),
    )
    .await?;
    let gateway = n
        .ipam
        .and_then(|i| i.config)
        .into_iter()
        .flatten()
        .find_map(|c| c.gateway?.parse::<IpAddr>().ok())
        .ok_or_else(|| RuntimeError::failed(format!("network {name} has no gateway")))?;
    let id =
        n.id.filter(|i| i.len() >= 12)
            .ok_or_else(|| RuntimeError::failed(format!("network {name} has no id")))?;
    pod_ports::open_host(
        &pod_ports::bridge(&id),
        &gateway.to_string(),
        host_port,
        name,
    )
    .await?;
    Ok(gateway)
}

impl DockerRuntime {
    /// Makes the tenant network `name` unless it exists; an existing one that is not internal,
    /// lacks a label of `labels` or lets its containers talk freely is an error.
    async fn make_network(&self, name: &str, labels: &BTreeMap<String, String>) -> RtResult<()> {
        let found = bounded(
            "inspect network",
            self.docker
                .inspect_network(name, None::<InspectNetworkOptions>),
        )
        .await;
        match found {
            Ok(n) => {
                let have = n.labels.unwrap_or_default();
                let labelled = labels.iter().all(|(k, v)| have.get(k) == Some(v));
                let no_icc = n.options.unwrap_or_default().get(pod_ports::NO_ICC.0)
                    == Some(&pod_ports::NO_ICC.1.to_string());
                if n.internal == Some(true) && labelled && no_icc {
                    Ok(())
                } else {
                    Err(RuntimeError::failed(format!(
                        "a network named {name} exists that is not this tenant's internal network (internal, labelled, no traffic between its containers but the ports they open)"
                    )))
                }
            }
            Err(e) if e.kind == RuntimeErrorKind::NotFound => {
                let request = NetworkCreateRequest {
                    name: name.to_string(),
                    driver: Some("bridge".into()),
                    internal: Some(true),
                    attachable: Some(false),
                    labels: Some(labels.clone().into_iter().collect()),
                    options: Some(HashMap::from([(
                        pod_ports::NO_ICC.0.to_string(),
                        pod_ports::NO_ICC.1.to_string(),
                    )])),
                    ..Default::default()
                };
                bounded("create network", self.docker.create_network(request))
                    .await
                    .map(|_| ())
            }
            Err(e) => Err(e),
        }
    }
}
