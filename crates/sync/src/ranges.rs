use std::collections::BTreeMap;

/// A set of `u64`s kept as disjoint, non-adjacent half-open ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// start → end (exclusive).
    map: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// The empty set.
    pub fn new() -> RangeSet {
        RangeSet::default()
    }

    /// A set from half-open ranges (any order, may overlap).
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u64, u64)>) -> RangeSet {
        let mut s = RangeSet::new();
        for (a, b) in ranges {
            s.insert(a, b);
        }
        s
    }

    /// Whether `x` is in the set.
    pub fn contains(&self, x: u64) -> bool {
        self.map
            .range(..=x)
            .next_back()
            .is_some_and(|(_, &end)| x < end)
    }

    /// Adds `[start, end)`.
    pub fn insert(&mut self, mut start: u64, mut end: u64) {
        if start >= end {
            return;
        }
        // Merge with a range starting at or before `start` that reaches it.
        if let Some((&s, &e)) = self.map.range(..=start).next_back()
            && e >= start
        {
            start = s;
            end = end.max(e);
            self.map.remove(&s);
        }
        // Swallow ranges starting inside `[start, end]`.
        while let Some((&s, &e)) = self.map.range(start..=end).next() {
            end = end.max(e);
            self.map.remove(&s);
        }
        self.map.insert(start, end);
    }

    /// Adds one value.
    pub fn insert_one(&mut self, x: u64) {
        self.insert(x, x.saturating_add(1));
    }

    /// Removes every value below `x`.
    pub fn remove_below(&mut self, x: u64) {
        let below: Vec<u64> = self.map.range(..x).map(|(&s, _)| s).collect();
        for s in below {
            let e = self.map.remove(&s).unwrap_or(s);
            if e > x {
                self.map.insert(x, e);
            }
        }
    }

    /// The ranges in ascending order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, u64)> + '_ {
        self.map.iter().map(|(&s, &e)| (s, e))
    }

    /// How many ranges.
    pub fn range_count(&self) -> usize {
        self.map.len()
    }

    /// How many values.
    pub fn len(&self) -> u64 {
        self.map.iter().map(|(s, e)| e - s).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether `[0, n)` is wholly in the set.
    pub fn covers(&self, n: u64) -> bool {
        n == 0
            || self
                .map
                .first_key_value()
                .is_some_and(|(&s, &e)| s == 0 && e >= n)
    }

    /// Values of `[lo, hi)` not in the set, ascending.
    pub fn gaps(&self, lo: u64, hi: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = lo;
        for (s, e) in self.iter() {
            if e <= at {
                continue;
            }
            if s >= hi {
                break;
            }
            if s > at {
                out.push((at, s.min(hi)));
            }
            at = at.max(e);
            if at >= hi {
                break;
            }
        }
        if at < hi {
            out.push((at, hi));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_answers() {
        let mut s = RangeSet::new();
        s.insert(5, 7);
        s.insert(1, 2);
        s.insert(2, 3);
        s.insert(7, 9);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(1, 3), (5, 9)]);
        assert!(s.contains(8) && !s.contains(9) && !s.contains(3) && s.contains(1));
        s.insert(0, 100);
        assert_eq!(s.range_count(), 1);
        assert!(s.covers(100) && !s.covers(101));
        let t = RangeSet::from_ranges([(2, 4), (6, 8)]);
        assert_eq!(t.gaps(0, 10), vec![(0, 2), (4, 6), (8, 10)]);
        assert_eq!(t.gaps(3, 7), vec![(4, 6)]);
        let mut u = t.clone();
        u.remove_below(3);
        assert_eq!(u.iter().collect::<Vec<_>>(), vec![(3, 4), (6, 8)]);
        assert_eq!(u.len(), 3);
    }
}
