//! The entry points and the analysis: walks the parsed Dockerfile stage by stage, keeping the
//! ARG/ENV scope, each stage's base and the files it receives, and calls the rules.

use std::path::Path;
use std::time::Duration;

use dockerfile::{ArgSite, Args, Dockerfile, Instruction, Kind, ProblemKind, Vars, expand};

use crate::catalogue::System;
use crate::context::{ContextSource, DirContext, Index};
use crate::diagnostic::{Diagnostic, Position, Severity};
// The report types, where `rules/archive.rs` finds them.
pub(crate) use crate::report::{ArchiveImage, BinaryFacts, Facts, LayerFacts, Report, StageFacts};
use crate::shell::Hints;

/// Where the Dockerfile is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildSite {
    /// Onboard, air-gapped, from the catalogue only (`docker.build` task): every rule applies.
    Onboard,
    /// On the ground, then uplinked as a `docker save` archive: network, catalogue and builder
    /// rules do not apply; the final stage's binaries are still checked against the system.
    Ground,
}

/// How to lint. No `Default`: callers say what they mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Onboard or ground build.
    pub site: BuildSite,
    /// `--build-arg` values.
    pub build_args: Vec<(String, String)>,
    /// Images the tenant already has onboard (loaded or built earlier), usable in FROM and
    /// `COPY --from` besides the catalogue.
    pub tenant_images: Vec<String>,
}

impl Options {
    /// An onboard build with no build args and no tenant images.
    pub fn onboard() -> Options {
        Options {
            site: BuildSite::Onboard,
            build_args: Vec::new(),
            tenant_images: Vec::new(),
        }
    }
}

/// Turns bytes to uplink into an estimated duration.
#[derive(Clone, Copy)]
pub enum Eta<'a> {
    /// No estimate.
    None,
    /// A fixed goodput.
    Rate {
        /// Bytes per second delivered.
        bytes_per_second: f64,
    },
    /// The uplink planner (passes, link budget, queue).
    Planner(&'a dyn Fn(u64) -> Option<Duration>),
}

impl std::fmt::Debug for Eta<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Eta::None => f.write_str("Eta::None"),
            Eta::Rate { bytes_per_second } => write!(f, "Eta::Rate({bytes_per_second})"),
            Eta::Planner(_) => f.write_str("Eta::Planner(..)"),
        }
    }
}

impl Eta<'_> {
    pub(crate) fn estimate(&self, bytes: u64) -> Option<Duration> {
        match self {
            Eta::None => None,
            Eta::Rate { bytes_per_second }
                if *bytes_per_second > 0.0 && bytes_per_second.is_finite() =>
            {
                Duration::try_from_secs_f64(bytes as f64 / bytes_per_second).ok()
            }
            Eta::Rate { .. } => None,
            Eta::Planner(f) => f(bytes),
        }
    }
}

/// How to lint an archive.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveOptions<'a> {
    /// Layer diff_ids known to be onboard besides the catalogue's (e.g. the tenant's images).
    pub known_layers: &'a [String],
    /// Bytes → time.
    pub eta: Eta<'a>,
}

/// Lints a build context on disk. `dockerfile` is a path inside `dir` (relative to it, or
/// absolute); a Dockerfile outside the context (`docker build -f ../Dockerfile dir`) is read from
/// where it is.
pub fn lint_context(dir: &Path, dockerfile: &Path, system: &System, options: &Options) -> Report {
    let source = DirContext::new(dir);
    let inside = if dockerfile.is_absolute() {
        dockerfile.strip_prefix(dir).ok().map(Path::to_path_buf)
    } else {
        Some(dockerfile.to_path_buf())
    };
    if let Some(rel) = inside {
        let rel = rel.to_string_lossy().trim_start_matches("./").to_string();
        if dir.join(&rel).is_file() || !dockerfile.is_file() {
            return lint_with(&source, &rel, None, system, options);
        }
    }
    let name = dockerfile.to_string_lossy().into_owned();
    match std::fs::read(dockerfile) {
        Ok(bytes) => lint_with(&source, &name, Some(bytes), system, options),
        Err(e) => unreadable(&name, format!("cannot read `{name}`: {e}")),
    }
}

