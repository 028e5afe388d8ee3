//! The rules: one module per family, each check a function with a doc comment showing a case
//! it rejects. [`RULES`] lists every code; `RULES.md` documents each (a test keeps them in step).

use crate::diagnostic::Severity;

pub(crate) mod archive;
pub(crate) mod base;
pub(crate) mod binaries;
pub(crate) mod files;
pub(crate) mod judge;
pub(crate) mod pod;
pub(crate) mod run;
pub(crate) mod runtime;

/// One rule: its stable code, a short name, its severity and a one-line summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInfo {
    /// `OD` + three digits; never reused.
    pub code: &'static str,
    /// kebab-case name.
    pub name: &'static str,
    /// The severity the rule reports with.
    pub severity: Severity,
    /// One line.
    pub summary: &'static str,
}

const fn rule(
    code: &'static str,
    name: &'static str,
    severity: Severity,
    summary: &'static str,
) -> RuleInfo {
    RuleInfo {
        code,
        name,
        severity,
        summary,
    }
}

use Severity::{Error, Info, Warning};

/// Every rule preflight can report.
pub const RULES: &[RuleInfo] = &[
    rule(
        "OD000",
        "unreadable-input",
        Error,
        "the Dockerfile, context or archive cannot be read",
    ),
    rule(
        "OD001",
        "unknown-instruction",
        Error,
        "a line is not a Dockerfile instruction",
    ),
    rule(
        "OD002",
        "malformed-instruction",
        Error,
        "an instruction, flag or parser directive is malformed",
    ),
    rule(
        "OD003",
        "unterminated-heredoc",
        Error,
        "a heredoc has no terminating line",
    ),
    rule(
        "OD004",
        "invalid-json-form",
        Warning,
        "an exec-form array is not valid JSON and is run as shell form",
    ),
    rule(
        "OD005",
        "no-build-stage",
        Error,
        "an instruction other than ARG comes before the first FROM, or there is no FROM",
    ),
    rule(
        "OD006",
        "unknown-flag",
        Error,
        "an instruction has a flag it does not accept",
    ),
    rule(
        "OD007",
        "ambiguous-syntax",
        Error,
        "Docker could read a line or flag differently from the flight agent, which refuses it",
    ),
    rule(
        "OD008",
        "limit-exceeded",
        Error,
        "the Dockerfile is over 1 MiB or 20 000 instructions, or an expansion over its limits",
    ),
    rule(
        "OD010",
        "needs-buildkit",
        Error,
        "a heredoc or flag that the onboard classic builder rejects",
    ),
    rule(
        "OD101",
        "base-not-onboard",
        Error,
        "FROM names an image that is not in the system's catalogue",
    ),
    rule(
        "OD102",
        "platform-mismatch",
        Error,
        "FROM --platform differs from the system's platform",
    ),
    rule(
        "OD103",
        "digest-mismatch",
        Error,
        "FROM pins a digest the onboard image does not have",
    ),
    rule(
        "OD104",
        "copy-from-not-onboard",
        Error,
        "COPY --from names an image that is not onboard, or a stage that does not exist yet",
    ),
    rule(
        "OD105",
        "base-uplinked",
        Info,
        "a ground build's final base is not onboard, so all its layers are uplinked",
    ),
    rule(
        "OD106",
        "pod-image-not-onboard",
        Error,
        "a pod.run image is neither a catalogue image of the system nor one of the tenant's images",
    ),
    rule(
        "OD107",
        "pod-node-not-onboard",
        Error,
        "a pod.run asks for node GPU on a system declared without a GPU",
    ),
    rule(
        "OD201",
        "package-install",
        Error,
        "RUN installs packages from the network (apt, apk, pip, npm, cargo install, go get, …)",
    ),
    rule(
        "OD202",
        "download",
        Error,
        "RUN downloads a URL (curl, wget, git clone, …)",
    ),
    rule(
        "OD203",
        "no-shell-for-run",
        Error,
        "shell-form RUN on a base without /bin/sh",
    ),
    rule(
        "OD204",
        "dependency-fetch",
        Error,
        "a build tool would fetch unvendored dependencies (cargo, go)",
    ),
    rule("OD301", "add-url", Error, "ADD of a URL or git repository"),
    rule(
        "OD302",
        "source-missing",
        Error,
        "a COPY/ADD source is not in the uploaded context",
    ),
    rule(
        "OD303",
        "source-outside-context",
        Error,
        "a COPY/ADD source escapes the context",
    ),
    rule(
        "OD304",
        "source-ignored",
        Error,
        "a COPY/ADD source is excluded by .dockerignore",
    ),
    rule(
        "OD401",
        "user-missing",
        Warning,
        "the final stage sets no USER and runs as root",
    ),
    rule(
        "OD402",
        "user-root",
        Warning,
        "the final stage runs as root",
    ),
    rule(
        "OD403",
        "shell-form-command",
        Warning,
        "ENTRYPOINT or CMD in shell form",
    ),
    rule(
        "OD404",
        "shell-form-without-shell",
        Error,
        "shell-form ENTRYPOINT or CMD on a base without /bin/sh",
    ),
    rule(
        "OD501",
        "binary-architecture",
        Error,
        "an ELF binary is built for another machine than the system's",
    ),
    rule(
        "OD502",
        "missing-loader",
        Error,
        "a dynamic binary's interpreter (PT_INTERP) is not in the base image",
    ),
    rule(
        "OD503",
        "missing-library",
        Error,
        "a NEEDED shared library is not in the base image",
    ),
    rule(
        "OD504",
        "glibc-too-new",
        Error,
        "a binary needs a newer GLIBC symbol version than the base image has",
    ),
    rule(
        "OD505",
        "missing-interpreter",
        Error,
        "a script's #! interpreter is not in the base image",
    ),
    rule(
        "OD506",
        "malformed-binary",
        Warning,
        "a file starts like an ELF binary but cannot be read as one",
    ),
    rule(
        "OD601",
        "archive-platform",
        Error,
        "an image archive is built for another platform than the system's",
    ),
    rule(
        "OD602",
        "archive-malformed",
        Error,
        "an image archive cannot be read as a docker save or OCI layout tar",
    ),
    rule(
        "OD603",
        "archive-size",
        Info,
        "an image's size and layer count",
    ),
    rule(
        "OD604",
        "archive-layer",
        Info,
        "one layer's size and whether it is already onboard",
    ),
    rule(
        "OD605",
        "archive-uplink",
        Info,
        "bytes to uplink and the estimated time",
    ),
    rule(
        "OD606",
        "archive-unsafe",
        Error,
        "an image archive holds what the flight refuses to load: unclean or repeated member names, \
         links that leave the archive, a config or blob that does not hash to its name, an image \
         with ONBUILD triggers",
    ),
    rule(
        "OD607",
        "archive-image",
        Error,
        "an image archive does not hold the image its docker.load task names",
    ),
];

