//! `orbitdock bench cfdp`: the link against CCSDS CFDP class 2 (acknowledged, NAK-based), side
//! by side over the real-time link emulator and real UDP (issue 17).
//!
//! Each row is one loss rate and one seed of the emulator's draws. For each, the same file
//! crosses twice through an emulator of the same settings: once between two CFDP entities of
//! cfdp-py (`bench_cfdp/cfdp_peer.py`, run by `python3`, its PDUs paced to the link's rate), once
//! between two link endpoints of this binary (paced to the same rate, configured as a pass's
//! rate is). Goodput is the file's bytes over the time from handing the file to the protocol
//! until the receiver holds all of it, as a share of the link's rate; every received file is
//! compared byte for byte with the one sent.
//!
//! The link endpoints are connected before the file is handed over (a message each way has
//! crossed), as they are during a pass; CFDP has no connection to make. What the first exchange
//! of a pass costs is in `orbitdock bench link` (its `1st s` column).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use link::{Contact, EndpointConfig, LinkEvent, LinkSettings, ObjectLayout};
use wire::{Digest, Direction, LinkKey};

/// The CFDP implementation and version the table was measured with.
const CFDP_PACKAGE: &str = "cfdp-py";
const CFDP_VERSION: &str = "0.7.0";
/// How to install it. pip 23's resolver cannot settle fastcrc by itself (cfdp-py asks for
/// `~=0.3`, spacepackets for `~=0.3.0`, and it tries 0.5), hence the second requirement.
const INSTALL: &str = "python3 -m pip install cfdp-py==0.7.0 'fastcrc~=0.3.0'";
/// The CFDP entities, run by `python3`.
const PEER_SCRIPT: &str = include_str!("bench_cfdp/cfdp_peer.py");

/// What the comparison runs: every rate × round trip × loss setting × seed is a row, and each
/// row runs both protocols, each through an emulator of its own.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The link's rates each way, bit/s.
    pub(crate) rates: Vec<u64>,
    /// Round trips (the delay each way is half).
    pub(crate) rtts: Vec<Duration>,
    /// Mean loss rates, each way.
    pub(crate) losses: Vec<f64>,
    /// Loss models for the rates above 0: independent (`false`) and bursty (`true`).
    pub(crate) bursty: Vec<bool>,
    /// Mean burst, datagrams (the Gilbert–Elliott bad state's mean stay), for bursty loss.
    pub(crate) burst: f64,
    /// Seeds of the emulator's draws.
    pub(crate) seeds: Vec<u64>,
    /// The file's size in bytes; `None`: `capacity` of the link's rate.
    pub(crate) file_bytes: Option<usize>,
    /// Without `file_bytes`: how long the file takes at the link's rate.
    pub(crate) capacity: Duration,
    /// Runs at once (each on its own ports and emulator).
    pub(crate) parallel: usize,
    /// CFDP's file segment, bytes.
    pub(crate) segment: usize,
    /// CFDP's ACK and NAK timers.
    pub(crate) timer: Duration,
    /// Leave out the CFDP runs (orbitdock alone, for a machine without cfdp-py).
    pub(crate) no_cfdp: bool,
}

/// One row's link and file.
#[derive(Debug, Clone, Copy)]
struct Row {
    rate: u64,
    delay: Duration,
    loss: f64,
    bursty: bool,
    burst: f64,
    seed: u64,
    file_bytes: usize,
}

impl Row {
    fn loss_model(&self) -> link::Loss {
        match (self.loss, self.bursty) {
            (l, _) if l <= 0.0 => link::Loss::None,
            (l, true) => link::Loss::bursty(l, self.burst),
            (l, false) => link::Loss::Random(l),
        }
    }

    fn rate_label(&self) -> String {
        if self.rate >= 1_000_000 && self.rate.is_multiple_of(100_000) {
            format!("{} Mbit/s", self.rate as f64 / 1e6)
        } else if self.rate >= 1000 && self.rate.is_multiple_of(100) {
            format!("{} kbit/s", self.rate as f64 / 1e3)
        } else {
            format!("{} bit/s", self.rate)
        }
    }

