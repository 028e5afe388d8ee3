//! Bounded disks: the limits of what the agent copies and keeps, and the reserve that keeps its
//! own state writable when the volumes fill the disk.
//!
//! Sizes are logical everywhere (`metadata.len()`, what a reader gets, not the blocks a file
//! holds): a sparse file of 1 TiB costs a few blocks in a volume, but a terabyte once copied into
//! the object store, a build context or a staged archive. Every copy checks the size before it
//! starts and counts the bytes while it runs (a file may grow meanwhile); going over a limit
//! fails the task with a message naming the file, its size and the limit, and the partial copy
//! is removed.
//!
//! The reserve is a ballast file in the state folder (`reserve.ballast`), its blocks allocated
//! (`fallocate`), so the space it holds is really taken. When free space on the state folder's
//! filesystem falls below half the reserve (a pod, an uplink or anything else filled it), the
//! agent deletes the ballast ([`Reserve::check`], every few seconds): the link's counters, the
//! plans and the task records then have the whole reserve to be written in, and the satellite
//! keeps talking. The ballast comes back once there is room for it again. Work that would write
//! into the volumes (uplink, downlink, build, load, pod.run) is also refused while free space
//! under the volumes folder is below the reserve.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};
use crate::volumes::Walked;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The limits on what the flight agent copies and keeps on its disks, in bytes. Loaded from a
/// JSON file (`orbitdock flight --limits FILE`, see `docs/operations.md`); every field is
/// optional and defaults to the value of [`DiskLimits::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiskLimits {
    /// The most all of one tenant's volumes may hold (the sum of their files' logical sizes):
    /// an uplink that would go over is refused, a pod over it is stopped.
    pub tenant_bytes: u64,
    /// The largest file a downlink copies into the object store.
    pub downlink_file_bytes: u64,
    /// The largest build context (the sum of its files), as packed for the daemon.
    pub build_context_bytes: u64,
    /// The most one build may take of the Docker Engine's storage while it runs (what its `RUN`
    /// steps write, the layers it commits), measured as the fall of free space on the engine's
    /// data root: a build over it is stopped.
    pub build_bytes: u64,
    /// The largest archive `docker.load` reads and stages.
    pub archive_bytes: u64,
    /// The most the object store may hold (what the downlink adds to it is refused beyond).
    pub object_store_bytes: u64,
    /// Space kept for the agent's own state (plans, the link's counters and spools): the size of
    /// the ballast file, and the free space below which work that writes into the volumes is
    /// refused and a running pod is stopped.
    pub reserve_bytes: u64,
    /// The size of the tmpfs mounted at `/tmp` in a pod (its root filesystem is read-only).
    pub pod_tmp_bytes: u64,
    /// The most of a pod's output the Docker Engine keeps (json-file log driver, `max-size` of
    /// each of two files).
    pub pod_log_bytes: u64,
}

impl Default for DiskLimits {
    fn default() -> DiskLimits {
        DiskLimits {
            tenant_bytes: 16 * GIB,
            downlink_file_bytes: 2 * GIB,
            build_context_bytes: 2 * GIB,
            build_bytes: 8 * GIB,
            archive_bytes: 4 * GIB,
            object_store_bytes: 32 * GIB,
            reserve_bytes: 256 * MIB,
            pod_tmp_bytes: 64 * MIB,
            pod_log_bytes: 16 * MIB,
        }
    }
}

impl DiskLimits {
    /// Reads limits from a JSON file: an object whose fields are those of [`DiskLimits`] (any
    /// left out keep their default), e.g. `{"tenant_bytes": 1073741824}`, and perhaps `quotas`,
    /// which [`Quotas::load`](crate::Quotas::load) reads.
    pub fn load(path: &Path) -> Result<DiskLimits, Error> {
        let not_limits = |e: serde_json::Error| {
            Error::new(
                ErrorKind::Invalid,
                format!("{}: not a limits file: {e}", path.display()),
            )
        };
        let mut file = read_limits_file(path)?;
        file.remove("quotas");
        let limits: DiskLimits =
            serde_json::from_value(serde_json::Value::Object(file)).map_err(not_limits)?;
        limits
            .check()
            .map_err(|m| Error::new(ErrorKind::Invalid, format!("{}: {m}", path.display())))?;
        Ok(limits)
    }

