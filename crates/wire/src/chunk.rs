//! The body of a packet: a sequence of chunks, each a type byte and LEB128 varint fields.
//!
//! | type | chunk | fields |
//! |---|---|---|
//! | 1 | `Data` | transfer, index, length, bytes |
//! | 2 | `Offer` | transfer, kind (0 object, 1 message), seq (messages), size, priority, digest (32 B) |
//! | 3 | `Ack` | largest, settled, low, delay (ms), n, n × (gap, length) descending from `largest` |
//! | 4 | `Status` | transfer, settled, state, upto, n, n × (start delta, length) ascending |
//! | 5 | `Hello` | incarnation (u64 BE), n, n × transfer, unacked message seq, replay floor (0: none), then (when not 0) its epoch (u64 BE), datagram bytes |
//! | 6 | `HelloAck` | incarnation (u64 BE), packet number of the `Hello`, next transfer, next message seq |
//! | 7 | `StatusRequest` | n, n × transfer |
//! | 8 | `Floor` | packet number |
//! | 9 | `Refuse` | transfer, n, n bytes of UTF-8 (the reason, at most [`MAX_REASON`]) |
//! | 10 | `Data`, last | transfer, index, bytes to the end of the body |
//!
//! Type 10 is a `Data` chunk without its length, which only the last chunk of a body can be
//! ([`encode_last_data`]): two bytes less in nearly every data packet.
//!
//! The handshake carries the stream marks, so that a side whose counters file was lost or
//! restored from an old copy resumes: a `Hello` says below which sequence number its sender's
//! messages were all committed by the receiver (the receiver skips what it then cannot hold), a
//! `HelloAck` which transfer ids and message sequence numbers of the `Hello`'s sender the
//! receiver has already seen (the sender numbers its new transfers above them).
//!
//! A `Hello` also carries its sender's *replay floor* for the receiver's run: a side that
//! restarted refuses every packet of the peer's current epoch at or below a mark it saved ahead
//! of use (see `sync`), and the peer numbers its next packets above it.
//!
//! And it carries the largest datagram its sender sends (its system's `datagram_bytes`): the
//! payload of a data packet follows from it, so two ends configured differently would each take
//! the other's data for malformed; the session warns and both use the smaller (see `sync`).
//!
//! A `HelloAck` names the `Hello` it answers (its sender's incarnation and the packet number
//! that carried it), so it shows that its sender heard that packet: the receiver of a
//! `HelloAck` answering one of its recent `Hello`s knows the answering epoch is live, which no
//! recording of an older run can fake (see `sync`'s handshake).
//!
//! Every count is bounded ([`MAX_RANGES`], [`MAX_LIST`]); decoding never panics and never
//! allocates more than the body's length.

use crate::Digest;

/// The most ranges an `Ack` or `Status` chunk carries.
pub const MAX_RANGES: usize = 128;
/// The most transfers a `Hello` or `StatusRequest` lists.
pub const MAX_LIST: usize = 64;
/// The longest reason a `Refuse` carries, in bytes (a longer one is cut at a character).
pub const MAX_REASON: usize = 240;

