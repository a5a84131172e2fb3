//! The module's data type: the states of one scope identity under one plan.
//!
//! A [`StateValue`] is a short list of [`Entry`]s, one per limit of the plan
//! that the identity owns a state of, each tagged with the limit's
//! fingerprint (see [`crate::registry`]). It is encoded with `postcard`
//! (the `serde` form of [`EngineState`], field by field) for RDB snapshots,
//! `DUMP`/`RESTORE` and AOF rewrites; [`ENCODING_VERSION`] is the RDB
//! encoding version, and `tests/encoding.rs` holds golden bytes of every
//! engine's state so a change to a state's fields cannot slip through
//! unversioned.
//!
//! ## Expiry
//!
//! A key expires once every state in it has been idle (see
//! [`ratesim::engines::Engine::is_idle`]: indistinguishable from a fresh
//! state for every future decision) for
//! [`IDLE_GRACE`](ratesim::limiter::IDLE_GRACE), as the in-process
//! `KeyedLimiter` evicts idle states: [`expiry`] computes the instant each
//! state comes to rest if nothing else arrives (from the engine's own reset
//! instant, then checked with `is_idle`) and the key's TTL is the latest of
//! them plus the grace, counted from the write on the server's clock. A
//! state that never comes to rest by itself (a concurrency permit held
//! without a lease, a lifetime budget with spending) keeps its key without a
//! TTL, as in-process. Expiring an idle key is lossless: the next request
//! finds no key and decides on a fresh state, which answers the same.

use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

use ratesim::engines::{Engine, EngineState};
use ratesim::policy::Plan;
use ratesim::time::Nanos;
use redis_module::native_types::RedisType;
use redis_module::raw;
use serde::{Deserialize, Serialize};

use crate::api::{self, api, RStr};
use crate::registry;

/// The RDB encoding version of [`StateValue`]s. Bump it (and keep a loader
/// for the old one) whenever the encoding changes.
pub const ENCODING_VERSION: i32 = 1;

/// The states of one identity under one plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateValue {
    /// One entry per limit this identity owns a state of.
    pub entries: Vec<Entry>,
}

/// One limit's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The fingerprint of the limit the state belongs to
    /// ([`registry::fingerprint`]).
    pub fingerprint: u64,
    /// The engine state.
    pub state: EngineState,
}

impl StateValue {
    /// The encoded bytes (RDB, AOF rewrite, `RATESIM.STATE.RESTORE`).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("engine states always serialize")
    }

    /// Decodes [`StateValue::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<StateValue, String> {
        match postcard::take_from_bytes::<StateValue>(bytes) {
            Ok((v, [])) => Ok(v),
            Ok((_, rest)) => Err(format!("{} unexpected bytes after the states", rest.len())),
            Err(e) => Err(format!("not an encoded ratesim state ({e})")),
        }
    }

    /// Drops the states of limits no longer in the plan (a policy reloaded
    /// with other limits; see [`crate::registry`]).
    pub fn retain_current(&mut self, fingerprints: &[u64]) {
        self.entries.retain(|e| fingerprints.contains(&e.fingerprint));
    }
}

/// Whether `state` is a state of `engine`'s algorithm (a value restored from
/// elsewhere could hold anything; a state of another kind is never handed to
/// an engine).
pub fn same_kind(engine: &Engine, state: &EngineState) -> bool {
    std::mem::discriminant(&engine.new_state()) == std::mem::discriminant(state)
}

/// When `state` comes to rest if nothing else arrives, at `now` or later;
/// `None` if it never does by itself. `state` is brought to `now` first (a
/// `decide` of cost 0, which consumes nothing and only forgets what expired).
pub fn rest_instant(engine: &Engine, state: &mut EngineState, now: Nanos) -> Option<Nanos> {
    let at = engine.decide(&mut *state, now, 0).reset.max(now);
    if at == Nanos::MAX {
        return None;
    }
    if engine.is_idle(state, at) {
        return Some(at);
    }
    // Concurrency leases end by `at` but are only reclaimed by a decision.
    let mut probe = state.clone();
    engine.decide(&mut probe, at, 0);
    engine.is_idle(&probe, at).then_some(at)
}

