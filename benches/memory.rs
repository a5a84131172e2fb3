//! Bytes of limiter state per key, measured with a counting allocator.
//!
//! Not a timing benchmark: it prints one table. For each store it counts the
//! heap bytes live after inserting N keys (one GCRA limit, RunInfra Pro's
//! 500/min with burst 50), minus the bytes live before, divided by N:
//!
//! - `ratesim KeyedLimiter, string keys`: the production limiter with keys
//!   like `key-00000000000f4240` (20 bytes), as an API service sees them;
//! - `ratesim KeyedLimiter<_, u64>, u64 keys`: the same limiter keyed by
//!   integers (the keys governor's row uses);
//! - `governor keyed (DashMap), u64 keys`: `RateLimiter::dashmap_with_clock`;
//! - `ratesim simulator store, GCRA column`: the simulator's dense column
//!   (`size_of::<GcraState>()` per key, plus the vector's spare capacity).
//!
//! Run with `cargo bench --bench memory`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use governor::{Quota, RateLimiter};
use ratesim::engines::GcraState;
use ratesim::limiter::{KeyedLimiter, ManualClock};
use ratesim::policy::{self, Request};
use ratesim::time::SECOND;

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to `System` unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600 * SECOND;

fn policy() -> Arc<policy::Policy> {
    Arc::new(
        policy::parse(
            "provider = \"bench\"\n[[plan]]\nname = \"pro\"\n[[plan.limit]]\nid = \"rpm\"\n\
             algorithm = \"gcra\"\nrate = \"500/min\"\nburst = 50\n",
            "bench.toml",
        )
        .unwrap(),
    )
}

/// Heap bytes per key of the store `fill` builds with `n` keys (it returns
/// the store and how many states it holds), counted while the store lives.
fn bytes_per_key<T>(n: u64, fill: impl FnOnce() -> (T, u64)) -> f64 {
    let before = live();
    let (store, held) = fill();
    assert_eq!(held, n);
    let bytes = live() - before;
    drop(store);
    bytes as f64 / n as f64
}

fn ratesim_keyed(n: u64, names: &[String]) -> f64 {
    bytes_per_key(n, || {
        let lim = KeyedLimiter::with_clock(policy(), "pro", ManualClock::new(T0)).unwrap();
        for name in &names[..n as usize] {
            lim.check_at(&Request::new(name), T0);
        }
        let held = lim.len() as u64;
        (lim, held)
    })
}

fn ratesim_keyed_u64(n: u64) -> f64 {
    bytes_per_key(n, || {
        let lim = KeyedLimiter::<_, u64>::build(policy(), "pro", ManualClock::new(T0)).unwrap();
        for k in 0..n {
            lim.check_at(&Request::with_id(k.wrapping_mul(0x9E37_79B9_7F4A_7C15)), T0);
        }
        let held = lim.len() as u64;
        (lim, held)
    })
}

fn governor_keyed(n: u64) -> f64 {
    let quota = Quota::with_period(Duration::from_millis(120)).unwrap().allow_burst(NonZeroU32::new(50).unwrap());
    bytes_per_key(n, || {
        let lim = RateLimiter::dashmap_with_clock(quota, FakeRelativeClock::default());
        for k in 0..n {
            let _ = lim.check_key(&k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
        let held = lim.len() as u64;
        (lim, held)
    })
}

fn sim_column(n: u64) -> f64 {
    bytes_per_key(n, || {
        let mut column: Vec<GcraState> = Vec::new();
        for i in 0..n as usize {
            // The simulator grows its columns one interned identity at a time.
            if i >= column.len() {
                column.resize(i + 1, GcraState::default());
            }
        }
        let held = column.len() as u64;
        (column, held)
    })
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // we act on. Run either way: it takes a few seconds.
    let sizes = [1_000u64, 100_000, 1_000_000];
    let names: Vec<String> = (0..*sizes.last().unwrap()).map(|i| format!("key-{i:016x}")).collect();
    println!("bytes of state per key (one GCRA limit), heap bytes live after N keys / N");
    println!("{:<44} {:>10} {:>10} {:>10}", "store", "1,000", "100,000", "1,000,000");
    let row = |name: &str, f: &dyn Fn(u64) -> f64| {
        let cells: Vec<String> = sizes.iter().map(|&n| format!("{:.1}", f(n))).collect();
        println!("{name:<44} {:>10} {:>10} {:>10}", cells[0], cells[1], cells[2]);
    };
    row("ratesim KeyedLimiter, 20-byte string keys", &|n| ratesim_keyed(n, &names));
    row("ratesim KeyedLimiter<_, u64>, u64 keys", &ratesim_keyed_u64);
    row("governor keyed (DashMap), u64 keys", &governor_keyed);
    row("ratesim simulator store, GCRA column", &sim_column);
    println!(
        "(size_of: GcraState {} bytes, EngineState {} bytes)",
        std::mem::size_of::<GcraState>(),
        std::mem::size_of::<ratesim::engines::EngineState>()
    );
}
