//! One datagram on the link.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! 0   u8   version (1)
//! 1   u8   kind: 1 data, 2 ack
//! 2   u64  session: the sender's session id (new at every start)
//! 10  u64  peer session: the sender's view of the receiver's session (0: unknown)
//! data: 18 u64 seq, 26 u8 flags (bit 0: last chunk of a message), 27 u16 len, 29 payload
//! ack:  18 u64 next expected seq, 26 u8 n (≤ MAX_SACK_RANGES), 27 n × (u64 start, u64 end)
//! end u32  CRC32C of everything before it
//! ```

/// The largest datagram either side sends or accepts.
pub const MAX_DATAGRAM: usize = 1400;
/// Bytes a data frame adds around its payload.
pub const FRAME_OVERHEAD: usize = DATA_HEADER + CRC_LEN;
/// The most selective-ack ranges one ack carries.
pub const MAX_SACK_RANGES: usize = 32;

const VERSION: u8 = 1;
const KIND_DATA: u8 = 1;
const KIND_ACK: u8 = 2;
const COMMON_HEADER: usize = 18;
const DATA_HEADER: usize = COMMON_HEADER + 11;
const ACK_HEADER: usize = COMMON_HEADER + 9;
const CRC_LEN: usize = 4;

/// A decoded datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A chunk of the message stream.
    Data {
        /// The sender's session.
        session: u64,
        /// The sender's view of the receiver's session.
        peer_session: u64,
        /// The chunk.
        chunk: DataChunk,
    },
    /// Which chunks the sender of this frame has received.
    Ack {
        /// The sender's session.
        session: u64,
        /// The session whose data is acknowledged.
        peer_session: u64,
        /// The acknowledgement.
        ack: Ack,
    },
}

/// A chunk of the ordered message stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataChunk {
    /// Position of the chunk in the stream.
    pub seq: u64,
    /// Whether the chunk ends a message.
    pub last: bool,
    /// The bytes.
    pub payload: Vec<u8>,
}

/// A cumulative and selective acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Every chunk below this has been received.
    pub next_expected: u64,
    /// Half-open ranges `[start, end)` received beyond `next_expected`.
    pub ranges: Vec<(u64, u64)>,
}

/// Why a datagram was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad frame: {kind:?} ({len} bytes)")]
pub struct FrameError {
    kind: FrameErrorKind,
    len: usize,
}

impl FrameError {
    /// What was wrong.
    pub fn kind(&self) -> FrameErrorKind {
        self.kind
    }
}

/// The ways a datagram can be bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameErrorKind {
    /// Longer than [`MAX_DATAGRAM`].
    Oversized,
    /// Shorter than its header or its declared lengths.
    Truncated,
    /// The CRC32C does not match.
    Checksum,
    /// An unknown version or kind.
    Unknown,
    /// A declared length or count out of bounds, or bytes after the frame.
    BadLength,
}

impl Frame {
    /// The largest payload of a data frame.
    pub const MAX_PAYLOAD: usize = MAX_DATAGRAM - FRAME_OVERHEAD;

