//! `sync` never reads a clock: every instant it acts on is an argument (`now` in `handle_*`,
//! `poll_transmit` and `set_link`), so a simulation drives it on virtual time and replays a seed
//! exactly. This test keeps clock reads out of its sources.

use std::path::Path;

/// What reads a clock in Rust: the two std clocks and the elapsed-time shortcut on them. Spelled
/// in pieces, so that a search of the sources for clock reads does not find this list.
const CLOCK_READS: &[&str] = &[
    concat!("Instant", "::now"),
    concat!("SystemTime", "::now"),
    concat!(".elapsed", "("),
];

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            out.push((path.display().to_string(), text));
        }
    }
}

#[test]
fn sync_reads_no_clock() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(
        files.iter().any(|(p, _)| p.ends_with("session/mod.rs")),
        "the walk found the session's sources"
    );
    let found: Vec<String> = files
        .iter()
        .flat_map(|(path, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, line)| CLOCK_READS.iter().any(|c| line.contains(c)))
                .map(move |(i, line)| format!("{path}:{}: {}", i + 1, line.trim()))
        })
        .collect();
    assert!(
        found.is_empty(),
        "sync reads a clock; take the instant as an argument instead:\n{}",
        found.join("\n")
    );
}
