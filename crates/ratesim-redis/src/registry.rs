//! The policies loaded into this Redis server, by name.
//!
//! A policy is configuration, not data: every primary of a cluster needs it
//! whatever slots it serves, so it is kept in module memory rather than in a
//! key (which would live in one slot). It still survives restarts and
//! reaches replicas: `RATESIM.POLICY.LOAD` and `RATESIM.POLICY.DEL` are
//! replicated as called (they do not read the clock) and so also land in the
//! AOF; RDB snapshots (and the RDB preamble of a rewritten AOF) carry every
//! policy as module auxiliary data; a rewritten AOF without the preamble
//! gets a `RATESIM.POLICY.LOAD` ahead of the first state of each policy (see
//! [`crate::value`]).
//!
//! ## Where states live
//!
//! The states of one scope identity under one plan are one Redis key,
//! `ratesim:<policy>:<plan>:<identity>` (see [`PlanInfo::key_name`]), holding
//! a [`StateValue`](crate::value::StateValue): one engine state per limit of
//! the plan that this identity is the scope owner of (its key-scoped limits
//! for an API key, its user-scoped ones for a user...). The global scope's
//! identity is the empty string, so a plan's global states are the key
//! `ratesim:<policy>:<plan>:`. Policy and plan names may not contain `:`,
//! `{` or `}`, so the mapping is one to one and the only hash tag in a key
//! name is the identity's own (see the crate docs on Redis Cluster).
//!
//! ## Reloading a policy
//!
//! Each limit's state is stored with a fingerprint of the limit's id, scope
//! and engine parameters ([`fingerprint`]). A policy loaded again under the
//! same name keeps the state of every limit whose fingerprint is unchanged
//! (editing a message, a header or another limit resets nothing); a limit
//! whose algorithm, parameters or scope changed starts from a fresh state,
//! because an old state means something else under new parameters (a GCRA
//! state is scaled by its rate).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use ratesim::policy::{self, Policy};

/// One loaded policy.
pub struct Loaded {
    /// The name it was loaded under.
    pub name: String,
    /// The TOML text, as loaded (saved in RDB snapshots and AOF rewrites).
    pub text: String,
    /// The parsed policy.
    pub policy: Policy,
    /// Per plan (same order as `policy.plans`): key names and fingerprints.
    pub plans: Vec<PlanInfo>,
}

/// What the module needs to know about one plan beyond the policy.
pub struct PlanInfo {
    /// `ratesim:<policy>:<plan>:`, the prefix of every state key.
    pub prefix: String,
    /// Per limit: the fingerprint its states are stored under.
    pub fingerprints: Vec<u64>,
}

impl PlanInfo {
    /// The name of the key holding the states of `identity` under this plan.
    pub fn key_name(&self, identity: &str, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(identity.as_bytes());
    }
}

/// The fingerprint of a limit: FNV-1a (64 bits) of its id, scope and engine
/// parameters (the engine's `Debug` form, which lists every parameter).
/// Stable across processes and restarts of the same module build.
pub fn fingerprint(limit: &ratesim::policy::Limit) -> u64 {
    let text = format!("{}\u{0}{}\u{0}{:?}", limit.id, limit.scope.name(), limit.engine);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Characters a policy or plan name may not contain (they would make key
/// names ambiguous or add a hash tag).
const RESERVED: [char; 3] = [':', '{', '}'];

/// Checks a name used in key names.
fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if let Some(c) = name.chars().find(|c| RESERVED.contains(c) || c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "{what} {name:?} contains {c:?}; names used in Redis key names may not contain ':', '{{', '}}', spaces or control characters"
        ));
    }
    Ok(())
}

/// Parses and validates `text` as the policy `name`: the same errors as
/// `ratesim policy check` (the file being `name`), plus the key-name rules
/// on the policy and plan names.
pub fn parse(name: &str, text: &str) -> Result<Loaded, String> {
    check_name("the policy name", name)?;
    let policy = policy::parse(text, name).map_err(|e| e.to_string())?;
    let mut plans = Vec::with_capacity(policy.plans.len());
    for plan in &policy.plans {
        check_name(&format!("{name}: plan name"), &plan.name)?;
        plans.push(PlanInfo {
            prefix: format!("ratesim:{name}:{}:", plan.name),
            fingerprints: plan.limits.iter().map(fingerprint).collect(),
        });
    }
    Ok(Loaded { name: name.to_string(), text: text.to_string(), policy, plans })
}

static POLICIES: Mutex<BTreeMap<String, Arc<Loaded>>> = Mutex::new(BTreeMap::new());

/// The policy loaded as `name`.
pub fn get(name: &[u8]) -> Option<Arc<Loaded>> {
    let name = std::str::from_utf8(name).ok()?;
    POLICIES.lock().get(name).cloned()
}

/// Loads (or replaces) a policy.
pub fn insert(loaded: Loaded) {
    POLICIES.lock().insert(loaded.name.clone(), Arc::new(loaded));
}

/// Unloads a policy; whether it was loaded.
pub fn remove(name: &str) -> bool {
    POLICIES.lock().remove(name).is_some()
}

/// Every loaded policy, by name.
pub fn all() -> Vec<Arc<Loaded>> {
    POLICIES.lock().values().cloned().collect()
}

/// Unloads every policy (before an RDB's policies are loaded).
pub fn clear() {
    POLICIES.lock().clear();
}

/// The one-line summary `RATESIM.POLICY.LOAD` answers with, in the words of
/// `ratesim policy check`.
pub fn summary(loaded: &Loaded) -> String {
    format!("{}: {}", loaded.name, loaded.policy.summary())
}
