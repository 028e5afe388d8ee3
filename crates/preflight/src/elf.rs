//! A bounded ELF reader: machine, class, interpreter, `DT_NEEDED` libraries and the symbol
//! versions required from each (`.gnu.version_r`, reached through `DT_VERNEED`).
//!
//! It reads by offset through [`ReadAt`] (a few small reads per file, never the whole file), caps
//! every count and length, and returns an error value for truncated or garbage input.

use std::io;

/// Random-access reads: a file, or bytes in memory.
pub(crate) trait ReadAt {
    /// Fills `buf` from `offset`, or fails (short files fail with `UnexpectedEof`).
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Total length in bytes.
    fn len(&self) -> u64;
}

impl ReadAt for &[u8] {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let src = self.get(start..end).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
}

impl ReadAt for std::fs::File {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
    fn len(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
}

const MAX_PHNUM: usize = 512;
const MAX_DYN: usize = 8192;
const MAX_STRTAB: u64 = 4 << 20;
const MAX_VERNEED: usize = 256;
const MAX_VERNAUX: usize = 4096;
const MAX_NAME: usize = 4096;

/// What a binary needs from the image it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ElfInfo {
    /// 64-bit (`true`) or 32-bit.
    pub(crate) class64: bool,
    /// `e_machine`.
    pub(crate) machine: u16,
    /// `e_type`: 2 executable, 3 shared object / PIE, 1 relocatable.
    pub(crate) elf_type: u16,
    /// `PT_INTERP`: the dynamic loader it needs, e.g. `/lib/ld-linux-aarch64.so.1`.
    pub(crate) interpreter: Option<String>,
    /// `DT_NEEDED` entries.
    pub(crate) needed: Vec<String>,
    /// `DT_SONAME`, for shared libraries.
    pub(crate) soname: Option<String>,
    /// Required versions per library file, from `DT_VERNEED`.
    pub(crate) version_needs: Vec<(String, Vec<String>)>,
}

impl ElfInfo {
    /// No interpreter and no `DT_NEEDED`: runs without any library from the image.
    pub(crate) fn is_static(&self) -> bool {
        self.interpreter.is_none() && self.needed.is_empty()
    }
}

/// Why a file that starts like an ELF cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ElfError(pub(crate) String);

/// `e_machine` → Docker's architecture name.
pub(crate) fn machine_arch(machine: u16, class64: bool) -> &'static str {
    match (machine, class64) {
        (62, _) => "amd64",
        (183, _) => "arm64",
        (40, _) => "arm",
        (3, _) => "386",
        (243, true) => "riscv64",
        (21, true) => "ppc64le",
        (22, true) => "s390x",
        (8, _) => "mips",
        _ => "unknown",
    }
}

/// A human name of the machine, as `file(1)` prints it.
pub(crate) fn machine_name(machine: u16) -> String {
    match machine {
        62 => "x86-64".into(),
        183 => "aarch64 (arm64)".into(),
        40 => "32-bit ARM".into(),
        3 => "i386".into(),
        243 => "RISC-V".into(),
        21 => "PowerPC64".into(),
        22 => "s390x".into(),
        m => format!("machine {m}"),
    }
}

/// Does the data start with the ELF magic?
pub(crate) fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

struct Reader<'a> {
    r: &'a dyn ReadAt,
    le: bool,
}

