//! The agent's side of sending only what it lacks: the `Want` it sends for a plan's missing
//! objects (each with the object now at its landing path as a base the ground may send a delta
//! against), the patches the ground announces and sends (applied off the event loop, one at a
//! time; a patch that fails makes the agent ask for the object itself), the volume listings with
//! their files' digests (see `inventory`), and the inventory the ground mirrors: its summary after
//! each `Hello`, and what the ground asks for again when its mirror differs.

use std::collections::{HashMap, HashSet};

use wire::{
    Digest, FileDigest, FileEntry, InventorySummary, MAX_INVENTORY_OBJECTS, Message, PatchOffer,
    Plan, TaskKind, VolumeRef, VolumeSummary, WantedObject,
};

use super::Agent;
use crate::names;
use crate::patches;

/// The most objects one `Want` asks for (about 70 bytes each with a base: a message stays far
/// below `wire::MAX_MESSAGE`).
const WANTS_PER_MESSAGE: usize = 16_384;

/// The bytes of paths one `VolumeDigests` carries at most (a listing may hold long paths);
/// files beyond are reported with the next listing's room, or not.
const DIGESTS_PATH_BYTES: usize = 2 << 20;

impl Agent {
    /// Requests for every uplink object of the plan not in the store, if any: `Want`s (of at
    /// most [`WANTS_PER_MESSAGE`] objects each) naming, for each, the object now at the path where
    /// it lands (when the agent holds it as an object), which the ground may send a delta
    /// against.
    pub(super) fn want_missing(&self, plan: &Plan) -> Vec<Message> {
        let store = &self.inner.exec.store;
        let mut seen = HashSet::new();
        let mut objects = Vec::new();
        for task in &plan.tasks {
            let TaskKind::Uplink { volume, files } = &task.kind else {
                continue;
            };
            for f in files {
                if !seen.insert(f.digest) || store.has(&f.digest) {
                    continue;
                }
                let bases = self
                    .previous_version(&plan.tenant, volume, &f.path)
                    .filter(|b| *b != f.digest && store.has(b))
                    .into_iter()
                    .collect();
                objects.push(WantedObject {
                    digest: f.digest,
                    bases,
                    whole: false,
                });
            }
        }
        // Asked for afresh: a refusal of before (no room then) says nothing of now.
        let asked: Vec<_> = objects.iter().map(|o| o.digest).collect();
        store.asking(&asked);
        if !objects.is_empty() {
            let bases = objects.iter().filter(|o| !o.bases.is_empty()).count();
            tracing::info!(
                execution = plan.execution,
                objects = objects.len(),
                with_bases = bases,
                "asking for objects"
            );
        }
        objects
            .chunks(WANTS_PER_MESSAGE)
            .map(|c| Message::Want {
                objects: c.to_vec(),
            })
            .collect()
    }

    /// The digest of the file now at `path` in the tenant's volume, when known and unchanged.
    fn previous_version(&self, tenant: &str, volume: &str, path: &str) -> Option<Digest> {
        names::check_tenant(tenant).ok()?;
        names::check_volume(volume).ok()?;
        let root = self.inner.exec.volumes.volume_dir(tenant, volume);
        self.inner.digests.lookup(tenant, volume, &root, path)
    }

    /// Takes the ground's announcement of patches: each is applied once its object is here
    /// (now, if it already is).
    pub(super) fn take_patches(&self, patches: Vec<PatchOffer>) {
        let store = &self.inner.exec.store;
        let mut spent = Vec::new();
        for offer in patches {
            if store.has(&offer.target) {
                // Already made (or sent whole): the patch, if here, is spent.
                if store.has(&offer.patch) {
                    spent.push(offer.patch);
                }
                continue;
            }
            let here = store.has(&offer.patch);
            let patch = offer.patch;
            self.inner.patcher.offer(offer);
            if here {
                self.apply_soon(&patch);
            }
        }
        if !spent.is_empty() {
            // In the order named, on one blocking task.
            let agent = self.clone();
            tokio::task::spawn_blocking(move || {
                for patch in &spent {
                    agent.remove_spent(patch);
                }
            });
        }
    }

