//! Systems as data: what an operator declares a system to be (its platform, its builder and its
//! catalogue of preloaded base images), and what a flight agent reports its engine really holds
//! ([`EngineReport`]). The stand-in catalogue of the Engineering Model is only the default file,
//! `crates/wire/catalogue/default.json`, embedded here.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Digest;

/// The Dockerfile frontend a system builds with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Builder {
    /// The classic builder (the Docker API's `/build` without a BuildKit session): no heredocs,
    /// no `RUN --mount`, no `COPY --chmod`/`--link`.
    #[default]
    #[serde(rename = "classic")]
    Classic,
    /// BuildKit's Dockerfile frontend.
    #[serde(rename = "buildkit")]
    BuildKit,
}

impl Builder {
    /// `classic` or `buildkit`, as the systems file and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Builder::Classic => "classic",
            Builder::BuildKit => "buildkit",
        }
    }
}

impl fmt::Display for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One declared base image: what a build or a container can rely on inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueEntry {
    /// The reference, e.g. `busybox:latest` (compared after [`crate::normalize_image_ref`]).
    pub name: String,
    /// The image id onboard, when the operator pins it; `null`: any id.
    #[serde(default)]
    pub digest: Option<Digest>,
    /// `os/arch`; `null` in a file: the system's platform.
    #[serde(default)]
    pub platform: Option<String>,
    /// One line on what the image offers.
    #[serde(default)]
    pub description: String,
    /// Whether `/bin/sh` exists.
    #[serde(default)]
    pub shell: bool,
    /// Shared libraries present, as file-name patterns (`*` matches any run of characters).
    #[serde(default)]
    pub libraries: Vec<String>,
    /// The glibc version, `major.minor`, when the image has glibc.
    #[serde(default)]
    pub glibc: Option<String>,
    /// Absolute paths of script interpreters present.
    #[serde(default)]
    pub interpreters: Vec<String>,
    /// Uncompressed layer digests (`sha256:…`) the image holds.
    #[serde(default)]
    pub layers: Vec<Digest>,
}

/// What a system is declared to be: the systems file's `platform`, `builder`, `catalogue`
/// (the default file when it names none) and `gpu`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemDescription {
    /// `os/arch` of the system's Docker Engine.
    pub platform: String,
    /// The builder its engine builds with.
    pub builder: Builder,
    /// Its preloaded base images, each with its platform filled in.
    pub catalogue: Vec<CatalogueEntry>,
    /// Whether it has a GPU a pod of node `GPU` can use; `None` when the systems file does not
    /// say (the flight agent finds out). `Some(false)`: a `GPU` pod is refused on the ground.
    #[serde(default)]
    pub gpu: Option<bool>,
}

impl SystemDescription {
    /// A system of `platform` with the classic builder and the default catalogue.
    pub fn default_for(platform: &str) -> SystemDescription {
        SystemDescription::new(platform, Builder::Classic, default_catalogue())
    }

    /// A description whose catalogue entries without a platform take the system's.
    pub fn new(platform: &str, builder: Builder, catalogue: Vec<CatalogueEntry>) -> Self {
        let catalogue = catalogue
            .into_iter()
            .map(|mut e| {
                if e.platform.as_deref().is_none_or(str::is_empty) {
                    e.platform = Some(platform.to_string());
                }
                e
            })
            .collect();
        SystemDescription {
            platform: platform.to_string(),
            builder,
            catalogue,
            gpu: None,
        }
    }

    /// The catalogue's image names, normalised: what the Dockerfile judge takes.
    pub fn image_names(&self) -> Vec<String> {
        self.catalogue
            .iter()
            .map(|e| crate::normalize_image_ref(&e.name))
            .collect()
    }
}

/// One image an engine holds, as the flight agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineImage {
    /// The reference it is held under (`busybox:latest`).
    pub name: String,
    /// The image id, `sha256:<hex>`.
    pub id: String,
    /// `os/arch` of the image; empty when the engine does not say.
    pub platform: String,
}

