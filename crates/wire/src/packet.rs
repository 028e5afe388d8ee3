//! Authenticated packets: version 3 of the link framing.
//!
//! Every datagram is sealed with ChaCha20-Poly1305 under a key of its own sender's run. Layout:
//!
//! ```text
//! 0   u8    version (high nibble, 3) | direction (bit 0: 0 ground→flight, 1 flight→ground)
//! 1   u64   epoch, big-endian: drawn at random each time the sender starts, never 0
//! 9   u48   packet number, big-endian: increasing per direction within an epoch
//! 15  ..    ciphertext of the body (a sequence of chunks, see `chunk`)
//! -20 [16]  Poly1305 tag over header (as associated data) and ciphertext
//! -4  u32   CRC32C of everything before it
//! ```
//!
//! # Keys and nonces
//!
//! The satellite's [`LinkKey`] never seals a packet itself. Each run of a sender draws a random
//! 64-bit epoch and seals under the subkey `HKDF-SHA256(salt = "orbitdock link v3", ikm = link
//! key, info = direction ‖ epoch)` ([`EpochKey`]); the nonce is `direction ‖ 0⁵ ‖ packet number`.
//! A (key, nonce) pair could repeat only if one run numbered two packets alike, or if two runs
//! drew the same epoch (a 2⁻⁶⁴ chance per pair of runs): no saved counter is needed for that,
//! so a lost or restored state file cannot make the sender reuse a nonce. The epoch travels in
//! every header (and so in the associated data) and the receiver derives the same subkey.
//!
//! # Replays
//!
//! The CRC tells line corruption from forgery; the tag tells forgery. The [`Opener`] keeps a
//! [`ReplayWindow`] for the peer's current epoch; a packet of another epoch that authenticates
//! means the peer restarted: that epoch becomes current and the one before is retired for good
//! (its late or replayed packets are refused). What the opener knows is its [`ReplayMemory`],
//! which the session persists, so a restart of the receiver still refuses the epochs it retired
//! and the current epoch's packets it accepted.

use std::collections::VecDeque;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use hkdf::Hkdf;
use sha2::{Digest as _, Sha256};

/// The largest datagram either side sends or accepts.
pub const MAX_PACKET: usize = 1500;
/// Bytes a packet adds around its body.
pub const PACKET_OVERHEAD: usize = HEADER + TAG + CRC;
/// The largest body that fits in a packet.
pub const MAX_BODY: usize = MAX_PACKET - PACKET_OVERHEAD;
/// Packet numbers are 48 bits.
pub const MAX_PACKET_NUMBER: u64 = (1 << 48) - 1;

/// Bytes of a packet's header: version and direction, epoch, packet number.
pub const PACKET_HEADER: usize = HEADER;
/// Epochs of the peer a [`ReplayMemory`] remembers as retired.
pub const RETIRED_EPOCHS: usize = 8;

const VERSION: u8 = 3;
const HEADER: usize = 15;
const KDF_SALT: &[u8] = b"orbitdock link v3";
const TAG: usize = 16;
const CRC: usize = 4;

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
    /// Shorter than a header, tag and checksum.
    #[error("truncated packet")]
    Truncated,
    /// The CRC32C does not match: corrupted on the line.
    #[error("checksum mismatch")]
    Checksum,
    /// Another version, the direction of the receiver's own packets, or epoch 0.
    #[error("unknown version or direction")]
    Unknown,
    /// The tag does not verify: forged, or sealed under another key.
    #[error("authentication failed")]
    Forged,
    /// A packet number already accepted, or older than the replay window.
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

    /// Opens `body` in place: authenticated with `header`, or [`PacketError::Forged`].
    fn open(
        &self,
        nonce: &Nonce,
        header: &[u8],
        body: &mut [u8],
        tag: &Tag,
    ) -> Result<(), PacketError> {
        self.cipher
            .decrypt_inout_detached(nonce, header, body.into(), tag)
            .map_err(|_| PacketError::Forged)
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
    /// Its sender's epoch.
    pub epoch: u64,
    /// Its packet number.
    pub pn: u64,
}

impl PacketHeader {
    /// Reads the header of a well-framed datagram of this version (the checksum verified);
    /// `None` for anything else. Never panics.
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

    /// The epoch this sealer writes in its headers.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The fingerprint of the subkey it seals under.
    pub fn key_id(&self) -> [u8; 8] {
        self.key.id()
    }

    /// Seals `body` as packet number `pn` (at most [`MAX_PACKET_NUMBER`]; the caller never
    /// reuses one within the epoch). A body longer than [`MAX_BODY`] is the caller's bug and is
    /// truncated.
    pub fn seal(&self, pn: u64, body: &[u8]) -> Vec<u8> {
        let body = &body[..body.len().min(MAX_BODY)];
        let mut out = Vec::with_capacity(PACKET_OVERHEAD + body.len());
        out.push((VERSION << 4) | self.direction.bit());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&(pn & MAX_PACKET_NUMBER).to_be_bytes()[2..]);
        out.extend_from_slice(body);
        let (header, rest) = out.split_at_mut(HEADER);
        let tag = self
            .key
            .cipher
            .encrypt_inout_detached(&nonce(self.direction, pn), header, rest.into())
            .unwrap_or_default();
        out.extend_from_slice(tag.as_slice());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }
}

