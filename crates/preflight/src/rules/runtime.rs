//! How the final image runs: its user (OD401, OD402) and the form of its command (OD403,
//! OD404).

use dockerfile::Args;

use crate::lint::{Cx, Root};
use crate::rules::run::{base_name, stage_has_shell};

/// OD401, OD402: containers run non-root onboard; OD403, OD404: shell-form commands need
/// `/bin/sh` and do not forward signals.
///
/// ```text
/// FROM gcr.io/distroless/cc-debian12
/// COPY app /app
/// USER root                  # OD402 (no USER at all: OD401 at FROM)
/// CMD /app --serve           # OD404: shell form, and this base has no /bin/sh
/// ```
pub(crate) fn check_final_stage(cx: &mut Cx<'_>) {
    let Some(stage) = cx.stages.last().cloned() else {
        return;
    };
    let df = cx.df;
    match &stage.user {
        None => {
            if matches!(stage.root, Root::Catalogue(_) | Root::Scratch) {
                let from = &df.instructions[stage.from_ins];
                cx.whole(
                    "OD401",
                    from,
                    "the final stage sets no USER, so the container runs as root".into(),
                    Some("add `USER 65532:65532` (nonroot in the distroless images)".into()),
                );
            }
        }
        Some((user, idx)) => {
            let name = user.split(':').next().unwrap_or("").trim();
            if name == "root" || name == "0" {
                let ins = &df.instructions[*idx];
                cx.whole(
                    "OD402",
                    ins,
                    format!("`USER {user}` runs the container as root"),
                    Some("use an unprivileged user, e.g. `USER 65532:65532`".into()),
                );
            }
        }
    }
    let has_shell = stage_has_shell(cx, &stage);
    let base = base_name(cx, &stage);
    let ep_shell = stage
        .entrypoint
        .filter(|i| matches!(df.instructions[*i].args, Args::Shell { .. }));
    // A shell-form CMD runs only when there is no ENTRYPOINT (with an exec-form ENTRYPOINT it
    // becomes arguments; with a shell-form one it is ignored).
    let cmd_shell = stage.cmd.filter(|i| {
        stage.entrypoint.is_none() && matches!(df.instructions[*i].args, Args::Shell { .. })
    });
    for idx in [ep_shell, cmd_shell].into_iter().flatten() {
        let ins = &df.instructions[idx];
        let kw = ins.keyword.to_ascii_uppercase();
        if has_shell == Some(false) {
            cx.whole(
                "OD404",
                ins,
                format!("shell-form {kw} runs `/bin/sh -c`, and {base} has no /bin/sh: the container cannot start"),
                Some(format!("use the exec form: `{kw} [\"/path/to/program\", \"arg\"]`")),
            );
        } else {
            cx.whole(
                "OD403",
                ins,
                format!("shell-form {kw} runs under `/bin/sh -c`, which does not forward signals to the program"),
                Some(format!("use the exec form: `{kw} [\"/path/to/program\", \"arg\"]`")),
            );
        }
    }
}
