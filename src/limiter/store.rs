//! Where the production limiter keeps its states: shards of per-limit
//! tables, locked per request.
//!
//! A state is found by the hash of (limit, scope identity). The hash picks
//! the shard (bits 32 and up) and, inside the shard, the limit's table
//! reuses it to find the slot, so a request hashes each identity once.
//! Fixed-size states (GCRA, fixed window, sliding counter) are stored
//! unboxed and handed to the engines as typed [`StateMut`] references; the
//! others as [`EngineState`]s.
//!
//! What a table looks like depends on the [`Key`] type:
//! - `str` identities: a `hashbrown` table of `(hash, identity, state)`;
//!   the identity is an [`Ident`], inline up to 22 bytes. A GCRA entry is 48
//!   bytes.
//! - `u64` identities: an [`IntMap`], slots of `(key, state)` kept 75–90%
//!   full. A GCRA slot is 24 bytes.

use std::cell::UnsafeCell;
use std::hash::{BuildHasher, Hash, Hasher};

use hashbrown::HashTable;
use parking_lot::lock_api::RawMutex as _;

use super::int_map::IntMap;
use crate::engines::{Engine, EngineState, FixedWindowState, GcraState, SlidingCounterState, StateMut};
use crate::ident::Ident;
use crate::policy::{limits_in, no_states, LimitSet, Plan, StateStore, States, MAX_LIMITS_PER_PLAN};
use crate::time::Nanos;

/// The type of the identities a [`KeyedLimiter`](super::KeyedLimiter) is
/// keyed by: `str` (requests carry `&str`) or `u64` (requests carry `u64`),
/// as `K::Ref<'a>`.
///
/// Sealed: the limiter's tables are built for these two.
pub trait Key: sealed::Keyed {}

impl Key for str {}
impl Key for u64 {}

pub(crate) mod sealed {
    use crate::policy::Identity;

    /// What a key type needs for the limiter's tables. Private to the
    /// crate: nothing outside can name it, implement it or call it.
    pub trait Keyed: Send + Sync + 'static {
        /// How a request carries the identity.
        type Ref<'a>: Identity;
        /// An owned copy, kept by an admission that must complete later.
        type Owned: Send + Sync + Clone + std::fmt::Debug;
        /// One limit's states by identity.
        type Map<S: Default + Send>: StateMap<Self, S>;
        /// Copies an identity.
        fn owned(key: Self::Ref<'_>) -> Self::Owned;
        /// Borrows a copied identity.
        fn borrowed(key: &Self::Owned) -> Self::Ref<'_>;
    }

