//! The flight agent's judgement of a Dockerfile, before the Docker daemon sees it.
//!
//! Onboard, nothing can be pulled or downloaded: every `FROM` (and every `COPY --from=<image>`)
//! must name `scratch`, an earlier stage, a catalogue image or one of the tenant's own images,
//! and no `ADD` may fetch a URL. [`judge`] reads the Dockerfile as the onboard classic builder
//! does ([`Builder::Classic`]: no heredocs), substitutes the global `ARG` defaults into `FROM`,
//! and classifies each image the build names ([`Target`]). [`Judged::rewrite`] replaces
//! references in place (the tenant's `hello:v1` becomes `tenants/<tenant>/hello:v1`), keeping
//! every line number, so the daemon's errors still point at the tenant's lines.
//!
//! It fails closed. It refuses ([`Refusal`]) every error the lexer finds (the daemon would fail
//! on them anyway), everything the daemon could read differently from this parser
//! ([`ProblemKind::Ambiguous`](crate::ProblemKind::Ambiguous): odd whitespace, quoted or escaped
//! flags, `--from` without `=`, an escaped escape at a line end), a limit exceeded, an
//! instruction other than `ARG` before the first `FROM`, an expansion it does not read
//! ([`expand_strict`]), a variable in an `ADD` source or a `--from`, and any image that cannot
//! exist onboard. Whether a tenant image or a catalogue image is really present is the flight
//! agent's to check (it asks the daemon).

use std::fmt;

use crate::lexer::{physical_lines, strip_bom};
use crate::words::{Vars, expand_strict};
use crate::{Args, Builder, Instruction, Kind, parse};

/// An image a build names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// Which instruction (for [`Judged::rewrite`]).
    pub instruction: usize,
    /// 1-based line of the instruction.
    pub line: usize,
    /// `FROM` or `COPY --from`.
    pub site: Site,
    /// The image as written, after `ARG` substitution.
    pub image: String,
    /// What it names.
    pub target: Target,
}

/// Where an image is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// `FROM <image>`.
    From,
    /// `COPY --from=<image>`.
    CopyFrom,
}

/// What an image reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `FROM scratch`.
    Scratch,
    /// An earlier build stage.
    Stage,
    /// A catalogue image, by its canonical name.
    Catalogue(String),
    /// Possibly one of the tenant's images (`name:tag` without a prefix); the caller checks it
    /// exists.
    Tenant {
        /// The image name.
        name: String,
        /// The tag (`latest` when none is written).
        tag: String,
    },
}

impl ImageUse {
    /// The message for a reference that names nothing onboard.
    pub fn not_found(&self, catalogue: &[String]) -> String {
        not_found(self.site, &self.image, self.line, catalogue)
    }
}

/// A Dockerfile the onboard judge accepts: the images it names, and what [`Judged::rewrite`]
/// needs.
#[derive(Debug, Clone)]
pub struct Judged {
    uses: Vec<ImageUse>,
    lines: Vec<String>,
    instructions: Vec<Instruction>,
}

/// Why the onboard judge refuses a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    kind: RefusalKind,
    line: Option<usize>,
    message: String,
}

/// What kind of [`Refusal`] it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalKind {
    /// Malformed, ambiguous or over a limit: the build cannot be judged.
    Malformed,
    /// An `ADD` that could download.
    Download,
    /// An image that cannot exist onboard.
    NotOnboard,
}

impl Refusal {
    /// What kind of refusal.
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    /// The 1-based line it is about, when it is about one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    fn malformed(line: usize, message: impl fmt::Display) -> Refusal {
        Refusal {
            kind: RefusalKind::Malformed,
            line: Some(line),
            message: format!("Dockerfile line {line}: {message}"),
        }
    }
}

/// The whole message, naming the Dockerfile line (e.g. `Dockerfile line 3: …`, or `ADD
/// https://x (Dockerfile line 2): nothing can be downloaded onboard`).
impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

