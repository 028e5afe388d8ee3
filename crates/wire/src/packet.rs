//! Authenticated packets: version 7 of the link framing.
//!
//! Every datagram is sealed with ChaCha20-Poly1305 under a key of its own sender's run. A packet
//! has a long form, whose header names the sender's epoch and its whole packet number, and a
//! short form with neither, only the packet number's low 16 bits:
//!
//! ```text
//! long                                   short
//! 0   u8   version | form | direction    0   u8   version | form | direction
//! 1   u64  epoch, big-endian, never 0    1   u16  packet number's low 16 bits, big-endian
//! 9   u48  packet number, big-endian     3   ..   ciphertext of the body
//! 15  ..   ciphertext of the body
//! -16 [16] Poly1305 tag over the header (as associated data) and the ciphertext
//! ```
//!
//! The short form's receiver takes the whole number to be the one nearest above the highest it
//! accepted in the epoch it tries (or its floor) with those low bits, as QUIC does, and the
//! nonce is made of the whole number: a number read wrong makes the tag fail, as a forgery
//! does, and the replay window judges whole numbers. The sender uses the short form only while
//! its packet number is less than [`SHORT_PN_REACH`] above the highest the peer has
//! acknowledged, so the receiver's highest is never further off. (Versions 5 and 6's short
//! header held the whole 48-bit number: 7 bytes, where version 7's is 3.)
//!
//! There is no separate checksum (version 4 ended in a CRC32C): the tag authenticates every byte,
//! so a datagram corrupted on the line fails it as a forgery does, and is counted with them
//! ([`PacketError::Forged`]). Garbage is still dropped before any cryptography when its length,
//! version, reserved bits, direction or epoch cannot be a packet's; what looks like one costs
//! one tag check against the epoch it names (the long form) or at most 1 + [`MAX_CANDIDATES`]
//! (the short form), as a forgery always did.
//!
//! Byte 0 holds the version in its high nibble (7), the form in bit 1 (1: short) and the
//! direction in bit 0 (0 ground→flight, 1 flight→ground); bits 2 and 3 are 0. Packet numbers
//! increase per direction within an epoch, whatever the form. (Version 4 ended each datagram in
//! a CRC32C, and its `Hello` chunk carried no replay floor; version 5's `Hello` did not carry
//! its sender's datagram size; version 6's short header held the whole packet number: a peer
//! of any of them is refused by its version, never misread.)
//!
//! A datagram is at most [`MAX_PACKET`] bytes; a link may use smaller ones (a system's
//! `datagram_bytes`, at least [`MIN_DATAGRAM`]: the session fits every chunk it sends in them).
//!
//! # Keys and nonces
//!
//! The satellite's [`LinkKey`] never seals a packet itself. Each run of a sender draws a random
//! 64-bit epoch and seals under the subkey `HKDF-SHA256(salt = "orbitdock link v3", ikm = link
//! key, info = direction ‖ epoch)` ([`EpochKey`]; the derivation has not changed since version
//! 3); the nonce is `direction ‖ 0⁵ ‖ packet number`, in both forms. A (key, nonce) pair could
//! repeat only if one run numbered two packets alike, or if two runs drew the same epoch (a
//! 2⁻⁶⁴ chance per pair of runs): no saved counter is needed for that, so a lost or restored
//! state file cannot make the sender reuse a nonce. The associated data is the header as sent,
//! so a packet cannot be moved from one form to the other, nor to another epoch.
//!
//! A short packet saves the 8 bytes of the epoch. Its receiver finds the key by trial: the
//! peer's current epoch's, then each candidate's (at most 1 + [`MAX_CANDIDATES`] tag checks). A
//! sender uses it only once the peer has shown that it knows the sender's epoch (the session
//! decides, see `sync`); its first packets, and whatever it sends while unsure, are long.
//!
//! # Epochs and replays
//!
//! The [`Opener`] keeps a
//! [`ReplayWindow`] for the peer's current epoch. A packet of an epoch it does not know that
//! authenticates may be the peer's new run, or a replay of a run long gone (only
//! [`RETIRED_EPOCHS`] are remembered): it makes that epoch a *candidate*, with a window of its
//! own, and the current epoch stays current (at most [`MAX_CANDIDATES`]; one evicted is remembered
//! with its highest packet number, [`EVICTED_EPOCHS`] of them, so a recording cycling old runs is
//! not accepted anew each time round). [`Opened::proven`] tells the caller which it was;
//! the caller reads only a handshake from a candidate and calls [`Opener::promote`] once the
//! candidate has proven that it is live (in `sync`: a `HelloAck` answering a `Hello` of this
//! run, which no recording holds). Promotion retires the epoch before it for good (its late or
//! replayed packets are refused). What the opener knows is its [`ReplayMemory`], which the
//! session persists, so a restart of the receiver still refuses the epochs it retired and the
//! current epoch's packets it accepted: the session saves, for the current epoch, a mark
//! reserved ahead of the packets it accepts (never behind one), and the restarted opener
//! refuses everything at or below it ([`Opener::floor`]; the peer, told the floor in a `Hello`,
//! numbers its next packets above it). That current epoch is proven again when it is seen after
//! the restart, as before it.

use std::collections::VecDeque;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use hkdf::Hkdf;
use sha2::{Digest as _, Sha256};

