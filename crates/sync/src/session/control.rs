//! The control queue: chunks waiting for a packet (acknowledgements at the front, the rest in
//! order), with the transfers whose `Refuse` or `Status` waits in it counted aside, so that the
//! question asked for every data chunk of a refused or committed transfer ("is the answer
//! already queued?") is a lookup, not a scan of the queue.

use std::collections::{HashMap, VecDeque};

use wire::Chunk;

/// See the module documentation.
pub(super) struct Control {
    chunks: VecDeque<Chunk>,
    /// Transfers with a `Refuse` in `chunks`, and how many.
    refusals: HashMap<u64, usize>,
    /// Transfers with a `Status` in `chunks`, and how many.
    statuses: HashMap<u64, usize>,
}

impl Control {
    pub(super) fn new() -> Control {
        Control {
            chunks: VecDeque::new(),
            refusals: HashMap::new(),
            statuses: HashMap::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub(super) fn front(&self) -> Option<&Chunk> {
        self.chunks.front()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Chunk> + '_ {
        self.chunks.iter()
    }

    /// Whether a `Refuse` of transfer `t` waits.
    pub(super) fn has_refusal(&self, t: u64) -> bool {
        self.refusals.contains_key(&t)
    }

    /// Whether a `Status` of transfer `t` waits.
    pub(super) fn has_status(&self, t: u64) -> bool {
        self.statuses.contains_key(&t)
    }

    pub(super) fn push_back(&mut self, c: Chunk) {
        self.count(&c, true);
        self.chunks.push_back(c);
    }

    pub(super) fn push_front(&mut self, c: Chunk) {
        self.count(&c, true);
        self.chunks.push_front(c);
    }

    pub(super) fn extend(&mut self, chunks: impl IntoIterator<Item = Chunk>) {
        for c in chunks {
            self.push_back(c);
        }
    }

    pub(super) fn pop_front(&mut self) -> Option<Chunk> {
        let c = self.chunks.pop_front()?;
        self.count(&c, false);
        Some(c)
    }

    /// The position of the first chunk `f` says.
    pub(super) fn position(&self, f: impl FnMut(&Chunk) -> bool) -> Option<usize> {
        self.chunks.iter().position(f)
    }

    pub(super) fn get(&self, i: usize) -> Option<&Chunk> {
        self.chunks.get(i)
    }

    /// Puts `c` in place of the chunk at `i` (nothing when there is none).
    pub(super) fn replace(&mut self, i: usize, c: Chunk) {
        if i < self.chunks.len() {
            self.count(&c, true);
            let old = std::mem::replace(&mut self.chunks[i], c);
            self.count(&old, false);
        }
    }

    pub(super) fn remove(&mut self, i: usize) -> Option<Chunk> {
        let c = self.chunks.remove(i)?;
        self.count(&c, false);
        Some(c)
    }

    fn count(&mut self, c: &Chunk, added: bool) {
        let (counts, t) = match c {
            Chunk::Refuse { transfer, .. } => (&mut self.refusals, *transfer),
            Chunk::Status(s) => (&mut self.statuses, s.transfer),
            _ => return,
        };
        if added {
            *counts.entry(t).or_default() += 1;
        } else if let Some(n) = counts.get_mut(&t) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use wire::{Status, StatusState};

    use super::*;

    /// What the sets say agrees with a scan of the queue, whatever comes and goes.
    #[test]
    fn the_counts_agree_with_a_scan() {
        let mut c = Control::new();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let chunk = |kind: u64, t: u64| match kind {
            0 => Chunk::Refuse {
                transfer: t,
                reason: "no room".into(),
            },
            1 => Chunk::Status(Status {
                transfer: t,
                settled: 0,
                state: StatusState::Committed,
                upto: 0,
                ranges: Vec::new(),
            }),
            _ => Chunk::Floor { pn: t },
        };
        for _ in 0..5000 {
            let (kind, t) = (next(3), next(8));
            match next(6) {
                0 => c.push_back(chunk(kind, t)),
                1 => c.push_front(chunk(kind, t)),
                2 => {
                    c.pop_front();
                }
                3 => {
                    let i = next(c.chunks.len() as u64 + 1) as usize;
                    c.replace(i, chunk(kind, t));
                }
                4 => {
                    let i = next(c.chunks.len() as u64 + 1) as usize;
                    c.remove(i);
                }
                _ => c.extend([chunk(kind, t), chunk(next(3), t)]),
            }
            for t in 0..8 {
                let refused = c
                    .iter()
                    .any(|x| matches!(x, Chunk::Refuse { transfer, .. } if *transfer == t));
                let status = c
                    .iter()
                    .any(|x| matches!(x, Chunk::Status(s) if s.transfer == t));
                assert_eq!(c.has_refusal(t), refused);
                assert_eq!(c.has_status(t), status);
            }
        }
    }
}
