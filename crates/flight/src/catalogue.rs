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
    Ok(catalogue_of(&runtime).await)
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