/// One chunk of a packet body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// Packet `index` of transfer `transfer`: bytes `[index × P, index × P + len)`, where `P` is the
    /// session's fixed packet payload size.
    Data {
        /// The sender's transfer id.
        transfer: u64,
        /// The packet's index within the transfer.
        index: u32,
        /// The bytes.
        payload: Vec<u8>,
    },
    /// What a transfer is; sent when it starts and whenever the receiver asks.
    Offer(Offer),
    /// Which packet numbers the sender of this chunk has received.
    Ack(AckRanges),
    /// A receiver's whole state of one transfer.
    Status(Status),
    /// "I (re)started, or the link came up": asks for the `Status` of the listed transfers.
    Hello {
        /// The sender's incarnation id, drawn at start.
        incarnation: u64,
        /// Outgoing transfers to resume.
        resume: Vec<u64>,
        /// Every message of the sender below this sequence number was committed by the receiver
        /// (the lowest one still in the sender's outbox, else its next sequence number).
        unacked_seq: u64,
        /// `(epoch, pn)`: the sender refuses the receiver's packets of `epoch` numbered at or
        /// below `pn` (the floor it restarted with); the receiver, when that epoch is its own
        /// run, numbers its next packets above it. `None`: no floor.
        replay_floor: Option<(u64, u64)>,
        /// The largest datagram the sender sends, in bytes (its configured size, whatever the
        /// two ends settled on).
        datagram_bytes: u64,
    },
    /// Confirms a `Hello`, with what the receiver has seen of the `Hello` sender's transfers.
    HelloAck {
        /// The incarnation of the `Hello` confirmed.
        incarnation: u64,
        /// The packet number of the packet that carried that `Hello`.
        hello_pn: u64,
        /// One above the highest transfer id of the `Hello`'s sender that the receiver knows.
        next_transfer: u64,
        /// One above the highest message sequence number of the `Hello`'s sender that the
        /// receiver holds or delivered.
        next_seq: u64,
    },
    /// Asks for the `Status` of the listed transfers.
    StatusRequest {
        /// The transfers.
        transfers: Vec<u64>,
    },
    /// The sender needs no acknowledgement of packet numbers below this any more.
    Floor {
        /// The packet number.
        pn: u64,
    },
    /// The receiver will not take this object transfer (no room for it): the sender drops it
    /// and reports the reason. Sent again for whatever more of it arrives.
    Refuse {
        /// The sender's transfer id.
        transfer: u64,
        /// Why, for people (at most [`MAX_REASON`] bytes).
        reason: String,
    },
}

/// What a transfer carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The sender's transfer id (unique per direction, persistent).
    pub transfer: u64,
    /// Object or message.
    pub kind: TransferKind,
    /// Total bytes.
    pub size: u64,
    /// Scheduling class: 0 first.
    pub priority: u8,
    /// The sha256 of the bytes; the receiver commits nothing that does not match.
    pub digest: Digest,
}

/// The two kinds of transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    /// A content-addressed object, committed to the receiver's store.
    Object,
    /// A message, delivered in `seq` order.
    Message {
        /// Its position in the sender's message stream.
        seq: u64,
    },
}

/// Received packet numbers: authoritative for `[low, largest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckRanges {
    /// The largest packet number received.
    pub largest: u64,
    /// Every packet number at or below this that is not in `ranges` is lost (the receiver waited
    /// out reordering).
    pub settled: u64,
    /// Packet numbers below this are not described.
    pub low: u64,
    /// How long the receiver held this acknowledgement after `largest` arrived, in milliseconds
    /// (it spaces acknowledgements out): the sender takes it off the round trip it measures.
    pub delay_ms: u64,
    /// Inclusive ranges received, descending, within `[low, largest]`.
    pub ranges: Vec<(u64, u64)>,
}

/// A receiver's state of one transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The transfer.
    pub transfer: u64,
    /// Packet numbers at or below this were waited out: what is missing is lost.
    pub settled: u64,
    /// What the receiver knows.
    pub state: StatusState,
    /// `ranges` describe packet indexes below this only (they are truncated to [`MAX_RANGES`]).
    pub upto: u32,
    /// Half-open index ranges received, ascending (for `Partial`).
    pub ranges: Vec<(u32, u32)>,
}

/// The state in a [`Status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    /// No trace of the transfer: everything must be sent.
    Unknown,
    /// `ranges` received so far (all of them, or the first [`MAX_RANGES`]).
    Partial,
    /// Received whole, verified and committed: send nothing more.
    Committed,
    /// The bytes did not verify and were dropped: start again from nothing.
    Reset,
    /// `ranges` received so far (as [`StatusState::Partial`]) but no offer: the offer is sent
    /// again (it was lost, or the spool was dropped and begun anew by data alone), and what is
    /// missing with it.
    Offerless,
}

/// A body that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunk at byte {at}: {what}")]
pub struct ChunkError {
    at: usize,
    what: &'static str,
}