/// Lints a build context from any source (e.g. the ground's blob store). `dockerfile` is the
/// Dockerfile's path inside the context.
pub fn lint_source(
    source: &dyn ContextSource,
    dockerfile: &str,
    system: &System,
    options: &Options,
) -> Report {
    lint_with(source, dockerfile, None, system, options)
}

fn unreadable(file: &str, message: String) -> Report {
    Report::finish(
        vec![Diagnostic {
            code: "OD000",
            severity: Severity::Error,
            file: file.to_string(),
            line: 0,
            column: 0,
            end: None,
            message,
            help: Some(
                "upload the Dockerfile with the files it copies, and name it in the build".into(),
            ),
        }],
        Facts::default(),
        Vec::new(),
    )
}

/// `text` is the Dockerfile when it does not come from the context.
fn lint_with(
    source: &dyn ContextSource,
    dockerfile: &str,
    text: Option<Vec<u8>>,
    system: &System,
    options: &Options,
) -> Report {
    let entries = match source.entries() {
        Ok(e) => e,
        Err(e) => return unreadable(dockerfile, format!("cannot read the build context: {e}")),
    };
    let text = match text {
        Some(t) => t,
        // One byte past the limit, so that the parser reports a Dockerfile that is too large.
        None => match read_small(
            source,
            dockerfile,
            &entries,
            dockerfile::MAX_DOCKERFILE_BYTES as u64 + 1,
        ) {
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                return unreadable(dockerfile, format!("cannot read `{dockerfile}`: {e}"));
            }
            None => {
                return unreadable(
                    dockerfile,
                    format!("`{dockerfile}` is not in the build context"),
                );
            }
        },
    };
    let invalid = first_invalid_utf8(&text);
    let text = String::from_utf8_lossy(&text).into_owned();
    let ignore = read_small(source, ".dockerignore", &entries, 1 << 20)
        .and_then(Result::ok)
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let index = Index::new(entries, ignore.as_deref(), dockerfile);
    let hints = hints(source, &index);
    let report = analyse(
        &text,
        dockerfile,
        system,
        options,
        Some((source, &index)),
        hints,
    );
    match invalid {
        None => report,
        Some(at) => {
            // The flight agent reads the Dockerfile as UTF-8, and refuses it otherwise.
            let line = text.as_bytes()[..at.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u32
                + 1;
            let mut diagnostics = report.diagnostics;
            diagnostics.push(Diagnostic {
                code: "OD000",
                severity: Severity::Error,
                file: dockerfile.to_string(),
                line: 0,
                column: 0,
                end: None,
                message: format!("`{dockerfile}` is not UTF-8 text (line {line}), and the flight agent reads it as UTF-8"),
                help: Some("save the Dockerfile as UTF-8".into()),
            });
            Report::finish(diagnostics, report.facts, report.sources)
        }
    }
}

/// The byte offset of the first invalid UTF-8 sequence, ignoring one cut short at the end (the
/// Dockerfile is read one byte past the size limit).
fn first_invalid_utf8(bytes: &[u8]) -> Option<usize> {
    match std::str::from_utf8(bytes) {
        Ok(_) => None,
        Err(e) if e.error_len().is_none() && bytes.len() > dockerfile::MAX_DOCKERFILE_BYTES => None,
        Err(e) => Some(e.valid_up_to()),
    }
}

/// Lints Dockerfile text alone: no context, so source and binary rules are skipped.
pub fn lint_dockerfile_text(text: &str, file: &str, system: &System, options: &Options) -> Report {
    analyse(text, file, system, options, None, Hints::default())
}

