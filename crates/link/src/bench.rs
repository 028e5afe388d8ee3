//! `orbitdock bench link`: goodput, overhead, re-sent bytes, time to first payload and resume
//! handshake of the transfer protocol over the link model, beside a baseline that reproduces a
//! 220-byte / 20-unacknowledged / 1 s-timeout file transfer over the same model.
//!
//! Each row is two contact windows of a 7-minute pass, ten minutes apart, with a backlog of
//! objects larger than the first pass can carry; goodput is measured over the first pass (unique
//! payload bytes delivered ÷ the pass's capacity), the handshake over the second.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use sync::{MemStore, Session, SessionConfig, SessionStats};
use wire::{Digest, Direction, LinkKey};

use crate::model::{Deliveries, LinkModel, LinkModelConfig, Loss};
use crate::sim::SessionParams;

/// One row's conditions.
#[derive(Debug, Clone, Copy)]
pub struct Conditions {
    /// Link rate each way, bit/s.
    pub rate_bps: u64,
    /// Round-trip time.
    pub rtt: Duration,
    /// Mean loss.
    pub loss: f64,
    /// Bursty (Gilbert–Elliott) rather than independent loss.
    pub bursty: bool,
}

/// What one protocol achieved under one set of conditions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measure {
    /// Unique payload delivered in the first pass ÷ its capacity.
    pub goodput: f64,
    /// Bytes on the wire (both ways) that are not payload — framing, acknowledgements, status,
    /// handshake — ÷ all bytes on the wire. Payload sent again is counted in `resent`.
    pub overhead: f64,
    /// Payload bytes sent more than once.
    pub resent: u64,
    /// From the first pass opening to the first payload byte received.
    pub first_payload: Option<Duration>,
    /// From the second pass opening to the first new payload byte received.
    pub first_payload_resume: Option<Duration>,
    /// Handshake bytes (both ways) at the start of the second pass.
    pub resume_handshake: Option<u64>,
}

const PASS: Duration = Duration::from_secs(420);
const GAP: Duration = Duration::from_secs(600);
const OPEN: Duration = Duration::from_secs(2);

fn model(c: Conditions, seed: u64, t0: Instant) -> LinkModel {
    let loss = match (c.loss, c.bursty) {
        (l, _) if l <= 0.0 => Loss::None,
        (l, false) => Loss::Random(l),
        (l, true) => Loss::bursty(l, 8.0),
    };
    let config = LinkModelConfig {
        up_bps: Some(c.rate_bps),
        down_bps: Some(c.rate_bps),
        delay: c.rtt / 2,
        jitter: Duration::ZERO,
        loss,
        bit_error_rate: 0.0,
        duplicate: 0.0,
        windows: Some(vec![
            (OPEN, OPEN + PASS),
            (OPEN + PASS + GAP, OPEN + 2 * PASS + GAP),
        ]),
        cuts: Vec::new(),
        half_duplex_turnaround: None,
        queue_packets: None,
        queue_bytes: None,
    };
    LinkModel::new(config, seed, t0)
}

fn capacity_bytes(c: Conditions) -> f64 {
    c.rate_bps as f64 / 8.0 * PASS.as_secs_f64()
}

