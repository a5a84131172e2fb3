//! [`ReplayStore`]: the state store of a replay, one map per limit from
//! scope identity to engine state.
//!
//! Replays run on one thread and look a request's states up by the
//! identities the log names, so a plain hash map per limit does: no locks
//! (the production `SharedStore`) and no interning (the simulator's
//! `SimStore`, which needs identities resolved to dense ids first). A state
//! is created fresh ([`crate::engines::Engine::new_state`]) on first use.
//! [`ReplayStore::copy_for`] copies the few states one request touches, so
//! that a decision can be asked again at another instant without disturbing
//! the replay.

use hashbrown::HashMap;

use crate::engines::EngineState;
use crate::policy::{no_states, LimitSet, Plan, Request, StateStore, States};

type Map = HashMap<Box<str>, EngineState, foldhash::fast::FixedState>;

/// Engine states of one plan, per limit and scope identity.
#[derive(Clone, Debug)]
pub struct ReplayStore {
    fresh: Vec<EngineState>,
    states: Vec<Map>,
}

impl ReplayStore {
    /// An empty store for `plan`.
    pub fn new(plan: &Plan) -> ReplayStore {
        ReplayStore {
            fresh: plan.limits.iter().map(|l| l.engine.new_state()).collect(),
            states: plan.limits.iter().map(|_| Map::default()).collect(),
        }
    }

    /// The state of limit `limit` for `identity` as the engine would see
    /// it: the stored one, or a fresh one.
    pub fn state(&self, limit: usize, identity: &str) -> EngineState {
        self.states[limit].get(identity).cloned().unwrap_or_else(|| self.fresh[limit].clone())
    }

    /// A store holding copies of the states `req` touches under `plan` (the
    /// applicable limits' states for its scope identities, fresh ones where
    /// none is held yet), and nothing else.
    pub fn copy_for(&self, plan: &Plan, req: &Request<'_>) -> ReplayStore {
        let mut copy =
            ReplayStore { fresh: self.fresh.clone(), states: self.states.iter().map(|_| Map::default()).collect() };
        for (i, limit) in plan.limits.iter().enumerate() {
            if !limit.selector.matches(req) {
                continue;
            }
            let who = limit.scope.key_of(req);
            let state = self.states[i].get(who).unwrap_or(&self.fresh[i]).clone();
            copy.states[i].insert(who.into(), state);
        }
        copy
    }

    /// Puts back the states of a copy made by [`ReplayStore::copy_for`]:
    /// undoes whatever happened to them since.
    pub fn restore(&mut self, copy: ReplayStore) {
        for (map, states) in self.states.iter_mut().zip(copy.states) {
            map.extend(states);
        }
    }

    /// Identities held, over all limits.
    pub fn len(&self) -> usize {
        self.states.iter().map(Map::len).sum()
    }

    /// Whether no state is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'k> StateStore<&'k str> for ReplayStore {
    fn with_states<R>(
        &mut self,
        limits: LimitSet,
        key_of: impl Fn(usize) -> &'k str,
        f: impl FnOnce(&mut States<'_>) -> R,
    ) -> R {
        let mut states = no_states();
        for (i, (map, slot)) in self.states.iter_mut().zip(states.iter_mut()).enumerate() {
            if limits & (1 << i) == 0 {
                continue;
            }
            let fresh = &self.fresh[i];
            let state = map.entry_ref(key_of(i)).or_insert_with(|| fresh.clone());
            *slot = Some(state.into());
        }
        f(&mut states)
    }
}