    /// Refuses limits that cannot work: a zero limit, a tmpfs below 1 MiB, a log below 64 KiB.
    pub fn check(&self) -> Result<(), String> {
        let fields = [
            ("tenant_bytes", self.tenant_bytes),
            ("downlink_file_bytes", self.downlink_file_bytes),
            ("build_context_bytes", self.build_context_bytes),
            ("build_bytes", self.build_bytes),
            ("archive_bytes", self.archive_bytes),
            ("object_store_bytes", self.object_store_bytes),
            ("reserve_bytes", self.reserve_bytes),
        ];
        for (name, value) in fields {
            if value == 0 {
                return Err(format!("{name} must be more than 0"));
            }
        }
        if self.pod_tmp_bytes < MIB {
            return Err("pod_tmp_bytes must be at least 1 MiB".into());
        }
        if self.pod_log_bytes < 64 * KIB {
            return Err("pod_log_bytes must be at least 64 KiB".into());
        }
        Ok(())
    }
}

/// The members of the limits file at `path` (a JSON object), read once for the disk limits
/// and once for the quotas.
pub(crate) fn read_limits_file(
    path: &Path,
) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    let text = fs::read(path).map_err(|e| Error::io("cannot read the limits", path, e))?;
    serde_json::from_slice(&text).map_err(|e| {
        Error::new(
            ErrorKind::Invalid,
            format!("{}: not a limits file: {e}", path.display()),
        )
    })
}

/// A size as people read it: `8589934592 bytes (8.0 GiB)`.
pub(crate) fn size(bytes: u64) -> String {
    let (unit, div) = match bytes {
        b if b >= GIB => ("GiB", GIB),
        b if b >= MIB => ("MiB", MIB),
        b if b >= KIB => ("KiB", KIB),
        _ => return format!("{bytes} bytes"),
    };
    format!("{bytes} bytes ({:.1} {unit})", bytes as f64 / div as f64)
}

/// The sum of the logical sizes of the regular files under `dir` (symlinks not followed), and
/// how the walk ended: unless [`Walked::Whole`], not everything was counted (more than
/// [`crate::volumes::MAX_WALK`] entries, a folder that could not be read, folders nested too
/// deep), and the sum is only a floor. A missing folder holds 0 bytes. Blocking.
pub(crate) fn logical_usage(dir: &Path) -> (u64, Walked) {
    // Walked by descriptors: a folder a pod swaps for a symlink is never followed.
    let open = match crate::volumes::VolumeDir::open_path(dir) {
        Ok(open) => open,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (0, Walked::Whole),
        Err(e) => return (0, Walked::Incomplete(format!("{}: {e}", dir.display()))),
    };
    let mut total = 0u64;
    let walked = crate::volumes::visit(open.fd(), u32::MAX, crate::volumes::MAX_WALK, &mut |e| {
        if e.meta.is_file() {
            total = total.saturating_add(e.meta.len);
        }
        Ok(())
    })
    .unwrap_or_else(|e| Walked::Incomplete(e.to_string()));
    (total, walked)
}

/// Why a measure of `what` that did not end [`Walked::Whole`] cannot be trusted, for the task
/// that needed it (`None` when it can).
pub(crate) fn unmeasured(what: &str, walked: &Walked) -> Option<String> {
    match walked {
        Walked::Whole => None,
        Walked::Capped => Some(format!(
            "{what} cannot be measured: it holds more than {} entries; delete some first",
            crate::volumes::MAX_WALK
        )),
        Walked::Incomplete(why) => Some(format!(
            "{what} cannot be measured, so nothing that needs its size runs: {why}"
        )),
    }
}

/// Bytes free for an unprivileged writer on the filesystem holding `path`.
pub(crate) fn free_bytes(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The ballast that holds the agent's reserve (see the module's documentation).
#[derive(Debug)]
pub(crate) struct Reserve {
    path: PathBuf,
    bytes: u64,
    /// Whether the ballast is in place (false after it was released).
    held: Mutex<bool>,
}