    /// One limit's states by identity (the `Key`'s own table).
    pub trait StateMap<K: Keyed + ?Sized, S>: Send {
        fn new() -> Self;
        fn len(&self) -> usize;
        /// The state of `key`, whose hash is `hash`; created by `fresh` if
        /// absent (then `*inserted += 1`). `rehash` hashes other keys of
        /// this table when it grows (tables that keep hashes ignore it).
        fn get_or_insert(
            &mut self,
            hash: u64,
            key: K::Ref<'_>,
            inserted: &mut usize,
            fresh: impl FnOnce() -> S,
            rehash: impl Fn(K::Ref<'_>) -> u64,
        ) -> &mut S;
        /// Keeps the states `keep` accepts; returns how many were dropped.
        fn retain(&mut self, keep: impl FnMut(&S) -> bool, rehash: impl Fn(K::Ref<'_>) -> u64) -> usize;
    }
}

use sealed::{Keyed, StateMap};

impl Keyed for str {
    type Ref<'a> = &'a str;
    type Owned = Ident;
    type Map<S: Default + Send> = StrMap<S>;
    fn owned(key: &str) -> Ident {
        Ident::new(key)
    }
    fn borrowed(key: &Ident) -> &str {
        key.as_str()
    }
}

impl Keyed for u64 {
    type Ref<'a> = u64;
    type Owned = u64;
    type Map<S: Default + Send> = IntMap<S>;
    fn owned(key: u64) -> u64 {
        key
    }
    fn borrowed(key: &u64) -> u64 {
        *key
    }
}

/// One state in a string-keyed table: the identity's hash (reused when the
/// table grows, and a cheap inequality test before the key comparison), the
/// identity and the state.
pub struct StrEntry<S> {
    hash: u64,
    key: Ident,
    state: S,
}

/// One limit's states by string identity.
pub struct StrMap<S>(HashTable<StrEntry<S>>);

impl<S: Send> StateMap<str, S> for StrMap<S> {
    fn new() -> Self {
        StrMap(HashTable::new())
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    #[inline]
    fn get_or_insert(
        &mut self,
        hash: u64,
        key: &str,
        inserted: &mut usize,
        fresh: impl FnOnce() -> S,
        _rehash: impl Fn(&str) -> u64,
    ) -> &mut S {
        // Two steps, not `match find_mut`: the borrow checker cannot yet see
        // that the `None` arm no longer borrows the table.
        if self.0.find(hash, |e| e.hash == hash && e.key.is(key)).is_none() {
            let entry = StrEntry { hash, key: Ident::new(key), state: fresh() };
            *inserted += 1;
            return &mut self.0.insert_unique(hash, entry, |e| e.hash).into_mut().state;
        }
        let e = self.0.find_mut(hash, |e| e.hash == hash && e.key.is(key)).expect("found just above");
        &mut e.state
    }

    fn retain(&mut self, mut keep: impl FnMut(&S) -> bool, _rehash: impl Fn(&str) -> u64) -> usize {
        let before = self.0.len();
        self.0.retain(|e| keep(&e.state));
        before - self.0.len()
    }
}

/// One limit's states in one shard, by algorithm. States of the other
/// engines are `Option<EngineState>` so that an integer table's empty slots
/// have a value (`None`); a stored state is always `Some`.
enum Table<K: Key + ?Sized> {
    Gcra(K::Map<GcraState>),
    FixedWindow(K::Map<FixedWindowState>),
    SlidingCounter(K::Map<SlidingCounterState>),
    Any(K::Map<Option<EngineState>>),
}

impl<K: Key + ?Sized> Table<K> {
    fn new(engine: &Engine) -> Table<K> {
        match engine {
            Engine::Gcra(_) => Table::Gcra(StateMap::new()),
            Engine::FixedWindow(_) => Table::FixedWindow(StateMap::new()),
            Engine::SlidingCounter(_) => Table::SlidingCounter(StateMap::new()),
            _ => Table::Any(StateMap::new()),
        }
    }

    /// The state of `key`, created if absent.
    #[inline]
    fn state<'s>(
        &'s mut self,
        engine: &Engine,
        hash: u64,
        key: K::Ref<'_>,
        inserted: &mut usize,
        rehash: impl Fn(K::Ref<'_>) -> u64,
    ) -> StateMut<'s> {
        match self {
            Table::Gcra(t) => StateMut::Gcra(t.get_or_insert(hash, key, inserted, GcraState::default, rehash)),
            Table::FixedWindow(t) => {
                StateMut::FixedWindow(t.get_or_insert(hash, key, inserted, FixedWindowState::default, rehash))
            }
            Table::SlidingCounter(t) => {
                StateMut::SlidingCounter(t.get_or_insert(hash, key, inserted, SlidingCounterState::default, rehash))
            }
            Table::Any(t) => {
                let s = t.get_or_insert(hash, key, inserted, || Some(engine.new_state()), rehash);
                s.as_mut().expect("a stored state is Some").into()
            }
        }
    }

    /// Drops the states that are idle at `now`; returns how many.
    fn evict_idle(&mut self, engine: &Engine, now: Nanos, rehash: impl Fn(K::Ref<'_>) -> u64) -> usize {
        match self {
            Table::Gcra(t) => t.retain(|s| !engine.is_idle(&EngineState::Gcra(*s), now), rehash),
            Table::FixedWindow(t) => t.retain(|s| !engine.is_idle(&EngineState::FixedWindow(*s), now), rehash),
            Table::SlidingCounter(t) => t.retain(|s| !engine.is_idle(&EngineState::SlidingCounter(*s), now), rehash),
            Table::Any(t) => t.retain(|s| s.as_ref().is_some_and(|s| !engine.is_idle(s, now)), rehash),
        }
    }
}

/// One limit's states in one shard.
pub(super) struct Shard<K: Key + ?Sized> {
    table: Table<K>,
    /// States held.
    pub(super) len: usize,
    /// States held at the end of the last sweep (sweep again at twice that).
    swept_len: usize,
}

/// Shards sweep themselves only from this many states.
const MIN_SWEEP_LEN: usize = 1024;

impl<K: Key + ?Sized> Shard<K> {
    /// Evicts the states of limit `limit` (this shard's) that were already
    /// idle at `idle_at`; returns how many.
    pub(super) fn sweep(&mut self, plan: &Plan, limit: usize, idle_at: Nanos, hashes: &Hashes) -> usize {
        let evicted = self.table.evict_idle(&plan.limits[limit].engine, idle_at, |k| hashes.of::<K>(limit, k));
        self.len -= evicted;
        self.swept_len = self.len;
        evicted
    }

    fn wants_sweep(&self) -> bool {
        self.len >= MIN_SWEEP_LEN && self.len >= 2 * self.swept_len
    }
}

/// The seeded hash of (limit, identity).
pub(super) struct Hashes(foldhash::fast::RandomState);

impl Hashes {
    #[inline]
    fn of<K: Key + ?Sized>(&self, limit: usize, key: K::Ref<'_>) -> u64 {
        let mut h = self.0.build_hasher();
        limit.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    }
}

/// Shards per limit.
const SHARDS: usize = 64;

/// The shard (of its limit's) a hash belongs to: bits 32 and up, so the
/// table inside the shard still sees well-spread low and high bits.
#[inline]
fn shard_of(hash: u64) -> usize {
    ((hash >> 32) as usize) % SHARDS
}

/// A shard behind its lock, on a cache line pair of its own: threads working
/// on different shards then never contend for the same line (128 bytes: the
/// adjacent-line prefetcher pulls lines in pairs).
#[repr(align(128))]
struct LockedShard<K: Key + ?Sized> {
    lock: parking_lot::RawMutex,
    shard: UnsafeCell<Shard<K>>,
}

// SAFETY: the shard is only reached while holding `lock` (in `Shards::sum`
// and in `SharedStore::with_states`), so by one thread at a time; it may
// move between threads because `Shard<K>` is `Send`.
unsafe impl<K: Key + ?Sized> Sync for LockedShard<K> where Shard<K>: Send {}

/// Every state of a limiter: [`SHARDS`] locked shards per limit, and the
/// hash that spreads states over them. Limit `i`'s shard `s` is at
/// `i · SHARDS + s`, so the shards of one request, taken limit by limit,
/// come in ascending order: that is the lock order (two requests never
/// deadlock), and no two limits share a shard (their states are distinct).
pub(super) struct Shards<K: Key + ?Sized> {
    shards: Box<[LockedShard<K>]>,
    hashes: Hashes,
}

impl<K: Key + ?Sized> Shards<K> {
    pub(super) fn new(plan: &Plan) -> Shards<K> {
        let shards = plan
            .limits
            .iter()
            .flat_map(|l| std::iter::repeat_with(|| Table::new(&l.engine)).take(SHARDS))
            .map(|table| LockedShard {
                lock: parking_lot::RawMutex::INIT,
                shard: UnsafeCell::new(Shard { table, len: 0, swept_len: 0 }),
            })
            .collect();
        Shards { shards, hashes: Hashes(foldhash::fast::RandomState::default()) }
    }

    /// The sum of `f(limit, shard, hashes)` over every shard, each visited
    /// under its lock.
    pub(super) fn sum(&self, mut f: impl FnMut(usize, &mut Shard<K>, &Hashes) -> usize) -> usize {
        let mut total = 0;
        for j in 0..self.shards.len() {
            let mut held = Held::new(&self.shards);
            // SAFETY: `held` holds shard `j`'s lock until it drops, after
            // the last use of this reference.
            let shard = unsafe { held.lock(j) };
            total += f(j / SHARDS, shard, &self.hashes);
        }
        total
    }
}

/// The shards a thread holds, in the order it locked them: unlocks them when
/// dropped (also when unwinding).
struct Held<'a, K: Key + ?Sized> {
    shards: &'a [LockedShard<K>],
    /// `index[..n]`: the held shards.
    index: [u16; MAX_LIMITS_PER_PLAN],
    n: usize,
}

impl<'a, K: Key + ?Sized> Held<'a, K> {
    fn new(shards: &'a [LockedShard<K>]) -> Self {
        Held { shards, index: [0; MAX_LIMITS_PER_PLAN], n: 0 }
    }

    /// Locks shard `j` (waiting for it) and gives its contents.
    ///
    /// # Safety
    /// The caller uses the reference only while `self` lives, and never
    /// holds two references to one shard: callers lock each shard once, and
    /// lock shards in ascending order (the lock order of every thread).
    #[inline]
    unsafe fn lock(&mut self, j: usize) -> &'a mut Shard<K> {
        self.shards[j].lock.lock();
        self.index[self.n] = j as u16;
        self.n += 1;
        // SAFETY: this thread holds shard `j`'s lock until `self` drops;
        // the rest is the caller's promise.
        unsafe { &mut *self.shards[j].shard.get() }
    }
}

impl<K: Key + ?Sized> Drop for Held<'_, K> {
    #[inline]
    fn drop(&mut self) {
        for &j in &self.index[..self.n] {
            // SAFETY: `lock` locked each of these shards once.
            unsafe { self.shards[j as usize].lock.unlock() }
        }
    }
}

/// The production limiter's [`StateStore`]: `with_states` hashes each
/// (limit, identity), locks the shards, hands the states to the plan, and
/// then sweeps the held shards that have doubled since their last sweep.
pub(super) struct SharedStore<'a, K: Key + ?Sized> {
    pub(super) plan: &'a Plan,
    pub(super) shards: &'a Shards<K>,
    /// Sweeps evict the states already idle at this instant.
    pub(super) idle_at: Nanos,
}

