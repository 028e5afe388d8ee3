//! Deterministic simulation of ground and flight sessions over the [`LinkModel`], with crashes
//! and restarts from persisted state, checking the transfer invariants at every step:
//!
//! - every object and message arrives bit-identical; messages in order, each once;
//! - nothing is committed unless its digest verified;
//! - no payload packet is sent while the receiver holds it durably.
//!
//! Everything is drawn from the scenario's seed, so a failure replays exactly.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sync::{Event, MemStore, Session, SessionConfig, SessionStats};
use wire::{Chunk, Digest, Direction, LinkKey, Opener, PacketHeader, ReplayMemory, decode_chunks};

use crate::model::{Deliveries, LinkModel, LinkModelConfig, ModelStats};

/// Which end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The ground (sends uplink).
    Ground,
    /// The flight agent (sends downlink).
    Flight,
}

/// Session parameters for both sides.
#[derive(Debug, Clone)]
pub struct SessionParams {
    /// The largest datagram (the payload of a data packet follows from it).
    pub datagram_bytes: usize,
    /// The reorder window (must exceed the link's jitter).
    pub reorder_window: Duration,
    /// Acknowledge every this many packets...
    pub ack_every: u32,
    /// ...or after this long.
    pub ack_delay: Duration,
    /// Persist a spool every this many bytes...
    pub persist_bytes: u64,
    /// ...or this long.
    pub persist_interval: Duration,
    /// Drop a spool idle this long.
    pub spool_expiry: Duration,
}

impl SessionParams {
    /// The defaults the flight agent and the ground use.
    pub fn standard() -> SessionParams {
        SessionParams {
            datagram_bytes: crate::LinkSettings::STANDARD.datagram_bytes,
            reorder_window: Duration::from_millis(50),
            ack_every: 16,
            ack_delay: Duration::from_millis(200),
            persist_bytes: 64 << 10,
            persist_interval: Duration::from_secs(1),
            spool_expiry: crate::LinkSettings::STANDARD.spool_expiry,
        }
    }
}

/// One simulated run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Everything random is drawn from this.
    pub seed: u64,
    /// The link.
    pub link: LinkModelConfig,
    /// Objects the ground sends.
    pub up_objects: Vec<Vec<u8>>,
    /// Objects the flight agent sends.
    pub down_objects: Vec<Vec<u8>>,
    /// Messages the ground sends.
    pub up_messages: Vec<Vec<u8>>,
    /// Messages the flight agent sends.
    pub down_messages: Vec<Vec<u8>>,
    /// Crashes: when, and which side. The side restarts from its store after `restart_delay`.
    pub crashes: Vec<(Duration, Side)>,
    /// How long a crashed side stays down.
    pub restart_delay: Duration,
    /// Give up after this much simulated time.
    pub time_limit: Duration,
    /// Session parameters.
    pub session: SessionParams,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Simulated time until everything arrived.
    pub elapsed: Duration,
    /// Ground session counters, summed over its incarnations.
    pub ground: SessionStats,
    /// Flight session counters, summed over its incarnations.
    pub flight: SessionStats,
    /// The uplink's counts.
    pub up: ModelStats,
    /// The downlink's counts.
    pub down: ModelStats,
    /// For each contact opening, how long until the flight side received new payload (if it did
    /// within that contact).
    pub first_payload: Vec<Duration>,
    /// Time in contact until everything arrived.
    pub contact_time: Duration,
}

struct Node {
    side: Side,
    session: Option<Session>,
    down_until: Option<Instant>,
    totals: SessionStats,
    in_contact: bool,
    received_objects: Vec<Digest>,
    received_messages: Vec<Vec<u8>>,
}

fn key() -> LinkKey {
    LinkKey::from_bytes([0x5A; 32])
}

