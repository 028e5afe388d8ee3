//! A whole orbitdock on 127.0.0.1 for end-to-end tests: ground (in-process, real SQLite), the link
//! emulator and the flight agent (in-process, real Docker Engine), each with its own ports and
//! directories, driven through the real `orbitdock` binary and the HTTP API.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_orbitdock");

/// An HTTP client for the tests' own requests. reqwest takes the process's rustls crypto
/// provider, which the CLI installs at start and a test process must install too.
pub(crate) fn http_client() -> reqwest::Client {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::new()
}

/// A free UDP port on 127.0.0.1 (bound and released; the window for a race is tiny).
pub(crate) fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A short random suffix so tenants, images and names never collide between tests and runs.
pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}{:08x}", rand::random::<u32>())
}

pub(crate) struct Stack {
    pub url: String,
    pub dir: TempDir,
    pub ground: ground::Ground,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The flight agent's configuration, to start it again (`start_flight`).
    flight_config: flight::FlightConfig,
    /// The flight agent, while it runs.
    flight: Option<tokio::task::JoinHandle<()>>,
}

impl Stack {
    pub(crate) async fn start() -> Stack {
        Stack::start_with(|g| g).await
    }

    /// The same, with the ground adjusted by `configure` before it serves.
    pub(crate) async fn start_with(
        configure: impl FnOnce(ground::Ground) -> ground::Ground,
    ) -> Stack {
        Stack::start_system("em", configure).await
    }

    /// The same with the one system (its link always up) named `system`: any name but `em` is
    /// a flight system, whose executions wait for an operator's approval.
    pub(crate) async fn start_system(
        system: &str,
        configure: impl FnOnce(ground::Ground) -> ground::Ground,
    ) -> Stack {
        let always = link::Contact::Always;
        Stack::start_flying(system, None, always, flight::ClockConfig::Host, configure).await
    }