/// Lints one file on its own (an uploaded binary or script) as if copied into `base` (a
/// catalogue name; unknown names only get the machine check). The file name is `name`.
pub fn lint_binary(name: &str, data: &[u8], system: &System, base: &str) -> Report {
    use crate::rules::binaries::{Provided, check_elf, check_script};
    let catalogue = system.base(base);
    let provided = Provided {
        base: catalogue,
        label: format!("`{}`", catalogue.map_or(base, |b| b.name.as_str())),
        known: catalogue.is_some() || base == "scratch",
        names: Default::default(),
        paths: Default::default(),
    };
    let mut findings = Vec::new();
    let mut facts = Facts::default();
    if crate::elf::is_elf(data) {
        match crate::elf::parse(&data) {
            Ok(info) => {
                findings = check_elf(&info, name, &system.platform, &system.name, &provided);
                facts.binaries.push(BinaryFacts {
                    context_path: name.to_string(),
                    image_path: String::new(),
                    arch: crate::elf::machine_arch(info.machine, info.class64).to_string(),
                    is_static: info.is_static(),
                    interpreter: info.interpreter.clone(),
                    needed: info.needed.clone(),
                    glibc: crate::elf::max_glibc(&info).map(|g| g.0),
                });
            }
            Err(e) => findings.push(crate::rules::binaries::Finding {
                code: "OD506",
                message: format!(
                    "`{name}` starts like an ELF binary but cannot be read: {}",
                    e.0
                ),
                help: "the upload may be truncated or corrupt: upload the file again".into(),
            }),
        }
    } else if let Some((interp, args)) = crate::elf::shebang(&data[..data.len().min(256)]) {
        findings.extend(check_script(&interp, &args, name, &provided));
    }
    let diagnostics = findings
        .into_iter()
        .map(|f| Diagnostic {
            code: f.code,
            severity: crate::rules::rule_info(f.code).map_or(Severity::Error, |r| r.severity),
            file: name.to_string(),
            line: 0,
            column: 0,
            end: None,
            message: f.message,
            help: Some(f.help),
        })
        .collect();
    Report::finish(diagnostics, facts, Vec::new())
}

fn read_small(
    source: &dyn ContextSource,
    path: &str,
    entries: &[crate::context::Entry],
    max: u64,
) -> Option<std::io::Result<Vec<u8>>> {
    let e = entries
        .iter()
        .find(|e| e.path == path && e.kind != crate::context::EntryKind::Dir)?;
    let mut buf = vec![0; e.size.min(max) as usize];
    Some(source.read_at(path, 0, &mut buf).map(|n| {
        buf.truncate(n);
        buf
    }))
}

/// Looks at `Cargo.toml`, `go.sum` and vendoring to know whether builds would fetch.
fn hints(source: &dyn ContextSource, index: &Index) -> Hints {
    let mut h = Hints::default();
    let mut cargo_vendored = false;
    let mut read = 0;
    for e in index.sent() {
        let name = e.path.rsplit('/').next().unwrap_or(&e.path);
        let dir = e.path.rsplit_once('/').map_or("", |(d, _)| d);
        match name {
            "Cargo.toml" if read < 200 && e.size < (1 << 20) => {
                read += 1;
                let mut buf = vec![0; e.size as usize];
                if let Ok(n) = source.read_at(&e.path, 0, &mut buf) {
                    buf.truncate(n);
                    if cargo_has_registry_deps(&String::from_utf8_lossy(&buf)) {
                        h.cargo_fetches = true;
                    }
                }
            }
            "config.toml" | "config" if dir.ends_with(".cargo") && e.size < (1 << 20) => {
                let mut buf = vec![0; e.size as usize];
                if let Ok(n) = source.read_at(&e.path, 0, &mut buf) {
                    buf.truncate(n);
                    let t = String::from_utf8_lossy(&buf);
                    if t.contains("replace-with") || t.contains("vendored-sources") {
                        cargo_vendored = true;
                    }
                }
            }
            "go.sum" if e.size > 0 => {
                let vendored = index.get(&format!(
                    "{}vendor/modules.txt",
                    if dir.is_empty() {
                        String::new()
                    } else {
                        format!("{dir}/")
                    }
                ));
                if vendored.is_none_or(|(_, ignored)| ignored) {
                    h.go_fetches = true;
                }
            }
            _ => {}
        }
    }
    if cargo_vendored {
        h.cargo_fetches = false;
    }
    h
}

