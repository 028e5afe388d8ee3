//! What the headers may hold: long names and extended headers bounded before they are read,
//! headers that the engine's tar reader (Go's `archive/tar`) would read as other members than
//! the `tar` crate does, and symlinks the engine would resolve otherwise.

use std::cell::Cell;
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::rc::Rc;

use imagefmt::{ErrorKind, MAX_EXTENSION_BYTES, inspect, inspect_file, write_unnamed};
use serde_json::json;

fn sha(data: &[u8]) -> String {
    wire::Digest::of(data).hex()
}

/// A header of `kind` named `name` declaring `size` bytes, its checksum set.
fn header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(size);
    h.set_cksum();
    h
}

/// Appends a header and its data, padded.
fn push(out: &mut Vec<u8>, h: &tar::Header, data: &[u8]) {
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
}

fn file(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    push(
        out,
        &header(name, tar::EntryType::Regular, data.len() as u64),
        data,
    );
}

fn symlink(out: &mut Vec<u8>, name: &str, target: &str) {
    let mut h = header(name, tar::EntryType::Symlink, 0);
    h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
    h.set_cksum();
    push(out, &h, &[]);
}

/// A GNU long name for the next member: `name` and a NUL.
fn long_name(out: &mut Vec<u8>, name: &[u8]) {
    let mut body = name.to_vec();
    body.push(0);
    push(
        out,
        &header(
            "././@LongLink",
            tar::EntryType::GNULongName,
            body.len() as u64,
        ),
        &body,
    );
}

/// A pax record, its length counting itself.
fn record(text: &str) -> String {
    let mut n = text.len() + 3;
    while format!("{n} {text}\n").len() != n {
        n += 1;
    }
    format!("{n} {text}\n")
}

fn pax(out: &mut Vec<u8>, records: &str) {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_path("PaxHeaders/x").unwrap();
    h.set_size(records.len() as u64);
    h.set_cksum();
    push(out, &h, records.as_bytes());
}

