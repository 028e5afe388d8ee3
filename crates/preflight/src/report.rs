//! What a lint returns: the [`Report`] (diagnostics, the [`Facts`] learnt on the way, the
//! sources diagnostics point into) and its renderings (compiler-like text, JSON, SARIF).
//!
//! Plain data with public fields, apart from the analysis that fills it (`lint.rs`, `rules/`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::catalogue::Version;
use crate::diagnostic::{self, Diagnostic, Summary};

/// The result of a lint: diagnostics and the facts learnt on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Sorted by file, line and column.
    pub diagnostics: Vec<Diagnostic>,
    /// What was found.
    pub facts: Facts,
    /// `(file, text)` of the files diagnostics point into, for rendering snippets.
    pub sources: Vec<(String, String)>,
}

/// What preflight learnt about the build.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// One per stage.
    pub stages: Vec<StageFacts>,
    /// Executables and scripts that end up in the final image.
    pub binaries: Vec<BinaryFacts>,
    /// Files in the context.
    pub context_files: u64,
    /// Bytes in the context.
    pub context_bytes: u64,
    /// Bytes the builder is sent (after `.dockerignore`).
    pub sent_bytes: u64,
    /// Images in an archive.
    pub archive: Vec<ArchiveImage>,
}

/// A build stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageFacts {
    /// `AS` name.
    pub name: Option<String>,
    /// The FROM reference after expansion.
    pub base: String,
    /// `catalogue`, `stage`, `scratch`, `tenant` or `unknown`.
    pub base_kind: &'static str,
}

/// An executable in the final image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryFacts {
    /// Path in the context.
    pub context_path: String,
    /// Path in the image.
    pub image_path: String,
    /// Docker architecture (`arm64`, `amd64`…) or `script`.
    pub arch: String,
    /// True when it needs no library from the image.
    pub is_static: bool,
    /// PT_INTERP, or the `#!` interpreter of a script.
    pub interpreter: Option<String>,
    /// DT_NEEDED.
    pub needed: Vec<String>,
    /// Highest GLIBC version required.
    pub glibc: Option<Version>,
}

/// One image of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveImage {
    /// `RepoTags` (docker save) or the ref-name annotation (OCI).
    pub tags: Vec<String>,
    /// `os/arch[/variant]` from the image config.
    pub platform: String,
    /// Layers in order.
    pub layers: Vec<LayerFacts>,
    /// Sum of layer sizes.
    pub total_bytes: u64,
    /// Sum of the sizes of layers not onboard.
    pub uplink_bytes: u64,
    /// Estimated time to uplink, when an [`Eta`](crate::Eta) was given.
    pub eta: Option<Duration>,
}

/// One layer of an archive image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerFacts {
    /// Uncompressed digest (`sha256:…`) from the config's `rootfs.diff_ids`.
    pub diff_id: String,
    /// Bytes in the archive.
    pub size: u64,
    /// Already onboard (known diff_id).
    pub onboard: bool,
}

impl Report {
    /// True when any diagnostic is an error (`orbitdock lint` exits non-zero).
    pub fn has_errors(&self) -> bool {
        diagnostic::has_errors(&self.diagnostics)
    }

    /// Counts by severity.
    pub fn summary(&self) -> Summary {
        diagnostic::summary(&self.diagnostics)
    }

    /// Compiler-like text with snippets and a summary line.
    pub fn render(&self) -> String {
        diagnostic::render(&self.diagnostics, &self.sources)
    }

    /// The `--json` output: `{"diagnostics": [...], "summary": {...}, "facts": {...}}`.
    pub fn to_json(&self) -> Value {
        let s = self.summary();
        json!({
            "diagnostics": self.diagnostics.iter().map(diagnostic::diagnostic_json).collect::<Vec<_>>(),
            "summary": {"errors": s.errors, "warnings": s.warnings, "infos": s.infos},
            "facts": facts_json(&self.facts),
        })
    }

    /// The `--sarif` output (SARIF 2.1.0).
    pub fn to_sarif(&self) -> Value {
        diagnostic::sarif(&self.diagnostics, crate::rules::RULES)
    }

    pub(crate) fn finish(
        mut diagnostics: Vec<Diagnostic>,
        facts: Facts,
        sources: Vec<(String, String)>,
    ) -> Report {
        diagnostics.sort_by(|a, b| {
            (a.file.as_str(), a.line, a.column, a.code).cmp(&(
                b.file.as_str(),
                b.line,
                b.column,
                b.code,
            ))
        });
        diagnostics.dedup();
        Report {
            diagnostics,
            facts,
            sources,
        }
    }
}

fn facts_json(f: &Facts) -> Value {
    json!({
        "stages": f.stages.iter().map(|s| json!({"name": s.name, "base": s.base, "base_kind": s.base_kind})).collect::<Vec<_>>(),
        "binaries": f.binaries.iter().map(|b| json!({
            "context_path": b.context_path,
            "image_path": b.image_path,
            "arch": b.arch,
            "static": b.is_static,
            "interpreter": b.interpreter,
            "needed": b.needed,
            "glibc": b.glibc.map(|v| v.to_string()),
        })).collect::<Vec<_>>(),
        "context_files": f.context_files,
        "context_bytes": f.context_bytes,
        "sent_bytes": f.sent_bytes,
        "archive": f.archive.iter().map(|a| json!({
            "tags": a.tags,
            "platform": a.platform,
            "total_bytes": a.total_bytes,
            "uplink_bytes": a.uplink_bytes,
            "eta_seconds": a.eta.map(|d| d.as_secs_f64()),
            "layers": a.layers.iter().map(|l| json!({"diff_id": l.diff_id, "size": l.size, "onboard": l.onboard})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
