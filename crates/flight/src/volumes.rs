//! Tenant volumes: where they live, who owns them, and how a path from a plan is kept inside.
//!
//! A volume is the folder `<volumes_dir>/<tenant>/<volume>/`, bind-mounted at `/data` in the
//! tenant's pods. Every path a plan names is relative to the volume root ([`RelPath`]); it is
//! resolved by canonicalising what exists, and refused when that leaves the volume, so a symlink
//! a pod planted cannot make a later task read or write outside. Walks never follow symlinks.
//!
//! Each tenant has its own uid and gid (`200000 + n`, persisted in `tenants.json` in the state
//! directory): volumes and the files the agent writes belong to it, and pods run as it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use wire::FileEntry;

use crate::error::{Error, ErrorKind};
use crate::{fsutil, names};

/// The first uid (and gid) handed to a tenant.
const FIRST_ID: u32 = 200_000;
/// The most tenants the id map holds.
const MAX_TENANTS: usize = 100_000;
/// The most entries one walk visits (listing, glob expansion, build context).
pub(crate) const MAX_WALK: usize = 100_000;
/// The deepest a walk goes below its start.
const MAX_DEPTH: u32 = 128;

/// A uid:gid pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// The volumes of every tenant, and the tenant id map.
#[derive(Debug)]
pub(crate) struct Volumes {
    root: PathBuf,
    ids_path: PathBuf,
    ids: Mutex<BTreeMap<String, u32>>,
    /// The highest tenant id found owning a tenant folder at open: new ids go above it, so a
    /// lost map never hands one tenant's folder to another.
    folder_max: Option<u32>,
    chown_warned: AtomicBool,
}

impl Volumes {
    /// Opens (creating) the volumes directory and loads the tenant id map from `state_dir`.
    pub(crate) fn open(volumes_dir: &Path, state_dir: &Path) -> Result<Volumes, Error> {
        fs::create_dir_all(volumes_dir)
            .map_err(|e| Error::io("cannot create the volumes folder", volumes_dir, e))?;
        let root = volumes_dir
            .canonicalize()
            .map_err(|e| Error::io("cannot resolve the volumes folder", volumes_dir, e))?;
        let ids_path = state_dir.join("tenants.json");
        let ids = match fs::read(&ids_path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(ids) => ids,
                Err(e) => {
                    crate::plans::set_aside(&ids_path, "tenant id map", &e);
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                crate::plans::set_aside(&ids_path, "tenant id map", &e);
                BTreeMap::new()
            }
        };
        let (ids, folder_max, changed) = reconcile(&root, ids);
        if changed {
            let bytes = serde_json::to_vec_pretty(&ids).unwrap_or_default();
            if let Err(e) = fsutil::write_atomic(&ids_path, &bytes) {
                tracing::warn!(file = %ids_path.display(), error = %e, "cannot write the tenant id map recovered from the volume folders");
            }
        }
        Ok(Volumes {
            root,
            ids_path,
            ids: Mutex::new(ids),
            folder_max,
            chown_warned: AtomicBool::new(false),
        })
    }

