//! `orbitdock bench ground`: the ground's API under load, over HTTP on loopback.
//!
//! Each of `clients` concurrent clients, for `seconds`, does what a tenant's CI does, again and
//! again: uploads a file into its namespace (a new version each time), applies an operation
//! that uplinks it, starts an execution of it and polls the execution three times. The clients
//! belong to ten tenants, each signed in once. Grounds serve on loopback ports in this process,
//! as `orbitdock ground` serves (`ground::serve`); the system they execute on answers on no link,
//! so executions stay scheduled with their plans queued: what is measured is the ground.
//!
//! Rows: SQLite with one ground; and, given a PostgreSQL server (`--postgres URL`), one replica
//! and two replicas on one database (a fresh one, made with the `C` collation the ground needs
//! and dropped afterwards), the clients spread over the replicas in turn. The replicas share
//! the database; each has its own data directory (blobs, link sessions), so each client keeps
//! to one replica, as behind a load balancer with sticky sessions.
//!
//! It prints requests per second and latency percentiles per row, and exits with status 1 if
//! any request failed (with the first failure), so a run is also a load test.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::Connection;
use tokio::sync::Mutex;

/// Tenants the clients belong to.
const TENANTS: usize = 10;
/// Polls of each execution.
const POLLS: usize = 3;

/// What one row measured.
struct Row {
    name: String,
    replicas: usize,
    requests: Vec<(Kind, Duration)>,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
}

/// The kinds of request a client makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Upload,
    Apply,
    Start,
    Poll,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Upload, Kind::Apply, Kind::Start, Kind::Poll];

    fn name(self) -> &'static str {
        match self {
            Kind::Upload => "upload",
            Kind::Apply => "apply",
            Kind::Start => "start",
            Kind::Poll => "poll",
        }
    }
}