fn config(side: Side, p: &SessionParams, incarnation: u64) -> SessionConfig {
    SessionConfig {
        key: key(),
        sends: match side {
            Side::Ground => Direction::Up,
            Side::Flight => Direction::Down,
        },
        incarnation,
        datagram_bytes: p.datagram_bytes,
        reorder_window: p.reorder_window,
        ack_every: p.ack_every,
        ack_delay: p.ack_delay,
        persist_bytes: p.persist_bytes,
        persist_interval: p.persist_interval,
        spool_expiry: p.spool_expiry,
    }
}

fn add(total: &mut SessionStats, s: &SessionStats) {
    macro_rules! sum { ($($f:ident),*) => { $( total.$f += s.$f; )* } }
    sum!(
        packets_sent,
        bytes_sent,
        payload_sent,
        payload_resent,
        payload_unsure,
        handshake_bytes,
        packets_received,
        payload_received,
        duplicates,
        payload_duplicate,
        rejected_oversized,
        rejected_truncated,
        rejected_unknown,
        rejected_forged,
        rejected_replayed,
        malformed,
        objects_committed,
        messages_delivered,
        digest_mismatches,
        peer_restarts,
        candidate_packets,
        peer_epochs_proven,
        store_errors,
        offers_refused,
        spools_expired,
        data_before_offer
    );
}

