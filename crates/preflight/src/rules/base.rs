//! Base images and the builder: FROM (OD101–OD103, OD105), `COPY --from` (OD104) and
//! BuildKit-only syntax under the onboard classic builder (OD010).

use dockerfile::onboard::Target;
use dockerfile::{Args, Instruction, Kind, expand};

use crate::catalogue::{Builder, System, same_platform, strip_digest};
use crate::lint::{BuildSite, Cx, Root, Stage, StageFacts};
use crate::rules::judge::catalogue_names;

/// OD010: syntax the classic builder rejects, when the system builds with it.
///
/// ```text
/// FROM busybox
/// RUN --mount=type=cache,target=/root/.cache make   # OD010: --mount needs BuildKit
/// COPY --chmod=755 run.sh /run.sh                    # OD010: --chmod needs BuildKit
/// RUN <<EOF                                          # OD010: heredocs need BuildKit
/// echo hi
/// EOF
/// ```
pub(crate) fn check_builder_features(cx: &mut Cx<'_>, ins: &Instruction) {
    if cx.system.builder != Builder::Classic || cx.options.site != BuildSite::Onboard {
        return;
    }
    let kw = ins.keyword.to_ascii_uppercase();
    for flag in ins.flags.iter().filter(|f| f.buildkit_only) {
        cx.at(
            "OD010",
            ins,
            (flag.start, flag.end),
            format!(
                "`{kw} --{}` needs BuildKit, and system `{}` builds with the classic builder",
                flag.name, cx.system.name
            ),
            Some(flag_help(&flag.name)),
        );
    }
    for h in &ins.heredocs {
        cx.at(
            "OD010",
            ins,
            (h.marker_start, h.marker_end),
            format!(
                "heredocs need BuildKit, and system `{}` builds with the classic builder",
                cx.system.name
            ),
            Some(match ins.kind {
                Kind::Run => "put the script in a file of the upload, COPY it and RUN it".into(),
                _ => "put the content in a file of the upload and COPY it".into(),
            }),
        );
    }
}

fn flag_help(name: &str) -> String {
    match name {
        "chmod" => "set the mode on the ground before uploading (git keeps the executable bit), or `RUN chmod` in a stage with a shell".into(),
        "mount" => "drop the mount: nothing can be cached or fetched onboard; COPY what the step needs".into(),
        "link" => "drop `--link`".into(),
        _ => format!("drop `--{name}`"),
    }
}