/// Judges a Dockerfile against the canonical names of the onboard catalogue: the flight agent's
/// one entry point. Never panics.
pub fn judge(text: &str, catalogue: &[String]) -> Result<Judged, Refusal> {
    let df = parse(text, Builder::Classic);
    if let Some(p) = df
        .problems
        .iter()
        .filter(|p| p.kind.is_error())
        .min_by_key(|p| p.start)
    {
        return Err(Refusal::malformed(p.start.line as usize, &p.message));
    }
    let uses = references(&df.instructions, df.escape, catalogue)?;
    for ins in &df.instructions {
        if let Some(url) = downloads(ins).into_iter().next() {
            let line = ins.text.first_line() as usize;
            let why = if url.contains('$') {
                "a variable in an ADD source could name a URL, and nothing can be downloaded onboard; use COPY"
            } else {
                "nothing can be downloaded onboard"
            };
            return Err(Refusal {
                kind: RefusalKind::Download,
                line: Some(line),
                message: format!("ADD {url} (Dockerfile line {line}): {why}"),
            });
        }
    }
    let mut known = Vec::new();
    for u in uses {
        let Some(target) = u.target else {
            return Err(Refusal {
                kind: RefusalKind::NotOnboard,
                line: Some(u.line),
                message: not_found(u.site, &u.image, u.line, catalogue),
            });
        };
        known.push(ImageUse {
            instruction: u.instruction,
            line: u.line,
            site: u.site,
            image: u.image,
            target,
        });
    }
    Ok(Judged {
        uses: known,
        lines: physical_lines(strip_bom(text))
            .into_iter()
            .map(str::to_string)
            .collect(),
        instructions: df.instructions,
    })
}

impl Judged {
    /// Every image the build names, in order.
    pub fn uses(&self) -> &[ImageUse] {
        &self.uses
    }

    /// The Dockerfile with the image of each `(instruction, new reference)` replaced. A
    /// rewritten instruction becomes one line; its continuation lines become blank, so line
    /// numbers hold.
    pub fn rewrite(&self, replacements: &[(usize, String)]) -> String {
        let mut lines = self.lines.clone();
        for (idx, new_ref) in replacements {
            let Some(ins) = self.instructions.get(*idx) else {
                continue;
            };
            let full = &ins.text.text;
            let text = match (ins.kind, &ins.args) {
                (Kind::From, Args::Shell { words, .. }) => {
                    let mut t = String::from("FROM ");
                    for flag in &ins.flags {
                        t.push_str(&full[flag.start..flag.end]);
                        t.push(' ');
                    }
                    t.push_str(new_ref);
                    if let Some(stage) = words.get(2) {
                        t.push_str(" AS ");
                        t.push_str(&stage.text);
                    }
                    t
                }
                (Kind::Copy | Kind::Add, _) => {
                    let Some(flag) = ins.flag("from") else {
                        continue;
                    };
                    let after = full.len() - full[ins.keyword.len()..].trim_start().len();
                    format!(
                        "{} {}--from={new_ref}{}",
                        ins.keyword.to_ascii_uppercase(),
                        &full[after..flag.start],
                        full[flag.end..].trim_end()
                    )
                }
                _ => continue,
            };
            let first = ins.text.first_line() as usize;
            let last = (ins.text.end_line as usize).max(first);
            if let Some(line) = lines.get_mut(first - 1) {
                *line = text;
            }
            for line in lines.iter_mut().take(last).skip(first) {
                line.clear();
            }
        }
        let mut out = lines.join("\n");
        out.push('\n');
        out
    }
}

/// Classifies an image that is neither `scratch` nor a stage: a catalogue image (by its
/// canonical name), possibly one of the tenant's (`name[:tag]`, no registry, no path, no
/// digest), or `None`: nothing that can exist onboard.
pub fn classify(image: &str, catalogue: &[String]) -> Option<Target> {
    let normalized = wire::normalize_image_ref(image);
    if let Some(c) = catalogue.iter().find(|c| **c == normalized) {
        return Some(Target::Catalogue(c.clone()));
    }
    if image.contains(['/', '@']) {
        return None;
    }
    // The flight agent's rules for a tenant image: `tenants/<tenant>/<name>:<tag>` is then
    // always a valid reference, in the tenant's namespace.
    let (name, tag) = image.split_once(':').unwrap_or((image, "latest"));
    let valid =
        wire::names::ImageName::new(name).is_ok() && wire::names::ImageTag::new(tag).is_ok();
    valid.then(|| Target::Tenant {
        name: name.to_string(),
        tag: tag.to_string(),
    })
}

/// The sources of an `ADD` that could download: URLs, and words holding a variable (the
/// builder expands it, so it could name a URL). The legacy builder fetches URLs from the
/// daemon itself, outside the build's network sandbox, so they are refused onboard.
pub fn downloads(ins: &Instruction) -> Vec<String> {
    if ins.kind != Kind::Add {
        return Vec::new();
    }
    let mut out = remote_words(ins.after_keyword());
    let rest = ins.text.text.get(ins.args.start()..).unwrap_or("");
    out.extend(
        rest.split([' ', '\t'])
            .filter(|w| w.contains('$'))
            .map(str::to_string),
    );
    out
}

