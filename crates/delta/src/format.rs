//! The patch header: `MAGIC`, version, kind, base size and sha256, result size and sha256.

use crate::DeltaError;

/// The first bytes of every patch.
pub const MAGIC: [u8; 8] = *b"ODDELTA\x1a";
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;
/// Bytes of the header: magic, version, kind, base size (u64 LE) and sha256, result size and
/// sha256, body size.
pub const HEADER_LEN: usize = 8 + 1 + 1 + 8 + 32 + 8 + 32 + 8;

/// How the body turns the base into the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The whole result, zstd -19 with a long window; no base.
    Whole,
    /// zstd with the base as reference prefix (zstd's `--patch-from`).
    ZstdRef,
    /// A bsdiff-4 patch (`BSDIFF40`, bzip2 streams), as bsdiff4 writes it.
    Bsdiff,
    /// The executable-aware delta of an ELF x86-64 or AArch64 file.
    Exe,
    /// A tar (a `docker save` archive) whose entries that are layers the satellite can produce
    /// are left out and named by their sha256 (DiffID); the rest zstd, with or without the
    /// base as reference prefix (see `layers`).
    Layers,
}

impl Kind {
    /// Its byte in the header.
    pub fn code(self) -> u8 {
        match self {
            Kind::Whole => 1,
            Kind::ZstdRef => 2,
            Kind::Bsdiff => 3,
            Kind::Exe => 4,
            Kind::Layers => 5,
        }
    }

    /// The kind of a header byte.
    pub fn from_code(c: u8) -> Option<Kind> {
        Some(match c {
            1 => Kind::Whole,
            2 => Kind::ZstdRef,
            3 => Kind::Bsdiff,
            4 => Kind::Exe,
            5 => Kind::Layers,
            _ => return None,
        })
    }

    /// Its name, as the CLI prints it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Whole => "whole-zstd",
            Kind::ZstdRef => "zstd-ref",
            Kind::Bsdiff => "bsdiff",
            Kind::Exe => "exe",
            Kind::Layers => "layers",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a patch declares about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The kind of the body.
    pub kind: Kind,
    /// Size of the base (0 for [`Kind::Whole`], and for a [`Kind::Layers`] patch without one).
    pub base_size: u64,
    /// sha256 of the base (zeros for [`Kind::Whole`]).
    pub base_sha256: [u8; 32],
    /// Size of the result.
    pub result_size: u64,
    /// sha256 of the result.
    pub result_sha256: [u8; 32],
    /// Bytes of the body after the header: a patch cut short is refused before decoding.
    pub body_size: u64,
}

impl Header {
    /// Appends the header's [`HEADER_LEN`] bytes.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.kind.code());
        out.extend_from_slice(&self.base_size.to_le_bytes());
        out.extend_from_slice(&self.base_sha256);
        out.extend_from_slice(&self.result_size.to_le_bytes());
        out.extend_from_slice(&self.result_sha256);
        out.extend_from_slice(&self.body_size.to_le_bytes());
    }

    /// Reads the header at the start of `patch`.
    pub fn read(patch: &[u8]) -> Result<Header, DeltaError> {
        if patch.len() < MAGIC.len() {
            return Err(DeltaError::Truncated("magic"));
        }
        if patch[..8] != MAGIC {
            return Err(DeltaError::BadMagic);
        }
        if patch.len() < HEADER_LEN {
            return Err(DeltaError::Truncated("header"));
        }
        if patch[8] != VERSION {
            return Err(DeltaError::UnsupportedVersion(patch[8]));
        }
        let kind = Kind::from_code(patch[9]).ok_or(DeltaError::UnknownKind(patch[9]))?;
        let u64_at = |at: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&patch[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let sha_at = |at: usize| {
            let mut b = [0; 32];
            b.copy_from_slice(&patch[at..at + 32]);
            b
        };
        let header = Header {
            kind,
            base_size: u64_at(10),
            base_sha256: sha_at(18),
            result_size: u64_at(50),
            result_sha256: sha_at(58),
            body_size: u64_at(90),
        };
        let body = (patch.len() - HEADER_LEN) as u64;
        if body < header.body_size {
            return Err(DeltaError::Truncated("body"));
        }
        if body > header.body_size {
            return Err(DeltaError::Corrupt {
                kind,
                what: format!("{} bytes after the body", body - header.body_size),
            });
        }
        Ok(header)
    }
}
