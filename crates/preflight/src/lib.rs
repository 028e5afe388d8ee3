//! orbitdock preflight: catches on the ground, in seconds, what would fail in orbit.
//!
//! Given a build context (a folder, or any [`ContextSource`]) and its Dockerfile, an image
//! archive, or a single binary, plus the [`System`] it is meant for (platform, builder and the
//! preloaded base-image [`Catalogue`]), preflight returns a [`Report`]: [`Diagnostic`]s with a
//! stable rule code, a position and a help line, and the [`Facts`] it learnt (stages, binaries,
//! sizes, bytes to uplink). It never fails: malformed input is a diagnostic.
//!
//! Dockerfiles are read by the `dockerfile` crate, the same lexer the flight agent uses. For an
//! onboard build, preflight runs the flight agent's own judge (`dockerfile::onboard::judge_with`)
//! and reports each of its reasons under one of the codes of [`ONBOARD_REFUSALS`], so the two
//! cannot disagree (see `tests/judges_agree.rs`).
//!
//! The rules (see `RULES.md`): FROM only from the onboard catalogue, for the system's platform;
//! no network in RUN or ADD; COPY sources present in the upload; a non-root USER and exec-form
//! commands; ELF binaries of the right machine whose loader, libraries and glibc versions the
//! base provides; script interpreters present; archives of the right platform, with their size
//! and what must be uplinked; a `pod.run` image that can exist onboard ([`lint_pod_image`]).
//!
//! **Architecture invariant:** no network, no async, no clock; files are read only through
//! [`ContextSource`] or the paths given, and only as much as needed (ELF headers by offset,
//! archive members by header, through `imagefmt`, the judge the flight runs too).
//!
//! ```
//! use preflight::{Options, System, lint_dockerfile_text};
//!
//! let report = lint_dockerfile_text(
//!     "FROM alpine:3.19\nRUN apk add curl\n",
//!     "Dockerfile",
//!     &System::flight("sat1"),
//!     &Options::onboard(),
//! );
//! assert!(report.has_errors());
//! let codes: Vec<_> = report.diagnostics.iter().map(|d| d.code).collect();
//! assert_eq!(codes, ["OD101", "OD201"]);
//! ```

mod catalogue;
mod context;
mod diagnostic;
mod elf;
mod lint;
mod report;
mod rules;
mod shell;
mod suggest;

pub use catalogue::{
    BaseImage, Builder, Catalogue, DEBIAN12_GLIBC, FLIGHT_PLATFORM, System, Version, host_platform,
};
pub use context::{ContextSource, DirContext, Entry, EntryKind, MemContext};
pub use diagnostic::{Diagnostic, Position, Severity, Summary, has_errors, render, summary};
pub use lint::{
    ArchiveOptions, BuildSite, Eta, Options, lint_binary, lint_context, lint_dockerfile_text,
    lint_source,
};
pub use report::{ArchiveImage, BinaryFacts, Facts, LayerFacts, Report, StageFacts};
pub use rules::archive::{ARCHIVE_REFUSALS, lint_archive};
pub use rules::pod::{lint_pod_image, lint_pod_node};
pub use rules::{ONBOARD_REFUSALS, RULES, RuleInfo, rule_info};