/// The words of an `ADD` (or an `ONBUILD ADD`) that name something remote. A JSON form is also
/// read JSON-decoded (`"http:\/\/x"`); one that does not decode but holds a backslash (which
/// Docker's decoder might still read) is returned whole, as possibly remote.
pub fn remote_words(args: &str) -> Vec<String> {
    let is_remote = |w: &str| w.contains("://") || w.starts_with("git@");
    let mut out: Vec<String> = Vec::new();
    let mut push = |w: String| {
        if !out.contains(&w) {
            out.push(w);
        }
    };
    for w in args
        .split(|c: char| c.is_whitespace() || c == '[' || c == ']' || c == ',')
        .map(|w| w.trim_matches('"'))
        .filter(|w| !w.starts_with("--") && is_remote(w))
    {
        push(w.to_string());
    }
    if let Some(open) = args.find('[') {
        let json = args[open..].trim_end();
        match serde_json::from_str::<Vec<String>>(json) {
            Ok(words) => words
                .into_iter()
                .filter(|w| is_remote(w))
                .for_each(&mut push),
            Err(_) if json.contains('\\') => push(json.to_string()),
            Err(_) => {}
        }
    }
    out
}

/// An image a build names, before the judge refuses those that cannot exist onboard.
struct Found {
    instruction: usize,
    line: usize,
    site: Site,
    image: String,
    /// `None`: nothing onboard.
    target: Option<Target>,
}

