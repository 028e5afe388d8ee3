//! Progress on long transfers: `files push` and `files pull` of a 50 MB folder draw a bar under a
//! pseudo-terminal (util-linux `script` gives the CLI one) and finish with the right totals;
//! piped, they print no bar at all.

mod support;

use std::path::Path;

use support::{BIN, GroundOnly, run_cli};

/// Runs `orbitdock ARGS` under a pseudo-terminal; returns what the terminal showed.
fn under_a_terminal(args: &[&str], session: &Path) -> String {
    let command = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("ORBITDOCK_SESSION", session)
        .env("COLUMNS", "120")
        .env_remove("ORBITDOCK_PASSWORD")
        .output()
        .expect("util-linux script runs");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "orbitdock {args:?}: {shown}");
    shown
}

#[tokio::test(flavor = "multi_thread")]
async fn push_and_pull_show_progress_on_a_terminal_and_none_when_piped() {
    let g = GroundOnly::start().await;
    g.ground.ensure_user("alice", "pw-alice").await.unwrap();
    let session = g.dir.path().join("session.json");
    let login = [
        "login",
        "--server",
        &g.url,
        "--user",
        "alice",
        "--password",
        "pw-alice",
    ];
    assert!(run_cli(&login, &session).await.status.success());

    // 50 MB in five files of incompressible bytes: 47.69 MiB as the tar that carries them.
    let folder = g.dir.path().join("big");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..5 {
        let bytes: Vec<u8> = (0..10_000_000).map(|_| rand::random::<u8>()).collect();
        std::fs::write(folder.join(format!("part{i}.bin")), bytes).unwrap();
    }
    let push = ["files", "push", folder.to_str().unwrap(), "-n", "big"];
    let shown = under_a_terminal(&push, &session);
    assert!(shown.contains("uploading ["), "no bar: {shown}");
    assert!(shown.contains("/47.69 MiB"), "no total: {shown}");
    assert!(
        shown.contains("/part4.bin  v1  10000000 bytes"),
        "the push did not finish: {shown}"
    );

    let piped = run_cli(&push, &session).await;
    assert!(piped.status.success());
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!stderr.contains('['), "a bar on a pipe: {stderr}");
    assert!(stderr.contains("uploading 5 files (50000000 bytes)"));

    let into = g.dir.path().join("back");
    let pull = ["files", "pull", "big:/", into.to_str().unwrap()];
    let shown = under_a_terminal(&pull, &session);
    assert!(shown.contains("downloading ["), "no bar: {shown}");
    for i in 0..5 {
        let name = format!("part{i}.bin");
        assert_eq!(
            std::fs::read(into.join(&name)).unwrap(),
            std::fs::read(folder.join(&name)).unwrap()
        );
    }
    let piped = run_cli(&pull, &session).await;
    assert!(piped.status.success());
    assert!(!String::from_utf8_lossy(&piped.stderr).contains('['));
}
