//! Quotas per tenant, declared by the operator, and the ledger of what each tenant used today.
//!
//! Four quotas, each optional (none set: no quota but the disk limits of `crate::disk`):
//!
//! - `volume_bytes`: all of the tenant's volumes together, in logical sizes (a sparse file counts
//!   at its size); it takes the place of the disk limit `tenant_bytes` for that tenant.
//! - `image_bytes`: the tenant's images, each at the size the engine gives it (`docker images`
//!   SIZE: its layers, its base image's included), each image once whatever its names.
//! - `compute_seconds_per_day`: a pod's wall time times the CPUs of its node class, summed over
//!   the tenant's pods of the day (UTC, by the onboard clock).
//! - `downlink_bytes_per_day`: the bytes the tenant's downlinks sent that day.
//!
//! A breach fails the task that meets it, and nothing else, with `4 EXECUTION_ERROR` and a
//! message naming the quota, the tenant, what was used and the quota: `quota exceeded: downlink
//! bytes per day for tenant acme: 1048576 used of 1048576`. A running pod that uses up its
//! tenant's compute seconds is stopped (SIGTERM, a grace, SIGKILL).
//!
//! The daily counts live in the [`Ledger`], `state_dir/quota-usage.json`, rewritten atomically at
//! each change: a restarted agent goes on counting from there. Each running pod is in it with the
//! instant it was last charged up to, so the time it ran while the agent was down is charged when
//! the agent takes it up again.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};
use crate::fsutil;

const DAY_MS: u64 = 24 * 3600 * 1000;

/// What one tenant may use. Every field is optional; `None` sets no quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quota {
    /// All of the tenant's volumes together, in logical sizes (replaces `tenant_bytes`).
    pub volume_bytes: Option<u64>,
    /// The tenant's images, each once, at the size the engine gives it.
    pub image_bytes: Option<u64>,
    /// Pod wall time times the CPUs of the pod's node class, per UTC day.
    pub compute_seconds_per_day: Option<u64>,
    /// Bytes sent down by the tenant's downlinks, per UTC day.
    pub downlink_bytes_per_day: Option<u64>,
}

/// The quotas of every tenant: the `quotas` member of the flight's limits file
/// (`docs/operations.md`, "Quotas"), e.g.
/// `{"default": {"image_bytes": 4294967296}, "tenants": {"acme": {"downlink_bytes_per_day": 1048576}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// What every tenant gets, field by field, where its own entry sets nothing.
    pub default: Quota,
    /// Each named tenant's own quotas.
    pub tenants: BTreeMap<String, Quota>,
}

impl Quotas {
    /// No quota for anyone.
    pub fn none() -> Quotas {
        Quotas::default()
    }

    /// Reads the `quotas` member of a limits file (the file `DiskLimits::load` reads the rest
    /// of); a file without one sets no quota.
    pub fn load(path: &Path) -> Result<Quotas, Error> {
        let invalid =
            |m: String| Error::new(ErrorKind::Invalid, format!("{}: {m}", path.display()));
        let mut file = crate::disk::read_limits_file(path)?;
        let Some(value) = file.remove("quotas") else {
            return Ok(Quotas::none());
        };
        let quotas: Quotas =
            serde_json::from_value(value).map_err(|e| invalid(format!("quotas: {e}")))?;
        quotas.check().map_err(invalid)?;
        Ok(quotas)
    }

    /// Refuses a tenant that cannot exist (its name is not a tenant name).
    pub fn check(&self) -> Result<(), String> {
        for tenant in self.tenants.keys() {
            crate::names::check_tenant(tenant).map_err(|m| format!("quotas.tenants: {m}"))?;
        }
        Ok(())
    }

    /// The quotas of `tenant`: its own entry, field by field over the default.
    pub(crate) fn of(&self, tenant: &str) -> Quota {
        let own = self.tenants.get(tenant).copied().unwrap_or_default();
        let d = self.default;
        Quota {
            volume_bytes: own.volume_bytes.or(d.volume_bytes),
            image_bytes: own.image_bytes.or(d.image_bytes),
            compute_seconds_per_day: own.compute_seconds_per_day.or(d.compute_seconds_per_day),
            downlink_bytes_per_day: own.downlink_bytes_per_day.or(d.downlink_bytes_per_day),
        }
    }
}