/// The codes whose errors mean the flight agent's own judge, `dockerfile::onboard::judge`,
/// refuses the Dockerfile of a `docker.build` before the daemon sees it: for an onboard build
/// with the classic builder and no build arguments, the judge refuses a Dockerfile exactly when
/// preflight reports an error of one of these codes (`tests/judges_agree.rs` shows it on the
/// corpus, the judge's own refusals and every limit). Errors of other codes fail in the daemon
/// or in the container, or are about the build context, which the judge does not look at.
pub const ONBOARD_REFUSALS: &[&str] = &[
    "OD001", "OD002", "OD005", "OD006", "OD007", "OD008", "OD101", "OD103", "OD104", "OD301",
];

/// The rule of a code.
pub fn rule_info(code: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| r.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tidy: every rule has a `## ODxxx` section in RULES.md with an example, and the file
    /// documents no other code.
    #[test]
    fn rules_md_documents_every_rule() {
        let md = include_str!("../../RULES.md");
        for r in RULES {
            let heading = format!("## {} {}", r.code, r.name);
            assert!(md.contains(&heading), "RULES.md lacks `{heading}`");
            let section = md
                .split(&heading)
                .nth(1)
                .unwrap()
                .split("\n## ")
                .next()
                .unwrap();
            assert!(
                section.contains("```"),
                "RULES.md: {} has no example",
                r.code
            );
            assert!(
                section.contains(r.severity.as_str()),
                "RULES.md: {} does not state its severity",
                r.code
            );
        }
        for line in md.lines().filter(|l| l.starts_with("## OD")) {
            let code = &line[3..8];
            assert!(
                rule_info(code).is_some(),
                "RULES.md documents unknown {code}"
            );
        }
        let mut codes: Vec<_> = RULES.iter().map(|r| r.code).collect();
        codes.dedup();
        assert_eq!(codes.len(), RULES.len(), "duplicate or unsorted codes");
        assert!(codes.is_sorted(), "unsorted codes");
    }

    /// Tidy: every onboard refusal is an error rule, and RULES.md lists exactly these codes.
    #[test]
    fn onboard_refusals_are_documented() {
        for code in ONBOARD_REFUSALS {
            assert_eq!(
                rule_info(code).map(|r| r.severity),
                Some(Error),
                "{code} is not an error rule"
            );
        }
        let md = include_str!("../../RULES.md");
        let listed = md
            .split("Refused onboard too:")
            .nth(1)
            .and_then(|s| s.lines().next())
            .expect("RULES.md has a `Refused onboard too:` line");
        let listed: Vec<&str> = listed
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| w.starts_with("OD"))
            .collect();
        assert_eq!(listed, ONBOARD_REFUSALS);
    }
}