/// The TTL (milliseconds) of a key holding `value` for `plan` after a write
/// at `now`: until every state has rested for `grace`; `None` if some state
/// never rests by itself. States of limits not in the plan are ignored (they
/// are dropped at the next write).
pub fn expiry(value: &mut StateValue, plan: &Plan, fingerprints: &[u64], now: Nanos, grace: Nanos) -> Option<i64> {
    let mut latest = now;
    for entry in &mut value.entries {
        let Some(i) = fingerprints.iter().position(|&f| f == entry.fingerprint) else { continue };
        if !same_kind(&plan.limits[i].engine, &entry.state) {
            continue;
        }
        latest = latest.max(rest_instant(&plan.limits[i].engine, &mut entry.state, now)?);
    }
    let ns = (latest - now).saturating_add(grace);
    Some(i64::try_from(ns.div_ceil(1_000_000)).unwrap_or(i64::MAX).max(1))
}

/// The data type, registered at load.
pub static STATE_TYPE: RedisType = RedisType::new(
    "ratesimst",
    ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: Some(mem_usage),
        digest: Some(digest),
        free: Some(free),
        aux_load: Some(aux_load),
        aux_save: Some(aux_save),
        aux_save_triggers: raw::REDISMODULE_AUX_BEFORE_RDB as c_int,
        free_effort: None,
        unlink: None,
        copy: Some(copy),
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
        aux_save2: None,
    },
);

static TYPE_PTR: AtomicPtr<raw::RedisModuleType> = AtomicPtr::new(std::ptr::null_mut());

/// Remembers the registered type (called once at load).
pub fn set_type_ptr() {
    TYPE_PTR.store(*STATE_TYPE.raw_type.borrow(), Ordering::Relaxed);
}

/// The registered type.
pub fn type_ptr() -> *mut raw::RedisModuleType {
    TYPE_PTR.load(Ordering::Relaxed)
}

/// Logs from an RDB/AOF callback.
fn log_io(io: *mut raw::RedisModuleIO, msg: &str) {
    let msg = std::ffi::CString::new(msg.replace('\0', " ")).expect("NUL bytes were replaced");
    // SAFETY: `%s` with one C string argument.
    unsafe { api!(RedisModule_LogIOError)(io, c"warning".as_ptr(), c"%s".as_ptr(), msg.as_ptr()) }
}

/// Reads a string buffer from an RDB (copied; Redis's buffer is freed).
unsafe fn load_buffer(io: *mut raw::RedisModuleIO) -> Option<Vec<u8>> {
    let mut len = 0usize;
    // SAFETY: Redis returns a buffer of `len` bytes that we must free.
    unsafe {
        let p = api!(RedisModule_LoadStringBuffer)(io, &mut len);
        if p.is_null() {
            return None;
        }
        let v = std::slice::from_raw_parts(p as *const u8, len).to_vec();
        api!(RedisModule_Free)(p as *mut c_void);
        Some(v)
    }
}

fn save_buffer(io: *mut raw::RedisModuleIO, b: &[u8]) {
    // SAFETY: Redis copies the bytes.
    unsafe { api!(RedisModule_SaveStringBuffer)(io, b.as_ptr() as *const _, b.len()) }
}

unsafe extern "C" fn rdb_save(io: *mut raw::RedisModuleIO, value: *mut c_void) {
    // SAFETY: Redis hands back a value this module created.
    let v = unsafe { &*(value as *const StateValue) };
    save_buffer(io, &v.encode());
}

unsafe extern "C" fn rdb_load(io: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    if encver != ENCODING_VERSION {
        log_io(
            io,
            &format!("ratesim: cannot load states of encoding version {encver} (this module reads {ENCODING_VERSION})"),
        );
        return std::ptr::null_mut();
    }
    // SAFETY: reading what `rdb_save` wrote.
    let Some(bytes) = (unsafe { load_buffer(io) }) else { return std::ptr::null_mut() };
    match StateValue::decode(&bytes) {
        Ok(v) => Box::into_raw(Box::new(v)) as *mut c_void,
        Err(e) => {
            log_io(io, &format!("ratesim: {e}"));
            std::ptr::null_mut()
        }
    }
}

