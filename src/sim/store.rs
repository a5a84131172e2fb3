//! The simulator's state store: per limit, a dense column of engine states
//! indexed by interned scope identity.
//!
//! Fixed-size states (GCRA, fixed window, sliding counter) are stored unboxed
//! in their own type — a GCRA key costs 16 bytes — and handed to the engine
//! as a typed [`StateMut`] reference, with no copy. States with
//! heap parts (sliding logs, leased permits, budgets) are stored as
//! [`EngineState`] directly.

use crate::engines::{EngineState, FixedWindowState, GcraState, SlidingCounterState, StateMut};
use crate::policy::{no_states, LimitSet, Plan, Scope, StateStore, States};

enum Column {
    Gcra(Vec<GcraState>),
    FixedWindow(Vec<FixedWindowState>),
    SlidingCounter(Vec<SlidingCounterState>),
    Any(Vec<Option<EngineState>>),
}

/// Engine states of one plan for every identity a simulation has seen.
pub struct SimStore {
    scopes: Vec<Scope>,
    fresh: Vec<EngineState>,
    columns: Vec<Column>,
    /// Interned identities of the request being decided: key, user, workspace.
    ids: [u32; 3],
}

fn slot<T: Clone + Default>(v: &mut Vec<T>, id: usize) -> &mut T {
    if id >= v.len() {
        v.resize(id + 1, T::default());
    }
    &mut v[id]
}

impl SimStore {
    /// An empty store for `plan`.
    pub fn new(plan: &Plan) -> SimStore {
        let columns = plan
            .limits
            .iter()
            .map(|l| match l.engine.new_state() {
                EngineState::Gcra(_) => Column::Gcra(Vec::new()),
                EngineState::FixedWindow(_) => Column::FixedWindow(Vec::new()),
                EngineState::SlidingCounter(_) => Column::SlidingCounter(Vec::new()),
                _ => Column::Any(Vec::new()),
            })
            .collect();
        SimStore {
            scopes: plan.limits.iter().map(|l| l.scope).collect(),
            fresh: plan.limits.iter().map(|l| l.engine.new_state()).collect(),
            columns,
            ids: [0; 3],
        }
    }

    /// Sets the identities (interned key, user and workspace ids) of the
    /// request about to be decided or completed.
    pub fn set_identity(&mut self, key: u32, user: u32, workspace: u32) {
        self.ids = [key, user, workspace];
    }

    /// Bytes of engine state held (excluding heap parts of logs and leases).
    pub fn state_bytes(&self) -> usize {
        self.columns
            .iter()
            .map(|c| match c {
                Column::Gcra(v) => v.len() * std::mem::size_of::<GcraState>(),
                Column::FixedWindow(v) => v.len() * std::mem::size_of::<FixedWindowState>(),
                Column::SlidingCounter(v) => v.len() * std::mem::size_of::<SlidingCounterState>(),
                Column::Any(v) => v.len() * std::mem::size_of::<Option<EngineState>>(),
            })
            .sum()
    }
}

impl<'k> StateStore<&'k str> for SimStore {
    #[inline]
    fn with_states<R>(
        &mut self,
        limits: LimitSet,
        _key_of: impl Fn(usize) -> &'k str,
        f: impl FnOnce(&mut States<'_>) -> R,
    ) -> R {
        let mut states = no_states();
        let ids = self.ids;
        for (i, (column, state)) in self.columns.iter_mut().zip(states.iter_mut()).enumerate() {
            if limits & (1 << i) == 0 {
                continue;
            }
            let id = match self.scopes[i] {
                Scope::Key => ids[0],
                Scope::User => ids[1],
                Scope::Workspace => ids[2],
                Scope::Global => 0,
            } as usize;
            *state = Some(match column {
                Column::Gcra(v) => StateMut::Gcra(slot(v, id)),
                Column::FixedWindow(v) => StateMut::FixedWindow(slot(v, id)),
                Column::SlidingCounter(v) => StateMut::SlidingCounter(slot(v, id)),
                Column::Any(v) => {
                    let fresh = &self.fresh[i];
                    slot(v, id).get_or_insert_with(|| fresh.clone()).into()
                }
            });
        }
        f(&mut states)
    }
}