    /// Removes the object `patch` once its patch is spent, only if it really is a patch (its
    /// file starts with a patch's header, see `patches::is_patch`) and no unfinished plan refers
    /// to it (an uplink's file, a downlink's object the link may still send) and no uplink waits
    /// for it: a `Patches` naming anything else removes nothing. Blocking.
    pub(super) fn remove_spent(&self, patch: &Digest) {
        let store = &self.inner.exec.store;
        if !patches::is_patch(store, patch) {
            tracing::warn!(%patch, "kept an object announced as a patch: it is not one");
            return;
        }
        if self.inner.plans.held_objects().contains(patch) {
            tracing::debug!(%patch, "kept a spent patch: a plan onboard refers to it");
            return;
        }
        store.remove_spent(patch);
    }

    /// An object arrived (verified, in the store): wakes the uplinks waiting for it, and applies
    /// it if it is an announced patch.
    pub(super) fn object_arrived(&self, digest: &Digest) {
        self.inner.exec.store.arrived(digest);
        self.apply_soon(digest);
    }

    /// Removes, at start, the patches a previous run left onboard (killed between storing a
    /// patch's result and removing the patch): every object that starts with a patch's header
    /// (see `patches::is_patch`) and that no plan on file needs: no unfinished plan's uplink
    /// file or downlinked object, no finished plan's downlinked object (the link may still be
    /// sending it). The announcements died with that run; the ground announces again what it
    /// still sends. Blocking.
    pub(super) fn remove_spent_patches(&self) {
        let store = &self.inner.exec.store;
        let (objects, _) = store.list(usize::MAX);
        let mut needed = self.inner.plans.held_objects();
        needed.extend(self.inner.plans.done_downlinks());
        let mut removed = 0usize;
        for digest in objects {
            if !needed.contains(&digest) && patches::is_patch(store, &digest) {
                store.remove_spent(&digest);
                removed += usize::from(!store.has(&digest));
            }
        }
        if removed > 0 {
            tracing::info!(
                removed,
                "removed the spent patches a previous run left onboard"
            );
        }
    }

    /// Applies the announced patch `patch`, if it is one, on a task of its own.
    fn apply_soon(&self, patch: &Digest) {
        let Some(offer) = self.inner.patcher.take(patch) else {
            return;
        };
        let agent = self.clone();
        tokio::spawn(async move { agent.apply(offer).await });
    }

    /// Applies a patch on the blocking pool, one at a time; stores the result only once
    /// verified. A patch that fails makes the agent ask for the object itself. Either way the
    /// spent patch is removed.
    async fn apply(&self, offer: PatchOffer) {
        let _one_at_a_time = self.inner.patcher.gate.acquire().await;
        let (agent, o) = (self.clone(), offer.clone());
        let handle = tokio::runtime::Handle::current();
        let result = tokio::task::spawn_blocking(move || {
            let exec = &agent.inner.exec;
            // The layers a layers patch leaves out: exported from the catalogue's images.
            let mut layers = crate::layer_source::EngineLayers::new(
                exec.runtime.clone(),
                handle,
                exec.bases.clone(),
                exec.scratch.join("layers"),
            );
            let r = patches::apply(&exec.store, &o, &mut layers).map_err(|e| e.to_string());
            drop(layers);
            agent.remove_spent(&o.patch);
            r
        })
        .await
        .unwrap_or_else(|e| Err(format!("the apply failed: {e}")));
        match result {
            Ok(()) => {
                tracing::info!(target = %offer.target, patch = %offer.patch, size = offer.size, "applied a patch")
            }
            Err(error) => {
                tracing::warn!(target = %offer.target, patch = %offer.patch, %error, "a patch did not make its object; asking for the object itself");
                let whole = WantedObject {
                    digest: offer.target,
                    bases: Vec::new(),
                    whole: true,
                };
                self.send_soon(vec![Message::Want {
                    objects: vec![whole],
                }]);
            }
        }
    }