/// OD101, OD102, OD103: a stage's base must be onboard, for the system's platform, with the
/// recorded digest. Onboard, what the base is comes from the flight agent's judge (which
/// reports the images it refuses, `rules::judge`); a tenant image the judge accepts must be one
/// the tenant has.
///
/// ```text
/// FROM alpine:3.19                                   # OD101: not onboard
/// FROM distroless/cc                                 # OD101: did you mean gcr.io/distroless/cc-debian12:latest?
/// FROM --platform=linux/amd64 busybox                # OD102 on a flight system (linux/arm64)
/// FROM --platform=$BUILDPLATFORM busybox             # OD102: the classic builder defines no BUILDPLATFORM
/// FROM busybox@sha256:1111…                          # OD103: not the onboard image's digest
/// ```
pub(crate) fn check_from(cx: &mut Cx<'_>, idx: usize, ins: &Instruction) {
    let escape = cx.df.escape;
    let (image_word, name) = match &ins.args {
        Args::Shell { words, .. } if !words.is_empty() => {
            let name = (words.len() == 3 && words[1].text.eq_ignore_ascii_case("as"))
                .then(|| words[2].text.to_ascii_lowercase());
            (Some(words[0].clone()), name)
        }
        _ => (None, None),
    };
    let range = image_word
        .as_ref()
        .map_or((0, ins.text.text.len()), |w| (w.start, w.end));
    let onboard = cx.onboard();
    let judged = cx
        .judgement
        .as_ref()
        .and_then(|j| j.image(idx))
        .map(|u| (u.image.clone(), u.target.clone()));
    let image = match &judged {
        Some((image, _)) => image.clone(),
        None => image_word
            .as_ref()
            .map(|w| expand(&w.text, &cx.global_args, escape))
            .unwrap_or_default(),
    };
    let mut stage = Stage {
        name,
        from_ins: idx,
        root: Root::Unknown,
        args: Default::default(),
        env: Default::default(),
        workdir: "/".into(),
        user: None,
        entrypoint: None,
        cmd: None,
        placed: Vec::new(),
        opaque: false,
        copied_names: Vec::new(),
        custom_shell: false,
    };
    let lower = image.to_ascii_lowercase();
    let parent = if onboard {
        match &judged {
            Some((_, Target::Stage(i))) => cx.stages.get(*i).cloned(),
            _ => None,
        }
    } else {
        cx.stage_names
            .get(&lower)
            .and_then(|&i| cx.stages.get(i))
            .cloned()
    };
    let base_kind;
    if let Some(parent) = parent {
        let name = stage.name.take();
        stage = Stage {
            name,
            from_ins: idx,
            args: Default::default(),
            ..parent
        };
        base_kind = "stage";
    } else if onboard {
        (stage.root, base_kind) = match judged.map(|j| j.1) {
            Some(Target::Scratch) => (Root::Scratch, "scratch"),
            Some(Target::Catalogue(name)) => {
                match catalogue_names(cx.system).iter().position(|n| *n == name) {
                    Some(i) => (Root::Catalogue(i), "catalogue"),
                    None => (Root::Unknown, "unknown"),
                }
            }
            Some(Target::Tenant(_)) if listed(cx, &image) => (Root::Tenant, "tenant"),
            Some(Target::Tenant(_)) => {
                // The flight agent looks the image up in the daemon: the tenant does not have it.
                let (message, help) = not_onboard(cx, &image);
                cx.at("OD101", ins, range, message, Some(help));
                (Root::Unknown, "unknown")
            }
            // Refused by the judge, which says why (`rules::judge`).
            Some(Target::Stage(_)) | None => (Root::Unknown, "unknown"),
        };
    } else if image.is_empty() {
        base_kind = "unknown";
        if image_word.is_some() {
            cx.at(
                "OD002",
                ins,
                range,
                "FROM expands to an empty image name".into(),
                Some("declare the ARG with a default before the first FROM".into()),
            );
        }
    } else if image == "scratch" {
        // Exactly: `FROM SCRATCH` names an image, which Docker would pull.
        stage.root = Root::Scratch;
        base_kind = "scratch";
    } else if let Some(i) = catalogue_index(cx, &image) {
        stage.root = Root::Catalogue(i);
        base_kind = "catalogue";
    } else if listed(cx, &image) {
        stage.root = Root::Tenant;
        base_kind = "tenant";
    } else {
        base_kind = "unknown";
    }
    stage.args = Default::default();
    cx.facts.stages.push(StageFacts {
        name: stage.name.clone(),
        base: image.clone(),
        base_kind,
    });

    // Platform: every stage builds onboard; on the ground only the final one matters, so the
    // check waits for the end there.
    if let Some(flag) = ins.flag("platform") {
        let value = expand(flag.value.as_deref().unwrap_or(""), &cx.global_args, escape);
        let is_final = cx.df.instructions[idx + 1..]
            .iter()
            .all(|i| i.kind != Kind::From);
        if onboard || is_final {
            if value.is_empty() {
                cx.at(
                    "OD102",
                    ins,
                    (flag.start, flag.end),
                    format!(
                        "`--platform` expands to nothing: the {} defines no such build argument",
                        builder_name(cx)
                    ),
                    Some(format!(
                        "drop `--platform`; the system builds for {}",
                        cx.system.platform
                    )),
                );
            } else if !same_platform(&value, &cx.system.platform) {
                cx.at(
                    "OD102",
                    ins,
                    (flag.start, flag.end),
                    format!(
                        "`--platform={value}` does not match system `{}`, which is {}",
                        cx.system.name, cx.system.platform
                    ),
                    Some(format!(
                        "drop `--platform`, or build for {}",
                        cx.system.platform
                    )),
                );
            }
        }
    }
    if !onboard {
        let is_final = cx.df.instructions[idx + 1..]
            .iter()
            .all(|i| i.kind != Kind::From);
        if is_final
            && !matches!(stage.root, Root::Catalogue(_) | Root::Scratch)
            && base_kind != "stage"
            && !image.is_empty()
        {
            cx.at(
                "OD105",
                ins,
                range,
                format!(
                    "`{image}` is not onboard: all of its layers will be uplinked with the image"
                ),
                Some(format!(
                    "a catalogue base costs no uplink: {}",
                    onboard_names(cx).join(", ")
                )),
            );
        }
    }
    if let Some(name) = &stage.name {
        cx.stage_names
            .entry(name.clone())
            .or_insert(cx.stages.len());
    }
    cx.stages.push(stage);
}

