//! The flight agent's judgement of a Dockerfile, before the Docker daemon sees it: the one gate,
//! fail-closed. Preflight, on the ground, calls the same [`judge_with`] for onboard builds and
//! reports each of its [`Reason`]s under a rule code, so the two cannot disagree.
//!
//! Onboard, nothing can be pulled or downloaded: every `FROM` (and every `COPY --from=<image>`)
//! must name `scratch`, an earlier stage, a catalogue image or one of the tenant's own images,
//! and no `ADD` may fetch a URL. [`judge`] reads the Dockerfile as the onboard classic builder
//! does ([`Builder::Classic`]: no heredocs), declares the `ARG`s before the first `FROM` with
//! Docker's scope rules ([`declare_args`](crate::declare_args)), substitutes them into `FROM`,
//! and classifies each image the build names ([`Target`]). [`Judged::rewrite`] then replaces
//! every image position (`FROM` and `COPY --from`) with the literal the judge read: the
//! catalogue's canonical name, `scratch`, the stage's name or index, or the tenant's image under
//! its prefix (`hello:v1` becomes `tenants/<tenant>/hello:v1`). The daemon never expands a
//! variable where an image is named, so what it builds from is what was judged, whatever it
//! would have made of the `ARG`s. Every line number is kept, so the daemon's errors still point
//! at the tenant's lines.
//!
//! It refuses ([`Refusal`], with every [`Reason`] found) every error the lexer finds (the daemon
//! would fail on them anyway), everything the daemon could read differently from this parser
//! ([`ProblemKind::Ambiguous`]: odd whitespace, quoted or escaped flags, `--from` without `=`,
//! an escaped escape at a line end), a limit exceeded, an instruction other than `ARG` before
//! the first `FROM`, an expansion it does not read ([`expand_strict`](crate::expand_strict)), a
//! stage name Docker does not accept, an `ADD` source that could download (a URL, also once its
//! quotes and escapes are removed, or a variable), an `ONBUILD` trigger that would copy from
//! another image, download, or be read differently, and any image that cannot exist onboard.
//! Whether a tenant image or a catalogue image is really present is the flight agent's to check
//! (it asks the daemon); it also refuses a tenant base image that has `ONBUILD` triggers.
//!
//! Linear in its input: the lexer records at most
//! [`MAX_PROBLEMS_PER_KIND`](crate::MAX_PROBLEMS_PER_KIND) problems of a kind, stages are looked
//! up by name in a map, every expansion of one Dockerfile shares one budget
//! ([`MAX_EXPANSION_TOTAL`](crate::MAX_EXPANSION_TOTAL)), and at most [`MAX_REASONS`] reasons of each phase are kept.

mod reader;

use std::fmt;

use wire::names::{TenantImage, TenantName};

use self::reader::{Found, Reading, not_found};
use crate::lexer::{physical_lines, strip_bom};
use crate::{Args, Builder, ExpandErrorKind, Instruction, Kind, Position, ProblemKind, parse};

/// The most [`Reason`]s of one phase (lexer problems; structure and expansions; downloads and
/// triggers; images not onboard) a [`Refusal`] keeps.
pub const MAX_REASONS: usize = 100;

/// How the judge reads a Dockerfile. No `Default`: the flight agent's is [`Settings::FLIGHT`].
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// The frontend that reads it (heredocs or not). Onboard builds use the classic builder.
    pub builder: Builder,
    /// `--build-arg` values (a later one of a name wins). The flight agent gives none.
    pub build_args: &'a [(String, String)],
}

impl Settings<'static> {
    /// What the flight agent builds with: the classic builder, no build arguments.
    pub const FLIGHT: Settings<'static> = Settings {
        builder: Builder::Classic,
        build_args: &[],
    };
}

/// An image a build names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// Which instruction (an index into the parsed instructions).
    pub instruction: usize,
    /// 1-based line of the instruction.
    pub line: usize,
    /// `FROM` or `COPY --from`.
    pub site: Site,
    /// The image as read: after `ARG` substitution in `FROM`, as written in `--from`.
    pub image: String,
    /// What it names.
    pub target: Target,
    /// Byte range, in the instruction's logical line, of the image word or the `--from` flag.
    pub range: (usize, usize),
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
    /// An earlier build stage, by index.
    Stage(usize),
    /// A catalogue image, by its canonical name.
    Catalogue(String),
    /// Possibly one of the tenant's images (`name[:tag]` without a registry or path); the
    /// caller checks it exists.
    Tenant(TenantImage),
}

