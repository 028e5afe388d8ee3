//! Objects that come as patches: the ground answers a `Want` with the object itself, the object
//! compressed, or a delta against an object onboard, and announces each patch with a
//! `Patches` message; the patch crosses the link as an object of its own.
//!
//! A patch is applied once both its announcement and its object are here, in either order
//! ([`Patcher`] keeps the announcements until then), one at a time (an apply holds the base, the
//! patch and the result in memory, about three times the object, bounded by
//! [`wire::MAX_PATCHED_OBJECT`]). [`apply`] stores the result only once `delta` verified its
//! sha256 and it is the object that was asked for: nothing else is ever stored under a wanted
//! digest. The agent then removes the spent patch (only an object whose file starts with a
//! patch's header, [`is_patch`], that no unfinished plan refers to); one that fails makes the
//! agent ask for the object itself.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::sync::Mutex;

use wire::{Digest, MAX_PATCHED_OBJECT, PatchOffer};

use crate::store::ObjectStore;

/// Why a patch did not make its object.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PatchError {
    /// The patch or its base could not be read.
    #[error("cannot read {what} {digest}: {error}")]
    Read {
        what: &'static str,
        digest: Digest,
        error: io::Error,
    },
    /// The patch does not describe the object asked for.
    #[error("the patch makes {made}, not the object asked for ({wanted})")]
    WrongTarget { made: Digest, wanted: Digest },
    /// The patch is made against another base than the one announced.
    #[error("the patch is made against {base}, not the announced {announced}")]
    OtherBase { base: Digest, announced: String },
    /// Its base is not onboard.
    #[error("its base {0} is not onboard")]
    MissingBase(Digest),
    /// It does not apply or its result does not verify.
    #[error("{0}")]
    Delta(#[from] delta::DeltaError),
    /// The result could not be stored.
    #[error("cannot store the result: {0}")]
    Write(io::Error),
    /// The patch's file could not be read.
    #[error("cannot read the patch: {0}")]
    Io(io::Error),
}

/// The patches announced and not yet applied, by the patch's digest.
#[derive(Debug)]
pub(crate) struct Patcher {
    offers: Mutex<HashMap<Digest, PatchOffer>>,
    /// One apply at a time: each holds about three times its object in memory.
    pub(crate) gate: tokio::sync::Semaphore,
}

/// At most this many announcements are kept; beyond, the oldest go (the agent asks again for
/// what is still missing when its uplink stalls).
const MAX_OFFERS: usize = 4096;

