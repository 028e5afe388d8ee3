//! The data packets in flight, by packet number, with what pacing asks of them on every poll
//! kept as running totals: their bytes, and those of the packets gone *silent* (sent longer ago
//! than the silence the caller names without an acknowledgement: lost, or below what
//! acknowledgements still describe, left to status answers). Packet numbers grow with the time
//! they were sent, so the silent ones are a prefix: a cursor moves over it once, and a packet
//! once silent stays so (a probe timeout that grows later does not bring it back).

use std::collections::BTreeMap;
use std::ops::RangeBounds;
use std::time::{Duration, Instant};

use super::Sent;

/// Data packets in flight. See the module documentation.
pub(super) struct InFlight {
    packets: BTreeMap<u64, Sent>,
    /// Bytes of every packet here.
    bytes: usize,
    /// Packets numbered below this have gone silent.
    silent_below: u64,
    /// Bytes of the packets here numbered below `silent_below`.
    silent_bytes: usize,
}

impl InFlight {
    pub(super) fn new() -> InFlight {
        InFlight {
            packets: BTreeMap::new(),
            bytes: 0,
            silent_below: 0,
            silent_bytes: 0,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// The lowest packet number in flight.
    pub(super) fn first(&self) -> Option<u64> {
        self.packets.keys().next().copied()
    }

    /// The packets numbered below `below` (every one when `None`), newest first.
    pub(super) fn newest_below(
        &self,
        below: Option<u64>,
    ) -> impl Iterator<Item = (&u64, &Sent)> + '_ {
        self.packets.range(..below.unwrap_or(u64::MAX)).rev()
    }

    pub(super) fn range(
        &self,
        range: impl RangeBounds<u64>,
    ) -> impl Iterator<Item = (&u64, &Sent)> + '_ {
        self.packets.range(range)
    }

    /// Adds packet `pn` (it replaces one of the same number).
    pub(super) fn insert(&mut self, pn: u64, sent: Sent) {
        self.count(pn, sent.size, true);
        if let Some(old) = self.packets.insert(pn, sent) {
            self.count(pn, old.size, false);
        }
    }

    pub(super) fn remove(&mut self, pn: u64) -> Option<Sent> {
        let sent = self.packets.remove(&pn)?;
        self.count(pn, sent.size, false);
        Some(sent)
    }

    /// Keeps only the packets `keep` says. (Once a transfer: the totals are counted again.)
    pub(super) fn retain(&mut self, keep: impl FnMut(&u64, &mut Sent) -> bool) {
        self.packets.retain(keep);
        self.bytes = self.packets.values().map(|s| s.size).sum();
        self.silent_bytes = self
            .packets
            .range(..self.silent_below)
            .map(|(_, s)| s.size)
            .sum();
    }

    pub(super) fn clear(&mut self) {
        self.packets.clear();
        self.bytes = 0;
        self.silent_bytes = 0;
    }

    /// Moves the cursor over the packets sent `silence` or longer before `now`.
    pub(super) fn go_silent(&mut self, now: Instant, silence: Duration) {
        for (&pn, s) in self.packets.range(self.silent_below..) {
            if now < s.at + silence {
                break;
            }
            self.silent_bytes += s.size;
            self.silent_below = pn + 1;
        }
    }

    /// Bytes of the packets sent within `silence` of `now` (those past the cursor that went
    /// silent since it last moved are passed over here too: a few at most).
    pub(super) fn young_bytes(&self, now: Instant, silence: Duration) -> usize {
        let mut young = self.bytes - self.silent_bytes;
        for (_, s) in self.packets.range(self.silent_below..) {
            if now < s.at + silence {
                break;
            }
            young -= s.size;
        }
        young
    }

    /// When the oldest packet still young at `now` goes silent.
    pub(super) fn next_silence(&self, now: Instant, silence: Duration) -> Option<Instant> {
        self.packets
            .range(self.silent_below..)
            .map(|(_, s)| s.at + silence)
            .find(|&t| t > now)
    }

    fn count(&mut self, pn: u64, size: usize, add: bool) {
        let silent = pn < self.silent_below;
        if add {
            self.bytes += size;
            if silent {
                self.silent_bytes += size;
            }
        } else {
            self.bytes -= size;
            if silent {
                self.silent_bytes -= size;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::estimate::DeliveryRate;

    /// The running totals agree with a count of every packet, whatever is added, removed,
    /// kept or left to go silent, in any order.
    #[test]
    fn the_totals_agree_with_a_count() {
        let t0 = Instant::now();
        let state = DeliveryRate::new(1500).on_send(t0, true, false);
        let mut f = InFlight::new();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let silence = Duration::from_secs(2);
        let mut pn = 0;
        let mut now = t0;
        // Packets a probe timeout left for silent, as the session counts them: once silent,
        // always silent.
        let mut silent_below = 0;
        for _ in 0..5000 {
            now += Duration::from_millis(next(200));
            match next(6) {
                0 | 1 => {
                    pn += 1 + next(3);
                    let sent = Sent {
                        transfer: next(4),
                        index: 0,
                        at: now,
                        size: 100 + next(1400) as usize,
                        state,
                        spare: false,
                    };
                    f.insert(pn, sent);
                }
                2 => {
                    let victim = pn.saturating_sub(next(40));
                    f.remove(victim);
                }
                3 if next(20) == 0 => {
                    let t = next(4);
                    f.retain(|_, s| s.transfer != t);
                }
                4 => {
                    f.go_silent(now, silence);
                    silent_below = f.silent_below;
                }
                _ => {}
            }
            let all: usize = f.packets.values().map(|s| s.size).sum();
            assert_eq!(f.bytes, all);
            let young: usize = f
                .packets
                .range(silent_below..)
                .filter(|(_, s)| now < s.at + silence)
                .map(|(_, s)| s.size)
                .sum();
            assert_eq!(f.young_bytes(now, silence), young);
            let next_silence = f
                .packets
                .range(silent_below..)
                .map(|(_, s)| s.at + silence)
                .filter(|&t| t > now)
                .min();
            assert_eq!(f.next_silence(now, silence), next_silence);
        }
    }
}
