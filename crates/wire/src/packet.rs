//! Authenticated packets: version 2 of the link framing.
//!
//! Every datagram is sealed with ChaCha20-Poly1305 under the satellite's key. Layout:
//!
//! ```text
//! 0   u8    version (high nibble, 2) | direction (bit 0: 0 ground→flight, 1 flight→ground)
//! 1   u48   packet number, big-endian: strictly increasing per direction, never reused
//!           (the sender persists a reservation ahead of use)
//! 7   ..    ciphertext of the body (a sequence of chunks, see `chunk`)
//! -20 [16]  Poly1305 tag over header (as associated data) and ciphertext
//! -4  u32   CRC32C of everything before it
//! ```
//!
//! The nonce is `direction ‖ 0⁵ ‖ packet number`, so the two directions never share one. The CRC
//! tells line corruption from forgery; the tag tells forgery; the [`ReplayWindow`] refuses a
//! packet number seen before or older than its window.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

/// The largest datagram either side sends or accepts.
pub const MAX_PACKET: usize = 1500;
/// Bytes a packet adds around its body.
pub const PACKET_OVERHEAD: usize = HEADER + TAG + CRC;
/// The largest body that fits in a packet.
pub const MAX_BODY: usize = MAX_PACKET - PACKET_OVERHEAD;
/// Packet numbers are 48 bits.
pub const MAX_PACKET_NUMBER: u64 = (1 << 48) - 1;

const VERSION: u8 = 2;
const HEADER: usize = 7;
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
    /// Another version, or the direction of the receiver's own packets.
    #[error("unknown version or direction")]
    Unknown,
    /// The tag does not verify: forged, or sealed under another key.
    #[error("authentication failed")]
    Forged,
    /// A packet number already accepted, or older than the replay window.
    #[error("replayed packet")]
    Replayed,
}

/// Seals bodies into packets for one direction.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    direction: Direction,
}

impl Sealer {
    /// A sealer for packets travelling `direction`.
    pub fn new(key: &LinkKey, direction: Direction) -> Sealer {
        Sealer {
            cipher: ChaCha20Poly1305::new(&Key::from(key.0)),
            direction,
        }
    }

    /// Seals `body` as packet number `pn` (at most [`MAX_PACKET_NUMBER`]; the caller never
    /// reuses one). A body longer than [`MAX_BODY`] is the caller's bug and is truncated.
    pub fn seal(&self, pn: u64, body: &[u8]) -> Vec<u8> {
        let body = &body[..body.len().min(MAX_BODY)];
        let mut out = Vec::with_capacity(PACKET_OVERHEAD + body.len());
        out.push((VERSION << 4) | self.direction.bit());
        out.extend_from_slice(&(pn & MAX_PACKET_NUMBER).to_be_bytes()[2..]);
        out.extend_from_slice(body);
        let (header, rest) = out.split_at_mut(HEADER);
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce(self.direction, pn), header, rest.into())
            .unwrap_or_default();
        out.extend_from_slice(tag.as_slice());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }
}

/// Opens packets travelling one direction, refusing forgeries and replays.
pub struct Opener {
    cipher: ChaCha20Poly1305,
    direction: Direction,
    window: ReplayWindow,
}

impl Opener {
    /// An opener for packets travelling `direction`, refusing every packet number at or below
    /// `floor` (the highest number accepted before a restart, as persisted).
    pub fn new(key: &LinkKey, direction: Direction, floor: Option<u64>) -> Opener {
        Opener {
            cipher: ChaCha20Poly1305::new(&Key::from(key.0)),
            direction,
            window: ReplayWindow::new(floor),
        }
    }

    /// The highest packet number accepted so far.
    pub fn highest(&self) -> Option<u64> {
        self.window.highest
    }

    /// Checks and decrypts one datagram, returning its packet number and body. Never panics.
    pub fn open(&mut self, datagram: &[u8]) -> Result<(u64, Vec<u8>), PacketError> {
        let (pn, body) = self.inspect(datagram)?;
        if !self.window.check(pn) {
            return Err(PacketError::Replayed);
        }
        let mut body = body.to_vec();
        let tag_at = datagram.len() - CRC - TAG;
        let tag =
            Tag::try_from(&datagram[tag_at..tag_at + TAG]).map_err(|_| PacketError::Truncated)?;
        self.cipher
            .decrypt_inout_detached(
                &nonce(self.direction, pn),
                &datagram[..HEADER],
                body.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| PacketError::Forged)?;
        self.window.accept(pn);
        Ok((pn, body))
    }

    /// Checks framing only, without keys: (packet number, ciphertext).
    fn inspect<'a>(&self, d: &'a [u8]) -> Result<(u64, &'a [u8]), PacketError> {
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
        if d[0] >> 4 != VERSION || d[0] & 0x0f != self.direction.bit() {
            return Err(PacketError::Unknown);
        }
        let mut pn_bytes = [0u8; 8];
        pn_bytes[2..].copy_from_slice(&d[1..HEADER]);
        Ok((
            u64::from_be_bytes(pn_bytes),
            &d[HEADER..d.len() - CRC - TAG],
        ))
    }
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
        let s = Sealer::new(&key(1), Direction::Up);
        let mut o = Opener::new(&key(1), Direction::Up, None);
        let p = s.seal(5, b"hello");
        assert_eq!(p.len(), 5 + PACKET_OVERHEAD);
        assert_eq!(o.open(&p).unwrap(), (5, b"hello".to_vec()));
    }

    #[test]
    fn refuses_replays_forgeries_and_corruption() {
        let s = Sealer::new(&key(1), Direction::Up);
        let mut o = Opener::new(&key(1), Direction::Up, None);
        let p = s.seal(7, b"data");
        o.open(&p).unwrap();
        assert_eq!(o.open(&p), Err(PacketError::Replayed));
        // Another key: forged.
        let evil = Sealer::new(&key(2), Direction::Up).seal(8, b"data");
        assert_eq!(o.open(&evil), Err(PacketError::Forged));
        // A flipped bit: the checksum catches it first.
        let mut bad = s.seal(9, b"data");
        bad[8] ^= 4;
        assert_eq!(o.open(&bad), Err(PacketError::Checksum));
        // A flipped bit with a recomputed checksum: the tag catches it.
        let mut bad = s.seal(10, b"data");
        bad[8] ^= 4;
        let n = bad.len() - 4;
        let crc = crc32c::crc32c(&bad[..n]);
        bad[n..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(o.open(&bad), Err(PacketError::Forged));
        // The other direction's packets are refused outright.
        let down = Sealer::new(&key(1), Direction::Down).seal(11, b"x");
        assert_eq!(o.open(&down), Err(PacketError::Unknown));
        assert_eq!(o.open(&p[..10]), Err(PacketError::Truncated));
        assert_eq!(
            o.open(&vec![0; MAX_PACKET + 1]),
            Err(PacketError::Oversized)
        );
        // A forged packet did not poison the window: the real 8 still opens.
        assert!(o.open(&s.seal(8, b"late")).is_ok());
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
        let s = Sealer::new(&key(3), Direction::Down);
        let p = s.seal(1, &[7; 200]);
        for i in 0..p.len() {
            let mut o = Opener::new(&key(3), Direction::Down, None);
            let mut m = p.clone();
            m[i] ^= 0xA5;
            let _ = o.open(&m);
            let _ = o.open(&p[..i]);
        }
    }
}
