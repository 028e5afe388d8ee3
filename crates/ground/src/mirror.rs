//! The ground's mirror of what each system holds onboard, beyond the volumes' listings
//! (`reports::volume_listing`): the objects in its object store and each volume file's digest.
//! The planner reads it to tell what would be sent and how.
//!
//! # Kept current, checked at each contact, repaired
//!
//! The mirror follows what the system reports: an object it committed (for a patch, the object
//! the patch makes), an uplink task's success its objects, a downlink's success the objects it
//! sent down (the agent keeps them), each `VolumeDigests` the
//! digests of a volume's files after its listing. After each `Hello` the system sends an
//! `InventorySummary`: its objects' digest and each volume's (`wire::objects_digest`,
//! `wire::volume_digest`, which both sides compute the same way). [`summary`] compares it with
//! the mirror; what differs is *drift*: a volume gone onboard is forgotten at once, and for the
//! rest the ground sends an `InventoryRequest` (at most once every [`ASK_AGAIN_AFTER_MS`]); the
//! system answers with its object list and every volume it has ([`inventory`]) and the
//! listings of the volumes asked for, which replace the mirror's. The next summary then matches:
//! the drift is repaired. What differed, since when and when it was repaired is kept in
//! `systems.inventory` and shown by the systems API and the dashboard.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use wire::{
    Digest, FileDigest, InventorySummary, MAX_INVENTORY_VOLUMES, Message, TaskKind, TaskOutputs,
    VolumeRef,
};

use crate::error::Error;
use crate::{Core, db, time};

/// How long the ground waits for the answer to an `InventoryRequest` before it asks again.
pub(crate) const ASK_AGAIN_AFTER_MS: i64 = 120_000;

/// How the mirror compared with a system's last summary (`systems.inventory`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InventoryState {
    /// When the last summary came.
    pub(crate) compared_at: Option<i64>,
    /// The objects the system holds, as it said.
    pub(crate) objects: u64,
    /// The objects the mirror holds for it.
    pub(crate) mirrored: u64,
    /// What differs now; empty when the mirror is exact.
    pub(crate) drift: Vec<String>,
    /// Since when something differs.
    pub(crate) drift_since: Option<i64>,
    /// When the ground last asked for the inventory.
    pub(crate) requested_at: Option<i64>,
    /// What differed last, once repaired.
    pub(crate) repaired: Vec<String>,
    /// When it was repaired.
    pub(crate) repaired_at: Option<i64>,
    /// The catalogue's images onboard and their layers, as the system last reported them
    /// (`Message::BaseLayers`; only images of the catalogue it reported in its `Hello`).
    #[serde(default)]
    pub(crate) base_layers: Vec<wire::ImageLayers>,
}

/// [`state`] as `tenant` may see it (`None`: an operator, who sees everything): another
/// tenant's volume is not named, only counted.
pub(crate) async fn state_seen_by(
    core: &Core,
    system: &str,
    tenant: Option<&str>,
) -> Result<InventoryState, Error> {
    let mut s = state(core, system).await?;
    if let Some(tenant) = tenant {
        s.drift = seen_by(&s.drift, tenant);
        s.repaired = seen_by(&s.repaired, tenant);
    }
    Ok(s)
}

/// The lines of `lines` that name no other tenant's volume, and how many did.
fn seen_by(lines: &[String], tenant: &str) -> Vec<String> {
    let own = format!("volume {tenant}/");
    let (mut kept, mut others) = (Vec::new(), 0);
    for line in lines {
        if line.starts_with("volume ") && !line.starts_with(&own) {
            others += 1;
        } else {
            kept.push(line.clone());
        }
    }
    if others > 0 {
        kept.push(format!("{others} volume(s) of other tenants"));
    }
    kept
}

/// The state as stored; the default before any summary.
pub(crate) async fn state(core: &Core, system: &str) -> Result<InventoryState, Error> {
    Ok(db::inventory_state(&core.db, system)
        .await?
        .as_deref()
        .and_then(db::from_json)
        .unwrap_or_default())
}

