//! Go's function table (`.gopclntab`, Go 1.18 and later): its fields are 32-bit offsets
//! relative to the start of the code (function entries) or to one of its own sub-tables
//! (records, names, pc-value tables), so inserting code or a function shifts most of them.
//!
//! The executable-aware kind uses it twice. The old image's fields are mapped like any other
//! address (an offset `v` from base `b` becomes `map(b + v) - map(b)`; a wrong prediction
//! costs bytes, never correctness, since the new image is left as it is). And the functions of
//! both files, paired by name, give the address map exact anchors: entries, records, names and
//! pc-value tables, which a byte match finds poorly because every record differs in its
//! offsets. Every read is bounds-checked; a table that does not parse is simply not used.

use std::collections::{HashMap, HashSet};

use crate::elf::{Layout, Section, u64_at};
use crate::exe::rd32;

/// One function of the table.
struct Func {
    /// File range of its name (without the NUL), and its address.
    name: (usize, usize),
    name_addr: u64,
    /// Entry address, and the address of the next function's entry.
    entry: (u64, u64),
    /// Address and length of its `_func` record.
    rec: (u64, u64),
    /// Addresses of its pc-value tables (pcsp, pcfile, pcln, pcdata…) and its func data
    /// (absent ones left out).
    tables: Vec<u64>,
}

/// What the table gives the executable-aware kind.
pub(crate) struct Pcln {
    /// The 32-bit offset fields: (file offset, the address they are relative to).
    pub(crate) fields: Vec<(usize, u64)>,
    /// The header's 64-bit address of the code (the table is left out of the data-pointer
    /// scan, whose 8-byte words would straddle its 32-bit fields).
    pub(crate) text_field: usize,
    /// The addresses the fields are relative to: code, names, pc-value tables, records, and
    /// the func data if the module data was found.
    bases: Vec<u64>,
    funcs: Vec<Func>,
}

fn u32_at(img: &[u8], at: usize) -> Option<u32> {
    (at.checked_add(4)? <= img.len()).then(|| rd32(img, at))
}

/// The file offset of address `a` in section `s`, if `len` bytes from there are inside it.
fn off_in(s: &Section, a: u64, len: usize) -> Option<usize> {
    let rel = usize::try_from(a.checked_sub(s.addr)?).ok()?;
    (rel.checked_add(len)? <= s.size).then_some(s.off + rel)
}

/// Upper bound on the functions read (a corrupt count must not make the scan run away).
const MAX_FUNCS: u64 = 4 << 20;
/// The longest function name looked for (a name without its NUL within this is not used).
const MAX_NAME: usize = 4096;