/// Does a Cargo.toml list a dependency that is not a `path` dependency?
fn cargo_has_registry_deps(toml: &str) -> bool {
    let mut in_deps = false;
    for line in toml.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            let section = l.trim_matches(['[', ']', ' ']);
            in_deps = section.ends_with("dependencies") && !section.contains("dependencies.");
            if section.contains("dependencies.") {
                // `[dependencies.foo]` table: a registry dependency unless it has a path.
                in_deps = false;
                if !toml
                    .split(l)
                    .nth(1)
                    .unwrap_or("")
                    .split("\n[")
                    .next()
                    .unwrap_or("")
                    .contains("path")
                {
                    return true;
                }
            }
            continue;
        }
        if in_deps
            && l.contains('=')
            && !l.starts_with('#')
            && !(l.contains("path") && !l.contains("version") && !l.contains("git"))
        {
            return true;
        }
    }
    false
}

/// What a stage's base is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Root {
    Scratch,
    /// Index into the system's catalogue.
    Catalogue(usize),
    Tenant,
    Unknown,
}

/// A file of the context placed into a stage.
#[derive(Debug, Clone)]
pub(crate) struct Placed {
    pub(crate) image_path: String,
    pub(crate) ctx_path: String,
    pub(crate) size: u64,
    /// The instruction that put it into this stage (a COPY from the context or `--from`).
    pub(crate) ins: usize,
}

/// A build stage and what is known of its filesystem.
#[derive(Debug, Clone)]
pub(crate) struct Stage {
    pub(crate) name: Option<String>,
    pub(crate) from_ins: usize,
    pub(crate) root: Root,
    pub(crate) args: Vars,
    pub(crate) env: Vars,
    pub(crate) workdir: String,
    pub(crate) user: Option<(String, usize)>,
    pub(crate) entrypoint: Option<usize>,
    pub(crate) cmd: Option<usize>,
    pub(crate) placed: Vec<Placed>,
    /// Files of unknown origin arrived (`COPY --from` an image, `ADD` of an archive or URL,
    /// `RUN`): libraries and interpreters may exist beyond the base's.
    pub(crate) opaque: bool,
    /// Basenames of files copied in from other stages or images.
    pub(crate) copied_names: Vec<String>,
    /// A `SHELL` instruction changed the shell.
    pub(crate) custom_shell: bool,
}

impl Stage {
    pub(crate) fn vars(&self) -> Vars {
        let mut v = self.args.clone();
        v.extend(self.env.clone());
        v
    }
}

/// The analysis state shared by the rules.
pub(crate) struct Cx<'a> {
    pub(crate) file: &'a str,
    pub(crate) system: &'a System,
    pub(crate) options: &'a Options,
    pub(crate) df: &'a Dockerfile,
    pub(crate) context: Option<(&'a dyn ContextSource, &'a Index)>,
    pub(crate) hints: Hints,
    pub(crate) diagnostics: Vec<Diagnostic>,
    pub(crate) stages: Vec<Stage>,
    /// The first stage of each name (ground builds look stages up by name; onboard, the judge
    /// does).
    pub(crate) stage_names: std::collections::HashMap<String, usize>,
    pub(crate) global_args: Vars,
    pub(crate) facts: Facts,
    /// Onboard builds: the flight agent's judge's verdict, which decides the onboard refusals.
    pub(crate) judgement: Option<crate::rules::judge::Judgement>,
    /// What preflight's own expansions may still write (`dockerfile::MAX_EXPANSION_TOTAL`).
    pub(crate) budget: usize,
}