/// The largest datagram either side sends or accepts.
pub const MAX_PACKET: usize = 1500;
/// The smallest datagram size a link may be configured with: room for the largest control chunk
/// the session cannot cut (a `Refuse` with its longest reason) in a long packet.
pub const MIN_DATAGRAM: usize = 320;
/// Bytes a long packet adds around its body (the most a packet adds).
pub const PACKET_OVERHEAD: usize = HEADER + TAG;
/// Bytes a short packet adds around its body.
pub const SHORT_PACKET_OVERHEAD: usize = SHORT_HEADER + TAG;
/// The largest body that fits in a packet of either form.
pub const MAX_BODY: usize = MAX_PACKET - PACKET_OVERHEAD;
/// Packet numbers are 48 bits.
pub const MAX_PACKET_NUMBER: u64 = (1 << 48) - 1;
/// How far above the highest packet number the peer acknowledged a sender may number a short
/// packet: half the span of its 16 bits, so that the receiver, whose highest lies between that
/// acknowledged one and the packet, reads the number right.
pub const SHORT_PN_REACH: u64 = 1 << 15;

/// Bytes of a long packet's header: version, form and direction, epoch, packet number.
pub const PACKET_HEADER: usize = HEADER;
/// Bytes of a short packet's header: version, form and direction, packet number.
pub const SHORT_PACKET_HEADER: usize = SHORT_HEADER;
/// Epochs of the peer a [`ReplayMemory`] remembers as retired.
pub const RETIRED_EPOCHS: usize = 8;
/// Candidate epochs an [`Opener`] keeps; a new one beyond them evicts the oldest.
pub const MAX_CANDIDATES: usize = 4;
/// Evicted candidate epochs an [`Opener`] remembers with the highest packet number it accepted
/// in each, least recently evicted forgotten first: one met again is refused at or below it.
pub const EVICTED_EPOCHS: usize = 32;

const VERSION: u8 = 7;
const SHORT_FLAG: u8 = 0b10;
const HEADER: usize = 15;
const SHORT_HEADER: usize = 3;
const KDF_SALT: &[u8] = b"orbitdock link v3";
const TAG: usize = 16;

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Ground to flight (uplink).
    Up,
    /// Flight to ground (downlink).
    Down,
}

impl Direction {
    fn bit(self) -> u8 {
        match self {
            Direction::Up => 0,
            Direction::Down => 1,
        }
    }

    /// The other direction.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::Up => Direction::Down,
            Direction::Down => Direction::Up,
        }
    }
}

/// A 256-bit link key, one per satellite.
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

impl LinkKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> LinkKey {
        LinkKey(bytes)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(hex_key: &str) -> Option<LinkKey> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_key.trim(), &mut out).ok()?;
        Some(LinkKey(out))
    }

    /// The key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(…)")
    }
}

/// Why a datagram was refused. Each kind is counted by the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// Longer than [`MAX_PACKET`].
    #[error("oversized packet")]
    Oversized,
    /// Shorter than a header and a tag.
    #[error("truncated packet")]
    Truncated,
    /// Another version, the direction of the receiver's own packets, reserved bits set, or
    /// epoch 0.
    #[error("unknown version or direction")]
    Unknown,
    /// The tag does not verify: corrupted on the line, forged, sealed under another key, or
    /// (short form) under the key of an epoch the receiver does not hold.
    #[error("authentication failed")]
    Forged,
    /// A packet number already accepted, or older than the replay window, or an epoch retired.
    #[error("replayed packet")]
    Replayed,
}

/// The subkey one run of a sender seals under: derived from the link key, a direction and an
/// epoch with HKDF-SHA256.
#[derive(Clone)]
pub struct EpochKey {
    cipher: ChaCha20Poly1305,
    id: [u8; 8],
}

impl EpochKey {
    /// Derives the subkey of `epoch` for packets travelling `direction`.
    pub fn derive(key: &LinkKey, direction: Direction, epoch: u64) -> EpochKey {
        let mut info = [0u8; 9];
        info[0] = direction.bit();
        info[1..].copy_from_slice(&epoch.to_be_bytes());
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(KDF_SALT), &key.0)
            .expand(&info, &mut okm)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let digest = Sha256::digest(okm);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        EpochKey {
            cipher: ChaCha20Poly1305::new(&Key::from(okm)),
            id,
        }
    }

    /// A fingerprint of the subkey (the first 8 bytes of its sha256), to tell keys apart in
    /// logs and tests without showing them.
    pub fn id(&self) -> [u8; 8] {
        self.id
    }

    /// Opens a framed datagram: its body, authenticated with its header, or
    /// [`PacketError::Forged`]. Decrypts into a fresh buffer, so a failed trial leaves nothing
    /// behind.
    fn open(&self, datagram: &[u8], h: &Framed, pn: u64) -> Result<Vec<u8>, PacketError> {
        let tag_at = datagram.len() - TAG;
        let tag =
            Tag::try_from(&datagram[tag_at..tag_at + TAG]).map_err(|_| PacketError::Truncated)?;
        let mut body = datagram[h.header_len..tag_at].to_vec();
        self.cipher
            .decrypt_inout_detached(
                &nonce(h.direction, pn),
                &datagram[..h.header_len],
                body.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| PacketError::Forged)?;
        Ok(body)
    }
}

impl std::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EpochKey({})", hex::encode(self.id))
    }
}

/// The header of a datagram, read without keys: what a monitor of the link can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketHeader {
    /// Which way the packet travels.
    pub direction: Direction,
    /// Its sender's epoch: `None` for the short form, which does not say.
    pub epoch: Option<u64>,
    /// Its packet number; in the short form, only its low 16 bits (the receiver finds the rest:
    /// [`Opened::pn`]).
    pub pn: u64,
}

impl PacketHeader {
    /// Reads the header of a well-framed datagram of this version (nothing is verified: anyone
    /// can write a header); `None` for anything else. Never panics.
    pub fn peek(datagram: &[u8]) -> Option<PacketHeader> {
        let h = frame(datagram).ok()?;
        Some(PacketHeader {
            direction: h.direction,
            epoch: h.epoch,
            pn: h.pn,
        })
    }
}

/// Seals bodies into packets for one direction, under one epoch's subkey.
pub struct Sealer {
    key: EpochKey,
    direction: Direction,
    epoch: u64,
}

