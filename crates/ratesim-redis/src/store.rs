//! The [`StateStore`] over Redis keys: what `Plan::check` and
//! `Plan::complete` decide on inside the module.
//!
//! A request opens one key per distinct scope identity among the limits it
//! touches (at most four: its key, user, workspace and the global state),
//! hands the plan every state at once, and then, if anything was committed,
//! writes new keys, sets each key's TTL (see [`crate::value`]) and signals
//! the keys modified. Redis runs one command at a time, so the whole decision
//! is atomic: across limits, keys and scopes, and against every other
//! client.
//!
//! A denial writes nothing (unless a limit counts denied requests, see
//! `Engine::counts_denied`; then it is written like an admission): keys
//! that did not exist are not created, and entries added for it to an
//! existing key are removed again; the states it looked at may only have
//! forgotten what expired by `now`, which no later decision can tell (the
//! plan's atomic composition guarantees the rest).

use ratesim::limiter::IDLE_GRACE;
use ratesim::policy::{limits_in, no_states, LimitSet, Plan, Request, StateStore, States, MAX_LIMITS_PER_PLAN};
use ratesim::time::Nanos;
use redis_module::raw;

use crate::api::{self, api, Ctx, RStr};
use crate::args::CmdError;
use crate::registry::PlanInfo;
use crate::value::{self, same_kind, Entry, StateValue};

/// Most distinct identities one request touches: key, user, workspace, global.
const MAX_SLOTS: usize = 4;

/// One opened key.
struct Slot<'r> {
    identity: &'r str,
    name: RStr,
    key: *mut raw::RedisModuleKey,
    /// The stored value, or null if the key does not exist.
    stored: *mut StateValue,
    /// The value of a key that does not exist yet, once a state was asked for.
    fresh: Option<StateValue>,
    /// Entries of `stored` before this command (those after were added).
    stored_len: usize,
    /// Whether the plan asked for one of its states.
    touched: bool,
}

impl Slot<'_> {
    fn value(&mut self) -> &mut StateValue {
        if self.stored.is_null() {
            self.fresh.get_or_insert_with(StateValue::default)
        } else {
            // SAFETY: `stored` is the value of the open key `key`, owned by
            // Redis and alive while the key is open; each slot is a distinct
            // key, so no two slots alias.
            unsafe { &mut *self.stored }
        }
    }
}

/// The states of one request, in Redis keys.
pub struct RedisStore<'r> {
    ctx: Ctx,
    plan: &'r Plan,
    info: &'r PlanInfo,
    slots: Vec<Slot<'r>>,
    /// Per limit: its slot (for the limits opened).
    slot_of: [u8; MAX_LIMITS_PER_PLAN],
}

/// The hash tag of a key name, as Redis Cluster reads it: the text between
/// the first `{` and the next `}`, if not empty.
pub fn hash_tag(name: &str) -> Option<&str> {
    let open = name.find('{')?;
    let close = name[open + 1..].find('}')?;
    (close > 0).then(|| &name[open + 1..open + 1 + close])
}

