//! What a system offers a build: its platform, its builder and, for each preloaded base image,
//! what is inside it (shell, libraries, glibc version, script interpreters).
//!
//! Plain data with public fields, read from a system's declaration ([`System::declared`] of a
//! `wire::SystemDescription`, what the systems file says); [`System::flight`] and [`System::em`]
//! give the defaults: the default catalogue file of stand-ins and the classic builder.

/// A system a tenant builds for: the Engineering Model on the ground or a flight satellite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    /// `em` or a flight system's name.
    pub name: String,
    /// `os/arch` of the system's Docker Engine, e.g. `linux/arm64`.
    pub platform: String,
    /// Which Dockerfile frontend builds onboard.
    pub builder: Builder,
    /// The preloaded base images.
    pub catalogue: Catalogue,
    /// Whether a pod of node `GPU` gets a GPU there; `None`: not declared.
    pub gpu: Option<bool>,
}

/// The Dockerfile frontend of the onboard engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// The classic builder (what the Docker API's `/build` runs without a BuildKit session, and
    /// therefore what the flight agent's bollard adapter gets): no heredocs, no `RUN --mount`,
    /// no `COPY --chmod`/`--link`.
    Classic,
    /// BuildKit's Dockerfile frontend.
    BuildKit,
}

/// The base images preloaded onboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    /// One entry per image.
    pub images: Vec<BaseImage>,
}

/// One preloaded base image and what a build or a container can rely on inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// Normalised reference (`wire::normalize_image_ref`), e.g. `busybox:latest`.
    pub name: String,
    /// `os/arch`.
    pub platform: String,
    /// The digest a `FROM name@sha256:…` must match, once the flight agent has reported one.
    pub digest: Option<String>,
    /// Whether `/bin/sh` exists (shell-form `RUN`, `CMD`, `ENTRYPOINT` need it).
    pub shell: bool,
    /// Shared libraries present, as file-name patterns (`*` matches any run of characters),
    /// e.g. `libc.so.6`, `ld-linux-*.so.*`.
    pub libraries: Vec<String>,
    /// The glibc version, when the image has glibc.
    pub glibc: Option<Version>,
    /// Absolute paths of script interpreters (`#!` targets) present, e.g. `/bin/sh`.
    pub interpreters: Vec<String>,
    /// Uncompressed layer digests (`sha256:…`) onboard, once reported: bytes an archive need not
    /// carry again.
    pub layers: Vec<String>,
}

/// A `major.minor` version, e.g. glibc 2.36.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Version {
    /// Parses `2.36` (extra components are ignored: `2.3.4` is 2.3).
    pub fn parse(s: &str) -> Option<Version> {
        let mut it = s.split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next().map_or(Some(0), |m| m.parse().ok())?;
        Some(Version { major, minor })
    }
}

/// The glibc of Debian 12, which the distroless `-debian12` images carry.
pub const DEBIAN12_GLIBC: Version = Version {
    major: 2,
    minor: 36,
};

/// The platform flight systems run: `linux/arm64`.
pub const FLIGHT_PLATFORM: &str = "linux/arm64";

impl System {
    /// A flight system: `linux/arm64`, the classic builder, the default catalogue.
    pub fn flight(name: &str) -> System {
        System {
            name: name.to_string(),
            platform: FLIGHT_PLATFORM.to_string(),
            builder: Builder::Classic,
            catalogue: Catalogue::default_for(FLIGHT_PLATFORM),
            gpu: None,
        }
    }

    /// The Engineering Model: the flight agent on a ground machine of the given platform (see
    /// [`host_platform`]), the classic builder, the default catalogue.
    pub fn em(platform: &str) -> System {
        System {
            name: "em".to_string(),
            platform: platform.to_string(),
            builder: Builder::Classic,
            catalogue: Catalogue::default_for(platform),
            gpu: None,
        }
    }

    /// A system as its systems file declares it (`wire::SystemDescription`: platform, builder,
    /// catalogue, GPU).
    pub fn declared(name: &str, d: &wire::SystemDescription) -> System {
        System {
            name: name.to_string(),
            platform: d.platform.clone(),
            builder: d.builder.into(),
            catalogue: Catalogue::of(d),
            gpu: d.gpu,
        }
    }

