//! The layer-aware kind ([`Kind::Layers`]): a tar archive (a `docker save` archive, Docker or
//! OCI layout) whose entries that are image layers the satellite can produce cost nothing.
//!
//! An entry is matched by its content: every regular entry of at least [`MIN_SPLICE`] bytes
//! whose sha256 is in the set of DiffIDs the maker is given (the layers onboard) is left out of
//! the patch and named by that digest and its size. So `<id>/layer.tar` (Docker) and
//! `blobs/sha256/<hex>` (OCI, uncompressed layers) are found alike, whatever their names.
//!
//! Body:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | inner encoding of the literals: 1 whole-zstd, 2 zstd with the base as reference prefix |
//! | varint | total bytes of the literals |
//! | varint | number of segments |
//! | … | each segment: `0` + varint length (literal bytes, taken in order), or `1` + 32-byte DiffID + varint size (a layer) |
//! | rest | the zstd stream of the literals, concatenated |
//!
//! Applying asks a [`LayerSource`] for each layer and uses it only if its size and sha256 are
//! the ones the segment names; the header's result sha256 then makes the archive byte-exact.
//! Every size is checked against the declared result before anything is allocated or asked for.

use std::collections::HashSet;

use crate::varint::{self, Reader};
use crate::{DeltaError, Kind, generic, sha256};

/// Entries smaller than this travel in the literals: an empty layer (1 KiB of zeros) costs a
/// few bytes of zstd, and asking the satellite for it costs a `docker save`.
pub const MIN_SPLICE: u64 = 4096;

const INNER_WHOLE: u8 = 1;
const INNER_REF: u8 = 2;
const SEG_LITERAL: u8 = 0;
const SEG_LAYER: u8 = 1;

/// Produces, onboard, the uncompressed tar of a layer (its DiffID is the sha256 of those bytes).
/// What it returns is checked by the caller: a layer of another size or digest fails the apply.
pub trait LayerSource {
    /// The layer whose sha256 is `diff_id`, of `size` bytes; `Err` says why it cannot be had.
    fn layer(&mut self, diff_id: &[u8; 32], size: u64) -> Result<Vec<u8>, String>;
}

/// A source that has no layer: [`crate::apply_with`] uses it, so a layers patch that names one
/// fails there.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLayers;

impl LayerSource for NoLayers {
    fn layer(&mut self, _diff_id: &[u8; 32], _size: u64) -> Result<Vec<u8>, String> {
        Err("no layer source given".into())
    }
}

/// A source over layers held in memory, keyed by their sha256 (tests, the CLI, benches).
#[derive(Debug, Clone, Default)]
pub struct MemoryLayers(pub std::collections::HashMap<[u8; 32], Vec<u8>>);

impl MemoryLayers {
    /// Keeps `bytes`, under its sha256.
    pub fn insert(&mut self, bytes: Vec<u8>) {
        self.0.insert(sha256(&bytes), bytes);
    }
}

impl LayerSource for MemoryLayers {
    fn layer(&mut self, diff_id: &[u8; 32], _size: u64) -> Result<Vec<u8>, String> {
        self.0
            .get(diff_id)
            .cloned()
            .ok_or_else(|| format!("layer sha256:{} is not held", hex::encode(diff_id)))
    }
}

/// One member of a tar archive, as [`entries`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name (the ustar prefix and name joined; lossy UTF-8).
    pub name: String,
    /// Where its content starts in the archive.
    pub offset: usize,
    /// Bytes of content.
    pub size: u64,
    /// The typeflag byte.
    pub typeflag: u8,
}

impl Entry {
    /// A regular file's content (what a layer is in either layout).
    pub fn is_file(&self) -> bool {
        matches!(self.typeflag, b'0' | 0 | b'7')
    }
}

/// The numeric field of a tar header: octal ASCII, or base-256 when its first byte has the
/// high bit set. `None` when it is neither.
fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let mut v: u64 = 0;
    let mut seen = false;
    for &b in field {
        match b {
            b'0'..=b'7' => {
                v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
                seen = true;
            }
            b' ' if !seen => {}
            0 | b' ' => break,
            _ => return None,
        }
    }
    Some(v)
}

/// Whether `bytes` starts with a tar header (512 bytes, not all zeros, whose checksum
/// verifies): what is worth reading whole before trying [`crate::make_layers`].
pub fn starts_like_tar(bytes: &[u8]) -> bool {
    bytes
        .get(..512)
        .is_some_and(|h| h.iter().any(|&b| b != 0) && checksum_ok(h))
}