impl Reader<'_> {
    fn bytes(&self, off: u64, n: usize, what: &str) -> Result<Vec<u8>, ElfError> {
        // Offsets and sizes come from the file: check the span before allocating for it.
        if off
            .checked_add(n as u64)
            .is_none_or(|end| end > self.r.len())
        {
            return Err(ElfError(format!(
                "truncated: the {what} at offset {off} lies past the end of the file"
            )));
        }
        let mut buf = vec![0; n];
        self.r.read_exact_at(off, &mut buf).map_err(|_| {
            ElfError(format!(
                "truncated: the {what} at offset {off} lies past the end of the file"
            ))
        })?;
        Ok(buf)
    }
    fn u16(&self, b: &[u8], at: usize) -> u16 {
        let v = [b[at], b[at + 1]];
        if self.le {
            u16::from_le_bytes(v)
        } else {
            u16::from_be_bytes(v)
        }
    }
    fn u32(&self, b: &[u8], at: usize) -> u32 {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.le {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        }
    }
    fn u64(&self, b: &[u8], at: usize) -> u64 {
        let mut v = [0; 8];
        v.copy_from_slice(&b[at..at + 8]);
        if self.le {
            u64::from_le_bytes(v)
        } else {
            u64::from_be_bytes(v)
        }
    }
    fn cstr(&self, off: u64, what: &str) -> Result<String, ElfError> {
        let mut out = Vec::new();
        let mut pos = off;
        while out.len() < MAX_NAME {
            let want = usize::try_from(self.r.len().saturating_sub(pos)).map_or(64, |n| n.min(64));
            if want == 0 {
                return Err(ElfError(format!(
                    "truncated: the {what} runs past the end of the file"
                )));
            }
            let chunk = self.bytes(pos, want, what)?;
            if let Some(nul) = chunk.iter().position(|&c| c == 0) {
                out.extend_from_slice(&chunk[..nul]);
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            out.extend_from_slice(&chunk);
            pos = pos.saturating_add(want as u64);
        }
        Err(ElfError(format!(
            "the {what} is longer than {MAX_NAME} bytes"
        )))
    }
}

struct Load {
    vaddr: u64,
    offset: u64,
    filesz: u64,
}

