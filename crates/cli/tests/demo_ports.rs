//! `orbitdock demo` on a taken address says which address, what it is for and which flag moves
//! it, before it starts anything (papercut 5: it used to say only that a child process stopped).

mod support;

use std::net::{TcpListener, UdpSocket};
use std::process::Command;

use support::BIN;

/// A free TCP port, and the first of eight consecutive free UDP ports.
fn free_ports() -> (u16, u16) {
    loop {
        let base = 20_000 + (rand::random::<u16>() % 30_000);
        if (0..8).all(|i| UdpSocket::bind(("127.0.0.1", base + i)).is_ok()) {
            let http = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            return (http, base);
        }
    }
}

/// Runs the demo on these ports; returns its stderr after checking that it failed and left no
/// state behind.
fn demo(http: u16, udp_base: u16) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let out = Command::new(BIN)
        .arg("demo")
        .arg("--data-dir")
        .arg(&data)
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--udp-base", &udp_base.to_string()])
        .args(["--password", "not-used"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the demo started: {stderr}");
    assert!(!data.exists(), "nothing is written before the check");
    stderr
}

#[test]
fn a_taken_http_address_is_named() {
    let (_, udp_base) = free_ports();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let stderr = demo(addr.port(), udp_base);
    assert!(
        stderr.contains(&format!(
            "{addr} (the ground's HTTP API and dashboard) is not free"
        )) && stderr.contains("--http"),
        "{stderr}"
    );
}

#[test]
fn a_taken_udp_port_is_named() {
    let (http, udp_base) = free_ports();
    let taken = UdpSocket::bind(("127.0.0.1", udp_base + 3)).unwrap();
    let addr = taken.local_addr().unwrap();
    let stderr = demo(http, udp_base);
    assert!(
        stderr.contains(&format!("{addr} (UDP, em's flight agent) is not free"))
            && stderr.contains("--udp-base"),
        "{stderr}"
    );
}