    /// The volume's listing with its files' digests refreshed (see `inventory`). Blocking.
    fn list_volume(&self, tenant: &str, volume: &str) -> (Vec<FileEntry>, Vec<FileDigest>) {
        let volumes = &self.inner.exec.volumes;
        let dir = volumes.volume_dir(tenant, volume);
        // A volume that is gone (deleted) is listed empty; it is walked by descriptors.
        let files = match volumes.open_volume(tenant, volume) {
            Ok(Some(open)) => {
                crate::volumes::list(&open, "", u32::MAX, crate::tasks::MAX_LISTING).0
            }
            _ => Vec::new(),
        };
        let digests = self.inner.digests.refresh(tenant, volume, &dir, &files);
        let mut room = DIGESTS_PATH_BYTES;
        let digests = digests
            .into_iter()
            .take_while(|(path, _)| {
                room = room.saturating_sub(path.len() + 40);
                room > 0
            })
            .map(|(path, digest)| FileDigest { path, digest })
            .collect();
        (files, digests)
    }

    /// Sends the volume's listing, then its files' digests.
    pub(super) async fn send_listing(&self, tenant: &str, volume: &str) {
        if names::check_tenant(tenant).is_err() || names::check_volume(volume).is_err() {
            return;
        }
        let (agent, t, v) = (self.clone(), tenant.to_string(), volume.to_string());
        let listed = tokio::task::spawn_blocking(move || agent.list_volume(&t, &v)).await;
        if let Ok((files, digests)) = listed {
            let (tenant, volume) = (tenant.to_string(), volume.to_string());
            self.send(Message::VolumeListing {
                tenant: tenant.clone(),
                volume: volume.clone(),
                files,
            })
            .await;
            self.send(Message::VolumeDigests {
                tenant,
                volume,
                files: digests,
            })
            .await;
        }
    }

