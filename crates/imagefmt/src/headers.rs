//! The tar headers, walked before the `tar` crate reads anything whole. The engine reads an
//! archive with Go's `archive/tar` (the classic image store and containerd alike); where that
//! reader and the `tar` crate could take the same bytes for different members, or where the
//! `tar` crate would read without bound, the archive is refused here:
//!
//! - A GNU long name or link (`L`, `K`) or a pax extended header (`x`, `g`) larger than
//!   [`MAX_EXTENSION_BYTES`]: Go refuses it, and the `tar` crate reads it whole with no limit (a
//!   long name claiming 256 MiB took 1.4 GB of memory). Refused before a byte of it is read.
//! - A pax header's records that the two read differently: Go reads each record by its length
//!   and keeps the last of a repeated key, the `tar` crate splits the records at newlines and
//!   keeps the first. Refused: a record Go would not parse, a newline inside a record, a key
//!   twice, an empty `path` or `linkpath` (Go keeps the header's, the `tar` crate takes the
//!   empty one), a `size` that is not a number, and the `GNU.sparse.*` keys (with which Go renames and
//!   resizes the member, while the `tar` crate ignores them).
//! - A ustar name prefix that the two read differently: Go reads the prefix of any header of magic
//!   `ustar\0`, and only its first 131 bytes when the header ends with star's `tar\0` trailer;
//!   the `tar` crate reads all 155 bytes, and only when the version is `00`. With a prefix of
//!   `<128 bytes>/..` followed by 24 octal digits (star's times), Go sees `manifest.json` where
//!   the `tar` crate sees `<128 bytes>/..000…/manifest.json`: Docker 20.10 loaded such a second
//!   manifest, with its tags.
//!
//! The walk frames members as the `tar` crate does (a pax `size` record sizes the next member;
//! the first zero block ends the archive) and stops where that crate fails, or where this crate
//! refuses the member anyway (a sparse or unrecognised extension member), leaving the message
//! to them.

use std::collections::HashSet;
use std::io::{BufReader, ErrorKind as IoKind, Read, SeekFrom};

use crate::MAX_EXTENSION_BYTES;
use crate::error::{ArchiveError, io, refused, too_large};
use crate::members::ReadSeek;

const BLOCK: u64 = 512;

/// Walks every header of the archive (`len` bytes) and refuses what is described above.
pub(crate) fn prescan(reader: &mut dyn ReadSeek, len: u64) -> Result<(), ArchiveError> {
    let what = "cannot read the archive";
    reader.seek(SeekFrom::Start(0)).map_err(io(what))?;
    let mut reader = BufReader::with_capacity(64 << 10, reader);
    // Where the reader is, and where the next header starts.
    let (mut at, mut next) = (0u64, 0u64);
    // A pax header read before the member it describes, with its `size` record.
    let mut pax: Option<Option<u64>> = None;
    let mut block = [0u8; BLOCK as usize];
    loop {
        if next.checked_add(BLOCK).is_none_or(|end| end > len) {
            return Ok(());
        }
        let delta = i64::try_from(next - at).map_err(|_| too_large("a member is too large"))?;
        reader.seek_relative(delta).map_err(io(what))?;
        match reader.read_exact(&mut block) {
            Ok(()) => {}
            Err(e) if e.kind() == IoKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(io(what)(e)),
        }
        let offset = next;
        at = next + BLOCK;
        if block.iter().all(|&b| b == 0) {
            return Ok(());
        }
        let header = tar::Header::from_byte_slice(&block);
        if !checksum_ok(header) {
            return Ok(());
        }
        let Ok(declared) = header.entry_size() else {
            return Ok(());
        };
        let kind = header.entry_type();
        let long = kind.is_gnu_longname() || kind.is_gnu_longlink();
        let records = kind.is_pax_local_extensions() || kind.is_pax_global_extensions();
        let recognized = header.as_gnu().is_some() || header.as_ustar().is_some();
        let size = if long || records {
            if declared > MAX_EXTENSION_BYTES {
                return Err(too_large(format!(
                    "the {} at offset {offset} (`{}`) declares {declared} bytes, more than the \
                     {MAX_EXTENSION_BYTES} the engine's tar reader takes",
                    if long { "GNU long name" } else { "pax header" },
                    String::from_utf8_lossy(&header.path_bytes()),
                )));
            }
            declared
        } else {
            if prefix_disagrees(&block) {
                return Err(refused(format!(
                    "the member at offset {offset} (`{}`) has a name prefix that tar readers \
                     read differently",
                    String::from_utf8_lossy(&header.path_bytes()),
                )));
            }
            match pax.take() {
                Some(Some(size)) => size,
                _ => declared,
            }
        };
        let data = at;
        let Some(end) = size
            .checked_add(BLOCK - 1)
            .and_then(|s| data.checked_add(s & !(BLOCK - 1)))
        else {
            return Ok(());
        };
        if records {
            if data.checked_add(size).is_none_or(|e| e > len) {
                return Ok(());
            }
            let mut body = vec![0; size as usize];
            reader.read_exact(&mut body).map_err(io(what))?;
            at = data + size;
            let size_record = read_records(&body, offset)?;
            if kind.is_pax_global_extensions() {
                // The `tar` crate hands a global header over as a member, which ends what the
                // pending local header describes.
                pax = None;
            } else if !recognized || pax.is_some() {
                // Handed over as a member (refused there), or a second pax header for one member
                // (an error of the `tar` crate).
                return Ok(());
            } else {
                pax = Some(size_record);
            }
        } else if kind.is_gnu_sparse() || (long && !recognized) {
            return Ok(());
        }
        next = end;
    }
}

