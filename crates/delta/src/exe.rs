//! The executable-aware kind: remap, then diff (design: link-and-delta.md §2.3.5).
//!
//! Long file: the rewrite and its inverse (make and apply) must agree byte for byte, so both
//! stay here beside the instruction decoders they share; the tables of particular formats
//! (`elf`, `unwind`, `gotab`) are modules of their own.
//!
//! Inserting code shifts every later address, so every call, branch and PC-relative operand
//! that crosses the insertion changes its bytes. This kind rewrites both images so that those
//! operands hold their *target in the new address space*:
//!
//! - the new image: each reference field holds its absolute target (x86-64 rel32 of
//!   `E8`/`E9`/`0F 8x` and RIP-relative ModRM operands; AArch64 B/BL, B.cond, CBZ/CBNZ,
//!   TBZ/TBNZ, LDR literal, ADR, ADRP). This is a bijection computed from the image itself,
//!   so onboard the result of the inner patch is turned back exactly.
//! - the old image: each reference's target (and each absolute address: data pointers,
//!   `.symtab` values, x86 `mov imm32`, the low 12 bits an ADD/LDR pairs with an ADRP) goes
//!   through an address map old → new that the patch carries (piecewise shifts found by
//!   matching the images with their reference fields zeroed). Only the old image is mapped,
//!   and the flight holds it, so the map need not be invertible.
//!
//! Both rewritten images are diffed (bsdiff or zstd-ref, the smaller). On x86-64, finding
//! references by scanning bytes could read an operand the rewriting changed; the maker runs
//! the onboard scan on its result and lists the positions where the two disagree
//! (exceptions), and checks the full round trip before it offers the patch.
//!
//! Offsets from a base are mapped as `map(base + v) - map(base)`: `.eh_frame` CIE pointers,
//! x86-64 switch jump tables, and in Go executables the function table and the type
//! descriptors (`gotab`), whose functions, paired by name, also anchor the map. Every
//! reference field a matched block holds in both images votes for its old target ↔ new target;
//! the votes anchor the map, and a target with two votes or more overrides it at its address.
//!
//! Body: version ([`BODY_VERSION`]), machine (1 x86-64, 2 AArch64), inner kind (2 zstd-ref,
//! 3 bsdiff), varint length of the side information, the side information (zstd: map entries
//! as zigzag deltas of old address and shift, then exception offsets as deltas, then 4 bytes
//! of the sha256 of what precedes), the inner patch.

use std::collections::HashMap;

use crate::elf::{self, Eh, Layout, Machine, u64_at};
use crate::gotab;
use crate::unwind::{cie_pointers, eh_fields, eh_rewrite};
use crate::varint::{self, Reader};
use crate::{DeltaError, Kind, generic};

/// The first byte of every executable-aware body this build writes and reads: the format of
/// the old image's rewrite (version 2: Go's function table and voted anchors; version 1 had no
/// such byte and began with the machine, 1 or 2, so it is refused, never misread).
pub const BODY_VERSION: u8 = 0xE2;

/// Address map old → new: sorted `(old address, shift)`; an address takes the shift of the
/// last entry at or below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressMap {
    points: Vec<(u64, i64)>,
}

impl AddressMap {
    fn map(&self, x: u64) -> u64 {
        let i = self.points.partition_point(|p| p.0 <= x);
        if i == 0 {
            x
        } else {
            x.wrapping_add(self.points[i - 1].1 as u64)
        }
    }

    /// Number of breakpoints.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// No breakpoints: the identity.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

fn corrupt(what: impl Into<String>) -> DeltaError {
    DeltaError::Corrupt {
        kind: Kind::Exe,
        what: what.into(),
    }
}

// ---------------------------------------------------------------- x86-64

/// One rel32 reference: where its instruction was recognised, its 4-byte operand, and the
/// address its displacement is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct XRef {
    start: usize,
    at: usize,
    next: u64,
}

/// Second opcode bytes of `0F xx ModRM` instructions without an immediate that take a memory
/// operand (SSE moves and arithmetic, movzx/movsx, imul).
const X86_0F_MODRM: &[u8] = &[
    0x10, 0x11, 0x12, 0x13, 0x16, 0x17, 0x28, 0x29, 0x2A, 0x2E, 0x2F, 0x51, 0x54, 0x55, 0x56, 0x57,
    0x58, 0x59, 0x5A, 0x5C, 0x5D, 0x5E, 0x5F, 0x6E, 0x6F, 0x7E, 0x7F, 0xAF, 0xB6, 0xB7, 0xBE, 0xBF,
    0xD6, 0xDB, 0xEB, 0xEF, 0xFE, 0xD4, 0xFA, 0xFB,
];

/// Size of the immediate after the ModRM operand of a one-byte opcode with ModRM, or `None`
/// if the opcode is not one this kind reads.
fn x86_modrm_imm(op: u8) -> Option<usize> {
    match op {
        0x01 | 0x03 | 0x09 | 0x0B | 0x21 | 0x23 | 0x29 | 0x2B | 0x31 | 0x33 | 0x39 | 0x3B
        | 0x63 | 0x84 | 0x85 | 0x88 | 0x89 | 0x8A | 0x8B | 0x8D | 0xFF => Some(0),
        0x80 | 0x83 | 0xC6 | 0x6B => Some(1),
        0x81 | 0xC7 | 0x69 => Some(4),
        _ => None,
    }
}