    fn loss_label(&self) -> String {
        if self.loss <= 0.0 {
            "0 %".to_string()
        } else {
            let kind = if self.bursty { "bursty" } else { "random" };
            format!("{} % {kind}", self.loss * 100.0)
        }
    }
}

impl Settings {
    /// The rows, in table order.
    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for &rate in &self.rates {
            let file_bytes = self.file_bytes.unwrap_or_else(|| {
                ((rate as f64 / 8.0 * self.capacity.as_secs_f64()) as usize).max(1)
            });
            for &rtt in &self.rtts {
                for &loss in &self.losses {
                    let kinds: &[bool] = if loss <= 0.0 { &[false] } else { &self.bursty };
                    for &bursty in kinds {
                        for &seed in &self.seeds {
                            rows.push(Row {
                                rate,
                                delay: rtt / 2,
                                loss,
                                bursty,
                                burst: self.burst,
                                seed,
                                file_bytes,
                            });
                        }
                    }
                }
            }
        }
        rows
    }
}

/// One protocol's run.
struct Outcome {
    /// Handing the file over to the receiver holding it.
    took: Duration,
    /// The received file is the one sent, byte for byte.
    identical: bool,
    /// Bytes the sender put on the link (every datagram, everything in it), until it knew the
    /// receiver held the file.
    sent_bytes: u64,
    /// Bytes the receiver put on the link over the same time.
    back_bytes: u64,
}

impl Outcome {
    fn goodput(&self, r: &Row) -> f64 {
        r.file_bytes as f64 / self.took.as_secs_f64() / (r.rate as f64 / 8.0)
    }

    /// The share of the bytes on the link, both ways, that are not the file's.
    fn overhead(&self, r: &Row) -> f64 {
        let total = (self.sent_bytes + self.back_bytes) as f64;
        if total <= 0.0 {
            0.0
        } else {
            1.0 - r.file_bytes as f64 / total
        }
    }
}

/// What `cfdp_peer.py` prints (its last line, JSON).
#[derive(Debug, serde::Deserialize)]
struct CfdpReport {
    /// Seconds from the Put request to the receiver's completion of the file.
    received_s: Option<f64>,
    /// The receiver finished without a fault (its file checksum verified).
    complete: bool,
    /// Bytes the sender put on the link.
    sender_bytes: u64,
    /// Bytes the receiver put on the link.
    receiver_bytes: u64,
}

/// Whether cfdp-py is importable, at the version the table was measured with: `Ok(version)`, or
/// an error that says how to install it.
fn cfdp_version() -> anyhow::Result<String> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import importlib.metadata as m, cfdppy, spacepackets; print(m.version('cfdp-py'))",
        ])
        .stderr(Stdio::piped())
        .output();
    match out {
        Err(e) => anyhow::bail!(
            "bench cfdp needs python3 (could not run it: {e}) with {CFDP_PACKAGE} {CFDP_VERSION}: install Python 3, then {INSTALL}"
        ),
        Ok(o) if !o.status.success() => anyhow::bail!(
            "bench cfdp needs the Python package {CFDP_PACKAGE} {CFDP_VERSION} (module cfdppy), which python3 cannot import here: {INSTALL}\n(python3 said: {})",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Ok(o) => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
    }
}