/// What [`Reserve::check`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReserveChange {
    /// Nothing.
    None,
    /// The filesystem was nearly full: the ballast was deleted.
    Released,
    /// There was room again: the ballast was put back.
    Restored,
}

impl Reserve {
    /// The ballast file `state_dir/reserve.ballast` of `bytes`, made (or completed) now. When
    /// there is no room for it the agent still starts, without it, and tries again later; when
    /// the filesystem is full already (the agent restarts on a full disk), the ballast left by
    /// the previous run is released at once, before the link's state is opened.
    pub(crate) fn open(state_dir: &Path, bytes: u64) -> Reserve {
        let reserve = Reserve {
            path: state_dir.join("reserve.ballast"),
            bytes,
            held: Mutex::new(false),
        };
        match reserve.allocate() {
            Ok(()) => *reserve.held.lock().unwrap_or_else(|p| p.into_inner()) = true,
            Err(e) => tracing::warn!(
                path = %reserve.path.display(),
                error = %e,
                "cannot allocate the state reserve; running without it for now"
            ),
        }
        reserve.check();
        reserve
    }

    /// Where the ballast is.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the ballast is in place.
    #[cfg(test)]
    pub(crate) fn held(&self) -> bool {
        *self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn allocate(&self) -> io::Result<()> {
        let result = (|| {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.path)?;
            // Blocks really allocated, not a sparse file: the space is taken now.
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, self.bytes)
                .map_err(io::Error::from)?;
            file.set_len(self.bytes)?;
            file.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&self.path);
        }
        result
    }

    /// Releases the ballast when free space on its filesystem is below half the reserve, and
    /// puts it back when there is room for it and as much again. Blocking (a statvfs, perhaps a
    /// delete or an allocation).
    pub(crate) fn check(&self) -> ReserveChange {
        let Some(dir) = self.path.parent() else {
            return ReserveChange::None;
        };
        let Ok(free) = free_bytes(dir) else {
            return ReserveChange::None;
        };
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if *held && free < self.bytes / 2 {
            match fs::remove_file(&self.path) {
                Ok(()) => {
                    *held = false;
                    if let Ok(d) = File::open(dir) {
                        let _ = d.sync_all();
                    }
                    tracing::error!(
                        free = free,
                        reserve = self.bytes,
                        "the state folder's filesystem is nearly full: released the state reserve"
                    );
                    return ReserveChange::Released;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot release the state reserve");
                }
            }
        } else if !*held && free >= self.bytes.saturating_mul(2) && self.allocate().is_ok() {
            *held = true;
            tracing::info!(reserve = self.bytes, "the state reserve is back in place");
            return ReserveChange::Restored;
        }
        ReserveChange::None
    }
}

/// How often [`keep_reserve`] looks at free space.
const RESERVE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Releases and restores the ballast as free space comes and goes ([`Reserve::check`]), every
/// [`RESERVE_CHECK`], for as long as the agent runs. Never returns.
pub(crate) async fn keep_reserve(disk: Arc<Disk>) -> Result<(), Error> {
    let mut every = tokio::time::interval(RESERVE_CHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let disk = disk.clone();
        let _ = tokio::task::spawn_blocking(move || disk.reserve.check()).await;
    }
}

/// What a running build is watched by: the engine's data root and its free space when the
/// build started and at the last look. The classic builder has no storage quota, so the fall of
/// free space on the filesystem of the data root is what the build is measured by (anything
/// else writing there meanwhile counts too: the measure errs toward stopping).
#[derive(Debug)]
pub(crate) struct BuildWatch {
    root: PathBuf,
    start_free: u64,
    last_free: u64,
}

/// Why a build cannot be watched.
fn unwatchable(root: &Path, e: &io::Error) -> String {
    format!(
        "the free space of the Docker Engine's data root {} cannot be read ({e}); a build runs only while its storage can be watched",
        root.display()
    )
}