/// Runs a scenario to completion, or says which invariant broke (with the seed to replay it).
pub fn run(s: &Scenario) -> Result<Outcome, String> {
    let fail = |what: String| {
        Err(format!(
            "seed {}: {what} (replay with ORBITDOCK_SIM_SEED={})",
            s.seed, s.seed
        ))
    };
    let t0 = Instant::now();
    let mut rng = StdRng::seed_from_u64(s.seed ^ 0x5EED);
    let mut model = LinkModel::new(s.link.clone(), s.seed, t0);
    let mut nodes = [Side::Ground, Side::Flight].map(|side| Node {
        side,
        session: None,
        down_until: None,
        totals: SessionStats::default(),
        in_contact: false,
        received_objects: Vec::new(),
        received_messages: Vec::new(),
    });
    let mut originals: HashMap<Digest, Vec<u8>> = HashMap::new();
    let shared: [SharedStore; 2] = [SharedStore::default(), SharedStore::default()];
    for (store, objects) in shared.iter().zip([&s.up_objects, &s.down_objects]) {
        for o in objects {
            let d = Digest::of(o);
            store.lock().objects.insert(d, o.clone());
            originals.insert(d, o.clone());
        }
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        let mut session = Session::new(
            config(node.side, &s.session, rng.random::<u64>() | 1),
            Box::new(shared[i].clone()),
        )
        .map_err(|e| e.to_string())?;
        let (objects, messages) = match node.side {
            Side::Ground => (&s.up_objects, &s.up_messages),
            Side::Flight => (&s.down_objects, &s.down_messages),
        };
        for (k, o) in objects.iter().enumerate() {
            session
                .send_object(Digest::of(o), o.len() as u64, 1 + (k % 3) as u8)
                .map_err(|e| e.to_string())?;
        }
        for m in messages {
            session.send_message(m.clone()).map_err(|e| e.to_string())?;
        }
        node.session = Some(session);
    }
    let mut monitors = [
        Opener::new(&key(), Direction::Up, ReplayMemory::default()),
        Opener::new(&key(), Direction::Down, ReplayMemory::default()),
    ];
    let mut heap: Deliveries<(usize, Vec<u8>)> = Deliveries::new();
    let mut crashes = s.crashes.clone();
    crashes.sort_by_key(|c| c.0);
    let mut crashes = crashes.into_iter().peekable();
    let mut outcome = Outcome::default();
    let mut now = t0;
    let mut contact_open_at: Option<Instant> = None;
    let mut last_contact = false;
    let trace = std::env::var_os("ORBITDOCK_SIM_TRACE").is_some();
    let trace_packet: Option<(u64, u32)> =
        std::env::var("ORBITDOCK_SIM_TRACE").ok().and_then(|v| {
            let (a, b) = v.split_once('/')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        });
    let mut steps = 0u64;
    let mut objects_checked_at = usize::MAX;
    let mut all_objects = false;
    let mut messages_checked_at = (usize::MAX, usize::MAX);
    let (mut up_done, mut down_done) = (false, false);
    let want_up: Vec<Digest> = s.up_objects.iter().map(|o| Digest::of(o)).collect();
    let want_down: Vec<Digest> = s.down_objects.iter().map(|o| Digest::of(o)).collect();
    loop {
        steps += 1;
        if steps > 20_000_000 {
            return fail("livelock: 20M steps".into());
        }
        if now.duration_since(t0) > s.time_limit {
            return fail(format!(
                "not finished after {:?}: flight has {}/{} objects {}/{} messages, ground has {}/{} objects {}/{} messages",
                s.time_limit,
                nodes[1].received_objects.len(),
                want_up.len(),
                nodes[1].received_messages.len(),
                s.up_messages.len(),
                nodes[0].received_objects.len(),
                want_down.len(),
                nodes[0].received_messages.len(),
                s.down_messages.len()
            ));
        }
        // Crashes and restarts.
        while let Some(&(at, side)) = crashes.peek() {
            if t0 + at > now {
                break;
            }
            crashes.next();
            let i = side as usize;
            if trace {
                eprintln!(
                    "{:>10.3} {side:?} crashes",
                    now.duration_since(t0).as_secs_f64()
                );
            }
            if let Some(sess) = nodes[i].session.take() {
                add(&mut nodes[i].totals, sess.stats());
                drop(sess);
                shared[i]
                    .0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .crash();
                nodes[i].down_until = Some(now + s.restart_delay);
            }
        }
        for (i, node) in nodes.iter_mut().enumerate() {
            if node.down_until.is_some_and(|d| now >= d) {
                node.down_until = None;
                node.session = Some(
                    Session::new(
                        config(node.side, &s.session, rng.random::<u64>() | 1),
                        Box::new(shared[i].clone()),
                    )
                    .map_err(|e| format!("restart: {e}"))?,
                );
                node.in_contact = false;
            }
        }
        // Contact.
        let contact = model.in_contact(now);
        if contact && !last_contact {
            contact_open_at = Some(now);
        }
        if trace && contact != last_contact {
            eprintln!(
                "{:>10.3} contact {}",
                now.duration_since(t0).as_secs_f64(),
                contact
            );
        }
        last_contact = contact;
        // Each side: timers, transmissions, events.
        for i in 0..2 {
            let peer = 1 - i;
            let dir = if i == 0 {
                Direction::Up
            } else {
                Direction::Down
            };
            let rate = model.rate(dir);
            let node = &mut nodes[i];
            let Some(sess) = node.session.as_mut() else {
                continue;
            };
            if node.in_contact != contact || !contact {
                sess.set_link(now, contact, rate);
                node.in_contact = contact;
            }
            sess.handle_timeout(now);
            let mut spare_before = sess.stats().payload_spare;
            while let Some(packet) = sess.poll_transmit(now) {
                // A spare copy (a configured rate, nothing waiting) is sent blind, in time the
                // link would have idled: the invariant below is about what the sender knows.
                let spare =
                    std::mem::replace(&mut spare_before, sess.stats().payload_spare) < spare_before;
                if packet.len() > s.session.datagram_bytes {
                    return fail(format!(
                        "{:?} sent a datagram of {} bytes, over the link's {}",
                        node.side,
                        packet.len(),
                        s.session.datagram_bytes
                    ));
                }
                // The invariant: nothing the receiver holds durably is sent again (but as a
                // spare copy).
                // The monitor sees each side's packets in the order they are sent: a new epoch is
                // the side's new run.
                let opened = monitors[i].open(&packet).ok();
                if let Some(o) = opened.as_ref().filter(|o| !o.proven) {
                    monitors[i].promote(o.epoch);
                }
                if let Some(o) = opened
                    && let Ok(chunks) = decode_chunks(&o.body)
                {
                    let peer_store = shared[peer].0.lock().unwrap_or_else(|e| e.into_inner());
                    for c in chunks {
                        if trace {
                            match &c {
                                Chunk::Data {
                                    transfer, index, ..
                                } => {
                                    if trace_packet == Some((*transfer, *index)) {
                                        eprintln!(
                                            "{:>10.3} {:?} sends data {transfer}/{index} pn {}",
                                            now.duration_since(t0).as_secs_f64(),
                                            node.side,
                                            pn_of(&packet)
                                        );
                                    }
                                }
                                other => eprintln!(
                                    "{:>10.3} {:?} sends {:?}",
                                    now.duration_since(t0).as_secs_f64(),
                                    node.side,
                                    other
                                ),
                            }
                        }
                        if let Chunk::Data {
                            transfer, index, ..
                        } = c
                        {
                            let durable = peer_store
                                .persisted(transfer)
                                .is_some_and(|r| r.iter().any(|&(a, b)| index >= a && index < b));
                            if !spare && (durable || peer_store.is_committed(transfer)) {
                                return fail(format!(
                                    "{:?} sent packet {index} of transfer {transfer} which the peer holds durably",
                                    node.side
                                ));
                            }
                        }
                    }
                }
                for (at, bytes) in model.transmit(now, dir, &packet) {
                    heap.push(at, (peer, bytes));
                }
            }
            while let Some(ev) = sess.poll_event() {
                match ev {
                    Event::ObjectReceived { digest, .. } => {
                        let store = shared[i].0.lock().unwrap_or_else(|e| e.into_inner());
                        if store.objects.get(&digest) != originals.get(&digest) {
                            return fail(format!(
                                "{:?} committed object {digest} with other bytes",
                                node.side
                            ));
                        }
                        node.received_objects.push(digest);
                    }
                    Event::Message { seq, bytes } => {
                        node.received_messages.push(bytes);
                        sess.message_done(seq);
                    }
                    Event::ObjectFailed { digest, error } => {
                        return fail(format!("{:?} could not send {digest}: {error}", node.side));
                    }
                    Event::ObjectRefused { digest, reason } => {
                        return fail(format!("{:?}: {digest} refused: {reason}", node.side));
                    }
                    Event::ObjectDeclined { digest, reason, .. } => {
                        return fail(format!("{:?} refused {digest}: {reason}", node.side));
                    }
                    Event::ObjectDelivered { .. } => {}
                    Event::DatagramMismatch { ours, peers, .. } => {
                        return fail(format!(
                            "{:?} heard of datagrams of {peers} bytes, its own being {ours}: both sides have the same",
                            node.side
                        ));
                    }
                }
            }
            if i == 1 {
                let received = node.totals.payload_received + sess.stats().payload_received;
                if let Some(open) = contact_open_at
                    && received > 0
                    && outcome.first_payload.is_empty()
                {
                    outcome.first_payload.push(now.duration_since(open));
                    contact_open_at = None;
                }
            }
        }
        // Done?
        let messages_ok = |got: &Vec<Vec<u8>>, want: &Vec<Vec<u8>>| -> Result<bool, String> {
            if got.len() > want.len() || got[..] != want[..got.len()] {
                return Err("messages out of order, duplicated or altered".into());
            }
            Ok(got.len() == want.len())
        };
        let counts = (
            nodes[1].received_messages.len(),
            nodes[0].received_messages.len(),
        );
        if counts != messages_checked_at {
            messages_checked_at = counts;
            let up = messages_ok(&nodes[1].received_messages, &s.up_messages);
            let down = messages_ok(&nodes[0].received_messages, &s.down_messages);
            (up_done, down_done) = match (up, down) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return fail(e),
            };
        }
        // The store is the truth for objects (an event may die with a crash; the object does not);
        // checking it is costly, so only when it may have changed.
        let seen = nodes[0].received_objects.len() + nodes[1].received_objects.len();
        if seen != objects_checked_at || steps.is_multiple_of(4096) {
            objects_checked_at = seen;
            all_objects = want_up
                .iter()
                .all(|d| shared[1].lock().objects.get(d) == originals.get(d))
                && want_down
                    .iter()
                    .all(|d| shared[0].lock().objects.get(d) == originals.get(d));
        }
        let idle = nodes
            .iter()
            .all(|n| n.session.as_ref().is_some_and(|s| s.is_idle()));
        if up_done && down_done && all_objects && idle {
            outcome.elapsed = now.duration_since(t0);
            break;
        }
        // Next instant.
        let mut next = heap.next_at();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for n in &nodes {
            consider(n.session.as_ref().and_then(|s| s.poll_timeout()));
            consider(n.down_until);
        }
        consider(model.next_change(now));
        consider(crashes.peek().map(|&(at, _)| t0 + at));
        let Some(mut next) = next else {
            let state: Vec<String> = nodes
                .iter()
                .map(|n| match &n.session {
                    Some(s) => format!(
                        "{:?}: {} outgoing ({} bytes), stats {:?}",
                        n.side,
                        s.outgoing(),
                        s.outgoing_bytes(),
                        s.stats()
                    ),
                    None => format!("{:?}: down", n.side),
                })
                .collect();
            return fail(format!(
                "stuck at {:?}: nothing in flight and no timer; contact {}; {}",
                now.duration_since(t0),
                model.in_contact(now),
                state.join("; ")
            ));
        };
        if next <= now {
            next = now + Duration::from_micros(100);
        }
        if model.in_contact(now) {
            outcome.contact_time += next.duration_since(now);
        }
        now = next;
        while let Some((to, bytes)) = heap.pop_due(now) {
            if let Some(sess) = nodes[to].session.as_mut() {
                sess.handle_datagram(now, &bytes);
            }
        }
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        if let Some(sess) = node.session.as_ref() {
            add(&mut node.totals, sess.stats());
        }
        let store = shared[i].0.lock().unwrap_or_else(|e| e.into_inner());
        for d in &store.commits {
            if !originals.contains_key(d) {
                return fail(format!(
                    "{:?} committed an object nobody sent: {d}",
                    node.side
                ));
            }
        }
    }
    outcome.ground = nodes[0].totals.clone();
    outcome.flight = nodes[1].totals.clone();
    outcome.up = model.stats(Direction::Up);
    outcome.down = model.stats(Direction::Down);
    Ok(outcome)
}