/// Reads what a binary needs. Never panics; malformed input gives `Err`.
pub(crate) fn parse(r: &dyn ReadAt) -> Result<ElfInfo, ElfError> {
    let len = r.len();
    let mut ident = [0u8; 16];
    r.read_exact_at(0, &mut ident).map_err(|_| {
        ElfError(format!(
            "truncated: {len} bytes, shorter than an ELF header"
        ))
    })?;
    if !is_elf(&ident) {
        return Err(ElfError("not an ELF file".into()));
    }
    let class64 = match ident[4] {
        1 => false,
        2 => true,
        c => return Err(ElfError(format!("invalid ELF class {c}"))),
    };
    let le = match ident[5] {
        1 => true,
        2 => false,
        d => return Err(ElfError(format!("invalid ELF data encoding {d}"))),
    };
    let rd = Reader { r, le };
    let ehsize = if class64 { 64 } else { 52 };
    let h = rd.bytes(0, ehsize, "ELF header")?;
    let elf_type = rd.u16(&h, 16);
    let machine = rd.u16(&h, 18);
    let (phoff, phentsize, phnum) = if class64 {
        (
            rd.u64(&h, 32),
            rd.u16(&h, 54) as usize,
            rd.u16(&h, 56) as usize,
        )
    } else {
        (
            u64::from(rd.u32(&h, 28)),
            rd.u16(&h, 42) as usize,
            rd.u16(&h, 44) as usize,
        )
    };
    let mut info = ElfInfo {
        class64,
        machine,
        elf_type,
        interpreter: None,
        needed: Vec::new(),
        soname: None,
        version_needs: Vec::new(),
    };
    if phnum == 0 {
        return Ok(info);
    }
    let min_ph = if class64 { 56 } else { 32 };
    if phentsize < min_ph {
        return Err(ElfError(format!("invalid program header size {phentsize}")));
    }
    if phnum > MAX_PHNUM {
        return Err(ElfError(format!(
            "{phnum} program headers (more than {MAX_PHNUM})"
        )));
    }
    let table = rd.bytes(phoff, phentsize * phnum, "program header table")?;
    let mut loads = Vec::new();
    let mut interp = None;
    let mut dynamic = None;
    for i in 0..phnum {
        let p = &table[i * phentsize..i * phentsize + min_ph];
        let p_type = rd.u32(p, 0);
        let (offset, vaddr, filesz) = if class64 {
            (rd.u64(p, 8), rd.u64(p, 16), rd.u64(p, 32))
        } else {
            (
                u64::from(rd.u32(p, 4)),
                u64::from(rd.u32(p, 8)),
                u64::from(rd.u32(p, 16)),
            )
        };
        match p_type {
            1 => loads.push(Load {
                vaddr,
                offset,
                filesz,
            }),
            2 => dynamic = Some((offset, filesz)),
            3 => interp = Some((offset, filesz)),
            _ => {}
        }
    }
    if let Some((off, size)) = interp {
        if size == 0 || size > MAX_NAME as u64 {
            return Err(ElfError(format!("invalid interpreter length {size}")));
        }
        let b = rd.bytes(off, size as usize, "interpreter path")?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        info.interpreter = Some(String::from_utf8_lossy(&b[..end]).into_owned());
    }
    let Some((dyn_off, dyn_size)) = dynamic else {
        return Ok(info);
    };
    let entsize = if class64 { 16 } else { 8 };
    let count = (dyn_size / entsize as u64) as usize;
    if count > MAX_DYN {
        return Err(ElfError(format!(
            "{count} dynamic entries (more than {MAX_DYN})"
        )));
    }
    let d = rd.bytes(dyn_off, count * entsize, "dynamic section")?;
    let (mut needed_offs, mut soname_off) = (Vec::new(), None);
    let (mut strtab, mut strsz, mut verneed, mut verneednum) = (None, None, None, 0u64);
    for i in 0..count {
        let e = &d[i * entsize..(i + 1) * entsize];
        let (tag, val) = if class64 {
            (rd.u64(e, 0), rd.u64(e, 8))
        } else {
            (u64::from(rd.u32(e, 0)), u64::from(rd.u32(e, 4)))
        };
        match tag {
            0 => break,
            1 => needed_offs.push(val),
            5 => strtab = Some(val),
            10 => strsz = Some(val),
            14 => soname_off = Some(val),
            0x6fff_fffe => verneed = Some(val),
            0x6fff_ffff => verneednum = val,
            _ => {}
        }
    }
    let to_offset = |vaddr: u64| -> Option<u64> {
        loads
            .iter()
            .find(|l| vaddr >= l.vaddr && vaddr - l.vaddr < l.filesz)
            .and_then(|l| l.offset.checked_add(vaddr - l.vaddr))
    };
    if needed_offs.is_empty() && verneed.is_none() && soname_off.is_none() {
        return Ok(info);
    }
    let strtab_off = strtab.and_then(to_offset).ok_or_else(|| {
        ElfError("the dynamic string table is outside every loaded segment".into())
    })?;
    let strsz = strsz
        .unwrap_or(MAX_STRTAB)
        .min(MAX_STRTAB)
        .min(len.saturating_sub(strtab_off));
    let string = |idx: u64, what: &str| -> Result<String, ElfError> {
        if idx >= strsz {
            return Err(ElfError(format!(
                "the {what} name lies outside the string table"
            )));
        }
        let at = strtab_off
            .checked_add(idx)
            .ok_or_else(|| ElfError(format!("the {what} name lies outside the string table")))?;
        rd.cstr(at, what)
    };
    for off in needed_offs.iter().take(MAX_DYN) {
        info.needed.push(string(*off, "needed library")?);
    }
    if let Some(s) = soname_off {
        info.soname = Some(string(s, "soname")?);
    }
    if let Some(vn) = verneed {
        let mut pos = to_offset(vn).ok_or_else(|| {
            ElfError("the version-needs table is outside every loaded segment".into())
        })?;
        let mut aux_total = 0;
        for _ in 0..(verneednum as usize).min(MAX_VERNEED) {
            let v = rd.bytes(pos, 16, "version-needs entry")?;
            let cnt = rd.u16(&v, 2) as usize;
            let file = string(u64::from(rd.u32(&v, 4)), "version-needs file")?;
            let aux = u64::from(rd.u32(&v, 8));
            let next = u64::from(rd.u32(&v, 12));
            let mut versions = Vec::new();
            let mut apos = pos
                .checked_add(aux)
                .ok_or_else(|| ElfError("version-needs offset overflows".into()))?;
            for _ in 0..cnt {
                aux_total += 1;
                if aux_total > MAX_VERNAUX {
                    return Err(ElfError(format!("more than {MAX_VERNAUX} version needs")));
                }
                let a = rd.bytes(apos, 16, "version-needs auxiliary entry")?;
                versions.push(string(u64::from(rd.u32(&a, 8)), "version")?);
                let anext = u64::from(rd.u32(&a, 12));
                if anext == 0 {
                    break;
                }
                apos = apos
                    .checked_add(anext)
                    .ok_or_else(|| ElfError("version-needs offset overflows".into()))?;
            }
            info.version_needs.push((file, versions));
            if next == 0 {
                break;
            }
            pos = pos
                .checked_add(next)
                .ok_or_else(|| ElfError("version-needs offset overflows".into()))?;
        }
    }
    Ok(info)
}