/// The disk limits and the reserve, as the tasks see them.
#[derive(Debug)]
pub(crate) struct Disk {
    pub(crate) limits: DiskLimits,
    pub(crate) reserve: Reserve,
    /// The folder whose filesystem holds the volumes.
    pub(crate) volumes_dir: PathBuf,
    /// The link endpoint's state folder (`state_dir/link`): its spools are objects on their way
    /// into the object store.
    link_dir: PathBuf,
    /// Free space as the tests want it seen, instead of the filesystem's.
    #[cfg(test)]
    pub(crate) free_override: Mutex<Option<u64>>,
    /// Free space as the tests want it seen at one path, over `free_override`.
    #[cfg(test)]
    pub(crate) free_override_at: Mutex<std::collections::HashMap<PathBuf, u64>>,
}

impl Disk {
    pub(crate) fn open(limits: DiskLimits, state_dir: &Path, volumes_dir: &Path) -> Disk {
        Disk {
            limits,
            reserve: Reserve::open(state_dir, limits.reserve_bytes),
            volumes_dir: volumes_dir.to_path_buf(),
            link_dir: state_dir.join("link"),
            #[cfg(test)]
            free_override: Mutex::new(None),
            #[cfg(test)]
            free_override_at: Mutex::default(),
        }
    }

    /// Free space under the volumes folder. Blocking.
    pub(crate) fn free(&self) -> io::Result<u64> {
        self.free_at(&self.volumes_dir)
    }

    /// Free space on the filesystem holding `path` (in tests, what `free_override_at` says
    /// for that path, else what `free_override` says, for every filesystem). Blocking.
    pub(crate) fn free_at(&self, path: &Path) -> io::Result<u64> {
        #[cfg(test)]
        {
            let at = self
                .free_override_at
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(free) = at.get(path) {
                return Ok(*free);
            }
        }
        #[cfg(test)]
        if let Some(free) = *self.free_override.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(free);
        }
        free_bytes(path)
    }

    /// `Err(message)` when free space under the volumes folder is below the reserve.
    pub(crate) fn room_for_work(&self) -> Result<(), String> {
        match self.free() {
            Ok(free) if free < self.limits.reserve_bytes => Err(format!(
                "the disk is full: {} free under the volumes, below the limit of {} kept for the agent's own state",
                size(free),
                size(self.limits.reserve_bytes)
            )),
            _ => Ok(()),
        }
    }

    /// `Err(message)` unless free space at the Docker Engine's data root `root` holds `needed`
    /// bytes (`what` says of what) beyond the reserve; also when it cannot be read.
    pub(crate) fn room_for_build(
        &self,
        root: &Path,
        needed: u64,
        what: &str,
    ) -> Result<(), String> {
        let free = self.free_at(root).map_err(|e| unwatchable(root, &e))?;
        let wanted = needed.saturating_add(self.limits.reserve_bytes);
        if free < wanted {
            return Err(format!(
                "not enough disk: {} free under the Docker Engine's data root {}, and {what} may need {} beyond the {} kept for the agent's own state",
                size(free),
                root.display(),
                size(needed),
                size(self.limits.reserve_bytes)
            ));
        }
        Ok(())
    }

    /// Starts watching a build whose engine stores under `root` (see [`BuildWatch`]); `Err`
    /// when its free space cannot be read: a build runs only while it can be watched.
    pub(crate) fn watch_build(&self, root: &Path) -> Result<BuildWatch, String> {
        let free = self.free_at(root).map_err(|e| unwatchable(root, &e))?;
        Ok(BuildWatch {
            root: root.to_path_buf(),
            start_free: free,
            last_free: free,
        })
    }

    /// One look at a running build's storage: `Err(why it must stop)` when free space at the
    /// engine's data root is below the reserve, or would be by the next look at the pace it
    /// fell since the last; when the build took more than `build_bytes` of it since it started;
    /// or when it cannot be read. Blocking (a statvfs).
    pub(crate) fn check_build(&self, watch: &mut BuildWatch) -> Result<(), String> {
        let root = &watch.root;
        let free = self.free_at(root).map_err(|e| unwatchable(root, &e))?;
        let falling = watch.last_free.saturating_sub(free);
        watch.last_free = free;
        let reserve = self.limits.reserve_bytes;
        if free < reserve {
            return Err(format!(
                "the disk is full: {} free under the Docker Engine's data root {}, below the limit of {} kept for the agent's own state",
                size(free),
                root.display(),
                size(reserve)
            ));
        }
        if free.saturating_sub(falling) < reserve {
            return Err(format!(
                "the disk is nearly full: {} free under the Docker Engine's data root {}, {} less than at the last look, would be below the limit of {} kept for the agent's own state by the next",
                size(free),
                root.display(),
                size(falling),
                size(reserve)
            ));
        }
        let took = watch.start_free.saturating_sub(free);
        if took > self.limits.build_bytes {
            return Err(format!(
                "what it wrote to the Docker Engine's storage ({}) is {}, over the limit of {} of a build",
                root.display(),
                size(took),
                size(self.limits.build_bytes)
            ));
        }
        Ok(())
    }

    /// Whether the link may take an object of `size` bytes the ground offers (the endpoint's
    /// admission, see [`admission`]): the object store, with what it is receiving, must stay
    /// within its limit, and the disk must keep the reserve free beyond it.
    fn admit(&self, objects: &Path, usage: u64, size: u64) -> Result<(), String> {
        let cap = self.limits.object_store_bytes;
        let total = usage.saturating_add(size);
        if total > cap {
            return Err(format!(
                "no room onboard for an object of {}: the object store would hold {}, over its limit of {}",
                self::size(size),
                self::size(total),
                self::size(cap)
            ));
        }
        let Ok(free) = self.free_at(objects) else {
            return Ok(());
        };
        let wanted = size.saturating_add(self.limits.reserve_bytes);
        if free < wanted {
            return Err(format!(
                "no room onboard for an object of {}: {} free, and {} are kept for the agent's own state",
                self::size(size),
                self::size(free),
                self::size(self.limits.reserve_bytes)
            ));
        }
        Ok(())
    }

    /// What the object store holds and is receiving, in logical sizes: its objects under
    /// `objects` and the objects the link is still spooling (each at its offered size), which
    /// land in it when complete; `Err(why)` when the walk of `objects` could not count it all.
    /// Blocking.
    pub(crate) fn object_store_usage(&self, objects: &Path) -> Result<u64, String> {
        let (stored, walked) = logical_usage(objects);
        if let Some(why) = unmeasured("the object store", &walked) {
            return Err(why);
        }
        let incoming = link::FileStore::incoming_object_bytes(&self.link_dir);
        Ok(stored.saturating_add(incoming))
    }
}