/// Compares a system's summary with the mirror: forgets the volumes gone onboard, records the
/// drift, and returns the request for what differs, if the ground should ask now.
pub(crate) async fn summary(
    core: &Core,
    system: &str,
    s: InventorySummary,
) -> Result<Option<Message>, Error> {
    let now = time::now_ms();
    let mut state = state(core, system).await?;
    let mirrored = db::onboard_objects(&core.db, system).await?;
    let objects_differ = wire::objects_digest(&mirrored) != s.objects_digest;
    let onboard: BTreeMap<(String, String), Digest> = s
        .volumes
        .into_iter()
        .take(MAX_INVENTORY_VOLUMES)
        .filter(|v| {
            wire::TenantName::new(&v.tenant).is_ok() && wire::VolumeName::new(&v.volume).is_ok()
        })
        .map(|v| ((v.tenant, v.volume), v.digest))
        .collect();
    let mut drift = Vec::new();
    let mut repaired = Vec::new();
    if objects_differ {
        drift.push(format!(
            "objects: {} onboard, {} in the mirror",
            s.objects,
            mirrored.len()
        ));
    }
    let mut gone = Vec::new();
    for (tenant, volume) in db::mirrored_volumes(&core.db, system).await? {
        if !onboard.contains_key(&(tenant.clone(), volume.clone())) {
            repaired.push(format!("volume {tenant}/{volume}: gone onboard"));
            gone.push((tenant, volume));
        }
    }
    if !gone.is_empty() {
        let mut tx = db::write_tx(&core.db).await?;
        for (tenant, volume) in &gone {
            db::delete_volume(&mut tx, system, tenant, volume).await?;
        }
        tx.commit().await?;
    }
    let mut ask = Vec::new();
    for ((tenant, volume), digest) in onboard {
        let entries = db::volume_entries(&core.db, system, &tenant, &volume).await?;
        if wire::volume_digest(&entries) != digest {
            drift.push(format!("volume {tenant}/{volume}"));
            ask.push(VolumeRef { tenant, volume });
        }
    }
    state.compared_at = Some(now);
    state.objects = s.objects;
    state.mirrored = mirrored.len() as u64;
    let request = if drift.is_empty() {
        repaired.append(&mut state.drift);
        state.drift_since = None;
        state.requested_at = None;
        None
    } else {
        tracing::info!(%system, ?drift, "the mirror of what the system holds differs");
        state.drift = drift;
        state.drift_since.get_or_insert(now);
        let due = state
            .requested_at
            .is_none_or(|t| now - t >= ASK_AGAIN_AFTER_MS);
        due.then(|| {
            state.requested_at = Some(now);
            Message::InventoryRequest {
                objects: objects_differ,
                volumes: ask,
            }
        })
    };
    if !repaired.is_empty() {
        state.repaired = repaired;
        state.repaired_at = Some(now);
    }
    db::set_inventory_state(&core.db, system, &db::to_json(&state)).await?;
    Ok(request)
}

/// The layers of the catalogue's images onboard, as the system reports them after each `Hello`:
/// kept with the inventory state, for images of the catalogue the system reported only (a
/// tenant's image never lends its layers to another's archive; see [`onboard_layers`]).
pub(crate) async fn base_layers(
    core: &Core,
    system: &str,
    images: Vec<wire::ImageLayers>,
) -> Result<(), Error> {
    let catalogue: Vec<String> = db::system(&core.db, system)
        .await?
        .map(|r| db::json_or_default::<Vec<wire::BaseImage>>(&r.catalogue))
        .unwrap_or_default()
        .iter()
        .map(|b| wire::normalize_image_ref(&b.name))
        .collect();
    let kept: Vec<wire::ImageLayers> = images
        .into_iter()
        .take(wire::MAX_ENGINE_IMAGES)
        .filter(|i| catalogue.contains(&wire::normalize_image_ref(&i.name)))
        .map(|mut i| {
            i.layers.truncate(wire::MAX_IMAGE_LAYERS);
            i
        })
        .collect();
    let mut state = state(core, system).await?;
    if state.base_layers != kept {
        tracing::info!(%system, images = kept.len(), layers = kept.iter().map(|i| i.layers.len()).sum::<usize>(), "the catalogue's layers onboard");
        state.base_layers = kept;
        db::set_inventory_state(&core.db, system, &db::to_json(&state)).await?;
    }
    Ok(())
}

/// The DiffIDs of the layers `system` can produce onboard for any tenant: its catalogue images'
/// (see [`base_layers`]).
pub(crate) async fn onboard_layers(
    core: &Core,
    system: &str,
) -> Result<std::collections::HashSet<[u8; 32]>, Error> {
    Ok(state(core, system)
        .await?
        .base_layers
        .iter()
        .flat_map(|i| i.layers.iter().map(|d| d.0))
        .collect())
}

