//! Systems as data on the ground: what each system is declared to be (the systems file's
//! `platform`, `builder` and `catalogue`, or the default) and how what its agent last reported
//! of its engine differs from it. Computation only: the HTTP handlers and the dashboard show it,
//! preflight judges against the declaration.

use wire::{EngineReport, SystemDescription, normalize_image_ref, same_platform};

use crate::Ground;

/// What kind of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DriftKind {
    /// A declared image the engine does not hold.
    MissingImage,
    /// A declared image held under another id than the one pinned.
    DigestMismatch,
    /// An image the engine holds that the declaration does not name.
    UndeclaredImage,
    /// A declared image held for another platform.
    ImagePlatformMismatch,
    /// The engine runs on another platform.
    PlatformMismatch,
    /// The agent builds with another builder.
    BuilderMismatch,
}

impl DriftKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DriftKind::MissingImage => "missing_image",
            DriftKind::DigestMismatch => "digest_mismatch",
            DriftKind::UndeclaredImage => "undeclared_image",
            DriftKind::ImagePlatformMismatch => "image_platform_mismatch",
            DriftKind::PlatformMismatch => "platform_mismatch",
            DriftKind::BuilderMismatch => "builder_mismatch",
        }
    }
}

/// One difference between a declaration and a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Drift {
    pub(crate) kind: DriftKind,
    /// The image's name, or `platform` / `builder`.
    pub(crate) subject: String,
    pub(crate) declared: Option<String>,
    pub(crate) reported: Option<String>,
}

impl Drift {
    /// One sentence for a person.
    pub(crate) fn message(&self) -> String {
        let d = self.declared.as_deref().unwrap_or("");
        let r = self.reported.as_deref().unwrap_or("");
        let s = &self.subject;
        match self.kind {
            DriftKind::MissingImage => format!("{s} is declared but the engine does not hold it"),
            DriftKind::DigestMismatch => {
                format!("{s} is declared as {d} but the engine holds {r}")
            }
            DriftKind::UndeclaredImage => {
                format!("the engine holds {s} ({r}), which is not declared")
            }
            DriftKind::ImagePlatformMismatch => {
                format!("{s} is declared for {d} but the engine holds it for {r}")
            }
            DriftKind::PlatformMismatch => {
                format!("the system is declared {d} but its engine runs {r}")
            }
            DriftKind::BuilderMismatch => {
                format!("the system is declared to build with {d} but its agent builds with {r}")
            }
        }
    }
}

/// What the ground assumes of a system its systems file does not describe: the Engineering Model
/// (`em`) runs beside the ground, so on this machine's platform; a flight system on
/// `linux/arm64`; both with the classic builder and the default catalogue file.
pub(crate) fn default_for(name: &str) -> SystemDescription {
    if name == "em" {
        SystemDescription::default_for(preflight::host_platform())
    } else {
        SystemDescription::default_for(preflight::FLIGHT_PLATFORM)
    }
}

/// The system's declaration: the systems file's, or [`default_for`] it.
pub(crate) fn declaration(g: &Ground, name: &str) -> SystemDescription {
    g.declaration(name)
        .cloned()
        .unwrap_or_else(|| default_for(name))
}

/// Every difference between what `declared` says and what `engine` reported: the platform,
/// the builder, then each declared image (missing, another id than the pinned one, another
/// platform), then each image the engine holds that is not declared, by name.
pub(crate) fn drift(declared: &SystemDescription, engine: &EngineReport) -> Vec<Drift> {
    let mut out = Vec::new();
    if !same_platform(&declared.platform, &engine.platform) {
        out.push(Drift {
            kind: DriftKind::PlatformMismatch,
            subject: "platform".into(),
            declared: Some(declared.platform.clone()),
            reported: Some(engine.platform.clone()),
        });
    }
    if declared.builder != engine.builder {
        out.push(Drift {
            kind: DriftKind::BuilderMismatch,
            subject: "builder".into(),
            declared: Some(declared.builder.to_string()),
            reported: Some(engine.builder.to_string()),
        });
    }
    let held: Vec<(String, &wire::EngineImage)> = engine
        .images
        .iter()
        .map(|i| (normalize_image_ref(&i.name), i))
        .collect();
    let declared_names = declared.image_names();
    for (entry, name) in declared.catalogue.iter().zip(&declared_names) {
        let Some((_, image)) = held.iter().find(|(n, _)| n == name) else {
            out.push(Drift {
                kind: DriftKind::MissingImage,
                subject: name.clone(),
                declared: Some(
                    entry
                        .digest
                        .map_or_else(|| "any id".into(), |d| d.to_string()),
                ),
                reported: None,
            });
            continue;
        };
        if let Some(pinned) = entry.digest
            && pinned.to_string() != image.id
        {
            out.push(Drift {
                kind: DriftKind::DigestMismatch,
                subject: name.clone(),
                declared: Some(pinned.to_string()),
                reported: Some(image.id.clone()),
            });
        }
        let platform = entry.platform.as_deref().unwrap_or(&declared.platform);
        if !image.platform.is_empty() && !same_platform(platform, &image.platform) {
            out.push(Drift {
                kind: DriftKind::ImagePlatformMismatch,
                subject: name.clone(),
                declared: Some(platform.to_string()),
                reported: Some(image.platform.clone()),
            });
        }
    }
    for (name, image) in &held {
        if !declared_names.contains(name) {
            out.push(Drift {
                kind: DriftKind::UndeclaredImage,
                subject: name.clone(),
                declared: None,
                reported: Some(image.id.clone()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, id: &str, platform: &str) -> wire::EngineImage {
        wire::EngineImage {
            name: name.into(),
            id: id.into(),
            platform: platform.into(),
        }
    }

    #[test]
    fn a_report_matching_the_declaration_has_no_drift() {
        let d = SystemDescription::default_for("linux/amd64");
        let engine = EngineReport {
            images: d
                .catalogue
                .iter()
                .map(|e| image(&e.name, "sha256:11", "linux/amd64"))
                .collect(),
            platform: "linux/x86_64".into(),
            builder: wire::Builder::Classic,
        };
        assert_eq!(drift(&d, &engine), []);
    }

    #[test]
    fn every_kind_of_drift_is_found() {
        let mut d = SystemDescription::default_for("linux/arm64");
        d.catalogue[0].digest = Some(wire::Digest::of(b"static"));
        let engine = EngineReport {
            images: vec![
                image(
                    "gcr.io/distroless/static-debian12:latest",
                    &wire::Digest::of(b"other").to_string(),
                    "linux/arm64",
                ),
                image("busybox", "sha256:22", "linux/amd64"),
                image("alpine:3.20", "sha256:33", "linux/amd64"),
            ],
            platform: "linux/amd64".into(),
            builder: wire::Builder::BuildKit,
        };
        let kinds: Vec<(&str, String)> = drift(&d, &engine)
            .into_iter()
            .map(|x| (x.kind.as_str(), x.subject))
            .collect();
        assert_eq!(
            kinds,
            [
                ("platform_mismatch", "platform".to_string()),
                ("builder_mismatch", "builder".to_string()),
                (
                    "digest_mismatch",
                    "gcr.io/distroless/static-debian12:latest".to_string()
                ),
                (
                    "missing_image",
                    "gcr.io/distroless/cc-debian12:latest".to_string()
                ),
                ("image_platform_mismatch", "busybox:latest".to_string()),
                ("undeclared_image", "alpine:3.20".to_string()),
            ]
        );
    }
}
