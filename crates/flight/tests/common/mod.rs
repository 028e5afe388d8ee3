//! What the flight agent's tests against the real Docker Engine share: the engine client, and
//! the removal of everything a test's tenant left in the daemon (containers, build step
//! containers, its network and port rules, its images), on drop, pass or fail.
#![allow(dead_code)]

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::ContainerSummary;
use bollard::query_parameters::{
    ListContainersOptions, ListImagesOptions, RemoveContainerOptions, RemoveImageOptions,
};

/// The configuration of an agent on `dir` (`state/`, `volumes/`) for system `em`, taking
/// unsigned plans, with the default disk limits, no quotas and the mission clock `clock`.
pub(crate) fn agent_config(
    dir: &std::path::Path,
    clock: flight::ClockConfig,
) -> flight::AgentConfig {
    flight::AgentConfig {
        system: "em".into(),
        state_dir: dir.join("state"),
        volumes_dir: dir.join("volumes"),
        plan_verifier: None,
        builder: wire::Builder::Classic,
        catalogue: None,
        limits: flight::DiskLimits::default(),
        quotas: flight::Quotas::none(),
        clock,
    }
}

/// Builds the catalogue's stand-in base images (idempotent), every one of them.
pub(crate) async fn seed_bases() {
    let mut lines = Vec::new();
    let catalogue = standins::seed_bases(&mut |l: &str| lines.push(l.to_string()))
        .await
        .expect("seed-bases needs the Docker Engine (and a static busybox or apt-get)");
    assert!(
        catalogue.iter().all(|b| b.digest.is_some()),
        "{catalogue:?} {lines:?}"
    );
}

/// The local engine; these tests fail without one, they never skip.
pub(crate) async fn docker() -> Docker {
    Docker::connect_with_local_defaults()
        .expect("the Docker Engine client")
        .negotiate_version()
        .await
        .expect("the Docker Engine must be reachable for these tests")
}

/// The ids of the containers `filters` selects that `keep` keeps.
pub(crate) async fn containers(
    docker: &Docker,
    filters: Option<HashMap<String, Vec<String>>>,
    keep: impl Fn(&ContainerSummary) -> bool,
) -> Vec<String> {
    docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters,
            ..Default::default()
        }))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|c| keep(c))
        .filter_map(|c| c.id)
        .collect()
}

/// The ids of every container labelled as the tenant's.
pub(crate) async fn tenant_containers(docker: &Docker, tenant: &str) -> Vec<String> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("org.orbitdock.tenant={tenant}")],
    )]);
    containers(docker, Some(filters), |_| true).await
}

/// The ids of the build step containers whose command holds `token` (the classic builder's step
/// containers carry no label of the build's).
pub(crate) async fn step_containers(docker: &Docker, token: &str) -> Vec<String> {
    containers(docker, None, |c| {
        c.command.as_deref().is_some_and(|cmd| cmd.contains(token))
    })
    .await
}

/// Removes what `tenant` left: its containers and build steps, its network, the rules that
/// open its pods' ports, its named images (untagged by name: an id may be shared with a
/// catalogue image, which must stay) and its unnamed labelled ones.
pub(crate) async fn cleanup(tenant: &str) {
    let docker = docker().await;
    let mut left = tenant_containers(&docker, tenant).await;
    left.extend(step_containers(&docker, tenant).await);
    for id in left {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        let _ = docker.remove_container(&id, Some(options)).await;
    }
    let _ = docker.remove_network(&format!("orbitdock-{tenant}")).await;
    remove_port_rules(tenant);
    let force = || {
        Some(RemoveImageOptions {
            force: true,
            ..Default::default()
        })
    };
    let list = |key: &str, value: String| {
        Some(ListImagesOptions {
            filters: Some(HashMap::from([(key.to_string(), vec![value])])),
            ..Default::default()
        })
    };
    let prefix = format!("tenants/{tenant}/");
    let named = docker
        .list_images(list("reference", format!("{prefix}*")))
        .await
        .unwrap_or_default();
    for t in named.into_iter().flat_map(|i| i.repo_tags) {
        if t.starts_with(&prefix) {
            let _ = docker.remove_image(&t, force(), None).await;
        }
    }
    for label in [
        format!("org.orbitdock.tenant={tenant}"),
        format!("owner={tenant}"),
    ] {
        let labelled = docker
            .list_images(list("label", label))
            .await
            .unwrap_or_default();
        for i in labelled {
            if i.repo_tags.iter().all(|t| t == "<none>:<none>") {
                let _ = docker.remove_image(&i.id, force(), None).await;
            }
        }
    }
}

/// Deletes the rules that open ports of the tenant's pods and those that let its network reach
/// the host's telemetry service (a test that fails midway leaves them).
pub(crate) fn remove_port_rules(tenant: &str) {
    let pods = format!("orbitdock-pod:orbitdock-{tenant}-");
    let network = format!("orbitdock-net:orbitdock-{tenant}");
    for (chain, mine) in [("DOCKER-USER", &pods), ("INPUT", &network)] {
        let Ok(out) = std::process::Command::new("iptables")
            .args(["-w", "-S", chain])
            .output()
        else {
            continue;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let args: Vec<&str> = line
                .split_whitespace()
                .map(|a| a.trim_matches('"'))
                .collect();
            if let ["-A", chain, rest @ ..] = args.as_slice()
                && rest.iter().any(|a| a.starts_with(mine.as_str()))
            {
                let _ = std::process::Command::new("iptables")
                    .args(["-w", "-D", chain])
                    .args(rest)
                    .status();
            }
        }
    }
}

/// Removes its tenant's leftovers ([`cleanup`]) on drop, pass or fail.
pub(crate) struct Cleanup(pub(crate) String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let tenant = self.0.clone();
        // Drop cannot await; clean up on a runtime of its own, on a thread of its own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for cleanup")
                .block_on(cleanup(&tenant))
        })
        .join();
    }
}