/// The highest `GLIBC_x.y` version an ELF requires, and the library it requires it from.
pub(crate) fn max_glibc(info: &ElfInfo) -> Option<(crate::catalogue::Version, String, String)> {
    let mut best: Option<(crate::catalogue::Version, String, String)> = None;
    for (file, versions) in &info.version_needs {
        for v in versions {
            let parsed = if v == "GLIBC_ABI_DT_RELR" {
                Some(crate::catalogue::Version {
                    major: 2,
                    minor: 36,
                })
            } else {
                v.strip_prefix("GLIBC_")
                    .and_then(crate::catalogue::Version::parse)
            };
            if let Some(p) = parsed
                && best.as_ref().is_none_or(|b| p > b.0)
            {
                best = Some((p, v.clone(), file.clone()));
            }
        }
    }
    best
}

/// The `#!` interpreter of a script, from its first line (at most 256 bytes read).
pub(crate) fn shebang(head: &[u8]) -> Option<(String, Vec<String>)> {
    let rest = head.strip_prefix(b"#!")?;
    let line_end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
    let line = String::from_utf8_lossy(&rest[..line_end]);
    let mut parts = line.split_whitespace();
    let interp = parts.next()?.to_string();
    Some((interp, parts.map(str::to_string).collect()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal little-endian ELF64 with one PT_LOAD, a PT_INTERP, a PT_DYNAMIC with two
    /// DT_NEEDED and a DT_VERNEED asking libc.so.6 for GLIBC_2.34.
    pub(crate) fn tiny_elf(machine: u16) -> Vec<u8> {
        let mut f = vec![0u8; 0x400];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&3u16.to_le_bytes());
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&3u16.to_le_bytes());
        let ph = |f: &mut Vec<u8>, i: usize, t: u32, off: u64, size: u64| {
            let b = 64 + i * 56;
            f[b..b + 4].copy_from_slice(&t.to_le_bytes());
            f[b + 8..b + 16].copy_from_slice(&off.to_le_bytes());
            f[b + 16..b + 24].copy_from_slice(&off.to_le_bytes());
            f[b + 32..b + 40].copy_from_slice(&size.to_le_bytes());
        };
        ph(&mut f, 0, 1, 0, 0x400);
        ph(&mut f, 1, 3, 0x200, 28);
        ph(&mut f, 2, 2, 0x300, 16 * 7);
        f[0x200..0x200 + 27].copy_from_slice(b"/lib/ld-linux-aarch64.so.1\0");
        // strtab at 0x100
        let strtab = b"\0libc.so.6\0libm.so.6\0GLIBC_2.34\0";
        f[0x100..0x100 + strtab.len()].copy_from_slice(strtab);
        let dynent = |f: &mut Vec<u8>, i: usize, tag: u64, val: u64| {
            let b = 0x300 + i * 16;
            f[b..b + 8].copy_from_slice(&tag.to_le_bytes());
            f[b + 8..b + 16].copy_from_slice(&val.to_le_bytes());
        };
        dynent(&mut f, 0, 1, 1);
        dynent(&mut f, 1, 1, 11);
        dynent(&mut f, 2, 5, 0x100);
        dynent(&mut f, 3, 10, strtab.len() as u64);
        dynent(&mut f, 4, 0x6fff_fffe, 0x180);
        dynent(&mut f, 5, 0x6fff_ffff, 1);
        dynent(&mut f, 6, 0, 0);
        // verneed at 0x180: version 1, cnt 1, file=1, aux=16, next=0
        let vn = 0x180;
        f[vn..vn + 2].copy_from_slice(&1u16.to_le_bytes());
        f[vn + 2..vn + 4].copy_from_slice(&1u16.to_le_bytes());
        f[vn + 4..vn + 8].copy_from_slice(&1u32.to_le_bytes());
        f[vn + 8..vn + 12].copy_from_slice(&16u32.to_le_bytes());
        let a = vn + 16;
        f[a + 8..a + 12].copy_from_slice(&21u32.to_le_bytes());
        f
    }

    #[test]
    fn reads_a_dynamic_binary() {
        let f = tiny_elf(183);
        let info = parse(&f.as_slice()).unwrap();
        assert_eq!(machine_arch(info.machine, info.class64), "arm64");
        assert_eq!(
            info.interpreter.as_deref(),
            Some("/lib/ld-linux-aarch64.so.1")
        );
        assert_eq!(info.needed, ["libc.so.6", "libm.so.6"]);
        assert_eq!(
            info.version_needs,
            [("libc.so.6".to_string(), vec!["GLIBC_2.34".to_string()])]
        );
        let (v, name, file) = max_glibc(&info).unwrap();
        assert_eq!(
            (v.to_string(), name.as_str(), file.as_str()),
            ("2.34".to_string(), "GLIBC_2.34", "libc.so.6")
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let f = tiny_elf(62);
        for n in 0..f.len() {
            let _ = parse(&&f[..n]);
        }
        assert!(parse(&&f[..10]).is_err());
        assert!(parse(&&f[..100]).unwrap_err().0.contains("truncated"));
    }

    #[test]
    fn corrupt_fields_are_errors_not_panics() {
        let base = tiny_elf(62);
        // Flip every byte of the headers and tables to a few values.
        for i in 0..0x3a0 {
            for v in [0u8, 0xff, 0x7f, 1] {
                let mut f = base.clone();
                f[i] = v;
                let _ = parse(&f.as_slice());
            }
        }
    }

    /// Sets program header `i` of a [`tiny_elf`] (offset, vaddr, filesz).
    fn set_ph(f: &mut [u8], i: usize, offset: u64, vaddr: u64, filesz: u64) {
        let b = 64 + i * 56;
        f[b + 8..b + 16].copy_from_slice(&offset.to_le_bytes());
        f[b + 16..b + 24].copy_from_slice(&vaddr.to_le_bytes());
        f[b + 32..b + 40].copy_from_slice(&filesz.to_le_bytes());
    }

    #[test]
    fn huge_segment_offsets_and_addresses_are_errors_not_overflows() {
        // Each case would overflow `offset + (vaddr - p_vaddr)` or a later addition, which
        // panics in a debug build (the ground runs this on tenant uploads).
        let cases: [(usize, u64, u64, u64); 8] = [
            (0, u64::MAX - 0x10, 0, 0x400),
            (0, u64::MAX, 0, u64::MAX),
            (0, u64::MAX - 0x100, 0x100, u64::MAX),
            (0, 1 << 63, 0, u64::MAX),
            (0, u64::MAX, u64::MAX - 0x400, u64::MAX),
            // The interpreter and dynamic segments far past the end of the file.
            (1, u64::MAX - 4, 0, 28),
            (2, u64::MAX - 0x20, 0, u64::MAX),
            (2, 0x300, 0, u64::MAX),
        ];
        for (i, offset, vaddr, filesz) in cases {
            let mut f = tiny_elf(62);
            set_ph(&mut f, i, offset, vaddr, filesz);
            let r = parse(&f.as_slice());
            assert!(
                r.is_err(),
                "ph {i} {offset:#x} {vaddr:#x} {filesz:#x}: {r:?}"
            );
        }
        // A load segment at the top of the address space, which the tables point into.
        let mut f = tiny_elf(62);
        set_ph(&mut f, 0, u64::MAX - 0x80, u64::MAX - 0x400, 0x400);
        let dt = |f: &mut [u8], i: usize, val: u64| {
            let b = 0x300 + i * 16 + 8;
            f[b..b + 8].copy_from_slice(&val.to_le_bytes());
        };
        dt(&mut f, 2, u64::MAX - 0x10); // DT_STRTAB
        dt(&mut f, 4, u64::MAX - 0x8); // DT_VERNEED
        let e = parse(&f.as_slice()).unwrap_err();
        assert!(e.0.contains("outside every loaded segment"), "{e:?}");
        // The same through a file, as the ground reads uploads.
        let mut tmp = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut tmp, &f).unwrap();
        assert!(parse(&tmp).is_err());
    }

    #[test]
    fn shebangs() {
        assert_eq!(
            shebang(b"#!/usr/bin/env python3\nprint()"),
            Some(("/usr/bin/env".into(), vec!["python3".into()]))
        );
        assert_eq!(shebang(b"#!/bin/sh"), Some(("/bin/sh".into(), vec![])));
        assert_eq!(shebang(b"echo"), None);
    }
}