/// The instruction at `p` if it is one with a rel32 operand: (operand offset, immediate size,
/// is a branch).
fn x86_candidate(img: &[u8], p: usize) -> Option<(usize, usize, bool)> {
    let b = *img.get(p)?;
    match b {
        0xE8 | 0xE9 => Some((p + 1, 0, true)),
        0x0F => {
            let c = *img.get(p + 1)?;
            if (0x80..=0x8F).contains(&c) {
                Some((p + 2, 0, true))
            } else if X86_0F_MODRM.contains(&c) && img.get(p + 2)? & 0xC7 == 0x05 {
                Some((p + 3, 0, false))
            } else {
                None
            }
        }
        _ => {
            let imm = x86_modrm_imm(b)?;
            (img.get(p + 1)? & 0xC7 == 0x05).then_some((p + 2, imm, false))
        }
    }
}

pub(crate) fn rd32(img: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([img[at], img[at + 1], img[at + 2], img[at + 3]])
}

pub(crate) fn wr32(img: &mut [u8], at: usize, v: u32) {
    img[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Operands as the compiler wrote them (relative).
    Raw,
    /// Operands rewritten to absolute targets.
    Abs,
}

/// What an x86-64 scan found: rel32 references, and (old image only) `mov imm32` operands
/// holding an address of the image.
struct XScan {
    refs: Vec<XRef>,
    abs: Vec<usize>,
}

/// Scans the code of `img` for rel32 references, never starting at an offset in `skip`
/// (sorted). A candidate is taken when its target falls in the code (branches) or the image
/// (RIP-relative operands); the scan then resumes after its operand and immediate.
fn x86_scan(img: &[u8], lay: &Layout, form: Form, skip: &[usize], with_abs: bool) -> XScan {
    let mut out = XScan {
        refs: Vec::new(),
        abs: Vec::new(),
    };
    let mut k = 0;
    for s in lay.sections.iter().filter(|s| s.exec && s.alloc) {
        let end = s.off + s.size;
        let mut p = s.off;
        while p < end {
            while k < skip.len() && skip[k] < p {
                k += 1;
            }
            if k < skip.len() && skip[k] == p {
                p += 1;
                continue;
            }
            if let Some((at, imm, branch)) = x86_candidate(img, p)
                && at + 4 + imm <= end
            {
                let next = s.addr.wrapping_add((at + 4 + imm - s.off) as u64);
                let v = rd32(img, at);
                let target = match form {
                    Form::Raw => (next as i64).wrapping_add(i64::from(v as i32)),
                    Form::Abs => i64::from(v),
                };
                let (lo, hi) = if branch {
                    (lay.exec_lo, lay.exec_hi)
                } else {
                    (lay.lo, lay.hi)
                };
                if target >= lo as i64 && target < hi as i64 {
                    out.refs.push(XRef { start: p, at, next });
                    p = at + 4 + imm;
                    continue;
                }
            }
            if with_abs && p + 5 <= end && (0xB8..=0xBF).contains(&img[p]) {
                let v = u64::from(rd32(img, p + 1));
                if v >= lay.lo && v < lay.hi {
                    out.abs.push(p + 1);
                    p += 5;
                    continue;
                }
            }
            p += 1;
        }
    }
    out
}

/// Entries of x86-64 switch jump tables: 32-bit offsets from the table's start to code, in a
/// table a RIP-relative LEA of the code points at (what LLVM and GCC emit for PIC code):
/// (file offset of the entry, the table's address). A table runs while its entries land in
/// the code, up to the next table; fewer than 3 such entries is no table. Read from the
/// image's own bytes; the old image's are mapped, so a wrong guess costs bytes only.
fn jump_tables(img: &[u8], lay: &Layout, refs: &[XRef]) -> Vec<(usize, u64)> {
    let mut starts: Vec<u64> = refs
        .iter()
        .filter(|r| img[r.start] == 0x8D)
        .map(|r| {
            r.next
                .wrapping_add(i64::from(rd32(img, r.at) as i32) as u64)
        })
        .filter(|&t| t % 4 == 0 && (t < lay.exec_lo || t >= lay.exec_hi))
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let mut out = Vec::new();
    for (i, &t) in starts.iter().enumerate() {
        let Some(s) = lay
            .sections
            .iter()
            .find(|s| s.alloc && !s.exec && t >= s.addr && t - s.addr < s.size as u64)
        else {
            continue;
        };
        let limit = starts.get(i + 1).copied().unwrap_or(u64::MAX);
        let first = s.off + (t - s.addr) as usize;
        let mut at = first;
        while at + 4 <= s.off + s.size && t + ((at - first) as u64) < limit {
            let target = t.wrapping_add(i64::from(rd32(img, at) as i32) as u64);
            if target < lay.exec_lo || target >= lay.exec_hi {
                break;
            }
            at += 4;
        }
        if at - first >= 12 {
            out.extend((first..at).step_by(4).map(|e| (e, t)));
        }
    }
    out
}

// ---------------------------------------------------------------- AArch64

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum A64 {
    /// B, BL: imm26 × 4.
    Imm26,
    /// B.cond, CBZ/CBNZ, LDR literal: imm19 × 4 at bit 5.
    Imm19,
    /// TBZ/TBNZ: imm14 × 4 at bit 5.
    Imm14,
    /// ADR: 21-bit byte offset.
    Adr,
    /// ADRP: 21-bit page offset.
    Adrp,
}

fn a64_class(w: u32) -> Option<A64> {
    if w & 0x7C00_0000 == 0x1400_0000 {
        Some(A64::Imm26)
    } else if w & 0xFF00_0010 == 0x5400_0000
        || w & 0x7E00_0000 == 0x3400_0000
        || w & 0x3B00_0000 == 0x1800_0000
    {
        Some(A64::Imm19)
    } else if w & 0x7E00_0000 == 0x3600_0000 {
        Some(A64::Imm14)
    } else if w & 0x9F00_0000 == 0x1000_0000 {
        Some(A64::Adr)
    } else if w & 0x9F00_0000 == 0x9000_0000 {
        Some(A64::Adrp)
    } else {
        None
    }
}

fn a64_width(c: A64) -> u32 {
    match c {
        A64::Imm26 => 26,
        A64::Imm19 => 19,
        A64::Imm14 => 14,
        A64::Adr | A64::Adrp => 21,
    }
}

fn a64_get(w: u32, c: A64) -> u32 {
    match c {
        A64::Imm26 => w & 0x03FF_FFFF,
        A64::Imm19 => (w >> 5) & 0x7FFFF,
        A64::Imm14 => (w >> 5) & 0x3FFF,
        A64::Adr | A64::Adrp => (((w >> 5) & 0x7FFFF) << 2) | ((w >> 29) & 3),
    }
}

fn a64_set(w: u32, c: A64, v: u32) -> u32 {
    match c {
        A64::Imm26 => (w & !0x03FF_FFFF) | (v & 0x03FF_FFFF),
        A64::Imm19 => (w & !(0x7FFFF << 5)) | ((v & 0x7FFFF) << 5),
        A64::Imm14 => (w & !(0x3FFF << 5)) | ((v & 0x3FFF) << 5),
        A64::Adr | A64::Adrp => {
            (w & !((0x7FFFF << 5) | (3 << 29))) | (((v >> 2) & 0x7FFFF) << 5) | ((v & 3) << 29)
        }
    }
}

/// The part of the address an instruction's field is relative to, in the field's unit.
fn a64_base(c: A64, pc: u64) -> u64 {
    match c {
        A64::Imm26 | A64::Imm19 | A64::Imm14 => pc >> 2,
        A64::Adr => pc,
        A64::Adrp => pc >> 12,
    }
}

fn sext(v: u32, bits: u32) -> i64 {
    let sh = 64 - bits;
    (i64::from(v) << sh) >> sh
}

/// The address a field refers to, in bytes.
fn a64_target(c: A64, pc: u64, v: u32) -> u64 {
    let off = sext(v, a64_width(c));
    match c {
        A64::Imm26 | A64::Imm19 | A64::Imm14 => pc.wrapping_add((off << 2) as u64),
        A64::Adr => pc.wrapping_add(off as u64),
        A64::Adrp => (pc & !0xFFF).wrapping_add((off << 12) as u64),
    }
}

/// A field holding `target` as an absolute value, in the field's unit.
fn a64_abs(c: A64, target: u64) -> u32 {
    let mask = (1u64 << a64_width(c)) - 1;
    (match c {
        A64::Imm26 | A64::Imm19 | A64::Imm14 => target >> 2,
        A64::Adr => target,
        A64::Adrp => target >> 12,
    } & mask) as u32
}

/// The aligned words of the code of an AArch64 image: (file offset, address).
fn a64_words(lay: &Layout) -> impl Iterator<Item = (usize, u64)> + '_ {
    lay.sections
        .iter()
        .filter(|s| s.exec && s.alloc)
        .flat_map(|s| {
            let first = ((4 - (s.addr % 4)) % 4) as usize;
            (s.off + first..s.off + s.size)
                .step_by(4)
                .filter(move |&o| o + 4 <= s.off + s.size)
                .map(move |o| (o, s.addr + (o - s.off) as u64))
        })
}