/// Runs orbitdock's protocol under `c`.
pub fn ours(c: Conditions, seed: u64) -> Measure {
    let t0 = Instant::now();
    let mut m = model(c, seed, t0);
    let params = SessionParams::standard();
    let key = LinkKey::from_bytes([9; 32]);
    let config = |sends, inc| SessionConfig {
        key: key.clone(),
        sends,
        incarnation: inc,
        datagram_bytes: params.datagram_bytes,
        reorder_window: params.reorder_window,
        ack_every: params.ack_every,
        ack_delay: params.ack_delay,
        persist_bytes: params.persist_bytes,
        persist_interval: params.persist_interval,
        spool_expiry: params.spool_expiry,
    };
    // A backlog of 1.5 passes, in objects of at most 4 MiB.
    let total = (capacity_bytes(c) * 1.5) as usize;
    let mut store = MemStore::new();
    let mut objects = Vec::new();
    let mut left = total;
    let mut n = 0u8;
    while left > 0 {
        let len = left.min(4 << 20);
        let bytes: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(n))
            .collect();
        n = n.wrapping_add(1);
        let d = Digest::of(&bytes);
        store.objects.insert(d, bytes);
        objects.push((d, len as u64));
        left -= len;
    }
    let mut ground = Session::new(config(Direction::Up, 1), Box::new(store)).expect("memory store");
    let mut flight =
        Session::new(config(Direction::Down, 2), Box::new(MemStore::new())).expect("memory store");
    for (d, len) in &objects {
        ground.send_object(*d, *len, 2).expect("memory store");
    }
    let mut heap: Deliveries<(bool, Vec<u8>)> = Deliveries::new();
    let mut now = t0;
    let end = t0 + OPEN + 2 * PASS + GAP;
    let pass1_end = t0 + OPEN + PASS;
    let pass2_start = pass1_end + GAP;
    let mut received_pass1 = None;
    let mut first = None;
    let mut first_resume = None;
    let mut hs_at_pass2: Option<u64> = None;
    let mut received_at_pass2 = 0;
    let mut was_up = false;
    let handshake = |g: &SessionStats, f: &SessionStats| g.handshake_bytes + f.handshake_bytes;
    while now < end && !(ground.is_idle() && flight.is_idle() && received_pass1.is_some()) {
        let up = m.in_contact(now);
        if up != was_up {
            ground.set_link(now, up, Some(c.rate_bps));
            flight.set_link(now, up, Some(c.rate_bps));
            was_up = up;
        }
        if now >= pass1_end && received_pass1.is_none() {
            received_pass1 = Some(flight.stats().payload_received);
        }
        if now >= pass2_start && hs_at_pass2.is_none() {
            hs_at_pass2 = Some(handshake(ground.stats(), flight.stats()));
            received_at_pass2 = flight.stats().payload_received;
        }
        for (is_ground, s) in [(true, &mut ground), (false, &mut flight)] {
            s.handle_timeout(now);
            while let Some(p) = s.poll_transmit(now) {
                let dir = if is_ground {
                    Direction::Up
                } else {
                    Direction::Down
                };
                for (at, bytes) in m.transmit(now, dir, &p) {
                    heap.push(at, (!is_ground, bytes));
                }
            }
            while s.poll_event().is_some() {}
        }
        if first.is_none() && flight.stats().payload_received > 0 {
            first = Some(now.duration_since(t0 + OPEN));
        }
        if first_resume.is_none()
            && now >= pass2_start
            && flight.stats().payload_received > received_at_pass2
        {
            first_resume = Some(now.duration_since(pass2_start));
        }
        let mut next = heap.next_at();
        for t in [
            ground.poll_timeout(),
            flight.poll_timeout(),
            m.next_change(now),
        ]
        .into_iter()
        .flatten()
        {
            next = Some(next.map_or(t, |n: Instant| n.min(t)));
        }
        let Some(mut next) = next else { break };
        if next <= now {
            next = now + Duration::from_micros(50);
        }
        now = next;
        while let Some((to_ground, bytes)) = heap.pop_due(now) {
            if to_ground {
                ground.handle_datagram(now, &bytes);
            } else {
                flight.handle_datagram(now, &bytes);
            }
        }
    }
    let (g, f) = (ground.stats().clone(), flight.stats().clone());
    let wire = (g.bytes_sent + f.bytes_sent) as f64;
    // Chunks that may or may not have been sent before a restart count as sent again here.
    let resent = g.payload_resent + f.payload_resent + g.payload_unsure + f.payload_unsure;
    let payload = (g.payload_sent + f.payload_sent + resent) as f64;
    Measure {
        goodput: received_pass1.unwrap_or(f.payload_received) as f64 / capacity_bytes(c),
        overhead: (wire - payload) / wire,
        resent,
        first_payload: first,
        first_payload_resume: first_resume,
        resume_handshake: hs_at_pass2.map(|h| {
            // The handshake of the second pass: what was said in its first seconds.
            handshake(&g, &f) - h
        }),
    }
}

