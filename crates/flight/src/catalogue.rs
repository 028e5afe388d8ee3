//! The onboard catalogue as this agent sees it: which base images are present, with their ids.

use wire::BaseImage;

use crate::agent::catalogue_of;
use crate::error::Error;
use crate::runtime::DockerRuntime;

/// The catalogue with the ids of the images present onboard (`digest: None` when missing).
pub async fn catalogue_status() -> Result<Vec<BaseImage>, Error> {
    let runtime = DockerRuntime::connect().await?;
    Ok(catalogue_of(&runtime).await)
}
