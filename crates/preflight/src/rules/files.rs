//! COPY and ADD: sources missing from the upload (OD302), escaping it (OD303) or
//! excluded by `.dockerignore` (OD304). Also records which context files land where, for the
//! binary rules.

use dockerfile::{Args, Instruction, Kind, expand, has_glob};

use crate::context::{EntryKind, clean, glob_match};
use crate::lint::{Cx, Placed, join_image_path};
use crate::rules::base::{FromSource, resolve_copy_from};

const ARCHIVE_SUFFIXES: &[&str] = &[
    ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst",
];

/// OD302–OD304: what COPY and ADD take must be in the upload (an `ADD` that downloads is
/// refused by the flight agent's judge, and reported as OD301 from its verdict, `rules::judge`).
///
/// ```text
/// FROM busybox
/// ADD https://example.com/tool.tar.gz /opt/     # OD301: no network onboard
/// COPY missing.txt /data/                       # OD302: not uploaded
/// COPY ../secret /secret                        # OD303: outside the context
/// COPY *.conf /etc/app/                         # OD302 when nothing matches
/// COPY .env /app/.env                           # OD304 when .dockerignore lists .env
/// ```
pub(crate) fn check_copy(cx: &mut Cx<'_>, idx: usize, ins: &Instruction) {
    if cx.stages.is_empty() {
        return;
    }
    let from = resolve_copy_from(cx, idx, ins);
    let has_from_flag = ins.flag("from").is_some();
    let escape = cx.df.escape;
    let (vars, workdir) = {
        let s = cx.stages.last().expect("checked above");
        (s.vars(), s.workdir.clone())
    };
    // (expanded text, byte range in the logical line)
    let words: Vec<(String, (usize, usize))> = match &ins.args {
        Args::Exec { items, start, end } => items
            .iter()
            .map(|i| {
                (
                    expand(&format!("\"{}\"", i.replace('"', "\\\"")), &vars, escape),
                    (*start, *end),
                )
            })
            .collect(),
        Args::Shell { words, .. } => words
            .iter()
            .map(|w| (expand(&w.text, &vars, escape), (w.start, w.end)))
            .collect(),
    };
    if words.len() < 2 {
        return;
    }
    let (sources, dest) = words.split_at(words.len() - 1);
    let dest_raw = &dest[0].0;
    let dest_is_dir =
        dest_raw.ends_with('/') || sources.len() > 1 || dest_raw == "." || dest_raw == "..";
    let dest_path = join_image_path(&workdir, dest_raw);
    let kw = ins.keyword.to_ascii_uppercase();
    let mut placed: Vec<Placed> = Vec::new();
    let mut opaque = false;
    let mut copied_names = Vec::new();

    for (src, range) in sources {
        if src.starts_with("<<")
            && ins.heredocs.iter().any(|h| {
                src.trim_start_matches("<<")
                    .trim_start_matches('-')
                    .trim_matches(['"', '\''])
                    == h.name
            })
        {
            copied_names.push(dest_path.rsplit('/').next().unwrap_or("").to_string());
            continue;
        }
        if ins.kind == Kind::Add && !has_from_flag && is_remote(src) {
            // Onboard, the flight agent's judge refuses it (`rules::judge`).
            opaque = true;
            continue;
        }
        match &from {
            Some(FromSource::Stage(i)) => {
                let stage_files = cx.stages[*i].placed.clone();
                let src_path = join_image_path("/", src);
                let mut any = false;
                for p in &stage_files {
                    let rel = if p.image_path == src_path {
                        Some(p.image_path.rsplit('/').next().unwrap_or("").to_string())
                    } else if let Some(r) = p
                        .image_path
                        .strip_prefix(&format!("{}/", src_path.trim_end_matches('/')))
                    {
                        Some(r.to_string())
                    } else if has_glob(&src_path) && glob_match(&src_path, &p.image_path, false) {
                        Some(p.image_path.rsplit('/').next().unwrap_or("").to_string())
                    } else {
                        None
                    };
                    if let Some(rel) = rel {
                        any = true;
                        let single_file = p.image_path == src_path && !dest_is_dir;
                        let image_path = if single_file {
                            dest_path.clone()
                        } else {
                            join_image_path(&dest_path, &rel)
                        };
                        placed.push(Placed {
                            image_path,
                            ctx_path: p.ctx_path.clone(),
                            size: p.size,
                            ins: idx,
                        });
                    }
                }
                if !any || cx.stages[*i].opaque {
                    note_foreign(src, &mut copied_names, &mut opaque);
                }
            }
            Some(FromSource::Image) => note_foreign(src, &mut copied_names, &mut opaque),
            None if has_from_flag => opaque = true,
            None => {
                if ins.kind == Kind::Add
                    && ARCHIVE_SUFFIXES
                        .iter()
                        .any(|s| src.to_ascii_lowercase().ends_with(s))
                {
                    // ADD extracts local archives: their content is unknown here.
                    opaque = true;
                }
                context_source(
                    cx,
                    ins,
                    idx,
                    &kw,
                    src,
                    *range,
                    dest_is_dir,
                    &dest_path,
                    &mut placed,
                );
            }
        }
    }
    let stage = cx.stages.last_mut().expect("checked above");
    stage.placed.extend(placed);
    stage.opaque |= opaque;
    stage.copied_names.extend(copied_names);
}

