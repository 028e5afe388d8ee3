//! `orbitdock lint` as a CI step would run it: exit status, text and JSON.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_orbitdock");

#[test]
fn lint_fails_on_what_would_fail_onboard_and_passes_the_seed_example() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("Dockerfile"),
        "FROM ubuntu:22.04\nRUN pip install numpy\nUSER 1000\n",
    )
    .unwrap();
    let out = Command::new(BIN).arg("lint").arg(&bad).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Dockerfile:1:6: error[OD101]"), "{text}");
    assert!(text.contains("Dockerfile:2:5: error[OD201]"), "{text}");

    let out = Command::new(BIN)
        .args(["lint", "--json"])
        .arg(&bad)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert!(json.to_string().contains("OD101"), "{json}");
    let out = Command::new(BIN)
        .args(["lint", "-o", "json"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let o_json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(o_json, json, "lint -o json is lint --json");
    let out = Command::new(BIN)
        .args(["lint", "--sarif"])
        .arg(&bad)
        .output()
        .unwrap();
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).expect("SARIF output");
    assert_eq!(sarif["version"], "2.1.0");

    // The seed guide's example, with its static binary: nothing would fail on the EM.
    let good = dir.path().join("good");
    std::fs::create_dir_all(&good).unwrap();
    std::fs::write(
        good.join("Dockerfile"),
        "FROM gcr.io/distroless/static-debian12\nCOPY app /app\nUSER 65532:65532\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
    std::fs::write(good.join("app.c"), "int main(void) { return 0; }\n").unwrap();
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(good.join("app"))
        .arg(good.join("app.c"))
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new(BIN)
        .args(["lint", "--system", "em"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The same binary for a flight system (arm64): the wrong machine.
    let out = Command::new(BIN)
        .args(["lint", "--system", "fm"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("OD501"));
}
