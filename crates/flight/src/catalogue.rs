//! The onboard catalogue as this agent sees it: which base images are present, with their ids,
//! and the [`wire::EngineReport`] of every `Hello`: what the engine really holds.

use wire::{BaseImage, EngineImage, EngineReport};

use crate::agent::catalogue_of;
use crate::error::Error;
use crate::names;
use crate::runtime::{DockerRuntime, Runtime};

/// The catalogue with the ids of the images present onboard (`digest: None` when missing).
pub async fn catalogue_status() -> Result<Vec<BaseImage>, Error> {
    let runtime = DockerRuntime::connect().await?;
    Ok(catalogue_of(&runtime, &wire::catalogue(&names::host_platform())).await)
}

/// What the engine holds, read through the runtime: every named image except the tenants' own
/// (`tenants/…`), by name, with its id and platform (at most [`wire::MAX_ENGINE_IMAGES`]), the
/// engine's platform and the builder the agent builds with. An engine that cannot be asked
/// gives an empty list (logged): the ground then shows every declared image as missing.
pub(crate) async fn engine_report(runtime: &dyn Runtime, builder: wire::Builder) -> EngineReport {
    let mut images = Vec::new();
    match runtime.list_images("").await {
        Ok(listed) => {
            let mut names: Vec<(String, String)> = listed
                .into_iter()
                .flat_map(|i| {
                    let id = i.id;
                    i.repo_tags.into_iter().map(move |t| (t, id.clone()))
                })
                .filter(|(t, _)| !t.starts_with("tenants/") && !t.starts_with("<none>"))
                .collect();
            names.sort();
            names.dedup();
            names.truncate(wire::MAX_ENGINE_IMAGES);
            for (name, id) in names {
                let platform = match runtime.inspect_image(&name).await {
                    Ok(Some(info)) => info.platform,
                    _ => String::new(),
                };
                images.push(EngineImage { name, id, platform });
            }
        }
        Err(e) => tracing::warn!(error = %e.message, "cannot list the engine's images"),
    }
    EngineReport {
        images,
        platform: names::host_platform(),
        builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ImageInfo;
    use crate::runtime::fake::FakeRuntime;

    #[tokio::test]
    async fn the_engine_report_lists_what_the_engine_holds_but_tenant_images() {
        let info = |id: &str, platform: &str| ImageInfo {
            id: id.into(),
            platform: platform.into(),
            ..Default::default()
        };
        let fake = FakeRuntime::with(|s| {
            s.images
                .insert("busybox:latest".into(), info("sha256:bb", "linux/amd64"));
            s.images
                .insert("alpine:3.20".into(), info("sha256:aa", "linux/arm64"));
            s.images.insert(
                "tenants/alice/app:v1".into(),
                info("sha256:cc", "linux/amd64"),
            );
        });
        let report = engine_report(&fake, wire::Builder::BuildKit).await;
        assert_eq!(
            report.images,
            [
                EngineImage {
                    name: "alpine:3.20".into(),
                    id: "sha256:aa".into(),
                    platform: "linux/arm64".into()
                },
                EngineImage {
                    name: "busybox:latest".into(),
                    id: "sha256:bb".into(),
                    platform: "linux/amd64".into()
                },
            ]
        );
        assert_eq!(report.builder, wire::Builder::BuildKit);
        assert_eq!(report.platform, names::host_platform());
    }

    #[tokio::test]
    async fn an_agent_configured_for_buildkit_refuses_to_start_on_the_classic_adapter() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let config = crate::AgentConfig {
            system: "em".into(),
            state_dir: dir.path().join("state"),
            volumes_dir: dir.path().join("volumes"),
            plan_verifier: None,
            builder: wire::Builder::BuildKit,
            catalogue: None,
            limits: crate::DiskLimits::default(),
            quotas: crate::Quotas::none(),
            clock: crate::ClockConfig::Host,
        };
        let e = crate::Agent::connect(config, tx).await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Invalid);
        assert!(e.to_string().contains("builder buildkit"), "{e}");
    }
}