/// The ADD/LDR/STR after an ADRP that adds the page offset to its register: (the field's
/// shift in bytes as a power of two).
fn a64_lo12(adrp: u32, next: u32) -> Option<u32> {
    let rd = adrp & 31;
    if (next >> 5) & 31 != rd {
        return None;
    }
    if next & 0xFFC0_0000 == 0x9100_0000 {
        return Some(0);
    }
    if next & 0x3F00_0000 == 0x3900_0000 && (next >> 22) & 3 <= 1 {
        return Some(next >> 30);
    }
    None
}

/// The instruction, among the few after the ADRP at `words[i]`, that adds the low 12 bits
/// to its register: (its offset, its scale). Compilers schedule the pair apart; a branch or a
/// write of the register by another ADRP ends the search. Only the old image is searched,
/// so a wrong pairing costs bytes, never correctness.
fn a64_pair(img: &[u8], words: &[(usize, u64)], i: usize) -> Option<(usize, u32)> {
    let (o, _) = words[i];
    let adrp = rd32(img, o);
    let rd = adrp & 31;
    for k in 1..=PAIR_WINDOW {
        let &(o2, _) = words.get(i + k).filter(|n| n.0 == o + 4 * k)?;
        let w2 = rd32(img, o2);
        if let Some(scale) = a64_lo12(adrp, w2) {
            return Some((o2, scale));
        }
        match a64_class(w2) {
            Some(A64::Adrp) if w2 & 31 == rd => return None,
            Some(A64::Imm26 | A64::Imm19 | A64::Imm14) => return None,
            _ => {}
        }
        // Another instruction writing the register (Rd field) ends the search.
        if w2 & 31 == rd && (w2 >> 5) & 31 != rd {
            return None;
        }
    }
    None
}

const PAIR_WINDOW: usize = 8;

