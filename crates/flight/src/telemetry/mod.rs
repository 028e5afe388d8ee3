//! The onboard telemetry service (`docs/telemetry.md`): Clustergate-2's telemetry API
//! (`reference/clustergate-2.md` §7) served to pods at `http://satellite-telemetry.dphi-tm`.
//!
//! [`Telemetry`] samples the simulated sensors (`model`) every [`SAMPLE_EVERY_MS`] of mission
//! time, from the agent's own SGP4 propagation of its element set (the newest, by epoch, of the
//! one it started with and those its plans carried, kept in `state_dir/telemetry/elements.json`),
//! into a bounded history that survives restarts (`store`), takes a fisheye picture (the camera
//! task's) every [`IMAGE_EVERY_MS`], keeping the last [`MAX_IMAGES`], and answers the API
//! (`http`), read-only but for image requests. Every query is bounded. Its closed one-minute
//! buckets go down to the ground as digests ([`Telemetry::next_digest`], `digest`), sent by the
//! agent (`agent_run`), which keeps a mark of what it sent.
//!
//! Pods reach it on their tenant's internal network: the agent listens on the network's gateway
//! address (`Telemetry::listen_on`), and each pod's `/etc/hosts` names that address
//! [`HOSTNAME`] (see `tasks::pods`).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::MissionClock;

mod digest;
mod http;
mod model;
mod store;
mod zip;

/// The hostname pods reach the service at (the reference's).
pub const HOSTNAME: &str = "satellite-telemetry.dphi-tm";
/// A shorter alias of [`HOSTNAME`].
pub const ALIAS: &str = "telemetry";
/// The port the service listens on in pods' networks (the reference's URL names none).
pub const PORT: u16 = 80;
/// Mission time between samples.
pub const SAMPLE_EVERY_MS: u64 = 10_000;
/// Mission time between pictures.
pub const IMAGE_EVERY_MS: u64 = 600_000;
/// Pictures kept (the reference advises at most 100 a request).
pub const MAX_IMAGES: usize = 100;
/// The pictures' size, pixels a side.
const IMAGE_SIZE: u32 = 256;
/// How long the sampler sleeps when it has no element set, or cannot propagate it, before
/// looking again (a new element set wakes it at once).
const IDLE: Duration = Duration::from_secs(5);

/// Where the agent serves telemetry besides its tenants' networks, and what it starts from.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// An address to serve the API on for operators and tools (the agent's
    /// `--telemetry-listen`), or none: then pods alone reach it.
    pub listen: Option<SocketAddr>,
    /// The element set to start from (the systems file's, for this system), until a plan
    /// brings a newer one.
    pub elements: Option<wire::Elements>,
}

/// The telemetry service: its history, element set, pictures and listeners. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    clock: MissionClock,
    store: Mutex<store::Store>,
    elements: Mutex<Option<Current>>,
    /// Wakes the sampler when the element set changes.
    changed: Arc<Notify>,
    /// Wakes everyone else waiting on the element set (the triggers) when it changes.
    renewed: Arc<Notify>,
    /// The addresses listened on, and their tasks (aborted when the service is dropped).
    listeners: tokio::sync::Mutex<HashMap<SocketAddr, AbortHandle>>,
    /// The sampler's task.
    sampler: Mutex<Option<AbortHandle>>,
    /// The end of the last digest bucket in the link's outbox (`digest`), if any.
    digest_mark: Mutex<Option<u64>>,
}

/// The addresses a telemetry service of this process serves on: several agents of one process
/// (the demo's) on one engine share a tenant network's gateway, and one serves it for all.
static SERVED: Mutex<BTreeSet<SocketAddr>> = Mutex::new(BTreeSet::new());

impl Drop for Inner {
    fn drop(&mut self) {
        let mut served = lock(&SERVED);
        for (addr, task) in self.listeners.get_mut().drain() {
            task.abort();
            served.remove(&addr);
        }
        if let Some(task) = self.sampler.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

/// What one sample read, for the agent's triggers on telemetry.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Mission time of the sample, ms since the Unix epoch.
    pub t_ms: u64,
    /// The battery's state of charge, %.
    pub battery_soc_percent: f64,
    /// `sensor0` to `sensor7`, °C.
    pub temperatures_c: [f64; 8],
    /// `sunlit`, `penumbra` or `umbra`.
    pub illumination: String,
}

/// What became of an element set offered to [`Telemetry::offer_elements`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// Taken, and kept in the state dir.
    Taken,
    /// Taken, but it could not be kept: a restart forgets it (why).
    NotSaved(String),
    /// Not taken: the one held is as new or newer (its epoch, Unix ms).
    NotNewer {
        /// The epoch of the element set held.
        held_epoch_ms: i64,
    },
    /// Not taken: it does not parse or cannot be propagated (why).
    Unusable(String),
}