/// The policy a state key belongs to: `ratesim:<policy>:...`.
fn policy_of_key(name: &[u8]) -> Option<&str> {
    let rest = name.strip_prefix(b"ratesim:")?;
    let end = rest.iter().position(|&b| b == b':')?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// Policies already written ahead of their states in this AOF rewrite. The
/// rewrite runs in a forked child, which starts with the parent's (empty)
/// set, so each rewrite writes each policy once.
static EMITTED: parking_lot::Mutex<Vec<String>> = parking_lot::Mutex::new(Vec::new());

unsafe extern "C" fn aof_rewrite(aof: *mut raw::RedisModuleIO, key: RStr, value: *mut c_void) {
    let name = api::bytes(key);
    if let Some(policy) = policy_of_key(name) {
        let mut emitted = EMITTED.lock();
        if !emitted.iter().any(|p| p == policy) {
            emitted.push(policy.to_string());
            if let Some(loaded) = registry::get(policy.as_bytes()) {
                // SAFETY: format `bb`: two (pointer, length) buffers.
                unsafe {
                    api!(RedisModule_EmitAOF)(
                        aof,
                        c"RATESIM.POLICY.LOAD".as_ptr(),
                        c"bb".as_ptr(),
                        loaded.name.as_ptr(),
                        loaded.name.len(),
                        loaded.text.as_ptr(),
                        loaded.text.len(),
                    );
                }
            }
        }
    }
    // SAFETY: Redis hands back a value this module created.
    let bytes = unsafe { &*(value as *const StateValue) }.encode();
    // SAFETY: format `sb`: a Redis string, then a (pointer, length) buffer.
    unsafe {
        api!(RedisModule_EmitAOF)(
            aof,
            c"RATESIM.STATE.RESTORE".as_ptr(),
            c"sb".as_ptr(),
            key,
            bytes.as_ptr(),
            bytes.len(),
        );
    }
}

unsafe extern "C" fn mem_usage(value: *const c_void) -> usize {
    // SAFETY: Redis hands back a value this module created.
    let v = unsafe { &*(value as *const StateValue) };
    let entries = v.entries.capacity() * std::mem::size_of::<Entry>();
    let heap: usize = v
        .entries
        .iter()
        .map(|e| match &e.state {
            // Log entries and leases: about 16 bytes each plus their nodes.
            EngineState::SlidingLog(_) | EngineState::Concurrency(_) | EngineState::Budget(_) => {
                postcard::to_allocvec(&e.state).map_or(0, |b| 2 * b.len())
            }
            _ => 0,
        })
        .sum();
    std::mem::size_of::<StateValue>() + entries + heap
}

unsafe extern "C" fn digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    // SAFETY: Redis hands back a value this module created.
    let bytes = unsafe { &*(value as *const StateValue) }.encode();
    // SAFETY: Redis copies the bytes.
    unsafe {
        api!(RedisModule_DigestAddStringBuffer)(md, bytes.as_ptr() as *const _, bytes.len());
        api!(RedisModule_DigestEndSequence)(md);
    }
}

unsafe extern "C" fn free(value: *mut c_void) {
    // SAFETY: Redis frees a value this module created, once.
    drop(unsafe { Box::from_raw(value as *mut StateValue) });
}

unsafe extern "C" fn copy(_from: RStr, _to: RStr, value: *const c_void) -> *mut c_void {
    // SAFETY: Redis hands back a value this module created.
    let v = unsafe { &*(value as *const StateValue) };
    Box::into_raw(Box::new(v.clone())) as *mut c_void
}

unsafe extern "C" fn aux_save(io: *mut raw::RedisModuleIO, _when: c_int) {
    let policies = registry::all();
    // SAFETY: plain RDB write.
    unsafe { api!(RedisModule_SaveUnsigned)(io, policies.len() as u64) };
    for p in policies {
        save_buffer(io, p.name.as_bytes());
        save_buffer(io, p.text.as_bytes());
    }
}