/// The header's bytes summed with the checksum field as spaces are its checksum.
fn checksum_ok(h: &[u8]) -> bool {
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    number(&h[148..156]) == Some(sum)
}

/// The members of the tar archive `bytes`, in order, up to its end marker or the first header
/// that does not read (what follows is then simply not listed). Never panics.
pub fn entries(bytes: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(h) = pos.checked_add(512).and_then(|end| bytes.get(pos..end)) {
        if h.iter().all(|&b| b == 0) {
            break;
        }
        if !checksum_ok(h) {
            break;
        }
        let Some(size) = number(&h[124..136]) else {
            break;
        };
        let Some(start) = pos.checked_add(512) else {
            break;
        };
        let padded = size.div_ceil(512).saturating_mul(512);
        let Some(next) = usize::try_from(padded)
            .ok()
            .and_then(|p| start.checked_add(p))
            .filter(|&n| n <= bytes.len())
        else {
            break;
        };
        let field = |r: std::ops::Range<usize>| {
            let f = &h[r];
            let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).into_owned()
        };
        let (name, prefix) = (field(0..100), field(345..500));
        let ustar = &h[257..262] == b"ustar";
        let name = if ustar && !prefix.is_empty() {
            format!("{prefix}/{name}")
        } else {
            name
        };
        out.push(Entry {
            name,
            offset: start,
            size,
            typeflag: h[156],
        });
        pos = next;
    }
    out
}

/// The parts of the new archive: literal byte ranges and layers left out.
enum Segment {
    Literal(std::ops::Range<usize>),
    Layer([u8; 32], u64),
}

/// The body of a layers patch turning `old` (if any) into `new`, leaving out each entry whose
/// sha256 is in `onboard`, and whether it uses `old`. `None` when `new` is no tar archive or no
/// entry of it is left out.
pub(crate) fn make(
    old: Option<&[u8]>,
    new: &[u8],
    onboard: &HashSet<[u8; 32]>,
) -> Option<(Vec<u8>, bool)> {
    let mut segments = Vec::new();
    let mut at = 0usize;
    for e in entries(new) {
        if !e.is_file() || e.size < MIN_SPLICE {
            continue;
        }
        let len = usize::try_from(e.size).ok()?;
        let content = new.get(e.offset..e.offset.checked_add(len)?)?;
        let digest = sha256(content);
        if !onboard.contains(&digest) {
            continue;
        }
        if e.offset > at {
            segments.push(Segment::Literal(at..e.offset));
        }
        segments.push(Segment::Layer(digest, e.size));
        at = e.offset + len;
    }
    if !segments.iter().any(|s| matches!(s, Segment::Layer(..))) {
        return None;
    }
    if at < new.len() {
        segments.push(Segment::Literal(at..new.len()));
    }
    let mut literals = Vec::new();
    for s in &segments {
        if let Segment::Literal(r) = s {
            literals.extend_from_slice(&new[r.clone()]);
        }
    }
    let whole = generic::whole(&literals);
    let (inner, stream) = match old.map(|o| generic::zstd_ref(o, &literals)) {
        Some(r) if !r.is_empty() && r.len() < whole.len() => (INNER_REF, r),
        _ => (INNER_WHOLE, whole),
    };
    if stream.is_empty() {
        return None;
    }
    let mut body = vec![inner];
    varint::put(&mut body, literals.len() as u64);
    varint::put(&mut body, segments.len() as u64);
    for s in &segments {
        match s {
            Segment::Literal(r) => {
                body.push(SEG_LITERAL);
                varint::put(&mut body, r.len() as u64);
            }
            Segment::Layer(d, size) => {
                body.push(SEG_LAYER);
                body.extend_from_slice(d);
                varint::put(&mut body, *size);
            }
        }
    }
    body.extend_from_slice(&stream);
    Some((body, inner == INNER_REF))
}

/// The layers a [`Kind::Layers`] patch (header included) names, DiffID and size, in order;
/// `None` when it is no readable layers patch. Whoever holds a patch can tell from this what the
/// satellite must produce to apply it (the ground, whether a patch made earlier still fits what
/// is onboard).
pub fn named(patch: &[u8]) -> Option<Vec<([u8; 32], u64)>> {
    let body = patch.get(crate::HEADER_LEN..)?;
    if crate::Header::read(patch).ok()?.kind != Kind::Layers {
        return None;
    }
    let mut r = Reader::new(body);
    r.byte()?;
    r.get()?;
    let count = r.get()?;
    if count > body.len() as u64 / 2 {
        return None;
    }
    let mut out = Vec::new();
    for _ in 0..count {
        match r.byte()? {
            SEG_LITERAL => {
                r.get()?;
            }
            SEG_LAYER => {
                let mut id = [0u8; 32];
                id.copy_from_slice(r.take(32)?);
                out.push((id, r.get()?));
            }
            _ => return None,
        }
    }
    Some(out)
}