    /// The same, with the system's orbit as the ground knows it, when its link is up (both
    /// ends), and the flight agent's mission clock.
    pub(crate) async fn start_flying(
        system: &str,
        orbit: Option<ground::SystemOrbit>,
        contact: link::Contact,
        clock: flight::ClockConfig,
        configure: impl FnOnce(ground::Ground) -> ground::Ground,
    ) -> Stack {
        seed_bases().await;
        let dir = tempfile::tempdir().unwrap();
        let (ground_udp, link_ground, link_flight, flight_udp) =
            (free_udp(), free_udp(), free_udp(), free_udp());
        let key = wire::LinkKey::from_bytes(rand::random());
        let signer = wire::PlanSigner::from_bytes(rand::random());
        let g = ground::Ground::open(ground::GroundConfig {
            data_dir: dir.path().join("ground"),
            database_url: None,
            s3: None,
            systems: vec![ground::SystemLink {
                name: system.into(),
                bind: ground_udp,
                link: link_ground,
                key: key.clone(),
                rate_bits_per_sec: None,
                contact: contact.clone(),
                orbit,
                link_settings: link::LinkSettings::STANDARD,
            }],
            plan_signer: signer.clone(),
        })
        .await
        .expect("ground opens");
        let g = configure(g);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut tasks = Vec::new();
        let g2 = g.clone();
        tasks.push(tokio::spawn(async move {
            ground::serve(g2, listener, async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
        }));
        tasks.push(tokio::spawn(async move {
            let config = link::EmulatorConfig {
                ground_side: link_ground,
                ground: ground_udp,
                flight_side: link_flight,
                flight: flight_udp,
                model: link::LinkModelConfig::ideal(Duration::from_millis(5)),
                seed: 1,
                time_scale: 1.0,
            };
            link::run_emulator(config, Arc::default()).await.unwrap();
        }));
        let flight_config = flight::FlightConfig {
            system: system.into(),
            state_dir: dir.path().join("flight/state"),
            volumes_dir: dir.path().join("flight/volumes"),
            bind: flight_udp,
            link: link_flight,
            key,
            rate_bits_per_sec: None,
            contact,
            plan_verifier: signer.verifier(),
            builder: wire::Builder::Classic,
            catalogue: None,
            limits: flight::DiskLimits::default(),
            quotas: flight::Quotas::none(),
            link_settings: link::LinkSettings::STANDARD,
            clock,
            telemetry: flight::telemetry::TelemetryConfig {
                listen: None,
                elements: None,
            },
        };
        let mut stack = Stack {
            url,
            dir,
            ground: g,
            tasks,
            stop: Some(stop_tx),
            flight_config,
            flight: None,
        };
        stack.start_flight();
        stack
    }

    /// Starts the flight agent (again), on its state and volumes folders.
    pub(crate) fn start_flight(&mut self) {
        let config = self.flight_config.clone();
        self.flight = Some(tokio::spawn(async move {
            flight::run(config).await.unwrap();
        }));
    }

    /// Stops the flight agent as a crash would (its tasks aborted, the pods it runs left
    /// running), and waits until its link port is free to bind again.
    pub(crate) async fn stop_flight(&mut self) {
        if let Some(f) = self.flight.take() {
            f.abort();
            let _ = f.await;
        }
        for _ in 0..600 {
            if link::udp_address_free(self.flight_config.bind).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the flight agent's port {} stayed bound",
            self.flight_config.bind
        );
    }

    /// Where the flight agent keeps `tenant`'s volume `volume`.
    pub(crate) fn volume(&self, tenant: &str, volume: &str) -> PathBuf {
        self.flight_config.volumes_dir.join(tenant).join(volume)
    }

    /// Creates an operator and returns a session file logged in as it.
    pub(crate) async fn operator(&self, name: &str) -> User {
        self.ground
            .ensure_user(name, &format!("pw-{name}"))
            .await
            .unwrap();
        self.ground
            .set_role(name, ground::Role::Operator)
            .await
            .unwrap();
        self.user(name).await
    }

    /// Creates a user and returns a session file logged in as it (through `orbitdock login`).
    pub(crate) async fn user(&self, name: &str) -> User {
        let password = format!("pw-{name}");
        self.ground.ensure_user(name, &password).await.unwrap();
        let session = self.dir.path().join(format!("{name}.session.json"));
        let user = User {
            name: name.to_string(),
            session,
            url: self.url.clone(),
            token: String::new(),
        };
        let out = user
            .cli(&[
                "login",
                "--server",
                &self.url,
                "--user",
                name,
                "--password",
                &password,
            ])
            .await;
        assert!(
            out.status.success(),
            "login failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let saved: Value = serde_json::from_slice(&std::fs::read(&user.session).unwrap()).unwrap();
        let current = saved["current"]
            .as_str()
            .expect("login makes its context current");
        User {
            token: saved["contexts"][current]["token"]
                .as_str()
                .unwrap()
                .to_string(),
            ..user
        }
    }
}

/// A ground alone, in-process on a free port, with no system: enough for the verbs that only
/// talk to its API (no Docker, no link).
pub(crate) struct GroundOnly {
    pub url: String,
    pub dir: TempDir,
    pub ground: ground::Ground,
    server: tokio::task::JoinHandle<()>,
}

impl GroundOnly {
    pub(crate) async fn start() -> GroundOnly {
        GroundOnly::start_serving(None).await
    }

    /// The same over HTTPS with `tls`: its URL is `https://127.0.0.1:PORT`.
    pub(crate) async fn start_tls(tls: ground::TlsConfig) -> GroundOnly {
        GroundOnly::start_serving(Some(tls)).await
    }

    async fn start_serving(tls: Option<ground::TlsConfig>) -> GroundOnly {
        let dir = tempfile::tempdir().unwrap();
        let ground = ground::Ground::open(ground::GroundConfig {
            data_dir: dir.path().join("ground"),
            database_url: None,
            s3: None,
            systems: Vec::new(),
            plan_signer: wire::PlanSigner::from_bytes(rand::random()),
        })
        .await
        .expect("ground opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let g = ground.clone();
        let server = tokio::spawn(async move {
            match tls {
                Some(tls) => ground::serve_tls(g, listener, tls, std::future::pending()).await,
                None => ground::serve(g, listener, std::future::pending()).await,
            }
            .unwrap();
        });
        GroundOnly {
            url,
            dir,
            ground,
            server,
        }
    }
}

impl Drop for GroundOnly {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        for t in &self.tasks {
            t.abort();
        }
        if let Some(f) = &self.flight {
            f.abort();
        }
    }
}

pub(crate) struct User {
    pub name: String,
    pub session: PathBuf,
    pub url: String,
    pub token: String,
}

impl User {
    /// Runs `orbitdock ARGS` as this user.
    pub(crate) async fn cli(&self, args: &[&str]) -> Output {
        run_cli(args, &self.session).await
    }

    pub(crate) fn http(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        http_client()
            .request(method, format!("{}{}", self.url, path))
            .bearer_auth(&self.token)
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        answer(self.http(reqwest::Method::GET, path)).await
    }

    /// `POST path` with `yaml` as the body (`application/yaml`), as `op apply|validate` send it.
    pub(crate) async fn post_yaml(&self, path: &str, yaml: &str) -> (u16, Value) {
        let rb = self
            .http(reqwest::Method::POST, path)
            .header("content-type", "application/yaml")
            .body(yaml.to_string());
        answer(rb).await
    }

    /// `POST path` with the JSON `body`.
    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        answer(self.http(reqwest::Method::POST, path).json(body)).await
    }

    /// `orbitdock plan SOURCE --system SYSTEM -o json`: an `api::UplinkPlan`, the answer of
    /// `POST /api/v1/plan` to the same request but for the instant it was made. Returns it.
    pub(crate) async fn plan_json(&self, source: &str, system: &str) -> Value {
        let (code, plan) = self.cli_json(&["plan", source, "--system", system]).await;
        assert_eq!(code, 0, "{plan:#}");
        assert_schema::<api::UplinkPlan>(&plan);
        let request = serde_json::json!({"system": system, "sources": [source]});
        let (status, api_plan) = self.post_json("/api/v1/plan", &request).await;
        assert_eq!(status, 200, "{api_plan:#}");
        assert_eq!(
            without_generated_at(&plan),
            without_generated_at(&api_plan),
            "plan -o json is the API's answer"
        );
        plan
    }

    /// Runs `orbitdock ARGS -o json` as this user: its exit status and its one JSON document.
    pub(crate) async fn cli_json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.cli(&all).await;
        (out.status.code().unwrap_or(-1), json_of(&out))
    }