    /// The tenant's uid and gid, allocated and persisted on first use.
    pub(crate) fn owner(&self, tenant: &str) -> Result<Owner, Error> {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&id) = ids.get(tenant) {
            return Ok(Owner { uid: id, gid: id });
        }
        if ids.len() >= MAX_TENANTS {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!(
                    "cannot give tenant {tenant} an id: {MAX_TENANTS} tenants already have one"
                ),
            ));
        }
        let id = ids
            .values()
            .copied()
            .chain(self.folder_max)
            .max()
            .map_or(FIRST_ID, |m| m + 1);
        ids.insert(tenant.to_string(), id);
        let bytes = serde_json::to_vec_pretty(&*ids).unwrap_or_default();
        if let Err(e) = fsutil::write_atomic(&self.ids_path, &bytes) {
            ids.remove(tenant);
            return Err(Error::io(
                "cannot write the tenant id map",
                &self.ids_path,
                e,
            ));
        }
        Ok(Owner { uid: id, gid: id })
    }

    /// `<volumes_dir>/<tenant>` (the tenant name must have been checked).
    pub(crate) fn tenant_dir(&self, tenant: &str) -> PathBuf {
        self.root.join(tenant)
    }

    /// `<volumes_dir>/<tenant>/<volume>` (both names must have been checked).
    pub(crate) fn volume_dir(&self, tenant: &str, volume: &str) -> PathBuf {
        self.root.join(tenant).join(volume)
    }

    /// Creates the volume (and the tenant folder) if missing, owned by the tenant.
    pub(crate) fn ensure_volume(
        &self,
        tenant: &str,
        volume: &str,
    ) -> Result<(PathBuf, Owner), Error> {
        let owner = self.owner(tenant)?;
        let tenant_dir = self.tenant_dir(tenant);
        for (dir, mode) in [
            (tenant_dir.clone(), 0o711),
            (tenant_dir.join(volume), 0o755),
        ] {
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Error::new(
                        ErrorKind::Invalid,
                        format!("{} exists and is not a folder", dir.display()),
                    ));
                }
                Err(_) => {
                    fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
                    let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(mode));
                    self.chown(&dir, owner);
                }
            }
        }
        Ok((self.volume_dir(tenant, volume), owner))
    }

    /// Gives `path` (not following a symlink) to `owner`. Without the right to (not root), warns
    /// once and carries on: ownership is isolation, not correctness.
    pub(crate) fn chown(&self, path: &Path, owner: Owner) {
        if let Err(e) = std::os::unix::fs::lchown(path, Some(owner.uid), Some(owner.gid)) {
            if e.kind() == io::ErrorKind::PermissionDenied {
                if !self.chown_warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(path = %path.display(), "cannot give files to tenant uids (not root); volumes stay owned by the agent's user");
                }
            } else {
                tracing::warn!(path = %path.display(), error = %e, "chown failed");
            }
        }
    }
}

/// Checks the tenant id map against the owners of the tenant folders under `root`: a tenant
/// folder owned by a tenant id (at or above `FIRST_ID`) that the map lacks, and that no other
/// tenant holds, is the tenant's id (a lost or older map); one the map gives another tenant, or
/// that disagrees with the map, is logged and left alone. Returns the map, the highest tenant id
/// owning a folder, and whether the map gained anything.
fn reconcile(
    root: &Path,
    mut ids: BTreeMap<String, u32>,
) -> (BTreeMap<String, u32>, Option<u32>, bool) {
    use std::os::unix::fs::MetadataExt;
    let mut owners = BTreeMap::new();
    for entry in fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() && names::check_tenant(&name).is_ok() && meta.uid() >= FIRST_ID {
            owners.insert(name, meta.uid());
        }
    }
    let folder_max = owners.values().max().copied();
    let mut changed = false;
    for (tenant, uid) in owners {
        match ids.get(&tenant) {
            Some(&id) if id == uid => {}
            Some(&id) => tracing::warn!(
                %tenant,
                map = id,
                folder = uid,
                "the tenant id map and the owner of the tenant's folder disagree; the map holds"
            ),
            None => match ids.iter().find(|&(_, &id)| id == uid) {
                Some((other, _)) => tracing::warn!(
                    %tenant,
                    %other,
                    uid,
                    "a tenant folder is owned by another tenant's id; it gets a new id"
                ),
                None => {
                    tracing::warn!(%tenant, uid, "tenant id recovered from the owner of its folder");
                    ids.insert(tenant, uid);
                    changed = true;
                }
            },
        }
    }
    (ids, folder_max, changed)
}

/// A path inside a volume, as a plan names it: `/`-separated, relative to the volume root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelPath {
    parts: Vec<String>,
}