fn pn_of(packet: &[u8]) -> u64 {
    PacketHeader::peek(packet).map_or(0, |h| h.pn)
}

/// A [`MemStore`] shared between a session and the simulation that crashes it.
#[derive(Clone, Default)]
struct SharedStore(std::sync::Arc<std::sync::Mutex<MemStore>>);

impl sync::Store for SharedStore {
    fn load(&mut self) -> std::io::Result<sync::Persisted> {
        self.lock().load()
    }
    fn save_counters(&mut self, c: &sync::Counters) -> std::io::Result<()> {
        self.lock().save_counters(c)
    }
    fn outbox_put(&mut self, e: &sync::OutboxEntry) -> std::io::Result<()> {
        self.lock().outbox_put(e)
    }
    fn outbox_remove(&mut self, t: u64) -> std::io::Result<()> {
        self.lock().outbox_remove(t)
    }
    fn read_object(&mut self, d: &Digest, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.lock().read_object(d, offset, buf)
    }
    fn has_object(&mut self, d: &Digest) -> bool {
        self.lock().has_object(d)
    }
    fn spool_write(&mut self, t: u64, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.lock().spool_write(t, offset, data)
    }
    fn spool_persist(
        &mut self,
        t: u64,
        o: Option<&wire::Offer>,
        r: &[(u32, u32)],
        at: Duration,
    ) -> std::io::Result<()> {
        self.lock().spool_persist(t, o, r, at)
    }
    fn spool_commit(&mut self, o: &wire::Offer) -> std::io::Result<sync::Commit> {
        self.lock().spool_commit(o)
    }
    fn spool_drop(&mut self, t: u64) -> std::io::Result<()> {
        self.lock().spool_drop(t)
    }
    fn inbox_remove(&mut self, seq: u64) -> std::io::Result<()> {
        self.lock().inbox_remove(seq)
    }
}

impl SharedStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemStore> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