unsafe extern "C" fn aux_load(io: *mut raw::RedisModuleIO, encver: c_int, _when: c_int) -> c_int {
    if encver != ENCODING_VERSION {
        log_io(io, &format!("ratesim: cannot load policies of encoding version {encver}"));
        return raw::REDISMODULE_ERR as c_int;
    }
    // SAFETY: reading what `aux_save` wrote.
    let n = unsafe { api!(RedisModule_LoadUnsigned)(io) };
    // The snapshot's policies replace this server's (a replica's full sync).
    registry::clear();
    for _ in 0..n {
        // SAFETY: reading what `aux_save` wrote.
        let (Some(name), Some(text)) = (unsafe { load_buffer(io) }, unsafe { load_buffer(io) }) else {
            return raw::REDISMODULE_ERR as c_int;
        };
        let name = String::from_utf8_lossy(&name).into_owned();
        match registry::parse(&name, &String::from_utf8_lossy(&text)) {
            Ok(loaded) => registry::insert(loaded),
            Err(e) => log_io(io, &format!("ratesim: policy {name:?} from the snapshot was not loaded: {e}")),
        }
    }
    raw::REDISMODULE_OK as c_int
}

#[cfg(test)]
mod tests {
    use super::{Entry, StateValue};
    use ratesim::policy;

    /// One state of every engine, after a few requests, and its encoding.
    fn sample() -> StateValue {
        let p = policy::parse(
            r#"
provider = "Golden"
[[plan]]
name = "p"
[[plan.limit]]
id = "g"
algorithm = "gcra"
rate = "7/s"
burst = 3
[[plan.limit]]
id = "fw"
algorithm = "fixed-window"
rate = "10/min"
[[plan.limit]]
id = "sl"
algorithm = "sliding-log"
limit = 5
period = "1h"
[[plan.limit]]
id = "sc"
algorithm = "sliding-counter"
rate = "10/min"
[[plan.limit]]
id = "c"
algorithm = "concurrency"
max = 3
lease = "30s"
[[plan.limit]]
id = "b"
algorithm = "budget"
unit = "tokens"
limit = 1000
period = "1h"
reserve = 10
[[plan.limit]]
id = "steps"
algorithm = "token-bucket-steps"
rate = "10/s"
burst = 5
[[plan.limit]]
id = "nginx"
dialect = "nginx"
rate = "5/s"
burst = 3
delay = 1
"#,
            "golden.toml",
        )
        .unwrap();
        let t0 = 1_767_225_600_000_000_000;
        let mut entries = Vec::new();
        for (i, limit) in p.plans[0].limits.iter().enumerate() {
            let mut state = limit.engine.new_state();
            for k in 0..3u64 {
                let (_, ticket) = limit.engine.acquire(&mut state, t0 + k * 150_000_000, 1 + k);
                limit.engine.complete(&mut state, t0 + k * 200_000_000, ticket, 40 + k);
            }
            entries.push(Entry { fingerprint: 0x0102_0304_0506_0700 + i as u64, state });
        }
        StateValue { entries }
    }

    /// The encoding is what RDB files and AOF rewrites hold: a change must
    /// come with a new `ENCODING_VERSION` (and a loader for the old one).
    #[test]
    fn the_encoding_of_every_engine_state_is_stable() {
        let bytes = sample().encode();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, GOLDEN, "the state encoding changed: bump ENCODING_VERSION, keep a loader for version 1");
        assert_eq!(StateValue::decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn malformed_bytes_are_refused() {
        let bytes = sample().encode();
        assert!(StateValue::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(StateValue::decode(&longer).unwrap_err().contains("1 unexpected bytes"));
        assert!(StateValue::decode(&[0xff, 0xff]).is_err());
    }

    const GOLDEN: &str = "08808e98a8c0e080810100809d85bde387c8d6ab01818e98a8c0e080810101c0db850e06828e98a8c0e080810102028080e8ef9eca9cc3180180a3abb79fca9cc3180203838e98a8c0e080810103c0db850e0006848e98a8c0e0808101040081c6eefe9fca9cc31800858e98a8c0e08081010500007b00038080e8ef9eca9cc31828808497cf9fca9cc318298088c6aea0ca9cc3182a868e98a8c0e0808101060380f2d6ca06878e98a8c0e080810107e20997d1eab6b733";
}