/// The table of a Go executable, or `None` (not Go, a version this does not read, corrupt).
pub(crate) fn parse(img: &[u8], lay: &Layout) -> Option<Pcln> {
    let s = lay.sections.iter().find(|s| s.gopclntab && s.alloc)?;
    let h = s.off;
    let magic = u32_at(img, h)?;
    // 1.18–1.19: 0xFFFFFFF0; 1.20 and later: 0xFFFFFFF1 (a start line in each record).
    let start_line = match magic {
        0xFFFF_FFF0 => false,
        0xFFFF_FFF1 => true,
        _ => return None,
    };
    if *img.get(h + 7)? != 8 {
        return None;
    }
    let word = |i: usize| u64_at(img, h + 8 + 8 * i);
    let nfunc = word(0)?;
    if nfunc > MAX_FUNCS {
        return None;
    }
    let text = word(2)?;
    let funcnametab = s.addr.checked_add(word(3)?)?;
    let pctab = s.addr.checked_add(word(6)?)?;
    let pclntable = s.addr.checked_add(word(7)?)?;
    // moduledata: types, etypes after 35 words and gofunc after 38 (Go 1.18–1.19); two more
    // words before them from Go 1.20 (coverage counters).
    let md = moduledata(img, lay, s.addr, funcnametab);
    let skew = if start_line { 16 } else { 0 };
    let md_word = |at: usize| md.and_then(|m| u64_at(img, m + at + skew));
    let gofunc = md_word(304);
    let types = md_word(280).zip(md_word(288)).filter(|t| t.0 < t.1);
    let bases = vec![text, funcnametab, pctab, pclntable]
        .into_iter()
        .chain(gofunc)
        .chain(types.map(|t| t.0))
        .collect();
    let ftab = off_in(s, pclntable, 8 * (nfunc as usize + 1))?;
    // Every field is a 4-byte slot of the section and no record is read twice, so a real
    // table has at most a field per 4 bytes: a table claiming more (records that overlap,
    // shared, or of absurd lengths) is corrupt or hostile, and not used.
    let max_fields = s.size / 4 + 8;
    let mut fields = Vec::with_capacity(nfunc as usize * 2);
    let mut funcs = Vec::with_capacity(nfunc as usize);
    let mut records = HashSet::new();
    let (rec_fixed, nfd_at) = if start_line { (44, 43) } else { (40, 39) };
    for i in 0..nfunc as usize {
        let e = ftab + 8 * i;
        fields.push((e, text));
        fields.push((e + 4, pclntable));
        let entry = text.wrapping_add(u64::from(u32_at(img, e)?));
        let next = text.wrapping_add(u64::from(u32_at(img, e + 8)?));
        let rec = pclntable.wrapping_add(u64::from(u32_at(img, e + 4)?));
        let Some(r) = off_in(s, rec, rec_fixed) else {
            continue;
        };
        if !records.insert(r) {
            continue;
        }
        let npcdata = u32_at(img, r + 28)? as usize;
        if npcdata > 1 << 16 {
            continue;
        }
        let nfuncdata = usize::from(img[r + nfd_at]);
        let rec_len = rec_fixed + 4 * (npcdata + nfuncdata);
        if off_in(s, rec, rec_len).is_none() {
            continue;
        }
        fields.push((r, text));
        fields.push((r + 4, funcnametab));
        let mut tables = Vec::new();
        for at in [r + 16, r + 20, r + 24]
            .into_iter()
            .chain((0..npcdata).map(|k| r + rec_fixed + 4 * k))
        {
            let v = rd32(img, at);
            if v != 0 {
                fields.push((at, pctab));
                tables.push(pctab.wrapping_add(u64::from(v)));
            }
        }
        if let Some(g) = gofunc {
            for k in 0..nfuncdata {
                let at = r + rec_fixed + 4 * (npcdata + k);
                let v = rd32(img, at);
                if v != u32::MAX {
                    fields.push((at, g));
                    tables.push(g.wrapping_add(u64::from(v)));
                }
            }
        }
        if fields.len() > max_fields {
            return None;
        }
        let name_at = funcnametab.wrapping_add(u64::from(rd32(img, r + 4)));
        let name = off_in(s, name_at, 1).and_then(|n| {
            let end = (n + MAX_NAME).min(s.off + s.size);
            let len = img[n..end].iter().position(|&c| c == 0)?;
            Some((n, n + len))
        });
        if let Some(name) = name {
            funcs.push(Func {
                name,
                name_addr: name_at,
                entry: (entry, next),
                rec: (rec, rec_len as u64),
                tables,
            });
        }
    }
    // The end-of-code entry after the last function.
    fields.push((ftab + 8 * nfunc as usize, text));
    if let Some(t) = types {
        fields.extend(type_fields(img, lay, t, text));
    }
    Some(Pcln {
        fields,
        text_field: h + 24,
        bases,
        funcs,
    })
}

/// Spans `(old address, new address, length)` the two tables say correspond: each function
/// present once in both (by name) gives its entry, record, name and pc-value tables.
pub(crate) fn anchors(old: &[u8], po: &Pcln, new: &[u8], pn: &Pcln) -> Vec<(u64, u64, u64)> {
    let mut by_name: HashMap<&[u8], Option<&Func>> = HashMap::new();
    for f in &pn.funcs {
        by_name
            .entry(&new[f.name.0..f.name.1])
            .and_modify(|e| *e = None)
            .or_insert(Some(f));
    }
    let mut seen: HashMap<&[u8], u32> = HashMap::new();
    for f in &po.funcs {
        *seen.entry(&old[f.name.0..f.name.1]).or_default() += 1;
    }
    let mut out: Vec<(u64, u64, u64)> = po
        .bases
        .iter()
        .zip(&pn.bases)
        .map(|(&a, &b)| (a, b, 1))
        .collect();
    for f in &po.funcs {
        let name = &old[f.name.0..f.name.1];
        if seen.get(name) != Some(&1) {
            continue;
        }
        let Some(Some(g)) = by_name.get(name) else {
            continue;
        };
        let len = (f.entry.1.wrapping_sub(f.entry.0)).min(g.entry.1.wrapping_sub(g.entry.0));
        if len > 0 && len < 1 << 24 {
            out.push((f.entry.0, g.entry.0, len));
        }
        out.push((f.rec.0, g.rec.0, f.rec.1.min(g.rec.1)));
        out.push((f.name_addr, g.name_addr, (f.name.1 - f.name.0 + 1) as u64));
        for (a, b) in f.tables.iter().zip(&g.tables) {
            out.push((*a, *b, 1));
        }
    }
    out
}