impl Cx<'_> {
    /// Reports at a byte range of an instruction's logical line.
    pub(crate) fn at(
        &mut self,
        code: &'static str,
        ins: &Instruction,
        range: (usize, usize),
        message: String,
        help: Option<String>,
    ) {
        let s = ins.text.pos(range.0);
        let e = ins.text.pos(range.1);
        self.push(code, s, Some(e).filter(|e| *e > s), message, help);
    }

    /// Reports at a physical position.
    pub(crate) fn push(
        &mut self,
        code: &'static str,
        start: Position,
        end: Option<Position>,
        message: String,
        help: Option<String>,
    ) {
        let severity = crate::rules::rule_info(code).map_or(Severity::Error, |r| r.severity);
        self.diagnostics.push(Diagnostic {
            code,
            severity,
            file: self.file.to_string(),
            line: start.line,
            column: start.column,
            end,
            message,
            help,
        });
    }

    /// The whole instruction's first line.
    pub(crate) fn whole(
        &mut self,
        code: &'static str,
        ins: &Instruction,
        message: String,
        help: Option<String>,
    ) {
        let end = ins
            .text
            .text
            .lines()
            .next()
            .map_or(0, |l| l.trim_end().len());
        self.at(code, ins, (0, end), message, help);
    }

    pub(crate) fn onboard(&self) -> bool {
        self.options.site == BuildSite::Onboard
    }

    /// Predefined platform ARGs, when the builder defines them.
    fn platform_args(&self) -> Vars {
        let buildkit =
            self.system.builder == crate::catalogue::Builder::BuildKit || !self.onboard();
        let mut v = Vars::new();
        if !buildkit {
            return v;
        }
        let target = self.system.platform.clone();
        let build = if self.onboard() {
            target.clone()
        } else {
            crate::catalogue::host_platform().to_string()
        };
        for (prefix, p) in [("TARGET", &target), ("BUILD", &build)] {
            let mut parts = p.split('/');
            v.insert(format!("{prefix}PLATFORM"), p.clone());
            v.insert(
                format!("{prefix}OS"),
                parts.next().unwrap_or("").to_string(),
            );
            v.insert(
                format!("{prefix}ARCH"),
                parts.next().unwrap_or("").to_string(),
            );
            v.insert(
                format!("{prefix}VARIANT"),
                parts.next().unwrap_or("").to_string(),
            );
        }
        v
    }
}