    /// The catalogue entry a reference names, compared after normalisation (tag `latest` added,
    /// Docker Hub and onboard-registry prefixes dropped) and without any `@digest`.
    pub fn base(&self, reference: &str) -> Option<&BaseImage> {
        let name = strip_digest(&wire::normalize_image_ref(reference));
        let name = wire::normalize_image_ref(&name);
        self.catalogue
            .images
            .iter()
            .find(|b| wire::normalize_image_ref(&b.name) == name)
    }
}

/// `name@sha256:…` → `name`.
pub(crate) fn strip_digest(reference: &str) -> String {
    match reference.split_once('@') {
        Some((name, _)) => name.to_string(),
        None => reference.to_string(),
    }
}

impl Catalogue {
    /// The default catalogue (`wire::default_catalogue`, the file
    /// `crates/wire/catalogue/default.json`) on `platform`.
    pub fn default_for(platform: &str) -> Catalogue {
        Catalogue::of(&wire::SystemDescription::default_for(platform))
    }

    /// A declared catalogue, names normalised, each entry's platform filled in.
    pub fn of(d: &wire::SystemDescription) -> Catalogue {
        let images = d
            .catalogue
            .iter()
            .map(|e| BaseImage {
                name: wire::normalize_image_ref(&e.name),
                platform: e.platform.clone().unwrap_or_else(|| d.platform.clone()),
                digest: e.digest.map(|d| d.to_string()),
                shell: e.shell,
                libraries: e.libraries.clone(),
                glibc: e.glibc.as_deref().and_then(Version::parse),
                interpreters: e.interpreters.clone(),
                layers: e.layers.iter().map(|l| l.to_string()).collect(),
            })
            .collect();
        Catalogue { images }
    }
}

impl From<wire::Builder> for Builder {
    fn from(b: wire::Builder) -> Builder {
        match b {
            wire::Builder::Classic => Builder::Classic,
            wire::Builder::BuildKit => Builder::BuildKit,
        }
    }
}

/// The platform of the machine this code runs on, as Docker names it (`linux/amd64`,
/// `linux/arm64`, …): the Engineering Model's platform.
pub fn host_platform() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        "arm" => "linux/arm/v7",
        "x86" => "linux/386",
        "riscv64" => "linux/riscv64",
        "powerpc64" => "linux/ppc64le",
        "s390x" => "linux/s390x",
        _ => "linux/unknown",
    }
}

/// Compares two `os/arch[/variant]` strings, ignoring a missing variant and the aliases Docker
/// accepts (`aarch64` = `arm64`, `x86_64` = `amd64`).
pub(crate) fn same_platform(a: &str, b: &str) -> bool {
    wire::same_platform(a, b)
}

/// Does a library file name match a catalogue pattern (`*` = any run of characters)?
pub(crate) fn library_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_catalogue_knows_the_stand_ins() {
        let sys = System::flight("sat1");
        assert_eq!(sys.catalogue.images.len(), 3);
        let cc = sys.base("gcr.io/distroless/cc-debian12").unwrap();
        assert_eq!(
            cc.glibc,
            Some(Version {
                major: 2,
                minor: 36
            })
        );
        assert!(!cc.shell);
        assert_eq!(cc.platform, "linux/arm64");
        let bb = sys.base("docker.io/library/busybox").unwrap();
        assert!(bb.shell);
        assert!(sys.base("busybox@sha256:00").is_some());
        assert!(sys.base("alpine").is_none());
    }

    #[test]
    fn library_patterns() {
        assert!(library_matches("ld-linux-*.so.*", "ld-linux-aarch64.so.1"));
        assert!(library_matches("ld-linux-*.so.*", "ld-linux-x86-64.so.2"));
        assert!(!library_matches("libc.so.6", "libc.so.7"));
    }

    #[test]
    fn platforms_compare_by_alias() {
        assert!(same_platform("linux/aarch64", "linux/arm64"));
        assert!(same_platform("linux/arm64/v8", "linux/arm64"));
        assert!(!same_platform("linux/amd64", "linux/arm64"));
    }
}