impl Patcher {
    pub(crate) fn new() -> Patcher {
        Patcher {
            offers: Mutex::default(),
            gate: tokio::sync::Semaphore::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, PatchOffer>> {
        self.offers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps an announcement until its patch is here.
    pub(crate) fn offer(&self, offer: PatchOffer) {
        let mut offers = self.lock();
        if offers.len() >= MAX_OFFERS && !offers.contains_key(&offer.patch) {
            // Any one: they are all equally likely to be still in flight.
            if let Some(k) = offers.keys().next().copied() {
                offers.remove(&k);
            }
        }
        offers.insert(offer.patch, offer);
    }

    /// The announcement of the patch `patch`, taken: it is applied once.
    pub(crate) fn take(&self, patch: &Digest) -> Option<PatchOffer> {
        self.lock().remove(patch)
    }
}

/// The header of the patch `file` starts with (read from its first [`delta::HEADER_LEN`] bytes,
/// by the `delta` crate's parser), its body not read. `Err` when those bytes are not a patch's
/// header (too few, another magic, an unknown version or kind).
pub(crate) fn read_header(file: &mut File) -> Result<delta::Header, PatchError> {
    let mut prefix = [0u8; delta::HEADER_LEN];
    let mut got = 0;
    while got < prefix.len() {
        match file.read(&mut prefix[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(PatchError::Io(e)),
        }
    }
    if got < prefix.len() {
        // The parser says which part is missing.
        return Err(delta::Header::read(&prefix[..got]).err().map_or(
            PatchError::Delta(delta::DeltaError::Truncated("header")),
            PatchError::Delta,
        ));
    }
    // The body size is the header's last field, and the parser checks it against the bytes
    // that follow, which are not read yet: it is given a header that declares none.
    let at = delta::HEADER_LEN - 8;
    let mut declared = [0u8; 8];
    declared.copy_from_slice(&prefix[at..]);
    prefix[at..].fill(0);
    let mut header = delta::Header::read(&prefix)?;
    header.body_size = u64::from_le_bytes(declared);
    Ok(header)
}

/// Whether the object `digest` is a patch: its file starts with a patch's header
/// ([`read_header`]). Only such an object is ever removed as a spent patch. Blocking.
pub(crate) fn is_patch(store: &ObjectStore, digest: &Digest) -> bool {
    File::open(store.path(digest)).is_ok_and(|mut f| read_header(&mut f).is_ok())
}

/// Reads at most `limit` bytes of the object; more is an error.
fn read_object(
    store: &ObjectStore,
    what: &'static str,
    digest: &Digest,
    limit: u64,
) -> Result<Vec<u8>, PatchError> {
    let read = || -> io::Result<Vec<u8>> {
        let file = File::open(store.path(digest))?;
        let mut bytes = Vec::new();
        file.take(limit + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(io::Error::other(format!("larger than {limit} bytes")));
        }
        Ok(bytes)
    };
    read().map_err(|error| PatchError::Read {
        what,
        digest: *digest,
        error,
    })
}

/// Applies the announced patch (its object is in the store) and stores the result as the
/// object asked for, verified. The layers a `delta` layers patch leaves out come from `layers`
/// (each checked against its DiffID by `delta`). Nothing is stored when it fails. Blocking.
pub(crate) fn apply(
    store: &ObjectStore,
    offer: &PatchOffer,
    layers: &mut dyn delta::LayerSource,
) -> Result<(), PatchError> {
    if store.has(&offer.target) {
        return Ok(());
    }
    let read_failed = |error| PatchError::Read {
        what: "patch",
        digest: offer.patch,
        error,
    };
    let mut file = File::open(store.path(&offer.patch)).map_err(read_failed)?;
    // The header first: nothing more is read of a file that is no patch, or one whose sizes
    // are beyond what an apply may hold.
    let header = read_header(&mut file)?;
    let too_large = |what, size, limit| delta::DeltaError::TooLarge { what, size, limit };
    if header.result_size > MAX_PATCHED_OBJECT {
        return Err(too_large("declared result", header.result_size, MAX_PATCHED_OBJECT).into());
    }
    // A patch is never much larger than its result (an incompressible file comes raw).
    if header.body_size > 2 * MAX_PATCHED_OBJECT {
        return Err(too_large("declared body", header.body_size, 2 * MAX_PATCHED_OBJECT).into());
    }
    let made = Digest(header.result_sha256);
    if made != offer.target {
        return Err(PatchError::WrongTarget {
            made,
            wanted: offer.target,
        });
    }
    let base = match header.kind {
        delta::Kind::Whole => None,
        // A layers patch names a base only when its literals are made against one.
        delta::Kind::Layers if header.base_size == 0 && header.base_sha256 == [0; 32] => None,
        _ => {
            let base = Digest(header.base_sha256);
            if offer.base.is_some_and(|b| b != base) {
                return Err(PatchError::OtherBase {
                    base,
                    announced: offer.base.map(|b| b.to_string()).unwrap_or_default(),
                });
            }
            if !store.has(&base) {
                return Err(PatchError::MissingBase(base));
            }
            Some(read_object(store, "base", &base, MAX_PATCHED_OBJECT)?)
        }
    };
    // Exactly what the header declares, checked against the file before it is read.
    let len = delta::HEADER_LEN as u64 + header.body_size;
    let held = file.metadata().map_err(read_failed)?.len();
    if held < len {
        return Err(delta::DeltaError::Truncated("body").into());
    }
    if held > len {
        return Err(delta::DeltaError::Corrupt {
            kind: header.kind,
            what: format!("{} bytes after the body", held - len),
        }
        .into());
    }
    let mut patch = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.seek(io::SeekFrom::Start(0))
        .and_then(|_| file.take(len).read_to_end(&mut patch))
        .map_err(read_failed)?;
    let limits = delta::Limits {
        max_result: MAX_PATCHED_OBJECT,
    };
    let result = delta::apply_with_layers(base.as_deref(), &patch, limits, layers)?;
    drop((patch, base));
    store
        .put_object(&result, &offer.target)
        .map_err(PatchError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ObjectStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = ObjectStore::open(dir.path()).unwrap();
        (dir, s)
    }

    fn old_and_new() -> (Vec<u8>, Vec<u8>) {
        let old: Vec<u8> = (0..50_000u32).flat_map(|i| (i * 7).to_le_bytes()).collect();
        let mut new = old.clone();
        new[1000..1010].copy_from_slice(b"0123456789");
        new.extend_from_slice(b"a new tail");
        (old, new)
    }

    fn offer(s: &ObjectStore, patch: &[u8], target: &[u8], base: Option<&[u8]>) -> PatchOffer {
        PatchOffer {
            target: Digest::of(target),
            patch: s.put(patch),
            base: base.map(Digest::of),
            size: patch.len() as u64,
        }
    }

    #[test]
    fn a_delta_and_a_compressed_object_make_their_objects() {
        let (_d, s) = store();
        let (old, new) = old_and_new();
        s.put(&old);
        let delta = delta::make_kind(
            delta::Kind::Bsdiff,
            Some(&old),
            &new,
            delta::MakeOptions::default(),
        )
        .unwrap();
        let o = offer(&s, &delta, &new, Some(&old));
        apply(&s, &o, &mut delta::NoLayers).unwrap();
        assert_eq!(std::fs::read(s.path(&o.target)).unwrap(), new);

        let whole = delta::make(None, b"compressed object compressed object");
        let o = offer(&s, &whole, b"compressed object compressed object", None);
        apply(&s, &o, &mut delta::NoLayers).unwrap();
        assert!(s.has(&o.target));
    }

    /// The header read from a patch's first bytes is the one the `delta` crate reads from the
    /// whole patch, for every kind; anything else is not a patch.
    #[test]
    fn a_header_is_read_from_the_first_bytes_only() {
        let (_d, s) = store();
        let (old, new) = old_and_new();
        for kind in [
            delta::Kind::Whole,
            delta::Kind::ZstdRef,
            delta::Kind::Bsdiff,
        ] {
            let base = (kind != delta::Kind::Whole).then_some(&old[..]);
            let patch = delta::make_kind(kind, base, &new, delta::MakeOptions::default()).unwrap();
            let d = s.put(&patch);
            let mut file = File::open(s.path(&d)).unwrap();
            let header = read_header(&mut file).unwrap();
            assert_eq!(header, delta::Header::read(&patch).unwrap(), "{kind}");
            assert!(header.body_size > 0, "{kind}");
            assert!(is_patch(&s, &d), "{kind}");
            // Cut anywhere in its body, it still starts with a patch's header.
            let cut = s.put(&patch[..delta::HEADER_LEN + 1]);
            assert!(is_patch(&s, &cut), "{kind}");
        }
        for not in [&b"results of a pod"[..], &delta::MAGIC[..], b""] {
            let d = s.put(not);
            assert!(!is_patch(&s, &d), "{not:?}");
        }
    }

    /// A patch's header is read before its body: one that declares a result or a body beyond
    /// what an apply may hold is refused as such, whatever follows it, and a file longer than
    /// it declares is refused before its body is read.
    #[test]
    fn a_patch_is_judged_by_its_header_before_its_body_is_read() {
        let (_d, s) = store();
        let target = b"what the patch makes";
        let patch = |result_size: u64, body_size: u64, body: &[u8]| {
            let mut p = Vec::new();
            delta::Header {
                kind: delta::Kind::Whole,
                base_size: 0,
                base_sha256: [0; 32],
                result_size,
                result_sha256: delta::sha256(target),
                body_size,
            }
            .write(&mut p);
            p.extend_from_slice(body);
            p
        };
        let too_large = |p: &[u8]| {
            let o = offer(&s, p, target, None);
            match apply(&s, &o, &mut delta::NoLayers) {
                Err(PatchError::Delta(delta::DeltaError::TooLarge { what, size, limit })) => {
                    (what, size, limit)
                }
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            too_large(&patch(MAX_PATCHED_OBJECT + 1, 4, b"body")),
            (
                "declared result",
                MAX_PATCHED_OBJECT + 1,
                MAX_PATCHED_OBJECT
            )
        );
        assert_eq!(
            too_large(&patch(20, 2 * MAX_PATCHED_OBJECT + 1, b"body")),
            (
                "declared body",
                2 * MAX_PATCHED_OBJECT + 1,
                2 * MAX_PATCHED_OBJECT
            )
        );
        let longer = patch(20, 4, b"body and more");
        let o = offer(&s, &longer, target, None);
        assert!(
            matches!(
                apply(&s, &o, &mut delta::NoLayers),
                Err(PatchError::Delta(delta::DeltaError::Corrupt { ref what, .. }))
                    if what == "9 bytes after the body"
            ),
            "{:?}",
            apply(&s, &o, &mut delta::NoLayers)
        );
        assert!(!s.has(&Digest::of(target)));
    }

    /// A corrupted patch, a patch against another base, a truncated one, one for another
    /// object: each is an error and nothing is stored under the wanted digest.
    #[test]
    fn a_bad_patch_stores_nothing() {
        let (_d, s) = store();
        let (old, new) = old_and_new();
        s.put(&old);
        let good = delta::make_kind(
            delta::Kind::ZstdRef,
            Some(&old),
            &new,
            delta::MakeOptions::default(),
        )
        .unwrap();
        let mut corrupt = good.clone();
        let at = corrupt.len() - 20;
        corrupt[at] ^= 0x5a;
        let truncated = &good[..good.len() / 2];
        assert!(truncated.len() < delta::HEADER_LEN, "cut in its header");
        let cut_body = &good[..good.len() - 7];
        let mut other_old = old.clone();
        other_old[0] ^= 1;
        s.put(&other_old);
        let other_base = delta::make_kind(
            delta::Kind::ZstdRef,
            Some(&other_old),
            &new,
            delta::MakeOptions::default(),
        )
        .unwrap();
        type Expected = fn(&PatchError) -> bool;
        let cases: Vec<(&str, PatchOffer, Expected)> = vec![
            ("corrupt", offer(&s, &corrupt, &new, Some(&old)), |e| {
                matches!(
                    e,
                    PatchError::Delta(delta::DeltaError::Corrupt {
                        kind: delta::Kind::ZstdRef,
                        ..
                    })
                )
            }),
            ("truncated", offer(&s, truncated, &new, Some(&old)), |e| {
                matches!(e, PatchError::Delta(delta::DeltaError::Truncated("header")))
            }),
            (
                "cut in its body",
                offer(&s, cut_body, &new, Some(&old)),
                |e| matches!(e, PatchError::Delta(delta::DeltaError::Truncated("body"))),
            ),
            (
                "other base",
                offer(&s, &other_base, &new, Some(&old)),
                |e| matches!(e, PatchError::OtherBase { .. }),
            ),
            (
                "another object",
                PatchOffer {
                    target: Digest::of(b"something else"),
                    ..offer(&s, &good, &new, Some(&old))
                },
                |e| matches!(e, PatchError::WrongTarget { .. }),
            ),
        ];
        for (name, o, expected) in cases {
            let e = apply(&s, &o, &mut delta::NoLayers).unwrap_err();
            assert!(expected(&e), "{name}: {e:?}");
            assert!(!s.has(&o.target), "{name}: stored anyway");
            assert!(!s.has(&Digest::of(&new)), "{name}: stored anyway");
        }
        // The base missing onboard.
        let (_d2, bare) = store();
        let o = offer(&bare, &good, &new, Some(&old));
        assert!(matches!(
            apply(&bare, &o, &mut delta::NoLayers),
            Err(PatchError::MissingBase(_))
        ));
        assert!(!bare.has(&o.target));
    }
}
