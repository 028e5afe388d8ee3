//! The syntax a Dockerfile is parsed into: [`Dockerfile`], its [`Instruction`]s (kind, flags,
//! arguments, heredocs) with a map from every byte of a logical line back to its physical
//! [`Position`], and the [`Problem`]s found on the way. Plain data; [`crate::parse`] builds it.

use crate::words::RawWord;

/// Which Dockerfile frontend reads the file: it decides whether heredocs exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// The classic builder (the Docker API's `/build` without a BuildKit session), which runs
    /// onboard: no heredocs, so the lines after `RUN <<EOF` are instructions.
    Classic,
    /// BuildKit's Dockerfile frontend: heredoc bodies follow their instruction.
    BuildKit,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    /// The escape character (`\` unless a directive says `` ` ``).
    pub escape: char,
    /// Instructions in order (unknown instructions are left out, with a problem).
    pub instructions: Vec<Instruction>,
    /// What could not be read, or could be read differently, in the order found: at most
    /// [`MAX_PROBLEMS_PER_KIND`](crate::MAX_PROBLEMS_PER_KIND) of each kind.
    pub problems: Vec<Problem>,
}

/// A 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

/// Something the parser could not read, or that Docker could read differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What kind of problem.
    pub kind: ProblemKind,
    /// Where it starts.
    pub start: Position,
    /// Exclusive end of the span, when known.
    pub end: Option<Position>,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

/// The kinds of [`Problem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// A line is not a Dockerfile instruction.
    UnknownInstruction,
    /// Missing arguments, a flag without its value, an invalid or repeated parser directive.
    Malformed,
    /// A heredoc never reaches its terminating line (BuildKit only).
    UnterminatedHeredoc,
    /// An argument starts with `[` but is not a JSON array of strings: run as shell form. The
    /// only kind that is not an error.
    InvalidJson,
    /// An instruction has a flag it does not accept.
    UnknownFlag,
    /// Docker might read this differently from this parser, so the onboard judge refuses it.
    Ambiguous,
    /// The Dockerfile is larger than [`MAX_DOCKERFILE_BYTES`](crate::MAX_DOCKERFILE_BYTES) or
    /// has more than [`MAX_INSTRUCTIONS`](crate::MAX_INSTRUCTIONS) instructions.
    Limit,
}

impl ProblemKind {
    /// How many kinds there are.
    pub(crate) const COUNT: usize = 7;

    /// Whether the build cannot go ahead (everything but [`ProblemKind::InvalidJson`]).
    pub fn is_error(self) -> bool {
        self != ProblemKind::InvalidJson
    }

    /// A dense index, `0..COUNT`.
    pub(crate) fn index(self) -> usize {
        match self {
            ProblemKind::UnknownInstruction => 0,
            ProblemKind::Malformed => 1,
            ProblemKind::UnterminatedHeredoc => 2,
            ProblemKind::InvalidJson => 3,
            ProblemKind::UnknownFlag => 4,
            ProblemKind::Ambiguous => 5,
            ProblemKind::Limit => 6,
        }
    }
}

/// Instruction keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Kind {
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
}

/// Every keyword, upper case.
pub(crate) const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

impl Kind {
    /// The keyword's kind, in any case.
    pub fn parse(word: &str) -> Option<Kind> {
        Some(match word.to_ascii_uppercase().as_str() {
            "ADD" => Kind::Add,
            "ARG" => Kind::Arg,
            "CMD" => Kind::Cmd,
            "COPY" => Kind::Copy,
            "ENTRYPOINT" => Kind::Entrypoint,
            "ENV" => Kind::Env,
            "EXPOSE" => Kind::Expose,
            "FROM" => Kind::From,
            "HEALTHCHECK" => Kind::Healthcheck,
            "LABEL" => Kind::Label,
            "MAINTAINER" => Kind::Maintainer,
            "ONBUILD" => Kind::Onbuild,
            "RUN" => Kind::Run,
            "SHELL" => Kind::Shell,
            "STOPSIGNAL" => Kind::Stopsignal,
            "USER" => Kind::User,
            "VOLUME" => Kind::Volume,
            "WORKDIR" => Kind::Workdir,
            _ => return None,
        })
    }

    /// Flags the instruction accepts, and whether each needs BuildKit.
    pub fn flags(self) -> &'static [(&'static str, bool)] {
        match self {
            Kind::From => &[("platform", false)],
            Kind::Run => &[("mount", true), ("network", true), ("security", true)],
            Kind::Copy => &[
                ("from", false),
                ("chown", false),
                ("chmod", true),
                ("link", true),
                ("parents", true),
                ("exclude", true),
            ],
            Kind::Add => &[
                ("chown", false),
                ("chmod", true),
                ("link", true),
                ("checksum", true),
                ("keep-git-dir", true),
                ("exclude", true),
            ],
            Kind::Healthcheck => &[
                ("interval", false),
                ("timeout", false),
                ("start-period", false),
                ("retries", false),
                ("start-interval", true),
            ],
            _ => &[],
        }
    }

    /// Instructions whose flags decide which images a build reads (the onboard judge refuses
    /// any doubt about them).
    pub(crate) fn flags_judged(self) -> bool {
        matches!(self, Kind::From | Kind::Copy | Kind::Add | Kind::Run)
    }
}