/// OD101 or OD103 for a `FROM` image the judge refuses: not onboard, or a digest pin of a
/// catalogue image (the flight agent classifies by name and resolves no pin).
pub(crate) fn from_not_onboard(cx: &Cx<'_>, image: &str) -> (&'static str, String, Option<String>) {
    if let Some((_, digest)) = image.split_once('@')
        && let Some(i) = catalogue_index(cx, image)
    {
        let base = &cx.system.catalogue.images[i];
        let name = &base.name;
        let fix = format!("drop the digest: `FROM {}`", strip_digest(image));
        let (message, help) = match &base.digest {
            Some(d) if d.eq_ignore_ascii_case(digest) => (
                format!(
                    "`{name}` onboard is `{digest}`, but the flight agent does not resolve digest pins"
                ),
                fix,
            ),
            Some(d) => (
                format!("`{name}` onboard has digest `{d}`, not `{digest}`"),
                format!("drop the digest, or pin `{}@{d}`", strip_digest(image)),
            ),
            None => (
                format!(
                    "`{name}` onboard has no recorded registry digest, so `@{digest}` cannot be resolved there"
                ),
                fix,
            ),
        };
        return ("OD103", message, Some(help));
    }
    let (message, help) = not_onboard(cx, image);
    ("OD101", message, Some(help))
}

/// OD104 for a `COPY --from` the judge refuses, in stage `stage`.
pub(crate) fn copy_from_not_onboard(
    cx: &Cx<'_>,
    value: &str,
    stage: usize,
) -> (&'static str, String, Option<String>) {
    if let Ok(n) = value.parse::<usize>() {
        return (
            "OD104",
            format!("`--from={n}` does not name an earlier stage (this is stage {stage})"),
            Some("name an earlier stage (`FROM … AS name`) and use `--from=name`".into()),
        );
    }
    if value.contains('$') {
        return (
            "OD104",
            format!("`--from={value}` holds a variable, which the flight agent does not expand"),
            Some("name the stage or image itself: `--from=NAME`".into()),
        );
    }
    let (message, help) = not_onboard(cx, value);
    (
        "OD104",
        format!("{message} (nor a stage of this Dockerfile)"),
        Some(help),
    )
}