/// The element set sampled from.
#[derive(Debug, Clone)]
struct Current {
    elements: wire::Elements,
    epoch_ms: i64,
    /// The satellite's catalog number.
    catalog: u32,
    propagator: orbit::Propagator,
}

impl Telemetry {
    /// Opens the service's state in `state_dir/telemetry` (history, element set, pictures),
    /// on mission time `clock`. Samples nothing until [`start`](Telemetry::start).
    pub(crate) fn open(state_dir: &Path, clock: MissionClock) -> std::io::Result<Telemetry> {
        let dir = state_dir.join("telemetry");
        std::fs::create_dir_all(dir.join("images"))?;
        let store = store::Store::open(&dir.join("samples.jsonl"), store::CAPACITY)?;
        let elements = std::fs::read(dir.join("elements.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<wire::Elements>(&b).ok())
            .and_then(|e| current(&e).ok());
        let digest_mark = digest::load_mark(&dir);
        Ok(Telemetry {
            inner: Arc::new(Inner {
                dir,
                clock,
                store: Mutex::new(store),
                elements: Mutex::new(elements),
                changed: Arc::default(),
                renewed: Arc::default(),
                listeners: Default::default(),
                sampler: Mutex::new(None),
                digest_mark: Mutex::new(digest_mark),
            }),
        })
    }

    /// Starts sampling on the current Tokio runtime (once; again, or outside a runtime, does
    /// nothing). The sampler stops when the last handle of the service is dropped.
    pub(crate) fn start(&self) {
        let mut sampler = lock(&self.inner.sampler);
        if let (None, Ok(rt)) = (sampler.as_ref(), tokio::runtime::Handle::try_current()) {
            let weak = Arc::downgrade(&self.inner);
            *sampler = Some(rt.spawn(sample_loop(weak)).abort_handle());
        }
    }

    /// Takes `elements` as the element set if its epoch is later than that of the one held,
    /// keeping it in the state dir (written, synced, renamed) before it is used; one that does
    /// not parse or propagate is ignored. Says what became of it.
    pub fn offer_elements(&self, elements: &wire::Elements) -> Offered {
        let offered = match current(elements) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = e, "telemetry ignores an element set it cannot use");
                return Offered::Unusable(e);
            }
        };
        let mut held = lock(&self.inner.elements);
        if let Some(h) = held.as_ref().filter(|h| h.epoch_ms >= offered.epoch_ms) {
            return Offered::NotNewer {
                held_epoch_ms: h.epoch_ms,
            };
        }
        let saved = serde_json::to_vec(elements)
            .map_err(std::io::Error::other)
            .and_then(|b| crate::fsutil::write_atomic(&self.inner.dir.join("elements.json"), &b));
        if let Err(e) = &saved {
            tracing::warn!(error = %e, "cannot save telemetry's element set; a restart forgets it");
        }
        tracing::info!(
            line1 = elements.line1,
            "telemetry samples a newer element set"
        );
        *held = Some(offered);
        drop(held);
        self.inner.changed.notify_one();
        self.inner.renewed.notify_waiters();
        match saved {
            Ok(()) => Offered::Taken,
            Err(e) => Offered::NotSaved(e.to_string()),
        }
    }

    /// The element set to propagate for a plan that carries `elements`: the newest held, when
    /// it is of the same satellite (catalog number) and its epoch is later; else `elements`
    /// (`docs/triggers.md`).
    pub fn newest_of_satellite(&self, elements: &wire::Elements) -> wire::Elements {
        let Ok(tle) = orbit::parse_elements(elements) else {
            return elements.clone();
        };
        match lock(&self.inner.elements).as_ref() {
            Some(h) if h.catalog == tle.catalog_number && h.epoch_ms > tle.epoch.unix_millis() => {
                h.elements.clone()
            }
            _ => elements.clone(),
        }
    }

    /// The element set held, if any.
    pub fn elements(&self) -> Option<wire::Elements> {
        lock(&self.inner.elements)
            .as_ref()
            .map(|c| c.elements.clone())
    }

    /// Notified (every waiter) whenever a newer element set is taken; enable the `Notified`
    /// before reading the element set, so that none taken in between is missed.
    pub fn renewed(&self) -> Arc<Notify> {
        self.inner.renewed.clone()
    }

    /// Serves the API on `listener` (the agent's own address, or a tests'), until the service
    /// is dropped.
    pub async fn serve(&self, listener: tokio::net::TcpListener) {
        let Ok(addr) = listener.local_addr() else {
            return;
        };
        let mut listeners = self.inner.listeners.lock().await;
        self.spawn_server(&mut listeners, addr, listener);
    }

    /// Serves the API on `ip`:[`PORT`] unless it or another agent of this process does
    /// already: where a tenant network's pods reach it (its gateway). An address another
    /// program holds is an error: the pods would reach that program.
    pub(crate) async fn listen_on(&self, ip: IpAddr) -> std::io::Result<()> {
        let addr = SocketAddr::new(ip, PORT);
        match self.serve_on(addr).await {
            Err(_) if lock(&SERVED).contains(&addr) => Ok(()),
            other => other,
        }
    }

    /// Serves the API on `addr` unless it does already (an operator's address, or a tenant
    /// network's gateway).
    pub async fn serve_on(&self, addr: SocketAddr) -> std::io::Result<()> {
        let mut listeners = self.inner.listeners.lock().await;
        if listeners.get(&addr).is_some_and(|t| !t.is_finished()) {
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(%addr, "telemetry served");
        self.spawn_server(&mut listeners, addr, listener);
        Ok(())
    }

    fn spawn_server(
        &self,
        listeners: &mut HashMap<SocketAddr, AbortHandle>,
        addr: SocketAddr,
        listener: tokio::net::TcpListener,
    ) {
        let app = http::app(Arc::downgrade(&self.inner));
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(%addr, error = %e, "the telemetry service stopped");
            }
        });
        if let Some(old) = listeners.insert(addr, task.abort_handle()) {
            old.abort();
        }
        lock(&SERVED).insert(addr);
    }

    /// What the newest sample read, if there is one: the history's lock is held only to copy
    /// these few values (triggers on telemetry read it, `agent_triggers`).
    pub fn latest_reading(&self) -> Option<Reading> {
        let store = lock(&self.inner.store);
        let s = store.latest()?;
        Some(Reading {
            t_ms: s.t_ms,
            battery_soc_percent: s.power.battery_soc_percent,
            temperatures_c: s.temperatures_c,
            illumination: s.power.illumination.clone(),
        })
    }

    /// The next digest of the history to downlink: its closed buckets after the mark (see
    /// `digest`), at most an hour of them, with the end of its last bucket, to give
    /// [`digest_sent`](Telemetry::digest_sent) once the digest is in the link's outbox. `None`
    /// when no bucket is ready.
    pub fn next_digest(&self) -> Option<(wire::TelemetryDigest, u64)> {
        let mark = *lock(&self.inner.digest_mark);
        let store = lock(&self.inner.store);
        digest::digest_after(store.samples(), mark, digest::BUCKETS_PER_DIGEST)
    }

    /// Remembers that the buckets before `end_ms` are in the link's outbox: in memory at once,
    /// and in the state dir (written, synced, renamed). An error means only the memory has it:
    /// after a restart they go again, which the ground takes as nothing new. It blocks on the
    /// disk (the mark's lock is not held meanwhile): call it off the runtime's threads, one call
    /// at a time (two at once could leave the older mark on disk).
    pub fn digest_sent(&self, end_ms: u64) -> std::io::Result<()> {
        let new = {
            let mut mark = lock(&self.inner.digest_mark);
            let new = mark.map_or(end_ms, |m| m.max(end_ms));
            *mark = Some(new);
            new
        };
        digest::save_mark(&self.inner.dir, new)
    }

    /// The mission clock the service samples by.
    pub fn clock(&self) -> MissionClock {
        self.inner.clock
    }

    /// The samples held, how many (tests).
    #[doc(hidden)]
    pub fn sample_count(&self) -> usize {
        lock(&self.inner.store).samples().len()
    }
}