    /// Encodes the frame. Payloads longer than [`Frame::MAX_PAYLOAD`] and more than
    /// [`MAX_SACK_RANGES`] ranges are the caller's bug; they are truncated here.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_DATAGRAM);
        out.push(VERSION);
        match self {
            Frame::Data {
                session,
                peer_session,
                chunk,
            } => {
                let len = chunk.payload.len().min(Frame::MAX_PAYLOAD);
                out.push(KIND_DATA);
                out.extend_from_slice(&session.to_be_bytes());
                out.extend_from_slice(&peer_session.to_be_bytes());
                out.extend_from_slice(&chunk.seq.to_be_bytes());
                out.push(u8::from(chunk.last));
                out.extend_from_slice(&(len as u16).to_be_bytes());
                out.extend_from_slice(&chunk.payload[..len]);
            }
            Frame::Ack {
                session,
                peer_session,
                ack,
            } => {
                let n = ack.ranges.len().min(MAX_SACK_RANGES);
                out.push(KIND_ACK);
                out.extend_from_slice(&session.to_be_bytes());
                out.extend_from_slice(&peer_session.to_be_bytes());
                out.extend_from_slice(&ack.next_expected.to_be_bytes());
                out.push(n as u8);
                for (s, e) in &ack.ranges[..n] {
                    out.extend_from_slice(&s.to_be_bytes());
                    out.extend_from_slice(&e.to_be_bytes());
                }
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes one datagram. Never panics; every length is checked against the datagram.
    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        let err = |kind| FrameError {
            kind,
            len: bytes.len(),
        };
        if bytes.len() > MAX_DATAGRAM {
            return Err(err(FrameErrorKind::Oversized));
        }
        if bytes.len() < COMMON_HEADER + CRC_LEN {
            return Err(err(FrameErrorKind::Truncated));
        }
        let (body, crc) = bytes.split_at(bytes.len() - CRC_LEN);
        if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(err(FrameErrorKind::Checksum));
        }
        let mut r = Reader { buf: body, pos: 0 };
        let version = r.u8().ok_or(err(FrameErrorKind::Truncated))?;
        let kind = r.u8().ok_or(err(FrameErrorKind::Truncated))?;
        if version != VERSION {
            return Err(err(FrameErrorKind::Unknown));
        }
        let session = r.u64().ok_or(err(FrameErrorKind::Truncated))?;
        let peer_session = r.u64().ok_or(err(FrameErrorKind::Truncated))?;
        let frame = match kind {
            KIND_DATA => {
                if body.len() < DATA_HEADER {
                    return Err(err(FrameErrorKind::Truncated));
                }
                let seq = r.u64().ok_or(err(FrameErrorKind::Truncated))?;
                let flags = r.u8().ok_or(err(FrameErrorKind::Truncated))?;
                let len = usize::from(r.u16().ok_or(err(FrameErrorKind::Truncated))?);
                if flags & !1 != 0 {
                    return Err(err(FrameErrorKind::Unknown));
                }
                let payload = r.take(len).ok_or(err(FrameErrorKind::Truncated))?.to_vec();
                Frame::Data {
                    session,
                    peer_session,
                    chunk: DataChunk {
                        seq,
                        last: flags & 1 == 1,
                        payload,
                    },
                }
            }
            KIND_ACK => {
                if body.len() < ACK_HEADER {
                    return Err(err(FrameErrorKind::Truncated));
                }
                let next_expected = r.u64().ok_or(err(FrameErrorKind::Truncated))?;
                let n = usize::from(r.u8().ok_or(err(FrameErrorKind::Truncated))?);
                if n > MAX_SACK_RANGES {
                    return Err(err(FrameErrorKind::BadLength));
                }
                let mut ranges = Vec::with_capacity(n);
                for _ in 0..n {
                    let s = r.u64().ok_or(err(FrameErrorKind::Truncated))?;
                    let e = r.u64().ok_or(err(FrameErrorKind::Truncated))?;
                    if e <= s || s < next_expected {
                        return Err(err(FrameErrorKind::BadLength));
                    }
                    ranges.push((s, e));
                }
                Frame::Ack {
                    session,
                    peer_session,
                    ack: Ack {
                        next_expected,
                        ranges,
                    },
                }
            }
            _ => return Err(err(FrameErrorKind::Unknown)),
        };
        if r.pos != body.len() {
            return Err(err(FrameErrorKind::BadLength));
        }
        Ok(frame)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(payload: &[u8]) -> Frame {
        Frame::Data {
            session: 7,
            peer_session: 9,
            chunk: DataChunk {
                seq: 42,
                last: true,
                payload: payload.to_vec(),
            },
        }
    }

    #[test]
    fn round_trips() {
        let f = data(b"hello");
        assert_eq!(Frame::decode(&f.encode()).unwrap(), f);
        let a = Frame::Ack {
            session: 1,
            peer_session: 2,
            ack: Ack {
                next_expected: 5,
                ranges: vec![(7, 9), (12, 13)],
            },
        };
        assert_eq!(Frame::decode(&a.encode()).unwrap(), a);
        assert_eq!(data(&[]).encode().len(), FRAME_OVERHEAD);
    }

    #[test]
    fn rejects_bad_frames_by_kind() {
        let good = data(b"payload").encode();
        let kind = |b: &[u8]| Frame::decode(b).unwrap_err().kind();
        assert_eq!(kind(&good[..10]), FrameErrorKind::Truncated);
        let mut flipped = good.clone();
        flipped[30] ^= 1;
        assert_eq!(kind(&flipped), FrameErrorKind::Checksum);
        assert_eq!(kind(&vec![0; MAX_DATAGRAM + 1]), FrameErrorKind::Oversized);
        // A declared payload length longer than the datagram, with a valid checksum.
        let mut lying = good[..good.len() - 4].to_vec();
        lying[27] = 0xff;
        let crc = crc32c::crc32c(&lying);
        lying.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(kind(&lying), FrameErrorKind::Truncated);
    }

    #[test]
    fn never_panics_on_any_prefix_or_mutation() {
        let good = data(&[0xAB; 100]).encode();
        for cut in 0..good.len() {
            let _ = Frame::decode(&good[..cut]);
        }
        for i in 0..good.len() {
            let mut m = good.clone();
            m[i] = m[i].wrapping_add(0x5A);
            let _ = Frame::decode(&m);
        }
    }
}