fn builder_name(cx: &Cx<'_>) -> &'static str {
    match cx.system.builder {
        Builder::Classic if cx.onboard() => "onboard classic builder",
        _ => "builder",
    }
}

fn catalogue_index(cx: &Cx<'_>, image: &str) -> Option<usize> {
    let b = cx.system.base(image)?;
    cx.system.catalogue.images.iter().position(|x| x == b)
}

/// Is it in the list of the images the tenant has onboard?
fn listed(cx: &Cx<'_>, image: &str) -> bool {
    cx.options
        .tenant_images
        .iter()
        .any(|t| wire::normalize_image_ref(t) == wire::normalize_image_ref(image))
}

fn onboard_names(cx: &Cx<'_>) -> Vec<String> {
    cx.system
        .catalogue
        .images
        .iter()
        .map(|b| format!("`{}`", b.name))
        .collect()
}

/// The message and help of an image that is not onboard.
fn not_onboard(cx: &Cx<'_>, image: &str) -> (String, String) {
    if listed(cx, image) {
        return (
            format!("the flight agent reads `{image}` as a registry reference, not as one of your images"),
            "refer to your images as `name[:tag]`, without a registry, path or digest: the flight agent adds your namespace".into(),
        );
    }
    let message = format!(
        "`{image}` is not in the onboard catalogue of system `{}`",
        cx.system.name
    );
    (message, not_onboard_help(cx.system, image))
}

/// The help for an image that is not onboard: the closest catalogue image, or the catalogue.
pub(crate) fn not_onboard_help(system: &System, image: &str) -> String {
    let normalized = wire::normalize_image_ref(&strip_digest(image));
    let names: Vec<&str> = system
        .catalogue
        .images
        .iter()
        .map(|b| b.name.as_str())
        .collect();
    let onboard: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match crate::suggest::closest(&normalized, &names) {
        Some(best) => format!("did you mean `{best}`? onboard: {}", onboard.join(", ")),
        None => format!(
            "only preloaded images exist onboard: {}; or build on the ground and upload a `docker save` archive",
            onboard.join(", ")
        ),
    }
}

/// Where a `COPY --from` takes files from.
pub(crate) enum FromSource {
    /// An earlier stage.
    Stage(usize),
    /// An image (catalogue, tenant or unknown).
    Image,
}

/// OD104: `COPY --from` must name an earlier stage or an image that is onboard. Onboard, the
/// flight agent's judge reads it (and reports what it refuses, `rules::judge`); a tenant image
/// it accepts must be one the tenant has.
///
/// ```text
/// FROM busybox AS build
/// COPY --from=alpine:3.19 /bin/ls /ls       # OD104: alpine is not onboard
/// COPY --from=1 /x /x                       # OD104: stage 1 does not exist yet
/// ```
pub(crate) fn resolve_copy_from(
    cx: &mut Cx<'_>,
    idx: usize,
    ins: &Instruction,
) -> Option<FromSource> {
    let flag = ins.flag("from")?;
    let range = (flag.start, flag.end);
    if cx.onboard() {
        let judged = cx.judgement.as_ref().and_then(|j| j.image(idx))?;
        let (image, target) = (judged.image.clone(), judged.target.clone());
        return match target {
            Target::Stage(i) => Some(FromSource::Stage(i)),
            Target::Tenant(_) if !listed(cx, &image) => {
                // The flight agent looks the image up in the daemon: the tenant does not have it.
                let current = cx.stages.len().saturating_sub(1);
                let this_stage = cx.stages.get(current).is_some_and(|s| {
                    s.name.as_deref() == Some(image.to_ascii_lowercase().as_str())
                });
                let (message, help) = if this_stage {
                    (
                        format!(
                            "`--from={image}` refers to the current stage, which the flight agent takes for an image, and you have no such image"
                        ),
                        "copy from an earlier stage".to_string(),
                    )
                } else {
                    let (message, help) = not_onboard(cx, &image);
                    (format!("{message} (nor a stage of this Dockerfile)"), help)
                };
                cx.at("OD104", ins, range, message, Some(help));
                Some(FromSource::Image)
            }
            Target::Scratch | Target::Catalogue(_) | Target::Tenant(_) => Some(FromSource::Image),
        };
    }
    let written = flag.value.as_deref().unwrap_or("");
    let current = cx.stages.len().saturating_sub(1);
    let vars = cx.stages.last().map(Stage::vars).unwrap_or_default();
    let value = expand(written, &vars, cx.df.escape);
    if let Ok(n) = value.parse::<usize>() {
        if n < current {
            return Some(FromSource::Stage(n));
        }
        cx.at(
            "OD104",
            ins,
            range,
            format!("`--from={n}` does not name an earlier stage (this is stage {current})"),
            Some("name an earlier stage (`FROM … AS name`) and use `--from=name`".into()),
        );
        return None;
    }
    let lower = value.to_ascii_lowercase();
    if let Some(&i) = cx.stage_names.get(&lower).filter(|&&i| i < current) {
        return Some(FromSource::Stage(i));
    }
    // BuildKit refuses a reference to the current stage.
    if cx
        .stages
        .get(current)
        .is_some_and(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        cx.at(
            "OD104",
            ins,
            range,
            format!("`--from={value}` refers to the current stage"),
            Some("copy from an earlier stage".into()),
        );
        return None;
    }
    Some(FromSource::Image)
}
