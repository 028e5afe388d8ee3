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

/// What one comparison runs: the settings unless the command line says otherwise.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The link's rate each way, bit/s.
    pub(crate) rate: u64,
    /// The delay each way.
    pub(crate) delay: Duration,
    /// The file's size in bytes.
    pub(crate) file_bytes: usize,
    /// Random loss rates, each way.
    pub(crate) losses: Vec<f64>,
    /// Seeds of the emulator's draws.
    pub(crate) seeds: Vec<u64>,
    /// CFDP's file segment, bytes.
    pub(crate) segment: usize,
    /// CFDP's ACK and NAK timers.
    pub(crate) timer: Duration,
    /// Leave out the CFDP runs (orbitdock alone, for a machine without cfdp-py).
    pub(crate) no_cfdp: bool,
}

/// One protocol's run.
struct Outcome {
    /// Handing the file over to the receiver holding it.
    took: Duration,
    /// The received file is the one sent, byte for byte.
    identical: bool,
    /// Bytes the sender put on the link (every datagram, everything in it).
    sent_bytes: u64,
}

impl Outcome {
    fn goodput(&self, s: &Settings) -> f64 {
        s.file_bytes as f64 / self.took.as_secs_f64() / (s.rate as f64 / 8.0)
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
    s: &Settings,
    loss: f64,
    seed: u64,
    ground: SocketAddr,
    flight: SocketAddr,
) -> anyhow::Result<(
    SocketAddr,
    SocketAddr,
    tokio::task::JoinHandle<()>,
    Arc<link::EmulatorStats>,
)> {
    let (ground_side, flight_side) = (link::free_udp_address()?, link::free_udp_address()?);
    let mut model = link::LinkModelConfig::ideal(s.delay);
    model.up_bps = Some(s.rate);
    model.down_bps = Some(s.rate);
    model.loss = if loss > 0.0 {
        link::Loss::Random(loss)
    } else {
        link::Loss::None
    };
    (model.queue_packets, model.queue_bytes) = link::LinkModelConfig::default_queue(Some(s.rate));
    let config = link::EmulatorConfig {
        ground_side,
        ground,
        flight_side,
        flight,
        model,
        seed,
        time_scale: 1.0,
    };
    let stats = Arc::new(link::EmulatorStats::default());
    let shared = stats.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = link::run_emulator(config, shared).await {
            eprintln!("link emulator: {e}");
        }
    });
    // The emulator binds its ports in its task: give it a moment before the first datagram.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok((ground_side, flight_side, task, stats))
}

