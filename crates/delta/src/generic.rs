//! The generic kinds: whole zstd, zstd with a reference prefix, bsdiff-4.

use std::io::{Cursor, Read, Write};

use crate::{DeltaError, Kind};

/// zstd level for a file of `len` bytes: -19 up to 32 MiB; above, -19 costs minutes per file
/// on the ground, and a lower level with the long window loses little.
fn level(len: usize) -> i32 {
    if len <= 32 << 20 { 19 } else { 9 }
}

/// Above this many bytes (the new file and its reference), zstd finds long matches too.
const LONG_SPAN: u64 = 8 << 20;

/// log2 of the window that covers `len` bytes, within zstd's bounds.
fn window_log(len: u64) -> u32 {
    let bits = 64 - len.saturating_sub(1).leading_zeros();
    bits.clamp(10, 30)
}

fn encode(prefix: Option<&[u8]>, new: &[u8]) -> std::io::Result<Vec<u8>> {
    let span = new.len() as u64 + prefix.map_or(0, |p| p.len() as u64);
    let out = Vec::with_capacity(new.len() / 3 + 64);
    let mut enc = match prefix {
        Some(p) => zstd::stream::write::Encoder::with_ref_prefix(out, level(new.len()), p)?,
        None => zstd::stream::write::Encoder::new(out, level(new.len()))?,
    };
    enc.window_log(window_log(span))?;
    if span > LONG_SPAN {
        enc.long_distance_matching(true)?;
        // One worker, as the zstd CLI compresses (`--threads=1`): its jobs, each with the
        // whole window behind it, make a patch against a long reference about 2 % smaller than
        // the single-threaded encoder's (699,826 against 713,898 bytes for the bench's 200 MB
        // dataset with 1 % appended, `zstd -9 --long=29 --patch-from` with and without
        // `--single-thread`). The stream is the same format: the decoder is unchanged.
        enc.multithread(1)?;
    }
    enc.include_checksum(false)?;
    enc.include_contentsize(true)?;
    enc.set_pledged_src_size(Some(new.len() as u64))?;
    enc.write_all(new)?;
    enc.finish()
}

/// zstd of the whole file (no base).
pub(crate) fn whole(new: &[u8]) -> Vec<u8> {
    // Writing into a Vec cannot fail; an error here would be zstd refusing its own parameters.
    encode(None, new).unwrap_or_default()
}

/// zstd of `new` with `old` as reference prefix.
pub(crate) fn zstd_ref(old: &[u8], new: &[u8]) -> Vec<u8> {
    encode(Some(old), new).unwrap_or_default()
}

pub(crate) fn decode(
    prefix: Option<&[u8]>,
    body: &[u8],
    size: usize,
    kind: Kind,
) -> Result<Vec<u8>, DeltaError> {
    let corrupt = |e: std::io::Error| DeltaError::Corrupt {
        kind,
        what: format!("zstd stream: {e}"),
    };
    let span = size as u64 + prefix.map_or(0, |p| p.len() as u64);
    let mut dec = match prefix {
        Some(p) => zstd::stream::read::Decoder::with_ref_prefix(body, p),
        None => zstd::stream::read::Decoder::with_buffer(body),
    }
    .map_err(corrupt)?;
    // The window the declared sizes need, and no more: a stream asking for a larger one is
    // refused before zstd allocates it.
    dec.window_log_max(window_log(span)).map_err(corrupt)?;
    let mut out = Vec::with_capacity(size);
    let read = dec
        .take(size as u64 + 1)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    if read != size {
        return Err(DeltaError::Corrupt {
            kind,
            what: format!(
                "zstd stream decodes to {read}{} bytes, the header declares {size}",
                if read > size { "+" } else { "" }
            ),
        });
    }
    Ok(out)
}

/// The whole file back.
pub(crate) fn unwhole(body: &[u8], size: usize) -> Result<Vec<u8>, DeltaError> {
    decode(None, body, size, Kind::Whole)
}

/// `new` back from `old` and a [`zstd_ref`] body.
pub(crate) fn unzstd_ref(old: &[u8], body: &[u8], size: usize) -> Result<Vec<u8>, DeltaError> {
    decode(Some(old), body, size, Kind::ZstdRef)
}

/// A bsdiff-4 patch, or `None` if the old file is beyond what bsdiff indexes.
pub(crate) fn bsdiff(old: &[u8], new: &[u8]) -> Option<Vec<u8>> {
    if old.len() > qbsdiff::bsdiff::MAX_LENGTH {
        return None;
    }
    let mut patch = Vec::new();
    qbsdiff::Bsdiff::new(old, new)
        .compression_level(9)
        .compare(Cursor::new(&mut patch))
        .ok()?;
    Some(patch)
}

/// A `Vec` that refuses to grow past `max`.
struct Bounded {
    buf: Vec<u8>,
    max: usize,
}

impl Write for Bounded {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(b.len()) > self.max {
            return Err(std::io::Error::other("longer than the header declares"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `new` back from `old` and a bsdiff-4 patch, at most `size` bytes.
pub(crate) fn bspatch(
    old: &[u8],
    body: &[u8],
    size: usize,
    kind: Kind,
) -> Result<Vec<u8>, DeltaError> {
    let corrupt = |e: std::io::Error| DeltaError::Corrupt {
        kind,
        what: format!("bsdiff: {e}"),
    };
    // qbsdiff adds the two block sizes unchecked: sizes that overflow are refused here first.
    let size_at = |at: usize| {
        body.get(at..at + 8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    };
    let blocks = match (body.get(..8), size_at(8), size_at(16)) {
        (Some(b"BSDIFF40"), Some(c), Some(d)) if c >> 63 == 0 && d >> 63 == 0 => {
            c.checked_add(d).and_then(|n| n.checked_add(32))
        }
        (Some(b"BSDIFF40"), Some(_), Some(_)) => None,
        (Some(m), Some(_), Some(_)) if m != b"BSDIFF40" => {
            return Err(DeltaError::Corrupt {
                kind,
                what: "bsdiff: no BSDIFF40 magic".into(),
            });
        }
        _ => {
            return Err(DeltaError::Corrupt {
                kind,
                what: "bsdiff: header cut short".into(),
            });
        }
    };
    if blocks.is_none_or(|n| n > body.len() as u64) {
        return Err(DeltaError::Corrupt {
            kind,
            what: "bsdiff: block sizes beyond the patch".into(),
        });
    }
    let patch = qbsdiff::Bspatch::new(body).map_err(corrupt)?;
    if patch.hint_target_size() != size as u64 {
        return Err(DeltaError::Corrupt {
            kind,
            what: format!(
                "bsdiff declares {} bytes, the header {size}",
                patch.hint_target_size()
            ),
        });
    }
    let mut out = Bounded {
        buf: Vec::with_capacity(size),
        max: size,
    };
    patch.apply(old, &mut out).map_err(corrupt)?;
    Ok(out.buf)
}