/// The file: pseudo-random bytes (nothing on the link compresses, but neither should anything
/// be able to).
fn test_file(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The emulator between `ground` (sends up) and `flight`, on free ports; returns the ports each
/// side sends to and the task (dropped: stopped).
async fn emulator(
    r: &Row,
    ground: SocketAddr,
    flight: SocketAddr,
) -> anyhow::Result<(SocketAddr, SocketAddr, tokio::task::JoinHandle<()>)> {
    let (ground_side, flight_side) = (link::free_udp_address()?, link::free_udp_address()?);
    let mut model = link::LinkModelConfig::ideal(r.delay);
    model.up_bps = Some(r.rate);
    model.down_bps = Some(r.rate);
    model.loss = r.loss_model();
    (model.queue_packets, model.queue_bytes) = link::LinkModelConfig::default_queue(Some(r.rate));
    let config = link::EmulatorConfig {
        ground_side,
        ground,
        flight_side,
        flight,
        model,
        seed: r.seed,
        time_scale: 1.0,
    };
    let stats = Arc::new(link::EmulatorStats::default());
    let task = tokio::spawn(async move {
        if let Err(e) = link::run_emulator(config, stats).await {
            eprintln!("link emulator: {e}");
        }
    });
    // The emulator binds its ports in its task: give it a moment before the first datagram.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok((ground_side, flight_side, task))
}

/// CFDP class 2 through the emulator.
async fn run_cfdp(
    s: &Settings,
    r: &Row,
    dir: &Path,
    file: &Path,
    want: &[u8],
) -> anyhow::Result<Outcome> {
    let script = dir.join("cfdp_peer.py");
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = dir.join(format!("cfdp-{n}.out"));
    let (sender, receiver) = (link::free_udp_address()?, link::free_udp_address()?);
    let (ground_side, flight_side, task) = emulator(r, sender, receiver).await?;
    let child = tokio::process::Command::new("python3")
        .arg(&script)
        .arg("--sender-bind")
        .arg(sender.to_string())
        .arg("--sender-peer")
        .arg(ground_side.to_string())
        .arg("--receiver-bind")
        .arg(receiver.to_string())
        .arg("--receiver-peer")
        .arg(flight_side.to_string())
        .arg("--file")
        .arg(file)
        .arg("--out")
        .arg(&out)
        .arg("--rate")
        .arg(r.rate.to_string())
        .arg("--segment")
        .arg(s.segment.to_string())
        .arg("--timer")
        .arg(s.timer.as_secs_f64().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .context("running the CFDP entities (python3)")?;
    task.abort();
    if !child.status.success() {
        anyhow::bail!(
            "the CFDP entities failed ({}): {}",
            child.status,
            String::from_utf8_lossy(&child.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&child.stdout);
    let line = text.lines().last().unwrap_or_default();
    let report: CfdpReport = serde_json::from_str(line)
        .with_context(|| format!("reading the CFDP entities' report {line:?}"))?;
    let Some(received) = report.received_s else {
        anyhow::bail!("CFDP did not complete the file: {line}");
    };
    let got = std::fs::read(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    Ok(Outcome {
        took: Duration::try_from_secs_f64(received)
            .with_context(|| format!("the CFDP entities' report gives no time: {line}"))?,
        identical: report.complete && got == want,
        sent_bytes: report.sender_bytes,
        back_bytes: report.receiver_bytes,
    })
}

fn endpoint(
    dir: &Path,
    bind: SocketAddr,
    peer: SocketAddr,
    sends: Direction,
    rate: u64,
) -> EndpointConfig {
    EndpointConfig {
        bind,
        peer,
        key: LinkKey::from_bytes([0x5a; 32]),
        sends,
        state_dir: dir.join("state"),
        objects: ObjectLayout::new(dir.join("objects")),
        rate_bits_per_sec: Some(rate),
        contact: Contact::Always,
        settings: LinkSettings::STANDARD,
        admit: None,
    }
}

/// Waits for the first event `want` accepts, acknowledging messages on the way.
async fn wait_for(
    rx: &mut link::MessageReceiver,
    tx: &link::MessageSender,
    limit: Duration,
    want: impl Fn(&LinkEvent) -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| anyhow::anyhow!("nothing came within {limit:?}"))?
            .context("the link endpoint stopped")?;
        if let LinkEvent::Message { seq, .. } = ev {
            tx.done(seq).await?;
        }
        if want(&ev) {
            return Ok(());
        }
    }
}

/// orbitdock's link through the emulator.
async fn run_orbitdock(r: &Row, dir: &Path, want: &[u8]) -> anyhow::Result<Outcome> {
    let (g, f) = (tempfile::tempdir_in(dir)?, tempfile::tempdir_in(dir)?);
    let (ga, fa) = (link::free_udp_address()?, link::free_udp_address()?);
    let (ground_side, flight_side, task) = emulator(r, ga, fa).await?;
    let ground_config = endpoint(g.path(), ga, ground_side, Direction::Up, r.rate);
    let flight_config = endpoint(f.path(), fa, flight_side, Direction::Down, r.rate);
    let flight_objects = flight_config.objects.clone();
    let (ground, mut ground_rx) = link::spawn_endpoint(ground_config.clone()).await?;
    let (flight, mut flight_rx) = link::spawn_endpoint(flight_config).await?;
    // Connected first: a message each way.
    let limit = Duration::from_secs(120);
    ground.send(b"hello".to_vec()).await?;
    flight.send(b"hello".to_vec()).await?;
    let is_message = |e: &LinkEvent| matches!(e, LinkEvent::Message { .. });
    wait_for(&mut flight_rx, &flight, limit, is_message).await?;
    wait_for(&mut ground_rx, &ground, limit, is_message).await?;
    let before = ground.stats_now().await?.session.bytes_sent;
    let back_before = flight.stats_now().await?.session.bytes_sent;
    let digest: Digest = ground_config.objects.put(want)?;
    let start = Instant::now();
    ground.send_object(digest, want.len() as u64, 2).await?;
    let received = |e: &LinkEvent| *e == LinkEvent::ObjectReceived(digest);
    wait_for(&mut flight_rx, &flight, Duration::from_secs(900), received)
        .await
        .context("orbitdock did not complete the file")?;
    let took = start.elapsed();
    // The bytes until the sender knows (as CFDP's until its Finished PDU came back).
    let delivered = |e: &LinkEvent| *e == LinkEvent::ObjectDelivered(digest);
    wait_for(&mut ground_rx, &ground, Duration::from_secs(120), delivered)
        .await
        .context("the ground never learnt the file was delivered")?;
    let sent_bytes = ground.stats_now().await?.session.bytes_sent - before;
    let back_bytes = flight.stats_now().await?.session.bytes_sent - back_before;
    task.abort();
    let got = std::fs::read(flight_objects.path(&digest)).unwrap_or_default();
    Ok(Outcome {
        took,
        identical: got == want,
        sent_bytes,
        back_bytes,
    })
}

/// A row's settings, for messages.
fn label(r: &Row) -> String {
    format!(
        "{} {} ms RTT {} seed {} ({} B)",
        r.rate_label(),
        (r.delay * 2).as_millis(),
        r.loss_label(),
        r.seed,
        r.file_bytes
    )
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

/// A protocol's run of a row, once it ran.
type Run = Option<anyhow::Result<Outcome>>;

/// Which protocol a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Cfdp,
    Orbitdock,
}

fn columns(r: &Row, o: Option<&anyhow::Result<Outcome>>) -> String {
    match o {
        Some(Ok(o)) => format!(
            "{:>7.3} {:>7.2}% {:>8.2} {:>5}",
            o.goodput(r),
            o.overhead(r) * 100.0,
            o.took.as_secs_f64(),
            yes_no(o.identical)
        ),
        Some(Err(_)) => format!("{:>7} {:>8} {:>8} {:>5}", "failed", "-", "-", "NO"),
        None => format!("{:>7} {:>8} {:>8} {:>5}", "-", "-", "-", "-"),
    }
}

fn header() -> String {
    format!(
        "{:<12} {:>6} {:<13} {:>4} {:>9} | {:>7} {:>8} {:>8} {:>5} | {:>7} {:>8} {:>8} {:>5} | {:>5}\n{:<49}| {:<32}| {:<32}|",
        "rate",
        "RTT",
        "loss",
        "seed",
        "file B",
        "goodput",
        "overhead",
        "time s",
        "ident",
        "goodput",
        "overhead",
        "time s",
        "ident",
        "ahead",
        "",
        " CFDP class 2 (cfdp-py)",
        " orbitdock",
    )
}

fn line(r: &Row, cfdp: Option<&anyhow::Result<Outcome>>, ours: &anyhow::Result<Outcome>) -> String {
    let ahead = match (cfdp, ours) {
        (Some(Ok(c)), Ok(o)) => yes_no(o.goodput(r) >= c.goodput(r)),
        _ => "-",
    };
    format!(
        "{:<12} {:>4}ms {:<13} {:>4} {:>9} | {} | {} | {ahead:>5}",
        r.rate_label(),
        (r.delay * 2).as_millis(),
        r.loss_label(),
        r.seed,
        r.file_bytes,
        columns(r, cfdp),
        columns(r, Some(ours)),
    )
}

pub(crate) async fn run(s: Settings) -> anyhow::Result<ExitCode> {
    let version = if s.no_cfdp {
        None
    } else {
        Some(cfdp_version()?)
    };
    let dir = tempfile::tempdir().context("making a temporary folder")?;
    std::fs::write(dir.path().join("cfdp_peer.py"), PEER_SCRIPT)
        .context("writing the CFDP script")?;
    let rows = s.rows();
    // One file per size, written once.
    let mut files: std::collections::BTreeMap<usize, (Arc<Vec<u8>>, std::path::PathBuf)> =
        Default::default();
    for r in &rows {
        if let std::collections::btree_map::Entry::Vacant(slot) = files.entry(r.file_bytes) {
            let want = test_file(r.file_bytes);
            let path = dir.path().join(format!("file-{}.bin", r.file_bytes));
            std::fs::write(&path, &want)?;
            slot.insert((Arc::new(want), path));
        }
    }
    let sizes: Vec<String> = s
        .rates
        .iter()
        .filter_map(|&rate| {
            rows.iter()
                .find(|r| r.rate == rate)
                .map(|r| format!("{} B at {}", r.file_bytes, r.rate_label()))
        })
        .collect();
    println!(
        "link: each row's rate, RTT (half of it each way) and loss each way (random: independent; bursty: Gilbert–Elliott, bad-state stays of {} datagrams on average losing half, 0.5 % loss in the good state, same mean), drop-tail queue of about a second (at least 16 datagrams of {} B); one file per row: {}{}",
        s.burst,
        wire::MAX_PACKET,
        sizes.join(", "),
        match s.file_bytes {
            None => format!(" ({:?} of the link's capacity)", s.capacity),
            Some(_) => String::new(),
        }
    );
    match &version {
        Some(v) => println!(
            "CFDP: class 2 (acknowledged), {CFDP_PACKAGE} {v} (table measured with {CFDP_VERSION}), {} B file segments, 2-byte entity ids and sequence numbers, no PDU CRC, CRC-32 file checksum, immediate NAKs, ACK and NAK timers {:?}, each side's PDUs paced to the row's rate",
            s.segment, s.timer
        ),
        None => println!("CFDP: left out (--no-cfdp)"),
    }
    println!(
        "orbitdock: {} B datagrams, paced to a configured rate of the row's rate, endpoints connected before the file is handed over",
        LinkSettings::STANDARD.datagram_bytes,
    );
    let protocols: Vec<Protocol> = if version.is_some() {
        vec![Protocol::Cfdp, Protocol::Orbitdock]
    } else {
        vec![Protocol::Orbitdock]
    };
    // Rows are grouped by rate: interleave the rates, so that the runs at once are not all of
    // the fastest (whose Python entities need the most CPU).
    let per_rate = rows.len().div_ceil(s.rates.len().max(1)).max(1);
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| (i % per_rate, i / per_rate));
    let jobs: Vec<(usize, Protocol)> = order
        .into_iter()
        .flat_map(|i| protocols.iter().map(move |&p| (i, p)))
        .collect();
    eprintln!(
        "{} rows, {} runs, {} at a time, each in real time…",
        rows.len(),
        jobs.len(),
        s.parallel.max(1),
    );
    println!();
    let started = Instant::now();
    let load_before = load_average();
    use futures_util::StreamExt;
    // Each run is a task of its own (the runtime's threads), so that one run's work (hashing
    // its file, say) never holds up another's clock.
    let (settings, files, dir_path) = (
        Arc::new(s.clone()),
        Arc::new(files),
        dir.path().to_path_buf(),
    );
    let outcomes: Vec<((usize, Protocol), anyhow::Result<Outcome>)> =
        futures_util::stream::iter(jobs.into_iter().map(|(i, p)| {
            let (r, s, dir, files) = (rows[i], settings.clone(), dir_path.clone(), files.clone());
            tokio::spawn(async move {
                let (want, path) = &files[&r.file_bytes];
                let o = match p {
                    Protocol::Cfdp => run_cfdp(&s, &r, &dir, path, want).await,
                    Protocol::Orbitdock => run_orbitdock(&r, &dir, want).await,
                };
                match &o {
                    Ok(o) => eprintln!(
                        "  {p:?} {}: {:.3} in {:.1} s",
                        label(&r),
                        o.goodput(&r),
                        o.took.as_secs_f64()
                    ),
                    Err(e) => eprintln!("  {p:?} {}: failed: {e:#}", label(&r)),
                }
                ((i, p), o)
            })
        }))
        .buffer_unordered(s.parallel.max(1))
        .map(|joined| joined.expect("a bench run panicked"))
        .collect()
        .await;
    let mut by_row: Vec<(Run, Run)> = (0..rows.len()).map(|_| (None, None)).collect();
    for ((i, p), o) in outcomes {
        match p {
            Protocol::Cfdp => by_row[i].0 = Some(o),
            Protocol::Orbitdock => by_row[i].1 = Some(o),
        }
    }
    println!("{}", header());
    let mut all_identical = true;
    let mut behind = 0;
    for (r, (cfdp, ours)) in rows.iter().zip(&by_row) {
        let Some(ours) = ours else { continue };
        all_identical &= matches!(ours, Ok(o) if o.identical)
            && cfdp
                .as_ref()
                .is_none_or(|c| matches!(c, Ok(c) if c.identical));
        if let (Some(Ok(c)), Ok(o)) = (cfdp, ours) {
            behind += usize::from(o.goodput(r) < c.goodput(r));
        }
        println!("{}", line(r, cfdp.as_ref(), ours));
    }
    println!(
        "goodput: file bytes ÷ (seconds from handing the file over to the receiver holding all of it) ÷ the link's bytes per second; overhead: bytes on the link both ways that are not the file's, until the sender knew the file was delivered (CFDP: its Finished PDU; orbitdock: the delivery acknowledgement); ident: the received file compared byte for byte; ahead: orbitdock's goodput at or above CFDP's"
    );
    if version.is_some() {
        println!("orbitdock behind CFDP in {behind} of {} rows", rows.len());
    }
    println!(
        "took {:.0} s, {} runs at a time; load average (1 min) {} before, {} after",
        started.elapsed().as_secs_f64(),
        s.parallel.max(1),
        load_before,
        load_average()
    );
    for (r, (cfdp, ours)) in rows.iter().zip(&by_row) {
        for (name, o) in [("CFDP", cfdp.as_ref()), ("orbitdock", ours.as_ref())] {
            if let Some(Err(e)) = o {
                println!("{name} failed at {}: {e:#}", label(r));
            }
        }
    }
    Ok(if all_identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The machine's 1-minute load average, for the record beside real-time figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}
