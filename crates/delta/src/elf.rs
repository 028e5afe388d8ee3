//! The little of ELF64 (little-endian) the executable-aware kind reads: machine, loadable
//! segments, and sections with their flags. Every read is bounds-checked.

/// The architectures whose references the executable-aware kind rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Machine {
    X86_64,
    Aarch64,
}

/// A section with file contents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Section {
    pub(crate) off: usize,
    pub(crate) size: usize,
    pub(crate) addr: u64,
    /// SHF_ALLOC: part of the image.
    pub(crate) alloc: bool,
    /// SHF_EXECINSTR: code.
    pub(crate) exec: bool,
    /// SHT_SYMTAB: symbol table (st_value are addresses).
    pub(crate) symtab: bool,
    /// `.eh_frame` or `.eh_frame_hdr` (PC- and data-relative address fields).
    pub(crate) eh: Eh,
    /// `.gopclntab`: Go's function table (offsets relative to the code and to its own tables).
    pub(crate) gopclntab: bool,
}

/// Which unwind section a section is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eh {
    None,
    Frame,
    Hdr,
}

#[derive(Debug, Clone, Copy)]
struct Load {
    off: u64,
    vaddr: u64,
    filesz: u64,
}

/// What the kind needs to know of a file.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) machine: Machine,
    /// Sorted by file offset, inside the file.
    pub(crate) sections: Vec<Section>,
    loads: Vec<Load>,
    /// The image's address range (all PT_LOAD segments).
    pub(crate) lo: u64,
    pub(crate) hi: u64,
    /// The code's address range (all executable sections).
    pub(crate) exec_lo: u64,
    pub(crate) exec_hi: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The layout of an ELF64 LE file for x86-64 or AArch64, or `None`.
pub(crate) fn parse(b: &[u8]) -> Option<Layout> {
    if b.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let machine = match u16_at(b, 18)? {
        62 => Machine::X86_64,
        183 => Machine::Aarch64,
        _ => return None,
    };
    let phoff = usize::try_from(u64_at(b, 32)?).ok()?;
    let shoff = usize::try_from(u64_at(b, 40)?).ok()?;
    let phentsize = usize::from(u16_at(b, 54)?);
    let phnum = usize::from(u16_at(b, 56)?);
    let shentsize = usize::from(u16_at(b, 58)?);
    let shnum = usize::from(u16_at(b, 60)?);
    let shstrndx = usize::from(u16_at(b, 62)?);
    // The section-name string table, if it is inside the file.
    let names = shoff
        .checked_add(shstrndx.checked_mul(shentsize)?)
        .and_then(|at| {
            let off = usize::try_from(u64_at(b, at + 24)?).ok()?;
            let size = usize::try_from(u64_at(b, at + 32)?).ok()?;
            b.get(off..off.checked_add(size)?)
        })
        .unwrap_or(&[]);
    let name_of = |at: usize| -> &[u8] {
        let Some(tail) = names.get(at..) else {
            return &[];
        };
        let end = tail.iter().position(|&c| c == 0).unwrap_or(tail.len());
        &tail[..end]
    };
    if phentsize < 56 || (shnum > 0 && shentsize < 64) {
        return None;
    }
    let mut loads = Vec::new();
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(b, at)? != 1 {
            continue;
        }
        let l = Load {
            off: u64_at(b, at + 8)?,
            vaddr: u64_at(b, at + 16)?,
            filesz: u64_at(b, at + 32)?,
        };
        let memsz = u64_at(b, at + 40)?;
        l.vaddr.checked_add(memsz.max(l.filesz))?;
        loads.push((l, memsz.max(l.filesz)));
    }
    if loads.is_empty() {
        return None;
    }
    let lo = loads.iter().map(|(l, _)| l.vaddr).min()?;
    let hi = loads.iter().map(|(l, m)| l.vaddr + m).max()?;
    let mut sections = Vec::new();
    for i in 0..shnum {
        let at = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let kind = u32_at(b, at + 4)?;
        let flags = u64_at(b, at + 8)?;
        let s = Section {
            addr: u64_at(b, at + 16)?,
            off: usize::try_from(u64_at(b, at + 24)?).ok()?,
            size: usize::try_from(u64_at(b, at + 32)?).ok()?,
            alloc: flags & 2 != 0,
            exec: flags & 4 != 0,
            symtab: kind == 2,
            eh: match name_of(u32_at(b, at)? as usize) {
                b".eh_frame" => Eh::Frame,
                b".eh_frame_hdr" => Eh::Hdr,
                _ => Eh::None,
            },
            gopclntab: name_of(u32_at(b, at)? as usize) == b".gopclntab",
        };
        // NOBITS (8) and NULL (0) have no bytes in the file.
        if kind == 8 || kind == 0 || s.size == 0 {
            continue;
        }
        if s.off.checked_add(s.size).is_none_or(|end| end > b.len()) {
            continue;
        }
        if s.alloc && s.addr.checked_add(s.size as u64).is_none() {
            continue;
        }
        sections.push(s);
    }
    sections.sort_by_key(|s| s.off);
    // Overlapping sections would be rewritten twice: keep the first of any overlap.
    let mut kept: Vec<Section> = Vec::with_capacity(sections.len());
    for s in sections {
        if kept.last().is_none_or(|p| p.off + p.size <= s.off) {
            kept.push(s);
        }
    }
    let exec: Vec<&Section> = kept.iter().filter(|s| s.exec && s.alloc).collect();
    let exec_lo = exec.iter().map(|s| s.addr).min().unwrap_or(0);
    let exec_hi = exec
        .iter()
        .map(|s| s.addr + s.size as u64)
        .max()
        .unwrap_or(0);
    Some(Layout {
        machine,
        sections: kept,
        loads: loads.into_iter().map(|(l, _)| l).collect(),
        lo,
        hi,
        exec_lo,
        exec_hi,
    })
}

impl Layout {
    /// The address the byte at file offset `off` loads at.
    pub(crate) fn vaddr_of(&self, off: usize) -> Option<u64> {
        let off = off as u64;
        self.loads
            .iter()
            .find(|l| off >= l.off && off - l.off < l.filesz)
            .map(|l| l.vaddr + (off - l.off))
    }
}
