//! A map from `u64` identities to engine states, 8 bytes of key per state.
//!
//! The production limiter keyed by integers (a service that has resolved an
//! API key to an account number) keeps each limit's states here. It is an
//! open-addressing table with linear probing whose slots are just
//! `(key, state)`: no control bytes, no stored hash, no pointer. A GCRA slot
//! is 24 bytes. The price of a table this full is probing: with a
//! random-like hash a key that is present is found about 4 slots from where
//! its search starts at 85% full and 5 at 90% (one or two cache lines,
//! adjacent), while a new key scans a few hundred bytes before it finds an
//! empty slot (once per identity).
//!
//! - **Capacity is not a power of two.** The slot of a hash is
//!   `hash · capacity / 2^64` (a multiply, not a mask), so the table grows by
//!   a fifth when it is 90% full and always sits between 75% and 90% full:
//!   between 26.7 and 32 bytes per GCRA state. A power-of-two table would
//!   swing between 45% and 90% (up to 53 bytes).
//! - **Empty slots** hold the key `u64::MAX` (and a default state); the
//!   state of that one key is kept beside the table.
//! - **Hashes are the caller's** (the limiter's seeded hash of (limit,
//!   key), which also picks the shard): [`IntMap::get_or_insert`] takes the
//!   key's hash, and a function to hash other keys when the table grows.
//! - **Removal** ([`IntMap::retain`]) rebuilds the table from the states
//!   kept, sized to be 80% full: sweeps are rare and touch every slot
//!   anyway. It asks about each state once.

use super::store::sealed::StateMap;

/// The key that marks an empty slot.
const EMPTY: u64 = u64::MAX;

/// The table grows when more than `MAX_LOAD_NUM / MAX_LOAD_DEN` full...
const MAX_LOAD_NUM: usize = 9;
const MAX_LOAD_DEN: usize = 10;
/// ... by a fifth.
const GROWTH_DEN: usize = 5;
/// The smallest table.
const MIN_CAPACITY: usize = 8;

struct Slot<S> {
    key: u64,
    state: S,
}

/// States by `u64` identity (see the module docs).
pub struct IntMap<S> {
    slots: Box<[Slot<S>]>,
    /// Occupied slots.
    used: usize,
    /// The state of key `u64::MAX`, which cannot live in a slot.
    max_key: Option<S>,
}

/// The slot a hash starts probing at: `hash · capacity / 2^64`.
#[inline(always)]
fn home(hash: u64, capacity: usize) -> usize {
    ((hash as u128 * capacity as u128) >> 64) as usize
}

impl<S: Default + Send> StateMap<u64, S> for IntMap<S> {
    fn new() -> Self {
        IntMap { slots: Box::new([]), used: 0, max_key: None }
    }

    /// States held.
    fn len(&self) -> usize {
        self.used + self.max_key.is_some() as usize
    }

    /// The state of `key` (whose hash is `hash`), inserted by `fresh` if
    /// absent (then `*inserted += 1`). `rehash` gives the hash of any key
    /// when the table grows; it must agree with `hash` for `key`.
    #[inline]
    fn get_or_insert(
        &mut self,
        hash: u64,
        key: u64,
        inserted: &mut usize,
        fresh: impl FnOnce() -> S,
        rehash: impl Fn(u64) -> u64,
    ) -> &mut S {
        if key == EMPTY {
            if self.max_key.is_none() {
                *inserted += 1;
            }
            return self.max_key.get_or_insert_with(fresh);
        }
        let cap = self.slots.len();
        if cap > 0 {
            let mut i = home(hash, cap);
            loop {
                let k = self.slots[i].key;
                if k == key {
                    return &mut self.slots[i].state;
                }
                if k == EMPTY {
                    break;
                }
                i += 1;
                if i == cap {
                    i = 0;
                }
            }
        }
        self.insert_new(hash, key, inserted, fresh(), rehash)
    }

    /// Keeps the states that `keep` accepts (asked once per state); returns
    /// how many were dropped.
    fn retain(&mut self, mut keep: impl FnMut(&S) -> bool, rehash: impl Fn(u64) -> u64) -> usize {
        let before = self.len();
        if self.max_key.as_ref().is_some_and(|s| !keep(s)) {
            self.max_key = None;
        }
        let kept: Vec<bool> = self.slots.iter().map(|s| s.key != EMPTY && keep(&s.state)).collect();
        let n = kept.iter().filter(|&&k| k).count();
        if n < self.used {
            // Rebuilt 80% full, from the states kept.
            let capacity = if n == 0 { 0 } else { (n * 5 / 4).max(MIN_CAPACITY) };
            let empty = (0..capacity).map(|_| Slot { key: EMPTY, state: S::default() }).collect();
            let old = std::mem::replace(&mut self.slots, empty);
            self.used = 0;
            for (s, keep) in old.into_vec().into_iter().zip(kept) {
                if keep {
                    self.place(rehash(s.key), s.key, s.state);
                }
            }
        }
        before - self.len()
    }
}