/// One instruction, its flags and arguments, with positions.
#[derive(Debug, Clone)]
pub struct Instruction {
    /// Which instruction.
    pub kind: Kind,
    /// The keyword as written.
    pub keyword: String,
    /// The logical line: continuation lines joined, with a map back to physical positions.
    pub text: Logical,
    /// `--name[=value]` flags before the arguments.
    pub flags: Vec<Flag>,
    /// The arguments after the flags.
    pub args: Args,
    /// Heredoc markers of the arguments, in order (RUN, COPY and ADD).
    pub heredocs: Vec<Heredoc>,
}

/// A `--name[=value]` flag.
#[derive(Debug, Clone)]
pub struct Flag {
    /// The name, without `--`.
    pub name: String,
    /// The value, quotes and backslashes processed as Docker does (expansion is the caller's).
    pub value: Option<String>,
    /// Byte range of the flag word in the logical line.
    pub start: usize,
    /// End of that range.
    pub end: usize,
    /// Known flag that the classic builder rejects.
    pub buildkit_only: bool,
}

/// The arguments of an instruction.
#[derive(Debug, Clone)]
pub enum Args {
    /// A JSON array of strings, and the byte range of the array.
    Exec {
        /// The strings.
        items: Vec<String>,
        /// Byte offset of `[` in the logical line.
        start: usize,
        /// One past `]`.
        end: usize,
    },
    /// Anything else: the rest of the line (trimmed) starting at byte `start`, and its words.
    Shell {
        /// The arguments as written.
        text: String,
        /// Byte offset of the arguments in the logical line.
        start: usize,
        /// Split on unquoted whitespace.
        words: Vec<RawWord>,
    },
}

impl Args {
    /// Byte offset of the arguments in the logical line.
    pub fn start(&self) -> usize {
        match self {
            Args::Exec { start, .. } | Args::Shell { start, .. } => *start,
        }
    }
}

/// A heredoc marker (`<<EOF`) and, when the builder reads heredocs, its body.
#[derive(Debug, Clone)]
pub struct Heredoc {
    /// The delimiter word.
    pub name: String,
    /// Byte range of the `<<NAME` marker in the logical line.
    pub marker_start: usize,
    /// End of that range.
    pub marker_end: usize,
    /// The body under BuildKit; `None` under the classic builder, which reads the lines that
    /// follow as instructions.
    pub body: Option<HeredocBody>,
}

/// The body of a heredoc.
#[derive(Debug, Clone)]
pub struct HeredocBody {
    /// The lines joined with `\n` (tabs stripped for `<<-`).
    pub text: String,
    /// Physical line of the body's first line.
    pub first_line: u32,
}

/// A logical line and the physical position of each of its segments.
#[derive(Debug, Clone, Default)]
pub struct Logical {
    /// The joined text, starting at the keyword.
    pub text: String,
    /// `(logical byte offset, physical line, physical 1-based column)` of each segment start.
    pub(crate) segments: Vec<(usize, u32, u32)>,
    /// Last physical line of the instruction (including heredoc bodies).
    pub end_line: u32,
}

impl Logical {
    /// The physical position of a byte offset of the logical line.
    pub fn pos(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let idx = match self.segments.binary_search_by(|s| s.0.cmp(&offset)) {
            Ok(i) => i,
            Err(0) => 0,
            Err(i) => i - 1,
        };
        let Some(&(seg_start, line, col)) = self.segments.get(idx) else {
            return Position { line: 1, column: 1 };
        };
        let seg_start = seg_start.min(offset);
        let prefix = self
            .text
            .get(seg_start..offset)
            .map_or(0, |s| s.chars().count());
        Position {
            line,
            column: col + prefix as u32,
        }
    }

    /// The physical line the instruction starts on.
    pub fn first_line(&self) -> u32 {
        self.segments.first().map_or(1, |s| s.1)
    }
}

impl Instruction {
    /// The first flag of this name.
    pub fn flag(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| f.name == name)
    }

    /// Everything after the keyword (flags and arguments), trimmed.
    pub fn after_keyword(&self) -> &str {
        self.text
            .text
            .get(self.keyword.len()..)
            .unwrap_or("")
            .trim_matches(|c: char| c.is_whitespace())
    }
}
