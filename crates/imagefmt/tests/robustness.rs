//! Arbitrary input never panics: seeded truncations and byte mutations of a valid archive (both
//! layouts), and structure-aware mutations that keep the tar valid but change a member's name,
//! type, content or declared size (checksums fixed, so the metadata parsers are reached). An
//! archive the judge accepts must also be copied by the writer, and the copy accepted again.
//! A failure prints the seed; `IMAGEFMT_SEED=n` replays from seed `n`, `IMAGEFMT_ITERATIONS`
//! runs more.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::json;

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn seed() -> u64 {
    std::env::var("IMAGEFMT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x1a6e)
}

fn iterations(default: usize) -> usize {
    std::env::var("IMAGEFMT_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `(name, entry type, data or link target)`.
type Entry = (String, tar::EntryType, Vec<u8>);

/// A valid archive in both layouts: two layers (one reached through a symlink, as Docker 20
/// writes a repeated layer), a config, `manifest.json`, `repositories`, `oci-layout`,
/// `index.json` and the OCI manifest blob.
fn valid_entries() -> Vec<Entry> {
    let hex = |d: &[u8]| wire::Digest::of(d).hex();
    let layer = vec![7u8; 1536];
    let layer_hex = hex(&layer);
    let config = json!({
        "architecture": "arm64", "os": "linux",
        "config": {"User": "65532", "Entrypoint": ["/app"], "Env": ["A=b"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_hex}"), format!("sha256:{layer_hex}")]},
    })
    .to_string()
    .into_bytes();
    let config_hex = hex(&config);
    let manifest = json!([{
        "Config": format!("blobs/sha256/{config_hex}"),
        "RepoTags": ["app:1"],
        "Layers": [format!("blobs/sha256/{layer_hex}"), "again/layer.tar"],
    }])
    .to_string()
    .into_bytes();
    let oci_manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_hex}"), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{layer_hex}"), "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", hex(&oci_manifest)), "size": oci_manifest.len(), "annotations": {"io.containerd.image.name": "docker.io/library/app:1"}}],
    })
    .to_string()
    .into_bytes();
    use tar::EntryType::{Directory, Regular, Symlink};
    vec![
        ("blobs/".into(), Directory, vec![]),
        ("blobs/sha256/".into(), Directory, vec![]),
        (format!("blobs/sha256/{layer_hex}"), Regular, layer),
        (format!("blobs/sha256/{config_hex}"), Regular, config),
        (
            format!("blobs/sha256/{}", hex(&oci_manifest)),
            Regular,
            oci_manifest,
        ),
        (
            "again/layer.tar".into(),
            Symlink,
            format!("../blobs/sha256/{layer_hex}").into_bytes(),
        ),
        (
            "oci-layout".into(),
            Regular,
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".into(), Regular, index),
        ("manifest.json".into(), Regular, manifest),
        (
            "repositories".into(),
            Regular,
            br#"{"app":{"1":"x"}}"#.to_vec(),
        ),
    ]
}

/// Writes entries with their names as given (unnormalised); `declared` overrides a size.
fn build(entries: &[Entry], declared: Option<(usize, u64)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (name, kind, data)) in entries.iter().enumerate() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        let n = name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&name.as_bytes()[..n]);
        let body: &[u8] = if kind.is_symlink() || kind.is_hard_link() {
            let t = data.len().min(100);
            h.as_old_mut().linkname[..t].copy_from_slice(&data[..t]);
            &[]
        } else {
            data
        };
        h.set_size(match declared {
            Some((at, size)) if at == i => size,
            _ => body.len() as u64,
        });
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(body);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Judges `bytes`; when accepted, writes the copy and judges it again. Panics propagate.
fn exercise(bytes: &[u8]) -> Result<(), String> {
    let Ok(archive) = imagefmt::inspect(Cursor::new(bytes)) else {
        return Ok(());
    };
    for keep in 0..archive.images().len() {
        let mut copy = Vec::new();
        imagefmt::write_unnamed(Cursor::new(bytes), &archive, keep, &mut copy)
            .map_err(|e| format!("accepted, but the copy failed: {e}"))?;
        imagefmt::inspect(Cursor::new(&copy)).map_err(|e| format!("the copy is refused: {e}"))?;
    }
    Ok(())
}

fn run(what: &str, i: usize, bytes: &[u8]) {
    let result = catch_unwind(AssertUnwindSafe(|| exercise(bytes)));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{what} at seed {} iteration {i}: {e}", seed()),
        Err(_) => panic!("panic on {what} at seed {} iteration {i}", seed()),
    }
}

#[test]
fn the_valid_archive_is_accepted() {
    let bytes = build(&valid_entries(), None);
    let archive = imagefmt::inspect(Cursor::new(&bytes)).unwrap();
    assert_eq!(archive.images()[0].layers.len(), 2);
    exercise(&bytes).unwrap();
}

#[test]
fn truncated_and_mutated_bytes_never_panic() {
    let mut rng = Rng(seed());
    let valid = build(&valid_entries(), None);
    for n in (0..valid.len()).step_by(97) {
        run("truncation", n, &valid[..n]);
    }
    for i in 0..iterations(400) {
        let mut b = valid.clone();
        for _ in 0..1 + rng.below(6) {
            match rng.below(3) {
                0 => b.truncate(rng.below(b.len())),
                _ if !b.is_empty() => {
                    let at = rng.below(b.len());
                    b[at] = rng.next() as u8;
                }
                _ => {}
            }
        }
        run("byte mutation", i, &b);
    }
}

#[test]
fn structure_aware_mutations_never_panic() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let mut rng = Rng(seed() ^ 0x57);
    let names = [
        "manifest.json",
        "index.json",
        "./manifest.json",
        "../x",
        "a/../manifest.json",
        "blobs",
        "again",
        "again/layer.tar",
        "/etc/passwd",
        "",
    ];
    for i in 0..iterations(600) {
        let mut entries = valid_entries();
        let mut declared = None;
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(entries.len());
            match rng.below(7) {
                // Flip, insert or cut bytes of a member's content (JSON mostly).
                0 | 1 => {
                    let data = &mut entries[at].2;
                    if !data.is_empty() {
                        let k = rng.below(data.len());
                        match rng.below(3) {
                            0 => data[k] = b"{}[]\",:0-9ae \\"[rng.below(14)],
                            1 => data.truncate(k),
                            _ => data.insert(k, rng.next() as u8),
                        }
                    }
                }
                2 => entries[at].0 = names[rng.below(names.len())].to_string(),
                3 => entries[at].1 = [Regular, Directory, Symlink, Link][rng.below(4)],
                4 => {
                    let dup = entries[at].clone();
                    entries.insert(rng.below(entries.len()), dup);
                }
                5 => {
                    entries.remove(at);
                    if entries.is_empty() {
                        entries = valid_entries();
                    }
                }
                _ => {
                    declared = Some((
                        at,
                        [0, 1, 511, 512, 513, 1 << 33, u64::MAX >> 4][rng.below(7)],
                    ))
                }
            }
        }
        run("structural mutation", i, &build(&entries, declared));
    }
}