/// The baseline: 220-byte chunks, at most 20 unacknowledged, a 1 s timeout, 10 retries per
/// chunk; 17 bytes of framing and 10 of file-data header per chunk, a 21-byte acknowledgement
/// per chunk. No resume: a transfer cut by the end of a pass starts again at the next.
pub fn baseline(c: Conditions, seed: u64) -> Measure {
    const CHUNK: usize = 220;
    const HEADER: usize = 27;
    const ACK: usize = 21;
    const WINDOW: usize = 20;
    const TIMEOUT: Duration = Duration::from_secs(1);
    const RETRIES: u32 = 10;
    let t0 = Instant::now();
    let mut m = model(c, seed, t0);
    let total_chunks = ((capacity_bytes(c) * 1.5) as usize).div_ceil(CHUNK);
    let mut acked = vec![false; total_chunks];
    let mut received = vec![false; total_chunks];
    let mut sent_at: Vec<Option<(Instant, u32)>> = vec![None; total_chunks];
    let mut next = 0usize;
    let mut base = 0usize;
    let mut heap: Deliveries<(bool, usize)> = Deliveries::new();
    let (mut wire, mut payload_first, mut resent, mut delivered) = (0u64, 0u64, 0u64, 0u64);
    let mut first = None;
    let mut first_resume = None;
    let mut received_pass1 = None;
    let pass1_end = t0 + OPEN + PASS;
    let pass2_start = pass1_end + GAP;
    let end = pass2_start + PASS;
    let mut now = t0;
    let mut in_pass2 = false;
    while now < end {
        if now >= pass1_end && received_pass1.is_none() {
            received_pass1 = Some(delivered);
        }
        if now >= pass2_start && !in_pass2 {
            // No resume: the file starts over.
            in_pass2 = true;
            acked.iter_mut().for_each(|a| *a = false);
            received.iter_mut().for_each(|r| *r = false);
            sent_at.iter_mut().for_each(|s| *s = None);
            next = 0;
            base = 0;
        }
        if m.in_contact(now) {
            // Retransmit timed-out chunks, then send new ones while fewer than 20 are unacknowledged.
            let outstanding: Vec<usize> = (base..next).filter(|&i| !acked[i]).collect();
            let mut sent_any = false;
            for i in &outstanding {
                if let Some((at, tries)) = sent_at[*i]
                    && now >= at + TIMEOUT
                    && tries < RETRIES
                {
                    sent_at[*i] = Some((now, tries + 1));
                    resent += CHUNK as u64;
                    wire += (CHUNK + HEADER) as u64;
                    for (at, _) in m.transmit(now, Direction::Up, &[0u8; CHUNK + HEADER]) {
                        heap.push(at, (false, *i));
                    }
                    sent_any = true;
                }
            }
            let mut unacked = outstanding.len();
            while unacked < WINDOW && next < total_chunks {
                sent_at[next] = Some((now, 0));
                payload_first += CHUNK as u64;
                wire += (CHUNK + HEADER) as u64;
                for (at, _) in m.transmit(now, Direction::Up, &[0u8; CHUNK + HEADER]) {
                    heap.push(at, (false, next));
                }
                next += 1;
                unacked += 1;
                sent_any = true;
            }
            let _ = sent_any;
        }
        while base < next && acked[base] {
            base += 1;
        }
        // Next instant: a delivery, a timeout, or a window edge.
        let mut t_next = heap.next_at();
        let mut consider = |t: Instant| t_next = Some(t_next.map_or(t, |n: Instant| n.min(t)));
        for i in base..next {
            if let (false, Some((at, tries))) = (acked[i], sent_at[i])
                && tries < RETRIES
            {
                consider(at + TIMEOUT);
            }
        }
        if let Some(t) = m.next_change(now) {
            consider(t);
        }
        consider(end);
        let Some(mut t_next) = t_next else { break };
        if t_next <= now {
            t_next = now + Duration::from_micros(50);
        }
        now = t_next;
        while let Some((is_ack, i)) = heap.pop_due(now) {
            if is_ack {
                acked[i] = true;
            } else {
                if !received[i] {
                    received[i] = true;
                    delivered += CHUNK as u64;
                    if first.is_none() {
                        first = Some(now.duration_since(t0 + OPEN));
                    }
                    if in_pass2 && first_resume.is_none() {
                        first_resume = Some(now.duration_since(pass2_start));
                    }
                }
                wire += ACK as u64;
                for (at, _) in m.transmit(now, Direction::Down, &[0u8; ACK]) {
                    heap.push(at, (true, i));
                }
            }
        }
    }
    Measure {
        goodput: received_pass1.unwrap_or(delivered) as f64 / capacity_bytes(c),
        overhead: (wire as f64 - payload_first as f64 - resent as f64) / wire.max(1) as f64,
        resent,
        first_payload: first,
        first_payload_resume: first_resume,
        resume_handshake: None,
    }
}

