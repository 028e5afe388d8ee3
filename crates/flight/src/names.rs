//! Names that come from plans: tenants, volumes, images, tags, pods, executions.
//!
//! Every name is checked before it reaches a path or the Docker Engine. Tenant and image names
//! also follow Docker's reference grammar for one path component (lower-case alphanumerics
//! separated by `.`, `_`, `__` or runs of `-`), so that `tenants/<tenant>/<name>:<tag>` is always a
//! valid reference and no name can climb into another tenant's namespace.

/// The prefix of every tenant image: `tenants/<tenant>/<name>:<tag>`.
pub(crate) const TENANT_IMAGE_PREFIX: &str = "tenants";

/// Checks a tenant name: `[a-z0-9][a-z0-9_-]{0,62}`, and a valid Docker path component.
pub(crate) fn check_tenant(name: &str) -> Result<(), String> {
    check(name, "tenant", "[a-z0-9][a-z0-9_-]{0,62}", 63, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
    })?;
    check_component(name, "tenant")
}

/// Checks a volume name: `[a-z0-9][a-z0-9._-]{0,62}`.
pub(crate) fn check_volume(name: &str) -> Result<(), String> {
    check(name, "volume", "[a-z0-9][a-z0-9._-]{0,62}", 63, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_' || c == '-'
    })
}

/// Checks a pod name; the same rule as volumes, as it names a container and a log file.
pub(crate) fn check_pod_name(name: &str) -> Result<(), String> {
    check(name, "pod", "[a-z0-9][a-z0-9._-]{0,62}", 63, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_' || c == '-'
    })
}

/// Checks a tenant image name: `[a-z0-9][a-z0-9._-]*` (at most 128), no `/`, and a valid Docker
/// path component.
pub(crate) fn check_image_name(name: &str) -> Result<(), String> {
    check(
        name,
        "image name",
        "[a-z0-9][a-z0-9._-]* without '/'",
        128,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_' || c == '-',
    )?;
    check_component(name, "image name")
}

/// Checks an image tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub(crate) fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphanumeric() || c == '_' || (i > 0 && (c == '.' || c == '-'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "image tag {tag:?} is invalid: expected [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}"
        ))
    }
}

/// Checks an execution id, which names a file in the state directory: `[A-Za-z0-9_-]{1,128}`.
pub(crate) fn check_execution(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "execution id {:?} is invalid: expected [A-Za-z0-9_-]{{1,128}}",
            shorten(id)
        ))
    }
}

/// The onboard reference of a tenant's image.
pub(crate) fn tenant_image(tenant: &str, name: &str, tag: &str) -> String {
    format!("{TENANT_IMAGE_PREFIX}/{tenant}/{name}:{tag}")
}

/// The first 12 hex digits of an image id, as `docker images` shows it.
pub(crate) fn short_id(id: &str) -> String {
    id.strip_prefix("sha256:")
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

/// `os/arch` of this host, as Docker names it.
pub(crate) fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    };
    format!("linux/{arch}")
}

fn check(
    name: &str,
    what: &str,
    rule: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), String> {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if first_ok && name.len() <= max && name.chars().all(allowed) {
        Ok(())
    } else {
        Err(format!(
            "{what} name {:?} is invalid: expected {rule}",
            shorten(name)
        ))
    }
}

/// Docker's path-component grammar: alphanumerics, separated by `.`, `_`, `__` or runs of `-`,
/// ending with an alphanumeric.
fn check_component(name: &str, what: &str) -> Result<(), String> {
    let mut separator = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if !separator_ok(&separator) {
                return Err(format!(
                    "{what} name {name:?} is invalid: {separator:?} cannot separate its parts (use '.', '_', '__' or '-')"
                ));
            }
            separator.clear();
        } else {
            separator.push(c);
        }
    }
    if separator.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{what} name {name:?} is invalid: it must end with a letter or digit"
        ))
    }
}

fn separator_ok(s: &str) -> bool {
    s.is_empty() || s == "." || s == "_" || s == "__" || s.chars().all(|c| c == '-')
}

fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants() {
        for ok in ["alice", "a", "t0-1", "team_x", "a__b", "0a"] {
            assert!(check_tenant(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Alice",
            "-a",
            "a.b",
            "a/b",
            "a-",
            "a___b",
            "a_-b",
            &"a".repeat(64),
        ] {
            assert!(check_tenant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn volumes_and_pods() {
        for ok in ["alice-pvc", "v.1", "x_y"] {
            assert!(check_volume(ok).is_ok(), "{ok}");
            assert!(check_pod_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", ".hidden", "A", "a/b", "a b", "a\0"] {
            assert!(check_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images_and_tags() {
        for ok in ["hello", "my-app", "app.v2", "a__b"] {
            assert!(check_image_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Hello", "a/b", "tenants/x/y", "a..b", "a-", "busybox:1"] {
            assert!(check_image_name(bad).is_err(), "{bad}");
        }
        for ok in ["latest", "v1.2-rc", "_x", "A"] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a:b", "a/b", &"a".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
        assert_eq!(
            tenant_image("alice", "hello", "v1"),
            "tenants/alice/hello:v1"
        );
    }

    #[test]
    fn executions() {
        assert!(check_execution("6f1c2d3e-0000-4000-8000-000000000000").is_ok());
        for bad in ["", "../x", "a/b", "a.json"] {
            assert!(check_execution(bad).is_err(), "{bad}");
        }
    }
}
