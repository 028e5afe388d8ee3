//! Names that come from plans: tenants, volumes, images, tags, pods, executions.
//!
//! Every name is checked before it reaches a path or the Docker Engine, by the rules of
//! `wire::names` — the very code the ground validates operations with, so the ground refuses at
//! creation whatever would be refused here.

use wire::names::{ExecutionId, ImageName, ImageTag, NameError, PodName, TenantName, VolumeName};

/// The prefix of every tenant image: `tenants/<tenant>/<name>:<tag>`.
pub(crate) const TENANT_IMAGE_PREFIX: &str = wire::names::TENANT_IMAGE_PREFIX;

fn message(r: Result<impl Sized, NameError>) -> Result<(), String> {
    r.map(drop).map_err(|e| e.to_string())
}

/// Checks a tenant name ([`TenantName`]).
pub(crate) fn check_tenant(name: &str) -> Result<(), String> {
    message(TenantName::new(name))
}

/// Checks a volume name ([`VolumeName`]).
pub(crate) fn check_volume(name: &str) -> Result<(), String> {
    message(VolumeName::new(name))
}

/// Checks a pod name ([`PodName`]): it names a container and a log file.
pub(crate) fn check_pod_name(name: &str) -> Result<(), String> {
    message(PodName::new(name))
}

/// Checks a tenant image name ([`ImageName`]): no `/`, a valid Docker path component.
pub(crate) fn check_image_name(name: &str) -> Result<(), String> {
    message(ImageName::new(name))
}

/// Checks an image tag ([`ImageTag`]).
pub(crate) fn check_tag(tag: &str) -> Result<(), String> {
    message(ImageTag::new(tag))
}

/// Checks an execution id ([`ExecutionId`]), which names a file in the state directory.
pub(crate) fn check_execution(id: &str) -> Result<(), String> {
    message(ExecutionId::new(id))
}

/// What every onboard name of a tenant's images starts with: `tenants/<tenant>/`.
pub(crate) fn tenant_prefix(tenant: &str) -> String {
    format!("{TENANT_IMAGE_PREFIX}/{tenant}/")
}

/// The onboard repository of a tenant's image (its reference without the tag):
/// `tenants/<tenant>/<name>`.
pub(crate) fn tenant_repo(tenant: &str, name: &str) -> String {
    format!("{}{name}", tenant_prefix(tenant))
}

/// The onboard reference of a tenant's image, `tenants/<tenant>/<name>:<tag>`: what
/// `wire::names::TenantImage::onboard` gives for validated names.
pub(crate) fn tenant_image(tenant: &str, name: &str, tag: &str) -> String {
    format!("{}:{tag}", tenant_repo(tenant, name))
}

/// The first 12 hex digits of an image id, as `docker images` shows it.
pub fn short_id(id: &str) -> String {
    id.strip_prefix("sha256:")
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

/// `os/arch` of this host, as Docker names it.
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    };
    format!("linux/{arch}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The rules themselves are tested in `wire::names`; here, that the agent uses them.
    #[test]
    fn the_agent_judges_names_by_the_shared_rules() {
        assert!(check_tenant("a-").is_err());
        assert!(check_pod_name("v.1").is_err());
        assert!(check_volume("alice-pvc").is_ok());
        assert!(check_image_name("tenants/x/y").is_err());
        assert!(check_tag(".x").is_err());
        assert!(check_execution("../x").is_err());
        assert_eq!(
            tenant_image("alice", "hello", "v1"),
            "tenants/alice/hello:v1"
        );
        assert_eq!(tenant_repo("alice", "hello"), "tenants/alice/hello");
        let (alice, image) = (
            TenantName::new("alice").unwrap(),
            wire::names::TenantImage::new("hello", "v1").unwrap(),
        );
        assert_eq!(tenant_image("alice", "hello", "v1"), image.onboard(&alice));
    }
}
