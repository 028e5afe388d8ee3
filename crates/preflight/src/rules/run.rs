//! RUN: network use (OD201, OD202, OD204) and the shell it needs (OD203).

use dockerfile::{Args, Instruction};

use crate::diagnostic::Position;
use crate::lint::{Cx, Root, Stage};
use crate::shell::{NetKind, NetUse, network_uses, network_uses_argv};

const SHELLS: &[&str] = &["sh", "bash", "ash", "dash", "zsh", "ksh"];

/// OD201, OD202, OD204: there is no network onboard; OD203: shell form needs `/bin/sh`.
///
/// ```text
/// FROM busybox
/// RUN apt-get update && apt-get install -y curl      # OD201 (twice)
/// RUN ["sh", "-c", "pip install numpy"]              # OD201
/// RUN wget -O /x https://example.com/x               # OD202
/// RUN cargo build --release                          # OD204 when Cargo.toml has registry deps
/// FROM gcr.io/distroless/static-debian12
/// RUN mkdir /data                                    # OD203: no /bin/sh in this base
/// ```
pub(crate) fn check_run(cx: &mut Cx<'_>, ins: &Instruction) {
    let Some(stage) = cx.stages.last() else {
        return;
    };
    let vars = stage.vars();
    let has_shell = stage_has_shell(cx, stage);
    let base_name = base_name(cx, stage);
    let hints = cx.hints;

    let shell_form = matches!(ins.args, Args::Shell { .. });
    if shell_form && has_shell == Some(false) {
        let end = ins
            .text
            .text
            .lines()
            .next()
            .map_or(0, |l| l.trim_end().len());
        cx.at(
            "OD203",
            ins,
            (0, end),
            format!("shell-form RUN needs /bin/sh, which {base_name} does not have"),
            Some("use the exec form `RUN [\"/path/to/program\", \"arg\"]`, or do the work in a `busybox` stage and `COPY --from` it".into()),
        );
    }
    if !cx.onboard() {
        return;
    }
    match &ins.args {
        Args::Exec { items, start, end } => {
            for u in network_uses_argv(items, (*start, *end), &vars, hints) {
                report(
                    cx,
                    ins,
                    Where::Line(ins.text.pos(u.start), ins.text.pos(u.end)),
                    &u,
                );
            }
        }
        Args::Shell { text, start, .. } => {
            // With heredocs, the command line is the text minus the markers; the bodies are the
            // script when that command is a shell (or nothing, which runs the default shell).
            let mut line = text.clone();
            for h in ins.heredocs.iter().rev() {
                let (s, e) = (h.marker_start - start, h.marker_end - start);
                if e <= line.len() && line.is_char_boundary(s) && line.is_char_boundary(e) {
                    line.replace_range(s..e, &" ".repeat(e - s));
                }
            }
            for u in network_uses(&line, &vars, hints) {
                report(
                    cx,
                    ins,
                    Where::Line(ins.text.pos(start + u.start), ins.text.pos(start + u.end)),
                    &u,
                );
            }
            let first = line.split_whitespace().next();
            let body_is_script =
                first.is_none_or(|w| SHELLS.contains(&w.rsplit('/').next().unwrap_or(w)));
            if body_is_script {
                for body in ins.heredocs.iter().filter_map(|h| h.body.as_ref()) {
                    for u in network_uses(&body.text, &vars, hints) {
                        let p = body_pos(&body.text, u.start, body.first_line);
                        let e = body_pos(&body.text, u.end, body.first_line);
                        report(cx, ins, Where::Line(p, e), &u);
                    }
                }
            }
        }
    }
}

enum Where {
    Line(Position, Position),
}

fn body_pos(body: &str, offset: usize, first_line: u32) -> Position {
    let offset = offset.min(body.len());
    let before = body.get(..offset).unwrap_or("");
    let line = first_line + before.matches('\n').count() as u32;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
    Position { line, column: col }
}

fn report(cx: &mut Cx<'_>, _ins: &Instruction, at: Where, u: &NetUse) {
    let Where::Line(s, e) = at;
    let (code, message, help) = match u.kind {
        NetKind::Install => (
            "OD201",
            format!("`{}` needs the network, and there is none onboard", u.what),
            "install on the ground: upload a static binary or a `docker save` image; or put the packages in the upload (`apk add --no-network ./x.apk`, `pip install --no-index --find-links ./wheels`)",
        ),
        NetKind::Download => (
            "OD202",
            format!(
                "`{}` downloads from the network, and there is none onboard",
                u.what
            ),
            "download it on the ground, upload it with the Dockerfile and COPY it",
        ),
        NetKind::Fetch => (
            "OD204",
            format!(
                "`{}` would fetch dependencies from the network, and there is none onboard",
                u.what
            ),
            "vendor the dependencies into the upload (`cargo vendor` + `--offline`, `go mod vendor`), or build on the ground",
        ),
    };
    cx.push(
        code,
        s,
        Some(e).filter(|e| *e > s),
        message,
        Some(help.into()),
    );
}

/// Whether the stage has `/bin/sh`: `None` when unknown (tenant base, files of unknown origin, a
/// custom SHELL).
pub(crate) fn stage_has_shell(cx: &Cx<'_>, stage: &Stage) -> Option<bool> {
    if stage.custom_shell || stage.opaque {
        return None;
    }
    let placed = stage.placed.iter().any(|p| p.image_path == "/bin/sh")
        || stage
            .copied_names
            .iter()
            .any(|n| n == "sh" || n == "busybox");
    match stage.root {
        Root::Scratch => Some(placed),
        Root::Catalogue(i) => Some(cx.system.catalogue.images[i].shell || placed),
        Root::Tenant | Root::Unknown => None,
    }
}

/// `` `gcr.io/distroless/cc-debian12:latest` `` or `scratch`, for messages.
pub(crate) fn base_name(cx: &Cx<'_>, stage: &Stage) -> String {
    match stage.root {
        Root::Scratch => "`scratch`".into(),
        Root::Catalogue(i) => format!("`{}`", cx.system.catalogue.images[i].name),
        Root::Tenant | Root::Unknown => "the base image".into(),
    }
}
