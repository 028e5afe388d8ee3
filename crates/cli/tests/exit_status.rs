//! The exit status of `orbitdock`, as `--help` and the README document it: 0 success, 1 the thing
//! asked failed, 2 a usage error.

mod support;

use std::process::Output;

use support::GroundOnly;

async fn orbitdock(args: &[&str], session: &std::path::Path) -> Output {
    support::run_cli(args, session).await
}

#[tokio::test]
async fn usage_errors_exit_2_failures_1_success_0() {
    let g = GroundOnly::start().await;
    g.ground.ensure_user("alice", "pw-alice").await.unwrap();
    let session = g.dir.path().join("session.json");
    let login = |password: &'static str| {
        [
            "login",
            "--server",
            g.url.as_str(),
            "--user",
            "alice",
            "--password",
            password,
        ]
    };

    // Usage errors: clap's, before anything runs.
    for args in [
        &["bogus"][..],
        &["login", "--server"][..],
        &["passes", "--hours", "many"][..],
    ] {
        let out = orbitdock(args, &session).await;
        assert_eq!(out.status.code(), Some(2), "orbitdock {args:?}");
    }

    // The thing asked failed: the ground says the user or password is wrong.
    let out = orbitdock(&login("nope"), &session).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wrong user or password"),
        "a wrong password is named as such: {stderr}"
    );
    assert!(!session.exists(), "no session is saved");
    // A verb that needs a session when there is none: log in (3).
    let out = orbitdock(&["files", "ls", "demo"], &session).await;
    assert_eq!(out.status.code(), Some(3));

    // Success.
    let out = orbitdock(&login("pw-alice"), &session).await;
    assert_eq!(out.status.code(), Some(0));
    let out = orbitdock(&["files", "ls", "demo"], &session).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "a namespace that does not exist is a failure"
    );
    let out = orbitdock(&["--help"], &session).await;
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.starts_with("orbitdock: run containerised software on satellites"),
        "{help}"
    );
    assert!(help.contains("Exit status:"), "{help}");
}