/// What an [`Opener`] knows of the peer's epochs, to be persisted so that a restart of the
/// receiver refuses what it refused before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayMemory {
    /// The peer's current epoch and the highest packet number accepted in it.
    pub current: Option<(u64, u64)>,
    /// Epochs the peer left behind, most recent first (0: an empty slot).
    pub retired: [u64; RETIRED_EPOCHS],
}

/// Opens packets travelling one direction, refusing forgeries and replays.
pub struct Opener {
    link_key: LinkKey,
    direction: Direction,
    /// The peer's current epoch: its subkey and window.
    current: Option<(u64, EpochKey, ReplayWindow)>,
    /// A persisted floor for an epoch not yet seen since the restart: (epoch, highest accepted).
    floor: Option<(u64, u64)>,
    /// Epochs left behind, most recent first, at most [`RETIRED_EPOCHS`].
    retired: VecDeque<u64>,
}

impl Opener {
    /// An opener for packets travelling `direction`, remembering `memory` (what an opener of a
    /// previous run knew, as persisted; the default for none).
    pub fn new(key: &LinkKey, direction: Direction, memory: ReplayMemory) -> Opener {
        Opener {
            link_key: key.clone(),
            direction,
            current: None,
            floor: memory.current,
            retired: memory.retired.iter().copied().filter(|&e| e != 0).collect(),
        }
    }

    /// The peer's current epoch, once a packet of it authenticated since this opener was made.
    pub fn epoch(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.0)
    }

    /// The highest packet number accepted in the peer's current epoch.
    pub fn highest(&self) -> Option<u64> {
        self.current.as_ref().and_then(|c| c.2.highest)
    }

    /// What this opener knows, to be persisted.
    pub fn memory(&self) -> ReplayMemory {
        let mut retired = [0u64; RETIRED_EPOCHS];
        for (slot, &e) in retired.iter_mut().zip(&self.retired) {
            *slot = e;
        }
        let current = match &self.current {
            Some((epoch, _, w)) => w.highest.map(|h| (*epoch, h)),
            None => self.floor,
        };
        ReplayMemory { current, retired }
    }

    /// Checks and decrypts one datagram, returning its packet number and body. Never panics.
    pub fn open(&mut self, datagram: &[u8]) -> Result<(u64, Vec<u8>), PacketError> {
        let h = frame(datagram)?;
        if h.direction != self.direction {
            return Err(PacketError::Unknown);
        }
        if self.retired.contains(&h.epoch) {
            return Err(PacketError::Replayed);
        }
        let tag_at = datagram.len() - CRC - TAG;
        let tag =
            Tag::try_from(&datagram[tag_at..tag_at + TAG]).map_err(|_| PacketError::Truncated)?;
        let mut body = datagram[HEADER..tag_at].to_vec();
        let nonce = nonce(self.direction, h.pn);
        if let Some((epoch, key, window)) = &mut self.current
            && *epoch == h.epoch
        {
            if !window.check(h.pn) {
                return Err(PacketError::Replayed);
            }
            key.open(&nonce, &datagram[..HEADER], &mut body, &tag)?;
            window.accept(h.pn);
            return Ok((h.pn, body));
        }
        // Another epoch: the peer restarted (or this side did, and meets its epoch again).
        let floor = self.floor.filter(|f| f.0 == h.epoch).map(|f| f.1);
        let mut window = ReplayWindow::new(floor);
        if !window.check(h.pn) {
            return Err(PacketError::Replayed);
        }
        let key = EpochKey::derive(&self.link_key, self.direction, h.epoch);
        key.open(&nonce, &datagram[..HEADER], &mut body, &tag)?;
        window.accept(h.pn);
        let left = match self.current.take() {
            Some((epoch, _, _)) => Some(epoch),
            None => self.floor.map(|f| f.0).filter(|&e| e != h.epoch),
        };
        self.floor = None;
        if let Some(e) = left {
            self.retired.push_front(e);
            self.retired.truncate(RETIRED_EPOCHS);
        }
        self.current = Some((h.epoch, key, window));
        Ok((h.pn, body))
    }
}

/// A datagram's framing, checked without keys.
struct Framed {
    direction: Direction,
    epoch: u64,
    pn: u64,
}

