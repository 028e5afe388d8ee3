//! How the judge reads a Dockerfile: one pass over the instructions, collecting each image the
//! build names with its classification, and every reason to refuse it, by phase (lexer
//! problems; structure and expansions; downloads and triggers; images not onboard).

use std::collections::{HashMap, HashSet};

use super::MAX_REASONS;
use super::{Cause, ImageUse, Reason, RefusalKind, Settings, Site, Target, classify};
use crate::words::{ArgSite, Vars, arg_word, declare_args, expand, expand_strict_within};
use crate::{
    Args, Dockerfile, Instruction, Kind, MAX_EXPANSION_TOTAL, Position, Problem, ProblemKind, parse,
};

/// The sources of an `ADD` that could download, each with its byte range in the logical line:
/// URLs, also once quotes and escapes are removed (`http:'//'x`, `http:/\/x`: the builder
/// removes them before it looks), and words holding a variable (the builder expands it, so it
/// could name a URL). Docker splits the arguments at whitespace, not at quotes, and reads a JSON
/// form it cannot decode as such words, so those words are judged too (when the words this
/// parser reads hold no download). At most `limit` are returned. The legacy builder fetches URLs from the
/// daemon itself, outside the build's network sandbox, so they are refused onboard.
pub(super) fn downloads(
    ins: &Instruction,
    escape: char,
    limit: usize,
) -> Vec<(String, (usize, usize))> {
    if ins.kind != Kind::Add {
        return Vec::new();
    }
    let no_vars = Vars::new();
    let could_download = |w: &str| {
        w.contains('$')
            || is_remote(w)
            || (w.contains(['\'', '"', escape]) && is_remote(&expand(w, &no_vars, escape)))
    };
    let mut seen = HashSet::new();
    let mut keep = |out: &mut Vec<(String, (usize, usize))>, w: &str, range: (usize, usize)| {
        if out.len() < limit && could_download(w) && seen.insert(w.to_string()) {
            out.push((w.to_string(), range));
        }
    };
    let mut out = Vec::new();
    match &ins.args {
        Args::Exec { items, start, end } => {
            for item in items {
                keep(&mut out, item, (*start, *end));
            }
        }
        Args::Shell { words, text, start } => {
            for w in words {
                keep(&mut out, &w.text, (w.start, w.end));
            }
            // A JSON form this parser cannot decode that Go's decoder might (it reads a lone
            // `\ud800` as U+FFFD): its escapes could spell a URL.
            if text.starts_with('[') && text.contains('\\') && !out.iter().any(|o| o.0 == *text) {
                out.push((text.clone(), (*start, start + text.len())));
            }
        }
    }
    // Docker's words are this parser's when no word of its holds a space or a tab.
    let same_words = match &ins.args {
        Args::Shell { words, .. } => words.iter().all(|w| !w.text.contains([' ', '\t'])),
        Args::Exec { .. } => false,
    };
    if !out.is_empty() || same_words {
        return out;
    }
    let start = ins.args.start();
    let rest = ins.text.text.get(start..).unwrap_or("");
    let mut offset = start;
    for w in rest.split([' ', '\t']) {
        if !w.is_empty() {
            keep(&mut out, w, (offset, offset + w.len()));
        }
        offset += w.len() + 1;
    }
    out
}

/// A URL or a git remote, as Docker recognises them (in any case, to be safe).
fn is_remote(w: &str) -> bool {
    w.contains("://") || w.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("git@"))
}

/// Docker's rule for a stage name (`[a-z][a-z0-9-_.]*`, after lower-casing), and not `scratch`,
/// which `FROM scratch` must keep meaning.
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        && name != "scratch"
}

/// An image a build names, before the judge refuses those that cannot exist onboard.
pub(super) struct Found {
    pub(super) instruction: usize,
    pub(super) line: usize,
    pub(super) site: Site,
    pub(super) image: String,
    /// `None`: nothing onboard.
    pub(super) target: Option<Target>,
    pub(super) range: (usize, usize),
}

impl Found {
    /// The use, when the image names something onboard.
    pub(super) fn known(self) -> Option<ImageUse> {
        Some(ImageUse {
            instruction: self.instruction,
            line: self.line,
            site: self.site,
            image: self.image,
            target: self.target?,
            range: self.range,
        })
    }
}

/// What one reading found: every image named, and the reasons by phase.
pub(super) struct Reading {
    pub(super) found: Vec<Found>,
    pub(super) phases: [Vec<Reason>; 4],
}

/// The phases of the reasons, in the order the first reason is taken from.
const PROBLEMS: usize = 0;
pub(super) const STRUCTURE: usize = 1;
const DOWNLOADS: usize = 2;
const IMAGES: usize = 3;

