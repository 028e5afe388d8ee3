//! The README's five-minute tutorial, as written, against `orbitdock demo` started as a newcomer
//! would (only the ports and directories differ, so that tests can run side by side).

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use support::{BIN, DockerCleanup};

/// The shell block between the tutorial markers of README.md.
fn tutorial_script() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("<!-- tutorial:start -->")
        .expect("README has a tutorial start marker");
    let end = readme
        .find("<!-- tutorial:end -->")
        .expect("README has a tutorial end marker");
    let block = &readme[start..end];
    let body_start = block.find("```sh\n").expect("the tutorial is a sh block") + 6;
    let body_end = block.rfind("```").unwrap();
    block[body_start..body_end].to_string()
}

/// Eight consecutive free UDP ports and a free TCP port.
fn free_ports() -> (u16, u16) {
    loop {
        let base = 20_000 + (rand::random::<u16>() % 30_000);
        let all_free = (0..8).all(|i| std::net::UdpSocket::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            let http = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            return (base, http);
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tutorial_works_as_written() {
    support::seed_bases().await;
    let _cleanup = DockerCleanup {
        tenants: vec!["demo".into()],
        images: vec![],
    };
    let dir = tempfile::tempdir().unwrap();
    let (udp_base, http) = free_ports();

    // A checkout as the newcomer has it: examples/ and the binary at target/release/orbitdock.
    let repo = dir.path().join("repo");
    copy_dir(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples")),
        &repo.join("examples"),
    );
    let _ = std::fs::remove_file(repo.join("examples/hello-space/payload/hello-space"));
    std::fs::create_dir_all(repo.join("target/release")).unwrap();
    std::os::unix::fs::symlink(BIN, repo.join("target/release/orbitdock")).unwrap();

    let mut demo = tokio::process::Command::new(BIN)
        .args(["demo", "--data-dir"])
        .arg(dir.path().join("demo"))
        .args([
            "--http",
            &format!("127.0.0.1:{http}"),
            "--udp-base",
            &udp_base.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{http}");
    let mut up = false;
    for _ in 0..300 {
        if let Ok(r) = support::http_client()
            .get(format!("{url}/healthz"))
            .send()
            .await
            && r.status().is_success()
        {
            up = true;
            break;
        }
        assert!(
            demo.try_wait().unwrap().is_none(),
            "demo exited during start-up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the demo's ground answers");

    let script = tutorial_script().replace("127.0.0.1:7700", &format!("127.0.0.1:{http}"));
    let out = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&repo)
        .env("ORBITDOCK_SESSION", dir.path().join("session.json"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the tutorial's commands succeed");
    let hello = std::fs::read_to_string(repo.join("hello.txt")).unwrap();
    assert_eq!(
        hello,
        "Hello from orbit! The ground said: greetings from the ground segment\n"
    );
    assert!(stdout.contains("Hello from orbit!"), "cat shows the result");

    // SIGTERM stops the demo and its three processes.
    let pid = demo.id().unwrap() as i32;
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), demo.wait())
        .await
        .expect("demo stops")
        .unwrap();
    assert!(status.success(), "demo exits cleanly on SIGTERM: {status}");
}