/// New image, AArch64: every field to its absolute value (`to_abs`) or back. A bijection of
/// each word given its address, so the onboard side recovers the new image exactly.
fn a64_rewrite(img: &mut [u8], lay: &Layout, to_abs: bool) {
    for (o, pc) in a64_words(lay) {
        let w = rd32(img, o);
        if let Some(c) = a64_class(w) {
            let v = a64_get(w, c);
            let base = a64_base(c, pc) as u32;
            let nv = if to_abs {
                v.wrapping_add(base)
            } else {
                v.wrapping_sub(base)
            };
            wr32(img, o, a64_set(w, c, nv));
        }
    }
}

/// Old image, AArch64: every field to the mapped target of its reference.
fn a64_map_old(img: &mut [u8], lay: &Layout, map: &AddressMap) {
    let words: Vec<(usize, u64)> = a64_words(lay).collect();
    for (i, &(o, pc)) in words.iter().enumerate() {
        let w = rd32(img, o);
        let Some(c) = a64_class(w) else { continue };
        let target = a64_target(c, pc, a64_get(w, c));
        if c == A64::Adrp
            && let Some((o2, scale)) = a64_pair(img, &words, i)
        {
            let w2 = rd32(img, o2);
            {
                let full = target.wrapping_add(u64::from((w2 >> 10) & 0xFFF) << scale);
                let t = map.map(full);
                if t & ((1 << scale) - 1) == 0 {
                    wr32(img, o, a64_set(w, c, a64_abs(c, t)));
                    let lo = ((t & 0xFFF) >> scale) as u32;
                    wr32(img, o2, (w2 & !(0xFFF << 10)) | (lo << 10));
                    continue;
                }
            }
        }
        wr32(img, o, a64_set(w, c, a64_abs(c, map.map(target))));
    }
}

/// Zeroes every field (both images, for matching).
fn a64_zero(img: &mut [u8], lay: &Layout) {
    let words: Vec<(usize, u64)> = a64_words(lay).collect();
    for (i, &(o, _)) in words.iter().enumerate() {
        let w = rd32(img, o);
        let Some(c) = a64_class(w) else { continue };
        if c == A64::Adrp
            && let Some((o2, _)) = a64_pair(img, &words, i)
        {
            let w2 = rd32(img, o2);
            wr32(img, o2, w2 & !(0xFFF << 10));
        }
        wr32(img, o, a64_set(w, c, 0));
    }
}

// ---------------------------------------------------------------- both

/// 8-byte words of the image's data (and `.symtab` values) that hold an address of the
/// image: (file offset, value).
pub(crate) fn pointer_slots(img: &[u8], lay: &Layout) -> Vec<(usize, u64)> {
    let mut out = Vec::new();
    for s in &lay.sections {
        if s.exec || s.eh != Eh::None || s.gopclntab {
            continue;
        }
        let (first, step, field) = if s.alloc {
            (((8 - (s.addr % 8)) % 8) as usize, 8, 0)
        } else if s.symtab {
            (0, 24, 8)
        } else {
            continue;
        };
        let mut o = s.off + first;
        while o + field + 8 <= s.off + s.size {
            let at = o + field;
            if let Some(v) = u64_at(img, at)
                && v >= lay.lo
                && v < lay.hi
                && v != 0
            {
                out.push((at, v));
            }
            o += step;
        }
    }
    out
}

/// Rewrites each data pointer ([`pointer_slots`]) with `f`.
fn data_pointers(img: &mut [u8], lay: &Layout, mut f: impl FnMut(u64) -> u64) {
    for (at, v) in pointer_slots(img, lay) {
        img[at..at + 8].copy_from_slice(&f(v).to_le_bytes());
    }
}

/// Every reference field of a raw image this kind reads, with the address it refers to:
/// (file offset, target), sorted. ADRP (page granularity) is left out.
fn targets(img: &[u8], lay: &Layout, pcln: Option<&gotab::Pcln>) -> Vec<(usize, u64)> {
    let mut out = Vec::new();
    match lay.machine {
        Machine::X86_64 => {
            let scan = x86_scan(img, lay, Form::Raw, &[], true);
            for (at, t) in jump_tables(img, lay, &scan.refs) {
                out.push((at, t.wrapping_add(i64::from(rd32(img, at) as i32) as u64)));
            }
            for r in scan.refs {
                let rel = i64::from(rd32(img, r.at) as i32) as u64;
                out.push((r.at, r.next.wrapping_add(rel)));
            }
            for at in scan.abs {
                out.push((at, u64::from(rd32(img, at))));
            }
        }
        Machine::Aarch64 => {
            for (o, pc) in a64_words(lay) {
                let w = rd32(img, o);
                if let Some(c) = a64_class(w)
                    && c != A64::Adrp
                {
                    out.push((o, a64_target(c, pc, a64_get(w, c))));
                }
            }
        }
    }
    for (at, base) in eh_fields(img, lay) {
        out.push((
            at,
            base.wrapping_add(i64::from(rd32(img, at) as i32) as u64),
        ));
    }
    for (at, addr) in cie_pointers(img, lay) {
        out.push((at, addr.wrapping_sub(u64::from(rd32(img, at)))));
    }
    out.extend(pointer_slots(img, lay));
    if let Some(p) = pcln {
        for &(at, base) in &p.fields {
            out.push((at, base.wrapping_add(u64::from(rd32(img, at)))));
        }
    }
    out.sort_unstable();
    out
}

/// Votes a target needs to override the address map at its address.
const MIN_VOTES: u32 = 2;