/// The grid of the issue: rates × RTTs × loss models.
pub fn grid() -> Vec<Conditions> {
    let mut out = Vec::new();
    for rate_bps in [9_600, 256_000, 2_000_000] {
        for rtt_ms in [80, 600] {
            for (loss, bursty) in [
                (0.0, false),
                (0.01, false),
                (0.01, true),
                (0.10, false),
                (0.10, true),
            ] {
                out.push(Conditions {
                    rate_bps,
                    rtt: Duration::from_millis(rtt_ms),
                    loss,
                    bursty,
                });
            }
        }
    }
    out
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.2}", d.as_secs_f64()))
}

fn human_rate(bps: u64) -> String {
    if bps >= 1_000_000 {
        format!("{} Mbit/s", bps as f64 / 1e6)
    } else {
        format!("{} kbit/s", bps as f64 / 1e3)
    }
}

/// Runs the grid and renders the side-by-side table.
pub fn table(seed: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<13} {:>6} {:<12} | {:>7} {:>8} {:>10} {:>7} {:>7} {:>6} | {:>7} {:>8} {:>10} {:>7} {:>7}",
        "rate",
        "RTT",
        "loss",
        "goodput",
        "overhead",
        "resent B",
        "1st s",
        "resume",
        "hs B",
        "goodput",
        "overhead",
        "resent B",
        "1st s",
        "resume"
    );
    let _ = writeln!(
        out,
        "{:<34} | {:<59} | baseline 220 B / 20 unacked / 1 s timeout",
        "", "orbitdock"
    );
    for c in grid() {
        let o = ours(c, seed);
        let b = baseline(c, seed);
        let loss = if c.loss == 0.0 {
            "0 %".to_string()
        } else {
            format!(
                "{:.0} % {}",
                c.loss * 100.0,
                if c.bursty { "bursty" } else { "random" }
            )
        };
        let _ = writeln!(
            out,
            "{:<13} {:>4}ms {:<12} | {:>7.3} {:>7.2}% {:>10} {:>7} {:>7} {:>6} | {:>7.3} {:>7.2}% {:>10} {:>7} {:>7}",
            human_rate(c.rate_bps),
            c.rtt.as_millis(),
            loss,
            o.goodput,
            o.overhead * 100.0,
            o.resent,
            secs(o.first_payload),
            secs(o.first_payload_resume),
            o.resume_handshake
                .map_or_else(|| "-".into(), |h| h.to_string()),
            b.goodput,
            b.overhead * 100.0,
            b.resent,
            secs(b.first_payload),
            secs(b.first_payload_resume),
        );
    }
    let _ = writeln!(
        out,
        "goodput: unique payload delivered in a 7-min pass ÷ its capacity; overhead: bytes on the wire (both ways) that are not payload (framing, acknowledgements, status, handshake); \
         resent B: payload bytes sent again; 1st s / resume: seconds from a pass opening to the first payload byte (first pass / next pass); \
         hs B: resume handshake bytes (both ways) at the next pass."
    );
    out
}
