//! `orbitdock bench ground` as a bounded load test (issue 16): 200 concurrent clients upload,
//! apply, execute and poll against one ground on SQLite, and on PostgreSQL against one replica
//! and two sharing the database, with no request failing. The command exits with status 1 and
//! names the first failure when any request fails. Its figures are a benchmark
//! (docs/benchmarks.md), not asserted here.

use std::process::Command;

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../../ground/tests/common/postgres.rs"]
mod postgres;

const BIN: &str = env!("CARGO_BIN_EXE_orbitdock");

#[test]
fn two_hundred_clients_load_one_replica_and_two_without_an_error() {
    let mut cmd = Command::new(BIN);
    cmd.args(["bench", "ground", "--clients", "200", "--seconds", "3"])
        .env_remove("ORBITDOCK_BENCH_POSTGRES_URL");
    let server = postgres::server_url();
    if let Some(server) = &server {
        cmd.args(["--postgres", server]);
    } else {
        eprintln!("ORBITDOCK_TEST_POSTGRES_URL is not set: SQLite only");
    }
    let out = cmd.output().expect("run orbitdock");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench ground failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let mut rows = vec![("SQLite", "1")];
    if server.is_some() {
        rows.extend([("PostgreSQL", "1"), ("PostgreSQL", "2")]);
    }
    for (database, replicas) in rows {
        let row = stdout
            .lines()
            .find(|l| {
                let mut cols = l.split_whitespace();
                cols.next() == Some(database) && cols.next() == Some(replicas)
            })
            .unwrap_or_else(|| panic!("no row for {database} × {replicas}:\n{stdout}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        let requests: u64 = cols[2].parse().unwrap();
        assert!(requests >= 200, "every client made requests: {row}");
        assert_eq!(cols.last(), Some(&"0"), "no request failed: {row}");
    }
}