/// What a flight agent's engine really holds, sent in every `Hello`: the base images present
/// (never the tenants' own), the engine's platform and the builder the agent builds with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineReport {
    /// The images present, by name; at most [`MAX_ENGINE_IMAGES`].
    pub images: Vec<EngineImage>,
    /// `os/arch` of the engine.
    pub platform: String,
    /// The builder the agent builds with.
    pub builder: Builder,
}

/// The most images an [`EngineReport`] lists (the ground reads no more).
pub const MAX_ENGINE_IMAGES: usize = 256;

/// The default catalogue's path in the repository, as parse errors name it.
pub const DEFAULT_CATALOGUE_FILE: &str = "crates/wire/catalogue/default.json";

const DEFAULT_CATALOGUE: &str = include_str!("../catalogue/default.json");

/// The default catalogue: the three stand-ins `orbitdock flight seed-bases` builds, entries
/// without a platform (they take the system's).
pub fn default_catalogue() -> Vec<CatalogueEntry> {
    // The embedded file is checked by a test; an error here is a build that shipped a broken
    // default, and an empty catalogue is the fail-closed answer to it.
    parse_catalogue(DEFAULT_CATALOGUE, DEFAULT_CATALOGUE_FILE, "").unwrap_or_default()
}

/// A catalogue or systems file that does not read: the file, the field (`fm.catalogue[1].glibc`)
/// and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct CatalogueError {
    /// The file as the caller named it.
    pub file: String,
    /// The path of the field, `.` for the whole document.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Parses a catalogue: a JSON list of [`CatalogueEntry`]. `file` names the file in errors and
/// `prefix` the path of the list inside it (`fm.catalogue` for one inline in a systems file,
/// empty for a catalogue file). Checks each glibc version and each name.
pub fn parse_catalogue(
    text: &str,
    file: &str,
    prefix: &str,
) -> Result<Vec<CatalogueEntry>, CatalogueError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let entries: Vec<CatalogueEntry> = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        CatalogueError {
            file: file.to_string(),
            field: join_field(prefix, &path),
            message: strip_position(&e.into_inner().to_string()),
        }
    })?;
    check_catalogue(&entries, file, prefix)?;
    Ok(entries)
}

/// Checks what serde does not: each name, glibc version and platform. `file` and `prefix` as
/// for [`parse_catalogue`].
pub fn check_catalogue(
    entries: &[CatalogueEntry],
    file: &str,
    prefix: &str,
) -> Result<(), CatalogueError> {
    let error = |i: usize, field: &str, message: String| CatalogueError {
        file: file.to_string(),
        field: join_field(prefix, &format!("[{i}].{field}")),
        message,
    };
    for (i, e) in entries.iter().enumerate() {
        if e.name.trim().is_empty() || e.name.chars().any(char::is_whitespace) {
            return Err(error(
                i,
                "name",
                format!("{:?} is not an image name", e.name),
            ));
        }
        if let Some(g) = &e.glibc
            && !is_version(g)
        {
            return Err(error(
                i,
                "glibc",
                format!("{g:?} is not a major.minor version"),
            ));
        }
        if let Some(p) = &e.platform
            && !is_platform(p)
        {
            return Err(error(i, "platform", format!("{p:?} is not os/arch")));
        }
    }
    Ok(())
}

/// A systems file's `catalogue`: the path of a catalogue file (relative to the systems file) or
/// the entries inline. Read from a JSON string or list; inside a list, each entry's errors keep
/// their place (`fm.catalogue[1].shell`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CatalogueSource {
    /// A catalogue file.
    File(String),
    /// The entries themselves.
    Inline(Vec<CatalogueEntry>),
}