    /// Applies `yaml` and executes it, waiting for the end; returns the execution.
    pub(crate) async fn run_operation(&self, dir: &Path, yaml: &str) -> Value {
        self.run_operation_with(dir, yaml, &[]).await
    }

    /// The same, with extra `exec start` flags (e.g. `--force`).
    pub(crate) async fn run_operation_with(&self, dir: &Path, yaml: &str, flags: &[&str]) -> Value {
        let op_file = dir.join(format!("{}.yaml", unique("op")));
        std::fs::write(&op_file, yaml).unwrap();
        let out = self.cli(&["op", "apply", op_file.to_str().unwrap()]).await;
        assert!(out.status.success(), "op apply failed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let name = stdout.split_whitespace().next().unwrap().to_string();
        let mut args = vec!["exec", "start", &name, "--wait"];
        args.extend_from_slice(flags);
        let out = self.cli(&args).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let id = stdout
            .lines()
            .find_map(|l| l.strip_prefix("execution "))
            .and_then(|l| l.split_whitespace().next())
            .expect("exec start prints the execution id")
            .to_string();
        let (status, exec) = self.get(&format!("/api/v1/executions/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(
            out.status.success(),
            exec["state"] == "COMPLETED",
            "exec start --wait exits 0 exactly when the execution succeeded"
        );
        exec
    }
}

/// The status and JSON body (`null` when there is none) of a request.
async fn answer(rb: reqwest::RequestBuilder) -> (u16, Value) {
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Standard output of a CLI run as its one JSON document.
pub(crate) fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Checks that `doc` is exactly a `T` of the `api` crate, the schema docs/cli.md gives the
/// verb: read into `T` (a missing or mistyped field fails, naming where) and written back, the
/// same document (so does a field `T` does not have, extra or renamed, or a `null` where `T`
/// leaves the field out). Returns the typed value.
pub(crate) fn assert_schema<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> T {
    let name = std::any::type_name::<T>();
    let typed: T = serde_path_to_error::deserialize(doc)
        .unwrap_or_else(|e| panic!("not a {name}: {e}\n{doc:#}"));
    let back = serde_json::to_value(&typed).unwrap();
    if let Some(at) = difference(doc, &back, "") {
        panic!("not exactly a {name}: at {at} the document differs from the type's\n{doc:#}");
    }
    typed
}

/// Checks that `doc` is an object with every key of `keys`, perhaps some of `optional`, and no
/// other (the documented shape of a verb with no API answer of its own).
pub(crate) fn assert_keys(doc: &Value, keys: &[&str], optional: &[&str]) {
    let object = doc
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {doc:#}"));
    for k in keys {
        assert!(object.contains_key(*k), "no key {k:?}: {doc:#}");
    }
    for k in object.keys() {
        assert!(
            keys.contains(&k.as_str()) || optional.contains(&k.as_str()),
            "an undocumented key {k:?}: {doc:#}"
        );
    }
}

/// Where `a` and `b` first differ, as a path (`/files/0/size`); `None` when they are equal.
fn difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.keys()
                .chain(y.keys())
                .find_map(|k| match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => difference(v, w, &format!("{at}/{k}")),
                    (v, _) => Some(format!(
                        "{at}/{k} (only in the {})",
                        if v.is_some() { "document" } else { "type" }
                    )),
                })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| difference(v, w, &format!("{at}/{i}"))),
        _ if a == b => None,
        _ => Some(format!("{at} ({a} against {b})")),
    }
}