    /// What the agent holds, in short (sent after each `Hello`): the objects' digest and each
    /// volume's (its listing with its files' digests, refreshed).
    pub async fn inventory_summary(&self) -> InventorySummary {
        let agent = self.clone();
        let summary = tokio::task::spawn_blocking(move || {
            let (objects, _) = agent.inner.exec.store.list(usize::MAX);
            let mut volumes = Vec::new();
            for v in agent.inner.digests.volumes() {
                let (files, digests) = agent.list_volume(&v.tenant, &v.volume);
                let known: HashMap<String, Digest> =
                    digests.into_iter().map(|f| (f.path, f.digest)).collect();
                let entries: Vec<(FileEntry, Option<Digest>)> = files
                    .into_iter()
                    .map(|f| {
                        let d = known.get(&f.path).copied();
                        (f, d)
                    })
                    .collect();
                volumes.push(VolumeSummary {
                    tenant: v.tenant,
                    volume: v.volume,
                    digest: wire::volume_digest(&entries),
                });
            }
            InventorySummary {
                objects: objects.len() as u64,
                objects_digest: wire::objects_digest(&objects),
                volumes,
            }
        })
        .await;
        summary.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot sum up the inventory");
            InventorySummary {
                objects: 0,
                objects_digest: wire::objects_digest(&[]),
                volumes: Vec::new(),
            }
        })
    }

    /// Answers the ground's request for what its mirror lacks: the object list (if asked) with
    /// every volume there is, then each volume asked for, listed again.
    pub(super) fn answer_inventory(&self, objects: bool, volumes: Vec<VolumeRef>) {
        let agent = self.clone();
        tokio::spawn(async move {
            let a = agent.clone();
            let listed = tokio::task::spawn_blocking(move || {
                let objects = objects.then(|| a.inner.exec.store.list(MAX_INVENTORY_OBJECTS));
                (objects, a.inner.digests.volumes())
            })
            .await;
            let Ok((objects, all)) = listed else {
                return;
            };
            let complete = objects.as_ref().is_some_and(|(_, complete)| *complete);
            agent
                .send(Message::Inventory {
                    objects: objects.map(|(list, _)| list),
                    complete,
                    volumes: all.clone(),
                })
                .await;
            for v in volumes.iter().take(wire::MAX_INVENTORY_VOLUMES) {
                if all.contains(v) {
                    agent.send_listing(&v.tenant, &v.volume).await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use link::LinkEvent;
    use tokio::sync::mpsc;
    use wire::{OnFailure, PlanTask, UplinkFile};

    use super::*;
    use crate::agent::Outgoing;
    use crate::config::AgentConfig;
    use crate::runtime::fake::FakeRuntime;

    fn agent(dir: &std::path::Path) -> (Agent, mpsc::Receiver<Outgoing>) {
        agent_on(dir, FakeRuntime::default())
    }

    fn agent_on(dir: &std::path::Path, fake: FakeRuntime) -> (Agent, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(1024);
        let config = AgentConfig {
            system: "em".into(),
            state_dir: dir.join("state"),
            volumes_dir: dir.join("volumes"),
            plan_verifier: None,
            builder: wire::Builder::Classic,
            catalogue: None,
            limits: crate::DiskLimits::default(),
            quotas: crate::Quotas::none(),
            clock: crate::ClockConfig::Host,
        };
        (
            Agent::with_runtime(&config, Arc::new(fake), tx).unwrap(),
            rx,
        )
    }

    /// A plan uplinking `data` to `bin/app` in the volume `pvc`.
    fn uplink(execution: &str, sequence: u64, data: &[u8]) -> Plan {
        Plan {
            elements: None,
            execution: execution.into(),
            tenant: "alice".into(),
            tasks: vec![PlanTask {
                id: "up".into(),
                on_failure: OnFailure::Stop,
                trigger: None,
                kind: TaskKind::Uplink {
                    volume: "pvc".into(),
                    files: vec![UplinkFile {
                        path: "bin/app".into(),
                        digest: Digest::of(data),
                        size: data.len() as u64,
                        mode: 0o755,
                    }],
                },
            }],
            system: "em".into(),
            sequence,
            issued_ms: 0,
            expires_ms: u64::MAX,
            signature: Vec::new(),
        }
    }

    /// The messages in the outbox now.
    fn messages(rx: &mut mpsc::Receiver<Outgoing>) -> Vec<Message> {
        let mut out = Vec::new();
        while let Ok(o) = rx.try_recv() {
            if let Outgoing::Message(m) = o {
                out.push(m);
            }
        }
        out
    }

    fn wants(messages: &[Message]) -> Vec<WantedObject> {
        messages
            .iter()
            .flat_map(|m| match m {
                Message::Want { objects } => objects.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    /// An object put in the store as the link puts it, and announced.
    fn arrive(agent: &Agent, data: &[u8]) -> Digest {
        let d = agent.object_layout().put(data).unwrap();
        agent.handle_event(LinkEvent::ObjectReceived(d)).unwrap();
        d
    }

    /// Runs the plan loop until the agent holds no unfinished plan.
    async fn run_until_idle(agent: &Agent) {
        let a = agent.clone();
        let worker = tokio::spawn(async move { a.run_plans().await });
        for _ in 0..6000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if agent.inner.plans.held(1).is_empty() {
                break;
            }
        }
        worker.abort();
    }

    async fn until(what: &str, done: impl Fn() -> bool) {
        // A bound on polls, not a timing: a loaded machine may need many.
        for _ in 0..6000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never: {what}");
    }

    fn versions() -> (Vec<u8>, Vec<u8>) {
        let v1: Vec<u8> = (0..40_000u32)
            .flat_map(|i| (i * 13).to_le_bytes())
            .collect();
        let mut v2 = v1.clone();
        v2[5000..5004].copy_from_slice(b"v2!!");
        (v1, v2)
    }

    /// v1 lands at a path; v2 for the same path is asked for with v1 as its base, comes as a
    /// delta in either order with its announcement, and lands; the spent patch is removed.
    #[tokio::test]
    async fn a_new_version_comes_as_a_delta_against_the_one_onboard() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, mut rx) = agent(dir.path());
        let (v1, v2) = versions();
        agent
            .handle_message(Message::Plan(uplink("e1", 1, &v1)))
            .unwrap();
        let asked = wants(&messages(&mut rx));
        assert_eq!(asked.len(), 1);
        assert!(asked[0].bases.is_empty(), "nothing at bin/app yet");
        arrive(&agent, &v1);
        run_until_idle(&agent).await;
        messages(&mut rx);

        agent
            .handle_message(Message::Plan(uplink("e2", 2, &v2)))
            .unwrap();
        let asked = wants(&messages(&mut rx));
        assert_eq!(
            asked,
            [WantedObject {
                digest: Digest::of(&v2),
                bases: vec![Digest::of(&v1)],
                whole: false,
            }]
        );
        let patch = delta::make(Some(&v1), &v2);
        assert!(patch.len() < 1000, "{} bytes", patch.len());
        // The object first, then its announcement.
        let p = arrive(&agent, &patch);
        agent
            .handle_message(Message::Patches {
                patches: vec![PatchOffer {
                    target: Digest::of(&v2),
                    patch: p,
                    base: Some(Digest::of(&v1)),
                    size: patch.len() as u64,
                }],
            })
            .unwrap();
        run_until_idle(&agent).await;
        let volume = dir.path().join("volumes/alice/pvc/bin/app");
        assert_eq!(std::fs::read(&volume).unwrap(), v2);
        assert!(wants(&messages(&mut rx)).is_empty(), "nothing asked again");
        let store = &agent.inner.exec.store;
        until("the patch is removed", || !store.has(&p)).await;
    }

    /// A patch that does not make its object (corrupted, against another base, truncated):
    /// nothing is stored under the object's digest, the agent asks for the object itself, and
    /// the uplink lands it when it comes.
    #[tokio::test]
    async fn a_patch_that_fails_brings_the_object_itself() {
        let (v1, v2) = versions();
        let good = delta::make_kind(
            delta::Kind::ZstdRef,
            Some(&v1),
            &v2,
            delta::MakeOptions::default(),
        )
        .unwrap();
        let mut corrupt = good.clone();
        let at = corrupt.len() - 10;
        corrupt[at] ^= 0xff;
        let mut other = v1.clone();
        other[0] ^= 1;
        let against_other = delta::make(Some(&other), &v2);
        let truncated = good[..good.len() - 7].to_vec();
        for (name, bad) in [
            ("corrupt", corrupt),
            ("wrong base", against_other),
            ("truncated", truncated),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (agent, mut rx) = agent(dir.path());
            arrive(&agent, &v1);
            arrive(&agent, &other);
            agent
                .handle_message(Message::Plan(uplink("e", 1, &v2)))
                .unwrap();
            messages(&mut rx);
            agent
                .handle_message(Message::Patches {
                    patches: vec![PatchOffer {
                        target: Digest::of(&v2),
                        patch: Digest::of(&bad),
                        base: Some(Digest::of(&v1)),
                        size: bad.len() as u64,
                    }],
                })
                .unwrap();
            let p = arrive(&agent, &bad);
            let store = agent.inner.exec.store.clone();
            let mut asked = Vec::new();
            for _ in 0..6000 {
                asked.extend(wants(&messages(&mut rx)));
                if !asked.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(!store.has(&p), "{name}: the spent patch is removed");
            assert!(!store.has(&Digest::of(&v2)), "{name}: placed anyway");
            assert_eq!(
                asked,
                [WantedObject {
                    digest: Digest::of(&v2),
                    bases: Vec::new(),
                    whole: true
                }],
                "{name}"
            );
            arrive(&agent, &v2);
            run_until_idle(&agent).await;
            let placed = dir.path().join("volumes/alice/pvc/bin/app");
            assert_eq!(std::fs::read(&placed).unwrap(), v2, "{name}");
        }
    }

    /// A layer tar holding one file of `len` bytes.
    fn layer_tar(name: &str, seed: u32, len: usize) -> Vec<u8> {
        let content: Vec<u8> = (0..len as u32)
            .map(|i| (i.wrapping_mul(seed) >> 5) as u8)
            .collect();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &content[..]).unwrap();
        b.into_inner().unwrap()
    }

    /// A `docker save`-like archive of an app on the catalogue's static base, sent as a layers
    /// patch: the base layer comes from the engine (the catalogue image, saved), the archive
    /// lands byte-exact. When the engine's copy of the layer is not the one named (another
    /// image under the catalogue name), nothing is placed and the object itself is asked for.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_archive_comes_without_its_base_layers_and_a_wrong_layer_brings_the_object() {
        let base = layer_tar("etc/lib.so", 2_654_435_761, 200_000);
        let app = layer_tar("app", 40_503, 30_000);
        let mut b = tar::Builder::new(Vec::new());
        for (name, bytes) in [
            ("1111/layer.tar", &base[..]),
            ("2222/layer.tar", &app[..]),
            ("manifest.json", &b"[]"[..]),
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, bytes).unwrap();
        }
        let archive = b.into_inner().unwrap();
        let onboard = std::collections::HashSet::from([delta::sha256(&base)]);
        let patch = delta::make_layers(None, &archive, &onboard).unwrap();
        assert!(patch.len() < archive.len() / 4, "{} bytes", patch.len());
        let mut wrong = base.clone();
        wrong[3000] ^= 1;
        for (name, engine_has) in [("right layer", base.clone()), ("wrong layer", wrong)] {
            let dir = tempfile::tempdir().unwrap();
            let fake = FakeRuntime::with(|s| {
                let name = "gcr.io/distroless/static-debian12:latest".to_string();
                s.images.insert(
                    name.clone(),
                    crate::runtime::ImageInfo {
                        id: "sha256:aaaa".into(),
                        ..Default::default()
                    },
                );
                // The engine names the layer by the DiffID of the right bytes, whatever it holds.
                s.layers.insert(
                    name,
                    vec![(Digest::of(&base).to_string(), engine_has.clone())],
                );
            });
            let (agent, mut rx) = agent_on(dir.path(), fake);
            let Message::BaseLayers { images } = agent.base_layers().await else {
                panic!("base layers")
            };
            assert_eq!(images.len(), 1, "{name}");
            assert_eq!(images[0].layers, vec![Digest::of(&base)], "{name}");
            agent
                .handle_message(Message::Plan(uplink("e", 1, &archive)))
                .unwrap();
            messages(&mut rx);
            agent
                .handle_message(Message::Patches {
                    patches: vec![PatchOffer {
                        target: Digest::of(&archive),
                        patch: Digest::of(&patch),
                        base: None,
                        size: patch.len() as u64,
                    }],
                })
                .unwrap();
            let p = arrive(&agent, &patch);
            let store = agent.inner.exec.store.clone();
            let placed = dir.path().join("volumes/alice/pvc/bin/app");
            if name == "right layer" {
                run_until_idle(&agent).await;
                assert!(std::fs::read(&placed).unwrap() == archive, "byte-exact");
                assert!(wants(&messages(&mut rx)).is_empty(), "nothing asked again");
            } else {
                let mut asked = Vec::new();
                for _ in 0..6000 {
                    asked.extend(wants(&messages(&mut rx)));
                    if !asked.is_empty() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert!(!store.has(&Digest::of(&archive)), "placed anyway");
                assert_eq!(
                    asked,
                    [WantedObject {
                        digest: Digest::of(&archive),
                        bases: Vec::new(),
                        whole: true
                    }]
                );
                arrive(&agent, &archive);
                run_until_idle(&agent).await;
                assert!(std::fs::read(&placed).unwrap() == archive);
            }
            until("the patch is removed", || !store.has(&p)).await;
            let scratch = dir.path().join("state");
            let left: Vec<_> = walk(&scratch)
                .into_iter()
                .filter(|p| p.to_string_lossy().contains("/layers/save-"))
                .collect();
            assert!(left.is_empty(), "{name}: saved archives left: {left:?}");
        }
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    out.extend(walk(&p));
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    /// A `Patches` removes only spent patches: not a downlink's object on its way down (not a
    /// patch at all), nor a patch a queued plan uplinks as a file of its own; and a "patch"
    /// that is a downlink's object fails to apply and stays, the object itself asked for.
    #[tokio::test]
    async fn a_patches_message_removes_nothing_but_spent_patches() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, mut rx) = agent(dir.path());
        let store = agent.inner.exec.store.clone();
        let (v1, v2) = versions();
        let out = dir.path().join("volumes/alice/pvc/out.txt");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(&out, b"what a pod wrote").unwrap();
        let downlink = Plan {
            tasks: vec![PlanTask {
                id: "down".into(),
                on_failure: OnFailure::Stop,
                trigger: None,
                kind: TaskKind::Downlink {
                    volume: "pvc".into(),
                    sources: vec!["out.txt".into()],
                },
            }],
            ..uplink("e1", 1, b"")
        };
        agent.handle_message(Message::Plan(downlink)).unwrap();
        run_until_idle(&agent).await;
        let downlinked = Digest::of(b"what a pod wrote");
        assert!(store.has(&downlinked));
        // A tenant's file that is a patch, uplinked by a plan still queued.
        let tenants_patch = delta::make(Some(&v1), &v2);
        agent
            .handle_message(Message::Plan(uplink("e2", 2, &tenants_patch)))
            .unwrap();
        arrive(&agent, &tenants_patch);
        // A patch really spent: its object is here already.
        arrive(&agent, &v2);
        let spent = delta::make(Some(&v2), &v1);
        let spent = arrive(&agent, &spent);
        let made = |patch: Digest| PatchOffer {
            target: Digest::of(&v2),
            patch,
            base: None,
            size: 0,
        };
        agent
            .handle_message(Message::Patches {
                patches: vec![
                    made(downlinked),
                    made(Digest::of(&tenants_patch)),
                    made(spent),
                ],
            })
            .unwrap();
        // Judged in the order named: once the last is gone, the others were judged.
        until("the spent patch is removed", || !store.has(&spent)).await;
        assert!(store.has(&downlinked), "a downlink's object was removed");
        assert!(
            store.has(&Digest::of(&tenants_patch)),
            "a queued plan's object was removed"
        );

        // Named as the patch of an object not onboard: it does not apply, and stays.
        messages(&mut rx);
        let missing = Digest::of(b"not onboard");
        agent
            .handle_message(Message::Patches {
                patches: vec![PatchOffer {
                    target: missing,
                    ..made(downlinked)
                }],
            })
            .unwrap();
        let mut asked = Vec::new();
        for _ in 0..6000 {
            asked.extend(wants(&messages(&mut rx)));
            if !asked.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            asked,
            [WantedObject {
                digest: missing,
                bases: Vec::new(),
                whole: true
            }]
        );
        assert!(store.has(&downlinked), "a downlink's object was removed");
    }

    /// The summary after a Hello is what the ground computes from the listing and digests the
    /// agent sent; asked, the agent sends its objects, its volumes and the listings asked for.
    #[tokio::test]
    async fn the_summary_matches_what_the_agent_reports() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, mut rx) = agent(dir.path());
        let (v1, _) = versions();
        agent
            .handle_message(Message::Plan(uplink("e1", 1, &v1)))
            .unwrap();
        arrive(&agent, &v1);
        run_until_idle(&agent).await;
        let sent = messages(&mut rx);
        let reported = |sent: &[Message]| -> Vec<(FileEntry, Option<Digest>)> {
            let mut files = Vec::new();
            let mut digests = HashMap::new();
            for m in sent {
                match m {
                    Message::VolumeListing { files: f, .. } => files = f.clone(),
                    Message::VolumeDigests { files: d, .. } => {
                        digests = d.iter().map(|f| (f.path.clone(), f.digest)).collect()
                    }
                    _ => {}
                }
            }
            files
                .into_iter()
                .map(|f| {
                    let d = digests.get(&f.path).copied();
                    (f, d)
                })
                .collect()
        };
        let files = reported(&sent);
        assert!(
            files.contains(&(
                FileEntry {
                    path: "/bin/app".into(),
                    ..files[1].0.clone()
                },
                Some(Digest::of(&v1))
            )),
            "{files:?}"
        );
        let summary = agent.inventory_summary().await;
        assert_eq!(summary.objects, 1);
        assert_eq!(
            summary.objects_digest,
            wire::objects_digest(&[Digest::of(&v1)])
        );
        assert_eq!(
            summary.volumes,
            [VolumeSummary {
                tenant: "alice".into(),
                volume: "pvc".into(),
                digest: wire::volume_digest(&files),
            }]
        );

        let pvc = VolumeRef {
            tenant: "alice".into(),
            volume: "pvc".into(),
        };
        agent
            .handle_message(Message::InventoryRequest {
                objects: true,
                volumes: vec![pvc.clone()],
            })
            .unwrap();
        let mut answer = Vec::new();
        for _ in 0..6000 {
            answer.extend(messages(&mut rx));
            if answer.len() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(answer.len(), 3, "{answer:?}");
        assert_eq!(
            answer[0],
            Message::Inventory {
                objects: Some(vec![Digest::of(&v1)]),
                complete: true,
                volumes: vec![pvc],
            }
        );
        assert_eq!(reported(&answer), files);
    }
}