impl<'de> Deserialize<'de> for CatalogueSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = CatalogueSource;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of images or the path of a catalogue file")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CatalogueSource, E> {
                Ok(CatalogueSource::File(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CatalogueSource, A::Error> {
                let mut out = Vec::new();
                while let Some(e) = seq.next_element::<CatalogueEntry>()? {
                    out.push(e);
                }
                Ok(CatalogueSource::Inline(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Whether `p` reads as `os/arch[/variant]`.
pub fn is_platform(p: &str) -> bool {
    let parts: Vec<&str> = p.split('/').collect();
    (2..=3).contains(&parts.len())
        && parts.iter().all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

/// Compares two `os/arch[/variant]` strings as Docker does for a match: case, a missing variant
/// and the aliases it accepts (`aarch64` = `arm64`, `x86_64` = `amd64`) aside.
pub fn same_platform(a: &str, b: &str) -> bool {
    fn norm(p: &str) -> (String, String) {
        let p = p.trim().to_ascii_lowercase();
        let mut parts = p.split('/');
        let os = parts.next().unwrap_or("").to_string();
        let arch = match parts.next().unwrap_or("") {
            "aarch64" | "arm64" => "arm64",
            "x86_64" | "x86-64" | "amd64" => "amd64",
            "i386" | "386" => "386",
            other => other,
        };
        (os, arch.to_string())
    }
    norm(a) == norm(b)
}

fn is_version(v: &str) -> bool {
    let mut it = v.split('.');
    let num =
        |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    num(it.next()) && num(it.next()) && it.all(|s| num(Some(s)))
}

fn join_field(prefix: &str, path: &str) -> String {
    let path = if path == "." { "" } else { path };
    match (prefix.is_empty(), path.is_empty()) {
        (true, true) => ".".to_string(),
        (true, false) => path.trim_start_matches('.').to_string(),
        (false, _) if path.starts_with('[') || path.is_empty() => format!("{prefix}{path}"),
        (false, _) => format!("{prefix}.{path}"),
    }
}

/// serde_json's message without its ` at line L column C` (the field names the place).
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_parses() {
        let entries = parse_catalogue(DEFAULT_CATALOGUE, DEFAULT_CATALOGUE_FILE, "").unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "gcr.io/distroless/static-debian12:latest",
                "gcr.io/distroless/cc-debian12:latest",
                "busybox:latest"
            ]
        );
        let d = SystemDescription::default_for("linux/arm64");
        assert!(
            d.catalogue
                .iter()
                .all(|e| e.platform.as_deref() == Some("linux/arm64"))
        );
        assert_eq!(d.builder, Builder::Classic);
        assert_eq!(d.catalogue[1].glibc.as_deref(), Some("2.36"));
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let e = parse_catalogue(
            r#"[{"name": "a:1"}, {"name": "b", "shell": "yes"}]"#,
            "c.json",
            "",
        )
        .unwrap_err();
        assert_eq!(e.file, "c.json");
        assert_eq!(e.field, "[1].shell");
        assert!(e.message.contains("expected a boolean"), "{e}");
        let e = parse_catalogue(
            r#"[{"name": "a", "glibc": "two"}]"#,
            "s.json",
            "fm.catalogue",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"s.json: fm.catalogue[0].glibc: "two" is not a major.minor version"#
        );
        let e = parse_catalogue(r#"[{"name": "a", "shel": true}]"#, "c.json", "").unwrap_err();
        assert_eq!(e.field, "[0].shel");
        assert!(e.message.contains("unknown field"), "{e}");
        let e = parse_catalogue(r#"[{"shell": true}]"#, "c.json", "").unwrap_err();
        assert_eq!(e.field, "[0]");
        assert!(e.message.contains("missing field `name`"), "{e}");
        let e =
            parse_catalogue(r#"[{"name": "a", "digest": "sha256:00"}]"#, "c.json", "").unwrap_err();
        assert_eq!(e.field, "[0].digest");
        let e = parse_catalogue(r#"{"name": "a"}"#, "c.json", "").unwrap_err();
        assert_eq!(e.field, ".");
    }

    #[test]
    fn platforms_and_builders_read() {
        assert!(is_platform("linux/arm64"));
        assert!(is_platform("linux/arm/v7"));
        assert!(!is_platform("linux"));
        assert!(!is_platform("Linux/ARM64"));
        let b: Builder = serde_json::from_str("\"buildkit\"").unwrap();
        assert_eq!(b, Builder::BuildKit);
        assert!(serde_json::from_str::<Builder>("\"BuildKit\"").is_err());
    }
}
