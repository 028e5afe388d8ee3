//! Tenant volumes: where they live, who owns them, and how a path from a plan is kept inside.
//!
//! A volume is the folder `<volumes_dir>/<tenant>/<volume>/`, bind-mounted at `/data` in the
//! tenant's pods. Every path a plan names is relative to the volume root ([`RelPath`]). A pod
//! can change its volume while the agent works in it, so the agent never checks a path and then
//! uses it: it opens the volume root ([`Volumes::open_volume`]) and does everything below it by
//! file descriptor ([`VolumeDir`], see `dir`), following no symlink; walks (`walk`) go folder by
//! open folder.
//!
//! Each tenant has its own uid and gid (`200000 + n`, persisted in `tenants.json` in the state
//! directory): volumes and the files the agent writes belong to it, and pods run as it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::Errno;

use crate::error::{Error, ErrorKind};
use crate::{fsutil, names};

mod dir;
mod walk;

pub(crate) use self::dir::{Meta, VolumeDir, open_file_at, read_link_at};
pub(crate) use self::walk::{Found, Walked, expand, list, visit, walk};

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
    /// The volumes folder, open: tenant and volume folders are opened beneath it.
    root_dir: VolumeDir,
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
        let root_dir = VolumeDir::open_path(&root)
            .map_err(|e| Error::io("cannot open the volumes folder", &root, e))?;
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
            root_dir,
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

    /// `<volumes_dir>/<tenant>/<volume>` (both names must have been checked): what a pod mounts.
    pub(crate) fn volume_dir(&self, tenant: &str, volume: &str) -> PathBuf {
        self.root.join(tenant).join(volume)
    }

    /// The tenant's folder, open; `None` when it does not exist (names checked).
    pub(crate) fn open_tenant(&self, tenant: &str) -> Result<Option<VolumeDir>, Error> {
        self.open_below(&[tenant])
    }

    /// The volume's root folder, open; `None` when the volume does not exist (names checked).
    pub(crate) fn open_volume(
        &self,
        tenant: &str,
        volume: &str,
    ) -> Result<Option<VolumeDir>, Error> {
        self.open_below(&[tenant, volume])
    }

    /// The volume whose root is `root` (a path [`Volumes::volume_dir`] gave), open.
    pub(crate) fn open_volume_at(&self, root: &Path) -> Result<Option<VolumeDir>, Error> {
        let parts: Vec<&str> = root
            .strip_prefix(&self.root)
            .ok()
            .map(|rel| rel.iter().filter_map(OsStr::to_str).collect())
            .unwrap_or_default();
        match parts.as_slice() {
            [tenant, volume] => self.open_volume(tenant, volume),
            _ => Err(Error::new(
                ErrorKind::Invalid,
                format!("{} is not a volume folder", root.display()),
            )),
        }
    }

    fn open_below(&self, parts: &[&str]) -> Result<Option<VolumeDir>, Error> {
        let os: Vec<&OsStr> = parts.iter().map(OsStr::new).collect();
        match VolumeDir::open_below(self.root_dir.fd(), &os) {
            Ok(dir) => Ok(Some(dir)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io(
                "cannot open",
                &self.root.join(parts.join("/")),
                e,
            )),
        }
    }

    /// Creates the volume (and the tenant folder) if missing, owned by the tenant; returns its
    /// path (for a pod to mount) and the tenant's ids.
    pub(crate) fn ensure_volume(
        &self,
        tenant: &str,
        volume: &str,
    ) -> Result<(PathBuf, Owner), Error> {
        let (_, owner) = self.ensure_volume_dir(tenant, volume)?;
        Ok((self.volume_dir(tenant, volume), owner))
    }

    /// Creates the volume (and the tenant folder) if missing, owned by the tenant, and opens it.
    pub(crate) fn ensure_volume_dir(
        &self,
        tenant: &str,
        volume: &str,
    ) -> Result<(VolumeDir, Owner), Error> {
        use rustix::fs::{Mode, mkdirat};
        let owner = self.owner(tenant)?;
        let mut at = None::<VolumeDir>;
        for (name, mode) in [(tenant, 0o711), (volume, 0o755)] {
            let parent = at.as_ref().unwrap_or(&self.root_dir);
            let shown = || match &at {
                Some(_) => self.volume_dir(tenant, volume),
                None => self.tenant_dir(tenant),
            };
            let made = match mkdirat(parent.fd(), name, Mode::from_raw_mode(mode)) {
                Ok(()) => true,
                Err(Errno::EXIST) => false,
                Err(e) => return Err(Error::io("cannot create", &shown(), e)),
            };
            let dir = match VolumeDir::open_below(parent.fd(), &[OsStr::new(name)]) {
                Ok(dir) => dir,
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    return Err(Error::new(
                        ErrorKind::Invalid,
                        format!("{} exists and is not a folder", shown().display()),
                    ));
                }
                Err(e) => return Err(Error::io("cannot open", &shown(), e)),
            };
            if made {
                let _ = rustix::fs::fchmod(dir.fd(), rustix::fs::Mode::from_raw_mode(mode));
                self.chown_fd(&dir.fd(), owner);
            }
            at = Some(dir);
        }
        Ok((at.expect("two folders opened"), owner))
    }

    /// Deletes the volume and everything in it. `Ok(false)` when there is no such volume.
    pub(crate) fn delete_volume(&self, tenant: &str, volume: &str) -> Result<bool, Error> {
        let shown = self.volume_dir(tenant, volume);
        let Some(tenant_dir) = self.open_tenant(tenant)? else {
            return Ok(false);
        };
        let Some(dir) = self.open_volume(tenant, volume)? else {
            return Ok(false);
        };
        dir.clear()
            .map_err(|e| Error::io("cannot delete", &shown, e))?;
        rustix::fs::unlinkat(tenant_dir.fd(), volume, rustix::fs::AtFlags::REMOVEDIR)
            .map_err(|e| Error::io("cannot delete", &shown, e))?;
        let _ = rustix::fs::fsync(tenant_dir.fd());
        Ok(true)
    }

    /// Gives the open file or folder `fd` to `owner`. Without the right to (not root), warns
    /// once and carries on: ownership is isolation, not correctness.
    pub(crate) fn chown_fd(&self, fd: &impl AsFd, owner: Owner) {
        if let Err(e) = std::os::unix::fs::fchown(fd.as_fd(), Some(owner.uid), Some(owner.gid)) {
            self.chown_failed(e);
        }
    }

    fn chown_failed(&self, e: io::Error) {
        if e.kind() == io::ErrorKind::PermissionDenied {
            if !self.chown_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "cannot give files to tenant uids (not root); volumes stay owned by the agent's user"
                );
            }
        } else {
            tracing::warn!(error = %e, "chown failed");
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
        Ok(RelPath::of(&path))
    }

    /// The path a checked `wire::VolumePath` names.
    pub(crate) fn of(path: &wire::VolumePath) -> RelPath {
        RelPath {
            parts: path.components().map(str::to_string).collect(),
        }
    }

    /// Components already checked (taken from a [`RelPath`]).
    fn from_parts(parts: Vec<String>) -> RelPath {
        RelPath { parts }
    }

    fn parts(&self) -> &[String] {
        &self.parts
    }

    fn os_parts(&self) -> Vec<&OsStr> {
        self.parts.iter().map(OsStr::new).collect()
    }

    /// Whether this is the volume root itself.
    pub(crate) fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// The path as shown to the tenant: `/a/b`, or `/` for the root.
    pub(crate) fn display(&self) -> String {
        format!("/{}", self.parts.join("/"))
    }
}