/// The runtime's module data: the 8-byte-aligned word of the allocated data that holds the
/// table's address followed by a pointer to the name table (file offset).
fn moduledata(img: &[u8], lay: &Layout, pcln: u64, funcnametab: u64) -> Option<usize> {
    for s in lay.sections.iter().filter(|s| s.alloc && !s.exec) {
        let first = ((8 - (s.addr % 8)) % 8) as usize;
        let mut o = s.off + first;
        while o + MODULEDATA_READ <= s.off + s.size {
            if u64_at(img, o) == Some(pcln) && u64_at(img, o + 8) == Some(funcnametab) {
                return Some(o);
            }
            o += 8;
        }
    }
    None
}

/// Bytes of the module data read (up to `gofunc`, Go 1.20 and later).
const MODULEDATA_READ: usize = 328;

/// Type descriptors that carry offsets: Go's `_type` (Go 1.18 and later, 64-bit) holds its
/// name and its pointer type as offsets from the types' start; an uncommon type its package
/// path, and each method its name and type (from the types' start) and its code (from the
/// code's start). Descriptors are found where 8-byte pointers of the data point into the
/// types' range, and read only if they look like one. Returns (file offset, base) fields.
fn type_fields(img: &[u8], lay: &Layout, types: (u64, u64), text: u64) -> Vec<(usize, u64)> {
    let (lo, hi) = types;
    let Some(s) = lay
        .sections
        .iter()
        .find(|s| s.alloc && !s.exec && lo >= s.addr && hi <= s.addr + s.size as u64)
    else {
        return Vec::new();
    };
    let mut starts: Vec<u64> = crate::exe::pointer_slots(img, lay)
        .into_iter()
        .map(|(_, v)| v)
        .filter(|&v| v >= lo && v < hi && v % 8 == 0)
        .collect();
    starts.sort_unstable();
    starts.dedup();
    // As in `parse`: a field per 4-byte slot at most, each method table read once.
    let max_fields = s.size / 4 + 8;
    let mut tables = HashSet::new();
    let mut out = Vec::new();
    for t in starts {
        if out.len() > max_fields {
            return Vec::new();
        }
        let Some(o) = off_in(s, t, 48) else { continue };
        let tflag = img[o + 20];
        let kind = img[o + 23] & 31;
        if kind == 0 || kind > 26 {
            continue;
        }
        out.push((o + 40, lo));
        if rd32(img, o + 44) != 0 {
            out.push((o + 44, lo));
        }
        if tflag & 1 == 0 {
            continue;
        }
        // The kind's own fields before the uncommon type.
        let extra = match kind {
            22 | 23 => 8,
            17 => 24,
            18 => 16,
            19 => 8,
            20 | 25 => 32,
            21 => 40,
            _ => 0,
        };
        let u = t + 48 + extra;
        let Some(uo) = off_in(s, u, 16) else { continue };
        out.push((uo, lo));
        let mcount = usize::from(u16::from_le_bytes([img[uo + 4], img[uo + 5]]));
        let moff = u64::from(rd32(img, uo + 8));
        let Some(mo) = off_in(s, u.wrapping_add(moff), 16 * mcount) else {
            continue;
        };
        if !tables.insert(mo) {
            continue;
        }
        for m in (mo..mo + 16 * mcount).step_by(16) {
            out.push((m, lo));
            for (at, base) in [(m + 4, lo), (m + 8, text), (m + 12, text)] {
                if rd32(img, at) != u32::MAX {
                    out.push((at, base));
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup_by_key(|f| f.0);
    out
}
