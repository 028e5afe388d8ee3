//! The three real processes (`orbitdock ground`, `link`, `flight`), started on fixed ports and
//! state directories so that a process killed with SIGKILL can be started again on the same state.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::{BIN, free_udp};

/// Which process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Ground,
    Flight,
}

/// Addresses, folders and keys of one orbitdock on 127.0.0.1.
pub(crate) struct Layout {
    pub(crate) root: PathBuf,
    pub(crate) http: SocketAddr,
    ground_udp: SocketAddr,
    link_ground: SocketAddr,
    link_flight: SocketAddr,
    flight_udp: SocketAddr,
}

impl Layout {
    /// Picks free ports and makes the link key and the plan-signing key with `orbitdock keygen`.
    pub(crate) fn new(root: &Path) -> Layout {
        let http = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let layout = Layout {
            root: root.to_path_buf(),
            http,
            ground_udp: free_udp(),
            link_ground: free_udp(),
            link_flight: free_udp(),
            flight_udp: free_udp(),
        };
        let keys = layout.keys();
        for args in [
            vec![
                "keygen".to_string(),
                keys.join("em.key").display().to_string(),
            ],
            vec![
                "keygen".to_string(),
                "--plan".to_string(),
                keys.join("plan.key").display().to_string(),
            ],
        ] {
            let out = Command::new(BIN).args(&args).output().unwrap();
            assert!(out.status.success(), "orbitdock {args:?} failed");
        }
        layout
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }

    pub(crate) fn ground_dir(&self) -> PathBuf {
        self.root.join("ground")
    }

    pub(crate) fn flight_state(&self) -> PathBuf {
        self.root.join("flight/state")
    }

    pub(crate) fn flight_volumes(&self) -> PathBuf {
        self.root.join("flight/volumes")
    }

    pub(crate) fn log(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.log"))
    }

    /// Starts a process of `role` (its output appended to its log file).
    pub(crate) fn spawn(&self, role: Role, user: &str, password: &str) -> Child {
        let mut cmd = Command::new(BIN);
        match role {
            Role::Ground => {
                cmd.arg("ground")
                    .arg("--data-dir")
                    .arg(self.ground_dir())
                    .arg("--http")
                    .arg(self.http.to_string())
                    .arg("--system")
                    .arg(format!("em={},{}", self.ground_udp, self.link_ground))
                    .arg("--keys")
                    .arg(self.keys())
                    .env("ORBITDOCK_USERS", format!("{user}:{password}"));
            }
            Role::Flight => {
                cmd.arg("flight")
                    .arg("--system")
                    .arg("em")
                    .arg("--state-dir")
                    .arg(self.flight_state())
                    .arg("--volumes-dir")
                    .arg(self.flight_volumes())
                    .arg("--udp")
                    .arg(self.flight_udp.to_string())
                    .arg("--link")
                    .arg(self.link_flight.to_string())
                    .arg("--key-file")
                    .arg(self.keys().join("em.key"))
                    .arg("--plan-public-key")
                    .arg(self.keys().join("plan.key.pub"));
            }
        }
        self.start(cmd, role_name(role))
    }

    /// Starts the link emulator (ideal link, 5 ms each way); it is never killed.
    pub(crate) fn spawn_link(&self) -> Child {
        let mut cmd = Command::new(BIN);
        cmd.args(["link", "--delay-ms", "5", "--seed", "1"])
            .arg("--ground-side")
            .arg(self.link_ground.to_string())
            .arg("--ground")
            .arg(self.ground_udp.to_string())
            .arg("--flight-side")
            .arg(self.link_flight.to_string())
            .arg("--flight")
            .arg(self.flight_udp.to_string());
        self.start(cmd, "link")
    }

    fn start(&self, mut cmd: Command, name: &str) -> Child {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(name))
            .unwrap();
        cmd.env("ORBITDOCK_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start orbitdock {name}: {e}"))
    }

    /// The last `lines` lines of a process's log, to print when something fails.
    pub(crate) fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log(name)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Ground => "ground",
        Role::Flight => "flight",
    }
}

/// SIGKILL, then reaps the process.
pub(crate) fn kill9(child: &mut Child) {
    // SAFETY: signalling our own child by its pid; it has not been reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// SIGTERM, then reaps the process (the end of the test).
pub(crate) fn stop(child: &mut Child) {
    // SAFETY: as in `kill9`.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = child.wait();
}

/// Stops every process it holds when dropped, even when the test panicked.
pub(crate) struct Processes {
    pub(crate) ground: Option<Child>,
    pub(crate) flight: Option<Child>,
    pub(crate) link: Option<Child>,
}

impl Processes {
    pub(crate) fn slot(&mut self, role: Role) -> &mut Option<Child> {
        match role {
            Role::Ground => &mut self.ground,
            Role::Flight => &mut self.flight,
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for c in [&mut self.ground, &mut self.flight, &mut self.link]
            .into_iter()
            .flatten()
        {
            kill9(c);
        }
    }
}
