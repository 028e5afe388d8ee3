//! The flight agent's own judge, `dockerfile::onboard::judge_with`, run for every onboard build.
//! What it refuses is exactly what preflight reports under the onboard refusal codes
//! ([`ONBOARD_REFUSALS`](crate::ONBOARD_REFUSALS)): each of its reasons becomes one diagnostic
//! here, and no other rule reports those codes for an onboard build, except for a tenant image
//! that the judge accepts but the tenant does not have (the flight agent then finds it missing
//! in the daemon). Preflight keeps its own wording (the closest catalogue image, what a stage
//! index means, how to fix it), and the stages it builds for its other rules take each image's
//! reading from the judge, so the two cannot drift.

use std::collections::HashMap;

use dockerfile::onboard::{self, Cause, ImageUse, Reason, RefusalKind, Settings, Site};
use dockerfile::{ExpandErrorKind, Kind, ProblemKind};

use crate::catalogue::System;
use crate::lint::{Cx, Options, STRICT_HELP};
use crate::rules::base;

/// The judge's verdict on one Dockerfile.
pub(crate) struct Judgement {
    /// Each image the judge could classify, by instruction.
    uses: HashMap<usize, ImageUse>,
    /// Why it refuses the Dockerfile; empty when it accepts it.
    reasons: Vec<Reason>,
}

impl Judgement {
    /// The judge's reading of the image an instruction (`FROM`, `COPY --from`) names, when it
    /// could classify it.
    pub(crate) fn image(&self, instruction: usize) -> Option<&ImageUse> {
        self.uses.get(&instruction)
    }
}

/// The canonical names of the system's catalogue, as the flight agent knows them.
pub(crate) fn catalogue_names(system: &System) -> Vec<String> {
    system
        .catalogue
        .images
        .iter()
        .map(|b| wire::normalize_image_ref(&b.name))
        .collect()
}

/// Runs the judge as the flight agent would on this system, with the build arguments given.
pub(crate) fn judge(
    text: &str,
    system: &System,
    options: &Options,
    builder: dockerfile::Builder,
) -> Judgement {
    let settings = Settings {
        builder,
        build_args: &options.build_args,
    };
    let (uses, reasons) = match onboard::judge_with(text, &catalogue_names(system), &settings) {
        Ok(judged) => (judged.uses().to_vec(), Vec::new()),
        Err(refusal) => (refusal.uses().to_vec(), refusal.reasons().to_vec()),
    };
    Judgement {
        uses: uses.into_iter().map(|u| (u.instruction, u)).collect(),
        reasons,
    }
}

/// The rule code of a problem of the lexer.
pub(crate) fn problem_code(kind: ProblemKind) -> &'static str {
    match kind {
        ProblemKind::UnknownInstruction => "OD001",
        ProblemKind::Malformed => "OD002",
        ProblemKind::UnterminatedHeredoc => "OD003",
        ProblemKind::InvalidJson => "OD004",
        ProblemKind::UnknownFlag => "OD006",
        ProblemKind::Ambiguous => "OD007",
        ProblemKind::Limit => "OD008",
    }
}

/// Reports each of the judge's reasons under its rule code.
pub(crate) fn report(cx: &mut Cx<'_>, judgement: &Judgement) {
    for reason in &judgement.reasons {
        let (code, message, help) = diagnostic(cx, reason);
        cx.push(code, reason.start(), reason.end(), message, help);
    }
}

/// The code, message and help of one reason.
fn diagnostic(cx: &Cx<'_>, reason: &Reason) -> (&'static str, String, Option<String>) {
    let detail = reason.detail().to_string();
    let help = reason.help().map(str::to_string);
    let trigger = reason.kind() == RefusalKind::Trigger;
    match reason.cause() {
        Cause::Problem(kind) => (problem_code(*kind), detail, help),
        Cause::Expansion(kind) => {
            let code = match kind {
                ExpandErrorKind::Limit => "OD008",
                _ => "OD002",
            };
            (code, detail, Some(STRICT_HELP.into()))
        }
        Cause::NoFrom => (
            "OD005",
            detail,
            Some("start the build with `FROM <onboard image>`".into()),
        ),
        Cause::BeforeFrom => {
            let kw = reason
                .instruction()
                .and_then(|i| cx.df.instructions.get(i))
                .map_or_else(String::new, |i| i.keyword.to_ascii_uppercase());
            (
                "OD005",
                format!("{kw} before the first FROM"),
                Some("only ARG may come before FROM; start the build with `FROM <onboard image>`".into()),
            )
        }
        Cause::EmptyImage => (
            "OD002",
            "FROM expands to an empty image name".into(),
            Some("declare the ARG with a default before the first FROM".into()),
        ),
        Cause::StageName => (
            "OD002",
            detail,
            Some("name the stage with lower-case letters, digits, `-`, `_` and `.`, starting with a letter".into()),
        ),
        Cause::NotOnboard {
            site: Site::From,
            image,
        } => base::from_not_onboard(cx, image),
        Cause::NotOnboard {
            site: Site::CopyFrom,
            image,
        } => {
            let stage = reason.instruction().map_or(0, |i| stage_of(cx, i));
            base::copy_from_not_onboard(cx, image, stage)
        }
        Cause::Download { source } if trigger => (
            "OD301",
            format!("`ONBUILD ADD {source}` would download in every build based on this image, and there is no network onboard"),
            Some("download it on the ground, upload it and COPY it".into()),
        ),
        Cause::Download { source } if source.contains('$') => (
            "OD301",
            format!(
                "`ADD {source}`: a variable in an ADD source could name a URL, and nothing can be downloaded onboard"
            ),
            Some("use COPY for files of the upload".into()),
        ),
        Cause::Download { source } => (
            "OD301",
            format!("`ADD {source}` downloads from the network, and there is none onboard"),
            Some("download it on the ground, upload it with the Dockerfile and COPY it".into()),
        ),
        Cause::TriggerFrom => ("OD104", detail, help),
        // A reason the judge learnt after this mapping: still an onboard refusal.
        _ => ("OD002", detail, help),
    }
}

/// The index of the stage an instruction belongs to.
fn stage_of(cx: &Cx<'_>, instruction: usize) -> usize {
    cx.df.instructions[..instruction.min(cx.df.instructions.len())]
        .iter()
        .filter(|i| i.kind == Kind::From)
        .count()
        .saturating_sub(1)
}
