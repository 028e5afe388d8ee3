//! `orbitdock ground` as its own process: users from a file (whose mode is checked), from
//! `ORBITDOCK_USERS` and (with a warning) from `--user`, an operator among them; and a CLI
//! session made before a restart of the ground still works after it; on PostgreSQL, even a
//! restart on another data directory keeps it, the state being in the database.

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../../ground/tests/common/postgres.rs"]
mod postgres;
mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use support::{BIN, free_udp, run_cli};

/// The arguments of a ground on `http` with one system, its users from `users_file`.
fn ground_args(data: &Path, http: &str, users_file: &Path) -> Vec<String> {
    let system = format!("em={},{}", free_udp(), free_udp());
    [
        "ground",
        "--data-dir",
        data.to_str().unwrap(),
        "--http",
        http,
        "--system",
        &system,
        "--users-file",
        users_file.to_str().unwrap(),
        "--user",
        "carol:pw-carol",
    ]
    .map(str::to_string)
    .to_vec()
}

/// Starts the ground, its log in `log`, and waits until it answers.
async fn start(args: &[String], log: &Path) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        // The database is the one the arguments name (SQLite by default), never the shell's.
        .env_remove("ORBITDOCK_DATABASE_URL")
        .env("ORBITDOCK_USERS", "bob:pw-bob\n# and a comment\n")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://{}", args[4]);
    for _ in 0..300 {
        if let Ok(r) = support::http_client()
            .get(format!("{url}/healthz"))
            .send()
            .await
            && r.status().is_success()
        {
            return child;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the ground exited during start-up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the ground did not answer on {url}");
}

/// Runs a ground that must refuse to start (exit status 1); its standard error.
async fn refused(args: &[String]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(BIN)
            .args(args)
            .env_remove("ORBITDOCK_DATABASE_URL")
            .output(),
    )
    .await
    .expect("the ground exits")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

/// Stops the ground as Ctrl-C would.
async fn stop(mut child: tokio::process::Child) {
    let pid = child.id().unwrap() as i32;
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the ground stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_cli_session_survives_a_restart_of_the_ground() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ground");
    let out = run_cli(
        &["keygen", data.join("keys/em.key").to_str().unwrap()],
        &dir.path().join("none.json"),
    )
    .await;
    assert!(out.status.success());
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let url = format!("http://{http}");
    let log = dir.path().join("ground.log");

    // A users file others may read is refused, before anything starts.
    let users = dir.path().join("users");
    std::fs::write(
        &users,
        "# the ground's users\nalice:pw-alice\noperator ops:pw-ops\n",
    )
    .unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o644)).unwrap();
    let args = ground_args(&data, &http, &users);
    let stderr = refused(&args).await;
    assert!(
        stderr.contains("may be read or written by others (mode 0644)"),
        "{stderr}"
    );
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();

    let ground = start(&args, &log).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("--user shows the password to anyone who can list this machine's processes"),
        "{text}"
    );
    // Every source of users works: the file, the environment, the flag.
    let session = dir.path().join("alice.json");
    for (user, password) in [
        ("bob", "pw-bob"),
        ("carol", "pw-carol"),
        ("alice", "pw-alice"),
    ] {
        let login = [
            "login",
            "--server",
            &url,
            "--user",
            user,
            "--password",
            password,
        ];
        assert!(run_cli(&login, &session).await.status.success(), "{user}");
    }
    // The password need not be on the command line: standard input, or nothing and a usage error.
    let stdin_login = [
        "login",
        "--server",
        &url,
        "--user",
        "bob",
        "--password-stdin",
    ];
    let mut child = tokio::process::Command::new(BIN)
        .args(stdin_login)
        .env("ORBITDOCK_SESSION", dir.path().join("bob.json"))
        .env_remove("ORBITDOCK_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"pw-bob\n").await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `operator NAME:` in the users file makes an operator; the others are tenants.
    let ops = dir.path().join("ops.json");
    let login = [
        "login",
        "--server",
        &url,
        "--user",
        "ops",
        "--password",
        "pw-ops",
    ];
    assert!(run_cli(&login, &ops).await.status.success());
    let out = run_cli(&["user", "list", "-o", "json"], &ops).await;
    assert_eq!(out.status.code(), Some(0));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let roles: Vec<(&str, &str)> = listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["name"].as_str().unwrap(), u["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            ("alice", "tenant"),
            ("bob", "tenant"),
            ("carol", "tenant"),
            ("ops", "operator")
        ]
    );
    assert_eq!(
        run_cli(&["user", "list"], &session).await.status.code(),
        Some(1),
        "a tenant may not"
    );
    let none = run_cli(&["login", "--server", &url, "--user", "bob"], &session).await;
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("--password-stdin"));
    let payload = dir.path().join("payload");
    std::fs::create_dir_all(&payload).unwrap();
    std::fs::write(payload.join("hello.txt"), "hi\n").unwrap();
    let push = ["files", "push", payload.to_str().unwrap(), "-n", "kept"];
    assert!(run_cli(&push, &session).await.status.success());

    // The ground restarts with the same users; alice's session still works.
    stop(ground).await;
    let ground = start(&args, &log).await;
    let out = run_cli(&["files", "ls", "kept"], &session).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "the session made before the restart still works"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("/hello.txt"));
    stop(ground).await;
}

