//! The address fields of the unwind tables (`.eh_frame`, `.eh_frame_hdr`), which move with the
//! code: found from lengths, CIE contents and encodings only, which the executable-aware
//! rewrite never changes, so the onboard side finds the same fields.

use std::collections::HashMap;

use crate::elf::{Eh, Layout};
use crate::exe::{rd32, wr32};

fn uleb(img: &[u8], p: &mut usize, end: usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if *p >= end {
            return None;
        }
        let b = img[*p];
        *p += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The FDE pointer encoding a CIE at `p` declares (`None`: not one this kind reads).
fn cie_fde_encoding(img: &[u8], p: usize, end: usize) -> Option<u8> {
    let version = *img.get(p + 8)?;
    let mut q = p + 9;
    let aug_start = q;
    while q < end && img[q] != 0 {
        q += 1;
    }
    let aug = img.get(aug_start..q)?;
    q += 1;
    uleb(img, &mut q, end)?; // code alignment
    uleb(img, &mut q, end)?; // data alignment (sleb: same length)
    if version == 1 {
        q += 1;
    } else {
        uleb(img, &mut q, end)?;
    }
    if aug.first() != Some(&b'z') {
        return Some(0);
    }
    uleb(img, &mut q, end)?;
    for &c in &aug[1..] {
        match c {
            b'R' => return img.get(q).copied(),
            b'L' => q += 1,
            b'P' => {
                let enc = *img.get(q)?;
                q += 1 + match enc & 0x0f {
                    0x02 | 0x0a => 2,
                    0x03 | 0x0b => 4,
                    0x04 | 0x0c | 0x00 => 8,
                    _ => return None,
                };
            }
            b'S' | b'B' => {}
            _ => return None,
        }
    }
    Some(0)
}

/// The 4-byte address fields of `.eh_frame` (FDE initial locations, PC-relative) and
/// `.eh_frame_hdr` (its table, relative to the header): (file offset, the address the field
/// is relative to). Found from lengths, CIE contents and encodings only, which the rewrite
/// never changes, so the onboard side finds the same fields.
pub(crate) fn eh_fields(img: &[u8], lay: &Layout) -> Vec<(usize, u64)> {
    let mut out = Vec::new();
    for s in &lay.sections {
        let end = s.off + s.size;
        match s.eh {
            Eh::None => {}
            Eh::Frame => {
                let mut encodings: HashMap<usize, Option<u8>> = HashMap::new();
                let mut p = s.off;
                while p + 8 <= end {
                    let len = rd32(img, p) as usize;
                    if len == 0 || len == 0xFFFF_FFFF {
                        break;
                    }
                    let Some(rec_end) = (p + 4).checked_add(len).filter(|&e| e <= end) else {
                        break;
                    };
                    let id = rd32(img, p + 4) as usize;
                    if id == 0 {
                        encodings.insert(p, cie_fde_encoding(img, p, rec_end));
                    } else if let Some(cie) = (p + 4).checked_sub(id)
                        && encodings.get(&cie).copied().flatten() == Some(0x1b)
                        && p + 12 <= rec_end
                    {
                        out.push((p + 8, s.addr.wrapping_add((p + 8 - s.off) as u64)));
                    }
                    p = rec_end;
                }
            }
            Eh::Hdr => {
                let h = &img[s.off..end];
                if h.len() < 12 || h[0] != 1 || h[1] != 0x1b || h[2] != 0x03 || h[3] != 0x3b {
                    continue;
                }
                out.push((s.off + 4, s.addr.wrapping_add(4)));
                let count = rd32(img, s.off + 8) as usize;
                let fits = count
                    .checked_mul(8)
                    .and_then(|n| n.checked_add(12))
                    .is_some_and(|n| n <= s.size);
                if fits {
                    for i in 0..2 * count {
                        out.push((s.off + 12 + 4 * i, s.addr));
                    }
                }
            }
        }
    }
    out
}

/// New image: each unwind field to its absolute value (`to_abs`) or back.
pub(crate) fn eh_rewrite(img: &mut [u8], lay: &Layout, to_abs: bool) {
    for (at, base) in eh_fields(img, lay) {
        let v = rd32(img, at);
        let nv = if to_abs {
            v.wrapping_add(base as u32)
        } else {
            v.wrapping_sub(base as u32)
        };
        wr32(img, at, nv);
    }
}

/// The CIE pointer of each FDE of `.eh_frame` (the distance back from the field to its CIE,
/// which grows when records are inserted between them): (file offset, the field's address).
/// Found from lengths only, which the rewrite never changes.
pub(crate) fn cie_pointers(img: &[u8], lay: &Layout) -> Vec<(usize, u64)> {
    let mut out = Vec::new();
    for s in lay.sections.iter().filter(|s| s.eh == Eh::Frame) {
        let end = s.off + s.size;
        let mut p = s.off;
        while p + 8 <= end {
            let len = rd32(img, p) as usize;
            if len == 0 || len == 0xFFFF_FFFF {
                break;
            }
            let Some(rec_end) = (p + 4).checked_add(len).filter(|&e| e <= end) else {
                break;
            };
            let id = rd32(img, p + 4) as usize;
            if id != 0 && id <= p + 4 - s.off {
                out.push((p + 4, s.addr.wrapping_add((p + 4 - s.off) as u64)));
            }
            p = rec_end;
        }
    }
    out
}