impl<'r, K: Key + ?Sized> StateStore<K::Ref<'r>> for SharedStore<'_, K> {
    #[inline]
    fn with_states<R>(
        &mut self,
        limits: LimitSet,
        key_of: impl Fn(usize) -> K::Ref<'r>,
        f: impl FnOnce(&mut States<'_>) -> R,
    ) -> R {
        let all = &self.shards.shards[..];
        let hashes = &self.shards.hashes;
        let mut held = Held::new(all);
        let result = {
            let mut states = no_states();
            // Limit by limit, ascending: shard indices ascend too, so the
            // locks are taken in one global order (two requests never
            // deadlock).
            for i in limits_in(limits) {
                let key = key_of(i);
                let hash = hashes.of::<K>(i, key);
                // SAFETY: the shards of different limits are different, and
                // each limit is visited once, so no two references alias;
                // they are gone before `held` drops (end of this function).
                let shard = unsafe { held.lock(i * SHARDS + shard_of(hash)) };
                let engine = &self.plan.limits[i].engine;
                states[i] = Some(shard.table.state(engine, hash, key, &mut shard.len, |k| hashes.of::<K>(i, k)));
            }
            f(&mut states)
        };
        for &j in &held.index[..held.n] {
            let j = j as usize;
            // SAFETY: this thread still holds shard `j`'s lock (`held`
            // drops at the end of this function); the states handed to `f`
            // are gone.
            let shard = unsafe { &mut *all[j].shard.get() };
            if shard.wants_sweep() {
                shard.sweep(self.plan, j / SHARDS, self.idle_at, hashes);
            }
        }
        result
    }
}