fn corrupt(what: impl Into<String>) -> DeltaError {
    DeltaError::Corrupt {
        kind: Kind::Layers,
        what: what.into(),
    }
}

/// Whether the body of a layers patch encodes its literals against the base (then the header
/// names one).
pub(crate) fn uses_base(body: &[u8]) -> bool {
    body.first() == Some(&INNER_REF)
}

/// The archive back from a layers body: `size` bytes, `old` the (checked) base if the header
/// names one. Layers come from `source`, each checked against its DiffID and size.
pub(crate) fn apply(
    old: Option<&[u8]>,
    body: &[u8],
    size: usize,
    source: &mut dyn LayerSource,
) -> Result<Vec<u8>, DeltaError> {
    let mut r = Reader::new(body);
    let inner = r
        .byte()
        .ok_or(DeltaError::Truncated("layers: inner kind"))?;
    let prefix = match (inner, old) {
        (INNER_WHOLE, _) => None,
        (INNER_REF, Some(old)) => Some(old),
        (INNER_REF, None) => return Err(DeltaError::MissingBase(Kind::Layers)),
        (k, _) => return Err(corrupt(format!("unknown inner encoding {k}"))),
    };
    let literal_total = r
        .get()
        .ok_or_else(|| corrupt("the literals' size does not read"))?;
    let count = r
        .get()
        .ok_or_else(|| corrupt("the segment count does not read"))?;
    // Each segment takes at least two bytes of the body.
    if count > body.len() as u64 / 2 {
        return Err(corrupt(format!(
            "{count} segments in a body of {} bytes",
            body.len()
        )));
    }
    let mut segments = Vec::with_capacity(count as usize);
    let (mut literals, mut total) = (0u64, 0u64);
    for i in 0..count {
        let seg = match r.byte() {
            Some(SEG_LITERAL) => {
                let len = r
                    .get()
                    .ok_or_else(|| corrupt(format!("segment {i}: length")))?;
                literals = literals.saturating_add(len);
                (None, len)
            }
            Some(SEG_LAYER) => {
                let d = r
                    .take(32)
                    .ok_or_else(|| corrupt(format!("segment {i}: DiffID cut short")))?;
                let mut id = [0u8; 32];
                id.copy_from_slice(d);
                let len = r
                    .get()
                    .ok_or_else(|| corrupt(format!("segment {i}: size")))?;
                (Some(id), len)
            }
            Some(t) => return Err(corrupt(format!("segment {i}: unknown tag {t}"))),
            None => return Err(DeltaError::Truncated("layers: segments")),
        };
        total = total.saturating_add(seg.1);
        if total > size as u64 {
            return Err(corrupt(format!(
                "segments up to {i} make more than the declared {size} bytes"
            )));
        }
        segments.push(seg);
    }
    if total != size as u64 {
        return Err(corrupt(format!(
            "segments make {total} bytes, the header declares {size}"
        )));
    }
    if literals != literal_total {
        return Err(corrupt(format!(
            "literal segments hold {literals} bytes, the body declares {literal_total}"
        )));
    }
    // `literals` <= `total` == `size`, which fits memory.
    let lits = generic::decode(prefix, r.rest(), literals as usize, Kind::Layers)?;
    let mut out = Vec::with_capacity(size);
    let mut at = 0usize;
    for (id, len) in segments {
        let len_usize = len as usize;
        match id {
            None => {
                out.extend_from_slice(&lits[at..at + len_usize]);
                at += len_usize;
            }
            Some(id) => {
                let layer_failed = |what: String| DeltaError::Layer {
                    diff_id: format!("sha256:{}", hex::encode(id)),
                    what,
                };
                let layer = source.layer(&id, len).map_err(layer_failed)?;
                if layer.len() as u64 != len {
                    return Err(layer_failed(format!(
                        "the layer given has {} bytes, not {len}",
                        layer.len()
                    )));
                }
                let got = sha256(&layer);
                if got != id {
                    return Err(layer_failed(format!(
                        "the layer given is sha256:{}",
                        hex::encode(got)
                    )));
                }
                out.extend_from_slice(&layer);
            }
        }
    }
    Ok(out)
}