/// Anchors from the references themselves: where a matched block holds a reference field in
/// both images, the old target corresponds to the new one. Each old target takes the new
/// target most blocks vote for: (old, new) addresses.
fn voted(
    blocks: &[(usize, usize, usize)],
    old_t: &[(usize, u64)],
    new_t: &[(usize, u64)],
) -> Vec<(u64, u64, u32)> {
    let new_at: HashMap<usize, u64> = new_t.iter().copied().collect();
    let mut votes: HashMap<u64, HashMap<u64, u32>> = HashMap::new();
    for &(os, ns, len) in blocks {
        let i = old_t.partition_point(|t| t.0 < os);
        for &(at, t) in old_t[i..].iter().take_while(|t| t.0 < os + len) {
            if let Some(&nt) = new_at.get(&(ns + (at - os))) {
                *votes.entry(t).or_default().entry(nt).or_default() += 1;
            }
        }
    }
    let mut out: Vec<(u64, u64, u32)> = votes
        .into_iter()
        .filter_map(|(o, c)| {
            c.into_iter()
                .max_by_key(|&(n, k)| (k, std::cmp::Reverse(n)))
                .map(|(n, k)| (o, n, k))
        })
        .collect();
    out.sort_unstable();
    out
}

/// The old image with every reference and address mapped into the new address space.
fn normalise_old(old: &[u8], lay: &Layout, map: &AddressMap) -> Vec<u8> {
    let mut img = old.to_vec();
    let mut tables = Vec::new();
    match lay.machine {
        Machine::X86_64 => {
            let scan = x86_scan(old, lay, Form::Raw, &[], true);
            tables = jump_tables(old, lay, &scan.refs);
            for r in scan.refs {
                let target = r
                    .next
                    .wrapping_add(i64::from(rd32(old, r.at) as i32) as u64);
                wr32(&mut img, r.at, map.map(target) as u32);
            }
            for at in scan.abs {
                let v = u64::from(rd32(old, at));
                wr32(&mut img, at, map.map(v) as u32);
            }
        }
        Machine::Aarch64 => a64_map_old(&mut img, lay, map),
    }
    for (at, base) in eh_fields(old, lay) {
        let target = base.wrapping_add(i64::from(rd32(old, at) as i32) as u64);
        wr32(&mut img, at, map.map(target) as u32);
    }
    for (at, addr) in cie_pointers(old, lay) {
        let cie = addr.wrapping_sub(u64::from(rd32(old, at)));
        wr32(
            &mut img,
            at,
            map.map(addr).wrapping_sub(map.map(cie)) as u32,
        );
    }
    data_pointers(&mut img, lay, |v| map.map(v));
    for (at, t) in tables {
        let target = t.wrapping_add(i64::from(rd32(old, at) as i32) as u64);
        wr32(
            &mut img,
            at,
            map.map(target).wrapping_sub(map.map(t)) as u32,
        );
    }
    if let Some(p) = gotab::parse(old, lay) {
        for &(at, base) in &p.fields {
            let v = u64::from(rd32(old, at));
            let t = map.map(base.wrapping_add(v)).wrapping_sub(map.map(base));
            wr32(&mut img, at, t as u32);
        }
        if let Some(v) = u64_at(old, p.text_field) {
            img[p.text_field..p.text_field + 8].copy_from_slice(&map.map(v).to_le_bytes());
        }
    }
    img
}

/// The new image with its references absolute, and the exceptions that make the onboard scan
/// agree; `None` if they cannot be made to agree.
fn normalise_new(new: &[u8], lay: &Layout) -> Option<(Vec<u8>, Vec<usize>)> {
    let mut img = new.to_vec();
    match lay.machine {
        Machine::Aarch64 => {
            a64_rewrite(&mut img, lay, true);
            eh_rewrite(&mut img, lay, true);
            Some((img, Vec::new()))
        }
        Machine::X86_64 => {
            let mut skip: Vec<usize> = Vec::new();
            for _ in 0..16 {
                let refs = x86_scan(new, lay, Form::Raw, &skip, false).refs;
                img.copy_from_slice(new);
                for r in &refs {
                    let target = r
                        .next
                        .wrapping_add(i64::from(rd32(new, r.at) as i32) as u64)
                        as u32;
                    wr32(&mut img, r.at, target);
                }
                let onboard = x86_scan(&img, lay, Form::Abs, &skip, false).refs;
                if onboard == refs {
                    eh_rewrite(&mut img, lay, true);
                    return Some((img, skip));
                }
                // Every start where the two scans disagree becomes an exception of both.
                let a: std::collections::BTreeSet<usize> = refs.iter().map(|r| r.start).collect();
                let b: std::collections::BTreeSet<usize> =
                    onboard.iter().map(|r| r.start).collect();
                let before = skip.len();
                skip.extend(a.symmetric_difference(&b));
                if skip.len() == before {
                    // Same starts, different operands: not a case the exceptions can fix.
                    return None;
                }
                skip.sort_unstable();
                skip.dedup();
            }
            None
        }
    }
}