impl RelPath {
    /// Parses a path from a plan by the rules of `wire::VolumePath` (the ground's): relative to
    /// the volume root, a leading `/` allowed; empty and `.` components skipped; `..`, control
    /// characters and over-long paths refused.
    pub(crate) fn parse(s: &str) -> Result<RelPath, String> {
        let path = wire::VolumePath::parse(s).map_err(|e| e.to_string())?;
        Ok(RelPath {
            parts: path.components().map(str::to_string).collect(),
        })
    }

    /// Whether this is the volume root itself.
    pub(crate) fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// The path as shown to the tenant: `/a/b`, or `/` for the root.
    pub(crate) fn display(&self) -> String {
        format!("/{}", self.parts.join("/"))
    }

    /// `root` joined with this path (no resolution).
    pub(crate) fn under(&self, root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        p.extend(&self.parts);
        p
    }
}

/// Why a path from a plan cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathError {
    /// The path is malformed (`..`, NUL, a folder where a file is wanted, ...).
    Invalid(String),
    /// Nothing is there.
    NotFound(String),
    /// It resolves (through a symlink) outside the volume.
    Escapes(String),
    /// The filesystem failed.
    Io(String),
}

impl PathError {
    /// The message for the tenant.
    pub(crate) fn message(&self) -> &str {
        match self {
            PathError::Invalid(m)
            | PathError::NotFound(m)
            | PathError::Escapes(m)
            | PathError::Io(m) => m,
        }
    }
}

