//! Login throttling: failed logins counted in memory, in three kinds of bucket.
//!
//! - **user and address**: 10 failures lock that user for that address. This is the bucket a
//!   guesser at one account meets: the 11th attempt is refused, even with the right password,
//!   until the cool-down ends; other addresses are not affected, so a guesser cannot lock the
//!   user out.
//! - **address**: 30 failures, whatever the users, lock the address for every user (one
//!   address trying one password on many accounts).
//! - **user**: 100 failures from all addresses lock the user for every address that has not
//!   logged in as that user since the ground started (many addresses guessing at one
//!   account); the addresses the user logged in from keep working.
//!
//! A lock lasts [`COOL_DOWN`]; failures are forgotten [`COOL_DOWN`] after the last one. An
//! attempt counts as a failure from the moment it is let through until it proves right, so
//! attempts sent at once cannot all pass before the first has failed. A refused attempt is not
//! a failure (it does not extend a lock), and a success clears its user and address bucket
//! only, so logging in to one's own account does not reset an address's count. IPv6 addresses count by their /64, the block one host usually holds. Every map is
//! bounded ([`MAX_TRACKED`]): when one is full, stale entries go first, then the oldest.
//!
//! The state machine takes `now` as an argument and reads no clock; `auth` drives it.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures of one user from one address before it is locked.
pub(crate) const PAIR_LIMIT: u32 = 10;
/// Failures from one address (any users) before it is locked.
pub(crate) const ADDRESS_LIMIT: u32 = 30;
/// Failures for one user (any addresses) before it is locked for addresses it is not known at.
pub(crate) const USER_LIMIT: u32 = 100;
/// How long a lock lasts, and how long a failure is remembered after the last one.
pub(crate) const COOL_DOWN: Duration = Duration::from_secs(15 * 60);
/// Entries in each map at most.
const MAX_TRACKED: usize = 100_000;
/// Addresses remembered per user as ones it logged in from.
const KNOWN_PER_USER: usize = 16;

/// Where a login comes from: an IPv4 address, an IPv6 /64, or unknown (no socket, as in tests
/// that call the router directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Client {
    V4([u8; 4]),
    V6([u8; 8]),
    Unknown,
}

impl Client {
    pub(crate) fn of(addr: Option<IpAddr>) -> Client {
        match addr.map(|a| a.to_canonical()) {
            Some(IpAddr::V4(a)) => Client::V4(a.octets()),
            Some(IpAddr::V6(a)) => {
                let o = a.octets();
                Client::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
            }
            None => Client::Unknown,
        }
    }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Client::V4(a) => write!(f, "{}", std::net::Ipv4Addr::from(*a)),
            Client::V6(p) => {
                let mut full = [0u8; 16];
                full[..8].copy_from_slice(p);
                write!(f, "{}/64", std::net::Ipv6Addr::from(full))
            }
            Client::Unknown => f.write_str("an unknown address"),
        }
    }
}

/// Which bucket refused a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locked {
    Pair,
    Address,
    User,
}

/// A refused login: which lock, and when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) locked: Locked,
    pub(crate) retry_after: Duration,
}

impl Refusal {
    /// Whole seconds until the lock ends, rounded up (`Retry-After`).
    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil() as u64
    }

    pub(crate) fn message(&self) -> String {
        let what = match self.locked {
            Locked::Pair => "for this user from this address",
            Locked::Address => "from this address",
            Locked::User => "for this user",
        };
        format!(
            "too many failed logins {what}; try again in {} s",
            self.retry_after_secs()
        )
    }
}

/// The throttle: every bucket behind one lock, held only for a few map operations.
#[derive(Debug, Default)]
pub(crate) struct LoginThrottle {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    pairs: Buckets<(String, Client)>,
    addresses: Buckets<Client>,
    users: Buckets<String>,
    /// The addresses each user logged in from, most recent last.
    known: HashMap<String, Vec<Client>>,
}

#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, Bucket>,
}

impl<K> Default for Buckets<K> {
    fn default() -> Self {
        Buckets {
            map: HashMap::new(),
        }
    }
}

