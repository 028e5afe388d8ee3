//! The uplink encoder: each object a system asks for with a `Want` is sent as the smallest of
//! the object itself, the object compressed (`delta`'s whole-zstd kind) or a delta against an
//! object the system holds (zstd with a reference, bsdiff, the executable-aware kind), and for a
//! tar archive (`docker save`), the layers kind: the members that are layers of the catalogue's
//! images onboard (`mirror::onboard_layers`, as the system reported them) are left out.
//!
//! # The flow
//!
//! The system's handler records each wanted object in `uplink_wants` ([`want`]) and returns: the
//! row is the commitment, so the `Want` is acknowledged once it is stored, and patches (seconds
//! of CPU for a large binary) are never made on the handler's path. One encoder task per system
//! ([`Encoder::run`]) takes the rows oldest first, makes what is missing on the blocking pool,
//! queues the result on the system's link, records it per execution (`execution_sends`, what the
//! API reports as the bytes on the wire) and deletes the row. A ground restarted meanwhile finds
//! the rows and goes on.
//!
//! A patch is a blob, made once for each (base, target) and remembered in `encodings`; it crosses
//! the link as an object transfer named by its own digest (resumable like any object), announced
//! by a `Patches` message queued just before it, which tells the flight what it makes. The flight
//! applies it, verifies the result's sha256 and only then stores the object; a patch that fails
//! makes it ask again with `whole`, and the object itself is sent.
//!
//! # Which bases
//!
//! A base must be one the system names as held (the flight knows what it holds; the ground's
//! mirror may be behind), a blob the ground has, at most [`wire::MAX_PATCHED_OBJECT`] bytes, and
//! the content of a file in a namespace of a tenant whose unfinished execution needs the target:
//! a delta shows its base's bytes wherever the two files differ, so a system could otherwise learn
//! another tenant's files by naming them. Objects above [`wire::MAX_PATCHED_OBJECT`] go as
//! themselves (the flight applies patches in memory).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use link::MessageSender;
use tokio::sync::Notify;
use wire::{Digest, MAX_PATCHED_OBJECT, MAX_WANT_BASES, Message, PatchOffer, WantedObject};

use crate::db::{self, Encoding, SentRow, UplinkWant};
use crate::error::Error;
use crate::{Core, time};

/// The priority of the objects an uplink needs, patches included (messages go first, at 0).
pub(crate) const UPLINK_PRIORITY: u8 = 2;

/// How many wants one pass of the encoder reads.
const WANTS_PER_PASS: i64 = 64;

/// How long the encoder waits after a database error before it reads the wants again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// How an object is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Choice {
    /// As itself.
    Raw,
    /// As a patch smaller than the object.
    Patch(Encoding),
}

impl Choice {
    /// `raw`, or the patch's kind.
    pub(crate) fn kind(&self) -> &str {
        match self {
            Choice::Raw => "raw",
            Choice::Patch(e) => &e.kind,
        }
    }
}