impl Sealer {
    /// A sealer for packets travelling `direction` in the sender's run `epoch` (drawn at random
    /// at start: see the module documentation).
    pub fn new(key: &LinkKey, direction: Direction, epoch: u64) -> Sealer {
        Sealer {
            key: EpochKey::derive(key, direction, epoch),
            direction,
            epoch,
        }
    }

    /// The epoch this sealer writes in its long headers.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The fingerprint of the subkey it seals under.
    pub fn key_id(&self) -> [u8; 8] {
        self.key.id()
    }

    /// Seals `body` as packet number `pn` in the long form, which names the epoch (`pn` at most
    /// [`MAX_PACKET_NUMBER`]; the caller never reuses one within the epoch, in either form). A
    /// body longer than [`MAX_BODY`] is the caller's bug and is truncated.
    pub fn seal(&self, pn: u64, body: &[u8]) -> Vec<u8> {
        self.seal_form(false, pn, body)
    }

    /// Seals `body` as packet number `pn` in the short form, without the epoch and with only the
    /// number's low 16 bits: only a receiver that holds this epoch as current or candidate, and
    /// whose highest packet number accepted in it is less than [`SHORT_PN_REACH`] below `pn`,
    /// can open it. Same rules as [`Sealer::seal`].
    pub fn seal_short(&self, pn: u64, body: &[u8]) -> Vec<u8> {
        self.seal_form(true, pn, body)
    }

    fn seal_form(&self, short: bool, pn: u64, body: &[u8]) -> Vec<u8> {
        let body = &body[..body.len().min(MAX_BODY)];
        let mut out = Vec::with_capacity(PACKET_OVERHEAD + body.len());
        let form = if short { SHORT_FLAG } else { 0 };
        out.push((VERSION << 4) | form | self.direction.bit());
        if !short {
            out.extend_from_slice(&self.epoch.to_be_bytes());
        }
        if short {
            out.extend_from_slice(&(pn as u16).to_be_bytes());
        } else {
            out.extend_from_slice(&(pn & MAX_PACKET_NUMBER).to_be_bytes()[2..]);
        }
        let header_len = out.len();
        out.extend_from_slice(body);
        let (header, rest) = out.split_at_mut(header_len);
        let tag = self
            .key
            .cipher
            .encrypt_inout_detached(&nonce(self.direction, pn), header, rest.into())
            .unwrap_or_default();
        out.extend_from_slice(tag.as_slice());
        out
    }
}

/// What an [`Opener`] knows of the peer's epochs, to be persisted so that a restart of the
/// receiver refuses what it refused before. Candidates are not part of it: after a restart they
/// are met again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayMemory {
    /// The peer's current epoch and a packet number at or above every one accepted in it (the
    /// session saves a mark reserved ahead of use, so that a crash loses no accepted number).
    /// An opener made from it refuses every packet of that epoch at or below it.
    pub current: Option<(u64, u64)>,
    /// Epochs the peer left behind, most recent first (0: an empty slot).
    pub retired: [u64; RETIRED_EPOCHS],
}

/// A datagram opened: its packet number, its body, and the epoch it was sealed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The packet number.
    pub pn: u64,
    /// The sender's epoch (found by trial for the short form).
    pub epoch: u64,
    /// Whether that epoch is the peer's current one. When not, it is a candidate: read only its
    /// handshake, until it proves itself and is [`Opener::promote`]d.
    pub proven: bool,
    /// Whether this packet made an epoch the opener never met a candidate: not one it holds,
    /// nor one it evicted and still remembers (that one comes back as a candidate, refusing
    /// what it accepted before, with this false).
    pub new_candidate: bool,
    /// The decrypted body.
    pub body: Vec<u8>,
}

/// One epoch of the peer the opener holds a key for.
struct Known {
    epoch: u64,
    key: EpochKey,
    window: ReplayWindow,
}

/// Opens packets travelling one direction, refusing forgeries and replays.
pub struct Opener {
    link_key: LinkKey,
    direction: Direction,
    /// The peer's current epoch: its subkey and window (after a restart, the persisted epoch
    /// with its persisted floor).
    current: Option<Known>,
    /// Epochs that authenticated but have not proven themselves, oldest first, at most
    /// [`MAX_CANDIDATES`].
    candidates: VecDeque<Known>,
    /// Epochs left behind, most recent first, at most [`RETIRED_EPOCHS`].
    retired: VecDeque<u64>,
    /// Candidates evicted, with the highest packet number accepted in each, most recent last, at
    /// most [`EVICTED_EPOCHS`]: a recording cycling more old runs than there are candidate slots
    /// gets each of its packets accepted once, not once per cycle.
    evicted: VecDeque<(u64, u64)>,
}

impl Opener {
    /// An opener for packets travelling `direction`, remembering `memory` (what an opener of a
    /// previous run knew, as persisted; the default for none).
    pub fn new(key: &LinkKey, direction: Direction, memory: ReplayMemory) -> Opener {
        let current = memory
            .current
            .filter(|&(e, _)| e != 0)
            .map(|(epoch, highest)| Known {
                epoch,
                key: EpochKey::derive(key, direction, epoch),
                window: ReplayWindow::new(Some(highest)),
            });
        Opener {
            link_key: key.clone(),
            direction,
            current,
            candidates: VecDeque::new(),
            retired: memory.retired.iter().copied().filter(|&e| e != 0).collect(),
            evicted: VecDeque::new(),
        }
    }