pub(crate) async fn run(
    clients: usize,
    seconds: u64,
    postgres: Option<String>,
) -> anyhow::Result<ExitCode> {
    if clients == 0 || seconds == 0 {
        bail!("--clients and --seconds must be at least 1");
    }
    let duration = Duration::from_secs(seconds);
    let mut rows = vec![measure("SQLite", None, 1, clients, duration).await?];
    match &postgres {
        Some(server) => {
            for replicas in [1, 2] {
                let db = BenchDatabase::create(server).await?;
                let row = measure("PostgreSQL", Some(&db.url), replicas, clients, duration).await;
                db.drop_it().await;
                rows.push(row?);
            }
        }
        None => eprintln!(
            "no PostgreSQL server given (--postgres URL or ORBITDOCK_BENCH_POSTGRES_URL): SQLite only"
        ),
    }
    print_table(&rows, clients, duration);
    let failed: u64 = rows.iter().map(|r| r.errors).sum();
    if failed > 0 {
        for r in rows.iter().filter(|r| r.errors > 0) {
            eprintln!(
                "{} × {}: {} failed requests, the first: {}",
                r.name,
                r.replicas,
                r.errors,
                r.first_error.as_deref().unwrap_or("?")
            );
        }
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// One row: `replicas` grounds on the database at `url` (SQLite in the data directory when
/// `None`), loaded by `clients` clients for `duration`.
async fn measure(
    name: &str,
    url: Option<&str>,
    replicas: usize,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Row> {
    eprintln!("{name}, {replicas} replica(s), {clients} clients for {duration:?}…");
    let dir = tempfile::tempdir()?;
    let mut urls = Vec::new();
    let mut stops = Vec::new();
    let mut servers = Vec::new();
    for replica in 0..replicas {
        let g = open_ground(&dir.path().join(format!("replica{replica}")), url).await?;
        if replica == 0 {
            for t in 0..TENANTS {
                g.ensure_user(&format!("tenant{t}"), "bench-password")
                    .await?;
            }
        }
        let listener = ground::bind_http(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        urls.push(format!("http://{}", listener.local_addr()?));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        servers.push(tokio::spawn(ground::serve(g, listener, async {
            let _ = stopped.await;
        })));
    }
    // One connection per client, kept alive.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let mut tokens = Vec::new();
    for t in 0..TENANTS {
        let login: api::LoginResponse = http
            .post(format!("{}/api/v1/login", urls[t % urls.len()]))
            .json(&api::LoginRequest {
                user: format!("tenant{t}"),
                password: "bench-password".into(),
            })
            .send()
            .await?
            .error_for_status()
            .context("signing in")?
            .json()
            .await?;
        tokens.push(login.token);
    }

    let shared = Arc::new(Shared {
        http,
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = Client {
            shared: shared.clone(),
            url: urls[c % urls.len()].clone(),
            token: tokens[c % TENANTS].clone(),
            namespace: format!("c{c}"),
        };
        tasks.push(tokio::spawn(async move { client.run(until).await }));
    }
    let mut requests = Vec::new();
    for t in tasks {
        requests.extend(t.await.context("a client stopped")?);
    }
    let elapsed = started.elapsed();
    for stop in stops {
        let _ = stop.send(());
    }
    for s in servers {
        s.await.ok();
    }
    let errors = shared.errors.load(Ordering::Relaxed);
    let first_error = shared.first_error.lock().await.take();
    Ok(Row {
        name: name.to_string(),
        replicas,
        requests,
        errors,
        first_error,
        elapsed,
    })
}

/// A ground in `dir` on the database at `url`: one system, `em`, whose link answers nowhere.
async fn open_ground(dir: &std::path::Path, url: Option<&str>) -> anyhow::Result<ground::Ground> {
    let nowhere = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let g = ground::Ground::open(ground::GroundConfig {
        data_dir: dir.join("ground"),
        database_url: url.map(str::to_string),
        s3: None,
        systems: vec![ground::SystemLink {
            name: "em".into(),
            bind: nowhere(0),
            link: nowhere(9),
            key: wire::LinkKey::from_bytes(rand::random()),
            rate_bits_per_sec: None,
            contact: link::Contact::Windows(Vec::new()),
            orbit: None,
            link_settings: link::LinkSettings::STANDARD,
        }],
        plan_signer: wire::PlanSigner::from_bytes(rand::random()),
    })
    .await
    .context("opening a ground")?;
    Ok(g)
}

/// What the clients of a row share.
struct Shared {
    http: reqwest::Client,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// One client: its replica, tenant and namespace.
struct Client {
    shared: Arc<Shared>,
    url: String,
    token: String,
    namespace: String,
}

impl Client {
    /// Rounds of upload, apply, start and polls until `until`; each request's kind and time.
    async fn run(self, until: Instant) -> Vec<(Kind, Duration)> {
        let mut times = Vec::new();
        let yaml = format!(
            "id: job\nnamespace: {ns}\nsystem: em\ntasks:\n  - id: up\n    type: uplink\n    source: /in\n    destination: /\n",
            ns = self.namespace
        );
        let mut round = 0u64;
        while Instant::now() < until {
            round += 1;
            let tar = match one_file_tar(round) {
                Ok(t) => t,
                Err(e) => {
                    self.failed(format!("making the upload: {e}")).await;
                    break;
                }
            };
            let upload = self
                .shared
                .http
                .post(format!(
                    "{}/api/v1/namespaces/{}/files",
                    self.url, self.namespace
                ))
                .header("content-type", "application/x-tar")
                .body(tar);
            if self.time(Kind::Upload, upload, &mut times).await.is_none() {
                continue;
            }
            let apply = self
                .shared
                .http
                .post(format!("{}/api/v1/operations", self.url))
                .header("content-type", "application/yaml")
                .body(yaml.clone());
            if self.time(Kind::Apply, apply, &mut times).await.is_none() {
                continue;
            }
            let start = self
                .shared
                .http
                .post(format!("{}/api/v1/executions", self.url))
                .json(&api::StartExecution {
                    revision: None,
                    namespace: self.namespace.clone(),
                    operation: "job".into(),
                    system: None,
                    force: false,
                });
            let Some(body) = self.time(Kind::Start, start, &mut times).await else {
                continue;
            };
            let execution: api::Execution = match serde_json::from_slice(&body) {
                Ok(e) => e,
                Err(e) => {
                    self.failed(format!("the started execution did not parse: {e}"))
                        .await;
                    continue;
                }
            };
            for _ in 0..POLLS {
                let poll = self
                    .shared
                    .http
                    .get(format!("{}/api/v1/executions/{}", self.url, execution.id));
                self.time(Kind::Poll, poll, &mut times).await;
            }
        }
        times
    }

    /// Sends `request` with the client's token and times it; the body of a success.
    async fn time(
        &self,
        kind: Kind,
        request: reqwest::RequestBuilder,
        times: &mut Vec<(Kind, Duration)>,
    ) -> Option<Vec<u8>> {
        let t = Instant::now();
        let answer = async {
            let r = request.bearer_auth(&self.token).send().await?;
            let status = r.status();
            let body = r.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        let took = t.elapsed();
        match answer {
            Ok((status, body)) if status.is_success() => {
                times.push((kind, took));
                Some(body.to_vec())
            }
            Ok((status, body)) => {
                let text = String::from_utf8_lossy(&body);
                self.failed(format!("{} answered {status}: {text}", kind.name()))
                    .await;
                None
            }
            Err(e) => {
                self.failed(format!("{}: {e}", kind.name())).await;
                None
            }
        }
    }

    async fn failed(&self, what: String) {
        self.shared.errors.fetch_add(1, Ordering::Relaxed);
        self.shared.first_error.lock().await.get_or_insert(what);
    }
}

/// A tar of one small file, `in/data.txt`, different in each round.
fn one_file_tar(round: u64) -> std::io::Result<Vec<u8>> {
    let data = format!("round {round} of the ground bench\n");
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "in/data.txt", data.as_bytes())?;
    tar.into_inner()
}

fn print_table(rows: &[Row], clients: usize, duration: Duration) {
    println!(
        "The ground's API on loopback: {clients} concurrent clients for {} s each row (upload, apply, start, {POLLS} polls per round)",
        duration.as_secs()
    );
    println!(
        "{:<12} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "database",
        "replicas",
        "requests",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "errors"
    );
    for r in rows {
        let mut all: Vec<Duration> = r.requests.iter().map(|(_, d)| *d).collect();
        all.sort();
        println!(
            "{:<12} {:>8} {:>9} {:>8.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7}",
            r.name,
            r.replicas,
            all.len(),
            all.len() as f64 / r.elapsed.as_secs_f64(),
            ms(percentile(&all, 0.50)),
            ms(percentile(&all, 0.95)),
            ms(percentile(&all, 0.99)),
            ms(all.last().copied().unwrap_or_default()),
            r.errors,
        );
    }
    println!();
    println!("p50 / p95 ms by request");
    print!("{:<12} {:>8}", "database", "replicas");
    for k in Kind::ALL {
        print!(" {:>15}", k.name());
    }
    println!();
    for r in rows {
        print!("{:<12} {:>8}", r.name, r.replicas);
        for k in Kind::ALL {
            let mut times: Vec<Duration> = r
                .requests
                .iter()
                .filter(|(kind, _)| *kind == k)
                .map(|(_, d)| *d)
                .collect();
            times.sort();
            let cell = format!(
                "{:.1} / {:.1}",
                ms(percentile(&times, 0.50)),
                ms(percentile(&times, 0.95))
            );
            print!(" {cell:>15}");
        }
        println!();
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `q` quantile of sorted `times` (nearest rank); zero when there are none.
fn percentile(times: &[Duration], q: f64) -> Duration {
    if times.is_empty() {
        return Duration::ZERO;
    }
    times[((times.len() - 1) as f64 * q).round() as usize]
}

/// A fresh database for a row, on the PostgreSQL server at `server`, dropped afterwards.
struct BenchDatabase {
    server: String,
    name: String,
    url: String,
}

impl BenchDatabase {
    async fn create(server: &str) -> anyhow::Result<BenchDatabase> {
        let name = format!("orbitdock_bench_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::postgres::PgConnection::connect(server)
            .await
            .with_context(|| format!("connecting to the PostgreSQL server {}", shown(server)))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
        )))
        .execute(&mut conn)
        .await
        .with_context(|| format!("creating the bench's database {name}"))?;
        conn.close().await.ok();
        let url = with_database(server, &name)?;
        Ok(BenchDatabase {
            server: server.to_string(),
            name,
            url,
        })
    }

    async fn drop_it(self) {
        let dropped = async {
            let mut conn = sqlx::postgres::PgConnection::connect(&self.server).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut conn)
            .await?;
            conn.close().await
        };
        if let Err(e) = dropped.await {
            eprintln!("could not drop the bench's database {}: {e}", self.name);
        }
    }
}

/// `server`'s URL naming the database `name` instead of its own.
fn with_database(server: &str, name: &str) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse(server)
        .with_context(|| format!("the PostgreSQL URL {}", shown(server)))?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// `url` as it may be printed: without its password.
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "(a URL that does not parse)".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_printed_url_shows_no_password() {
        let shown = super::shown("postgres://bench:s3cret@db.internal:5432/postgres");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("bench@db.internal:5432"), "{shown}");
    }
}