/// Records the objects a `Want` asks for, for the encoder of `system` (see the module
/// documentation); the caller wakes it.
pub(crate) async fn want(
    core: &Core,
    system: &str,
    objects: Vec<WantedObject>,
) -> Result<(), Error> {
    let now = time::now_ms();
    let mut tx = db::write_tx(&core.db).await?;
    for o in objects {
        let mut bases = o.bases;
        bases.truncate(MAX_WANT_BASES);
        let want = UplinkWant {
            target: o.digest,
            bases,
            whole: o.whole,
        };
        db::record_want(&mut tx, system, &want, now).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The smallest way to send `target` (of `raw_size` bytes) to a system holding `bases` and
/// able to produce the image layers `layers` (DiffIDs of its catalogue images' layers: public,
/// never a tenant's), for executions of `tenants`: making and storing the patches it has not
/// made before (on the blocking pool). Bases the tenants may not read, that the ground lacks or
/// that are too large are passed over.
pub(crate) async fn choose(
    core: &Core,
    target: &Digest,
    raw_size: u64,
    bases: &[Digest],
    tenants: &[String],
    layers: &HashSet<[u8; 32]>,
) -> Result<Choice, Error> {
    if raw_size > MAX_PATCHED_OBJECT {
        return Ok(Choice::Raw);
    }
    let mut candidates: Vec<Option<Digest>> = vec![None];
    for b in bases.iter().take(MAX_WANT_BASES) {
        if b == target || candidates.contains(&Some(*b)) {
            continue;
        }
        // Only a base the tenants may read is looked at (and fetched from a shared store).
        if !db::tenant_reads_blob(&core.db, tenants, b).await? {
            continue;
        }
        let fits = core
            .blobs
            .size(b)
            .await
            .is_some_and(|s| s <= MAX_PATCHED_OBJECT);
        if fits {
            candidates.push(Some(*b));
        }
    }
    let mut best: Option<Encoding> = None;
    // A layers patch is kept under a key naming the set of layers it may leave out: made for
    // one set, it is looked up again only for that set.
    // Only a tar archive can go as a layers patch: a file that does not start like one is not
    // read whole again for it.
    let layers = (!layers.is_empty() && starts_like_tar(core, target)).then(|| {
        let mut ids: Vec<Digest> = layers.iter().map(|d| Digest(*d)).collect();
        ids.sort();
        (
            wire::objects_digest(&ids),
            std::sync::Arc::new(layers.clone()),
        )
    });
    // Whether the archive holds no layer onboard (the layers try without a base, made first,
    // found none): no base changes that, so the other candidates do not read and hash it again.
    let mut no_layers_onboard = false;
    for base in candidates {
        let mut tries = vec![None];
        if let Some((set, ids)) = layers.as_ref().filter(|_| !no_layers_onboard) {
            let against = base.map(|b| b.to_string()).unwrap_or_default();
            tries.push(Some((format!("layers:{set}:{against}"), ids.clone())));
        }
        for layered in tries {
            let key = layered.as_ref().map(|(k, _)| k.as_str());
            let cached = match db::encoding_keyed(&core.db, target, base.as_ref(), key).await? {
                // The row outlived its blob (a store restored without it): make it again.
                Some(e) if core.blobs.size(&e.patch).await == Some(e.size) => {
                    if key.is_some() {
                        uses_base(core, e)
                    } else {
                        Some(e)
                    }
                }
                _ => None,
            };
            let made = match cached {
                Some(e) => e,
                None => {
                    // Without a base (the first candidate) only a missing layer fails it.
                    let layered_try = layered.is_some() && base.is_none();
                    match make(core, *target, base, layered).await? {
                        Some(e) => e,
                        None => {
                            no_layers_onboard |= layered_try;
                            continue;
                        }
                    }
                }
            };
            if best.as_ref().is_none_or(|b| made.size < b.size) {
                best = Some(made);
            }
        }
    }
    Ok(match best {
        Some(e) if e.size < raw_size => Choice::Patch(e),
        _ => Choice::Raw,
    })
}

/// Whether the blob `target` starts with a tar header (see `delta::layers::starts_like_tar`).
fn starts_like_tar(core: &Core, target: &Digest) -> bool {
    use std::io::Read;
    let mut first = Vec::with_capacity(512);
    std::fs::File::open(core.blobs.path(target))
        .and_then(|f| f.take(512).read_to_end(&mut first))
        .is_ok_and(|_| delta::layers::starts_like_tar(&first))
}

/// A layers patch kept under a base: its base as its header says (the literals may not have
/// used it); `None` when its blob does not read.
fn uses_base(core: &Core, mut e: Encoding) -> Option<Encoding> {
    use std::io::Read;
    let mut header = [0u8; delta::HEADER_LEN];
    std::fs::File::open(core.blobs.path(&e.patch))
        .and_then(|mut f| f.read_exact(&mut header))
        .ok()?;
    if header[10..50].iter().all(|&b| b == 0) {
        e.base = None;
    }
    Some(e)
}

/// How many patches are made at once (each is CPU-bound work on the blocking pool, up to
/// zstd -19 and bsdiff of 256 MiB): one, whoever asks (an uplink's encoder or a tenant's plan).
static MAKERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Makes the smallest patch from `base` (none: the object compressed) to `target`, stores it
/// as a blob and remembers it. With `layers` (its key and the DiffIDs the system can produce),
/// the layers kind instead, remembered under that key. `None` when a blob is missing, or the
/// layers kind does not apply (no tar archive, or none of its members is such a layer).
async fn make(
    core: &Core,
    target: Digest,
    base: Option<Digest>,
    layers: Option<(String, std::sync::Arc<HashSet<[u8; 32]>>)>,
) -> Result<Option<Encoding>, Error> {
    let key = layers.as_ref().map(|(k, _)| k.clone());
    let layout = core.blobs.layout();
    // One patch made at a time, ground-wide: the permit goes with the work, so a request
    // dropped while it runs frees nothing early and cannot pile up more.
    let permit = MAKERS
        .acquire()
        .await
        .map_err(|e| Error::internal(format!("the patch maker is closed: {e}")))?;
    let made = tokio::task::spawn_blocking(move || -> std::io::Result<Option<Encoding>> {
        let _permit = permit;
        let read = |d: &Digest| match std::fs::read(layout.path(d)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
        let Some(new) = read(&target)? else {
            return Ok(None);
        };
        let old = match &base {
            Some(b) => match read(b)? {
                Some(old) => Some(old),
                None => return Ok(None),
            },
            None => None,
        };
        let opts = delta::MakeOptions::default();
        let kinds: &[delta::Kind] = match old {
            None => &[delta::Kind::Whole],
            Some(_) => &[delta::Kind::ZstdRef, delta::Kind::Bsdiff, delta::Kind::Exe],
        };
        let best = match &layers {
            Some((_, ids)) => {
                delta::make_layers(old.as_deref(), &new, ids).map(|p| (delta::Kind::Layers, p))
            }
            None => kinds
                .iter()
                .filter_map(|&k| delta::make_kind(k, old.as_deref(), &new, opts).map(|p| (k, p)))
                .min_by_key(|(_, p)| p.len()),
        };
        let Some((kind, patch)) = best else {
            return Ok(None);
        };
        // A layers patch whose literals did not use the old file names no base.
        let base = match delta::Header::read(&patch) {
            Ok(h) if h.base_size == 0 && h.base_sha256 == [0; 32] => None,
            _ => base,
        };
        let digest = layout.put(&patch)?;
        Ok(Some(Encoding {
            target,
            base,
            patch: digest,
            kind: kind.name().to_string(),
            size: patch.len() as u64,
        }))
    })
    .await
    .map_err(|e| Error::internal(format!("making a patch failed: {e}")))??;
    if let Some(e) = &made {
        // Another replica may serve the same want: it finds the patch in the shared store.
        core.blobs
            .push(&[e.patch])
            .await
            .map_err(|err| Error::internal(format!("storing a patch: {err}")))?;
        db::insert_encoding_keyed(&core.db, e, key.as_deref()).await?;
        tracing::debug!(target = %e.target, base = ?e.base, kind = e.kind, size = e.size, "patch made");
    }
    Ok(made)
}

/// One system's encoder: its wants in, objects and patches out on its link.
pub(crate) struct Encoder {
    core: Arc<Core>,
    system: String,
    sender: MessageSender,
    wake: Notify,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    pub(crate) fn new(core: Arc<Core>, system: String, sender: MessageSender) -> Encoder {
        Encoder {
            core,
            system,
            sender,
            wake: Notify::new(),
        }
    }

    /// Says that wants were recorded.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Serves the system's wants, oldest first, forever (until the link stops).
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            let wants = match db::pending_wants(&self.core.db, &self.system, WANTS_PER_PASS).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(system = %self.system, error = %e, "cannot read the wanted objects");
                    tokio::time::sleep(RETRY_AFTER).await;
                    continue;
                }
            };
            if wants.is_empty() {
                self.wake.notified().await;
                continue;
            }
            if let Err(e) = self.serve_all(wants).await {
                if matches!(e, Served::Stopped) {
                    tracing::warn!(system = %self.system, "link endpoint stopped; the encoder stops");
                    return;
                }
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }

    /// Serves each want in turn; stops at the first that fails.
    pub(crate) async fn serve_all(&self, wants: Vec<UplinkWant>) -> Result<(), Served> {
        for w in wants {
            self.serve(&w).await?;
        }
        Ok(())
    }

    /// Queues the smallest form of one wanted object, records it for the executions that need
    /// it, and forgets the want.
    async fn serve(&self, w: &UplinkWant) -> Result<(), Served> {
        let (core, system) = (&*self.core, self.system.as_str());
        let db_failed = |e: sqlx::Error| {
            tracing::warn!(%system, error = %e, "the encoder cannot reach the database");
            Served::Failed
        };
        let owners = db::unfinished_executions_sending(&core.db, system, &w.target)
            .await
            .map_err(db_failed)?;
        let raw_size = core.blobs.fetched_size(&w.target).await.map_err(|e| {
            // Kept: tried again at the encoder's next round.
            tracing::warn!(%system, target = %w.target, error = %e, "cannot fetch a wanted object from the shared blob store");
            Served::Failed
        })?;
        let Some(raw_size) = raw_size.filter(|_| !owners.is_empty()) else {
            tracing::warn!(%system, target = %w.target, "refused a request for an object that no unfinished execution of this system sends up, or that the ground lacks");
            return db::delete_want(&core.db, system, &w.target)
                .await
                .map_err(db_failed);
        };
        let mut tenants: Vec<String> = owners.iter().map(|(_, t)| t.clone()).collect();
        tenants.sort();
        tenants.dedup();
        let choice = if w.whole {
            Choice::Raw
        } else {
            let layers = match crate::mirror::onboard_layers(core, system).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(%system, error = %e, "cannot read the layers onboard; archives go without the layers kind");
                    HashSet::new()
                }
            };
            match choose(core, &w.target, raw_size, &w.bases, &tenants, &layers).await {
                Ok(c) => c,
                Err(e) => {
                    // The object itself always goes; the patch is an optimisation.
                    tracing::warn!(%system, target = %w.target, error = %e, "cannot make a patch; sending the object itself");
                    Choice::Raw
                }
            }
        };
        let stopped = |_| Served::Stopped;
        let (object, size, base) = match &choice {
            Choice::Raw => (w.target, raw_size, None),
            Choice::Patch(e) => {
                let offer = PatchOffer {
                    target: w.target,
                    patch: e.patch,
                    base: e.base,
                    size: e.size,
                };
                let message = Message::Patches {
                    patches: vec![offer],
                };
                self.sender
                    .send(wire::encode_message(&message))
                    .await
                    .map_err(stopped)?;
                (e.patch, e.size, e.base)
            }
        };
        self.sender
            .send_object(object, size, UPLINK_PRIORITY)
            .await
            .map_err(stopped)?;
        tracing::info!(%system, target = %w.target, kind = choice.kind(), size, raw_size, "object queued");
        let sent = Sent {
            target: w.target,
            object,
            kind: choice.kind(),
            base,
            size,
            raw_size,
        };
        record_sent(&core.db, &owners, &sent)
            .await
            .map_err(db_failed)?;
        db::delete_want(&core.db, system, &w.target)
            .await
            .map_err(db_failed)
    }
}