/// Appends `chunk`'s encoding to `out`.
pub fn encode_chunk(chunk: &Chunk, out: &mut Vec<u8>) {
    match chunk {
        Chunk::Data {
            transfer,
            index,
            payload,
        } => {
            out.push(1);
            put(out, *transfer);
            put(out, u64::from(*index));
            put(out, payload.len() as u64);
            out.extend_from_slice(payload);
        }
        Chunk::Offer(o) => {
            out.push(2);
            put(out, o.transfer);
            match o.kind {
                TransferKind::Object => {
                    out.push(0);
                    put(out, 0);
                }
                TransferKind::Message { seq } => {
                    out.push(1);
                    put(out, seq);
                }
            }
            put(out, o.size);
            out.push(o.priority);
            out.extend_from_slice(&o.digest.0);
        }
        Chunk::Ack(a) => {
            out.push(3);
            put(out, a.largest);
            put(out, a.settled);
            put(out, a.low);
            put(out, a.delay_ms);
            let ranges = &a.ranges[..a.ranges.len().min(MAX_RANGES)];
            put(out, ranges.len() as u64);
            let mut prev_low = a.largest.saturating_add(1);
            for &(lo, hi) in ranges {
                put(out, prev_low.saturating_sub(hi).saturating_sub(1));
                put(out, hi.saturating_sub(lo));
                prev_low = lo;
            }
        }
        Chunk::Status(s) => {
            out.push(4);
            put(out, s.transfer);
            put(out, s.settled);
            out.push(match s.state {
                StatusState::Unknown => 0,
                StatusState::Partial => 1,
                StatusState::Committed => 2,
                StatusState::Reset => 3,
                StatusState::Offerless => 4,
            });
            put(out, u64::from(s.upto));
            let ranges = &s.ranges[..s.ranges.len().min(MAX_RANGES)];
            put(out, ranges.len() as u64);
            let mut prev_end = 0u32;
            for &(start, end) in ranges {
                put(out, u64::from(start.saturating_sub(prev_end)));
                put(out, u64::from(end.saturating_sub(start)));
                prev_end = end;
            }
        }
        Chunk::Hello {
            incarnation,
            resume,
            unacked_seq,
            replay_floor,
            datagram_bytes,
        } => {
            out.push(5);
            out.extend_from_slice(&incarnation.to_be_bytes());
            put_list(out, resume);
            put(out, *unacked_seq);
            match replay_floor {
                Some((epoch, pn)) if *pn > 0 => {
                    put(out, *pn);
                    out.extend_from_slice(&epoch.to_be_bytes());
                }
                _ => put(out, 0),
            }
            put(out, *datagram_bytes);
        }
        Chunk::HelloAck {
            incarnation,
            hello_pn,
            next_transfer,
            next_seq,
        } => {
            out.push(6);
            out.extend_from_slice(&incarnation.to_be_bytes());
            put(out, *hello_pn);
            put(out, *next_transfer);
            put(out, *next_seq);
        }
        Chunk::StatusRequest { transfers } => {
            out.push(7);
            put_list(out, transfers);
        }
        Chunk::Floor { pn } => {
            out.push(8);
            put(out, *pn);
        }
        Chunk::Refuse { transfer, reason } => {
            out.push(9);
            put(out, *transfer);
            let mut end = reason.len().min(MAX_REASON);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            put(out, end as u64);
            out.extend_from_slice(&reason.as_bytes()[..end]);
        }
    }
}

/// Appends a `Data` chunk that ends the body (type 10: no length, its bytes run to the end).
/// Nothing may be appended after it.
pub fn encode_last_data(transfer: u64, index: u32, payload: &[u8], out: &mut Vec<u8>) {
    out.push(10);
    put(out, transfer);
    put(out, u64::from(index));
    out.extend_from_slice(payload);
}

/// The encoded size of `chunk`.
pub fn chunk_len(chunk: &Chunk) -> usize {
    let mut v = Vec::new();
    encode_chunk(chunk, &mut v);
    v.len()
}

/// Bytes a `Data` chunk that ends its body ([`encode_last_data`]) adds around its payload, at
/// most, for transfer ids below 2^28 (an index takes at most 5 bytes): what a data packet's
/// payload size leaves room for.
pub const DATA_CHUNK_OVERHEAD: usize = 1 + 4 + 5;

/// The encoded size of a `Data` chunk of `len` bytes, ending its body (`last`) or not.
pub fn data_chunk_len(transfer: u64, index: u32, len: usize, last: bool) -> usize {
    let varint = |v: u64| (64 - v.max(1).leading_zeros() as usize).div_ceil(7);
    let length = if last { 0 } else { varint(len as u64) };
    1 + varint(transfer) + varint(u64::from(index)) + length + len
}

