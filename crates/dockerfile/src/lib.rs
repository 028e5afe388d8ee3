//! orbitdock's one Dockerfile reader, shared by the ground (`preflight`, for diagnostics) and
//! the satellite (`flight`, for its strict judgement of a `docker.build`), so that "it will
//! build onboard" on the ground is decided by the satellite's own code.
//!
//! [`parse`] is the lexer and parser: parser directives, the escape character, continuations,
//! heredocs (BuildKit only), exec and shell forms and flags, with the physical position of every
//! byte ([`Logical::pos`]). It never fails: it returns the [`Instruction`]s plus [`Problem`]s
//! with positions. [`split_words`], [`expand`] and [`expand_strict`] split words and expand
//! `ARG`/`ENV` variables the way Docker does; [`declare_args`] is Docker's `ARG` scope, its one
//! implementation. [`onboard::judge`] is what the flight agent calls before a build, the one
//! gate (preflight calls it too): it classifies every image the build names, refuses,
//! fail-closed, whatever the daemon could read differently, and gives the daemon every image
//! position as the literal it judged.
//!
//! The limits are defined here once: [`MAX_DOCKERFILE_BYTES`], [`MAX_INSTRUCTIONS`],
//! [`MAX_PROBLEMS_PER_KIND`], [`MAX_EXPANSION`], [`MAX_DEPTH`], [`MAX_EXPANSION_TOTAL`]. With
//! them the reader is linear in its input.
//!
//! **Architecture invariant:** no I/O, no clock, no network: text in, values out.
//!
//! ```
//! use dockerfile::{Builder, Kind, onboard};
//!
//! let df = dockerfile::parse("FROM busybox\nCOPY --from=0 /a /b\n", Builder::Classic);
//! assert_eq!(df.instructions[1].kind, Kind::Copy);
//! assert!(df.problems.is_empty());
//!
//! let catalogue = ["busybox:latest".to_string()];
//! assert!(onboard::judge("FROM busybox\nRUN true\n", &catalogue).is_ok());
//! let refusal = onboard::judge("FROM alpine/git\n", &catalogue).unwrap_err();
//! assert_eq!(refusal.line(), Some(1));
//! ```

mod lexer;
pub mod onboard;
mod syntax;
mod words;

pub use lexer::parse;
pub use syntax::{
    Args, Builder, Dockerfile, Flag, Heredoc, HeredocBody, Instruction, Kind, Logical, Position,
    Problem, ProblemKind,
};
pub use words::{
    ArgSite, ExpandError, ExpandErrorKind, RawWord, Vars, arg_word, declare_args, expand,
    expand_strict, expand_within, has_glob, split_words,
};

/// The largest Dockerfile read, in bytes (the flight agent refuses a larger one; preflight
/// reports it and reads only this much).
pub const MAX_DOCKERFILE_BYTES: usize = 1 << 20;
/// The most instructions read.
pub const MAX_INSTRUCTIONS: usize = 20_000;
/// The most [`Problem`]s of one kind recorded; the rest are counted but dropped (one of that
/// kind is recorded, so the verdict holds), so that hostile input cannot make the lexer spend
/// its time placing a hundred thousand of them.
pub const MAX_PROBLEMS_PER_KIND: usize = 100;
/// The longest output of one variable expansion, in bytes, so a crafted Dockerfile cannot blow
/// up memory (`ARG A=$B$B$B…`).
pub const MAX_EXPANSION: usize = 1 << 20;
/// The deepest nesting of `${NAME:-word}` words that is expanded.
pub const MAX_DEPTH: usize = 16;
/// The most bytes the variable expansions of one Dockerfile write together (also into
/// `${NAME:-word}` words whose value is dropped), so that many expansions of a long value
/// (`ARG B=$H C=$H D=$H …`) cannot take the time or memory of thousands of them.
pub const MAX_EXPANSION_TOTAL: usize = 16 << 20;