impl<S: Default> IntMap<S> {
    /// Slots allocated (for the memory accounting in tests).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.slots.len()
    }

    #[cold]
    #[inline(never)]
    fn insert_new(
        &mut self,
        hash: u64,
        key: u64,
        inserted: &mut usize,
        state: S,
        rehash: impl Fn(u64) -> u64,
    ) -> &mut S {
        if (self.used + 1) * MAX_LOAD_DEN > self.slots.len() * MAX_LOAD_NUM {
            let cap = self.slots.len();
            self.rebuild((cap + cap / GROWTH_DEN).max(MIN_CAPACITY), &rehash);
        }
        *inserted += 1;
        let i = self.place(hash, key, state);
        &mut self.slots[i].state
    }

    /// Puts a key known to be absent into its first empty slot; the table
    /// has room.
    fn place(&mut self, hash: u64, key: u64, state: S) -> usize {
        let cap = self.slots.len();
        debug_assert!(self.used < cap, "a table with no empty slot would probe forever");
        let mut i = home(hash, cap);
        while self.slots[i].key != EMPTY {
            i += 1;
            if i == cap {
                i = 0;
            }
        }
        self.slots[i] = Slot { key, state };
        self.used += 1;
        i
    }

    /// Moves every state into a table of `capacity` slots.
    fn rebuild(&mut self, capacity: usize, rehash: &impl Fn(u64) -> u64) {
        let empty = (0..capacity).map(|_| Slot { key: EMPTY, state: S::default() }).collect();
        let old = std::mem::replace(&mut self.slots, empty);
        self.used = 0;
        for s in old.into_vec() {
            if s.key != EMPTY {
                self.place(rehash(s.key), s.key, s.state);
            }
        }
    }

    /// Every `(key, state)`, in slot order.
    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = (u64, &S)> {
        self.slots
            .iter()
            .filter(|s| s.key != EMPTY)
            .map(|s| (s.key, &s.state))
            .chain(self.max_key.as_ref().map(|s| (EMPTY, s)))
    }
}

#[cfg(test)]
mod tests {
    use super::{IntMap, StateMap};
    use std::collections::BTreeMap;

    /// A deliberately poor hash (many collisions, clustered homes), so
    /// probing and wrap-around are exercised.
    fn poor(k: u64) -> u64 {
        (k % 7).wrapping_mul(0x9E37_79B9_7F4A_7C15) | (k & 0xff)
    }

    fn good(k: u64) -> u64 {
        let x = (k ^ 0x5151_5151).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^ (x >> 29)
    }

    /// A random-like hash (SplitMix64's finalizer), as the limiter's seeded
    /// hash is: sequential keys land in clusters, as they will in use.
    fn random_like(k: u64) -> u64 {
        let mut z = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn agrees_with_a_btree_map_through_growth_and_removal() {
        for hash in [poor as fn(u64) -> u64, good, random_like] {
            let mut map: IntMap<u64> = IntMap::new();
            let mut model: BTreeMap<u64, u64> = BTreeMap::new();
            let mut x = 7u64;
            for step in 0..20_000u64 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                // Keys from a small range (repeats), the top of the range
                // (u64::MAX is the empty marker) and 0.
                let key = match x >> 61 {
                    0 => u64::MAX - (x & 3),
                    1 => 0,
                    _ => (x >> 20) % 3000,
                };
                let mut inserted = 0;
                let v = map.get_or_insert(hash(key), key, &mut inserted, || 0, hash);
                *v += 1;
                let m = model.entry(key).or_insert(0);
                assert_eq!(inserted == 1, *m == 0, "key {key}: inserted iff new");
                *m += 1;
                assert_eq!(*v, *m);
                if step % 4999 == 4998 {
                    // Drop the odd counts, asking about each state once.
                    let mut asked = 0;
                    let dropped = map.retain(
                        |v| {
                            asked += 1;
                            v % 2 == 0
                        },
                        hash,
                    );
                    assert_eq!(asked, model.len(), "one question per state");
                    let before = model.len();
                    model.retain(|_, v| *v % 2 == 0);
                    assert_eq!(dropped, before - model.len());
                }
                assert_eq!(map.len(), model.len());
            }
            let mut all: Vec<(u64, u64)> = map.iter().map(|(k, v)| (k, *v)).collect();
            all.sort();
            assert_eq!(all, model.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn stays_between_three_quarters_and_nine_tenths_full() {
        let mut map: IntMap<[u64; 2]> = IntMap::new();
        for key in 0..1_000_000u64 {
            map.get_or_insert(random_like(key), key, &mut 0, Default::default, random_like);
            let n = map.len();
            if n >= 100 {
                let load = n as f64 / map.capacity() as f64;
                assert!((0.74..=0.9).contains(&load), "{n} states in {} slots", map.capacity());
            }
        }
        assert_eq!(std::mem::size_of::<super::Slot<[u64; 2]>>(), 24);
    }

    #[test]
    fn retaining_nothing_frees_the_table() {
        let mut map: IntMap<u64> = IntMap::new();
        for key in 0..100 {
            map.get_or_insert(good(key), key, &mut 0, || 1, good);
        }
        assert_eq!(map.retain(|_| false, good), 100);
        assert_eq!((map.len(), map.capacity()), (0, 0));
        *map.get_or_insert(good(5), 5, &mut 0, || 1, good) += 1;
        assert_eq!(map.iter().collect::<Vec<_>>(), vec![(5, &2)]);
    }
}