/// Decodes a whole body. Never panics.
pub fn decode_chunks(body: &[u8]) -> Result<Vec<Chunk>, ChunkError> {
    let mut r = Reader { buf: body, pos: 0 };
    let mut out = Vec::new();
    while r.pos < body.len() {
        out.push(r.chunk()?);
    }
    Ok(out)
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_list(out: &mut Vec<u8>, list: &[u64]) {
    let list = &list[..list.len().min(MAX_LIST)];
    put(out, list.len() as u64);
    for &t in list {
        put(out, t);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn err(&self, what: &'static str) -> ChunkError {
        ChunkError { at: self.pos, what }
    }

    fn byte(&mut self) -> Result<u8, ChunkError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.err("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self, n: usize) -> Result<&[u8], ChunkError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, ChunkError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if shift == 63 && b > 1 {
                    return Err(self.err("varint overflow"));
                }
                return Ok(v);
            }
        }
        Err(self.err("varint too long"))
    }

    fn u32(&mut self) -> Result<u32, ChunkError> {
        u32::try_from(self.varint()?).map_err(|_| self.err("value exceeds 32 bits"))
    }

    fn u64_be(&mut self) -> Result<u64, ChunkError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn count(&mut self, max: usize) -> Result<usize, ChunkError> {
        let n = self.varint()?;
        if n > max as u64 {
            return Err(self.err("count over its bound"));
        }
        Ok(n as usize)
    }

    fn list(&mut self) -> Result<Vec<u64>, ChunkError> {
        let n = self.count(MAX_LIST)?;
        (0..n).map(|_| self.varint()).collect()
    }

    fn chunk(&mut self) -> Result<Chunk, ChunkError> {
        Ok(match self.byte()? {
            1 => {
                let transfer = self.varint()?;
                let index = self.u32()?;
                let len = usize::try_from(self.varint()?).map_err(|_| self.err("length"))?;
                Chunk::Data {
                    transfer,
                    index,
                    payload: self.bytes(len)?.to_vec(),
                }
            }
            2 => {
                let transfer = self.varint()?;
                let kind = match self.byte()? {
                    0 => {
                        self.varint()?;
                        TransferKind::Object
                    }
                    1 => TransferKind::Message {
                        seq: self.varint()?,
                    },
                    _ => return Err(self.err("unknown transfer kind")),
                };
                let size = self.varint()?;
                let priority = self.byte()?;
                let mut d = [0u8; 32];
                d.copy_from_slice(self.bytes(32)?);
                Chunk::Offer(Offer {
                    transfer,
                    kind,
                    size,
                    priority,
                    digest: Digest(d),
                })
            }
            3 => {
                let largest = self.varint()?;
                let settled = self.varint()?;
                let low = self.varint()?;
                if settled > largest || low > largest {
                    return Err(self.err("ack bounds out of order"));
                }
                let delay_ms = self.varint()?;
                let n = self.count(MAX_RANGES)?;
                let mut ranges = Vec::with_capacity(n);
                let mut prev_low = largest.checked_add(1).ok_or_else(|| self.err("largest"))?;
                for _ in 0..n {
                    let gap = self.varint()?;
                    let len = self.varint()?;
                    let hi = prev_low
                        .checked_sub(gap)
                        .and_then(|v| v.checked_sub(1))
                        .ok_or_else(|| self.err("ack range"))?;
                    let lo = hi.checked_sub(len).ok_or_else(|| self.err("ack range"))?;
                    if lo < low {
                        return Err(self.err("ack range below low"));
                    }
                    ranges.push((lo, hi));
                    prev_low = lo;
                }
                Chunk::Ack(AckRanges {
                    largest,
                    settled,
                    low,
                    delay_ms,
                    ranges,
                })
            }
            4 => {
                let transfer = self.varint()?;
                let settled = self.varint()?;
                let state = match self.byte()? {
                    0 => StatusState::Unknown,
                    1 => StatusState::Partial,
                    2 => StatusState::Committed,
                    3 => StatusState::Reset,
                    4 => StatusState::Offerless,
                    _ => return Err(self.err("unknown status state")),
                };
                let upto = self.u32()?;
                let n = self.count(MAX_RANGES)?;
                let mut ranges = Vec::with_capacity(n);
                let mut prev_end = 0u32;
                for _ in 0..n {
                    let start = prev_end
                        .checked_add(self.u32()?)
                        .ok_or_else(|| self.err("status range"))?;
                    let end = start
                        .checked_add(self.u32()?)
                        .ok_or_else(|| self.err("status range"))?;
                    if end <= start {
                        return Err(self.err("empty status range"));
                    }
                    ranges.push((start, end));
                    prev_end = end;
                }
                Chunk::Status(Status {
                    transfer,
                    settled,
                    state,
                    upto,
                    ranges,
                })
            }
            5 => {
                let incarnation = self.u64_be()?;
                let resume = self.list()?;
                let unacked_seq = self.varint()?;
                let replay_floor = match self.varint()? {
                    0 => None,
                    pn => Some((self.u64_be()?, pn)),
                };
                let at = self.pos;
                let datagram_bytes = self.varint()?;
                let sizes = crate::MIN_DATAGRAM as u64..=crate::MAX_PACKET as u64;
                if !sizes.contains(&datagram_bytes) {
                    return Err(ChunkError {
                        at,
                        what: "a datagram size outside the sizes a link may use",
                    });
                }
                Chunk::Hello {
                    incarnation,
                    resume,
                    unacked_seq,
                    replay_floor,
                    datagram_bytes,
                }
            }
            6 => Chunk::HelloAck {
                incarnation: self.u64_be()?,
                hello_pn: self.varint()?,
                next_transfer: self.varint()?,
                next_seq: self.varint()?,
            },
            7 => Chunk::StatusRequest {
                transfers: self.list()?,
            },
            8 => Chunk::Floor { pn: self.varint()? },
            10 => {
                let transfer = self.varint()?;
                let index = self.u32()?;
                let rest = self.buf.len() - self.pos;
                Chunk::Data {
                    transfer,
                    index,
                    payload: self.bytes(rest)?.to_vec(),
                }
            }
            9 => {
                let transfer = self.varint()?;
                let n = self.count(MAX_REASON)?;
                let at = self.pos;
                let reason = std::str::from_utf8(self.bytes(n)?)
                    .map_err(|_| ChunkError {
                        at,
                        what: "reason not UTF-8",
                    })?
                    .to_string();
                Chunk::Refuse { transfer, reason }
            }
            _ => {
                return Err(ChunkError {
                    at: self.pos - 1,
                    what: "unknown chunk type",
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(chunks: Vec<Chunk>) {
        let mut body = Vec::new();
        for c in &chunks {
            encode_chunk(c, &mut body);
        }
        assert_eq!(decode_chunks(&body).unwrap(), chunks);
        for cut in 0..body.len() {
            let _ = decode_chunks(&body[..cut]);
        }
    }

    #[test]
    fn every_chunk_round_trips() {
        round_trip(vec![
            Chunk::Data {
                transfer: 300,
                index: 70_000,
                payload: vec![1, 2, 3],
            },
            Chunk::Offer(Offer {
                transfer: 1,
                kind: TransferKind::Message { seq: 9 },
                size: 1 << 40,
                priority: 0,
                digest: Digest::of(b"x"),
            }),
            Chunk::Offer(Offer {
                transfer: 2,
                kind: TransferKind::Object,
                size: 0,
                priority: 3,
                digest: Digest([7; 32]),
            }),
            Chunk::Ack(AckRanges {
                largest: 1000,
                settled: 990,
                low: 900,
                delay_ms: 3400,
                ranges: vec![(995, 1000), (950, 990), (900, 900)],
            }),
            Chunk::Status(Status {
                transfer: 5,
                settled: 77,
                state: StatusState::Partial,
                upto: 5000,
                ranges: vec![(0, 10), (12, 13), (20, 4000)],
            }),
            Chunk::Status(Status {
                transfer: 6,
                settled: 0,
                state: StatusState::Offerless,
                upto: u32::MAX,
                ranges: vec![(1, 2)],
            }),
            Chunk::Hello {
                incarnation: u64::MAX,
                resume: vec![1, 2, 3],
                unacked_seq: 17,
                replay_floor: None,
                datagram_bytes: 1500,
            },
            Chunk::Hello {
                incarnation: 1,
                resume: vec![],
                unacked_seq: 0,
                replay_floor: Some((u64::MAX, (1 << 48) - 1)),
                datagram_bytes: crate::MIN_DATAGRAM as u64,
            },
            Chunk::HelloAck {
                incarnation: 42,
                hello_pn: (1 << 48) - 1,
                next_transfer: 300,
                next_seq: u64::MAX,
            },
            Chunk::StatusRequest { transfers: vec![] },
            Chunk::Floor { pn: 123_456 },
            Chunk::Refuse {
                transfer: 4,
                reason: "no room: the object store is full".into(),
            },
        ]);
    }

    #[test]
    fn a_last_data_chunk_runs_to_the_end_of_the_body() {
        let mut body = Vec::new();
        let ack = Chunk::Floor { pn: 9 };
        encode_chunk(&ack, &mut body);
        let plain = Chunk::Data {
            transfer: 3,
            index: 1,
            payload: vec![5; 300],
        };
        encode_chunk(&plain, &mut body);
        let before = body.len();
        encode_last_data(3, 2, &[6; 300], &mut body);
        assert_eq!(
            body.len() - before,
            chunk_len(&plain) - 2,
            "its length left out"
        );
        let last = Chunk::Data {
            transfer: 3,
            index: 2,
            payload: vec![6; 300],
        };
        assert_eq!(decode_chunks(&body).unwrap(), vec![ack, plain, last]);
        // Empty, or cut anywhere: decoded or refused, never a panic.
        for (t, i, len) in [(0, 0, 0), (127, 128, 1458), (1 << 28, u32::MAX, 20_000)] {
            let payload = vec![1; len];
            let mut plain = Vec::new();
            encode_chunk(
                &Chunk::Data {
                    transfer: t,
                    index: i,
                    payload: payload.clone(),
                },
                &mut plain,
            );
            assert_eq!(data_chunk_len(t, i, len, false), plain.len());
            let mut last = Vec::new();
            encode_last_data(t, i, &payload, &mut last);
            assert_eq!(data_chunk_len(t, i, len, true), last.len());
        }
        assert_eq!(
            data_chunk_len((1 << 28) - 1, u32::MAX, 0, true),
            DATA_CHUNK_OVERHEAD
        );
        let mut empty = Vec::new();
        encode_last_data(1, 0, &[], &mut empty);
        assert_eq!(decode_chunks(&empty).unwrap().len(), 1);
        for cut in 0..body.len() {
            let _ = decode_chunks(&body[..cut]);
        }
    }

    #[test]
    fn a_long_reason_is_cut_at_a_character() {
        let mut body = Vec::new();
        let reason = "é".repeat(MAX_REASON);
        encode_chunk(
            &Chunk::Refuse {
                transfer: 1,
                reason: reason.clone(),
            },
            &mut body,
        );
        match &decode_chunks(&body).unwrap()[..] {
            [Chunk::Refuse { reason: got, .. }] => {
                assert_eq!(got.len(), MAX_REASON);
                assert!(reason.starts_with(got.as_str()));
            }
            other => panic!("{other:?}"),
        }
        // Not UTF-8, or longer than the bound: refused.
        assert!(decode_chunks(&[9, 1, 2, 0xff, 0xfe]).is_err());
        let mut long = vec![9, 1];
        put(&mut long, MAX_REASON as u64 + 1);
        long.extend(std::iter::repeat_n(b'a', MAX_REASON + 1));
        assert!(decode_chunks(&long).is_err());
    }

    #[test]
    fn bounds_are_enforced() {
        // A Hello claiming a million transfers.
        let mut body = vec![5];
        body.extend_from_slice(&1u64.to_be_bytes());
        put(&mut body, 1_000_000);
        assert!(decode_chunks(&body).is_err());
        // A data chunk longer than the body.
        let mut body = vec![1];
        put(&mut body, 1);
        put(&mut body, 1);
        put(&mut body, 5000);
        body.extend_from_slice(&[0; 10]);
        assert!(decode_chunks(&body).is_err());
        assert!(decode_chunks(&[99]).is_err());
        // A Hello whose datagram size no link may use: refused, never clamped into use.
        for size in [
            0,
            crate::MIN_DATAGRAM as u64 - 1,
            crate::MAX_PACKET as u64 + 1,
        ] {
            let hello = Chunk::Hello {
                incarnation: 1,
                resume: vec![],
                unacked_seq: 0,
                replay_floor: None,
                datagram_bytes: size,
            };
            let mut body = Vec::new();
            encode_chunk(&hello, &mut body);
            assert!(decode_chunks(&body).is_err(), "{size}");
        }
        assert!(
            decode_chunks(&[
                8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ])
            .is_err()
        );
    }
}
