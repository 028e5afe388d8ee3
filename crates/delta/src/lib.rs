//! Patches that turn a file the satellite holds into the file the ground wants it to hold.
//!
//! A patch is self-describing ([`Header`]): magic, format version, [`Kind`], the sizes and
//! sha256 of the base (the old file, if any) and of the result, and the size of the body. [`make`] tries every kind that
//! applies and keeps the smallest; [`apply`] checks the base before anything else, bounds every
//! size it decodes by the declared sizes and a [`Limits`] before allocating, and returns the
//! result only once its sha256 is the one the header declares. Nothing here panics on any input
//! (fuzz target in `fuzz/`).
//!
//! Kinds: the whole file as zstd -19 with a long window ([`Kind::Whole`]); zstd with the old
//! file as reference prefix, zstd's `--patch-from` ([`Kind::ZstdRef`]); a bsdiff-4 patch
//! ([`Kind::Bsdiff`]); and an executable-aware delta for ELF x86-64 and AArch64 ([`Kind::Exe`],
//! see [`exe`]): references are rewritten to absolute targets in the new address space, the old
//! image's through an address map carried in the patch, and the rewritten images are diffed.
//! And for tar archives (`docker save`), [`Kind::Layers`] ([`make_layers`], [`layers`]): the
//! entries that are layers the satellite holds are named by DiffID instead of carried, and
//! [`apply_with_layers`] gets them from a [`LayerSource`], each checked against its DiffID.
//!
//! **Architecture invariant:** no clock, no file or network I/O: bytes in, bytes out.

mod elf;
pub mod exe;
mod format;
mod generic;
mod gotab;
pub mod layers;
mod unwind;
mod varint;

pub use format::{HEADER_LEN, Header, Kind, MAGIC, VERSION};
pub use layers::{LayerSource, MemoryLayers, NoLayers};

use sha2::{Digest as _, Sha256};

/// What went wrong turning a patch into a file. Each names what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The patch ends before the named part.
    #[error("truncated patch: {0}")]
    Truncated(&'static str),
    /// The patch does not start with [`MAGIC`].
    #[error("not an orbitdock patch (bad magic)")]
    BadMagic,
    /// A format version this build does not read.
    #[error("unsupported patch version {0}")]
    UnsupportedVersion(u8),
    /// A kind this build does not know.
    #[error("unknown patch kind {0}")]
    UnknownKind(u8),
    /// The patch needs a base and none was given.
    #[error("this {0} patch needs the old file")]
    MissingBase(Kind),
    /// The old file is not the one the patch was made against.
    #[error(
        "wrong base: the patch was made against {expected} ({expected_size} bytes), the old file is {actual} ({actual_size} bytes)"
    )]
    WrongBase {
        /// sha256 the header declares (hex).
        expected: String,
        /// Its size.
        expected_size: u64,
        /// sha256 of the old file given (hex).
        actual: String,
        /// Its size.
        actual_size: u64,
    },
    /// A declared size is beyond what this apply may allocate.
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What was declared.
        what: &'static str,
        /// The size declared.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The body of the patch does not decode.
    #[error("corrupt {kind} patch: {what}")]
    Corrupt {
        /// The kind being decoded.
        kind: Kind,
        /// What failed, and where.
        what: String,
    },
    /// A layer a [`Kind::Layers`] patch names could not be had, or is not that layer.
    #[error("layer {diff_id}: {what}")]
    Layer {
        /// The layer's DiffID (`sha256:<hex>`).
        diff_id: String,
        /// What went wrong.
        what: String,
    },
    /// The patch decoded but the result is not the file the header declares.
    #[error("result does not verify: expected sha256 {expected}, got {actual}")]
    ResultMismatch {
        /// Declared (hex).
        expected: String,
        /// Computed (hex).
        actual: String,
    },
}

/// Bounds of one apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest result the patch may declare.
    pub max_result: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_result: 4 << 30,
        }
    }
}

/// Options of [`make_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MakeOptions {
    /// Files above this size are not tried with bsdiff (its suffix array costs ~ 9× the old
    /// file on the ground, and its time grows as n log n).
    pub bsdiff_max: usize,
    /// Try the executable-aware kind on ELF files.
    pub exe: bool,
}

impl Default for MakeOptions {
    fn default() -> Self {
        MakeOptions {
            bsdiff_max: 64 << 20,
            exe: true,
        }
    }
}

/// One candidate [`make_with`] produced, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its kind.
    pub kind: Kind,
    /// Bytes of the whole patch, header included (`None`: the kind does not apply).
    pub size: Option<usize>,
}

/// The smallest patch turning `old` (if any) into `new`.
pub fn make(old: Option<&[u8]>, new: &[u8]) -> Vec<u8> {
    make_with(old, new, MakeOptions::default()).0
}

/// The smallest patch and the size each kind reached.
pub fn make_with(old: Option<&[u8]>, new: &[u8], opts: MakeOptions) -> (Vec<u8>, Vec<Candidate>) {
    let mut report = Vec::new();
    let mut best = make_kind(Kind::Whole, old, new, opts).unwrap_or_default();
    report.push(Candidate {
        kind: Kind::Whole,
        size: Some(best.len()),
    });
    if old.is_some() {
        for kind in [Kind::ZstdRef, Kind::Bsdiff, Kind::Exe] {
            let p = make_kind(kind, old, new, opts);
            report.push(Candidate {
                kind,
                size: p.as_ref().map(Vec::len),
            });
            if let Some(p) = p
                && p.len() < best.len()
            {
                best = p;
            }
        }
    }
    (best, report)
}