    /// The peer's current epoch: the last one promoted, or the one remembered.
    pub fn epoch(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.epoch)
    }

    /// The highest packet number accepted in the peer's current epoch since this opener was made.
    pub fn highest(&self) -> Option<u64> {
        self.current.as_ref().and_then(|c| c.window.highest)
    }

    /// The peer's current epoch and the floor its window started from (as remembered): every
    /// packet of it numbered at or below is refused. `None` when the opener remembers no floor
    /// for its current epoch (it met it as a candidate).
    pub fn floor(&self) -> Option<(u64, u64)> {
        let c = self.current.as_ref()?;
        c.window.floor.map(|f| (c.epoch, f))
    }

    /// The candidate epochs, oldest first.
    pub fn candidates(&self) -> Vec<u64> {
        self.candidates.iter().map(|c| c.epoch).collect()
    }

    /// What this opener knows, to be persisted.
    pub fn memory(&self) -> ReplayMemory {
        let mut retired = [0u64; RETIRED_EPOCHS];
        for (slot, &e) in retired.iter_mut().zip(&self.retired) {
            *slot = e;
        }
        let current = self
            .current
            .as_ref()
            .and_then(|c| c.window.highest.or(c.window.floor).map(|h| (c.epoch, h)));
        ReplayMemory { current, retired }
    }

    /// Makes candidate `epoch` the peer's current epoch and retires the one before (its packets
    /// are refused from then on). Other candidates stay. Returns whether `epoch` was a
    /// candidate; when not, nothing changes.
    pub fn promote(&mut self, epoch: u64) -> bool {
        let Some(i) = self.candidates.iter().position(|c| c.epoch == epoch) else {
            return false;
        };
        let Some(promoted) = self.candidates.remove(i) else {
            return false;
        };
        if let Some(old) = self.current.replace(promoted) {
            self.retired.push_front(old.epoch);
            self.retired.truncate(RETIRED_EPOCHS);
        }
        true
    }

    /// Checks and decrypts one datagram. Never panics.
    pub fn open(&mut self, datagram: &[u8]) -> Result<Opened, PacketError> {
        let h = frame(datagram)?;
        if h.direction != self.direction {
            return Err(PacketError::Unknown);
        }
        match h.epoch {
            Some(epoch) => self.open_long(datagram, &h, epoch),
            None => self.open_short(datagram, &h),
        }
    }

    fn open_long(&mut self, d: &[u8], h: &Framed, epoch: u64) -> Result<Opened, PacketError> {
        if self.retired.contains(&epoch) {
            return Err(PacketError::Replayed);
        }
        if let Some(c) = self.current.as_mut().filter(|c| c.epoch == epoch) {
            let (pn, body) = c.open(d, h)?;
            return Ok(opened(pn, epoch, true, false, body));
        }
        if let Some(c) = self.candidates.iter_mut().find(|c| c.epoch == epoch) {
            let (pn, body) = c.open(d, h)?;
            return Ok(opened(pn, epoch, false, false, body));
        }
        // An epoch not seen before, or evicted (refusing what it accepted then): a candidate,
        // once its packet authenticates.
        let was = self.evicted.iter().position(|&(e, _)| e == epoch);
        let floor = was.map(|i| self.evicted[i].1);
        if floor.is_some_and(|f| h.pn <= f) {
            return Err(PacketError::Replayed);
        }
        let mut c = Known {
            epoch,
            key: EpochKey::derive(&self.link_key, self.direction, epoch),
            window: ReplayWindow::new(floor),
        };
        let (pn, body) = c.open(d, h)?;
        if let Some(i) = was {
            self.evicted.remove(i);
        }
        if self.candidates.len() >= MAX_CANDIDATES
            && let Some(old) = self.candidates.pop_front()
            && let Some(top) = old.window.highest.or(old.window.floor)
        {
            if self.evicted.len() >= EVICTED_EPOCHS {
                self.evicted.pop_front();
            }
            self.evicted.push_back((old.epoch, top));
        }
        self.candidates.push_back(c);
        Ok(opened(pn, epoch, false, was.is_none(), body))
    }

    /// A short packet: the current epoch's key first, then the candidates', newest first.
    fn open_short(&mut self, d: &[u8], h: &Framed) -> Result<Opened, PacketError> {
        let mut replayed = false;
        let current = self.current.iter_mut().map(|c| (c, true));
        let candidates = self.candidates.iter_mut().rev().map(|c| (c, false));
        for (c, proven) in current.chain(candidates) {
            match c.open(d, h) {
                Ok((pn, body)) => return Ok(opened(pn, c.epoch, proven, false, body)),
                Err(PacketError::Replayed) => replayed = true,
                Err(_) => {}
            }
        }
        Err(if replayed {
            PacketError::Replayed
        } else {
            PacketError::Forged
        })
    }
}

impl Known {
    /// Opens a datagram of this epoch: refused as a replay before any decryption when its
    /// number was accepted or is too old, and recorded in the window once it authenticated.
    /// Returns the whole packet number (a short packet's read against this epoch's window) and
    /// the body.
    fn open(&mut self, d: &[u8], h: &Framed) -> Result<(u64, Vec<u8>), PacketError> {
        let pn = if h.epoch.is_some() {
            h.pn
        } else {
            // Nothing accepted in this epoch and no floor: nothing to read the number against
            // (never so for an epoch met in a long packet, or remembered).
            let base = self
                .window
                .highest
                .or(self.window.floor)
                .ok_or(PacketError::Forged)?;
            expand_pn(base, h.pn as u16).ok_or(PacketError::Forged)?
        };
        if !self.window.check(pn) {
            return Err(PacketError::Replayed);
        }
        let body = self.key.open(d, h, pn)?;
        self.window.accept(pn);
        Ok((pn, body))
    }
}

/// The whole packet number whose low 16 bits are `low` nearest to `base + 1` (the next number
/// after the highest accepted), within half the span either way; `None` past
/// [`MAX_PACKET_NUMBER`].
fn expand_pn(base: u64, low: u16) -> Option<u64> {
    const SPAN: u64 = 1 << 16;
    let expected = base.saturating_add(1);
    let candidate = (expected & !(SPAN - 1)) | u64::from(low);
    let pn = if candidate.saturating_add(SPAN / 2) <= expected {
        candidate.checked_add(SPAN)?
    } else if candidate > expected.saturating_add(SPAN / 2) && candidate >= SPAN {
        candidate - SPAN
    } else {
        candidate
    };
    (pn <= MAX_PACKET_NUMBER).then_some(pn)
}