/// Resolves an existing path for reading: the canonical path, which must lie inside `root`.
pub(crate) fn resolve_existing(root: &Path, rel: &RelPath) -> Result<PathBuf, PathError> {
    let root_c = root.canonicalize().map_err(|_| {
        PathError::NotFound(format!("{}: the volume does not exist", rel.display()))
    })?;
    match rel.under(&root_c).canonicalize() {
        Ok(c) if c.starts_with(&root_c) => Ok(c),
        Ok(_) => Err(PathError::Escapes(format!(
            "{} leads outside the volume",
            rel.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(PathError::NotFound(format!(
            "{}: no such file or folder",
            rel.display()
        ))),
        Err(e) => Err(PathError::Io(format!("{}: {e}", rel.display()))),
    }
}

/// Resolves an existing path for removal: its parent canonically (inside `root`), then the last
/// component as it is, not followed (a symlink is removed, not its target). The root itself
/// cannot be resolved for removal.
pub(crate) fn resolve_for_removal(root: &Path, rel: &RelPath) -> Result<PathBuf, PathError> {
    let Some((last, parents)) = rel.parts.split_last() else {
        return Err(PathError::Invalid(
            "the volume root is not a file or folder to delete".into(),
        ));
    };
    let parent = RelPath {
        parts: parents.to_vec(),
    };
    let dir = resolve_existing(root, &parent).map_err(|e| match e {
        PathError::NotFound(_) => {
            PathError::NotFound(format!("{}: no such file or folder", rel.display()))
        }
        e => e,
    })?;
    if !dir.is_dir() {
        return Err(PathError::NotFound(format!(
            "{}: no such file or folder",
            rel.display()
        )));
    }
    let path = dir.join(last);
    match fs::symlink_metadata(&path) {
        Ok(_) => Ok(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(PathError::NotFound(format!(
            "{}: no such file or folder",
            rel.display()
        ))),
        Err(e) => Err(PathError::Io(format!("{}: {e}", rel.display()))),
    }
}

/// Prepares a file path for writing: creates the missing parent folders (owned by `owner`,
/// through `volumes`), refuses a parent that resolves outside the volume, and returns the path
/// to write (atomically, by rename: an existing symlink there is replaced, not followed).
pub(crate) fn prepare_write(
    volumes: &Volumes,
    root: &Path,
    rel: &RelPath,
    owner: Owner,
) -> Result<PathBuf, PathError> {
    let Some((last, parents)) = rel.parts.split_last() else {
        return Err(PathError::Invalid(
            "cannot write a file at the volume root".into(),
        ));
    };
    let root_c = root
        .canonicalize()
        .map_err(|e| PathError::Io(format!("the volume {}: {e}", root.display())))?;
    let mut dir = root_c.clone();
    for part in parents {
        let next = dir.join(part);
        match fs::symlink_metadata(&next) {
            Ok(m) if m.is_dir() => dir = next,
            Ok(m) if m.file_type().is_symlink() => {
                let target = next.canonicalize().map_err(|e| {
                    PathError::Invalid(format!(
                        "{}: {part} is a broken symlink: {e}",
                        rel.display()
                    ))
                })?;
                if !target.starts_with(&root_c) {
                    return Err(PathError::Escapes(format!(
                        "{} leads outside the volume",
                        rel.display()
                    )));
                }
                if !target.is_dir() {
                    return Err(PathError::Invalid(format!(
                        "{}: {part} is not a folder",
                        rel.display()
                    )));
                }
                dir = target;
            }
            Ok(_) => {
                return Err(PathError::Invalid(format!(
                    "{}: {part} is not a folder",
                    rel.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&next)
                    .map_err(|e| PathError::Io(format!("{}: {e}", rel.display())))?;
                volumes.chown(&next, owner);
                dir = next;
            }
            Err(e) => return Err(PathError::Io(format!("{}: {e}", rel.display()))),
        }
    }
    let path = dir.join(last);
    if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
        return Err(PathError::Invalid(format!("{} is a folder", rel.display())));
    }
    Ok(path)
}

/// One entry met by [`walk`].
#[derive(Debug)]
pub(crate) struct WalkEntry {
    /// Path below the walk's start, `/`-separated, without a leading `/`.
    pub(crate) rel: String,
    /// The real path.
    pub(crate) path: PathBuf,
    /// Its metadata, not following a symlink.
    pub(crate) meta: fs::Metadata,
}

/// Walks `dir` depth-first in name order, never following symlinks, down to `max_depth` levels
/// (1: the entries of `dir` only) and at most `cap` entries. Returns the entries and whether
/// the cap cut the walk short. Unreadable folders are skipped.
pub(crate) fn walk(dir: &Path, max_depth: u32, cap: usize) -> (Vec<WalkEntry>, bool) {
    let mut out = Vec::new();
    // A stack of (folder, its path below the start, levels left), so depth costs no recursion.
    let mut stack = vec![(dir.to_path_buf(), String::new(), max_depth.min(MAX_DEPTH))];
    while let Some((folder, prefix, levels)) = stack.pop() {
        if levels == 0 {
            continue;
        }
        let mut children: Vec<(String, PathBuf, fs::Metadata)> = match fs::read_dir(&folder) {
            Ok(rd) => rd
                .flatten()
                .filter_map(|e| {
                    let meta = e.metadata().ok()?;
                    Some((e.file_name().to_string_lossy().into_owned(), e.path(), meta))
                })
                .collect(),
            Err(e) => {
                tracing::debug!(folder = %folder.display(), error = %e, "skipped an unreadable folder");
                continue;
            }
        };
        children.sort_by(|a, b| a.0.cmp(&b.0));
        // Pre-order: emit this folder's children, and push sub-folders so that the first
        // child's subtree comes next.
        let mut subdirs = Vec::new();
        for (name, path, meta) in children {
            if out.len() >= cap {
                return (out, true);
            }
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if meta.is_dir() {
                subdirs.push((path.clone(), rel.clone(), levels - 1));
            }
            out.push(WalkEntry { rel, path, meta });
        }
        stack.extend(subdirs.into_iter().rev());
    }
    (out, false)
}

/// Lists `dir` to `depth` levels as [`FileEntry`]s whose paths start with `prefix` (`""` for the
/// volume root, giving `/a/b`). Returns the entries and whether `cap` cut the listing short.
pub(crate) fn list(dir: &Path, prefix: &str, depth: u32, cap: usize) -> (Vec<FileEntry>, bool) {
    let (entries, truncated) = walk(dir, depth, cap);
    let mut files: Vec<FileEntry> = entries
        .into_iter()
        .map(|e| FileEntry {
            path: format!("{prefix}/{}", e.rel),
            size: if e.meta.is_dir() { 0 } else { e.meta.len() },
            is_dir: e.meta.is_dir(),
            modified_ms: e.meta.modified().map(fsutil::unix_ms).unwrap_or(0),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    (files, truncated)
}

/// Expands a downlink source (a path or a shell wildcard pattern, relative to the volume root)
/// into the files it names: `(path below the root, real path)`, sorted. A folder stands for every
/// file under it. Symlinks count only when they resolve to a file inside the volume. `..`,
/// absolute patterns and NUL are refused; a pattern matching nothing gives an empty list.
pub(crate) fn expand(root: &Path, source: &str) -> Result<Vec<(String, PathBuf)>, PathError> {
    let pattern = RelPath::parse(source).map_err(PathError::Invalid)?;
    let root_c = root
        .canonicalize()
        .map_err(|_| PathError::NotFound(format!("{source}: the volume does not exist")))?;
    let is_wild = |p: &str| p.contains(['*', '?', '[']);
    let literal = pattern.parts.iter().take_while(|p| !is_wild(p)).count();
    let base = RelPath {
        parts: pattern.parts[..literal].to_vec(),
    };
    let base_dir = match resolve_existing(&root_c, &base) {
        Ok(p) => p,
        Err(PathError::NotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = BTreeMap::new();
    let base_rel = base.parts.join("/");
    let join = |rel: &str| {
        if base_rel.is_empty() {
            rel.to_string()
        } else {
            format!("{base_rel}/{rel}")
        }
    };
    if literal == pattern.parts.len() {
        if base.is_root() {
            return Err(PathError::Invalid(
                "the volume root is not a file; name files or a pattern".into(),
            ));
        }
        collect(&root_c, &base_rel, &base_dir, &mut found);
        return Ok(found.into_iter().collect());
    }
    if !base_dir.is_dir() {
        return Ok(Vec::new());
    }
    let rest = pattern.parts[literal..].join("/");
    let matcher = glob::Pattern::new(&rest)
        .map_err(|e| PathError::Invalid(format!("pattern {source:?}: {e}")))?;
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let (entries, _) = walk(&base_dir, MAX_DEPTH, MAX_WALK);
    for e in entries {
        if matcher.matches_with(&e.rel, options) {
            collect(&root_c, &join(&e.rel), &e.path, &mut found);
        }
    }
    Ok(found.into_iter().collect())
}

/// Adds the file at `path` (or every file under the folder) to `found`, keyed by `rel`.
fn collect(root_c: &Path, rel: &str, path: &Path, found: &mut BTreeMap<String, PathBuf>) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        for e in walk(path, MAX_DEPTH, MAX_WALK).0 {
            if !e.meta.is_dir() {
                collect(root_c, &format!("{rel}/{}", e.rel), &e.path, found);
            }
        }
    } else if meta.file_type().is_symlink() {
        match path.canonicalize() {
            Ok(target) if target.starts_with(root_c) && target.is_file() => {
                found.insert(rel.to_string(), target);
            }
            _ => tracing::warn!(
                path = rel,
                "skipped a symlink that does not lead to a file inside the volume"
            ),
        }
    } else if meta.is_file() {
        found.insert(rel.to_string(), path.to_path_buf());
    }
}

/// The owner of `path`, for tests and diagnostics.
#[cfg(test)]
pub(crate) fn owner_of(path: &Path) -> Owner {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).unwrap();
    Owner {
        uid: m.uid(),
        gid: m.gid(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn vol() -> (tempfile::TempDir, Volumes, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let volumes = Volumes::open(&dir.path().join("volumes"), dir.path()).unwrap();
        let (root, _) = volumes.ensure_volume("alice", "pvc").unwrap();
        (dir, volumes, root)
    }

    fn rels(found: &[(String, PathBuf)]) -> Vec<&str> {
        found.iter().map(|(r, _)| r.as_str()).collect()
    }

    #[test]
    fn parses_relative_paths() {
        assert_eq!(RelPath::parse("/a/./b//c").unwrap().display(), "/a/b/c");
        assert_eq!(RelPath::parse("a/b").unwrap().display(), "/a/b");
        assert!(RelPath::parse("/").unwrap().is_root());
        assert!(RelPath::parse("").unwrap().is_root());
        for bad in ["../x", "a/../b", "a/..", "a\0b", "a\nb"] {
            assert!(RelPath::parse(bad).is_err(), "{bad}");
        }
        // Every path is relative to the volume root, however many slashes it starts with (the
        // ground's rule, `wire::VolumePath`).
        assert_eq!(
            RelPath::parse("//etc/passwd").unwrap().display(),
            "/etc/passwd"
        );
    }

    #[test]
    fn tenant_ids_are_stable_and_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let v = Volumes::open(&dir.path().join("v"), dir.path()).unwrap();
        let a = v.owner("alice").unwrap();
        let b = v.owner("bob").unwrap();
        assert_eq!(
            a,
            Owner {
                uid: 200_000,
                gid: 200_000
            }
        );
        assert_eq!(b.uid, 200_001);
        let again = Volumes::open(&dir.path().join("v"), dir.path()).unwrap();
        assert_eq!(again.owner("bob").unwrap(), b);
        assert_eq!(again.owner("carol").unwrap().uid, 200_002);
    }

    #[test]
    fn volumes_belong_to_their_tenant() {
        let (_d, volumes, root) = vol();
        if nix_is_root() {
            assert_eq!(owner_of(&root), volumes.owner("alice").unwrap());
        }
        assert!(root.is_dir());
        assert!(!volumes.tenant_dir("bob").exists());
    }

    #[test]
    fn writes_stay_inside_despite_symlinks() {
        let (d, volumes, root) = vol();
        let owner = volumes.owner("alice").unwrap();
        let outside = d.path().join("outside");
        fs::create_dir(&outside).unwrap();
        symlink(&outside, root.join("escape")).unwrap();
        fs::create_dir(root.join("real")).unwrap();
        symlink(root.join("real"), root.join("inside")).unwrap();

        let err = prepare_write(&volumes, &root, &RelPath::parse("escape/x").unwrap(), owner);
        assert!(matches!(err, Err(PathError::Escapes(_))), "{err:?}");
        let p =
            prepare_write(&volumes, &root, &RelPath::parse("inside/x").unwrap(), owner).unwrap();
        assert!(p.starts_with(root.canonicalize().unwrap()));
        let p = prepare_write(
            &volumes,
            &root,
            &RelPath::parse("new/deep/x").unwrap(),
            owner,
        )
        .unwrap();
        assert!(root.join("new/deep").is_dir());
        assert_eq!(p, root.canonicalize().unwrap().join("new/deep/x"));
        assert!(prepare_write(&volumes, &root, &RelPath::parse("/").unwrap(), owner).is_err());

        // A final component that is a symlink is replaced by the atomic rename, not followed.
        symlink(outside.join("target"), root.join("link")).unwrap();
        let p = prepare_write(&volumes, &root, &RelPath::parse("link").unwrap(), owner).unwrap();
        fsutil::write_atomic(&p, b"x").unwrap();
        assert!(!outside.join("target").exists());
        assert!(fs::symlink_metadata(root.join("link")).unwrap().is_file());
    }

    #[test]
    fn reads_stay_inside_despite_symlinks() {
        let (d, _volumes, root) = vol();
        fs::write(d.path().join("secret"), b"s").unwrap();
        symlink(d.path().join("secret"), root.join("s")).unwrap();
        symlink("/", root.join("slash")).unwrap();
        fs::write(root.join("ok"), b"o").unwrap();
        let r = |p: &str| resolve_existing(&root, &RelPath::parse(p).unwrap());
        assert!(matches!(r("s"), Err(PathError::Escapes(_))));
        assert!(matches!(r("slash/etc/passwd"), Err(PathError::Escapes(_))));
        assert!(matches!(r("missing"), Err(PathError::NotFound(_))));
        assert_eq!(r("/ok").unwrap(), root.canonicalize().unwrap().join("ok"));
    }

    #[test]
    fn globs_expand_inside_the_volume_only() {
        let (d, _volumes, root) = vol();
        fs::create_dir_all(root.join("out/sub")).unwrap();
        fs::write(root.join("out/a.txt"), b"a").unwrap();
        fs::write(root.join("out/b.json"), b"b").unwrap();
        fs::write(root.join("out/sub/c.txt"), b"c").unwrap();
        fs::write(root.join("out/.hidden.txt"), b"h").unwrap();
        fs::write(d.path().join("secret.txt"), b"s").unwrap();
        symlink(d.path().join("secret.txt"), root.join("out/leak.txt")).unwrap();
        symlink("/", root.join("out/root")).unwrap();
        symlink(root.join("out/a.txt"), root.join("out/alias.txt")).unwrap();

        let e = |p: &str| expand(&root, p).unwrap();
        assert_eq!(rels(&e("out/*.txt")), ["out/a.txt", "out/alias.txt"]);
        assert_eq!(
            rels(&e("/out/**/*.txt")),
            ["out/a.txt", "out/alias.txt", "out/sub/c.txt"]
        );
        assert_eq!(
            rels(&e("out")),
            [
                "out/.hidden.txt",
                "out/a.txt",
                "out/alias.txt",
                "out/b.json",
                "out/sub/c.txt"
            ]
        );
        assert_eq!(rels(&e("out/.hidden.txt")), ["out/.hidden.txt"]);
        assert_eq!(rels(&e("*/sub/*")), ["out/sub/c.txt"]);
        // The symlink to `/` is never walked, and naming a path through it is refused.
        assert!(matches!(
            expand(&root, "out/root/etc/*"),
            Err(PathError::Escapes(_))
        ));
        assert!(matches!(
            expand(&root, "out/root/etc/passwd"),
            Err(PathError::Escapes(_))
        ));
        assert!(matches!(
            expand(&root, "out/leak.txt"),
            Err(PathError::Escapes(_))
        ));
        assert!(e("nothing*").is_empty());
        assert!(e("missing/file").is_empty());
        // The alias resolves inside the volume, so it counts.
        assert_eq!(
            e("out/alias.txt")[0].1,
            root.canonicalize().unwrap().join("out/a.txt")
        );
        for bad in ["../*", "out/../../x", "a\0*"] {
            assert!(
                matches!(expand(&root, bad), Err(PathError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn lists_to_a_depth() {
        let (_d, _volumes, root) = vol();
        fs::create_dir_all(root.join("a/b/c")).unwrap();
        fs::write(root.join("a/f"), b"12345").unwrap();
        let (l, truncated) = list(&root, "", 2, 100);
        assert!(!truncated);
        let paths: Vec<_> = l
            .iter()
            .map(|e| (e.path.as_str(), e.size, e.is_dir))
            .collect();
        assert_eq!(
            paths,
            [("/a", 0, true), ("/a/b", 0, true), ("/a/f", 5, false)]
        );
        let (l, truncated) = list(&root, "/pvc", 10, 2);
        assert!(truncated);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].path, "/pvc/a");
    }

    fn nix_is_root() -> bool {
        use std::os::unix::fs::MetadataExt;
        fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false)
    }
}