/// Onboard: the new image back from its normalised form.
fn denormalise(img: &mut [u8], skip: &[usize]) -> Result<(), DeltaError> {
    let lay = elf::parse(img).ok_or_else(|| corrupt("the rewritten image is not an ELF file"))?;
    eh_rewrite(img, &lay, false);
    match lay.machine {
        Machine::Aarch64 => a64_rewrite(img, &lay, false),
        Machine::X86_64 => {
            if lay.hi > u64::from(u32::MAX) {
                return Err(corrupt("image beyond 4 GiB"));
            }
            let refs = x86_scan(img, &lay, Form::Abs, skip, false).refs;
            for r in refs {
                let rel = rd32(img, r.at).wrapping_sub(r.next as u32);
                wr32(img, r.at, rel);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- matching

/// Reference fields zeroed, for matching the two images.
fn zeroed(img: &[u8], lay: &Layout) -> Vec<u8> {
    let mut z = img.to_vec();
    match lay.machine {
        Machine::X86_64 => {
            let scan = x86_scan(img, lay, Form::Raw, &[], true);
            for (at, _) in jump_tables(img, lay, &scan.refs) {
                wr32(&mut z, at, 0);
            }
            for at in scan.refs.iter().map(|r| r.at).chain(scan.abs) {
                wr32(&mut z, at, 0);
            }
        }
        Machine::Aarch64 => a64_zero(&mut z, lay),
    }
    for (at, _) in eh_fields(img, lay)
        .into_iter()
        .chain(cie_pointers(img, lay))
    {
        wr32(&mut z, at, 0);
    }
    data_pointers(&mut z, lay, |_| 0);
    z
}

const WINDOW: usize = 32;

fn window_hash(w: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for c in w.chunks_exact(8) {
        let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ v).wrapping_mul(0x100_0000_01b3).rotate_left(23);
    }
    h
}

/// Matching blocks (old offset, new offset, length) between two images, greedy, in new order.
fn blocks(a: &[u8], b: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut i = 0;
    while i + WINDOW <= a.len() {
        let w = &a[i..i + WINDOW];
        if w.iter().any(|&x| x != w[0]) {
            index.entry(window_hash(w)).or_insert(i);
        }
        i += 4;
    }
    let mut out = Vec::new();
    let mut n = 0;
    let mut floor = 0;
    while n + WINDOW <= b.len() {
        let w = &b[n..n + WINDOW];
        if let Some(&o) = index.get(&window_hash(w))
            && a[o..o + WINDOW] == *w
        {
            let (mut os, mut ns) = (o, n);
            while os > 0 && ns > floor && a[os - 1] == b[ns - 1] {
                os -= 1;
                ns -= 1;
            }
            let (mut oe, mut ne) = (o + WINDOW, n + WINDOW);
            while oe < a.len() && ne < b.len() && a[oe] == b[ne] {
                oe += 1;
                ne += 1;
            }
            out.push((os, ns, ne - ns));
            n = ne;
            floor = ne;
        } else {
            n += 1;
        }
    }
    out
}

/// The address map old → new from matching blocks.
fn build_map(old: &[u8], lo: &Layout, new: &[u8], ln: &Layout) -> AddressMap {
    let (za, zb) = (zeroed(old, lo), zeroed(new, ln));
    let matched = blocks(&za, &zb);
    drop((za, zb));
    let (po, pn) = (gotab::parse(old, lo), gotab::parse(new, ln));
    let (to, tn) = (targets(old, lo, po.as_ref()), targets(new, ln, pn.as_ref()));
    let votes = voted(&matched, &to, &tn);
    let mut spans: Vec<(u64, u64, i64)> = votes
        .iter()
        .map(|&(o, n, _)| (o, o.wrapping_add(1), n.wrapping_sub(o) as i64))
        .collect();
    spans.extend(
        matched
            .into_iter()
            .filter(|b| b.2 >= 64)
            .filter_map(|(o, n, len)| {
                let ov = lo.vaddr_of(o)?;
                let nv = ln.vaddr_of(n)?;
                Some((ov, ov.wrapping_add(len as u64), nv.wrapping_sub(ov) as i64))
            }),
    );
    if let (Some(po), Some(pn)) = (po, pn) {
        for (o, n, len) in gotab::anchors(old, &po, new, &pn) {
            spans.push((o, o.wrapping_add(len), n.wrapping_sub(o) as i64));
        }
    }
    spans.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
    let mut kept: Vec<(u64, u64, i64)> = Vec::new();
    for s in spans {
        match kept.last_mut() {
            Some(last) if s.0 < last.1 => {
                if s.1 - s.0 > last.1 - last.0 {
                    *last = s;
                }
            }
            _ => kept.push(s),
        }
    }
    let mut points: Vec<(u64, i64)> = Vec::new();
    for (start, _, shift) in kept {
        if points.last().map_or(0, |p| p.1) != shift {
            points.push((start, shift));
        }
    }
    // Where the spans predict a voted target wrongly, the vote wins for its one address.
    let spans = AddressMap { points };
    let mut fixed: std::collections::BTreeMap<u64, i64> = spans.points.iter().copied().collect();
    for (o, n, k) in votes {
        if k >= MIN_VOTES && spans.map(o) != n {
            let after = o.wrapping_add(1);
            fixed
                .entry(after)
                .or_insert(spans.map(after).wrapping_sub(after) as i64);
            fixed.insert(o, n.wrapping_sub(o) as i64);
        }
    }
    let mut points: Vec<(u64, i64)> = Vec::new();
    for (start, shift) in fixed {
        if points.last().map_or(0, |p| p.1) != shift {
            points.push((start, shift));
        }
    }
    AddressMap { points }
}

// ---------------------------------------------------------------- patch

fn side_info(map: &AddressMap, skip: &[usize]) -> Vec<u8> {
    let mut s = Vec::new();
    varint::put(&mut s, map.points.len() as u64);
    let (mut a, mut d) = (0u64, 0i64);
    for &(addr, shift) in &map.points {
        varint::put(&mut s, addr.wrapping_sub(a));
        varint::put_i(&mut s, shift.wrapping_sub(d));
        (a, d) = (addr, shift);
    }
    varint::put(&mut s, skip.len() as u64);
    let mut prev = 0usize;
    for &p in skip {
        varint::put(&mut s, (p - prev) as u64);
        prev = p;
    }
    let check = side_check(&s);
    s.extend_from_slice(&check);
    s
}

/// The first 4 bytes of the sha256 of the side information: a damaged map could otherwise
/// still give the right file (a shift no address uses) or a wrong one found only at the end.
fn side_check(s: &[u8]) -> [u8; 4] {
    use sha2::{Digest as _, Sha256};
    let d = Sha256::digest(s);
    [d[0], d[1], d[2], d[3]]
}

/// The body of an executable-aware patch, or `None` if either file is not an ELF file of the
/// same supported machine, or the rewrite does not round-trip.
pub(crate) fn make(old: &[u8], new: &[u8]) -> Option<Vec<u8>> {
    let lo = elf::parse(old)?;
    let ln = elf::parse(new)?;
    if lo.machine != ln.machine {
        return None;
    }
    if lo.machine == Machine::X86_64 && (lo.hi > u64::from(u32::MAX) || ln.hi > u64::from(u32::MAX))
    {
        return None;
    }
    let map = build_map(old, &lo, new, &ln);
    let o2 = normalise_old(old, &lo, &map);
    let (n2, skip) = normalise_new(new, &ln)?;
    let mut check = n2.clone();
    denormalise(&mut check, &skip).ok()?;
    if check != new {
        return None;
    }
    drop(check);
    let bs = generic::bsdiff(&o2, &n2);
    let zr = generic::zstd_ref(&o2, &n2);
    let (inner_kind, inner) = match bs {
        Some(b) if b.len() <= zr.len() => (Kind::Bsdiff, b),
        _ => (Kind::ZstdRef, zr),
    };
    let side = generic::whole(&side_info(&map, &skip));
    let mut body = Vec::with_capacity(side.len() + inner.len() + 16);
    body.push(BODY_VERSION);
    body.push(match lo.machine {
        Machine::X86_64 => 1,
        Machine::Aarch64 => 2,
    });
    body.push(inner_kind.code());
    varint::put(&mut body, side.len() as u64);
    body.extend_from_slice(&side);
    body.extend_from_slice(&inner);
    Some(body)
}

/// The side information decoded: map and exceptions, bounded by the bytes that carry them.
fn read_side(side: &[u8], size: usize) -> Result<(AddressMap, Vec<usize>), DeltaError> {
    let Some(split) = side.len().checked_sub(4) else {
        return Err(corrupt("side information: shorter than its check"));
    };
    let (side, check) = side.split_at(split);
    if side_check(side) != check {
        return Err(corrupt("side information: check does not match"));
    }
    let mut r = Reader::new(side);
    let n = r
        .get()
        .ok_or_else(|| corrupt("side information: map length"))?;
    // Each entry takes at least two bytes: a count beyond that is a lie, refused before any
    // allocation.
    if n > side.len() as u64 / 2 {
        return Err(corrupt(format!(
            "side information: {n} map entries in {} bytes",
            side.len()
        )));
    }
    let mut points = Vec::with_capacity(n as usize);
    let (mut a, mut d) = (0u64, 0i64);
    for i in 0..n {
        let da = r
            .get()
            .ok_or_else(|| corrupt(format!("side information: map entry {i}")))?;
        let dd = r
            .get_i()
            .ok_or_else(|| corrupt(format!("side information: map entry {i}")))?;
        a = a.wrapping_add(da);
        d = d.wrapping_add(dd);
        if points.last().is_some_and(|p: &(u64, i64)| p.0 >= a) {
            return Err(corrupt(format!(
                "side information: map entry {i} out of order"
            )));
        }
        points.push((a, d));
    }
    let e = r
        .get()
        .ok_or_else(|| corrupt("side information: exception count"))?;
    if e > r.rest().len() as u64 {
        return Err(corrupt(format!(
            "side information: {e} exceptions in {} bytes",
            r.rest().len()
        )));
    }
    let mut skip = Vec::with_capacity(e as usize);
    let mut p = 0usize;
    for i in 0..e {
        let dp = r
            .get()
            .ok_or_else(|| corrupt(format!("side information: exception {i}")))?;
        p = usize::try_from(dp)
            .ok()
            .and_then(|dp| p.checked_add(dp))
            .filter(|&p| p < size)
            .ok_or_else(|| corrupt(format!("side information: exception {i} beyond the file")))?;
        skip.push(p);
    }
    if !r.rest().is_empty() {
        return Err(corrupt("side information: trailing bytes"));
    }
    Ok((AddressMap { points }, skip))
}

/// Onboard: the new file from the old one and an executable-aware body.
pub(crate) fn apply(old: &[u8], body: &[u8], size: usize) -> Result<Vec<u8>, DeltaError> {
    let mut r = Reader::new(body);
    match r.byte() {
        Some(BODY_VERSION) => {}
        // Version 1 had no version byte: it started with the machine (1 or 2).
        Some(v @ (1 | 2)) => {
            return Err(corrupt(format!(
                "executable-aware body of an older format (machine byte {v}, no version): \
                 this build maps the old image differently; make the patch again"
            )));
        }
        Some(v) => {
            return Err(corrupt(format!(
                "unknown executable-aware body version {v:#x}"
            )));
        }
        None => return Err(DeltaError::Truncated("executable-aware body: version")),
    }
    let machine = match r.byte() {
        Some(1) => Machine::X86_64,
        Some(2) => Machine::Aarch64,
        Some(m) => return Err(corrupt(format!("unknown machine {m}"))),
        None => return Err(DeltaError::Truncated("executable-aware body: machine")),
    };
    let inner_kind = r
        .byte()
        .ok_or(DeltaError::Truncated("executable-aware body: inner kind"))?;
    let side_len = r.get().ok_or(DeltaError::Truncated(
        "executable-aware body: side information length",
    ))?;
    let side = usize::try_from(side_len)
        .ok()
        .and_then(|n| r.take(n))
        .ok_or(DeltaError::Truncated(
            "executable-aware body: side information",
        ))?;
    let side_size = side_info_size(side)?;
    let side =
        generic::unwhole(side, side_size).map_err(|e| corrupt(format!("side information: {e}")))?;
    let (map, skip) = read_side(&side, size)?;
    let lay = elf::parse(old)
        .ok_or_else(|| corrupt("the old file is not an ELF file this kind reads"))?;
    if lay.machine != machine {
        return Err(corrupt(
            "the old file is for another machine than the patch",
        ));
    }
    let o2 = normalise_old(old, &lay, &map);
    let mut n2 = match Kind::from_code(inner_kind) {
        Some(Kind::Bsdiff) => generic::bspatch(&o2, r.rest(), size, Kind::Exe)?,
        Some(Kind::ZstdRef) => generic::unzstd_ref(&o2, r.rest(), size)
            .map_err(|e| corrupt(format!("inner zstd-ref: {e}")))?,
        _ => return Err(corrupt(format!("unknown inner kind {inner_kind}"))),
    };
    drop(o2);
    denormalise(&mut n2, &skip)?;
    Ok(n2)
}

/// The decoded size of the side information, as its zstd frame declares it, bounded.
fn side_info_size(side: &[u8]) -> Result<usize, DeltaError> {
    const MAX: u64 = 64 << 20;
    match zstd::zstd_safe::get_frame_content_size(side) {
        Ok(Some(n)) if n <= MAX => Ok(n as usize),
        Ok(Some(n)) => Err(DeltaError::TooLarge {
            what: "side information",
            size: n,
            limit: MAX,
        }),
        _ => Err(corrupt(
            "side information: no zstd frame with a content size",
        )),
    }
}

/// The two rewritten images the inner diff sees (old mapped, new absolute) and the number of
/// map entries, for measuring what the rewrite leaves to the inner diff; `None` where
/// [`make`] would make no patch.
#[doc(hidden)]
pub fn rewritten(old: &[u8], new: &[u8]) -> Option<(Vec<u8>, Vec<u8>, usize)> {
    let lo = elf::parse(old)?;
    let ln = elf::parse(new)?;
    if lo.machine != ln.machine {
        return None;
    }
    let map = build_map(old, &lo, new, &ln);
    let o2 = normalise_old(old, &lo, &map);
    let (n2, _) = normalise_new(new, &ln)?;
    Some((o2, n2, map.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_of_the_first_format_is_refused_by_name() {
        for machine in [1u8, 2] {
            let body = [machine, 3, 0];
            let e = apply(b"\x7fELF", &body, 10).unwrap_err();
            assert!(
                matches!(&e, DeltaError::Corrupt { what, .. } if what.contains("older format")),
                "{e}"
            );
        }
        assert!(matches!(
            apply(b"", &[0x17], 10).unwrap_err(),
            DeltaError::Corrupt { .. }
        ));
        assert!(matches!(
            apply(b"", &[], 10).unwrap_err(),
            DeltaError::Truncated(_)
        ));
    }

    /// A Go program, if `go` is installed (the test says so and passes otherwise).
    fn go_build(dir: &std::path::Path, extra: &str) -> Option<Vec<u8>> {
        let src = dir.join(format!("m{}.go", extra.len()));
        let out = dir.join(format!("m{}", extra.len()));
        std::fs::write(
            &src,
            format!(
                "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n\t\"strconv\"\n)\n\n\
                 func main() {{\n\tfmt.Println(len(os.Args))\n\t{extra}\n}}\n"
            ),
        )
        .ok()?;
        let ok = std::process::Command::new("go")
            .args(["build", "-ldflags=-s -w", "-o"])
            .arg(&out)
            .arg(&src)
            .env("CGO_ENABLED", "0")
            .env("GOCACHE", dir.join("cache"))
            .env("GOPATH", dir.join("path"))
            .status()
            .ok()?
            .success();
        ok.then(|| std::fs::read(&out).ok()).flatten()
    }

    /// Go executables: the function table parses, the patch round-trips, and a base damaged in
    /// its table or anywhere else still gives a patch that round-trips (never a panic).
    #[test]
    fn go_function_table_round_trips_and_survives_damage() {
        let dir = tempfile::tempdir().unwrap();
        let Some(old) = go_build(dir.path(), "_ = strconv.Itoa") else {
            eprintln!("go is not installed: Go case skipped");
            return;
        };
        let new = go_build(
            dir.path(),
            "fmt.Println(strconv.Quote(os.Args[0]), strconv.Itoa(7))",
        )
        .unwrap();
        let lay = elf::parse(&old).unwrap();
        let p = gotab::parse(&old, &lay).expect("the table of a Go executable parses");
        assert!(p.fields.len() > 1000, "{} fields", p.fields.len());
        let body = make(&old, &new).unwrap();
        assert_eq!(apply(&old, &body, new.len()).unwrap(), new);
        let s = *lay.sections.iter().find(|s| s.gopclntab).unwrap();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..16 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut bad = old.clone();
            // Half in the table's header and first records, half anywhere (type descriptors,
            // module data, code).
            let at = if i % 2 == 0 {
                s.off + (x as usize % s.size.min(4096))
            } else {
                x as usize % (old.len() - 4)
            };
            bad[at..at + 4].copy_from_slice(&(x >> 32).to_le_bytes()[..4]);
            if let Some(body) = make(&bad, &new) {
                assert_eq!(apply(&bad, &body, new.len()).unwrap(), new);
            }
        }
    }
}