/// Which quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuotaKind {
    VolumeBytes,
    ImageBytes,
    ComputeSecondsPerDay,
    DownlinkBytesPerDay,
}

impl QuotaKind {
    fn name(self) -> &'static str {
        match self {
            QuotaKind::VolumeBytes => "volume bytes",
            QuotaKind::ImageBytes => "image bytes",
            QuotaKind::ComputeSecondsPerDay => "compute seconds per day",
            QuotaKind::DownlinkBytesPerDay => "downlink bytes per day",
        }
    }
}

/// The message of a breach: `quota exceeded: <quota> for tenant <tenant>: <used> used of
/// <quota>`, and what was being done when `detail` says.
pub(crate) fn exceeded(
    kind: QuotaKind,
    tenant: &str,
    used: u64,
    limit: u64,
    detail: Option<&str>,
) -> String {
    let mut m = format!(
        "quota exceeded: {} for tenant {tenant}: {used} used of {limit}",
        kind.name()
    );
    if let Some(d) = detail {
        m.push_str(" (");
        m.push_str(d);
        m.push(')');
    }
    m
}

/// What the tenants used today and the pods being charged, as saved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Book {
    /// The UTC day counted (days since the Unix epoch).
    day: u64,
    tenants: BTreeMap<String, Usage>,
    /// The running pods, by container name.
    pods: BTreeMap<String, PodCharge>,
    /// The downlinks charged today, by `<execution>/<task index>`: a task run again after a
    /// restart is not charged twice.
    #[serde(default)]
    downlinks: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Usage {
    /// CPU-milliseconds of the tenant's pods.
    compute_cpu_ms: u64,
    downlink_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PodCharge {
    tenant: String,
    /// The CPUs it is charged for, in billionths.
    nano_cpus: i64,
    /// Charged for up to this instant (ms since the Unix epoch).
    charged_until_ms: u64,
}

/// The tenants' daily usage, persisted (see the module's documentation). Blocking (a small
/// atomic write at each change); cheap enough to call from async code.
#[derive(Debug)]
pub(crate) struct Ledger {
    path: PathBuf,
    book: Mutex<Book>,
}

impl Ledger {
    /// The ledger of `state_dir`; one that cannot be read or parsed is set aside with a
    /// warning (never written over), and the agent counts from zero.
    pub(crate) fn open(state_dir: &Path) -> Ledger {
        let path = state_dir.join("quota-usage.json");
        let book = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(b) => b,
                Err(e) => {
                    crate::plans::set_aside(&path, "quota ledger", &e);
                    Book::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Book::default(),
            Err(e) => {
                crate::plans::set_aside(&path, "quota ledger", &e);
                Book::default()
            }
        };
        Ledger {
            path,
            book: Mutex::new(book),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the book; `Err(message)` when it cannot be (also logged).
    fn save(&self, book: &Book) -> Result<(), String> {
        let bytes = serde_json::to_vec(book).unwrap_or_default();
        fsutil::write_atomic(&self.path, &bytes).map_err(|e| {
            tracing::error!(file = %self.path.display(), error = %e, "cannot save the quota ledger");
            format!(
                "the quota ledger {} cannot be saved ({e}), and nothing is charged that is not saved",
                self.path.display()
            )
        })
    }

    /// Writes the book for bookkeeping that fails no task (a pod's start, end or removal): a
    /// failure is logged, and the next save writes it.
    fn save_or_log(&self, book: &Book) {
        let _ = self.save(book);
    }

    /// The compute seconds `tenant` used today (whole seconds, rounded down).
    pub(crate) fn compute_seconds(&self, tenant: &str, now_ms: u64) -> u64 {
        let mut book = self.lock();
        roll(&mut book, now_ms);
        book.tenants.get(tenant).map_or(0, |u| u.compute_cpu_ms) / 1000
    }

    /// `Err(message)` when `bytes` more sent down today would take `tenant` over `limit`,
    /// unless the downlink `key` (`<execution>/<task index>`) was charged today already (it is
    /// that task run again). Charges nothing.
    pub(crate) fn check_downlink(
        &self,
        tenant: &str,
        key: &str,
        bytes: u64,
        limit: u64,
        now_ms: u64,
    ) -> Result<(), String> {
        let mut book = self.lock();
        roll(&mut book, now_ms);
        if book.downlinks.contains(key) {
            return Ok(());
        }
        let used = book.tenants.get(tenant).map_or(0, |u| u.downlink_bytes);
        if used.saturating_add(bytes) > limit {
            return Err(exceeded(
                QuotaKind::DownlinkBytesPerDay,
                tenant,
                used,
                limit,
                Some(&format!("this downlink sends {bytes} more")),
            ));
        }
        Ok(())
    }

    /// Adds `bytes` to what `tenant` sent down today for the downlink `key`
    /// (`<execution>/<task index>`), once: a key charged today already is not charged again.
    /// `Err(message)`, with nothing added, when that would take the tenant over `limit`, or
    /// when the ledger cannot be saved (fail closed).
    pub(crate) fn charge_downlink(
        &self,
        tenant: &str,
        key: &str,
        bytes: u64,
        limit: u64,
        now_ms: u64,
    ) -> Result<(), String> {
        let mut book = self.lock();
        roll(&mut book, now_ms);
        if book.downlinks.contains(key) {
            return Ok(());
        }
        let before = book.clone();
        let usage = book.tenants.entry(tenant.to_string()).or_default();
        let after = usage.downlink_bytes.saturating_add(bytes);
        if after > limit {
            let used = usage.downlink_bytes;
            *book = before;
            return Err(exceeded(
                QuotaKind::DownlinkBytesPerDay,
                tenant,
                used,
                limit,
                Some(&format!("this downlink sends {bytes} more")),
            ));
        }
        usage.downlink_bytes = after;
        book.downlinks.insert(key.to_string());
        if let Err(m) = self.save(&book) {
            *book = before;
            return Err(m);
        }
        Ok(())
    }

    /// Starts charging the pod in container `name` for `nano_cpus` from `since_ms`, unless it is
    /// charged already (a pod taken up after a restart goes on from where it was charged up to).
    pub(crate) fn pod_started(&self, name: &str, tenant: &str, nano_cpus: i64, since_ms: u64) {
        let mut book = self.lock();
        if book.pods.contains_key(name) {
            return;
        }
        book.pods.insert(
            name.to_string(),
            PodCharge {
                tenant: tenant.to_string(),
                nano_cpus,
                charged_until_ms: since_ms,
            },
        );
        self.save_or_log(&book);
    }

    /// Charges the pod in container `name` up to `now_ms` (only today's part counts); the
    /// compute seconds its tenant used today, after (`None`: the pod is not charged). `Err`
    /// when the ledger cannot be saved: the charge stays counted here, and the caller stops a
    /// pod whose tenant has a compute quota (fail closed).
    pub(crate) fn charge_pod(&self, name: &str, now_ms: u64) -> Result<Option<u64>, String> {
        let mut book = self.lock();
        roll(&mut book, now_ms);
        let Some(used) = charge(&mut book, name, now_ms) else {
            return Ok(None);
        };
        self.save(&book)?;
        Ok(Some(used))
    }

    /// Charges the pod in container `name` a last time and stops charging it.
    pub(crate) fn pod_ended(&self, name: &str, now_ms: u64) {
        let mut book = self.lock();
        roll(&mut book, now_ms);
        charge(&mut book, name, now_ms);
        if book.pods.remove(name).is_some() {
            self.save_or_log(&book);
        }
    }

    /// The containers of the pods being charged.
    pub(crate) fn pods(&self) -> Vec<String> {
        self.lock().pods.keys().cloned().collect()
    }

    /// Stops charging the pod in container `name` without charging it more (its container is
    /// gone: when it stopped is not known).
    pub(crate) fn forget_pod(&self, name: &str) {
        let mut book = self.lock();
        if book.pods.remove(name).is_some() {
            self.save_or_log(&book);
        }
    }
}

/// Moves the book to the day of `now_ms`: a new day counts from zero, and running pods are
/// charged from its start.
fn roll(book: &mut Book, now_ms: u64) {
    let day = now_ms / DAY_MS;
    if day <= book.day {
        return;
    }
    book.day = day;
    book.tenants.clear();
    book.downlinks.clear();
    for pod in book.pods.values_mut() {
        pod.charged_until_ms = pod.charged_until_ms.max(day * DAY_MS);
    }
}

/// Charges the pod `name` up to `now_ms`; its tenant's compute seconds today, after.
fn charge(book: &mut Book, name: &str, now_ms: u64) -> Option<u64> {
    let pod = book.pods.get_mut(name)?;
    let wall_ms = now_ms.saturating_sub(pod.charged_until_ms);
    pod.charged_until_ms = pod.charged_until_ms.max(now_ms);
    let cpu_ms =
        (u128::from(wall_ms) * u128::from(pod.nano_cpus.max(0) as u64) / 1_000_000_000) as u64;
    let tenant = pod.tenant.clone();
    let usage = book.tenants.entry(tenant).or_default();
    usage.compute_cpu_ms = usage.compute_cpu_ms.saturating_add(cpu_ms);
    Some(usage.compute_cpu_ms / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_load_from_the_limits_file_and_merge_over_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("limits.json");
        fs::write(
            &p,
            br#"{"tenant_bytes": 1048576, "quotas": {"default": {"image_bytes": 10, "downlink_bytes_per_day": 5},
                "tenants": {"acme": {"downlink_bytes_per_day": 7, "compute_seconds_per_day": 60}}}}"#,
        )
        .unwrap();
        let q = Quotas::load(&p).unwrap();
        assert_eq!(
            q.of("acme"),
            Quota {
                volume_bytes: None,
                image_bytes: Some(10),
                compute_seconds_per_day: Some(60),
                downlink_bytes_per_day: Some(7),
            }
        );
        assert_eq!(q.of("bob").downlink_bytes_per_day, Some(5));
        assert_eq!(q.of("bob").compute_seconds_per_day, None);
        // The disk limits read the same file, and leave `quotas` to this.
        assert_eq!(crate::DiskLimits::load(&p).unwrap().tenant_bytes, 1 << 20);
        fs::write(&p, br#"{"tenant_bytes": 1}"#).unwrap();
        assert_eq!(Quotas::load(&p).unwrap(), Quotas::none());
        fs::write(
            &p,
            br#"{"quotas": {"tenants": {"acme": {"downlink_byte": 1}}}}"#,
        )
        .unwrap();
        let e = Quotas::load(&p).unwrap_err().to_string();
        assert!(e.contains("quotas: unknown field `downlink_byte`"), "{e}");
        fs::write(&p, br#"{"quotas": {"tenants": {"../x": {}}}}"#).unwrap();
        let e = Quotas::load(&p).unwrap_err().to_string();
        assert!(e.contains("quotas.tenants: "), "{e}");
    }

    #[test]
    fn breaches_name_the_quota_the_tenant_and_the_numbers() {
        assert_eq!(
            exceeded(
                QuotaKind::DownlinkBytesPerDay,
                "acme",
                1048576,
                1048576,
                None
            ),
            "quota exceeded: downlink bytes per day for tenant acme: 1048576 used of 1048576"
        );
        assert_eq!(
            exceeded(
                QuotaKind::ImageBytes,
                "acme",
                3,
                2,
                Some("after building app:1")
            ),
            "quota exceeded: image bytes for tenant acme: 3 used of 2 (after building app:1)"
        );
    }

    #[test]
    fn the_ledger_counts_per_day_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let day = 20_000 * DAY_MS;
        let ledger = Ledger::open(dir.path());
        ledger
            .charge_downlink("acme", "e1/0", 600, 1000, day + 1)
            .unwrap();
        let e = ledger
            .charge_downlink("acme", "e2/0", 500, 1000, day + 2)
            .unwrap_err();
        assert_eq!(
            e,
            "quota exceeded: downlink bytes per day for tenant acme: 600 used of 1000 (this downlink sends 500 more)"
        );
        ledger
            .charge_downlink("bob", "e3/0", 500, 1000, day + 2)
            .unwrap();
        // A pod of 2 CPUs for 10 s: 20 compute seconds.
        ledger.pod_started("c1", "acme", 2_000_000_000, day + 1000);
        assert_eq!(ledger.charge_pod("c1", day + 6000), Ok(Some(10)));
        drop(ledger);

        // Restarted 4 s later: the pod ran meanwhile and is charged for it.
        let ledger = Ledger::open(dir.path());
        ledger.pod_started("c1", "acme", 2_000_000_000, day + 10_000);
        assert_eq!(ledger.charge_pod("c1", day + 11_000), Ok(Some(20)));
        assert_eq!(ledger.compute_seconds("acme", day + 11_000), 20);
        ledger.pod_ended("c1", day + 12_000);
        assert_eq!(ledger.compute_seconds("acme", day + 13_000), 22);
        assert!(ledger.pods().is_empty());
        assert_eq!(ledger.charge_pod("c1", day + 14_000), Ok(None));
        ledger
            .charge_downlink("acme", "e4/0", 400, 1000, day + 14_000)
            .unwrap();

        // The next day counts from zero; a pod running across midnight is charged from it.
        ledger.pod_started("c2", "acme", 1_000_000_000, day + DAY_MS - 5000);
        assert_eq!(ledger.charge_pod("c2", day + DAY_MS + 3000), Ok(Some(3)));
        ledger
            .charge_downlink("acme", "e5/0", 1000, 1000, day + DAY_MS + 3000)
            .unwrap();

        // An unreadable ledger is set aside; the agent counts from zero.
        drop(ledger);
        fs::write(dir.path().join("quota-usage.json"), b"{nope").unwrap();
        let ledger = Ledger::open(dir.path());
        assert_eq!(ledger.compute_seconds("acme", day + DAY_MS + 4000), 0);
    }

    /// The files beside `path` whose names begin with `<its name>.corrupt-`.
    fn set_aside(path: &Path) -> Vec<PathBuf> {
        let prefix = format!("{}.corrupt-", path.file_name().unwrap().to_string_lossy());
        fs::read_dir(path.parent().unwrap())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect()
    }

    /// A downlink run again (after a restart) is charged once; a ledger that cannot be read is
    /// set aside, not written over, and one that cannot be saved charges nothing.
    #[test]
    fn a_downlink_is_charged_once_and_only_when_saved() {
        let dir = tempfile::tempdir().unwrap();
        let day = 20_000 * DAY_MS;
        let path = dir.path().join("quota-usage.json");
        let ledger = Ledger::open(dir.path());
        ledger
            .charge_downlink("acme", "e1/2", 600, 1000, day)
            .unwrap();
        drop(ledger);
        let ledger = Ledger::open(dir.path());
        // The same task again: nothing more is counted, and it is not refused.
        ledger
            .check_downlink("acme", "e1/2", 600, 1000, day + 1)
            .unwrap();
        ledger
            .charge_downlink("acme", "e1/2", 600, 1000, day + 1)
            .unwrap();
        let e = ledger
            .check_downlink("acme", "e1/3", 500, 1000, day + 2)
            .unwrap_err();
        assert_eq!(
            e,
            "quota exceeded: downlink bytes per day for tenant acme: 600 used of 1000 (this downlink sends 500 more)"
        );
        ledger
            .charge_downlink("acme", "e1/3", 400, 1000, day + 2)
            .unwrap();
        drop(ledger);

        // Unreadable (a folder where the file was): set aside, and counted from zero.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        let ledger = Ledger::open(dir.path());
        assert_eq!(set_aside(&path).len(), 1, "set aside once");
        assert!(!path.exists(), "moved, not written over");
        ledger
            .charge_downlink("acme", "e2/0", 100, 1000, day + 3)
            .unwrap();
        assert!(path.is_file(), "saved afresh");

        // A ledger that cannot be saved charges nothing, and says why.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        let e = ledger
            .charge_downlink("acme", "e2/1", 100, 1000, day + 4)
            .unwrap_err();
        assert!(
            e.starts_with(&format!(
                "the quota ledger {} cannot be saved (",
                path.display()
            )) && e.ends_with("and nothing is charged that is not saved"),
            "{e}"
        );
        // Not counted: 100 of 1000 used, so 900 more fit.
        ledger
            .check_downlink("acme", "e2/1", 900, 1000, day + 5)
            .unwrap();
    }
}
