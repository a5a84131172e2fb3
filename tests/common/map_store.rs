//! The simplest [`StateStore`]: a map from `(limit index, scope identity)`
//! to the state, created fresh on first use. Test files that drive
//! `Plan::check` directly include it with
//! `#[path = "common/map_store.rs"] mod map_store;`.

use std::collections::BTreeMap;

use ratesim::engines::{EngineState, StateMut};
use ratesim::policy::{limits_in, no_states, LimitSet, Plan, StateStore, States};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapStore {
    fresh: Vec<EngineState>,
    pub states: BTreeMap<(usize, String), EngineState>,
}

impl MapStore {
    pub fn new(plan: &Plan) -> MapStore {
        MapStore { fresh: plan.limits.iter().map(|l| l.engine.new_state()).collect(), states: BTreeMap::new() }
    }

    /// The state of `limit` for `who` as the engine would see it: the stored
    /// one or a fresh one.
    pub fn state(&self, limit: usize, who: &str) -> EngineState {
        self.states.get(&(limit, who.to_string())).cloned().unwrap_or_else(|| self.fresh[limit].clone())
    }

    /// Runs `f` on one state (created fresh if absent).
    #[allow(dead_code)] // used by some of the files that include this one
    pub fn with_state<R>(&mut self, limit: usize, who: &str, f: impl FnOnce(StateMut<'_>) -> R) -> R {
        let fresh = &self.fresh[limit];
        f(self.states.entry((limit, who.to_string())).or_insert_with(|| fresh.clone()).into())
    }
}

impl<'k> StateStore<&'k str> for MapStore {
    fn with_states<R>(
        &mut self,
        limits: LimitSet,
        key_of: impl Fn(usize) -> &'k str,
        f: impl FnOnce(&mut States<'_>) -> R,
    ) -> R {
        // Take the states out of the map, hand them over together, put them
        // back (each limit's state for its own identity: all distinct).
        let mut taken: Vec<(usize, String, EngineState)> = limits_in(limits)
            .map(|i| {
                let who = key_of(i).to_string();
                let state = self.states.remove(&(i, who.clone())).unwrap_or_else(|| self.fresh[i].clone());
                (i, who, state)
            })
            .collect();
        let result = {
            let mut states = no_states();
            for (i, _, state) in taken.iter_mut() {
                states[*i] = Some(state.into());
            }
            f(&mut states)
        };
        for (i, who, state) in taken {
            self.states.insert((i, who), state);
        }
        result
    }
}
