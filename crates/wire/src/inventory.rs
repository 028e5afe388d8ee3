//! What a flight system holds, in short: the digests ground and flight both compute over the
//! onboard objects and each volume's files, so that the ground can tell from a
//! [`Message::InventorySummary`](crate::Message::InventorySummary) whether its mirror is still
//! exact (one judge: both sides call these functions on the same data).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{Digest, FileEntry};

/// The most volumes an [`InventorySummary`] names; the ground reads no more.
pub const MAX_INVENTORY_VOLUMES: usize = 4096;

/// The most object digests an inventory lists (32 bytes each: 3.2 MB, within a message).
pub const MAX_INVENTORY_OBJECTS: usize = 100_000;

/// The short form of what a system holds, sent after each `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventorySummary {
    /// How many objects the onboard object store holds.
    pub objects: u64,
    /// [`objects_digest`] of them.
    pub objects_digest: Digest,
    /// Each tenant volume with the [`volume_digest`] of its listing, sorted.
    pub volumes: Vec<VolumeSummary>,
}

/// One volume of an [`InventorySummary`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VolumeSummary {
    /// The tenant owning it.
    pub tenant: String,
    /// Its name.
    pub volume: String,
    /// [`volume_digest`] of its listing with its files' digests.
    pub digest: Digest,
}

/// A volume, as an [`InventoryRequest`](crate::Message::InventoryRequest) names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VolumeRef {
    /// The tenant owning it.
    pub tenant: String,
    /// Its name.
    pub volume: String,
}

/// A file of a volume with its content's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Its path, as in the volume's listing.
    pub path: String,
    /// Its content's digest.
    pub digest: Digest,
}

/// The digest of a set of objects: sha256 over their digests, sorted and without duplicates.
pub fn objects_digest(objects: &[Digest]) -> Digest {
    let mut sorted = objects.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut h = Sha256::new();
    for d in &sorted {
        h.update(d.0);
    }
    Digest(h.finalize().into())
}

/// The digest of a volume's listing with the digests its files are known by: sha256 over each
/// entry (path, size, folder or not, modification time, digest or none), sorted by path.
pub fn volume_digest(files: &[(FileEntry, Option<Digest>)]) -> Digest {
    let mut sorted: Vec<&(FileEntry, Option<Digest>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    let mut h = Sha256::new();
    for (f, d) in sorted {
        h.update((f.path.len() as u64).to_le_bytes());
        h.update(f.path.as_bytes());
        h.update(f.size.to_le_bytes());
        h.update([u8::from(f.is_dir)]);
        h.update(f.modified_ms.to_le_bytes());
        match d {
            Some(d) => {
                h.update([1]);
                h.update(d.0);
            }
            None => h.update([0]),
        }
    }
    Digest(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, size: u64) -> FileEntry {
        FileEntry {
            path: path.into(),
            size,
            is_dir: false,
            modified_ms: 7,
        }
    }

    #[test]
    fn digests_ignore_order_and_see_every_field() {
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        assert_eq!(objects_digest(&[a, b, a]), objects_digest(&[b, a]));
        assert_ne!(objects_digest(&[a]), objects_digest(&[a, b]));
        let one = [(entry("/x", 1), Some(a)), (entry("/y", 2), None)];
        let other = [(entry("/y", 2), None), (entry("/x", 1), Some(a))];
        assert_eq!(volume_digest(&one), volume_digest(&other));
        for changed in [
            [(entry("/x", 1), Some(b)), (entry("/y", 2), None)],
            [(entry("/x", 1), None), (entry("/y", 2), None)],
            [(entry("/x", 3), Some(a)), (entry("/y", 2), None)],
            [(entry("/x", 1), Some(a)), (entry("/z", 2), None)],
        ] {
            assert_ne!(volume_digest(&one), volume_digest(&changed));
        }
    }
}