fn opened(pn: u64, epoch: u64, proven: bool, new_candidate: bool, body: Vec<u8>) -> Opened {
    Opened {
        pn,
        epoch,
        proven,
        new_candidate,
        body,
    }
}

/// A datagram's framing, checked without keys.
struct Framed {
    direction: Direction,
    /// `None`: the short form.
    epoch: Option<u64>,
    /// The packet number as written: the short form's is its low 16 bits only.
    pn: u64,
    header_len: usize,
}

/// Checks length and version; reads the header. The direction is the one the header
/// names: an [`Opener`] refuses the other.
fn frame(d: &[u8]) -> Result<Framed, PacketError> {
    if d.len() > MAX_PACKET {
        return Err(PacketError::Oversized);
    }
    if d.len() < SHORT_PACKET_OVERHEAD {
        return Err(PacketError::Truncated);
    }
    let short = d[0] & SHORT_FLAG != 0;
    let header_len = if short { SHORT_HEADER } else { HEADER };
    if d.len() < header_len + TAG {
        return Err(PacketError::Truncated);
    }
    if d[0] >> 4 != VERSION || d[0] & 0x0c != 0 {
        return Err(PacketError::Unknown);
    }
    let direction = if d[0] & 1 == 0 {
        Direction::Up
    } else {
        Direction::Down
    };
    let epoch = if short {
        None
    } else {
        let mut epoch = [0u8; 8];
        epoch.copy_from_slice(&d[1..9]);
        match u64::from_be_bytes(epoch) {
            0 => return Err(PacketError::Unknown),
            e => Some(e),
        }
    };
    // The number ends the header: its low 16 bits in the short form, all 48 in the long.
    let mut pn = [0u8; 8];
    let from = 8 - (header_len - if short { 1 } else { 9 });
    pn[from..].copy_from_slice(&d[header_len - (8 - from)..header_len]);
    Ok(Framed {
        direction,
        epoch,
        pn: u64::from_be_bytes(pn),
        header_len,
    })
}

fn nonce(direction: Direction, pn: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[0] = direction.bit();
    n[6..].copy_from_slice(&pn.to_be_bytes()[2..]);
    Nonce::from(n)
}

/// Remembers which of the last [`ReplayWindow::SIZE`] packet numbers were accepted.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    highest: Option<u64>,
    floor: Option<u64>,
    /// Bit `i` of the map: `highest - i` was accepted.
    seen: [u64; ReplayWindow::SIZE / 64],
}

impl ReplayWindow {
    /// Packet numbers tracked below the highest.
    pub const SIZE: usize = 1024;

    /// A window refusing everything at or below `floor`.
    pub fn new(floor: Option<u64>) -> ReplayWindow {
        ReplayWindow {
            highest: None,
            floor,
            seen: [0; ReplayWindow::SIZE / 64],
        }
    }

    /// Whether `pn` would be accepted.
    pub fn check(&self, pn: u64) -> bool {
        if self.floor.is_some_and(|f| pn <= f) {
            return false;
        }
        match self.highest {
            None => true,
            Some(h) if pn > h => true,
            Some(h) => {
                let back = h - pn;
                back < ReplayWindow::SIZE as u64 && !self.bit(back as usize)
            }
        }
    }

    /// Records `pn` as accepted (after it authenticated).
    pub fn accept(&mut self, pn: u64) {
        match self.highest {
            Some(h) if pn <= h => {
                let back = (h - pn) as usize;
                if back < ReplayWindow::SIZE {
                    self.seen[back / 64] |= 1 << (back % 64);
                }
            }
            _ => {
                let shift = self.highest.map_or(ReplayWindow::SIZE as u64, |h| pn - h);
                self.shift(shift);
                self.seen[0] |= 1;
                self.highest = Some(pn);
            }
        }
    }

    fn bit(&self, back: usize) -> bool {
        self.seen[back / 64] & (1 << (back % 64)) != 0
    }