/// How long a measure of the object store serves the admissions that follow it (each adds the
/// size it admitted): a plan of thousands of files is not a walk of the store per file.
const ADMISSION_MEASURE: std::time::Duration = std::time::Duration::from_secs(5);

/// The link endpoint's judgement of the objects the ground offers: see [`Disk::admit`]. The
/// object store is measured at most every [`ADMISSION_MEASURE`]; objects admitted meanwhile are
/// added to the measure.
pub(crate) fn admission(disk: Arc<Disk>, objects: PathBuf) -> link::Admission {
    let measured: Mutex<Option<(std::time::Instant, u64)>> = Mutex::new(None);
    link::Admission::new(move |size| {
        let mut m = measured.lock().unwrap_or_else(|p| p.into_inner());
        let (at, usage) = match *m {
            Some((at, usage)) if at.elapsed() < ADMISSION_MEASURE => (at, usage),
            // A store that cannot be measured takes nothing more (fail closed).
            _ => (
                std::time::Instant::now(),
                disk.object_store_usage(&objects)?,
            ),
        };
        let judged = disk.admit(&objects, usage, size);
        let usage = match judged {
            Ok(()) => usage.saturating_add(size),
            Err(_) => usage,
        };
        *m = Some((at, usage));
        judged
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn limits_load_with_defaults_and_refuse_nonsense() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("limits.json");
        fs::write(&p, br#"{"tenant_bytes": 1048576, "reserve_bytes": 4096}"#).unwrap();
        let l = DiskLimits::load(&p).unwrap();
        assert_eq!(l.tenant_bytes, 1 << 20);
        assert_eq!(l.reserve_bytes, 4096);
        assert_eq!(
            l.downlink_file_bytes,
            DiskLimits::default().downlink_file_bytes
        );
        fs::write(&p, br#"{"tenant_byte": 1}"#).unwrap();
        let e = DiskLimits::load(&p).unwrap_err().to_string();
        assert!(e.contains("unknown field `tenant_byte`"), "{e}");
        fs::write(&p, br#"{"archive_bytes": 0}"#).unwrap();
        let e = DiskLimits::load(&p).unwrap_err().to_string();
        assert!(e.contains("archive_bytes must be more than 0"), "{e}");
        assert!(DiskLimits::load(&dir.path().join("nope")).is_err());
        DiskLimits::default().check().unwrap();
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(size(8 << 30), "8589934592 bytes (8.0 GiB)");
        assert_eq!(size(10), "10 bytes");
    }

    #[test]
    fn usage_is_logical() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("sparse")).unwrap();
        f.set_len(8 << 30).unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/x"), b"abc").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        assert_eq!(logical_usage(dir.path()), ((8 << 30) + 3, Walked::Whole));
        assert_eq!(logical_usage(&dir.path().join("nope")), (0, Walked::Whole));
    }

    /// A tmpfs of `bytes` mounted on a fresh folder (the tests run as root), unmounted on drop.
    struct SmallFs {
        dir: tempfile::TempDir,
    }

    impl SmallFs {
        fn new(bytes: u64) -> SmallFs {
            let dir = tempfile::tempdir().unwrap();
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
                .arg(dir.path())
                .status()
                .expect("mount");
            assert!(
                status.success(),
                "this test mounts a small tmpfs, which needs root"
            );
            SmallFs { dir }
        }
    }

    impl Drop for SmallFs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg(self.dir.path())
                .status();
        }
    }

    /// Issue 11: the link takes an object the ground offers only if the object store stays
    /// within its limit with it (what it holds, what the link is spooling, what was admitted
    /// since the last measure) and the reserve stays free beyond it.
    #[test]
    fn offered_objects_are_admitted_within_the_store_limit_and_the_reserve() {
        let small = SmallFs::new(32 * MIB);
        let (state, volumes) = (small.dir.path().join("state"), small.dir.path().join("v"));
        let objects = state.join("objects");
        fs::create_dir_all(&objects).unwrap();
        fs::create_dir_all(&volumes).unwrap();
        fs::write(objects.join("held"), vec![1u8; 600 << 10]).unwrap();
        let limits = DiskLimits {
            object_store_bytes: 2 * MIB,
            reserve_bytes: 8 * MIB,
            ..DiskLimits::default()
        };
        let admit = admission(Arc::new(Disk::open(limits, &state, &volumes)), objects);
        // 600 KiB held: 1 MiB fits, and then only what is left of the 2 MiB.
        admit.admit(MIB).unwrap();
        let e = admit.admit(500 << 10).unwrap_err();
        assert_eq!(
            e,
            "no room onboard for an object of 512000 bytes (500.0 KiB): the object store would hold 2174976 bytes (2.1 MiB), over its limit of 2097152 bytes (2.0 MiB)"
        );
        admit.admit(400 << 10).unwrap();
        // Within the store's limit, but not beside the reserve: 32 MiB, 8 of them the ballast.
        let limits = DiskLimits {
            object_store_bytes: 64 * MIB,
            ..limits
        };
        let state = small.dir.path().join("state2");
        fs::create_dir_all(state.join("objects")).unwrap();
        let admit = admission(
            Arc::new(Disk::open(limits, &state, &volumes)),
            state.join("objects"),
        );
        let e = admit.admit(20 * MIB).unwrap_err();
        assert!(
            e.starts_with("no room onboard for an object of 20971520 bytes (20.0 MiB): ")
                && e.ends_with(
                    " free, and 8388608 bytes (8.0 MiB) are kept for the agent's own state"
                ),
            "{e}"
        );
        admit.admit(MIB).unwrap();
    }

    /// The admission reads free space as every other check does (`Disk::free_at`), so what the
    /// tests set is what it judges by.
    #[test]
    fn admission_reads_free_space_as_the_other_checks_do() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        fs::create_dir_all(&objects).unwrap();
        let limits = DiskLimits {
            reserve_bytes: MIB,
            ..DiskLimits::default()
        };
        let disk = Arc::new(Disk::open(limits, dir.path(), dir.path()));
        *disk.free_override.lock().unwrap() = Some(MIB + 10);
        let admit = admission(disk.clone(), objects);
        admit.admit(10).unwrap();
        let e = admit.admit(11).unwrap_err();
        assert_eq!(
            e,
            "no room onboard for an object of 11 bytes: 1048586 bytes (1.0 MiB) free, and 1048576 bytes (1.0 MiB) are kept for the agent's own state"
        );
    }

    #[test]
    fn the_reserve_keeps_state_writable_when_the_volumes_fill_the_disk() {
        let small = SmallFs::new(32 * MIB);
        let (state, volumes) = (small.dir.path().join("state"), small.dir.path().join("v"));
        fs::create_dir_all(&state).unwrap();
        fs::create_dir_all(&volumes).unwrap();
        let limits = DiskLimits {
            reserve_bytes: 8 * MIB,
            ..DiskLimits::default()
        };
        let disk = Disk::open(limits, &state, &volumes);
        assert!(disk.reserve.held());
        assert_eq!(fs::metadata(disk.reserve.path()).unwrap().len(), 8 * MIB);
        let free = free_bytes(&state).unwrap();
        assert!(free <= 24 * MIB, "the ballast's blocks are taken: {free}");
        disk.room_for_work().unwrap();
        assert_eq!(disk.reserve.check(), ReserveChange::None);

        // A pod fills the volumes to the last block.
        let mut fill = File::create(volumes.join("fill")).unwrap();
        let chunk = vec![7u8; 256 << 10];
        let err = loop {
            if let Err(e) = fill.write_all(&chunk) {
                break e;
            }
        };
        assert_eq!(err.raw_os_error(), Some(28), "ENOSPC: {err}");
        drop(fill);
        let m = disk.room_for_work().unwrap_err();
        assert!(m.starts_with("the disk is full: "), "{m}");
        // Without the reserve, the agent's state could not be written now.
        let counters = state.join("counters.json");
        let record = vec![1u8; MIB as usize];
        assert!(crate::fsutil::write_atomic(&counters, &record).is_err());

        // The agent's check releases the ballast: its state is writable again.
        assert_eq!(disk.reserve.check(), ReserveChange::Released);
        assert!(!disk.reserve.held() && !disk.reserve.path().exists());
        crate::fsutil::write_atomic(&counters, &record).unwrap();
        crate::fsutil::write_atomic(&state.join("plans.json"), &record).unwrap();
        assert_eq!(fs::read(&counters).unwrap(), record);
        assert_eq!(disk.reserve.check(), ReserveChange::None);

        // An agent that starts again on a full disk releases the ballast its previous run left
        // at its first look, before anything else is written.
        fs::remove_file(volumes.join("fill")).unwrap();
        let disk = Disk::open(limits, &state, &volumes);
        assert!(disk.reserve.held());
        let mut fill = File::create(volumes.join("fill")).unwrap();
        while fill.write_all(&chunk).is_ok() {}
        drop(fill);
        drop(disk);
        assert!(state.join("reserve.ballast").exists());
        let disk = Disk::open(limits, &state, &volumes);
        assert!(!disk.reserve.held() && !disk.reserve.path().exists());
        crate::fsutil::write_atomic(&counters, &record).unwrap();

        // Once the volumes are emptied, the ballast comes back.
        fs::remove_file(volumes.join("fill")).unwrap();
        assert_eq!(disk.reserve.check(), ReserveChange::Restored);
        assert!(disk.reserve.held());
        assert_eq!(fs::metadata(disk.reserve.path()).unwrap().len(), 8 * MIB);
        disk.room_for_work().unwrap();
    }
}