/// An object queued for a system.
pub(crate) struct Sent<'a> {
    pub(crate) target: Digest,
    /// What went on the wire: `target` itself or a patch.
    pub(crate) object: Digest,
    pub(crate) kind: &'a str,
    pub(crate) base: Option<Digest>,
    pub(crate) size: u64,
    pub(crate) raw_size: u64,
}

/// Records what was queued for each of `executions` (id, tenant): the bytes on the wire the API
/// reports.
pub(crate) async fn record_sent(
    db: &db::Db,
    executions: &[(String, String)],
    sent: &Sent<'_>,
) -> Result<(), sqlx::Error> {
    let at = time::now_ms();
    let rows: Vec<SentRow> = executions
        .iter()
        .map(|(execution, _)| SentRow {
            execution: execution.clone(),
            target: sent.target,
            object: sent.object,
            kind: sent.kind.to_string(),
            base: sent.base,
            size: sent.size,
            raw_size: sent.raw_size,
            at,
        })
        .collect();
    db::insert_sends(db, &rows).await
}

/// Why the encoder stopped serving.
#[derive(Debug)]
pub(crate) enum Served {
    /// The database or the shared blob store failed: try again later.
    Failed,
    /// The link endpoint stopped.
    Stopped,
}

/// What `execution` sent up so far (see `api::UplinkReport`); `None` when it has no plan.
pub(crate) async fn report(
    db: &db::Db,
    execution: &str,
) -> Result<Option<api::UplinkReport>, sqlx::Error> {
    let Some((objects, object_bytes, plan_bytes)) =
        db::execution_uplink_totals(db, execution).await?
    else {
        return Ok(None);
    };
    let sent: Vec<api::SentObject> = db::execution_sends(db, execution)
        .await?
        .into_iter()
        .map(|s| api::SentObject {
            digest: s.target.to_string(),
            size: s.raw_size,
            encoding: s.kind,
            object: s.object.to_string(),
            base: s.base.map(|b| b.to_string()),
            bytes: s.size,
        })
        .collect();
    let wire_bytes = plan_bytes + sent.iter().map(|s| s.bytes).sum::<u64>();
    Ok(Some(api::UplinkReport {
        objects,
        object_bytes,
        plan_bytes,
        sent,
        wire_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use wire::{OnFailure, Plan, PlanTask, TaskKind, UplinkFile};

    use super::*;
    use crate::db::ExecutionRow;
    use crate::{system_link, test_core};

    /// A ground core and an encoder for `em` whose link is never up, so what it queues stays
    /// queued; `alice` owns `demo`, `bob` owns `other`.
    struct Fixture {
        _dir: tempfile::TempDir,
        core: Arc<Core>,
        encoder: Encoder,
        sender: MessageSender,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let core = test_core::core(dir.path(), &[("demo", "alice"), ("other", "bob")]).await;
        let config = test_core::idle_system("em");
        let endpoint = system_link::endpoint_config(&core, &config, dir.path().join("link"));
        let (sender, _receiver) = link::spawn_endpoint(endpoint).await.unwrap();
        let encoder = Encoder::new(core.clone(), "em".into(), sender.clone());
        Fixture {
            _dir: dir,
            core,
            encoder,
            sender,
        }
    }

    #[tokio::test]
    async fn a_base_must_be_readable_by_every_tenant_sending_the_object() {
        let f = fixture().await;
        let d = upload(&f.core, "demo", 1, b"alice's bytes").await;
        let both = ["alice".to_string(), "bob".to_string()];
        let db = &f.core.db;
        assert!(
            db::tenant_reads_blob(db, &both[..1], &d).await.unwrap(),
            "alice holds it"
        );
        assert!(
            !db::tenant_reads_blob(db, &both[1..], &d).await.unwrap(),
            "bob does not"
        );
        assert!(
            !db::tenant_reads_blob(db, &both, &d).await.unwrap(),
            "a patch for both would show bob alice's bytes"
        );
        upload(&f.core, "other", 1, b"alice's bytes").await;
        assert!(
            db::tenant_reads_blob(db, &both, &d).await.unwrap(),
            "now both hold it"
        );
    }

    /// Stores `data` as version `version` of `/bin/app` in `namespace`.
    async fn upload(core: &Core, namespace: &str, version: i64, data: &[u8]) -> Digest {
        let d = core.blobs.put(data).await.unwrap();
        sqlx::query(
            "INSERT INTO files (namespace, path, version, digest, size, mode, created_at)
             VALUES ($1, '/bin/app', $2, $3, $4, 493, 0)",
        )
        .bind(namespace)
        .bind(version)
        .bind(d.to_string())
        .bind(data.len() as i64)
        .execute(&core.db)
        .await
        .unwrap();
        d
    }

    /// Records a running execution of alice on `em` uplinking `object`; returns its id.
    async fn execution(core: &Core, object: Digest, size: u64) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let exec = ExecutionRow {
            id: id.clone(),
            tenant: "alice".into(),
            namespace: "demo".into(),
            operation: "op".into(),
            revision: 1,
            system: "em".into(),
            state: "RUNNING".into(),
            created_at: 0,
            scheduled_at: None,
            started_at: None,
            finished_at: None,
            history: "[]".into(),
            errors: "[]".into(),
        };
        let plan = Plan {
            execution: id.clone(),
            tenant: "alice".into(),
            tasks: vec![PlanTask {
                id: "up".into(),
                on_failure: OnFailure::Stop,
                trigger: None,
                kind: TaskKind::Uplink {
                    volume: "alice-pvc".into(),
                    files: vec![UplinkFile {
                        path: "bin/app".into(),
                        digest: object,
                        size,
                        mode: 0o755,
                    }],
                },
            }],
            system: "em".into(),
            sequence: 1,
            elements: None,
            issued_ms: 0,
            expires_ms: u64::MAX,
            signature: vec![1; 64],
        };
        let mut tx = db::write_tx(&core.db).await.unwrap();
        db::insert_execution(&mut tx, &exec).await.unwrap();
        crate::queue::record(&mut tx, &id, &plan).await.unwrap();
        tx.commit().await.unwrap();
        id
    }

    /// A file of `n` lines of text, and the same with one line changed.
    fn versions(n: u32) -> (Vec<u8>, Vec<u8>) {
        let text = |changed: u32| -> Vec<u8> {
            (0..n)
                .flat_map(|i| {
                    let word = if i == changed { "CHANGED" } else { "line" };
                    format!("{word} {i}: {}\n", i.wrapping_mul(2_654_435_761)).into_bytes()
                })
                .collect()
        };
        (text(u32::MAX), text(n / 2))
    }

    /// What the encoder queued: (message, size) in sending order.
    async fn queued(sender: &MessageSender) -> Vec<(bool, Digest, u64)> {
        let stats = sender.stats_now().await.unwrap();
        stats
            .transfers
            .iter()
            .map(|t| (t.message, t.digest, t.size))
            .collect()
    }

    fn want(target: Digest, bases: Vec<Digest>, whole: bool) -> UplinkWant {
        UplinkWant {
            target,
            bases,
            whole,
        }
    }

    #[tokio::test]
    async fn a_new_version_goes_as_a_delta_announced_and_recorded() {
        let f = fixture().await;
        let (v1, v2) = versions(20_000);
        let d1 = upload(&f.core, "demo", 1, &v1).await;
        let d2 = upload(&f.core, "demo", 2, &v2).await;
        let id = execution(&f.core, d2, v2.len() as u64).await;
        f.encoder
            .serve_all(vec![want(d2, vec![d1], false)])
            .await
            .unwrap();
        let q = queued(&f.sender).await;
        assert_eq!(q.len(), 2, "{q:?}");
        let (message, patch, size) = q[1];
        assert!(q[0].0 && !message, "the announcement, then the patch");
        assert!(size < v2.len() as u64 / 50, "{size} of {}", v2.len());
        let e = db::encoding(&f.core.db, &d2, Some(&d1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((e.patch, e.size), (patch, size));
        // The patch makes v2 from v1.
        let bytes = std::fs::read(f.core.blobs.path(&patch)).unwrap();
        assert_eq!(delta::apply(Some(&v1), &bytes).unwrap(), v2);
        // Recorded for the execution, and counted as its transfer.
        let report = report(&f.core.db, &id).await.unwrap().unwrap();
        assert_eq!(report.sent.len(), 1);
        assert_eq!(report.sent[0].bytes, size);
        assert_eq!(report.sent[0].base, Some(d1.to_string()));
        assert_eq!(report.wire_bytes, report.plan_bytes + size);
        assert_eq!(report.object_bytes, v2.len() as u64);
        assert!(
            db::execution_digests(&f.core.db, &id)
                .await
                .unwrap()
                .contains(&patch)
        );
        assert!(
            db::pending_wants(&f.core.db, "em", 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    /// A tar of `members` (name, bytes), as `docker save` writes one.
    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, bytes) in members {
            let mut h = tar::Header::new_ustar();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *bytes).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// The system reports the layers of its catalogue images (and, wrongly, of a tenant's
    /// image: dropped); an image archive on the catalogue base then goes without the base's
    /// layer, and the patch rebuilds it byte-exact with that layer; another tenant's layer is
    /// never left out (it stays in the patch).
    #[tokio::test]
    async fn an_image_archive_goes_without_the_catalogue_layers_onboard() {
        let f = fixture().await;
        let noise = |seed: u32, n: u32| -> Vec<u8> {
            (0..n)
                .flat_map(|i| Digest::of(&(i ^ (seed << 20)).to_le_bytes()).0)
                .collect()
        };
        let base = tar_of(&[("lib/libc.so", &noise(1, 8_000))]);
        let bobs = tar_of(&[("secret", &noise(2, 2_000))]);
        let app = tar_of(&[("app", &noise(3, 300))]);
        let archive = tar_of(&[
            ("1/layer.tar", &base),
            ("2/layer.tar", &bobs),
            ("3/layer.tar", &app),
            ("manifest.json", b"[]"),
        ]);
        let catalogue = wire::catalogue("linux/amd64");
        db::upsert_system(
            &f.core.db,
            "em",
            "em",
            "linux/amd64",
            &db::to_json(&catalogue),
            "{}",
            0,
        )
        .await
        .unwrap();
        let layers = |name: &str, l: &[u8]| wire::ImageLayers {
            name: name.into(),
            id: "sha256:aa".into(),
            layers: vec![Digest::of(l)],
        };
        crate::mirror::base_layers(
            &f.core,
            "em",
            vec![
                layers(&catalogue[0].name, &base),
                layers("tenants/bob/secret:v1", &bobs),
            ],
        )
        .await
        .unwrap();
        let onboard = crate::mirror::onboard_layers(&f.core, "em").await.unwrap();
        assert_eq!(
            onboard,
            HashSet::from([Digest::of(&base).0]),
            "only the catalogue's"
        );

        let d = upload(&f.core, "demo", 1, &archive).await;
        let id = execution(&f.core, d, archive.len() as u64).await;
        f.encoder
            .serve_all(vec![want(d, vec![], false)])
            .await
            .unwrap();
        let (_, patch, size) = *queued(&f.sender).await.last().unwrap();
        let bytes = std::fs::read(f.core.blobs.path(&patch)).unwrap();
        assert_eq!(
            delta::Header::read(&bytes).unwrap().kind,
            delta::Kind::Layers
        );
        assert_eq!(
            delta::layers::named(&bytes).unwrap(),
            vec![(Digest::of(&base).0, base.len() as u64)]
        );
        assert!(size < (archive.len() - base.len()) as u64, "{size}");
        let mut have = delta::MemoryLayers::default();
        have.insert(base.clone());
        let back =
            delta::apply_with_layers(None, &bytes, delta::Limits::default(), &mut have).unwrap();
        assert!(back == archive);
        let report = report(&f.core.db, &id).await.unwrap().unwrap();
        assert_eq!(report.sent[0].encoding, "layers");
        assert_eq!(report.sent[0].base, None);
    }

    /// A base the tenant cannot read (another tenant's file) is passed over: the object goes
    /// compressed; asked `whole`, it goes as itself; an incompressible object goes as itself.
    #[tokio::test]
    async fn bases_are_the_tenants_own_and_whole_means_the_object_itself() {
        let f = fixture().await;
        let (v1, v2) = versions(20_000);
        let bobs = upload(&f.core, "other", 1, &v1).await;
        let d2 = upload(&f.core, "demo", 2, &v2).await;
        execution(&f.core, d2, v2.len() as u64).await;
        f.encoder
            .serve_all(vec![want(d2, vec![bobs], false)])
            .await
            .unwrap();
        let e = db::encoding(&f.core.db, &d2, None).await.unwrap().unwrap();
        assert_eq!(e.kind, "whole-zstd");
        assert!(
            db::encoding(&f.core.db, &d2, Some(&bobs))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(queued(&f.sender).await.last().unwrap().1, e.patch);

        f.encoder
            .serve_all(vec![want(d2, vec![], true)])
            .await
            .unwrap();
        assert_eq!(
            queued(&f.sender).await.last().unwrap(),
            &(false, d2, v2.len() as u64)
        );

        let noise: Vec<u8> = (0..1600u32)
            .flat_map(|i| Digest::of(&i.to_le_bytes()).0)
            .collect();
        let dn = upload(&f.core, "demo", 3, &noise).await;
        execution(&f.core, dn, noise.len() as u64).await;
        f.encoder
            .serve_all(vec![want(dn, vec![], false)])
            .await
            .unwrap();
        assert_eq!(
            queued(&f.sender).await.last().unwrap(),
            &(false, dn, noise.len() as u64)
        );
        // Nobody's execution needs it: refused, nothing queued.
        let before = queued(&f.sender).await.len();
        let stray = f.core.blobs.put(b"a stray blob").await.unwrap();
        f.encoder
            .serve_all(vec![want(stray, vec![], false)])
            .await
            .unwrap();
        assert_eq!(queued(&f.sender).await.len(), before);
    }
}