impl<'r> RedisStore<'r> {
    /// Opens the keys of the limits in `limits` for `req`. On Redis Cluster
    /// every identity needs a hash tag, and global limits are refused (see
    /// the crate docs).
    pub fn open(
        ctx: Ctx,
        plan: &'r Plan,
        info: &'r PlanInfo,
        req: &Request<'r>,
        limits: LimitSet,
        cmd: &str,
    ) -> Result<RedisStore<'r>, CmdError> {
        let cluster = api::ctx_flags(ctx) & raw::REDISMODULE_CTX_FLAGS_CLUSTER != 0;
        let mut store =
            RedisStore { ctx, plan, info, slots: Vec::with_capacity(MAX_SLOTS), slot_of: [0; MAX_LIMITS_PER_PLAN] };
        let mut name = Vec::with_capacity(info.prefix.len() + 64);
        for i in limits_in(limits) {
            let limit = &plan.limits[i];
            let identity = limit.scope.key_of(req);
            if let Some(s) = store.slots.iter().position(|s| s.identity == identity) {
                store.slot_of[i] = s as u8;
                continue;
            }
            if cluster {
                if identity.is_empty() {
                    return Err(CmdError::err(
                        cmd,
                        format!(
                            "limit {:?} has global scope: on Redis Cluster a global state would live in a slot of its own, \
                             which one command cannot decide atomically with the request's own keys; \
                             run this plan on a single primary",
                            limit.id
                        ),
                    ));
                }
                if hash_tag(identity).is_none() {
                    return Err(CmdError::err(
                        cmd,
                        format!(
                            "on Redis Cluster every identity needs a hash tag naming its scope owner, \
                             such as {{acme}}key-1; {identity:?} has none"
                        ),
                    ));
                }
            }
            info.key_name(identity, &mut name);
            let key_name = api::new_string(ctx, &name);
            // SAFETY: opening a key by a string this module owns; the handle
            // is closed in `Drop`.
            let key = unsafe {
                api!(RedisModule_OpenKey)(ctx, key_name, (raw::REDISMODULE_READ | raw::REDISMODULE_WRITE) as i32)
            };
            let mut slot = Slot {
                identity,
                name: key_name,
                key,
                stored: std::ptr::null_mut(),
                fresh: None,
                stored_len: 0,
                touched: false,
            };
            // SAFETY: queries on the open key.
            let (kind, module_type) =
                unsafe { (api!(RedisModule_KeyType)(key), api!(RedisModule_ModuleTypeGetType)(key)) };
            if kind as isize != raw::REDISMODULE_KEYTYPE_EMPTY {
                if kind as isize != raw::REDISMODULE_KEYTYPE_MODULE || module_type != value::type_ptr() {
                    store.slots.push(slot);
                    return Err(CmdError::Msg(format!(
                        "WRONGTYPE the key {:?} holds a value that is not ratesim's: state keys are named ratesim:<policy>:<plan>:<identity>",
                        String::from_utf8_lossy(&name)
                    )));
                }
                // SAFETY: the key holds a value of this module's type.
                slot.stored = unsafe { api!(RedisModule_ModuleTypeGetValue)(key) as *mut StateValue };
                // SAFETY: as above.
                slot.stored_len = unsafe { (*slot.stored).entries.len() };
            }
            store.slot_of[i] = store.slots.len() as u8;
            store.slots.push(slot);
        }
        Ok(store)
    }

    /// Ends the command: on `commit` (something was admitted or completed)
    /// writes new keys, drops states of limits no longer in the plan, sets
    /// each touched key's TTL and signals it modified; otherwise undoes the
    /// entries added. Keys are closed when the store drops.
    pub fn finish(&mut self, commit: bool, now: Nanos) {
        for slot in &mut self.slots {
            if !slot.touched {
                continue;
            }
            if !commit {
                if !slot.stored.is_null() {
                    // SAFETY: see `Slot::value`.
                    unsafe { (*slot.stored).entries.truncate(slot.stored_len) };
                }
                slot.fresh = None;
                continue;
            }
            let value = slot.value();
            value.retain_current(&self.info.fingerprints);
            if value.entries.capacity() > value.entries.len() {
                // A key lives long: keep exactly its states (a first push
                // reserves room for four).
                value.entries.shrink_to_fit();
            }
            let ttl = value::expiry(value, self.plan, &self.info.fingerprints, now, IDLE_GRACE);
            // SAFETY: writes to the open key: the new value (ownership passes
            // to Redis), its TTL, the modification signal.
            unsafe {
                if let Some(fresh) = slot.fresh.take() {
                    let ptr = Box::into_raw(Box::new(fresh));
                    api!(RedisModule_ModuleTypeSetValue)(slot.key, value::type_ptr(), ptr as *mut _);
                    slot.stored = ptr;
                }
                api!(RedisModule_SetExpire)(slot.key, ttl.unwrap_or(raw::REDISMODULE_NO_EXPIRE as i64));
                api!(RedisModule_SignalModifiedKey)(self.ctx, slot.name);
            }
        }
    }
}

impl Drop for RedisStore<'_> {
    fn drop(&mut self) {
        for slot in &self.slots {
            // SAFETY: each key was opened (and each name created) once, here.
            unsafe { api!(RedisModule_CloseKey)(slot.key) };
            api::free_string(self.ctx, slot.name);
        }
    }
}

impl<'k> StateStore<&'k str> for RedisStore<'_> {
    fn with_states<R>(
        &mut self,
        limits: LimitSet,
        key_of: impl Fn(usize) -> &'k str,
        f: impl FnOnce(&mut States<'_>) -> R,
    ) -> R {
        let plan = self.plan;
        let fps = &self.info.fingerprints;
        // Make sure every asked state exists (a fresh one where missing or
        // of the wrong kind), then hand them all over together.
        for i in limits_in(limits) {
            let slot = &mut self.slots[self.slot_of[i] as usize];
            debug_assert_eq!(slot.identity, key_of(i), "limit {i} is opened for its own identity");
            slot.touched = true;
            let engine = &plan.limits[i].engine;
            let value = slot.value();
            match value.entries.iter_mut().find(|e| e.fingerprint == fps[i]) {
                Some(e) if same_kind(engine, &e.state) => {}
                Some(e) => e.state = engine.new_state(),
                None => value.entries.push(Entry { fingerprint: fps[i], state: engine.new_state() }),
            }
        }
        let mut states = no_states();
        let slot_of = self.slot_of;
        for (s, slot) in self.slots.iter_mut().enumerate() {
            if !slot.touched {
                continue;
            }
            for entry in slot.value().entries.iter_mut() {
                if let Some(i) = limits_in(limits).find(|&i| slot_of[i] as usize == s && fps[i] == entry.fingerprint) {
                    states[i] = Some((&mut entry.state).into());
                }
            }
        }
        f(&mut states)
    }
}

#[cfg(test)]
mod tests {
    use super::hash_tag;

    #[test]
    fn hash_tags_are_read_as_redis_cluster_reads_them() {
        assert_eq!(hash_tag("{acme}key-1"), Some("acme"));
        assert_eq!(hash_tag("key{acme}"), Some("acme"));
        assert_eq!(hash_tag("{a}{b}"), Some("a"));
        assert_eq!(hash_tag("{}key"), None);
        assert_eq!(hash_tag("key-1"), None);
        assert_eq!(hash_tag("{open"), None);
        assert_eq!(hash_tag("close}{"), None);
    }
}