/// Every image the instructions name, with its target. Refuses what the lexer let through but
/// the judge does not read: a missing FROM, an instruction before it, an expansion it cannot
/// trust, an empty image.
fn references(
    instructions: &[Instruction],
    escape: char,
    catalogue: &[String],
) -> Result<Vec<Found>, Refusal> {
    let Some(first_from) = instructions.iter().position(|i| i.kind == Kind::From) else {
        return Err(Refusal {
            kind: RefusalKind::Malformed,
            line: None,
            message: "the Dockerfile has no FROM instruction".into(),
        });
    };
    let line_of = |ins: &Instruction| ins.text.first_line() as usize;
    // Only ARG may come before FROM, and its defaults are what FROM sees.
    let mut globals = Vars::new();
    for ins in &instructions[..first_from] {
        if ins.kind != Kind::Arg {
            return Err(Refusal::malformed(
                line_of(ins),
                format!(
                    "{} before the first FROM; only ARG may come before FROM",
                    ins.keyword.to_ascii_uppercase()
                ),
            ));
        }
        let Args::Shell { words, .. } = &ins.args else {
            continue;
        };
        for w in words {
            if let Some((name, default)) = w.text.split_once('=') {
                let value = expand_strict(default, &globals, escape)
                    .map_err(|e| Refusal::malformed(line_of(ins), format!("ARG {name}: {e}")))?;
                globals.insert(name.to_string(), value);
            }
        }
    }

    let mut stages: Vec<Option<String>> = Vec::new();
    let mut out = Vec::new();
    for (idx, ins) in instructions.iter().enumerate() {
        let line = line_of(ins);
        match (ins.kind, &ins.args) {
            (Kind::From, Args::Shell { words, .. }) => {
                let Some(written) = words.first() else {
                    continue;
                };
                let image = expand_strict(&written.text, &globals, escape)
                    .map_err(|e| Refusal::malformed(line, format!("FROM {}: {e}", written.text)))?;
                if image.is_empty() {
                    return Err(Refusal::malformed(
                        line,
                        "FROM names an empty image (an ARG without a default?)",
                    ));
                }
                let lower = image.to_ascii_lowercase();
                let target = if image == "scratch" {
                    Some(Target::Scratch)
                } else if stages.iter().flatten().any(|s| *s == lower) {
                    Some(Target::Stage)
                } else {
                    classify(&image, catalogue)
                };
                out.push(Found {
                    instruction: idx,
                    line,
                    site: Site::From,
                    image,
                    target,
                });
                stages.push(words.get(2).map(|w| w.text.to_ascii_lowercase()));
            }
            (Kind::Copy | Kind::Add, _) => {
                let Some(flag) = ins.flag("from") else {
                    continue;
                };
                // As written: the flight agent expands no variable in `--from`.
                let value = flag.value.clone().unwrap_or_default();
                let lower = value.to_ascii_lowercase();
                let current = stages.len().saturating_sub(1);
                let target = if let Ok(n) = value.parse::<usize>() {
                    (n < current).then_some(Target::Stage)
                } else if stages[..current].iter().flatten().any(|s| *s == lower) {
                    Some(Target::Stage)
                } else {
                    classify(&value, catalogue)
                };
                out.push(Found {
                    instruction: idx,
                    line,
                    site: Site::CopyFrom,
                    image: value,
                    target,
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

fn not_found(site: Site, image: &str, line: usize, catalogue: &[String]) -> String {
    let site = match site {
        Site::From => "FROM ",
        Site::CopyFrom => "COPY --from=",
    };
    format!(
        "{site}{image} (Dockerfile line {line}): not in the onboard catalogue ({}) nor one of your images; nothing can be pulled onboard",
        catalogue.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    include!("../test_data/onboard_refusals.rs");

    fn catalogue() -> Vec<String> {
        wire::catalogue("linux/amd64")
            .into_iter()
            .map(|b| b.name)
            .collect()
    }

    /// `(line, site, image, target)` of each reference, `None` for those that name nothing
    /// onboard (which [`judge`] refuses).
    fn refs(text: &str) -> Vec<(usize, Site, String, Option<Target>)> {
        let df = parse(text, Builder::Classic);
        assert!(df.problems.is_empty(), "{text:?}: {:?}", df.problems);
        references(&df.instructions, df.escape, &catalogue())
            .unwrap()
            .into_iter()
            .map(|u| (u.line, u.site, u.image, u.target))
            .collect()
    }

    fn tenant(name: &str, tag: &str) -> Option<Target> {
        Some(Target::Tenant {
            name: name.into(),
            tag: tag.into(),
        })
    }

    fn catalogued(name: &str) -> Option<Target> {
        Some(Target::Catalogue(name.into()))
    }

    #[test]
    fn classifies_from_lines() {
        let r = refs(
            "# syntax=docker/dockerfile:1\n\
             FROM gcr.io/distroless/cc-debian12 AS base\n\
             FROM --platform=linux/arm64 busybox:latest as Builder\n\
             FROM scratch\n\
             FROM builder\n\
             FROM hello:v1\n\
             FROM ubuntu:22.04\n\
             FROM fpga.dphi.space:5000/busybox\n\
             FROM other/tenant:1\n\
             FROM Hello\n\
             FROM SCRATCH\n",
        );
        let targets: Vec<_> = r.iter().map(|x| (x.0, x.3.clone())).collect();
        assert_eq!(
            targets,
            [
                (2, catalogued("gcr.io/distroless/cc-debian12:latest")),
                (3, catalogued("busybox:latest")),
                (4, Some(Target::Scratch)),
                (5, Some(Target::Stage)),
                (6, tenant("hello", "v1")),
                (7, tenant("ubuntu", "22.04")),
                (8, catalogued("busybox:latest")),
                (9, None),
                (10, None),
                (11, None),
            ]
        );
    }

    #[test]
    fn handles_continuations_comments_and_args() {
        let r = refs(
            "ARG BASE=busybox\n\
             ARG TAG\n\
             ARG REG=\"fpga.dphi.space:5000\"\n\
             # a comment\n\
             FROM \\\n\
             # inside a continuation\n\
             \n\
             ${REG}/${BASE}:${TAG:-latest} \\\n\
               AS first\n\
             ARG BASE=ignored-after-from\n\
             FROM $BASE\n\
             COPY --chown=1:1 --from=first /a /b\n\
             COPY --from=0 /a /b\n\
             COPY --from=app:v2 /a /b\n\
             COPY --from=5 /a /b\n\
             COPY /x /y\n",
        );
        assert_eq!(
            r,
            [
                (
                    5,
                    Site::From,
                    "fpga.dphi.space:5000/busybox:latest".into(),
                    catalogued("busybox:latest")
                ),
                (
                    11,
                    Site::From,
                    "busybox".into(),
                    catalogued("busybox:latest")
                ),
                (12, Site::CopyFrom, "first".into(), Some(Target::Stage)),
                (13, Site::CopyFrom, "0".into(), Some(Target::Stage)),
                (14, Site::CopyFrom, "app:v2".into(), tenant("app", "v2")),
                (15, Site::CopyFrom, "5".into(), None),
            ]
        );
    }

    #[test]
    fn honours_the_escape_directive() {
        let r = refs("# escape=`\nFROM `\n  hello:v1\nRUN echo \\\n");
        assert_eq!(
            r,
            [(2, Site::From, "hello:v1".into(), tenant("hello", "v1"))]
        );
    }

    #[test]
    fn tenant_images_follow_the_name_rules() {
        let c = catalogue();
        for ok in ["hello", "my-app:v1.2-rc", "app.v2:_x", "a__b:A"] {
            assert!(
                matches!(classify(ok, &c), Some(Target::Tenant { .. })),
                "{ok}"
            );
        }
        for bad in [
            "Hello",
            "a..b",
            "a-",
            "a___b",
            "x:.v",
            "x:-v",
            "x:a:b",
            "a/b",
            "a@sha256:00",
        ] {
            assert_eq!(classify(bad, &c), None, "{bad}");
        }
    }

    #[test]
    fn a_stage_name_shadows_an_image() {
        let r = refs("FROM busybox AS hello\nFROM hello\nFROM hello:v1\n");
        assert_eq!(r[1].3, Some(Target::Stage));
        assert_eq!(r[2].3, tenant("hello", "v1"));
    }

    #[test]
    fn rewrites_in_place_keeping_line_numbers() {
        let text = "ARG V=v1\n\
                    FROM --platform=linux/amd64 \\\n  hello:${V} AS build\n\
                    RUN make\n\
                    FROM gcr.io/distroless/static-debian12\n\
                    COPY --chown=65532:65532 --from=tools:2 /bin/t /t\n\
                    COPY --from=build /out /out\n";
        let judged = judge(text, &catalogue()).unwrap();
        let replacements: Vec<(usize, String)> = judged
            .uses()
            .iter()
            .filter_map(|u| match &u.target {
                Target::Tenant { name, tag } => {
                    Some((u.instruction, format!("tenants/alice/{name}:{tag}")))
                }
                _ => None,
            })
            .collect();
        let out = judged.rewrite(&replacements);
        assert_eq!(
            out,
            "ARG V=v1\n\
             FROM --platform=linux/amd64 tenants/alice/hello:v1 AS build\n\
             \n\
             RUN make\n\
             FROM gcr.io/distroless/static-debian12\n\
             COPY --chown=65532:65532 --from=tenants/alice/tools:2 /bin/t /t\n\
             COPY --from=build /out /out\n"
        );
        // The rewritten file names images that cannot exist: a prefix can never be written by a
        // tenant.
        let again = judge(&out, &catalogue()).unwrap_err();
        assert_eq!(
            (again.kind(), again.line()),
            (RefusalKind::NotOnboard, Some(2))
        );
    }

    /// `(line, url)` of every download of every `ADD`.
    fn all_downloads(text: &str) -> Vec<(u32, String)> {
        parse(text, Builder::Classic)
            .instructions
            .iter()
            .flat_map(|ins| {
                downloads(ins)
                    .into_iter()
                    .map(|u| (ins.text.first_line(), u))
            })
            .collect()
    }

    #[test]
    fn finds_downloads() {
        let text = "FROM busybox\nADD --chown=1:1 https://example.com/a.tgz /a\nADD [\"http://x/y\", \"/y\"]\n\
             ADD local.tgz /l\nCOPY http://not-fetched /z\nADD git@github.com:a/b.git /src\n";
        assert_eq!(
            all_downloads(text),
            [
                (2, "https://example.com/a.tgz".to_string()),
                (3, "http://x/y".to_string()),
                (6, "git@github.com:a/b.git".to_string())
            ]
        );
        assert_eq!(remote_words("ADD ftp://h/f /f"), ["ftp://h/f"]);
        let r = judge(text, &catalogue()).unwrap_err();
        assert_eq!(r.kind(), RefusalKind::Download);
        assert_eq!(
            r.to_string(),
            "ADD https://example.com/a.tgz (Dockerfile line 2): nothing can be downloaded onboard"
        );
    }

    #[test]
    fn explains_what_is_missing() {
        let judged = judge("FROM ubuntu:22.04\n", &catalogue()).unwrap();
        assert_eq!(
            judged.uses()[0].not_found(&catalogue()),
            "FROM ubuntu:22.04 (Dockerfile line 1): not in the onboard catalogue \
             (gcr.io/distroless/static-debian12:latest, gcr.io/distroless/cc-debian12:latest, busybox:latest) \
             nor one of your images; nothing can be pulled onboard"
        );
        let r = judge("FROM busybox\nCOPY --from=a/b /x /y\n", &catalogue()).unwrap_err();
        assert_eq!(r.kind(), RefusalKind::NotOnboard);
        assert!(
            r.to_string()
                .starts_with("COPY --from=a/b (Dockerfile line 2): not in the onboard catalogue"),
            "{r}"
        );
    }

    #[test]
    fn refuses_every_onboard_refusal_naming_its_line() {
        for (name, text, line) in REFUSED_DOCKERFILES {
            match judge(text, &catalogue()) {
                Ok(j) => panic!("{name}: accepted {text:?}: {:?}", j.uses()),
                Err(r) => assert_eq!(r.line(), *line, "{name}: {r}"),
            }
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        // Odd but harmless inputs.
        for text in [
            "FROM a \\",
            "FROM a\nCOPY --from= /x /y\n",
            "FROM a\nCOPY --from=\n",
            "\u{feff}FROM a\n",
            "FROM é\n",
            "FROM busybox\nCOPY --chown=1 -- --from=x /a /b\n",
        ] {
            if let Ok(j) = judge(text, &catalogue()) {
                let _ = j.rewrite(&[(0, "x".into()), (9, "y".into())]);
            }
        }
    }

    #[test]
    fn continuation_follows_docker() {
        // The escape followed by spaces and tabs continues the line.
        let r = refs("FROM busybox\nCOPY \\ \t\n --from=app:v2 /a /b\n");
        assert_eq!(
            r[1],
            (2, Site::CopyFrom, "app:v2".into(), tenant("app", "v2"))
        );
    }

    #[test]
    fn directives_end_at_the_first_other_comment() {
        // BuildKit stops reading directives at `# foo=bar`, so the escape stays `\\` and line 3
        // continues into line 4.
        let text = "# foo=bar\n# escape=`\nFROM busybox \\\nAS x\nCOPY --from=app:v2 /a /b\n";
        let r = refs(text);
        assert_eq!(r[0].0, 3);
        assert_eq!(r[1].3, tenant("app", "v2"));
        // A comment or a blank line ends them too.
        for text in [
            "# hello\n# escape=`\nFROM busybox \\\nAS x\n",
            "\n# escape=`\nFROM busybox \\\nAS x\n",
        ] {
            assert_eq!(refs(text).len(), 1, "{text:?}");
        }
        // The known ones, in any case and spacing, do not.
        let r = refs(
            "# syntax=docker/dockerfile:1\n#check=skip=all\n#  ESCAPE = `\nFROM `\n  hello:v1\n",
        );
        assert_eq!(r[0].3, tenant("hello", "v1"));
    }

    #[test]
    fn json_add_sources_are_decoded() {
        let found = all_downloads(
            "FROM busybox\nADD [\"http:\\/\\/x/y\",\"/y\"]\nADD [\"\\u0068ttps://z\", \"/z\"]\n",
        );
        assert_eq!(found[0], (2, "http://x/y".to_string()));
        assert!(found.contains(&(3, "https://z".to_string())), "{found:?}");
        // Undecodable JSON with escapes is refused whole; variables could hold a URL.
        let found = all_downloads(
            "FROM busybox\nADD [\"http:\\/\\/x\\ud800\", \"/y\"]\nARG U=http://x\nADD $U /u\nADD a /a\n",
        );
        let lines: Vec<u32> = found.iter().map(|x| x.0).collect();
        assert_eq!(lines, [2, 4]);
    }

    #[test]
    fn substitutes_like_docker() {
        let vars: Vars = [
            ("A".to_string(), "a".to_string()),
            ("E".to_string(), String::new()),
        ]
        .into();
        let s = |t: &str| expand_strict(t, &vars, '\\').unwrap();
        assert_eq!(s("$A-${A}"), "a-a");
        assert_eq!(
            s("${E:-d} ${E-d} ${U-d} ${A:+x} ${U:+x} ${E+y}"),
            "d  d x  y"
        );
        assert_eq!(s("\\$A $ $1"), "$A $ ");
        // Quotes are read as Docker reads them; the result is what is classified.
        let r = refs("FROM \"busybox\"\nFROM 'busy'box:latest\n");
        assert_eq!(r[0].3, catalogued("busybox:latest"));
        assert_eq!(r[1].2, "busybox:latest");
    }
}