/// Samples every [`SAMPLE_EVERY_MS`] of mission time while the service lives: catches up from
/// the last sample held (at most the history's capacity), appends, sleeps until the next.
async fn sample_loop(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let now = inner.clock.now_ms();
        let current = lock(&inner.elements).clone();
        let next = match current {
            None => None,
            Some(current) => {
                let grown = {
                    let inner = inner.clone();
                    tokio::task::spawn_blocking(move || catch_up(&inner, &current, now)).await
                };
                match grown {
                    Ok(Ok(next)) => Some(next),
                    Ok(Err(e)) => {
                        tracing::warn!(error = e, "telemetry cannot sample");
                        None
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "telemetry's sampler failed");
                        None
                    }
                }
            }
        };
        // Asleep, the sampler holds no strong handle: the service can go meanwhile.
        let (clock, changed) = (inner.clock, inner.changed.clone());
        drop(inner);
        let sleep = async {
            match next {
                Some(at) => clock.sleep_until(at).await,
                None => tokio::time::sleep(IDLE).await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = changed.notified() => {}
        }
    }
}

/// Makes and stores the samples due up to `now` (mission ms); the time of the next one.
fn catch_up(inner: &Inner, current: &Current, now: u64) -> Result<u64, String> {
    // The store is locked only to read where it ends and to append: the requests that read it
    // meanwhile never wait for the propagation. (The sampler alone appends.)
    let last = lock(&inner.store).latest().cloned();
    let floor = now / SAMPLE_EVERY_MS * SAMPLE_EVERY_MS;
    let earliest = floor.saturating_sub((store::CAPACITY as u64 - 1) * SAMPLE_EVERY_MS);
    let first = match &last {
        Some(last) => (last.t_ms + SAMPLE_EVERY_MS).max(earliest),
        None => floor,
    };
    let tle = three_lines(&current.elements);
    let mut batch: Vec<model::Sample> = Vec::new();
    let mut error = None;
    let mut t = first;
    while t <= now {
        let at = orbit::Epoch::from_unix_millis(t as i64);
        match current.propagator.state_teme(at) {
            Ok(state) => {
                let previous = batch.last().or(last.as_ref());
                let s = model::sample(previous, t, &state, orbit::sun_position_km(at), &tle);
                batch.push(s);
            }
            Err(e) => error = Some(e.to_string()),
        }
        t += SAMPLE_EVERY_MS;
    }
    let pictures: Vec<u64> = batch
        .iter()
        .map(|s| s.t_ms)
        .filter(|t| t % IMAGE_EVERY_MS == 0)
        .collect();
    lock(&inner.store)
        .append(batch)
        .map_err(|e| format!("cannot append to the history: {e}"))?;
    // Only the pictures that can be kept are taken.
    let skip = pictures.len().saturating_sub(MAX_IMAGES);
    for t in &pictures[skip..] {
        take_picture(&inner.dir.join("images"), *t);
    }
    if !pictures.is_empty() {
        prune_pictures(&inner.dir.join("images"));
    }
    match error {
        Some(e) => Err(e),
        None => Ok(t),
    }
}