fn analyse(
    text: &str,
    file: &str,
    system: &System,
    options: &Options,
    context: Option<(&dyn ContextSource, &Index)>,
    hints: Hints,
) -> Report {
    let builder = if system.builder == crate::catalogue::Builder::BuildKit
        || options.site == BuildSite::Ground
    {
        dockerfile::Builder::BuildKit
    } else {
        dockerfile::Builder::Classic
    };
    let df = dockerfile::parse(text, builder);
    let mut cx = Cx {
        file,
        system,
        options,
        df: &df,
        context,
        hints,
        diagnostics: Vec::new(),
        stages: Vec::new(),
        stage_names: Default::default(),
        global_args: Vars::new(),
        facts: Facts::default(),
        judgement: None,
        budget: dockerfile::MAX_EXPANSION_TOTAL,
    };
    // Onboard, the flight agent's judge decides what it refuses: its reasons are the errors of
    // the onboard refusal codes (the lexer's errors among them), and its reading of each image
    // is the one the stages below are built from.
    if cx.onboard() {
        let judgement = crate::rules::judge::judge(text, system, options, builder);
        crate::rules::judge::report(&mut cx, &judgement);
        cx.judgement = Some(judgement);
    }
    for p in &df.problems {
        if cx.onboard() && p.kind.is_error() {
            continue;
        }
        let code = match p.kind {
            // Only the flight agent refuses what the daemon could read differently.
            ProblemKind::Ambiguous if !cx.onboard() => continue,
            kind => crate::rules::judge::problem_code(kind),
        };
        cx.push(code, p.start, p.end, p.message.clone(), p.help.clone());
    }
    if let Some((_, index)) = context {
        let (n, all, sent) = index.sizes();
        cx.facts.context_files = n;
        cx.facts.context_bytes = all;
        cx.facts.sent_bytes = sent;
    }
    cx.global_args = cx.platform_args();
    let mut reported_no_stage = false;
    for (idx, ins) in df.instructions.iter().enumerate() {
        crate::rules::base::check_builder_features(&mut cx, ins);
        if cx.stages.is_empty() && !matches!(ins.kind, Kind::From | Kind::Arg) {
            // Onboard, the judge reports it.
            if !reported_no_stage && !cx.onboard() {
                reported_no_stage = true;
                cx.whole(
                    "OD005",
                    ins,
                    format!("{} before the first FROM", ins.keyword.to_ascii_uppercase()),
                    Some("only ARG may come before FROM; start the build with `FROM <onboard image>`".into()),
                );
            }
            continue;
        }
        match ins.kind {
            Kind::From => crate::rules::base::check_from(&mut cx, idx, ins),
            Kind::Arg => declare_args(&mut cx, ins),
            Kind::Env => {
                let vars = cx.stages.last().map(Stage::vars).unwrap_or_default();
                let pairs = env_pairs(ins, &vars, df.escape);
                if let Some(stage) = cx.stages.last_mut() {
                    stage.env.extend(pairs);
                }
            }
            Kind::Workdir => {
                if let (Some(stage), Args::Shell { text, .. }) = (cx.stages.last_mut(), &ins.args) {
                    let dir = expand(text, &stage.vars(), df.escape);
                    stage.workdir = join_image_path(&stage.workdir, &dir);
                }
            }
            Kind::User => {
                if let (Some(stage), Args::Shell { text, .. }) = (cx.stages.last_mut(), &ins.args) {
                    let user = expand(text, &stage.vars(), df.escape);
                    stage.user = Some((user, idx));
                }
            }
            Kind::Cmd => {
                if let Some(stage) = cx.stages.last_mut() {
                    stage.cmd = Some(idx);
                }
            }
            Kind::Entrypoint => {
                if let Some(stage) = cx.stages.last_mut() {
                    stage.entrypoint = Some(idx);
                    // Like Docker, a new ENTRYPOINT resets an inherited CMD.
                    if stage.cmd.is_some_and(|c| c < stage.from_ins) {
                        stage.cmd = None;
                    }
                }
            }
            Kind::Shell => {
                if let Some(stage) = cx.stages.last_mut() {
                    stage.custom_shell = true;
                }
            }
            Kind::Run => crate::rules::run::check_run(&mut cx, ins),
            Kind::Copy | Kind::Add => crate::rules::files::check_copy(&mut cx, idx, ins),
            _ => {}
        }
    }
    if df.instructions.iter().all(|i| i.kind != Kind::From) && !reported_no_stage && !cx.onboard() {
        cx.push(
            "OD005",
            Position { line: 1, column: 1 },
            None,
            "the Dockerfile has no FROM instruction".into(),
            Some("start the build with `FROM <onboard image>`".into()),
        );
    }
    if !cx.stages.is_empty() {
        crate::rules::runtime::check_final_stage(&mut cx);
        crate::rules::binaries::check_final_stage(&mut cx);
    }
    let diagnostics = std::mem::take(&mut cx.diagnostics);
    let facts = std::mem::take(&mut cx.facts);
    Report::finish(
        diagnostics,
        facts,
        vec![(file.to_string(), text.to_string())],
    )
}