/// A valid image `app:1` (one layer, `layer/layer.tar`), its manifest last so that a case can
/// add members before it; returns the members and the manifest's bytes.
fn image() -> (Vec<u8>, Vec<u8>) {
    let layer = b"LAYER";
    let config = json!({"architecture": "arm64", "os": "linux", "config": {"User": "1"}, "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha(layer))]}}).to_string();
    let hex = sha(config.as_bytes());
    let mut out = Vec::new();
    file(&mut out, "layer/layer.tar", layer);
    file(&mut out, &format!("{hex}.json"), config.as_bytes());
    let manifest =
        json!([{"Config": format!("{hex}.json"), "RepoTags": ["app:1"], "Layers": ["layer/layer.tar"]}])
            .to_string()
            .into_bytes();
    (out, manifest)
}

fn finish(mut out: Vec<u8>, manifest: &[u8]) -> Vec<u8> {
    file(&mut out, "manifest.json", manifest);
    out.resize(out.len() + 1024, 0);
    out
}

fn valid() -> Vec<u8> {
    let (out, manifest) = image();
    finish(out, &manifest)
}

/// A reader that counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// `app:1` with a GNU long name claiming 256 MiB before its manifest, written as a sparse file:
/// the 256 MiB are a hole, costing no disk.
fn huge_long_name(dir: &std::path::Path) -> std::path::PathBuf {
    let (mut out, manifest) = image();
    let claimed: u64 = 256 << 20;
    out.extend_from_slice(header("././@LongLink", tar::EntryType::GNULongName, claimed).as_bytes());
    let path = dir.join("image.tar");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&out).unwrap();
    // The name's bytes (a hole), then the member it names and the manifest.
    f.set_len(out.len() as u64 + claimed).unwrap();
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(&finish(Vec::new(), &manifest)).unwrap();
    path
}

/// A reader of `path` that counts what is read.
fn counting(path: &std::path::Path) -> (Counting<std::fs::File>, Rc<Cell<u64>>) {
    let read = Rc::new(Cell::new(0));
    let inner = std::fs::File::open(path).unwrap();
    (
        Counting {
            inner,
            read: read.clone(),
        },
        read,
    )
}

/// The `tar` crate read a GNU long name whole, whatever its size: one claiming 256 MiB took
/// 658 MB of memory in a test. Now it is refused from its header, before any of it is read.
#[test]
fn a_256_mib_long_name_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = huge_long_name(dir.path());
    let err = inspect_file(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(
        err.message().contains("GNU long name")
            && err.message().contains("`././@LongLink`")
            && err.message().contains(&(256u64 << 20).to_string()),
        "{err}"
    );
    let (reader, read) = counting(&path);
    assert!(inspect(reader).is_err());
    assert!(read.get() < 1 << 20, "read {} bytes", read.get());
}

/// The file may change between the judgement and the copy (the volume is the tenant's): the
/// writer bounds the headers again before the tar reader reads them.
#[test]
fn the_writer_bounds_a_long_name_added_after_the_judgement() {
    let archive = inspect(Cursor::new(valid())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = huge_long_name(dir.path());
    let (reader, read) = counting(&path);
    let err = write_unnamed(reader, &archive, 0, std::io::sink()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(read.get() < 1 << 20, "read {} bytes", read.get());
}

#[test]
fn long_names_and_pax_headers_up_to_the_bound_are_read() {
    let name = "n".repeat(MAX_EXTENSION_BYTES as usize - 1);
    for (extra, want) in [(0, None), (1, Some(ErrorKind::TooLarge))] {
        let (mut out, manifest) = image();
        long_name(&mut out, format!("{name}{}", "n".repeat(extra)).as_bytes());
        file(&mut out, "ignored", b"x");
        let got = inspect(Cursor::new(finish(out, &manifest)))
            .err()
            .map(|e| e.kind());
        assert_eq!(got, want, "a long name of MAX_EXTENSION_BYTES + {extra}");

        let (mut out, manifest) = image();
        // One `comment` record of exactly the size wanted, its length field included.
        let total = MAX_EXTENSION_BYTES as usize + extra;
        let fill = total - total.to_string().len() - " comment=\n".len();
        let records = format!("{total} comment={}\n", "c".repeat(fill));
        assert_eq!(records.len(), total);
        pax(&mut out, &records);
        file(&mut out, "ignored", b"x");
        let got = inspect(Cursor::new(finish(out, &manifest)))
            .err()
            .map(|e| e.kind());
        assert_eq!(got, want, "a pax header of MAX_EXTENSION_BYTES + {extra}");
    }
}

/// Each of these adds a second `manifest.json` that Go's reader sees and the `tar` crate, as
/// this crate used it, did not.
#[test]
fn headers_that_tar_readers_read_differently_are_refused() {
    let evil = br#"[{"Config":"x.json","RepoTags":["busybox:latest"],"Layers":[]}]"#;
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();

    // Go ends a long name at its first NUL; the `tar` crate keeps the rest.
    let (mut out, manifest) = image();
    long_name(&mut out, b"manifest.json\0.x");
    file(&mut out, "ignored", evil);
    cases.push(("a NUL inside a long name", finish(out, &manifest)));

    // Go keeps the last of a repeated pax key, the `tar` crate the first.
    let (mut out, manifest) = image();
    pax(
        &mut out,
        &format!(
            "{}{}",
            record("path=harmless"),
            record("path=manifest.json")
        ),
    );
    file(&mut out, "ignored", evil);
    cases.push(("a pax path twice", finish(out, &manifest)));

    // Go renames a member by `GNU.sparse.name`; the `tar` crate ignores it.
    let (mut out, manifest) = image();
    pax(
        &mut out,
        &format!(
            "{}{}{}",
            record("GNU.sparse.major=1"),
            record("GNU.sparse.minor=0"),
            record("GNU.sparse.name=manifest.json")
        ),
    );
    file(&mut out, "ignored", evil);
    cases.push(("a GNU.sparse.name", finish(out, &manifest)));

    // Go reads records by their length, the `tar` crate splits them at newlines.
    let (mut out, manifest) = image();
    pax(&mut out, &record("comment=x\n12 size=0"));
    file(&mut out, "ignored", evil);
    cases.push(("a newline inside a pax record", finish(out, &manifest)));

    // A header ending in star's `tar\0`: Go reads a 131-byte prefix ending in `/..` (and two
    // times of 12 octal digits after it), the `tar` crate (like GNU tar) all 155 bytes, ending in
    // `/..000…`, a clean name. Docker 20.10 loads this archive's second manifest, with its tags,
    // also from the name-stripped copy the writer made of it before this was refused.
    let (mut out, manifest) = image();
    let mut h = tar::Header::new_ustar();
    h.set_path("manifest.json").unwrap();
    h.set_size(evil.len() as u64);
    let prefix = format!("{}/..{}", "a".repeat(128), "0".repeat(24));
    {
        let b = h.as_mut_bytes();
        b[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        b[508..512].copy_from_slice(b"tar\0");
    }
    h.set_cksum();
    file(&mut out, "manifest.json", &manifest);
    push(&mut out, &h, evil);
    out.resize(out.len() + 1024, 0);
    cases.push(("a star prefix", out));

    // Magic `ustar\0` with another version: Go reads the prefix, the `tar` crate does not.
    let (mut out, manifest) = image();
    let mut h = tar::Header::new_ustar();
    h.set_path("manifest.json").unwrap();
    h.set_size(manifest.len() as u64);
    {
        let b = h.as_mut_bytes();
        b[345] = b'x';
        b[263..265].copy_from_slice(b"  ");
    }
    h.set_cksum();
    push(&mut out, &h, &manifest);
    out.resize(out.len() + 1024, 0);
    cases.push(("a ustar prefix of version `  `", out));

    for (what, bytes) in cases {
        let err = inspect(Cursor::new(&bytes)).expect_err(what);
        assert_eq!(err.kind(), ErrorKind::Unsafe, "{what}: {err}");
    }

    // What Docker and tar write is read: pax paths and sizes, long names, ustar prefixes.
    let (mut out, manifest) = image();
    pax(
        &mut out,
        &format!("{}{}", record("path=p/q"), record("size=1")),
    );
    file(&mut out, "ignored", b"x");
    long_name(&mut out, "l".repeat(300).as_bytes());
    file(&mut out, "ignored", b"y");
    let mut h = tar::Header::new_ustar();
    h.set_path(format!("{}/z", "d".repeat(120))).unwrap();
    h.set_size(1);
    h.set_cksum();
    push(&mut out, &h, b"z");
    let archive = inspect(Cursor::new(finish(out, &manifest))).unwrap();
    assert_eq!(archive.images()[0].repo_tags, ["app:1"]);
    assert!(inspect(Cursor::new(valid())).is_ok());
}

/// The classic store resolves a symlink's target on disk: with `b -> c/d`, `b/../x.tar` is
/// `c/x.tar` there, and `x.tar` by its text.
#[test]
fn a_link_climbing_out_of_a_link_is_refused() {
    let (mut out, manifest) = image();
    let manifest = String::from_utf8(manifest)
        .unwrap()
        .replace("layer/layer.tar", "a");
    symlink(&mut out, "b", "c/d");
    symlink(&mut out, "a", "b/../layer/layer.tar");
    let err = inspect(Cursor::new(finish(out, manifest.as_bytes()))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsafe, "{err}");
    assert!(
        err.message().contains("climbs out of the link `b`"),
        "{err}"
    );

    // Deeper, and with the link declared after the one that climbs out of it.
    let (mut out, manifest) = image();
    symlink(&mut out, "p/a", "../b/e/../../layer/layer.tar");
    symlink(&mut out, "b", "c/d");
    let err = inspect(Cursor::new(finish(out, &manifest))).unwrap_err();
    assert!(
        err.message().contains("climbs out of the link `b`"),
        "{err}"
    );

    // Through a folder, or a name no member has, `..` reads the same either way.
    let (mut out, manifest) = image();
    let manifest = String::from_utf8(manifest)
        .unwrap()
        .replace("layer/layer.tar", "a");
    push(&mut out, &header("f/", tar::EntryType::Directory, 0), &[]);
    symlink(&mut out, "a", "f/../nowhere/../layer/layer.tar");
    let archive = inspect(Cursor::new(finish(out, manifest.as_bytes()))).unwrap();
    assert_eq!(archive.images()[0].layers[0].member, "layer/layer.tar");
}