/// The system's answer to an `InventoryRequest`: its objects replace the mirror's (when sent),
/// and mirrored volumes it does not have are forgotten.
pub(crate) async fn inventory(
    core: &Core,
    system: &str,
    objects: Option<Vec<Digest>>,
    complete: bool,
    volumes: Vec<VolumeRef>,
) -> Result<(), Error> {
    if !complete && objects.is_some() {
        tracing::warn!(%system, "the system holds more objects than its inventory lists; the mirror lists part of them");
    }
    let onboard: BTreeSet<(String, String)> = volumes
        .into_iter()
        .take(MAX_INVENTORY_VOLUMES)
        .map(|v| (v.tenant, v.volume))
        .collect();
    let mirrored = db::mirrored_volumes(&core.db, system).await?;
    let mut tx = db::write_tx(&core.db).await?;
    if let Some(objects) = objects {
        let mut objects = objects;
        objects.truncate(wire::MAX_INVENTORY_OBJECTS);
        db::replace_onboard(&mut tx, system, &objects).await?;
    }
    for (tenant, volume) in mirrored {
        if !onboard.contains(&(tenant.clone(), volume.clone())) {
            db::delete_volume(&mut tx, system, &tenant, &volume).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The digests of a volume's files, after its listing.
pub(crate) async fn volume_digests(
    core: &Core,
    system: &str,
    tenant: &str,
    volume: &str,
    files: &[FileDigest],
) -> Result<(), Error> {
    if wire::TenantName::new(tenant).is_err() || wire::VolumeName::new(volume).is_err() {
        tracing::warn!(%system, %tenant, %volume, "volume digests with a bad tenant or volume name; ignored");
        return Ok(());
    }
    let mut tx = db::write_tx(&core.db).await?;
    db::set_file_digests(&mut tx, system, tenant, volume, files).await?;
    tx.commit().await?;
    Ok(())
}

/// The system committed an object the ground sent: it holds it now, or for a patch, the object
/// the patch makes (the agent applies it at once and removes it; one that fails brings the
/// object itself, and a summary shows whatever differs).
pub(crate) async fn delivered(core: &Core, system: &str, digest: &Digest) -> Result<(), Error> {
    let held = db::patch_target(&core.db, digest).await?.unwrap_or(*digest);
    db::add_onboard(&core.db, system, &[held]).await?;
    Ok(())
}

/// A task of `execution` succeeded onboard: an uplink's objects are onboard now, and so are a
/// downlink's (the agent keeps what it sends down).
pub(crate) async fn task_succeeded(
    core: &Core,
    system: &str,
    execution: &str,
    task: u32,
    outputs: Option<&TaskOutputs>,
) -> Result<(), Error> {
    let Some(encoded) = db::execution_plan(&core.db, execution).await? else {
        return Ok(());
    };
    let Ok(Message::Plan(plan)) = wire::decode_message(&encoded) else {
        return Ok(());
    };
    if plan.system != system {
        return Ok(());
    }
    let objects: Vec<Digest> = match plan.tasks.get(task as usize).map(|t| &t.kind) {
        Some(TaskKind::Uplink { files, .. }) => files.iter().map(|f| f.digest).collect(),
        Some(TaskKind::Downlink { .. }) => outputs
            .map(|o| o.files.iter().map(|f| f.digest).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if !objects.is_empty() {
        db::add_onboard(&core.db, system, &objects).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use wire::{FileEntry, VolumeSummary};

    use super::*;
    use crate::blobs::BlobStore;
    use crate::db::VolumeFileRow;

    async fn core() -> (tempfile::TempDir, Core) {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&db::sqlite_url(&dir.path().join("ground.sqlite")))
            .await
            .unwrap();
        db::upsert_system(&db, "em", "em", "linux/amd64", "[]", "{}", 0)
            .await
            .unwrap();
        let blobs = BlobStore::open(dir.path()).await.unwrap();
        (
            dir,
            Core {
                db,
                blobs,
                views: Default::default(),
            },
        )
    }

    fn file(path: &str, size: u64) -> FileEntry {
        FileEntry {
            path: path.into(),
            size,
            is_dir: false,
            modified_ms: 1_800_000_000_000,
        }
    }

    /// What the system would say: `objects`, and alice's volume `pvc` holding `files`.
    fn said(objects: &[Digest], files: &[(FileEntry, Option<Digest>)]) -> InventorySummary {
        InventorySummary {
            objects: objects.len() as u64,
            objects_digest: wire::objects_digest(objects),
            volumes: vec![VolumeSummary {
                tenant: "alice".into(),
                volume: "pvc".into(),
                digest: wire::volume_digest(files),
            }],
        }
    }

    async fn mirror_listing(core: &Core, files: &[(FileEntry, Option<Digest>)]) {
        let rows: Vec<VolumeFileRow> = files
            .iter()
            .map(|(f, _)| VolumeFileRow {
                path: f.path.clone(),
                size: f.size as i64,
                is_dir: f.is_dir,
                modified_ms: f.modified_ms as i64,
                digest: None,
            })
            .collect();
        let mut tx = db::write_tx(&core.db).await.unwrap();
        db::replace_volume(&mut tx, "em", "alice", "pvc", &rows)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let digests: Vec<FileDigest> = files
            .iter()
            .filter_map(|(f, d)| {
                d.map(|digest| FileDigest {
                    path: f.path.clone(),
                    digest,
                })
            })
            .collect();
        volume_digests(core, "em", "alice", "pvc", &digests)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn drift_is_detected_asked_for_and_repaired() {
        let (_d, core) = core().await;
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let files = vec![(file("/in/a", 1), Some(a)), (file("/in/b", 1), Some(b))];
        // The mirror agrees with what the system says: in sync, nothing asked.
        db::add_onboard(&core.db, "em", &[a, b]).await.unwrap();
        mirror_listing(&core, &files).await;
        assert_eq!(
            summary(&core, "em", said(&[a, b], &files)).await.unwrap(),
            None
        );
        let s = state(&core, "em").await.unwrap();
        assert!(s.drift.is_empty() && s.compared_at.is_some(), "{s:?}");

        // Onboard, a file changed behind the ground's back and an object appeared: drift, and
        // the ground asks for the objects and that volume, once within the interval.
        let c = Digest::of(b"c");
        let changed = vec![(file("/in/a", 1), Some(a)), (file("/in/b", 2), Some(c))];
        let request = summary(&core, "em", said(&[a, b, c], &changed))
            .await
            .unwrap();
        assert_eq!(
            request,
            Some(Message::InventoryRequest {
                objects: true,
                volumes: vec![VolumeRef {
                    tenant: "alice".into(),
                    volume: "pvc".into()
                }],
            })
        );
        let s = state(&core, "em").await.unwrap();
        assert_eq!(s.drift.len(), 2, "{s:?}");
        assert!(s.drift_since.is_some());
        assert_eq!(
            summary(&core, "em", said(&[a, b, c], &changed))
                .await
                .unwrap(),
            None
        );

        // The answer and the volume's listing repair it; the next summary is in sync.
        inventory(
            &core,
            "em",
            Some(vec![a, b, c]),
            true,
            vec![VolumeRef {
                tenant: "alice".into(),
                volume: "pvc".into(),
            }],
        )
        .await
        .unwrap();
        mirror_listing(&core, &changed).await;
        assert_eq!(
            summary(&core, "em", said(&[a, b, c], &changed))
                .await
                .unwrap(),
            None
        );
        let s = state(&core, "em").await.unwrap();
        assert!(s.drift.is_empty() && s.drift_since.is_none(), "{s:?}");
        assert_eq!(s.repaired.len(), 2);
        assert!(s.repaired_at.is_some());
        assert_eq!((s.objects, s.mirrored), (3, 3));

        // A volume gone onboard is forgotten at once.
        let none = InventorySummary {
            volumes: Vec::new(),
            ..said(&[a, b, c], &changed)
        };
        assert_eq!(summary(&core, "em", none).await.unwrap(), None);
        assert!(
            db::mirrored_volumes(&core.db, "em")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            state(&core, "em").await.unwrap().repaired,
            ["volume alice/pvc: gone onboard"]
        );
    }

    #[tokio::test]
    async fn a_delivered_patch_counts_as_the_object_it_makes() {
        let (_d, core) = core().await;
        let (target, patch, raw) = (Digest::of(b"t"), Digest::of(b"p"), Digest::of(b"r"));
        db::insert_encoding(
            &core.db,
            &db::Encoding {
                target,
                base: None,
                patch,
                kind: "whole-zstd".into(),
                size: 1,
            },
        )
        .await
        .unwrap();
        delivered(&core, "em", &patch).await.unwrap();
        delivered(&core, "em", &raw).await.unwrap();
        let mut held = db::onboard_objects(&core.db, "em").await.unwrap();
        held.sort();
        let mut expected = vec![target, raw];
        expected.sort();
        assert_eq!(held, expected);
    }

    #[test]
    fn a_tenant_sees_only_its_own_volumes_named() {
        let lines = [
            "objects: 3 onboard, 2 in the mirror".to_string(),
            "volume alice/pvc".to_string(),
            "volume bob/secret-project: gone onboard".to_string(),
            "volume bobby/x".to_string(),
        ];
        assert_eq!(
            seen_by(&lines, "alice"),
            [
                "objects: 3 onboard, 2 in the mirror",
                "volume alice/pvc",
                "2 volume(s) of other tenants"
            ]
        );
        assert_eq!(
            seen_by(&lines, "bob")[1],
            "volume bob/secret-project: gone onboard"
        );
        assert_eq!(seen_by(&lines, "bob").len(), 3);
    }
}
