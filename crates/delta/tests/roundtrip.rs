//! Every kind round-trips on real ELF files built here (gcc -static, and aarch64-linux-gnu-gcc
//! -static when installed); bad patches give typed errors and nothing else.

use std::path::Path;
use std::process::Command;

use delta::{DeltaError, Kind, MakeOptions};

/// A small C program; `variant` changes it the way a developer would.
fn source(variant: &str) -> String {
    let greeting = if variant == "string" {
        "hello from orbitdock, version two"
    } else {
        "hello from orbitdock"
    };
    let compute = if variant == "arith" {
        "static long compute(long x) { long y = x * x / 5 + x * 3 - 11; for (int i = 0; i < 3; i++) y = y * 7 + (y >> 3) - i; return y; }"
    } else {
        "static long compute(long x) { return x * 3 + 7; }"
    };
    let flag = if variant == "flag" {
        r#"else if (!strcmp(argv[i], "--twice")) { twice = 1; printf("twice enabled: %d\n", twice * argc); }"#
    } else {
        ""
    };
    format!(
        r#"#include <stdio.h>
#include <stdlib.h>
#include <string.h>
{compute}
int main(int argc, char **argv) {{
  int verbose = 0, twice = 0;
  for (int i = 1; i < argc; i++) {{
    if (!strcmp(argv[i], "--verbose")) verbose = 1;
    {flag}
  }}
  char *buf = malloc(64);
  snprintf(buf, 64, "%ld", compute(argc));
  printf("{greeting}: %s %d %d\n", buf, verbose, twice);
  free(buf);
  return 0;
}}
"#
    )
}