/// CFDP class 2 through the emulator.
async fn run_cfdp(
    s: &Settings,
    loss: f64,
    seed: u64,
    dir: &Path,
    file: &Path,
    want: &[u8],
) -> anyhow::Result<Outcome> {
    let script = dir.join("cfdp_peer.py");
    std::fs::write(&script, PEER_SCRIPT).context("writing the CFDP script")?;
    let out = dir.join(format!("cfdp-{loss}-{seed}.out"));
    let (sender, receiver) = (link::free_udp_address()?, link::free_udp_address()?);
    let (ground_side, flight_side, task, _) = emulator(s, loss, seed, sender, receiver).await?;
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
        .arg(s.rate.to_string())
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
async fn run_orbitdock(
    s: &Settings,
    loss: f64,
    seed: u64,
    dir: &Path,
    want: &[u8],
) -> anyhow::Result<Outcome> {
    let (g, f) = (tempfile::tempdir_in(dir)?, tempfile::tempdir_in(dir)?);
    let (ga, fa) = (link::free_udp_address()?, link::free_udp_address()?);
    let (ground_side, flight_side, task, _) = emulator(s, loss, seed, ga, fa).await?;
    let ground_config = endpoint(g.path(), ga, ground_side, Direction::Up, s.rate);
    let flight_config = endpoint(f.path(), fa, flight_side, Direction::Down, s.rate);
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
    let digest: Digest = ground_config.objects.put(want)?;
    let start = Instant::now();
    ground.send_object(digest, want.len() as u64, 2).await?;
    let received = |e: &LinkEvent| *e == LinkEvent::ObjectReceived(digest);
    wait_for(&mut flight_rx, &flight, Duration::from_secs(600), received)
        .await
        .context("orbitdock did not complete the file")?;
    let took = start.elapsed();
    let sent_bytes = ground.stats_now().await?.session.bytes_sent - before;
    task.abort();
    let got = std::fs::read(flight_objects.path(&digest)).unwrap_or_default();
    Ok(Outcome {
        took,
        identical: got == want,
        sent_bytes,
    })
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

pub(crate) async fn run(s: Settings) -> anyhow::Result<ExitCode> {
    let version = if s.no_cfdp {
        None
    } else {
        Some(cfdp_version()?)
    };
    let dir = tempfile::tempdir().context("making a temporary folder")?;
    let want = test_file(s.file_bytes);
    let file = dir.path().join("file.bin");
    std::fs::write(&file, &want)?;
    println!(
        "link: {} kbit/s each way, {:?} each way, random loss each way, drop-tail queue of {} bytes (about a second); one file of {} bytes",
        s.rate / 1000,
        s.delay,
        link::LinkModelConfig::default_queue(Some(s.rate))
            .1
            .unwrap_or(0),
        s.file_bytes
    );
    match &version {
        Some(v) => println!(
            "CFDP: class 2 (acknowledged), {CFDP_PACKAGE} {v} (table measured with {CFDP_VERSION}), {} B file segments, 2-byte entity ids and sequence numbers, no PDU CRC, CRC-32 file checksum, immediate NAKs, ACK and NAK timers {:?}, each side's PDUs paced to {} bit/s",
            s.segment, s.timer, s.rate
        ),
        None => println!("CFDP: left out (--no-cfdp)"),
    }
    println!(
        "orbitdock: {} B datagrams, paced to a configured rate of {} bit/s, endpoints connected before the file is handed over",
        LinkSettings::STANDARD.datagram_bytes,
        s.rate
    );
    println!();
    println!(
        "{:>6} {:>5} | {:>8} {:>8} {:>10} {:>9} | {:>8} {:>8} {:>10} {:>9} | {:>7}",
        "loss",
        "seed",
        "CFDP",
        "time s",
        "sent B",
        "identical",
        "orbitdk",
        "time s",
        "sent B",
        "identical",
        "ahead"
    );
    let mut all_identical = true;
    for &loss in &s.losses {
        for &seed in &s.seeds {
            let cfdp = match version {
                Some(_) => Some(run_cfdp(&s, loss, seed, dir.path(), &file, &want).await?),
                None => None,
            };
            let ours = run_orbitdock(&s, loss, seed, dir.path(), &want).await?;
            all_identical &= ours.identical && cfdp.as_ref().is_none_or(|c| c.identical);
            let cfdp_cols = match &cfdp {
                Some(c) => format!(
                    "{:>8.3} {:>8.2} {:>10} {:>9}",
                    c.goodput(&s),
                    c.took.as_secs_f64(),
                    c.sent_bytes,
                    yes_no(c.identical)
                ),
                None => format!("{:>8} {:>8} {:>10} {:>9}", "-", "-", "-", "-"),
            };
            let ahead = match &cfdp {
                Some(c) => yes_no(ours.goodput(&s) >= c.goodput(&s)),
                None => "-",
            };
            println!(
                "{:>5.0}% {seed:>5} | {cfdp_cols} | {:>8.3} {:>8.2} {:>10} {:>9} | {ahead:>7}",
                loss * 100.0,
                ours.goodput(&s),
                ours.took.as_secs_f64(),
                ours.sent_bytes,
                yes_no(ours.identical),
            );
        }
    }
    println!(
        "goodput: file bytes ÷ (seconds from handing the file over to the receiver holding all of it) ÷ the link's bytes per second; sent B: bytes the sender put on the link; identical: the received file compared byte for byte; ahead: orbitdock's goodput at or above CFDP's"
    );
    Ok(if all_identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