/// `doc` without its `generated_at` (at the top, or in each element of an array): the instant
/// an answer was made, which two answers of the same question do not share.
pub(crate) fn without_generated_at(doc: &Value) -> Value {
    let mut doc = doc.clone();
    match &mut doc {
        Value::Array(items) => items.iter_mut().for_each(|i| {
            if let Some(o) = i.as_object_mut() {
                o.remove("generated_at");
            }
        }),
        Value::Object(o) => {
            o.remove("generated_at");
        }
        _ => {}
    }
    doc
}

/// Builds the stand-in base images once per test binary (idempotent across binaries).
pub(crate) async fn seed_bases() {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        standins::seed_bases(&mut |l| eprintln!("seed: {l}"))
            .await
            .expect("stand-in base images build");
    })
    .await;
}

/// Compiles a C program statically: the kind of payload the seed guide recommends.
pub(crate) fn gcc_static(source: &str, out: &Path) {
    let src = out.with_extension("c");
    std::fs::write(&src, source).unwrap();
    let status = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(out)
        .arg(&src)
        .status()
        .expect("gcc runs");
    assert!(status.success(), "gcc -static failed");
    std::fs::remove_file(src).unwrap();
}

/// Runs `docker ARGS`, asserting it succeeds; returns its standard output.
pub(crate) fn docker(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The engine's id of `image`, if it has that image.
pub(crate) fn inspect_id(image: &str) -> Option<String> {
    let out = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `sha256:<hex>` of the config a `docker save` archive's manifest names: the image id.
pub(crate) fn config_digest(archive: &Path) -> String {
    use std::io::Read;
    let mut members = std::collections::HashMap::new();
    let mut a = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            members.insert(name, bytes);
        }
    }
    let manifest: Value = serde_json::from_slice(&members["manifest.json"]).unwrap();
    let config = manifest[0]["Config"]
        .as_str()
        .expect("the manifest names a config");
    wire::Digest::of(&members[config]).to_string()
}