impl ImageUse {
    /// The message for a reference that names nothing onboard.
    pub fn not_found(&self, catalogue: &[String]) -> String {
        not_found(self.site, &self.image, self.line, catalogue)
    }

    /// What the daemon is given where the image was: the catalogue image's canonical name,
    /// `scratch`, the stage's name (`FROM`) or index (`COPY --from`), or the tenant's image
    /// under its prefix. None of them holds anything the daemon could expand.
    pub fn literal(&self, tenant: &TenantName) -> String {
        match &self.target {
            Target::Scratch => "scratch".to_string(),
            Target::Stage(index) => match self.site {
                Site::From => self.image.to_ascii_lowercase(),
                Site::CopyFrom => index.to_string(),
            },
            Target::Catalogue(name) => name.clone(),
            Target::Tenant(image) => image.onboard(tenant),
        }
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

/// Why the onboard judge refuses a Dockerfile: every [`Reason`] found (at least one), and the
/// images it could classify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    reasons: Vec<Reason>,
    uses: Vec<ImageUse>,
}

/// One reason to refuse a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    kind: RefusalKind,
    cause: Cause,
    instruction: Option<usize>,
    line: Option<usize>,
    start: Position,
    end: Option<Position>,
    message: String,
    detail: String,
    help: Option<String>,
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
    /// An `ONBUILD` trigger that a later build would run: one that copies from another image,
    /// could download, or could be read differently.
    Trigger,
}

/// What exactly a [`Reason`] is about (preflight reports each under its rule code).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// A problem the lexer found, of this kind (in an `ONBUILD` trigger, too).
    Problem(ProblemKind),
    /// An `ARG` default or a `FROM` image that the strict expansion refuses, or the expansions
    /// of the Dockerfile over [`MAX_EXPANSION_TOTAL`](crate::MAX_EXPANSION_TOTAL) bytes together.
    Expansion(ExpandErrorKind),
    /// The Dockerfile has no `FROM`.
    NoFrom,
    /// An instruction other than `ARG` before the first `FROM`.
    BeforeFrom,
    /// `FROM` names an empty image.
    EmptyImage,
    /// `FROM … AS <name>` with a name Docker does not accept, or `scratch`.
    StageName,
    /// An image that cannot exist onboard.
    NotOnboard {
        /// Where it is named.
        site: Site,
        /// As read.
        image: String,
    },
    /// An `ADD` source that could download (in an `ONBUILD` trigger, too).
    Download {
        /// The source as written.
        source: String,
    },
    /// `COPY --from` (or `ADD --from`) in an `ONBUILD` trigger.
    TriggerFrom,
}

impl Refusal {
    /// What kind of refusal (its first reason's).
    pub fn kind(&self) -> RefusalKind {
        self.reasons[0].kind
    }

    /// The 1-based line it is about, when it is about one (its first reason's).
    pub fn line(&self) -> Option<usize> {
        self.reasons[0].line
    }

    /// Every reason found, the first one first: lexer problems by position, then structure and
    /// expansions, downloads and triggers, and images not onboard, each in order.
    pub fn reasons(&self) -> &[Reason] {
        &self.reasons
    }

    /// The images the judge could classify, in order (a build that is refused names others).
    pub fn uses(&self) -> &[ImageUse] {
        &self.uses
    }
}

impl Reason {
    /// What kind of refusal.
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    /// What it is about.
    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    /// The instruction it is about (an index into the parsed instructions), when it is one.
    pub fn instruction(&self) -> Option<usize> {
        self.instruction
    }

    /// The 1-based line it is about, when it is about one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// Where it starts (line 1, column 1 when it is about no line).
    pub fn start(&self) -> Position {
        self.start
    }

    /// Exclusive end of its span, when known.
    pub fn end(&self) -> Option<Position> {
        self.end
    }

    /// What is wrong, without the line (`ARG A: unterminated ...`).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// What to do about it, when the lexer says.
    pub fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }
}

/// The whole message, naming the Dockerfile line (e.g. `Dockerfile line 3: …`, or `ADD
/// https://x (Dockerfile line 2): nothing can be downloaded onboard`).
impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The first reason's message.
impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reasons[0].fmt(f)
    }
}

impl std::error::Error for Refusal {}