/// The [`Kind::Layers`] patch turning `old` (if any) into the tar archive `new`, leaving out
/// each entry whose content's sha256 is in `onboard` (the DiffIDs of layers the satellite can
/// produce). `None` when `new` is no tar archive or none of its entries is such a layer. The
/// literals left are zstd, against `old` when that is smaller (the header then names `old`
/// as base).
pub fn make_layers(
    old: Option<&[u8]>,
    new: &[u8],
    onboard: &std::collections::HashSet<[u8; 32]>,
) -> Option<Vec<u8>> {
    let (body, uses_old) = layers::make(old, new, onboard)?;
    let base = if uses_old { old } else { None };
    Some(with_header(Kind::Layers, base, new, &body))
}

fn with_header(kind: Kind, base: Option<&[u8]>, new: &[u8], body: &[u8]) -> Vec<u8> {
    let header = Header {
        kind,
        base_size: base.map_or(0, |b| b.len() as u64),
        base_sha256: base.map_or([0; 32], sha256),
        result_size: new.len() as u64,
        result_sha256: sha256(new),
        body_size: body.len() as u64,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    header.write(&mut out);
    out.extend_from_slice(body);
    out
}

/// A patch of one kind, or `None` when the kind does not apply (no base, not an ELF file the
/// executable-aware kind reads, a file too large for bsdiff; [`Kind::Layers`] is made by
/// [`make_layers`], which needs the layers onboard).
pub fn make_kind(kind: Kind, old: Option<&[u8]>, new: &[u8], opts: MakeOptions) -> Option<Vec<u8>> {
    let body = match (kind, old) {
        (Kind::Whole, _) => generic::whole(new),
        (Kind::ZstdRef, Some(old)) => generic::zstd_ref(old, new),
        (Kind::Bsdiff, Some(old)) if old.len().max(new.len()) <= opts.bsdiff_max => {
            generic::bsdiff(old, new)?
        }
        (Kind::Exe, Some(old)) if opts.exe && old.len().max(new.len()) <= opts.bsdiff_max => {
            exe::make(old, new)?
        }
        _ => return None,
    };
    let base = match kind {
        Kind::Whole => None,
        _ => old,
    };
    Some(with_header(kind, base, new, &body))
}

/// Apply with the default [`Limits`].
pub fn apply(old: Option<&[u8]>, patch: &[u8]) -> Result<Vec<u8>, DeltaError> {
    apply_with(old, patch, Limits::default())
}

/// The file `patch` describes, made from `old`; only once its size and sha256 are the ones the
/// header declares. Peak memory: `old`, the patch, the result, and for [`Kind::Exe`] a
/// rewritten copy of `old` (≈ 3 × the file plus zstd's and bspatch's buffers).
pub fn apply_with(old: Option<&[u8]>, patch: &[u8], limits: Limits) -> Result<Vec<u8>, DeltaError> {
    apply_with_layers(old, patch, limits, &mut NoLayers)
}

/// [`apply_with`], with the layers a [`Kind::Layers`] patch names taken from `layers` (each
/// used only once its size and sha256 are the ones the patch names). Peak memory for that kind:
/// the base if any, the patch, the literals, the result and one layer at a time.
pub fn apply_with_layers(
    old: Option<&[u8]>,
    patch: &[u8],
    limits: Limits,
    layers: &mut dyn LayerSource,
) -> Result<Vec<u8>, DeltaError> {
    let header = Header::read(patch)?;
    let body = &patch[HEADER_LEN..];
    if header.result_size > limits.max_result {
        return Err(DeltaError::TooLarge {
            what: "declared result",
            size: header.result_size,
            limit: limits.max_result,
        });
    }
    let base = match header.kind {
        Kind::Whole => None,
        // A layers patch names a base only when its literals are encoded against one.
        Kind::Layers if header.base_size == 0 && header.base_sha256 == [0; 32] => None,
        kind => {
            let old = old.ok_or(DeltaError::MissingBase(kind))?;
            let actual = sha256(old);
            if old.len() as u64 != header.base_size || actual != header.base_sha256 {
                return Err(DeltaError::WrongBase {
                    expected: hex::encode(header.base_sha256),
                    expected_size: header.base_size,
                    actual: hex::encode(actual),
                    actual_size: old.len() as u64,
                });
            }
            Some(old)
        }
    };
    // `result_size` is at most `limits.max_result`, which fits memory by the caller's choice.
    let size = usize::try_from(header.result_size).map_err(|_| DeltaError::TooLarge {
        what: "declared result",
        size: header.result_size,
        limit: usize::MAX as u64,
    })?;
    let out = match (header.kind, base) {
        (Kind::Whole, _) => generic::unwhole(body, size)?,
        (Kind::ZstdRef, Some(old)) => generic::unzstd_ref(old, body, size)?,
        (Kind::Bsdiff, Some(old)) => generic::bspatch(old, body, size, Kind::Bsdiff)?,
        (Kind::Exe, Some(old)) => exe::apply(old, body, size)?,
        (Kind::Layers, base) => {
            if layers::uses_base(body) && base.is_none() {
                return Err(DeltaError::MissingBase(Kind::Layers));
            }
            layers::apply(base, body, size, layers)?
        }
        (kind, None) => return Err(DeltaError::MissingBase(kind)),
    };
    let actual = sha256(&out);
    if out.len() != size || actual != header.result_sha256 {
        return Err(DeltaError::ResultMismatch {
            expected: hex::encode(header.result_sha256),
            actual: hex::encode(actual),
        });
    }
    Ok(out)
}

/// sha256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