impl State {
    /// The lock that refuses `user` from `client` now, if any.
    fn check(&self, user: Option<&str>, client: Client, now: Instant) -> Result<(), Refusal> {
        let refuse = |locked, retry_after| {
            Err(Refusal {
                locked,
                retry_after,
            })
        };
        if let Some(user) = user
            && let Some(d) = self.pairs.locked(&(user.to_string(), client), now)
        {
            return refuse(Locked::Pair, d);
        }
        if let Some(d) = self.addresses.locked(&client, now) {
            return refuse(Locked::Address, d);
        }
        if let Some(user) = user
            && let Some(d) = self.users.locked(&user.to_string(), now)
            && !self.known.get(user).is_some_and(|k| k.contains(&client))
        {
            return refuse(Locked::User, d);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl Bucket {
    fn stale(&self, now: Instant) -> bool {
        self.locked_until.is_none_or(|t| t <= now) && now.duration_since(self.last) >= COOL_DOWN
    }
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// How long `key` stays locked, if it is.
    fn locked(&self, key: &K, now: Instant) -> Option<Duration> {
        let until = self.map.get(key)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure; returns whether it locked the key.
    fn fail(&mut self, key: &K, limit: u32, now: Instant) -> bool {
        if !self.map.contains_key(key) && self.map.len() >= MAX_TRACKED {
            self.make_room(now);
        }
        let b = self.map.entry(key.clone()).or_insert(Bucket {
            failures: 0,
            last: now,
            locked_until: None,
        });
        if b.stale(now) || b.locked_until.is_some_and(|t| t <= now) {
            *b = Bucket {
                failures: 0,
                last: now,
                locked_until: None,
            };
        }
        b.failures += 1;
        b.last = now;
        if b.failures >= limit {
            b.failures = 0;
            b.locked_until = Some(now + COOL_DOWN);
            return true;
        }
        false
    }

    fn clear(&mut self, key: &K) {
        self.map.remove(key);
    }

    /// Takes back the failure counted for an attempt that succeeded; if that failure set the
    /// lock, lifts it, the failures before it still counted.
    fn take_back(&mut self, key: &K, limit: u32, lift: bool) {
        if let Some(b) = self.map.get_mut(key) {
            if lift {
                b.locked_until = None;
                b.failures = limit - 1;
            } else {
                b.failures = b.failures.saturating_sub(1);
            }
        }
    }

    /// Drops stale entries, then, if that freed nothing, the tenth of the entries least
    /// recently failed.
    fn make_room(&mut self, now: Instant) {
        self.map.retain(|_, b| !b.stale(now));
        if self.map.len() >= MAX_TRACKED {
            let mut lasts: Vec<Instant> = self.map.values().map(|b| b.last).collect();
            let cut = MAX_TRACKED / 10;
            lasts.select_nth_unstable(cut);
            let before = lasts[cut];
            self.map.retain(|_, b| b.last > before);
        }
    }
}

/// A login being tried: counted as a failure from the start, so that attempts made at once
/// cannot all pass the check before any of them has failed; [`LoginThrottle::succeeded`] takes
/// the count back.
#[derive(Debug)]
pub(crate) struct Attempt {
    user: Option<String>,
    client: Client,
    /// The locks this attempt's failure set.
    locked: Vec<Locked>,
}

impl Attempt {
    /// The locks this attempt set, should it fail (for the log).
    pub(crate) fn locked(&self) -> &[Locked] {
        &self.locked
    }
}

impl LoginThrottle {
    /// Refuses a login of `user` (a valid user name, or `None` for a name that cannot be one)
    /// from `client` while a bucket of theirs is locked; otherwise counts it as a failure until
    /// it succeeds.
    pub(crate) fn begin(
        &self,
        user: Option<&str>,
        client: Client,
        now: Instant,
    ) -> Result<Attempt, Refusal> {
        let mut s = self.lock();
        s.check(user, client, now)?;
        let mut locked = Vec::new();
        if let Some(user) = user {
            if s.pairs.fail(&(user.to_string(), client), PAIR_LIMIT, now) {
                locked.push(Locked::Pair);
            }
            if s.users.fail(&user.to_string(), USER_LIMIT, now) {
                locked.push(Locked::User);
            }
        }
        if s.addresses.fail(&client, ADDRESS_LIMIT, now) {
            locked.push(Locked::Address);
        }
        Ok(Attempt {
            user: user.map(str::to_string),
            client,
            locked,
        })
    }

    /// The attempt was right: its failure is taken back (the locks it set lifted), the user
    /// and address bucket is cleared, and the address is known for the user from now on.
    pub(crate) fn succeeded(&self, attempt: Attempt) {
        let Attempt {
            user,
            client,
            locked,
        } = attempt;
        let mut s = self.lock();
        s.addresses
            .take_back(&client, ADDRESS_LIMIT, locked.contains(&Locked::Address));
        let Some(user) = user else { return };
        s.users
            .take_back(&user, USER_LIMIT, locked.contains(&Locked::User));
        s.pairs.clear(&(user.clone(), client));
        if !s.known.contains_key(&user) && s.known.len() >= MAX_TRACKED {
            return;
        }
        let known = s.known.entry(user).or_default();
        known.retain(|c| *c != client);
        if known.len() == KNOWN_PER_USER {
            known.remove(0);
        }
        known.push(client);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves counts that are still counts.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Client {
        Client::of(Some(s.parse().unwrap()))
    }

    impl LoginThrottle {
        /// Whether a login would be let through now, counting nothing.
        fn check(&self, user: Option<&str>, client: Client, now: Instant) -> Result<(), Refusal> {
            self.lock().check(user, client, now)
        }

        /// A login that is let through and fails.
        fn fail(&self, user: Option<&str>, client: Client, now: Instant) -> Vec<Locked> {
            self.begin(user, client, now).unwrap().locked
        }
    }

    #[test]
    fn ten_failures_lock_the_user_for_that_address_only() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        let (a, b) = (addr("192.0.2.1"), addr("192.0.2.2"));
        for i in 1..PAIR_LIMIT {
            assert_eq!(t.fail(Some("alice"), a, now), [], "attempt {i}");
        }
        assert_eq!(t.fail(Some("alice"), a, now), [Locked::Pair]);
        let refused = t.begin(Some("alice"), a, now).unwrap_err();
        assert_eq!(refused.locked, Locked::Pair);
        assert_eq!(refused.retry_after, COOL_DOWN);
        assert_eq!(
            refused.message(),
            "too many failed logins for this user from this address; try again in 900 s"
        );
        // Another address, or another user from this address, may still try.
        assert_eq!(t.check(Some("alice"), b, now), Ok(()));
        assert_eq!(t.check(Some("bob"), a, now), Ok(()));
        // The lock ends with the cool-down, and the count starts again.
        let later = now + COOL_DOWN;
        assert_eq!(t.check(Some("alice"), a, later), Ok(()));
        t.fail(Some("alice"), a, later);
        assert_eq!(t.check(Some("alice"), a, later), Ok(()));
    }

    #[test]
    fn attempts_at_once_cannot_all_pass_before_one_fails() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        let a = addr("192.0.2.1");
        // Ten attempts in flight together: the eleventh is refused before any has failed.
        let flying: Vec<Attempt> = (0..PAIR_LIMIT)
            .map(|_| t.begin(Some("alice"), a, now).unwrap())
            .collect();
        assert!(t.begin(Some("alice"), a, now).is_err());
        // The one that was right takes its failure back, and the lock it set.
        let mut flying = flying;
        let last = flying.pop().unwrap();
        assert_eq!(last.locked(), [Locked::Pair]);
        t.succeeded(last);
        assert_eq!(t.check(Some("alice"), a, now), Ok(()));
    }

    #[test]
    fn failures_are_forgotten_and_a_success_clears_its_pair() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        let a = addr("192.0.2.1");
        for _ in 0..PAIR_LIMIT - 1 {
            t.fail(Some("alice"), a, now);
        }
        // A cool-down after the last failure, the count starts from zero.
        let later = now + COOL_DOWN;
        t.fail(Some("alice"), a, later);
        assert_eq!(t.check(Some("alice"), a, later), Ok(()));
        for _ in 0..PAIR_LIMIT - 2 {
            t.fail(Some("alice"), a, later);
        }
        t.succeeded(t.begin(Some("alice"), a, later).unwrap());
        t.fail(Some("alice"), a, later);
        assert_eq!(t.check(Some("alice"), a, later), Ok(()));
    }

    #[test]
    fn an_address_spraying_many_users_is_locked_for_all_of_them() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        let a = addr("2001:db8::1");
        for i in 0..ADDRESS_LIMIT {
            t.fail(Some(&format!("user{i}")), a, now);
            if i + 1 < ADDRESS_LIMIT {
                // Logging in to one's own account does not reset the address.
                t.succeeded(t.begin(Some("mallory"), a, now).unwrap());
            }
        }
        let refused = t.check(Some("carol"), a, now).unwrap_err();
        assert_eq!(refused.locked, Locked::Address);
        // The same /64 is the same address; the next /64 is not.
        assert!(t.check(Some("carol"), addr("2001:db8::ffff"), now).is_err());
        assert_eq!(t.check(Some("carol"), addr("2001:db8:0:1::1"), now), Ok(()));
        assert_eq!(a.to_string(), "2001:db8::/64");
        assert_eq!(addr("::ffff:192.0.2.1").to_string(), "192.0.2.1");
        // A name that cannot be a user counts against the address too.
        let u = addr("198.51.100.7");
        for _ in 0..ADDRESS_LIMIT {
            t.fail(None, u, now);
        }
        assert!(t.check(Some("carol"), u, now).is_err());
    }

    #[test]
    fn many_addresses_lock_a_user_except_where_it_logged_in_before() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        let home = addr("192.0.2.1");
        t.succeeded(t.begin(Some("alice"), home, now).unwrap());
        for i in 0..USER_LIMIT {
            let a = addr(&format!("10.0.{}.{}", i / 200, i % 200));
            assert_eq!(t.check(Some("alice"), a, now), Ok(()));
            t.fail(Some("alice"), a, now);
        }
        let refused = t.check(Some("alice"), addr("10.9.9.9"), now).unwrap_err();
        assert_eq!(refused.locked, Locked::User);
        assert_eq!(t.check(Some("alice"), home, now), Ok(()));
        assert_eq!(t.check(Some("bob"), addr("10.9.9.9"), now), Ok(()));
    }

    #[test]
    fn the_maps_stay_bounded() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let a = Client::V4(i.to_be_bytes());
            t.fail(None, a, now + Duration::from_millis(u64::from(i)));
        }
        let s = t.lock();
        assert!(s.addresses.map.len() <= MAX_TRACKED);
        // The most recent failures are the ones kept.
        assert!(
            s.addresses
                .map
                .contains_key(&Client::V4((MAX_TRACKED as u32 + 9).to_be_bytes()))
        );
    }
}