/// Judges a Dockerfile as the flight agent builds it ([`Settings::FLIGHT`]) against the canonical
/// names of the onboard catalogue: the flight agent's one entry point. Never panics.
pub fn judge(text: &str, catalogue: &[String]) -> Result<Judged, Refusal> {
    judge_with(text, catalogue, &Settings::FLIGHT)
}

/// [`judge`], reading the Dockerfile as `settings` say (preflight passes the system's builder
/// and the build arguments it is given). Never panics.
pub fn judge_with(
    text: &str,
    catalogue: &[String],
    settings: &Settings<'_>,
) -> Result<Judged, Refusal> {
    let df = parse(text, settings.builder);
    let Reading { found, phases } = reader::read(&df, catalogue, settings);
    let mut reasons: Vec<Reason> = phases.into_iter().flatten().collect();
    if !reasons.is_empty() {
        reasons.shrink_to_fit();
        return Err(Refusal {
            reasons,
            uses: found.into_iter().filter_map(Found::known).collect(),
        });
    }
    Ok(Judged {
        uses: found.into_iter().filter_map(Found::known).collect(),
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

    /// The Dockerfile the daemon is given: every `FROM` image and `COPY --from` replaced by its
    /// [`ImageUse::literal`] for `tenant`. A rewritten instruction becomes one line; its
    /// continuation lines become blank, so line numbers hold.
    pub fn rewrite(&self, tenant: &TenantName) -> String {
        let mut lines = self.lines.clone();
        for u in &self.uses {
            let Some(ins) = self.instructions.get(u.instruction) else {
                continue;
            };
            let literal = u.literal(tenant);
            let full = &ins.text.text;
            let text = match (ins.kind, &ins.args) {
                (Kind::From, Args::Shell { words, .. }) => {
                    let mut t = String::from("FROM ");
                    for flag in &ins.flags {
                        t.push_str(&full[flag.start..flag.end]);
                        t.push(' ');
                    }
                    t.push_str(&literal);
                    if let [_, _, stage] = words.as_slice() {
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
                        "{} {}--from={literal}{}",
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
/// digest, valid by the rules of `wire::names`), or `None`: nothing that can exist onboard. The
/// one classification of an image onboard: the judge's, the flight agent's for `pod.run`, and
/// preflight's.
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
    TenantImage::parse(image).ok().map(Target::Tenant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Vars, expand_strict};

    include!("../../test_data/onboard_refusals.rs");

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
        let catalogue = catalogue();
        let reading = reader::read(&df, &catalogue, &Settings::FLIGHT);
        assert!(
            reading.phases[reader::STRUCTURE].is_empty(),
            "{text:?}: {:?}",
            reading.phases[reader::STRUCTURE]
        );
        reading
            .found
            .into_iter()
            .map(|u| (u.line, u.site, u.image, u.target))
            .collect()
    }

    fn tenant(name: &str, tag: &str) -> Option<Target> {
        Some(Target::Tenant(TenantImage::new(name, tag).unwrap()))
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
                (5, Some(Target::Stage(1))),
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
                (12, Site::CopyFrom, "first".into(), Some(Target::Stage(0))),
                (13, Site::CopyFrom, "0".into(), Some(Target::Stage(0))),
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
        assert_eq!(r[1].3, Some(Target::Stage(0)));
        assert_eq!(r[2].3, tenant("hello", "v1"));
    }

    #[test]
    fn rewrites_in_place_keeping_line_numbers() {
        let text = "ARG V=v1\n\
                    FROM --platform=linux/amd64 \\\n  hello:${V} AS build\n\
                    RUN make\n\
                    FROM gcr.io/distroless/static-debian12\n\
                    COPY --chown=65532:65532 --from=tools:2 /bin/t /t\n\
                    COPY --from=build /out /out\n\
                    FROM scratch\n\
                    FROM Build\n";
        let judged = judge(text, &catalogue()).unwrap();
        let out = judged.rewrite(&alice());
        // Every image position holds the literal the judge read.
        assert_eq!(
            out,
            "ARG V=v1\n\
             FROM --platform=linux/amd64 tenants/alice/hello:v1 AS build\n\
             \n\
             RUN make\n\
             FROM gcr.io/distroless/static-debian12:latest\n\
             COPY --chown=65532:65532 --from=tenants/alice/tools:2 /bin/t /t\n\
             COPY --from=0 /out /out\n\
             FROM scratch\n\
             FROM build\n"
        );
        // The rewritten file names images that cannot exist: a prefix can never be written by a
        // tenant.
        let again = judge(&out, &catalogue()).unwrap_err();
        assert_eq!(
            (again.kind(), again.line()),
            (RefusalKind::NotOnboard, Some(2))
        );
    }

    fn alice() -> TenantName {
        TenantName::new("alice").unwrap()
    }

    /// The review's case: `ARG A` without a default unsets `A` (Docker's `AddMetaArg(key,
    /// nil)`), so `${A:-…}` takes its default; and whatever the daemon would make of the ARGs,
    /// it is given the literal the judge read.
    #[test]
    fn an_arg_without_a_default_unsets_it() {
        let c = catalogue();
        for (first, read) in [
            ("busybox:latest", "9a27fa"),
            ("scratch", "9a27fa"),
            ("s", "9a27fa"),
        ] {
            let text = format!("ARG A={first}\nARG A\nFROM busybox AS s\nFROM ${{A:-9a27fa}}\n");
            let judged = judge(&text, &c).unwrap();
            let last = judged.uses().last().unwrap();
            assert_eq!(last.image, read, "{text}");
            assert_eq!(
                last.target,
                Target::Tenant(TenantImage::parse("9a27fa").unwrap())
            );
            assert_eq!(
                judged.rewrite(&alice()),
                "ARG A=".to_string()
                    + first
                    + "\nARG A\nFROM busybox:latest AS s\nFROM tenants/alice/9a27fa:latest\n"
            );
        }
        // Another tenant's image behind the default is refused outright.
        let r = judge("ARG A=busybox\nARG A\nFROM ${A:-tenants/bob/x:1}\n", &c).unwrap_err();
        assert_eq!((r.kind(), r.line()), (RefusalKind::NotOnboard, Some(3)));
        // All of one ARG's defaults are expanded before any is declared, as Docker does.
        let r = refs("ARG B=busybox\nARG B=scratch C=$B\nFROM $C\n");
        assert_eq!(r[0].3, catalogued("busybox:latest"));
        // A build argument wins over a default, and declares an ARG without one.
        let args = [("A".to_string(), "scratch".to_string())];
        let settings = Settings {
            builder: Builder::Classic,
            build_args: &args,
        };
        let j = judge_with("ARG A\nFROM $A\n", &c, &settings).unwrap();
        assert_eq!(j.uses()[0].target, Target::Scratch);
    }

    #[test]
    fn stage_names_follow_docker() {
        for bad in ["1st", "a$b", "scratch", "a/b", "\"x\""] {
            let text = format!("FROM busybox AS {bad}\nFROM busybox\n");
            let r = judge(&text, &catalogue()).unwrap_err();
            assert_eq!(r.reasons()[0].cause(), &Cause::StageName, "{bad}");
        }
        assert!(
            judge(
                "FROM busybox AS My-stage_1.x\nFROM my-STAGE_1.x\n",
                &catalogue()
            )
            .is_ok()
        );
    }

    /// `(line, url)` of every download of every `ADD`.
    fn all_downloads(text: &str) -> Vec<(u32, String)> {
        parse(text, Builder::Classic)
            .instructions
            .iter()
            .flat_map(|ins| {
                reader::downloads(ins, '\\', usize::MAX)
                    .into_iter()
                    .map(|(u, _)| (ins.text.first_line(), u))
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
        let r = judge(text, &catalogue()).unwrap_err();
        assert_eq!(r.kind(), RefusalKind::Download);
        assert_eq!(
            r.to_string(),
            "ADD https://example.com/a.tgz (Dockerfile line 2): nothing can be downloaded onboard"
        );
    }

    /// The builder removes quotes and escapes before it asks whether a source is a URL.
    #[test]
    fn add_sources_are_judged_without_quotes_and_escapes() {
        for text in [
            "FROM busybox\nADD http:'//'127.0.0.1:9/x /x\n",
            "FROM busybox\nADD http:/\\/127.0.0.1:9/x /x\n",
            "FROM busybox\nADD h\\ttp:\\/\\/x /x\n",
            "FROM busybox\nADD \"http:\"//x /x\n",
            "FROM busybox\nADD [\"http:'//'x\", \"/x\"]\n",
            "FROM busybox\nADD [\"http:\\\\/\\\\/x\", \"/x\"]\n",
            "FROM busybox\nADD 'a http:'//x' b' /x\n",
            "# escape=`\nFROM busybox\nADD http:/`/x /x\n",
            "FROM busybox\nADD GIT@github.com:a/b /x\n",
            "FROM busybox\nADD http:$S//x /x\n",
        ] {
            let r = judge(text, &catalogue()).unwrap_err();
            assert_eq!(r.kind(), RefusalKind::Download, "{text:?}: {r}");
            assert!(matches!(r.reasons()[0].cause(), Cause::Download { .. }));
        }
        for text in [
            "FROM busybox\nADD 'local file.txt' /x\n",
            "FROM busybox\nADD [\"a b.tgz\", \"/x/\"]\n",
            "FROM busybox\nADD a\\:b /x\n",
        ] {
            assert!(judge(text, &catalogue()).is_ok(), "{text:?}");
        }
    }

    /// A trigger runs in a later build, from another stage of this Dockerfile (`FROM a`) or
    /// another Dockerfile: it is judged as that build would read it.
    #[test]
    fn onbuild_triggers_are_judged() {
        let cases = [
            (
                "ONBUILD COPY --from=tenants/bob/x:1 / /stolen",
                Cause::TriggerFrom,
            ),
            (
                "ONBUILD COPY --fr\"\"om=tenants/bob/x:1 / /stolen",
                Cause::Problem(ProblemKind::Ambiguous),
            ),
            (
                "ONBUILD ADD --from=x / /",
                Cause::Problem(ProblemKind::UnknownFlag),
            ),
            (
                "ONBUILD ADD http://x/y /y",
                Cause::Download {
                    source: "http://x/y".into(),
                },
            ),
            (
                "ONBUILD ADD http:'//'x /y",
                Cause::Download {
                    source: "http:'//'x".into(),
                },
            ),
            (
                "ONBUILD ADD $U /y",
                Cause::Download {
                    source: "$U".into(),
                },
            ),
            (
                "ONBUILD ONBUILD RUN x",
                Cause::Problem(ProblemKind::Malformed),
            ),
            (
                "ONBUILD FROM busybox",
                Cause::Problem(ProblemKind::Malformed),
            ),
            ("ONBUILD # escape=`", Cause::Problem(ProblemKind::Malformed)),
            (
                "ONBUILD COPY\x0b--from=x / /",
                Cause::Problem(ProblemKind::Ambiguous),
            ),
        ];
        for (trigger, cause) in cases {
            let text = format!("FROM busybox AS a\n{trigger}\nFROM a\n");
            let r = judge(&text, &catalogue()).unwrap_err();
            let reasons: Vec<_> = r
                .reasons()
                .iter()
                .map(|r| (r.cause().clone(), r.line()))
                .collect();
            assert!(
                reasons.contains(&(cause.clone(), Some(2))),
                "{trigger}: {reasons:?}"
            );
        }
        // A trigger that ends in a backslash would continue into the next one.
        let r = judge(
            "# escape=`\nFROM busybox\nONBUILD RUN echo \\\n",
            &catalogue(),
        )
        .unwrap_err();
        assert_eq!((r.kind(), r.line()), (RefusalKind::Trigger, Some(3)));
        for trigger in [
            "RUN echo hi",
            "COPY . /app",
            "ADD local.tgz /x",
            "USER 65532",
        ] {
            let text = format!("FROM busybox AS a\nONBUILD {trigger}\nFROM a\n");
            assert!(judge(&text, &catalogue()).is_ok(), "{trigger}");
        }
    }

    /// A refusal keeps every reason, in the order the first one is taken from, and the images
    /// the judge could classify.
    #[test]
    fn a_refusal_lists_every_reason() {
        let text = "FROM alpine/git\nFROM busybox AS b\nFROM busybox\nADD http://x /x\n\
                    COPY --from=b /a /a\nCOPY --from=9 /a /a\nRUN x\x0by\n";
        let r = judge(text, &catalogue()).unwrap_err();
        let got: Vec<(RefusalKind, Option<usize>)> =
            r.reasons().iter().map(|r| (r.kind(), r.line())).collect();
        assert_eq!(
            got,
            [
                (RefusalKind::Malformed, Some(7)),
                (RefusalKind::Download, Some(4)),
                (RefusalKind::NotOnboard, Some(1)),
                (RefusalKind::NotOnboard, Some(6)),
            ]
        );
        assert_eq!(r.line(), Some(7));
        let busybox = Target::Catalogue("busybox:latest".into());
        let targets: Vec<&Target> = r.uses().iter().map(|u| &u.target).collect();
        assert_eq!(targets, [&busybox, &busybox, &Target::Stage(1)]);
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
                let _ = j.rewrite(&alice());
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