/// Files copied from another stage or image whose content preflight does not know.
fn note_foreign(src: &str, names: &mut Vec<String>, opaque: &mut bool) {
    let base = src.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let looks_like_file = !src.ends_with('/') && base.contains('.') && !has_glob(base)
        || base == "sh"
        || base == "busybox";
    if looks_like_file {
        names.push(base.to_string());
    } else {
        *opaque = true;
    }
}

fn is_remote(src: &str) -> bool {
    let l = src.to_ascii_lowercase();
    l.starts_with("http://")
        || l.starts_with("https://")
        || l.starts_with("git@")
        || l.starts_with("git://")
        || l.starts_with("ssh://")
}

/// Checks one source taken from the build context and records where its files land.
#[allow(clippy::too_many_arguments)]
fn context_source(
    cx: &mut Cx<'_>,
    ins: &Instruction,
    idx: usize,
    kw: &str,
    src: &str,
    range: (usize, usize),
    dest_is_dir: bool,
    dest_path: &str,
    placed: &mut Vec<Placed>,
) {
    if src.is_empty() {
        return;
    }
    let cleaned = clean(src);
    let rel = cleaned.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    if rel == ".." || rel.starts_with("../") {
        cx.at(
            "OD303",
            ins,
            range,
            format!("`{src}` is outside the build context"),
            Some("only files uploaded with the Dockerfile can be copied: move the file into the context".into()),
        );
        return;
    }
    let Some((_, index)) = cx.context else { return };
    let rel_key = if rel == "." { "" } else { rel };
    // (path, is_dir)
    let mut matches: Vec<(String, bool, u64)> = Vec::new();
    let mut ignored_hit = false;
    if has_glob(rel_key) {
        for e in index.sent() {
            if glob_match(rel_key, &e.path, false) {
                matches.push((e.path.clone(), e.kind == EntryKind::Dir, e.size));
            }
        }
        if matches.is_empty() {
            ignored_hit =
                index_all(index).any(|(p, ignored)| ignored && glob_match(rel_key, p, false));
        }
    } else if rel_key.is_empty() {
        matches.push((String::new(), true, 0));
    } else {
        match index.get(rel_key) {
            Some((_, true)) => ignored_hit = true,
            Some((e, false)) => matches.push((e.path.clone(), e.kind == EntryKind::Dir, e.size)),
            None => {}
        }
    }
    if matches.is_empty() {
        if ignored_hit {
            cx.at(
                "OD304",
                ins,
                range,
                format!("`{src}` is excluded by .dockerignore, so the builder never receives it"),
                Some("remove the pattern from .dockerignore, or add a `!` exception for it".into()),
            );
        } else {
            let near = nearest(index, rel_key);
            cx.at(
                "OD302",
                ins,
                range,
                if has_glob(rel_key) {
                    format!("{kw} source `{src}` matches no file of the upload")
                } else {
                    format!("{kw} source `{src}` is not in the upload")
                },
                Some(match near {
                    Some(n) => {
                        format!("did you mean `{n}`? paths are relative to the context root")
                    }
                    None => {
                        "upload the file together with the Dockerfile, keeping the folder layout"
                            .into()
                    }
                }),
            );
        }
        return;
    }
    let dest_is_dir =
        dest_is_dir || matches.len() > 1 || has_glob(rel_key) || matches.iter().any(|m| m.1);
    for (path, is_dir, size) in matches {
        if is_dir {
            for f in index.files_under(&path) {
                let sub = if path.is_empty() {
                    f.path.as_str()
                } else {
                    &f.path[path.len() + 1..]
                };
                placed.push(Placed {
                    image_path: join_image_path(dest_path, sub),
                    ctx_path: f.path.clone(),
                    size: f.size,
                    ins: idx,
                });
            }
        } else {
            let name = path.rsplit('/').next().unwrap_or(&path);
            let image_path = if dest_is_dir {
                join_image_path(dest_path, name)
            } else {
                dest_path.to_string()
            };
            placed.push(Placed {
                image_path,
                ctx_path: path.clone(),
                size,
                ins: idx,
            });
        }
    }
}

fn index_all(index: &crate::context::Index) -> impl Iterator<Item = (&str, bool)> {
    index.all().map(|(e, ignored)| (e.path.as_str(), ignored))
}

/// The context path closest to a missing one (same edit-distance idea as image names). Bounded:
/// only paths of similar length, at most 50 000 of them, are compared.
fn nearest(index: &crate::context::Index, missing: &str) -> Option<String> {
    if missing.len() > 256 {
        return None;
    }
    let mut best: Option<(usize, &str)> = None;
    for e in index
        .sent()
        .filter(|e| e.path.len().abs_diff(missing.len()) <= 3)
        .take(50_000)
    {
        let d = crate::suggest::levenshtein(missing, &e.path);
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, &e.path));
        }
    }
    let (d, p) = best?;
    (d <= 2.max(missing.len() / 4)).then(|| p.to_string())
}
