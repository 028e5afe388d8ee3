//! `orbitdock bench cfdp` end to end, small: CFDP class 2 (cfdp-py, which CI installs) and the
//! link each carry a 64 KB file through the emulator with loss, over real UDP, and both files
//! arrive byte for byte. The table itself is a benchmark (docs/benchmarks.md); this keeps the
//! command and its CFDP script working. Nothing here is timed.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_orbitdock");

#[test]
fn both_protocols_deliver_the_file_through_the_emulator() {
    let out = Command::new(BIN)
        .args([
            "bench",
            "cfdp",
            "--file-bytes",
            "65536",
            "--rate",
            "2000000",
            "--rtt-ms",
            "40",
            "--loss",
            "0.05",
            "--loss-model",
            "bursty",
            "--parallel",
            "2",
            "--seed",
            "7",
        ])
        .output()
        .expect("run orbitdock");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench cfdp failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let row = stdout
        .lines()
        .find(|l| l.contains("5 % bursty"))
        .unwrap_or_else(|| panic!("no row for 5 % bursty loss:\n{stdout}"));
    // Both protocols' files were compared byte for byte: two "yes" (and no "NO") in the row.
    let identical: Vec<&str> = row
        .split('|')
        .skip(1)
        .take(2)
        .filter_map(|cols| cols.split_whitespace().last())
        .collect();
    assert_eq!(identical, ["yes", "yes"], "{row}");
    assert!(stdout.contains("cfdp-py 0.7.0"), "{stdout}");
}

/// Without cfdp-py the command says how to install it (a Python that cannot import it: an
/// empty `PYTHONPATH` does not hide site-packages, so `python3` is pointed at nothing).
#[test]
fn a_missing_python_says_how_to_install_cfdp_py() {
    let out = Command::new(BIN)
        .args(["bench", "cfdp", "--seed", "1", "--loss", "0"])
        .env("PATH", "/nonexistent")
        .output()
        .expect("run orbitdock");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("python3 -m pip install cfdp-py==0.7.0"),
        "{stderr}"
    );
}