/// Why a path from a plan cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathError {
    /// The path is malformed (`..`, NUL, a folder where a file is wanted, ...).
    Invalid(String),
    /// Nothing is there.
    NotFound(String),
    /// It goes through a symlink, which the agent never follows in a volume.
    Link(String),
    /// Something is there already (the path, as shown), where nothing may be replaced.
    Exists(String),
    /// The filesystem failed.
    Io(String),
}

impl PathError {
    /// The message for the tenant.
    pub(crate) fn message(&self) -> &str {
        match self {
            PathError::Invalid(m)
            | PathError::NotFound(m)
            | PathError::Link(m)
            | PathError::Exists(m)
            | PathError::Io(m) => m,
        }
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
    use std::io::Read;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn vol() -> (tempfile::TempDir, Volumes, PathBuf, VolumeDir) {
        let dir = tempfile::tempdir().unwrap();
        let volumes = Volumes::open(&dir.path().join("volumes"), dir.path()).unwrap();
        let (root, _) = volumes.ensure_volume("alice", "pvc").unwrap();
        let open = volumes.open_volume("alice", "pvc").unwrap().unwrap();
        (dir, volumes, root, open)
    }

    fn rels(found: &[Found]) -> Vec<&str> {
        found.iter().map(|f| f.rel.as_str()).collect()
    }

    fn rel(s: &str) -> RelPath {
        RelPath::parse(s).unwrap()
    }

    /// Runs `check` with `openat2`, then with the component walk a kernel without it gets.
    fn both_ways(check: impl Fn()) {
        check();
        dir::FORCE_WALK.with(|f| f.set(true));
        check();
        dir::FORCE_WALK.with(|f| f.set(false));
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
        let (_d, volumes, root, _) = vol();
        if nix_is_root() {
            assert_eq!(owner_of(&root), volumes.owner("alice").unwrap());
        }
        assert!(root.is_dir());
        assert!(!volumes.tenant_dir("bob").exists());
        assert!(volumes.open_volume("bob", "pvc").unwrap().is_none());
        // A volume folder that a symlink stands for is refused, not followed.
        fs::create_dir_all(volumes.tenant_dir("bob")).unwrap();
        symlink(&root, volumes.volume_dir("bob", "pvc")).unwrap();
        assert!(volumes.open_volume("bob", "pvc").is_err());
        let e = volumes.ensure_volume("bob", "pvc").unwrap_err().to_string();
        assert!(e.contains("exists and is not a folder"), "{e}");
        assert!(volumes.open_volume_at(&root).unwrap().is_some());
        assert!(
            volumes
                .open_volume_at(&volumes.tenant_dir("alice"))
                .is_err()
        );
    }

    #[test]
    fn writes_stay_inside_and_follow_no_symlink() {
        let (d, volumes, root, open) = vol();
        let owner = volumes.owner("alice").unwrap();
        let outside = d.path().join("outside");
        fs::create_dir(&outside).unwrap();
        symlink(&outside, root.join("escape")).unwrap();
        fs::create_dir(root.join("real")).unwrap();
        symlink(root.join("real"), root.join("inside")).unwrap();
        symlink(outside.join("target"), root.join("link")).unwrap();
        fs::create_dir(root.join("folder")).unwrap();
        fs::write(root.join("file"), b"f").unwrap();
        let write = |p: &str| open.write_file(&volumes, &rel(p), owner, &mut &b"data"[..], 0o4755);
        both_ways(|| {
            for (p, link) in [
                ("escape/x", "/escape"),
                ("inside/x", "/inside"),
                ("inside/a/b", "/inside"),
            ] {
                assert_eq!(
                    write(p),
                    Err(PathError::Link(format!(
                        "/{p}: {link} is a symlink, and the agent follows no symlink in a volume"
                    ))),
                    "{p}"
                );
            }
            assert_eq!(write("new/deep/x"), Ok(4));
            assert_eq!(fs::read(root.join("new/deep/x")).unwrap(), b"data");
            assert_eq!(
                fs::metadata(root.join("new/deep/x"))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o7777,
                0o755,
                "no setuid bit from a plan"
            );
            assert!(matches!(write("/"), Err(PathError::Invalid(_))));
            assert_eq!(
                write("folder"),
                Err(PathError::Invalid("/folder is a folder".into()))
            );
            assert_eq!(
                write("file/x"),
                Err(PathError::Invalid("/file/x: /file is not a folder".into()))
            );
            // A last component that is a symlink is replaced by the rename, not followed.
            assert_eq!(write("link"), Ok(4));
            assert!(fs::symlink_metadata(root.join("link")).unwrap().is_file());
            symlink(outside.join("target"), root.join("link2")).unwrap();
            fs::rename(root.join("link2"), root.join("link")).unwrap();
        });
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing written outside"
        );
        assert!(!root.join("real/x").exists());
        // No temporary file is left behind.
        assert!(
            fs::read_dir(root.join("new/deep"))
                .unwrap()
                .all(|e| e.unwrap().file_name() == "x")
        );
    }