    fn shift(&mut self, by: u64) {
        if by >= ReplayWindow::SIZE as u64 {
            self.seen = [0; ReplayWindow::SIZE / 64];
            return;
        }
        let (words, bits) = ((by / 64) as usize, (by % 64) as u32);
        let n = self.seen.len();
        for i in (0..n).rev() {
            let src = i.checked_sub(words);
            let mut v = src.map_or(0, |s| self.seen[s] << bits);
            if let Some(s) = src.and_then(|s| s.checked_sub(1)).filter(|_| bits > 0) {
                v |= self.seen[s] >> (64 - bits);
            }
            self.seen[i] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> LinkKey {
        LinkKey::from_bytes([b; 32])
    }

    /// Opens `p`, returning its packet number and body.
    fn open(o: &mut Opener, p: &[u8]) -> Result<(u64, Vec<u8>), PacketError> {
        o.open(p).map(|x| (x.pn, x.body))
    }

    #[test]
    fn seals_and_opens_in_both_forms() {
        let s = Sealer::new(&key(1), Direction::Up, 9);
        let mut o = Opener::new(&key(1), Direction::Up, ReplayMemory::default());
        let p = s.seal(5, b"hello");
        assert_eq!(p.len(), 5 + PACKET_OVERHEAD);
        assert_eq!(
            PacketHeader::peek(&p),
            Some(PacketHeader {
                direction: Direction::Up,
                epoch: Some(9),
                pn: 5
            })
        );
        let first = o.open(&p).unwrap();
        assert_eq!(
            (first.pn, first.epoch, &first.body[..]),
            (5, 9, &b"hello"[..])
        );
        assert!(
            !first.proven && first.new_candidate,
            "a first contact is a candidate"
        );
        assert_eq!(o.epoch(), None);
        assert!(o.promote(9));
        assert_eq!(o.epoch(), Some(9));
        // The short form: 12 bytes less (no epoch on the line, and only the number's low 16
        // bits), the same key found by trial.
        let short = s.seal_short(6, b"hello");
        assert_eq!(short.len(), 5 + SHORT_PACKET_OVERHEAD);
        assert_eq!(short.len() + 12, p.len());
        assert_eq!(
            PacketHeader::peek(&short),
            Some(PacketHeader {
                direction: Direction::Up,
                epoch: None,
                pn: 6
            })
        );
        let opened = o.open(&short).unwrap();
        assert_eq!((opened.pn, opened.epoch, opened.proven), (6, 9, true));
        assert_eq!(opened.body, b"hello");
        // Replays of either form, and a long packet re-framed as short (or the reverse), fail.
        assert_eq!(o.open(&short), Err(PacketError::Replayed));
        assert_eq!(o.open(&p), Err(PacketError::Replayed));
        let long7 = s.seal(7, b"x");
        let mut cut = vec![long7[0] | SHORT_FLAG];
        cut.extend_from_slice(&long7[13..]);
        assert_eq!(o.open(&cut), Err(PacketError::Forged));
        assert_eq!(open(&mut o, &long7).unwrap().0, 7);
    }

    /// A short packet's number is read whole against the highest accepted, across the 16 bits'
    /// wrap and ahead of it by less than [`SHORT_PN_REACH`]; a number read wrong fails the tag
    /// (the nonce is the whole number), so a packet numbered beyond the reach is refused, never
    /// taken for another.
    #[test]
    fn short_numbers_are_read_whole_across_the_wrap() {
        let s = Sealer::new(&key(1), Direction::Down, 3);
        let mut o = Opener::new(&key(1), Direction::Down, ReplayMemory::default());
        open(&mut o, &s.seal(65_530, b"a")).unwrap();
        assert!(o.promote(3));
        // Ahead across the wrap, then late within the replay window (read below the highest),
        // then as far ahead as the sender may go.
        for pn in [
            65_531,
            65_536,
            65_540,
            65_539,
            65_533,
            65_540 + SHORT_PN_REACH - 1,
        ] {
            let p = s.seal_short(pn, b"b");
            assert_eq!(PacketHeader::peek(&p).map(|h| h.pn), Some(pn & 0xffff));
            assert_eq!(open(&mut o, &p).map(|(n, _)| n), Ok(pn), "{pn}");
        }
        // Too far ahead: read as a number 2^16 lower, older than the replay window, or failing
        // the tag (made with the whole number's nonce): refused either way.
        let highest = o.highest().unwrap();
        for far in [
            highest + SHORT_PN_REACH + 2,
            highest + 3 * SHORT_PN_REACH / 2,
        ] {
            assert!(matches!(
                o.open(&s.seal_short(far, b"d")),
                Err(PacketError::Forged | PacketError::Replayed)
            ));
        }
        let far = highest + SHORT_PN_REACH + 2;
        // The long form carries the whole number: any distance.
        assert_eq!(open(&mut o, &s.seal(far, b"d")).unwrap().0, far);
        // Near the top of the numbers, nothing is read past them.
        assert_eq!(expand_pn(MAX_PACKET_NUMBER - 1, 0), None);
        assert_eq!(
            expand_pn(MAX_PACKET_NUMBER - 1, 0xffff),
            Some(MAX_PACKET_NUMBER)
        );
        assert_eq!(expand_pn(0, 5), Some(5));
        // A floor from a damaged state file at the very top: no number, and no panic.
        assert_eq!(expand_pn(u64::MAX, 0), None);
        assert_eq!(expand_pn(u64::MAX - 1, 7), None);
        assert_eq!(expand_pn(3, 0xfff0), Some(0xfff0));
    }

    #[test]
    fn each_epoch_and_direction_has_its_own_subkey() {
        let ids = [
            Sealer::new(&key(1), Direction::Up, 1).key_id(),
            Sealer::new(&key(1), Direction::Up, 2).key_id(),
            Sealer::new(&key(1), Direction::Down, 1).key_id(),
            Sealer::new(&key(2), Direction::Up, 1).key_id(),
        ];
        for i in 0..ids.len() {
            for j in i + 1..ids.len() {
                assert_ne!(ids[i], ids[j], "{i} {j}");
            }
        }
        assert_eq!(ids[0], Sealer::new(&key(1), Direction::Up, 1).key_id());
        // The same packet number in two epochs: different ciphertexts.
        let a = Sealer::new(&key(1), Direction::Up, 1).seal(1, b"same");
        let b = Sealer::new(&key(1), Direction::Up, 2).seal(1, b"same");
        assert_ne!(a[HEADER..], b[HEADER..]);
    }

    #[test]
    fn refuses_replays_forgeries_and_corruption() {
        let s = Sealer::new(&key(1), Direction::Up, 4);
        let mut o = Opener::new(&key(1), Direction::Up, ReplayMemory::default());
        let p = s.seal(7, b"data");
        open(&mut o, &p).unwrap();
        assert!(o.promote(4));
        assert_eq!(o.open(&p), Err(PacketError::Replayed));
        // Another key: forged, in this epoch and in another, long or short.
        let evil = Sealer::new(&key(2), Direction::Up, 4).seal(8, b"data");
        assert_eq!(o.open(&evil), Err(PacketError::Forged));
        let evil = Sealer::new(&key(2), Direction::Up, 5).seal(8, b"data");
        assert_eq!(o.open(&evil), Err(PacketError::Forged));
        let evil = Sealer::new(&key(2), Direction::Up, 4).seal_short(8, b"data");
        assert_eq!(o.open(&evil), Err(PacketError::Forged));
        assert_eq!(o.epoch(), Some(4), "a forgery does not move the epoch");
        assert!(o.candidates().is_empty(), "nor makes a candidate");
        // A genuine packet with its epoch rewritten: forged.
        let mut moved = s.seal(8, b"data");
        moved[8] ^= 1;
        assert_eq!(o.open(&moved), Err(PacketError::Forged));
        // A bit flipped on the line, anywhere (body, tag, packet number): the tag catches it,
        // and the packet's number is not spent: the genuine one opens after.
        for at in [HEADER + 1, HEADER + 4, HEADER - 1] {
            let mut bad = s.seal(9, b"data");
            bad[at] ^= 4;
            assert_eq!(o.open(&bad), Err(PacketError::Forged), "{at}");
        }
        let mut bad = s.seal_short(10, b"data");
        let last = bad.len() - 1;
        bad[last] ^= 0x80;
        assert_eq!(o.open(&bad), Err(PacketError::Forged));
        assert!(o.open(&s.seal(9, b"data")).is_ok());
        assert!(o.open(&s.seal_short(10, b"data")).is_ok());
        // The other direction's packets are refused outright, and so are epoch 0, another
        // version and reserved bits.
        let down = Sealer::new(&key(1), Direction::Down, 4).seal(11, b"x");
        assert_eq!(o.open(&down), Err(PacketError::Unknown));
        let zero = Sealer::new(&key(1), Direction::Up, 0).seal(11, b"x");
        assert_eq!(o.open(&zero), Err(PacketError::Unknown));
        for first in [0x30, 0x44] {
            let mut other = s.seal(11, b"x");
            other[0] = first;
            assert_eq!(o.open(&other), Err(PacketError::Unknown), "{first:#x}");
        }
        assert_eq!(o.open(&p[..10]), Err(PacketError::Truncated));
        assert_eq!(
            o.open(&vec![0; MAX_PACKET + 1]),
            Err(PacketError::Oversized)
        );
        // A forged packet did not poison the window: the real 8 still opens.
        assert!(o.open(&s.seal(8, b"late")).is_ok());
    }

    #[test]
    fn a_candidate_does_not_retire_the_current_epoch_and_promotion_does() {
        let old = Sealer::new(&key(1), Direction::Down, 100);
        let new = Sealer::new(&key(1), Direction::Down, 200);
        let mut o = Opener::new(&key(1), Direction::Down, ReplayMemory::default());
        let early = old.seal(1, b"a");
        open(&mut o, &early).unwrap();
        o.promote(100);
        open(&mut o, &old.seal_short(2, b"b")).unwrap();
        // The peer restarted and lost its counters: numbering starts again under a new subkey.
        let c = o.open(&new.seal(1, b"c")).unwrap();
        assert!(!c.proven && c.new_candidate);
        assert_eq!(o.epoch(), Some(100), "a candidate is not current yet");
        assert_eq!(o.candidates(), vec![200]);
        // Both keep working meanwhile, in both forms, each with its own window.
        let d = o.open(&new.seal_short(2, b"d")).unwrap();
        assert_eq!((d.epoch, d.proven, d.new_candidate), (200, false, false));
        let e = o.open(&old.seal_short(3, b"e")).unwrap();
        assert_eq!((e.epoch, e.proven), (100, true));
        assert_eq!(o.open(&new.seal(1, b"c")), Err(PacketError::Replayed));
        // Promotion: the old epoch's packets are refused from then on, even unseen numbers.
        assert!(o.promote(200));
        assert!(!o.promote(200), "promoted once");
        assert_eq!(o.epoch(), Some(200));
        assert!(o.candidates().is_empty());
        assert_eq!(o.open(&old.seal(4, b"late")), Err(PacketError::Replayed));
        assert_eq!(o.open(&early), Err(PacketError::Replayed));
        assert_eq!(
            o.open(&old.seal_short(5, b"late")),
            Err(PacketError::Forged)
        );
        // A restarted receiver remembers: retired epochs and the current epoch's floor; the
        // remembered epoch is proven when it is seen again.
        let memory = o.memory();
        assert_eq!(memory.current, Some((200, 2)));
        assert_eq!(memory.retired[0], 100);
        let mut o = Opener::new(&key(1), Direction::Down, memory);
        assert_eq!(o.open(&early), Err(PacketError::Replayed));
        assert_eq!(o.open(&new.seal(1, b"c")), Err(PacketError::Replayed));
        assert_eq!(o.open(&new.seal_short(2, b"d")), Err(PacketError::Replayed));
        let f = o.open(&new.seal_short(3, b"f")).unwrap();
        assert_eq!((f.pn, f.epoch, f.proven), (3, 200, true));
        assert_eq!(o.memory(), memory_after(200, 3, 100));
    }

    fn memory_after(epoch: u64, highest: u64, retired: u64) -> ReplayMemory {
        let mut m = ReplayMemory {
            current: Some((epoch, highest)),
            ..ReplayMemory::default()
        };
        m.retired[0] = retired;
        m
    }

    #[test]
    fn an_epoch_older_than_memory_replayed_does_not_disturb_the_current() {
        let mut o = Opener::new(&key(1), Direction::Down, ReplayMemory::default());
        // Run 1 of the peer, recorded by an attacker; then 10 restarts, each proven in turn, and
        // the receiver itself restarting from its memory in between.
        let recorded: Vec<Vec<u8>> = (1..=5)
            .map(|pn| Sealer::new(&key(1), Direction::Down, 1).seal(pn, b"old"))
            .collect();
        open(&mut o, &recorded[0]).unwrap();
        assert!(o.promote(1));
        for epoch in 2..=11u64 {
            let s = Sealer::new(&key(1), Direction::Down, epoch);
            open(&mut o, &s.seal(1, b"hello")).unwrap();
            assert!(o.promote(epoch));
            open(&mut o, &s.seal_short(2, b"data")).unwrap();
            o = Opener::new(&key(1), Direction::Down, o.memory());
        }
        assert!(!o.memory().retired.contains(&1), "run 1 is beyond memory");
        let current = Sealer::new(&key(1), Direction::Down, 11);
        for (i, p) in recorded.iter().enumerate() {
            // The replay authenticates: a candidate, nothing more.
            let r = o.open(p).unwrap();
            assert_eq!((r.epoch, r.proven), (1, false));
            assert_eq!(r.new_candidate, i == 0);
            assert_eq!(o.epoch(), Some(11));
            // The real current epoch goes on, in both forms.
            let pn = 10 + 2 * i as u64;
            assert!(o.open(&current.seal_short(pn, b"d")).unwrap().proven);
            assert!(o.open(&current.seal(pn + 1, b"d")).unwrap().proven);
        }
        assert_eq!(o.memory().current, Some((11, 19)));
        assert!(!o.memory().retired.contains(&11));
    }

    #[test]
    fn candidates_are_bounded_and_the_oldest_goes_first() {
        let mut o = Opener::new(&key(1), Direction::Up, ReplayMemory::default());
        for epoch in 1..=(MAX_CANDIDATES as u64 + 2) {
            let r = o.open(&Sealer::new(&key(1), Direction::Up, epoch).seal(1, b"x"));
            assert!(r.unwrap().new_candidate);
        }
        assert_eq!(o.candidates(), vec![3, 4, 5, 6]);
        // An evicted epoch met again is a candidate again, not a new one, refusing what it
        // accepted before it was evicted.
        let s1 = Sealer::new(&key(1), Direction::Up, 1);
        assert_eq!(o.open(&s1.seal(1, b"x")), Err(PacketError::Replayed));
        assert_eq!(
            o.candidates(),
            vec![3, 4, 5, 6],
            "a refused replay changes nothing"
        );
        let r = o.open(&s1.seal(2, b"x"));
        assert!(!r.unwrap().new_candidate);
        assert_eq!(o.candidates(), vec![4, 5, 6, 1]);
        assert!(!o.promote(3));
        assert!(o.promote(5));
        assert_eq!(o.candidates(), vec![4, 6, 1]);
        assert_eq!(
            o.memory().retired,
            [0; RETIRED_EPOCHS],
            "nothing was current before"
        );
        // A short packet of a candidate opens by trial, and reports it.
        let r = o.open(&Sealer::new(&key(1), Direction::Up, 4).seal_short(9, b"x"));
        assert_eq!(r.map(|r| (r.epoch, r.proven)), Ok((4, false)));
    }

    #[test]
    fn a_cycle_of_old_runs_replayed_is_accepted_once() {
        let mut o = Opener::new(&key(1), Direction::Up, memory_after(100, 50, 0));
        let runs = MAX_CANDIDATES as u64 + 1;
        let recorded: Vec<Vec<u8>> = (1..=runs)
            .map(|e| Sealer::new(&key(1), Direction::Up, e).seal(7, b"hello"))
            .collect();
        let mut accepted = 0;
        for _ in 0..1000 {
            for p in &recorded {
                match o.open(p) {
                    Ok(r) => {
                        assert!(r.new_candidate && !r.proven);
                        accepted += 1;
                    }
                    Err(e) => assert_eq!(e, PacketError::Replayed),
                }
            }
        }
        assert_eq!(
            accepted, runs,
            "each recorded packet opened once, not once per cycle"
        );
        assert_eq!(o.epoch(), Some(100));
        // Beyond what it remembers, an old run is met as new again: bounded memory.
        for e in 1000..1000 + EVICTED_EPOCHS as u64 + MAX_CANDIDATES as u64 {
            o.open(&Sealer::new(&key(1), Direction::Up, e).seal(1, b"x"))
                .unwrap();
        }
        assert!(o.open(&recorded[0]).unwrap().new_candidate);
        assert_eq!(o.evicted.len(), EVICTED_EPOCHS);
    }

    #[test]
    fn window_accepts_reordering_and_refuses_the_old() {
        let mut w = ReplayWindow::new(Some(10));
        assert!(!w.check(10));
        for pn in [12, 11, 15, 13] {
            assert!(w.check(pn), "{pn}");
            w.accept(pn);
        }
        assert!(!w.check(12));
        assert!(w.check(14));
        w.accept(15 + 2000);
        assert!(!w.check(14), "beyond the window");
        assert!(w.check(15 + 1999));
        w.accept(15 + 1999);
        assert!(!w.check(15 + 1999));
    }

    #[test]
    fn never_panics_on_mutations() {
        let s = Sealer::new(&key(3), Direction::Down, 77);
        for p in [
            s.seal(1, &[7; 200]),
            s.seal_short(2, &[7; 200]),
            s.seal_short(3, &[]),
        ] {
            for i in 0..p.len() {
                for flip in [0xA5, 0x02, 0x01, 0x80] {
                    let mut o = Opener::new(&key(3), Direction::Down, ReplayMemory::default());
                    let mut m = p.clone();
                    m[i] ^= flip;
                    assert!(o.open(&m).is_err(), "{i} {flip:#x}");
                    let _ = o.open(&p[..i]);
                    let _ = PacketHeader::peek(&m);
                }
            }
        }
        // Every short datagram length around the minimum.
        for len in 0..40 {
            let d = vec![(VERSION << 4) | SHORT_FLAG | 1; len];
            let mut o = Opener::new(&key(3), Direction::Down, ReplayMemory::default());
            let _ = o.open(&d);
            let _ = PacketHeader::peek(&d);
        }
    }
}