/// `ARG`, by Docker's scope rules (`dockerfile::declare_args`, the judge's own). Onboard, the
/// judge reports the expansions it refuses.
fn declare_args(cx: &mut Cx<'_>, ins: &Instruction) {
    let Args::Shell { words, .. } = &ins.args else {
        return;
    };
    let escape = cx.df.escape;
    let options = cx.options;
    let build_arg = |name: &str| {
        options
            .build_args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    match cx.stages.last_mut() {
        None => {
            dockerfile::declare_args(
                &mut cx.global_args,
                words,
                escape,
                ArgSite::Global,
                &build_arg,
                &mut cx.budget,
            );
        }
        Some(stage) => {
            let env = stage.vars();
            let site = ArgSite::Stage {
                globals: &cx.global_args,
                env: &env,
            };
            dockerfile::declare_args(
                &mut stage.args,
                words,
                escape,
                site,
                &build_arg,
                &mut cx.budget,
            );
        }
    }
}

/// The help of an expansion the flight agent refuses.
pub(crate) const STRICT_HELP: &str = "onboard, ARG defaults and FROM may use only `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME:+word}`, `${NAME-word}` and `${NAME+word}`";

/// `ENV a=b c="d e"` or `ENV a b c`.
fn env_pairs(ins: &Instruction, vars: &Vars, escape: char) -> Vec<(String, String)> {
    let Args::Shell { words, text, .. } = &ins.args else {
        return Vec::new();
    };
    if words.first().is_some_and(|w| w.text.contains('=')) {
        let mut scope = vars.clone();
        let mut out = Vec::new();
        for w in words {
            if let Some((k, v)) = w.text.split_once('=') {
                let value = expand(v, &scope, escape);
                scope.insert(k.to_string(), value.clone());
                out.push((k.to_string(), value));
            }
        }
        out
    } else {
        let Some(first) = words.first() else {
            return Vec::new();
        };
        let rest = text[first.text.len()..].trim();
        vec![(first.text.clone(), expand(rest, vars, escape))]
    }
}

/// Joins an image path to a working directory (`/` separators, cleaned).
pub(crate) fn join_image_path(workdir: &str, path: &str) -> String {
    if path.starts_with('/') {
        crate::context::clean(path)
    } else {
        crate::context::clean(&format!(
            "{}/{}",
            if workdir.is_empty() { "/" } else { workdir },
            path
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_dependency_detection() {
        assert!(cargo_has_registry_deps(
            "[package]\nname='x'\n[dependencies]\nserde = \"1\"\n"
        ));
        assert!(!cargo_has_registry_deps(
            "[package]\nname='x'\n[dependencies]\nlocal = { path = \"../l\" }\n"
        ));
        assert!(!cargo_has_registry_deps("[package]\nname='x'\n"));
        assert!(cargo_has_registry_deps(
            "[dependencies.serde]\nversion = \"1\"\n"
        ));
    }

    #[test]
    fn eta_from_a_rate_or_a_planner() {
        assert_eq!(
            Eta::Rate {
                bytes_per_second: 1000.0
            }
            .estimate(5000),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            Eta::Rate {
                bytes_per_second: 0.0
            }
            .estimate(5000),
            None
        );
        let planner = |b: u64| Some(Duration::from_secs(b / 10));
        assert_eq!(
            Eta::Planner(&planner).estimate(100),
            Some(Duration::from_secs(10))
        );
        assert_eq!(Eta::None.estimate(1), None);
    }

    fn codes(r: &Report) -> Vec<(&'static str, u32)> {
        r.diagnostics.iter().map(|d| (d.code, d.line)).collect()
    }

    #[test]
    fn lint_binary_checks_one_file() {
        let flight = System::flight("sat1");
        let x86 = crate::elf::tests::tiny_elf(62);
        let arm = crate::elf::tests::tiny_elf(183);
        let cc = "gcr.io/distroless/cc-debian12";
        assert_eq!(
            codes(&lint_binary("app", &x86, &flight, cc)),
            [("OD501", 0)]
        );
        assert_eq!(codes(&lint_binary("app", &arm, &flight, cc)), []);
        let on_static = lint_binary("app", &arm, &flight, "gcr.io/distroless/static-debian12");
        assert_eq!(codes(&on_static), [("OD502", 0)]);
        assert_eq!(
            codes(&lint_binary("app", &arm[..80], &flight, cc)),
            [("OD506", 0)]
        );
        let script = lint_binary("run", b"#!/usr/bin/env bash\necho", &flight, "busybox");
        assert_eq!(codes(&script), [("OD505", 0)]);
        assert_eq!(
            codes(&lint_binary("run", b"#!/bin/sh\necho", &flight, "busybox")),
            []
        );
    }

    #[test]
    fn arg_and_env_scopes() {
        let mut ctx = crate::MemContext::new();
        ctx.add("a1.txt", b"x");
        ctx.add("Dockerfile", b"ARG V=1\nFROM busybox\nARG V\nENV DIR=/x${V}\nCOPY a${V}.txt $DIR/\nCOPY a${NOPE}.txt /y\nUSER 1\n");
        let r = lint_source(
            &ctx,
            "Dockerfile",
            &System::flight("sat1"),
            &Options::onboard(),
        );
        assert_eq!(codes(&r), [("OD302", 6)], "{}", r.render());
        // A stage ARG without a default does not see a global one that was not re-declared.
        ctx.add(
            "Dockerfile",
            b"ARG V=1\nFROM busybox\nCOPY a${V}.txt /\nUSER 1\n",
        );
        let r = lint_source(
            &ctx,
            "Dockerfile",
            &System::flight("sat1"),
            &Options::onboard(),
        );
        assert_eq!(codes(&r), [("OD302", 3)], "{}", r.render());
        // A global ARG re-declared without a default is unset (Docker's `AddMetaArg(key,
        // nil)`), so a stage's `ARG V` finds no global value; in a stage, it takes the global.
        ctx.add(
            "Dockerfile",
            b"ARG V=1\nARG V\nFROM busybox\nARG V\nCOPY a${V}.txt /\nUSER 1\n",
        );
        let r = lint_source(
            &ctx,
            "Dockerfile",
            &System::flight("sat1"),
            &Options::onboard(),
        );
        assert_eq!(codes(&r), [("OD302", 5)], "{}", r.render());
        ctx.add(
            "Dockerfile",
            b"ARG V=1\nFROM busybox\nARG V=2\nARG V\nCOPY a${V}.txt /\nUSER 1\n",
        );
        let r = lint_source(
            &ctx,
            "Dockerfile",
            &System::flight("sat1"),
            &Options::onboard(),
        );
        assert_eq!(codes(&r), [], "{}", r.render());
        // Build args override defaults.
        let opts = Options {
            build_args: vec![("V".into(), "1".into())],
            ..Options::onboard()
        };
        ctx.add(
            "Dockerfile",
            b"FROM busybox\nARG V=2\nCOPY a${V}.txt /\nUSER 1\n",
        );
        let r = lint_source(&ctx, "Dockerfile", &System::flight("sat1"), &opts);
        assert_eq!(codes(&r), [], "{}", r.render());
    }

    #[test]
    fn dockerfile_outside_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        std::fs::write(ctx.join("a.txt"), "x").unwrap();
        let df = dir.path().join("build.Dockerfile");
        std::fs::write(&df, "FROM busybox\nCOPY a.txt b.txt /x/\nUSER 1\n").unwrap();
        let r = lint_context(&ctx, &df, &System::flight("sat1"), &Options::onboard());
        assert_eq!(codes(&r), [("OD302", 2)], "{}", r.render());
        assert_eq!(r.diagnostics[0].file, df.to_string_lossy());
        let r = lint_context(
            &ctx,
            Path::new("Dockerfile"),
            &System::flight("sat1"),
            &Options::onboard(),
        );
        assert_eq!(codes(&r), [("OD000", 0)]);
    }

    #[test]
    fn a_dockerfile_that_is_not_utf8_is_refused() {
        let mut ctx = crate::MemContext::new();
        ctx.add("Dockerfile", b"FROM busybox\nUSER 1\n# caf\xe9\n");
        let r = lint_source(
            &ctx,
            "Dockerfile",
            &System::flight("sat1"),
            &Options::onboard(),
        );
        assert_eq!(codes(&r), [("OD000", 0)], "{}", r.render());
        assert!(
            r.diagnostics[0].message.contains("line 3"),
            "{}",
            r.render()
        );
        // Cut at the size limit in the middle of a character: only the size is reported.
        let mut big = b"FROM busybox\nUSER 1\n#".to_vec();
        big.resize(dockerfile::MAX_DOCKERFILE_BYTES, b'x');
        big.extend("é\n".as_bytes());
        ctx.add("Dockerfile", &big);
        let r = lint_source(
            &ctx,
            "Dockerfile",
            &System::flight("sat1"),
            &Options::onboard(),
        );
        assert_eq!(codes(&r), [("OD008", 1)], "{}", r.render());
    }

    #[test]
    fn image_paths() {
        assert_eq!(join_image_path("/", "app"), "/app");
        assert_eq!(join_image_path("/srv", "../bin/x"), "/bin/x");
        assert_eq!(join_image_path("/srv", "/x/"), "/x");
    }
}
