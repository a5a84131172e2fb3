//! ratesim's engines inside Redis: a Redis module that decides whole plans.
//!
//! Every instance of a service asks the same Redis, so they share one set of
//! limits. The module links the `ratesim` library and runs the very same
//! [`Plan::check`](ratesim::policy::Plan::check) and
//! [`render`](ratesim::policy::render) as the simulator and the in-process
//! `KeyedLimiter`: exact integer nanoseconds and rationals (no Lua doubles),
//! every algorithm and composed plans, the same headers and bodies.
//!
//! ```text
//! redis-server --loadmodule target/release/libratesim_redis.so
//! ```
//!
//! Redis 7.0 or later.
//!
//! # Commands
//!
//! - `RATESIM.POLICY.LOAD name toml` loads (or replaces) a policy; a
//!   malformed one is refused with the error `ratesim policy check` prints
//!   (the file being `name`). Answers the policy's one-line summary.
//!   `RATESIM.POLICY.GET name`, `RATESIM.POLICY.LIST`, `RATESIM.POLICY.DEL
//!   name` read, list and unload.
//! - `RATESIM.CHECK key policy plan [USER u] [WORKSPACE w] [ENDPOINT e]
//!   [AUTH 0|1] [TOKENS n] [COST n] [AT ns] [RENDER 0|1]` decides one request against
//!   every limit of the plan that applies to it, atomically: admitted only
//!   if every limit admits, and then committed on each; a denial consumes
//!   nothing anywhere (see the `args` module for the options; `COST` is money in
//!   minor units). It answers an array of ten:
//!   1. `1` admitted, `0` denied;
//!   2. the HTTP status: 200, or the binding limit's (429, 402...);
//!   3. the binding limit's id, or nil when admitted;
//!   4. remaining units: of the binding limit for a denial, of the limit the
//!      headers report for an admission (nil if none applies);
//!   5. that limit's reset instant in nanoseconds since the Unix epoch (nil
//!      if none, or never);
//!   6. for a denial, the exact wait in nanoseconds until the same request
//!      would be admitted (nil when admitted, unknown or never);
//!   7. the rendered headers as a flat array: name, value, name, value...
//!      (empty with `RENDER 0`);
//!   8. the rendered JSON body of a denial, or nil (nil with `RENDER 0`);
//!   9. the completion ticket, or nil: text to hand to `RATESIM.COMPLETE`
//!      when the request finishes (concurrency permits, budget reservations);
//!   10. for an admission, how long to hold the request before serving it,
//!       in nanoseconds (nginx `limit_req` delays); 0 otherwise.
//!
//!   Fields 3 to 6 are those of `ratesim run --decisions` (with absolute
//!   instants); 7 and 8 are exactly what the in-process limiter's
//!   `response()` renders at the same instant.
//! - `RATESIM.COMPLETE key policy plan ticket [same options]` completes an
//!   admitted request: releases its permits and settles its budgets with the
//!   request's `TOKENS`/`COST` (the actual amounts). Answers the settle
//!   overshoot (actual above reserved). A ticket completed twice changes
//!   nothing the second time.
//! - `RATESIM.STATE identity policy plan [AT ns]` shows an identity's states
//!   that are not at rest: per limit, its id, the units left for a request of
//!   cost 1, the reset instant, and the state itself. For people, and for
//!   comparing a replica with its primary.
//! - `RATESIM.STATE.RESTORE statekey bytes` sets a state key from its encoded
//!   value (what AOF rewrites write).
//!
//! Malformed commands, options, numbers, tickets and policies are answered
//! with Redis errors that say what was expected; nothing panics (a bug that
//! did would be answered as an error, not crash the server).
//!
//! # Time
//!
//! By default the server's clock decides, so every instance of the service
//! agrees on one clock. `AT ns` decides at an explicit instant instead (for
//! tests and replay). Engines answer conservatively if instants step back.
//!
//! # Replication and AOF
//!
//! A decision depends on the clock, so a command cannot be replayed as
//! called. Each command that changed state is replicated (to replicas and
//! the AOF) with the instant it was decided at: `RATESIM.CHECK ... AT <ns>`
//! (as called when it carried `AT`). Given the same states and policy, the
//! engines are deterministic, so the replica or the reloaded AOF reaches the
//! same states. This is chosen over replicating the resulting states: a
//! command is a few dozen bytes whatever the states hold (a sliding log of
//! 10,000 entries would otherwise be sent again on every request). A denial
//! changes nothing (the composition's guarantee) and is not replicated:
//! under a flood of 429s, replication and the AOF grow with admitted
//! traffic only (except where a limit counts denied requests, the
//! `INCR`-then-compare dialects: such a denial changes its counters and is
//! written and replicated like an admission). The states a denial looked at
//! may have forgotten entries
//! that expired; no later decision can tell the difference, and
//! `RATESIM.STATE` compares equal. Policy loads are replicated as called.
//!
//! # Persistence and expiry
//!
//! States are a module data type (the `value` module) saved in RDB snapshots and
//! rewritten AOFs; policies travel as RDB auxiliary data (the `registry` module),
//! so a restart with RDB or AOF finds both. A key expires once all its
//! states have been at rest for 60 s, like the in-process limiter's idle
//! eviction; expiry is lossless.
//!
//! # Keys and Redis Cluster
//!
//! The states of one scope identity under one plan are the key
//! `ratesim:<policy>:<plan>:<identity>` (global limits:
//! `ratesim:<policy>:<plan>:`). A request touches the keys of its API key,
//! user and workspace, as its limits' scopes say; all of them are decided
//! in one command, so the decision is atomic across scopes on one Redis.
//!
//! On Redis Cluster a command's keys must share a hash slot. The command
//! declares its identities (`key`, `USER`, `WORKSPACE` values) as its keys,
//! and the state key of an identity is in the identity's slot provided the
//! identity carries a hash tag: name each identity with its scope owner,
//! e.g. `{acme}key-1`, `{acme}user-7`, `{acme}` for workspace `acme`, and a
//! request's states all live in the slot of `acme`, decided atomically on
//! the shard that owns it. An identity without a hash tag is refused on a
//! cluster (its state key would land in another slot than the one Redis
//! routed the command by). A request whose identities carry different hash
//! tags is refused by Redis itself (`CROSSSLOT`): there is no atomicity
//! across shards, so the module does not pretend to any. Global limits are
//! refused on a cluster for the same reason: their one state lives in one
//! slot. The key comes first in the command, so cluster clients route it
//! as they route any single-key command.

// In unit tests the module's entry points are left out (its global
// allocator is Redis's, which a test binary does not have), so what only
// they use is unused there.
#![cfg_attr(test, allow(dead_code, unused_imports))]

mod api;
mod args;
mod commands;
#[cfg(not(test))]
mod entry;
mod registry;
mod store;
mod ticket;
mod value;