/// Builds `image`: the C `program`, linked statically, on `base`; saves it to `archive` and
/// removes it from this engine (which the flight agent shares: only a load brings it back).
/// Returns the image id, checked to be the sha256 of the config the archive describes.
pub(crate) fn build_and_save(
    dir: &Path,
    base: &str,
    program: &str,
    image: &str,
    archive: &Path,
) -> String {
    let ctx = dir.join(unique("ctx"));
    std::fs::create_dir_all(&ctx).unwrap();
    gcc_static(program, &ctx.join("app"));
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY app /app\nENTRYPOINT [\"/app\"]\n"),
    )
    .unwrap();
    docker(&[
        "build",
        "-q",
        "--network",
        "none",
        "--label",
        "org.orbitdock.test=1",
        "-t",
        image,
        ctx.to_str().unwrap(),
    ]);
    docker(&["save", "-o", archive.to_str().unwrap(), image]);
    let built = inspect_id(image).expect("built");
    docker(&["rmi", image]);
    let id = config_digest(archive);
    assert_eq!(
        id, built,
        "the archive's config digest is the engine's image id"
    );
    id
}

/// Pushes `archive` as `/image.tar` of `ns` through the CLI (a new version each time).
pub(crate) async fn push_archive(user: &User, dir: &Path, ns: &str, archive: &Path) {
    let folder = dir.join(unique("push"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(archive, folder.join("image.tar")).unwrap();
    let out = user
        .cli(&["files", "push", folder.to_str().unwrap(), "--namespace", ns])
        .await;
    assert!(out.status.success());
}

/// Removes every image and container of a test tenant, even when the test failed.
pub(crate) struct DockerCleanup {
    pub tenants: Vec<String>,
    pub images: Vec<String>,
}

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        for t in &self.tenants {
            let ids = std::process::Command::new("docker")
                .args([
                    "ps",
                    "-aq",
                    "--filter",
                    &format!("label=org.orbitdock.tenant={t}"),
                ])
                .output();
            if let Ok(o) = ids {
                for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = std::process::Command::new("docker")
                        .args(["rm", "-f", id])
                        .output();
                }
            }
            let imgs = std::process::Command::new("docker")
                .args([
                    "images",
                    "--format",
                    "{{.Repository}}:{{.Tag}}",
                    &format!("tenants/{t}/*"),
                ])
                .output();
            if let Ok(o) = imgs {
                for i in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = std::process::Command::new("docker")
                        .args(["rmi", "-f", i])
                        .output();
                }
            }
        }
        for i in &self.images {
            let _ = std::process::Command::new("docker")
                .args(["rmi", "-f", i])
                .output();
        }
    }
}

/// Finds the error of task `task` in an execution.
pub(crate) fn task_error<'a>(exec: &'a Value, task: &str) -> &'a Value {
    exec["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == task)
        .map(|t| &t["error"])
        .unwrap_or_else(|| panic!("no task {task} in {exec:#}"))
}

/// Runs `orbitdock ARGS` with the session file `session`, echoing what it printed.
pub(crate) async fn run_cli(args: &[&str], session: &Path) -> Output {
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .env("ORBITDOCK_SESSION", session)
        .env_remove("ORBITDOCK_PASSWORD")
        .output()
        .await
        .unwrap();
    eprintln!(
        "$ orbitdock {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `tle` with its epoch `minutes` later (the satellite a little further back along its orbit),
/// its checksum made again: a newer set of the same satellite, as an operator sends one.
pub(crate) fn later(tle: &orbit::Tle, minutes: f64) -> orbit::Tle {
    let e = orbit::elements_of(tle);
    let day: f64 = e.line1[20..32].trim().parse().unwrap();
    let mut line1 = format!(
        "{}{:012.8}{}",
        &e.line1[..20],
        day + minutes / 1440.0,
        &e.line1[32..68]
    );
    let sum: u32 = line1
        .chars()
        .map(|c| match c {
            '-' => 1,
            c => c.to_digit(10).unwrap_or(0),
        })
        .sum();
    line1.push(char::from_digit(sum % 10, 10).unwrap());
    orbit::Tle::parse(e.name.as_deref(), &line1, &e.line2).unwrap()
}
