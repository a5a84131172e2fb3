//! Interning: each identity (key, user, workspace, endpoint) stored once as
//! an [`Ident`] and named by a dense `u32` id in order of first appearance,
//! so the simulator's state columns are indexed without hashing.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::ident::Ident;

/// Interns strings to dense ids in order of first appearance. Each string
/// is stored once (in `names`); the table holds only ids.
#[derive(Default)]
pub(super) struct Interner {
    ids: HashTable<u32>,
    pub(super) names: Vec<Ident>,
    hasher: foldhash::fast::FixedState,
    /// The id returned last: traces repeat the same key, user and endpoint
    /// row after row, and one comparison is cheaper than a hash lookup.
    last: Option<u32>,
}

impl Interner {
    pub(super) fn id(&mut self, s: &str) -> u32 {
        if let Some(last) = self.last {
            if self.names[last as usize].is(s) {
                return last;
            }
        }
        let hasher = &self.hasher;
        let names = &self.names;
        let hash = hasher.hash_one(s);
        let id = match self.ids.find(hash, |&id| names[id as usize].is(s)) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                self.names.push(Ident::new(s));
                let names = &self.names;
                self.ids.insert_unique(hash, id, |&id| hasher.hash_one(names[id as usize].as_str()));
                id
            }
        };
        self.last = Some(id);
        id
    }
}

/// The id of `key` (whose key id is `key_id`) in `interner`, through the
/// per-key cache `cache`.
pub(super) fn own_identity(cache: &mut Vec<u32>, key_id: u32, interner: &mut Interner, key: &str) -> u32 {
    let k = key_id as usize;
    if k >= cache.len() {
        cache.resize(k + 1, u32::MAX);
    }
    if cache[k] == u32::MAX {
        cache[k] = interner.id(key);
    }
    cache[k]
}

/// The name of identity `id` of `interner` (a user or workspace), or
/// `None` when it is the request's own key standing in for one the row did
/// not name (see [`own_identity`]).
pub(super) fn named<'a>(interner: &'a Interner, id: u32, keys: &Interner, key: u32) -> Option<&'a str> {
    let name = interner.names[id as usize].as_str();
    (name != keys.names[key as usize].as_str()).then_some(name)
}