fn build(cc: &str, dir: &Path, variant: &str) -> Option<Vec<u8>> {
    let src = dir.join(format!("{variant}.c"));
    let out = dir.join(format!("{variant}-{cc}"));
    std::fs::write(&src, source(variant)).unwrap();
    let ok = Command::new(cc)
        .args(["-O2", "-static", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .ok()?
        .success();
    ok.then(|| std::fs::read(&out).unwrap())
}

fn have(cc: &str) -> bool {
    Command::new(cc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Every kind on every change, both machines present; returns (exe, bsdiff) sizes per change.
fn round_trips(cc: &str) -> Vec<(String, usize, usize)> {
    let dir = tempfile::tempdir().unwrap();
    let base = build(cc, dir.path(), "base").expect("the base program builds");
    let mut sizes = Vec::new();
    for variant in ["string", "arith", "flag"] {
        let new = build(cc, dir.path(), variant).expect("the variant builds");
        assert_ne!(base, new, "{variant} changes the binary");
        let mut got = std::collections::HashMap::new();
        for kind in [Kind::Whole, Kind::ZstdRef, Kind::Bsdiff, Kind::Exe] {
            let patch = delta::make_kind(kind, Some(&base), &new, MakeOptions::default())
                .unwrap_or_else(|| panic!("{cc} {variant}: {kind} applies to a static ELF file"));
            let header = delta::Header::read(&patch).unwrap();
            assert_eq!(header.kind, kind);
            let back = delta::apply(Some(&base), &patch).unwrap();
            assert!(back == new, "{cc} {variant} {kind}: byte-exact round trip");
            got.insert(kind, patch.len());
        }
        let best = delta::make(Some(&base), &new);
        assert_eq!(
            best.len(),
            *got.values().min().unwrap(),
            "make keeps the smallest"
        );
        assert!(delta::apply(Some(&base), &best).unwrap() == new);
        eprintln!("{cc} {variant}: {got:?}");
        sizes.push((variant.to_string(), got[&Kind::Exe], got[&Kind::Bsdiff]));
    }
    sizes
}

#[test]
fn x86_64_round_trips_and_exe_beats_bsdiff_when_code_moves() {
    let sizes = round_trips("gcc");
    let (_, exe, bsdiff) = sizes.iter().find(|s| s.0 == "arith").unwrap();
    assert!(
        exe < bsdiff,
        "exe {exe} < bsdiff {bsdiff} on a change that moves code"
    );
}

#[test]
fn aarch64_round_trips_and_exe_beats_bsdiff_when_code_moves() {
    if !have("aarch64-linux-gnu-gcc") {
        eprintln!("aarch64-linux-gnu-gcc is not installed: skipped");
        return;
    }
    let sizes = round_trips("aarch64-linux-gnu-gcc");
    let (_, exe, bsdiff) = sizes.iter().find(|s| s.0 == "arith").unwrap();
    assert!(
        exe < bsdiff,
        "exe {exe} < bsdiff {bsdiff} on a change that moves code"
    );
}

#[test]
fn whole_file_needs_no_base_and_round_trips() {
    let data: Vec<u8> = (0..100_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let patch = delta::make(None, &data);
    assert_eq!(delta::Header::read(&patch).unwrap().kind, Kind::Whole);
    assert!(patch.len() < data.len() / 10);
    assert_eq!(delta::apply(None, &patch).unwrap(), data);
    assert_eq!(delta::apply(Some(b"anything"), &patch).unwrap(), data);
}

fn pair() -> (Vec<u8>, Vec<u8>) {
    let old: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i.wrapping_mul(2654435761) >> 7).to_le_bytes())
        .collect();
    let mut new = old.clone();
    new.splice(1000..1000, b"inserted bytes".iter().copied());
    new[500_000] ^= 0x55;
    (old, new)
}

#[test]
fn bad_patches_give_typed_errors() {
    let (old, new) = pair();
    for kind in [Kind::Whole, Kind::ZstdRef, Kind::Bsdiff] {
        let patch = delta::make_kind(kind, Some(&old), &new, MakeOptions::default()).unwrap();
        assert_eq!(delta::apply(Some(&old), &patch).unwrap(), new);

        // Truncated anywhere: an error, never a result.
        for cut in [
            0,
            5,
            delta::HEADER_LEN - 1,
            delta::HEADER_LEN,
            patch.len() / 2,
            patch.len() - 1,
        ] {
            let e = match delta::apply(Some(&old), &patch[..cut]) {
                Ok(_) => panic!("{kind} cut at {cut} of {} applied", patch.len()),
                Err(e) => e,
            };
            assert!(
                matches!(e, DeltaError::Truncated(_)),
                "{kind} cut at {cut}: {e}"
            );
        }
        // Bytes appended: refused too.
        let mut long = patch.clone();
        long.push(0);
        assert!(matches!(
            delta::apply(Some(&old), &long).unwrap_err(),
            DeltaError::Corrupt { .. }
        ));
        // Corrupted body bytes: refused (decoder error or result digest).
        for at in [delta::HEADER_LEN + 3, patch.len() / 2, patch.len() - 2] {
            let mut bad = patch.clone();
            bad[at] ^= 0x40;
            assert!(
                delta::apply(Some(&old), &bad).is_err(),
                "{kind}: byte {at} flipped"
            );
        }
        // A result digest that does not match.
        let mut bad = patch.clone();
        bad[60] ^= 1;
        assert!(matches!(
            delta::apply(Some(&old), &bad).unwrap_err(),
            DeltaError::ResultMismatch { .. }
        ));
        if kind != Kind::Whole {
            // Wrong base, or none.
            let mut other = old.clone();
            other[7] ^= 1;
            assert!(matches!(
                delta::apply(Some(&other), &patch).unwrap_err(),
                DeltaError::WrongBase { .. }
            ));
            assert_eq!(
                delta::apply(None, &patch).unwrap_err(),
                DeltaError::MissingBase(kind)
            );
        }
    }
    let patch = delta::make(Some(&old), &new);
    let mut bad = patch.clone();
    bad[0] = b'X';
    assert_eq!(
        delta::apply(Some(&old), &bad).unwrap_err(),
        DeltaError::BadMagic
    );
    let mut bad = patch.clone();
    bad[8] = 9;
    assert_eq!(
        delta::apply(Some(&old), &bad).unwrap_err(),
        DeltaError::UnsupportedVersion(9)
    );
    let mut bad = patch.clone();
    bad[9] = 77;
    assert_eq!(
        delta::apply(Some(&old), &bad).unwrap_err(),
        DeltaError::UnknownKind(77)
    );
}

#[test]
fn declared_sizes_are_bounded_before_allocation() {
    let (old, new) = pair();
    let patch = delta::make_kind(Kind::ZstdRef, Some(&old), &new, MakeOptions::default()).unwrap();
    let e = delta::apply_with(Some(&old), &patch, delta::Limits { max_result: 1000 }).unwrap_err();
    assert!(matches!(e, DeltaError::TooLarge { .. }), "{e}");
    // A header declaring a huge result is refused by the default limit.
    let mut bad = patch.clone();
    bad[50..58].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        delta::apply(Some(&old), &bad).unwrap_err(),
        DeltaError::TooLarge { .. }
    ));
    // A smaller declared size than the stream decodes to: refused, not truncated silently.
    let mut bad = patch.clone();
    bad[50..58].copy_from_slice(&(new.len() as u64 - 1).to_le_bytes());
    assert!(matches!(
        delta::apply(Some(&old), &bad).unwrap_err(),
        DeltaError::Corrupt { .. }
    ));
}

#[test]
fn corrupt_exe_patches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let old = build("gcc", dir.path(), "base").unwrap();
    let new = build("gcc", dir.path(), "arith").unwrap();
    let patch = delta::make_kind(Kind::Exe, Some(&old), &new, MakeOptions::default()).unwrap();
    for at in (delta::HEADER_LEN..patch.len()).step_by(97) {
        let mut bad = patch.clone();
        bad[at] = bad[at].wrapping_add(1);
        assert!(delta::apply(Some(&old), &bad).is_err(), "byte {at} changed");
    }
    for cut in (delta::HEADER_LEN..patch.len()).step_by(101) {
        assert!(
            delta::apply(Some(&old), &patch[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

/// The fuzz target's two shapes over seeded random inputs: bodies of every kind behind a
/// valid header, and single-byte mutations of real patches. Errors (or, for a byte no decoder
/// reads, the right file), never a panic or another file.
#[test]
fn random_bodies_and_mutations_only_ever_error() {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let limits = delta::Limits {
        max_result: 1 << 22,
    };
    let (old, new) = pair();
    let dir = tempfile::tempdir().unwrap();
    let elf_old = build("gcc", dir.path(), "base").unwrap();
    let elf_new = build("gcc", dir.path(), "flag").unwrap();
    let mut patches = Vec::new();
    for kind in [Kind::Whole, Kind::ZstdRef, Kind::Bsdiff] {
        patches.push((
            old.clone(),
            new.clone(),
            delta::make_kind(kind, Some(&old), &new, MakeOptions::default()).unwrap(),
        ));
    }
    patches.push((
        elf_old.clone(),
        elf_new.clone(),
        delta::make_kind(Kind::Exe, Some(&elf_old), &elf_new, MakeOptions::default()).unwrap(),
    ));
    for (base, expected, patch) in &patches {
        for _ in 0..300 {
            let mut bad = patch.clone();
            let at = delta::HEADER_LEN + (next() as usize) % (bad.len() - delta::HEADER_LEN);
            bad[at] = next() as u8;
            // A byte the decoder never reads (bzip2 padding) may change and still give the
            // file; anything else is an error.
            if let Ok(out) = delta::apply_with(Some(base), &bad, limits) {
                assert!(out == *expected, "a mutated patch gave another file");
            }
        }
    }
    for i in 0..2000 {
        let kind = [Kind::Whole, Kind::ZstdRef, Kind::Bsdiff, Kind::Exe][i % 4];
        let len = (next() % 600) as usize;
        let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Half of them start like the real thing, to get further into each decoder.
        if i % 8 < 4 {
            let (_, _, real) = &patches[i % 4];
            let keep = (next() as usize % 64).min(real.len() - delta::HEADER_LEN);
            body.splice(
                0..0,
                real[delta::HEADER_LEN..delta::HEADER_LEN + keep]
                    .iter()
                    .copied(),
            );
        }
        let base: &[u8] = if kind == Kind::Exe { &elf_old } else { &old };
        let header = delta::Header {
            kind,
            base_size: base.len() as u64,
            base_sha256: delta::sha256(base),
            result_size: next() % (1 << 22),
            result_sha256: [0; 32],
            body_size: body.len() as u64,
        };
        let mut p = Vec::new();
        header.write(&mut p);
        p.extend_from_slice(&body);
        assert!(delta::apply_with(Some(base), &p, limits).is_err());
    }
}