/// A fisheye picture at mission time `t_ms`, named by it (`20261203T002500Z.png`).
fn take_picture(dir: &Path, t_ms: u64) {
    let at = UNIX_EPOCH + Duration::from_millis(t_ms);
    let written = crate::tasks::fisheye_png(IMAGE_SIZE, at)
        .map_err(std::io::Error::other)
        .and_then(|png| crate::fsutil::write_atomic(&dir.join(image_name(t_ms)), &png));
    if let Err(e) = written {
        tracing::warn!(error = %e, "telemetry cannot keep a picture");
    }
}

/// `20261203T002500Z.png`.
fn image_name(t_ms: u64) -> String {
    let stamp = wire::rfc3339(t_ms).replace(['-', ':'], "");
    format!("{stamp}.png")
}

/// The pictures kept, oldest first (their names sort by time).
fn pictures(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".png") && !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// Removes all but the newest [`MAX_IMAGES`] pictures.
fn prune_pictures(dir: &Path) {
    let names = pictures(dir);
    let extra = names.len().saturating_sub(MAX_IMAGES);
    for name in &names[..extra] {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

/// The element set ready to propagate, or why it is not.
fn current(elements: &wire::Elements) -> Result<Current, String> {
    let tle = orbit::parse_elements(elements).map_err(|e| e.to_string())?;
    let propagator = orbit::Propagator::new(&tle).map_err(|e| e.to_string())?;
    Ok(Current {
        elements: elements.clone(),
        epoch_ms: tle.epoch.unix_millis(),
        catalog: tle.catalog_number,
        propagator,
    })
}

/// The element set as text: its name line if any, then its two lines.
fn three_lines(e: &wire::Elements) -> String {
    let mut out = String::new();
    if let Some(name) = &e.name {
        out.push_str(name);
        out.push('\n');
    }
    out.push_str(&e.line1);
    out.push('\n');
    out.push_str(&e.line2);
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