/// Reads a parsed Dockerfile as the judge does.
pub(super) fn read(df: &Dockerfile, catalogue: &[String], settings: &Settings<'_>) -> Reading {
    let mut reader = Reader {
        df,
        catalogue,
        settings,
        found: Vec::new(),
        phases: Default::default(),
        budget: MAX_EXPANSION_TOTAL,
    };
    reader.read();
    Reading {
        found: reader.found,
        phases: reader.phases,
    }
}

/// One reading of a Dockerfile.
struct Reader<'a> {
    df: &'a Dockerfile,
    catalogue: &'a [String],
    settings: &'a Settings<'a>,
    found: Vec<Found>,
    phases: [Vec<Reason>; 4],
    /// Bytes the expansions may still write.
    budget: usize,
}

impl Reader<'_> {
    fn add(&mut self, phase: usize, reason: Reason) {
        if self.phases[phase].len() < MAX_REASONS {
            self.phases[phase].push(reason);
        }
    }

    /// A reason about an instruction, at a byte range of its logical line.
    #[allow(clippy::too_many_arguments)]
    fn at(
        &mut self,
        phase: usize,
        kind: RefusalKind,
        cause: Cause,
        (idx, ins): (usize, &Instruction),
        range: (usize, usize),
        detail: String,
        message: Option<String>,
    ) {
        if self.phases[phase].len() >= MAX_REASONS {
            return;
        }
        let line = ins.text.first_line() as usize;
        let start = ins.text.pos(range.0);
        let end = Some(ins.text.pos(range.1)).filter(|e| *e > start);
        self.add(
            phase,
            Reason {
                kind,
                cause,
                instruction: Some(idx),
                line: Some(line),
                start,
                end,
                message: message.unwrap_or_else(|| format!("Dockerfile line {line}: {detail}")),
                detail,
                help: None,
            },
        );
    }

    fn read(&mut self) {
        let df = self.df;
        let mut problems: Vec<&Problem> =
            df.problems.iter().filter(|p| p.kind.is_error()).collect();
        problems.sort_by_key(|p| p.start);
        for p in problems.into_iter().take(MAX_REASONS) {
            self.add(PROBLEMS, problem_reason(p));
        }
        let Some(first_from) = df.instructions.iter().position(|i| i.kind == Kind::From) else {
            self.add(
                STRUCTURE,
                Reason {
                    kind: RefusalKind::Malformed,
                    cause: Cause::NoFrom,
                    instruction: None,
                    line: None,
                    start: Position { line: 1, column: 1 },
                    end: None,
                    message: "the Dockerfile has no FROM instruction".into(),
                    detail: "the Dockerfile has no FROM instruction".into(),
                    help: None,
                },
            );
            return;
        };

        // Only ARG may come before FROM, and its values are what FROM sees.
        let settings = self.settings;
        let build_arg = |name: &str| {
            settings
                .build_args
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let mut globals = Vars::new();
        let mut before_reported = false;
        for (idx, ins) in df.instructions[..first_from].iter().enumerate() {
            if ins.kind != Kind::Arg {
                if !before_reported {
                    before_reported = true;
                    let kw = ins.keyword.to_ascii_uppercase();
                    let end = ins
                        .text
                        .text
                        .lines()
                        .next()
                        .map_or(0, |l| l.trim_end().len());
                    self.at(
                        STRUCTURE,
                        RefusalKind::Malformed,
                        Cause::BeforeFrom,
                        (idx, ins),
                        (0, end),
                        format!("{kw} before the first FROM: only ARG may come before FROM"),
                        None,
                    );
                }
                continue;
            }
            let Args::Shell { words, .. } = &ins.args else {
                continue;
            };
            let errors = declare_args(
                &mut globals,
                words,
                df.escape,
                ArgSite::Global,
                &build_arg,
                &mut self.budget,
            );
            for (i, e) in errors {
                if self.phases[STRUCTURE].len() >= MAX_REASONS {
                    break;
                }
                let w = &words[i];
                let (name, _) = arg_word(&w.text);
                self.at(
                    STRUCTURE,
                    RefusalKind::Malformed,
                    Cause::Expansion(e.kind()),
                    (idx, ins),
                    (w.start, w.end),
                    format!("ARG {name}: {e}"),
                    None,
                );
            }
        }

        let mut stages = 0usize;
        let mut names: HashMap<String, usize> = HashMap::new();
        for (idx, ins) in df.instructions.iter().enumerate().skip(first_from) {
            match ins.kind {
                Kind::From => {
                    self.from((idx, ins), &globals, &names, stages);
                    if let Args::Shell { words, .. } = &ins.args
                        && let [_, _, name] = words.as_slice()
                    {
                        let lower = name.text.to_ascii_lowercase();
                        if valid_stage_name(&lower) {
                            names.entry(lower).or_insert(stages);
                        } else {
                            self.at(
                                STRUCTURE,
                                RefusalKind::Malformed,
                                Cause::StageName,
                                (idx, ins),
                                (name.start, name.end),
                                format!(
                                    "invalid name for build stage `{}`: a name starts with a letter and holds only letters, digits, `-`, `_` and `.`, and `scratch` is reserved",
                                    name.text
                                ),
                                None,
                            );
                        }
                    }
                    stages += 1;
                }
                Kind::Copy | Kind::Add => {
                    if let Some(flag) = ins.flag("from") {
                        // As written: the flight agent expands no variable in `--from`.
                        let value = flag.value.clone().unwrap_or_default();
                        let current = stages.saturating_sub(1);
                        let target = if let Ok(n) = value.parse::<usize>() {
                            (n < current).then_some(Target::Stage(n))
                        } else if let Some(&i) = names
                            .get(&value.to_ascii_lowercase())
                            .filter(|&&i| i < current)
                        {
                            Some(Target::Stage(i))
                        } else {
                            classify(&value, self.catalogue)
                        };
                        self.found.push(Found {
                            instruction: idx,
                            line: ins.text.first_line() as usize,
                            site: Site::CopyFrom,
                            image: value,
                            target,
                            range: (flag.start, flag.end),
                        });
                    }
                    self.downloads((idx, ins), df.escape, None);
                }
                Kind::Onbuild => self.trigger((idx, ins)),
                _ => {}
            }
        }

        let missing: Vec<(usize, Site, String, (usize, usize))> = self
            .found
            .iter()
            .filter(|f| f.target.is_none())
            .take(MAX_REASONS)
            .map(|f| (f.instruction, f.site, f.image.clone(), f.range))
            .collect();
        for (idx, site, image, range) in missing {
            let ins = &df.instructions[idx];
            let line = ins.text.first_line() as usize;
            let message = not_found(site, &image, line, self.catalogue);
            self.at(
                IMAGES,
                RefusalKind::NotOnboard,
                Cause::NotOnboard {
                    site,
                    image: image.clone(),
                },
                (idx, ins),
                range,
                format!("{image}: not in the onboard catalogue nor one of your images"),
                Some(message),
            );
        }
    }

    /// A `FROM`: its image, as the global ARGs make it, classified.
    fn from(
        &mut self,
        (idx, ins): (usize, &Instruction),
        globals: &Vars,
        names: &HashMap<String, usize>,
        stage: usize,
    ) {
        let Args::Shell { words, .. } = &ins.args else {
            return;
        };
        let Some(written) = words.first() else {
            return;
        };
        let range = (written.start, written.end);
        let image =
            match expand_strict_within(&written.text, globals, self.df.escape, &mut self.budget) {
                Ok(image) => image,
                Err(e) => {
                    self.at(
                        STRUCTURE,
                        RefusalKind::Malformed,
                        Cause::Expansion(e.kind()),
                        (idx, ins),
                        range,
                        format!("FROM {}: {e}", written.text),
                        None,
                    );
                    return;
                }
            };
        if image.is_empty() {
            self.at(
                STRUCTURE,
                RefusalKind::Malformed,
                Cause::EmptyImage,
                (idx, ins),
                range,
                "FROM names an empty image (an ARG without a default?)".into(),
                None,
            );
            return;
        }
        let target = if image == "scratch" {
            Some(Target::Scratch)
        } else if let Some(&i) = names.get(&image.to_ascii_lowercase()) {
            debug_assert!(i < stage);
            Some(Target::Stage(i))
        } else {
            classify(&image, self.catalogue)
        };
        self.found.push(Found {
            instruction: idx,
            line: ins.text.first_line() as usize,
            site: Site::From,
            image,
            target,
            range,
        });
    }

    /// The downloads of an `ADD` (`trigger`: of the `ONBUILD` instruction `idx` whose trigger
    /// `ins` is).
    fn downloads(
        &mut self,
        (idx, ins): (usize, &Instruction),
        escape: char,
        trigger: Option<&Instruction>,
    ) {
        let judged = trigger.unwrap_or(ins);
        let room = MAX_REASONS.saturating_sub(self.phases[DOWNLOADS].len());
        for (source, range) in downloads(judged, escape, room) {
            if self.phases[DOWNLOADS].len() >= MAX_REASONS {
                return;
            }
            let line = ins.text.first_line() as usize;
            let why = if source.contains('$') {
                "a variable in an ADD source could name a URL, and nothing can be downloaded onboard; use COPY"
            } else {
                "nothing can be downloaded onboard"
            };
            let (kind, range, message) = match trigger {
                None => (
                    RefusalKind::Download,
                    range,
                    format!("ADD {source} (Dockerfile line {line}): {why}"),
                ),
                Some(_) => (
                    RefusalKind::Trigger,
                    whole(ins),
                    format!("ONBUILD ADD {source} (Dockerfile line {line}): {why}"),
                ),
            };
            self.at(
                DOWNLOADS,
                kind,
                Cause::Download {
                    source: source.clone(),
                },
                (idx, ins),
                range,
                why.to_string(),
                Some(message),
            );
        }
    }

    /// An `ONBUILD` trigger, read as Docker reads it when a later build runs it: a Dockerfile of
    /// its own, with the default escape character.
    fn trigger(&mut self, (idx, ins): (usize, &Instruction)) {
        if self.phases[DOWNLOADS].len() >= MAX_REASONS {
            // Refused already; reading more triggers can add nothing that is kept.
            return;
        }
        let trigger = ins.after_keyword();
        let line = ins.text.first_line() as usize;
        let range = whole(ins);
        let refuse = |r: &mut Self, cause: Cause, detail: String, help: Option<String>| {
            if r.phases[DOWNLOADS].len() >= MAX_REASONS {
                return;
            }
            let start = ins.text.pos(range.0);
            let end = Some(ins.text.pos(range.1)).filter(|e| *e > start);
            r.add(
                DOWNLOADS,
                Reason {
                    kind: RefusalKind::Trigger,
                    cause,
                    instruction: Some(idx),
                    line: Some(line),
                    start,
                    end,
                    message: format!("Dockerfile line {line}: ONBUILD {detail}"),
                    detail: format!("ONBUILD {detail}"),
                    help,
                },
            );
        };
        if trigger.trim_end_matches([' ', '\t']).ends_with('\\') {
            refuse(
                self,
                Cause::Problem(ProblemKind::Ambiguous),
                "trigger ends in an escape character, which would continue it into the next trigger".into(),
                Some("end the trigger without a backslash".into()),
            );
        }
        let tdf = parse(trigger, self.settings.builder);
        let mut problems = false;
        for p in tdf.problems.iter().filter(|p| p.kind.is_error()) {
            problems = true;
            refuse(
                self,
                Cause::Problem(p.kind),
                format!("trigger: {}", p.message),
                p.help.clone(),
            );
        }
        let [t] = tdf.instructions.as_slice() else {
            if !problems {
                refuse(
                    self,
                    Cause::Problem(ProblemKind::Malformed),
                    "takes exactly one instruction".into(),
                    None,
                );
            }
            return;
        };
        let kw = t.keyword.to_ascii_uppercase();
        if matches!(t.kind, Kind::Onbuild | Kind::From | Kind::Maintainer) {
            refuse(
                self,
                Cause::Problem(ProblemKind::Malformed),
                format!("{kw}: {kw} is not allowed as an ONBUILD trigger"),
                None,
            );
        }
        if matches!(t.kind, Kind::Copy | Kind::Add) && t.flag("from").is_some() {
            refuse(
                self,
                Cause::TriggerFrom,
                format!(
                    "{kw} --from: a trigger that copies from another image runs in every build based on this one, which is not allowed onboard"
                ),
                Some(
                    "copy from a stage in the Dockerfile that uses this image instead".to_string(),
                ),
            );
        }
        self.downloads((idx, ins), '\\', Some(t));
    }
}

/// The range of an instruction's first line.
fn whole(ins: &Instruction) -> (usize, usize) {
    (
        0,
        ins.text
            .text
            .lines()
            .next()
            .map_or(0, |l| l.trim_end().len()),
    )
}

/// A problem of the lexer, as a reason.
fn problem_reason(p: &Problem) -> Reason {
    let line = p.start.line;
    Reason {
        kind: RefusalKind::Malformed,
        cause: Cause::Problem(p.kind),
        instruction: None,
        line: Some(line as usize),
        start: p.start,
        end: p.end,
        message: format!("Dockerfile line {line}: {}", p.message),
        detail: p.message.clone(),
        help: p.help.clone(),
    }
}

/// The message for an image that names nothing onboard.
pub(super) fn not_found(site: Site, image: &str, line: usize, catalogue: &[String]) -> String {
    let site = match site {
        Site::From => "FROM ",
        Site::CopyFrom => "COPY --from=",
    };
    format!(
        "{site}{image} (Dockerfile line {line}): not in the onboard catalogue ({}) nor one of your images; nothing can be pulled onboard",
        catalogue.join(", ")
    )
}