/// Checks length, checksum and version; reads the header. The direction is the one the header
/// names: an [`Opener`] refuses the other.
fn frame(d: &[u8]) -> Result<Framed, PacketError> {
    if d.len() > MAX_PACKET {
        return Err(PacketError::Oversized);
    }
    if d.len() < PACKET_OVERHEAD {
        return Err(PacketError::Truncated);
    }
    let (rest, crc) = d.split_at(d.len() - CRC);
    if crc32c::crc32c(rest) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err(PacketError::Checksum);
    }
    if d[0] >> 4 != VERSION || d[0] & 0x0e != 0 || d[1..9] == [0; 8] {
        return Err(PacketError::Unknown);
    }
    let direction = if d[0] & 1 == 0 {
        Direction::Up
    } else {
        Direction::Down
    };
    let mut epoch = [0u8; 8];
    epoch.copy_from_slice(&d[1..9]);
    let mut pn = [0u8; 8];
    pn[2..].copy_from_slice(&d[9..HEADER]);
    Ok(Framed {
        direction,
        epoch: u64::from_be_bytes(epoch),
        pn: u64::from_be_bytes(pn),
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

    #[test]
    fn seals_and_opens() {
        let s = Sealer::new(&key(1), Direction::Up, 9);
        let mut o = Opener::new(&key(1), Direction::Up, ReplayMemory::default());
        let p = s.seal(5, b"hello");
        assert_eq!(p.len(), 5 + PACKET_OVERHEAD);
        assert_eq!(
            PacketHeader::peek(&p),
            Some(PacketHeader {
                direction: Direction::Up,
                epoch: 9,
                pn: 5
            })
        );
        assert_eq!(o.open(&p).unwrap(), (5, b"hello".to_vec()));
        assert_eq!(o.epoch(), Some(9));
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
        o.open(&p).unwrap();
        assert_eq!(o.open(&p), Err(PacketError::Replayed));
        // Another key: forged, in this epoch and in another.
        let evil = Sealer::new(&key(2), Direction::Up, 4).seal(8, b"data");
        assert_eq!(o.open(&evil), Err(PacketError::Forged));
        let evil = Sealer::new(&key(2), Direction::Up, 5).seal(8, b"data");
        assert_eq!(o.open(&evil), Err(PacketError::Forged));
        assert_eq!(o.epoch(), Some(4), "a forgery does not move the epoch");
        // A genuine packet with its epoch rewritten (checksum recomputed): forged.
        let mut moved = s.seal(8, b"data");
        moved[8] ^= 1;
        let n = moved.len() - 4;
        let crc = crc32c::crc32c(&moved[..n]);
        moved[n..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(o.open(&moved), Err(PacketError::Forged));
        // A flipped bit: the checksum catches it first.
        let mut bad = s.seal(9, b"data");
        bad[HEADER + 1] ^= 4;
        assert_eq!(o.open(&bad), Err(PacketError::Checksum));
        // A flipped bit with a recomputed checksum: the tag catches it.
        let mut bad = s.seal(10, b"data");
        bad[HEADER + 1] ^= 4;
        let n = bad.len() - 4;
        let crc = crc32c::crc32c(&bad[..n]);
        bad[n..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(o.open(&bad), Err(PacketError::Forged));
        // The other direction's packets are refused outright, and so is epoch 0.
        let down = Sealer::new(&key(1), Direction::Down, 4).seal(11, b"x");
        assert_eq!(o.open(&down), Err(PacketError::Unknown));
        let zero = Sealer::new(&key(1), Direction::Up, 0).seal(11, b"x");
        assert_eq!(o.open(&zero), Err(PacketError::Unknown));
        assert_eq!(o.open(&p[..10]), Err(PacketError::Truncated));
        assert_eq!(
            o.open(&vec![0; MAX_PACKET + 1]),
            Err(PacketError::Oversized)
        );
        // A forged packet did not poison the window: the real 8 still opens.
        assert!(o.open(&s.seal(8, b"late")).is_ok());
    }

    #[test]
    fn a_new_epoch_retires_the_old_one_and_memory_survives() {
        let old = Sealer::new(&key(1), Direction::Down, 100);
        let new = Sealer::new(&key(1), Direction::Down, 200);
        let mut o = Opener::new(&key(1), Direction::Down, ReplayMemory::default());
        let early = old.seal(1, b"a");
        o.open(&early).unwrap();
        o.open(&old.seal(2, b"b")).unwrap();
        // The peer restarted and lost its counters: numbering starts again under a new subkey.
        o.open(&new.seal(1, b"c")).unwrap();
        assert_eq!(o.epoch(), Some(200));
        // The old epoch's packets are refused, even unseen numbers.
        assert_eq!(o.open(&old.seal(3, b"late")), Err(PacketError::Replayed));
        assert_eq!(o.open(&early), Err(PacketError::Replayed));
        // A restarted receiver remembers: retired epochs and the current epoch's floor.
        let memory = o.memory();
        assert_eq!(memory.current, Some((200, 1)));
        assert_eq!(memory.retired[0], 100);
        let mut o = Opener::new(&key(1), Direction::Down, memory);
        assert_eq!(o.open(&early), Err(PacketError::Replayed));
        assert_eq!(o.open(&new.seal(1, b"c")), Err(PacketError::Replayed));
        assert_eq!(o.open(&new.seal(2, b"d")).unwrap().0, 2);
        assert_eq!(o.memory(), memory_after(200, 2, 100));
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
        let p = s.seal(1, &[7; 200]);
        for i in 0..p.len() {
            let mut o = Opener::new(&key(3), Direction::Down, ReplayMemory::default());
            let mut m = p.clone();
            m[i] ^= 0xA5;
            let _ = o.open(&m);
            let _ = o.open(&p[..i]);
            let _ = PacketHeader::peek(&m);
        }
    }
}