#[tokio::test]
async fn a_database_url_of_another_engine_is_refused_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, "alice:pw-alice\n").unwrap();
    std::fs::set_permissions(&users, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let data = dir.path().join("ground");
    let key = data.join("keys/em.key");
    let out = run_cli(
        &["keygen", key.to_str().unwrap()],
        &dir.path().join("none.json"),
    )
    .await;
    assert!(out.status.success());
    let mut args = ground_args(&data, "127.0.0.1:0", &users);
    args.extend(["--database-url".into(), "mysql://u:secret@db/ground".into()]);
    let stderr = refused(&args).await;
    assert!(
        stderr.contains("database URL scheme 'mysql:' is not supported"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "{stderr}");
}

/// The ground on PostgreSQL (`ORBITDOCK_DATABASE_URL`) keeps users and sessions in the database:
/// a ground started on a new data directory with the same URL accepts the session made before.
#[tokio::test]
async fn on_postgres_a_session_outlives_the_data_directory() {
    let Some(server) = postgres::server_url() else {
        eprintln!("ORBITDOCK_TEST_POSTGRES_URL is not set: the ground is not run on PostgreSQL");
        return;
    };
    let database = postgres::TestDatabase::postgres(&server).await;
    let url = database.url().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, "alice:pw-alice\n").unwrap();
    std::fs::set_permissions(&users, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let session = dir.path().join("alice.json");
    // Both grounds serve the same address, one after the other, so the saved session finds the
    // second.
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let server_url = format!("http://{http}");
    for (round, data) in ["first", "second"].iter().enumerate() {
        let data = dir.path().join(data);
        let key = data.join("keys/em.key");
        let out = run_cli(
            &["keygen", key.to_str().unwrap()],
            &dir.path().join("none.json"),
        )
        .await;
        assert!(out.status.success());
        let mut args = ground_args(&data, &http, &users);
        args.extend(["--database-url".into(), url.to_string()]);
        let ground = start(&args, &dir.path().join("ground.log")).await;
        if round == 0 {
            let login = [
                "login",
                "--server",
                &server_url,
                "--user",
                "alice",
                "--password",
                "pw-alice",
            ];
            assert!(run_cli(&login, &session).await.status.success());
        }
        // The session made on the first ground works on both.
        let out = run_cli(&["op", "list", "-o", "json"], &session).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stop(ground).await;
        assert!(
            !data.join("ground.sqlite").exists(),
            "the ground made a SQLite database in {}",
            data.display()
        );
    }
}