    #[test]
    fn reads_stay_inside_and_follow_no_symlink() {
        let (d, _volumes, root, open) = vol();
        fs::write(d.path().join("secret"), b"s").unwrap();
        symlink(d.path().join("secret"), root.join("s")).unwrap();
        symlink("/", root.join("slash")).unwrap();
        fs::write(root.join("ok"), b"o").unwrap();
        fs::create_dir(root.join("dir")).unwrap();
        rustix::fs::mknodat(
            open.fd(),
            "fifo",
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        both_ways(|| {
            let r = |p: &str| {
                open.open_file(&rel(p)).map(|(mut f, m)| {
                    let mut s = String::new();
                    f.read_to_string(&mut s).unwrap();
                    (s, m.len)
                })
            };
            assert!(matches!(r("s"), Err(PathError::Link(_))));
            assert_eq!(
                r("slash/etc/passwd"),
                Err(PathError::Link(
                    "/slash/etc/passwd: /slash is a symlink, and the agent follows no symlink in a volume"
                        .into()
                ))
            );
            assert!(matches!(r("missing"), Err(PathError::NotFound(_))));
            assert!(matches!(r("missing/x"), Err(PathError::NotFound(_))));
            assert_eq!(
                r("dir"),
                Err(PathError::NotFound("/dir is a folder, not a file".into()))
            );
            // A FIFO never holds the agent: refused at once.
            assert_eq!(
                r("fifo"),
                Err(PathError::NotFound(
                    "/fifo is not a regular file, not a file".into()
                ))
            );
            assert_eq!(r("/ok"), Ok(("o".to_string(), 1)));
            assert!(matches!(
                open.open_dir(&rel("slash")),
                Err(PathError::Link(_))
            ));
            assert!(matches!(
                open.open_dir(&rel("ok")),
                Err(PathError::Invalid(_))
            ));
            assert_eq!(
                open.stat(&rel("slash/etc")).map(|_| ()),
                Err(PathError::Link(
                    "/slash/etc: /slash is a symlink, and the agent follows no symlink in a volume"
                        .into()
                ))
            );
            assert!(open.stat(&rel("s")).unwrap().unwrap().is_symlink());
        });
    }

    #[test]
    fn removes_and_renames_by_descriptor() {
        let (d, volumes, root, open) = vol();
        let owner = volumes.owner("alice").unwrap();
        let outside = d.path().join("outside");
        fs::create_dir_all(outside.join("sub")).unwrap();
        fs::write(outside.join("sub/keep"), b"k").unwrap();
        fs::create_dir_all(root.join("tree/a/b")).unwrap();
        fs::write(root.join("tree/a/b/f"), b"f").unwrap();
        symlink(&outside, root.join("tree/a/out")).unwrap();
        symlink(&outside, root.join("out")).unwrap();
        // A folder with its links: the links go, never what they lead to.
        assert_eq!(open.remove(&rel("tree")), Ok(()));
        assert!(!root.join("tree").exists());
        assert!(matches!(
            open.remove(&rel("out/sub/keep")),
            Err(PathError::Link(_))
        ));
        assert!(matches!(
            open.remove(&rel("tree")),
            Err(PathError::NotFound(_))
        ));
        assert_eq!(open.remove(&rel("out")), Ok(()));
        assert_eq!(fs::read(outside.join("sub/keep")).unwrap(), b"k");

        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("f"), b"f").unwrap();
        fs::write(root.join("g"), b"g").unwrap();
        symlink(&outside, root.join("link")).unwrap();
        let mv = |from: &str, to: &str| open.rename_new(&volumes, &rel(from), &rel(to), owner);
        assert_eq!(mv("f", "g"), Err(PathError::Exists("/g".into())));
        assert_eq!(mv("f", "a"), Err(PathError::Exists("/a".into())));
        assert!(matches!(mv("f", "link/f"), Err(PathError::Link(_))));
        assert!(matches!(mv("link/sub", "x"), Err(PathError::Link(_))));
        assert_eq!(
            mv("a", "a/b/c"),
            Err(PathError::Invalid(
                "cannot move /a into itself (/a/b/c)".into()
            ))
        );
        assert_eq!(mv("f", "n/e/w"), Ok(false));
        assert_eq!(mv("a", "z"), Ok(true));
        assert_eq!(mv("link", "links/l"), Ok(false));
        assert!(
            fs::symlink_metadata(root.join("links/l"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(fs::read(root.join("n/e/w")).unwrap(), b"f");
        assert!(root.join("z/b").is_dir());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);

        assert!(volumes.delete_volume("alice", "pvc").unwrap());
        assert!(!root.exists());
        assert!(!volumes.delete_volume("alice", "pvc").unwrap());
        assert_eq!(fs::read(outside.join("sub/keep")).unwrap(), b"k");
    }

    #[test]
    fn globs_expand_inside_the_volume_only() {
        let (d, _volumes, root, open) = vol();
        fs::create_dir_all(root.join("out/sub")).unwrap();
        fs::write(root.join("out/a.txt"), b"a").unwrap();
        fs::write(root.join("out/b.json"), b"b").unwrap();
        fs::write(root.join("out/sub/c.txt"), b"c").unwrap();
        fs::write(root.join("out/.hidden.txt"), b"h").unwrap();
        fs::write(d.path().join("secret.txt"), b"s").unwrap();
        symlink(d.path().join("secret.txt"), root.join("out/leak.txt")).unwrap();
        symlink("/", root.join("out/root")).unwrap();
        symlink(root.join("out/a.txt"), root.join("out/alias.txt")).unwrap();

        let e = |p: &str| expand(&open, p).unwrap();
        // Symlinks are never followed, not even those that stay inside.
        assert_eq!(rels(&e("out/*.txt")), ["out/a.txt"]);
        assert_eq!(rels(&e("/out/**/*.txt")), ["out/a.txt", "out/sub/c.txt"]);
        assert_eq!(
            rels(&e("out")),
            [
                "out/.hidden.txt",
                "out/a.txt",
                "out/b.json",
                "out/sub/c.txt"
            ]
        );
        assert_eq!(rels(&e("out/.hidden.txt")), ["out/.hidden.txt"]);
        assert_eq!(rels(&e("*/sub/*")), ["out/sub/c.txt"]);
        assert_eq!(
            rels(&e("o*")),
            rels(&e("out")),
            "a folder matched stands for its files"
        );
        // Naming a path through a symlink, or a symlink, is refused.
        for p in [
            "out/root/etc/*",
            "out/root/etc/passwd",
            "out/leak.txt",
            "out/alias.txt",
        ] {
            assert!(
                matches!(expand(&open, p), Err(PathError::Link(_))),
                "{p}: {:?}",
                expand(&open, p)
            );
        }
        assert!(e("nothing*").is_empty());
        assert!(e("missing/file").is_empty());
        assert!(e("out/a.txt/*").is_empty());
        // What was found opens beneath the root, as found.
        let found = e("out/sub/c.txt");
        let (mut f, _) = open
            .open_file_parts(&found[0].parts(), "/out/sub/c.txt")
            .unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "c");
        for bad in ["../*", "out/../../x", "a\0*"] {
            assert!(
                matches!(expand(&open, bad), Err(PathError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn lists_to_a_depth() {
        let (_d, _volumes, root, open) = vol();
        fs::create_dir_all(root.join("a/b/c")).unwrap();
        fs::write(root.join("a/f"), b"12345").unwrap();
        let (l, walked) = list(&open, "", 2, 100);
        assert_eq!(walked, Walked::Whole);
        let paths: Vec<_> = l
            .iter()
            .map(|e| (e.path.as_str(), e.size, e.is_dir))
            .collect();
        assert_eq!(
            paths,
            [("/a", 0, true), ("/a/b", 0, true), ("/a/f", 5, false)]
        );
        let (l, walked) = list(&open, "/pvc", 10, 2);
        assert_eq!(walked, Walked::Capped);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].path, "/pvc/a");
    }

    /// Makes `levels` folders `d` nested below `root` (one `mkdirat` and `openat` each, so no
    /// path grows long), with `leaf` written in the deepest. Returns the top one's path.
    fn nest(root: &Path, levels: usize, leaf: &[u8]) -> PathBuf {
        let top = root.join("d");
        fs::create_dir(&top).unwrap();
        let mut at = fs::File::open(&top).unwrap();
        for _ in 1..levels {
            rustix::fs::mkdirat(&at, "d", rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
            at = rustix::fs::openat(
                &at,
                "d",
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .unwrap()
            .into();
        }
        let fd = rustix::fs::openat(
            &at,
            "leaf",
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CREATE,
            rustix::fs::Mode::from_raw_mode(0o644),
        )
        .unwrap();
        io::Write::write_all(&mut fs::File::from(fd), leaf).unwrap();
        top
    }

    /// A walk asked to go all the way down says when folders nest deeper than it goes, instead
    /// of counting what it saw as all there is; one asked for fewer levels is whole.
    #[test]
    fn a_walk_cut_by_its_depth_bound_is_incomplete() {
        let (_d, _volumes, root, open) = vol();
        nest(&root, MAX_DEPTH as usize + 2, b"deep");
        let mut files = 0;
        let walked = visit(open.fd(), u32::MAX, MAX_WALK, &mut |e| {
            files += usize::from(e.meta.is_file());
            Ok(())
        })
        .unwrap();
        assert_eq!(files, 0, "the leaf lies below the bound");
        let Walked::Incomplete(why) = walked else {
            panic!("{walked:?}")
        };
        assert!(
            why.ends_with(
                "holds folders nested deeper than 128 levels, which the agent does not walk"
            ),
            "{why}"
        );
        assert!(why.starts_with("/d/d/d/"), "{why}");
        assert_eq!(list(&open, "", 3, 100).1, Walked::Whole);
        // Exactly as deep as the walk goes: whole.
        let (_d, _volumes, root, open) = vol();
        nest(&root, MAX_DEPTH as usize - 1, b"deep");
        let (entries, walked) = walk(&open, u32::MAX, MAX_WALK);
        assert_eq!(walked, Walked::Whole);
        assert_eq!(entries.iter().filter(|e| e.meta.is_file()).count(), 1);
        // The usage the quotas read fails closed: not a floor taken for the total.
        let (_d, _volumes, root, _open) = vol();
        nest(&root, MAX_DEPTH as usize + 2, b"deep");
        let (bytes, walked) = crate::disk::logical_usage(&root);
        assert_eq!(bytes, 0);
        assert!(matches!(walked, Walked::Incomplete(_)), "{walked:?}");
    }

    /// A folder nested far deeper than the walk goes (and than there are descriptors to hold
    /// each level open) is deleted, file and folders alike.
    #[test]
    fn folders_nested_deeper_than_any_bound_are_removed() {
        let (_d, volumes, root, open) = vol();
        nest(&root, 1500, b"deep");
        fs::write(root.join("keep"), b"k").unwrap();
        assert_eq!(open.remove(&rel("d")), Ok(()));
        assert!(!root.join("d").exists());
        assert_eq!(fs::read(root.join("keep")).unwrap(), b"k");
        nest(&root, 1500, b"deep");
        assert!(volumes.delete_volume("alice", "pvc").unwrap());
        assert!(!root.exists());
    }

    fn nix_is_root() -> bool {
        use std::os::unix::fs::MetadataExt;
        fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false)
    }
}