/// The `tar` crate's checksum test: the unsigned sum of the header, its checksum field counted
/// as spaces.
fn checksum_ok(header: &tar::Header) -> bool {
    let bytes = header.as_bytes();
    let sum = bytes[..148]
        .iter()
        .chain(&bytes[156..])
        .fold(8 * 32, |a, b| a + u32::from(*b));
    header.cksum().is_ok_and(|c| c == sum)
}

/// Whether Go and the `tar` crate read a different name prefix from this header.
fn prefix_disagrees(block: &[u8; BLOCK as usize]) -> bool {
    if &block[257..263] != b"ustar\0" {
        // Go reads no prefix either: GNU and V7 headers have none.
        return false;
    }
    let until_nul = |b: &[u8]| -> Vec<u8> { b.iter().copied().take_while(|&c| c != 0).collect() };
    let field = &block[345..500];
    let go = if &block[508..512] == b"tar\0" {
        until_nul(&field[..131])
    } else {
        until_nul(field)
    };
    let tar_crate = if &block[263..265] == b"00" {
        until_nul(field)
    } else {
        Vec::new()
    };
    go != tar_crate
}

/// Reads the records of a pax header (at `offset`) as Go reads them and refuses what the `tar`
/// crate would read otherwise; returns the `size` record.
fn read_records(body: &[u8], offset: u64) -> Result<Option<u64>, ArchiveError> {
    let bad = |why: &str| {
        refused(format!(
            "the pax header at offset {offset} {why}, which tar readers read differently"
        ))
    };
    let mut keys = HashSet::new();
    let mut size = None;
    let mut rest = body;
    while !rest.is_empty() {
        // `<length> <key>=<value>\n`, the length counting the whole record.
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("holds a record without a length"))?;
        let length = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n >= 5 && n > space + 1 && n <= rest.len())
            .ok_or_else(|| bad("holds a record of a bad length"))?;
        let (record, tail) = rest.split_at(length);
        rest = tail;
        let Some((b'\n', text)) = record[space + 1..].split_last() else {
            return Err(bad("holds a record that does not end its line"));
        };
        if text.contains(&b'\n') {
            return Err(bad("holds a newline inside a record"));
        }
        let equals = text
            .iter()
            .position(|&b| b == b'=')
            .filter(|&i| i > 0)
            .ok_or_else(|| bad("holds a record without a key"))?;
        let (key, value) = (&text[..equals], &text[equals + 1..]);
        let named = matches!(key, b"path" | b"linkpath" | b"uname" | b"gname");
        if key.contains(&0) || (named && value.contains(&0)) {
            return Err(bad("holds a NUL byte"));
        }
        if matches!(key, b"path" | b"linkpath") && value.is_empty() {
            // Go keeps the header's name, the `tar` crate takes the empty one.
            return Err(bad("holds an empty name"));
        }
        if key.starts_with(b"GNU.sparse.") {
            return Err(bad("describes a sparse file"));
        }
        if !keys.insert(key) {
            return Err(bad(&format!(
                "holds `{}` twice",
                String::from_utf8_lossy(key)
            )));
        }
        if key == b"size" {
            size = Some(
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|&s| i64::try_from(s).is_ok())
                    .ok_or_else(|| bad("holds a size that is not a number"))?,
            );
        }
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> String {
        // The length counts its own digits.
        let mut n = text.len() + 3;
        while format!("{n} {text}\n").len() != n {
            n += 1;
        }
        format!("{n} {text}\n")
    }

    #[test]
    fn pax_records_are_read_as_go_reads_them() {
        let ok = format!("{}{}", record("path=a/b"), record("size=12"));
        assert_eq!(read_records(ok.as_bytes(), 0).unwrap(), Some(12));
        assert_eq!(read_records(b"", 0).unwrap(), None);
        for bad in [
            format!("{}{}", record("path=a"), record("path=manifest.json")),
            record("path=a\nsize=1"),
            record("GNU.sparse.name=manifest.json"),
            record("path=a\0b"),
            record("size=-1"),
            record("size=99999999999999999999"),
            record("=x"),
            record("linkpath="),
            "5 a=b".to_string(),
            "\n".to_string(),
            "30 path=a\n".to_string(),
            format!("{}x", record("path=a")),
        ] {
            let err = read_records(bad.as_bytes(), 7).unwrap_err();
            assert!(err.message().contains("offset 7"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn name_prefixes_must_read_alike() {
        let mut h = tar::Header::new_ustar();
        h.set_path("a/manifest.json").unwrap();
        let mut block = *h.as_bytes();
        assert!(!prefix_disagrees(&block));
        block[345] = b'a';
        assert!(!prefix_disagrees(&block), "a plain ustar prefix");
        block[263..265].copy_from_slice(b"  ");
        assert!(
            prefix_disagrees(&block),
            "Go reads the prefix, the tar crate not"
        );
        block[263..265].copy_from_slice(b"00");
        block[508..512].copy_from_slice(b"tar\0");
        assert!(!prefix_disagrees(&block), "a short prefix reads alike");
        block[345..345 + 140].fill(b'a');
        assert!(prefix_disagrees(&block), "star's prefix is 131 bytes");
        let gnu = tar::Header::new_gnu();
        assert!(!prefix_disagrees(gnu.as_bytes()));
    }
}
