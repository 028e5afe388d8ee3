//! Test harness: a ground on a temporary directory, driven through `app()` with `oneshot`.
//!
//! The ground's database is `ground.sqlite` in that directory, or, when
//! `ORBITDOCK_TEST_DATABASE=postgres`, a fresh PostgreSQL database made for the test on the server
//! `ORBITDOCK_TEST_POSTGRES_URL` names and dropped with it (`.ci/run` starts one and runs the
//! ground's tests both ways). With `ORBITDOCK_TEST_BLOBS=s3` its blobs are kept in an
//! S3-compatible store too (`s3.rs`).

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use ground::{Ground, GroundConfig, SystemLink};
use serde_json::Value;
use tower::ServiceExt;

pub mod flight;
pub mod postgres;
pub mod s3;

pub use postgres::TestDatabase;

pub struct TestGround {
    pub ground: Ground,
    pub dir: tempfile::TempDir,
    pub database: TestDatabase,
}

/// The tests' plan-signing key (its public key is [`verifier`]'s).
pub fn signer() -> wire::PlanSigner {
    wire::PlanSigner::from_bytes([42; 32])
}

/// The public key flight agents check plans against.
#[allow(dead_code)]
pub fn verifier() -> wire::PlanVerifier {
    signer().verifier()
}

/// A ground with users `alice` and `bob` (password `pw-<name>`) and the given systems.
pub async fn ground_with(systems: Vec<SystemLink>) -> TestGround {
    ground_on(TestDatabase::for_test().await, systems).await
}

/// A ground with users `alice` and `bob` on `database`.
pub async fn ground_on(database: TestDatabase, systems: Vec<SystemLink>) -> TestGround {
    let dir = tempfile::tempdir().unwrap();
    let ground = Ground::open(config(&dir, &database, systems))
        .await
        .unwrap();
    ground.ensure_user("alice", "pw-alice").await.unwrap();
    ground.ensure_user("bob", "pw-bob").await.unwrap();
    TestGround {
        ground,
        dir,
        database,
    }
}

/// The configuration of a test ground on `dir` and `database`.
pub fn config(
    dir: &tempfile::TempDir,
    database: &TestDatabase,
    systems: Vec<SystemLink>,
) -> GroundConfig {
    GroundConfig {
        data_dir: dir.path().to_path_buf(),
        database_url: database.url().map(str::to_string),
        s3: s3::for_dir(dir.path()),
        systems,
        plan_signer: signer(),
    }
}

/// Applies and starts `op` in namespace `demo` (two listings) as the user of `token`; returns
/// the execution's id.
pub async fn start_listings(g: &TestGround, token: &str, op: &str) -> String {
    let yaml = format!(
        "id: {op}\nnamespace: demo\ntasks:\n- id: one\n  type: files.list\n- id: two\n  type: files.list\n"
    );
    let r = g.post_yaml("/api/v1/operations", token, &yaml).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = g
        .post_json(
            "/api/v1/executions",
            Some(token),
            serde_json::json!({"namespace": "demo", "operation": op}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

/// `g` served on a loopback socket as `ground::serve` serves it: its address, what stops it
/// (send `()`), and the server's task, which ends once it stopped.
pub async fn serve(
    g: &TestGround,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ground::serve(g.ground.clone(), listener, async move {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

/// A ground whose `em` link points at a port nobody listens on.
pub async fn ground() -> TestGround {
    ground_with(vec![unreachable_system("em")]).await
}

/// A system whose link points at a port nobody listens on, always in contact.
pub fn unreachable_system(name: &str) -> SystemLink {
    SystemLink {
        name: name.into(),
        bind: "127.0.0.1:0".parse().unwrap(),
        link: "127.0.0.1:9".parse().unwrap(),
        key: wire::LinkKey::from_bytes([7; 32]),
        rate_bits_per_sec: None,
        contact: link::Contact::Always,
        orbit: None,
        link_settings: link::LinkSettings::STANDARD,
    }
}

/// A UDP port free at the time of asking.
pub fn free_udp_addr() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the answer's status and that its body says `says`.
    #[track_caller]
    pub fn assert_answer(&self, status: StatusCode, says: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert!(self.text().contains(says), "{}", self.text());
    }
}

impl TestGround {
    /// Stops this ground and opens another on the same data directory, as after a restart.
    pub async fn reopen(self, systems: Vec<SystemLink>) -> TestGround {
        let TestGround {
            ground,
            dir,
            database,
        } = self;
        drop(ground);
        let ground = Ground::open(config(&dir, &database, systems))
            .await
            .unwrap();
        TestGround {
            ground,
            dir,
            database,
        }
    }

    /// The same ground changed by `f` (a builder such as `with_declarations`).
    pub fn with(self, f: impl FnOnce(Ground) -> Ground) -> TestGround {
        TestGround {
            ground: f(self.ground),
            ..self
        }
    }

    pub fn app(&self) -> Router {
        self.ground.app()
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.app().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = axum::body::to_bytes(res.into_body(), 64 << 20)
            .await
            .unwrap()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    pub async fn get(&self, uri: &str, token: &str) -> Reply {
        self.call(Method::GET, uri, Some(token), None, Vec::new())
            .await
    }

    pub async fn post_json(&self, uri: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(
            Method::POST,
            uri,
            token,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    pub async fn post_yaml(&self, uri: &str, token: &str, yaml: &str) -> Reply {
        self.call(
            Method::POST,
            uri,
            Some(token),
            Some("application/yaml"),
            yaml.as_bytes().to_vec(),
        )
        .await
    }

    pub async fn upload_tar(&self, ns: &str, query: &str, token: &str, tar: Vec<u8>) -> Reply {
        let uri = format!("/api/v1/namespaces/{ns}/files{query}");
        self.call(
            Method::POST,
            &uri,
            Some(token),
            Some("application/x-tar"),
            tar,
        )
        .await
    }

    pub async fn login(&self, user: &str) -> String {
        let r = self
            .post_json(
                "/api/v1/login",
                None,
                serde_json::json!({"user": user, "password": format!("pw-{user}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()["token"].as_str().unwrap().to_string()
    }

    /// Every blob in the store.
    pub fn blob_count(&self) -> usize {
        count_files(&self.dir.path().join("blobs"))
    }

    pub fn tmp_count(&self) -> usize {
        count_files(&self.dir.path().join("tmp"))
    }
}

fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| {
            if e.path().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// One tar entry to build, with its name written raw (so tests can build archives a careful
/// writer would refuse).
pub enum Entry<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    Fifo(&'a str),
}

pub fn tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, data, kind, mode, link): (&str, &[u8], tar::EntryType, u32, Option<&str>) =
            match e {
                Entry::File(n, d, m) => (n, d, tar::EntryType::Regular, *m, None),
                Entry::Dir(n) => (n, b"", tar::EntryType::Directory, 0o755, None),
                Entry::Symlink(n, t) => (n, b"", tar::EntryType::Symlink, 0o777, Some(t)),
                Entry::HardLink(n, t) => (n, b"", tar::EntryType::Link, 0o644, Some(t)),
                Entry::Fifo(n) => (n, b"", tar::EntryType::Fifo, 0o644, None),
            };
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A multipart body with one `file` part per (filename, content).
pub fn multipart(boundary: &str, parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (field, filename, data) in parts {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}
