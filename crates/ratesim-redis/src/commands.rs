//! The commands. See the crate docs for what each answers.

use std::os::raw::c_int;
use std::sync::Arc;

use ratesim::policy::{limits_in, render, LimitSet, PlanDecision, Rendered};
use ratesim::time::Nanos;
use redis_module::raw;

use crate::api::{self, api, Ctx, RStr};
use crate::args::{self, CmdError};
use crate::registry::{self, Loaded};
use crate::store::RedisStore;
use crate::ticket;
use crate::value::{self, StateValue};

/// A command body: writes its reply, or returns the error to answer.
type Body = fn(Ctx, &[RStr]) -> Result<(), CmdError>;

/// Runs a command body, answering its error; a panic (a bug) is caught and
/// answered as an error rather than taking the server down.
pub fn run(ctx: Ctx, argv: *mut RStr, argc: c_int, body: Body) -> c_int {
    // SAFETY: Redis passes `argc` strings, alive for the call.
    let argv: &[RStr] = unsafe { std::slice::from_raw_parts(argv, argc.max(0) as usize) };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(ctx, argv))) {
        Ok(Ok(())) => {}
        Ok(Err(CmdError::Arity)) => api::wrong_arity(ctx),
        Ok(Err(CmdError::Msg(m))) => api::reply_error(ctx, &m),
        Err(_) => {
            api::log(ctx, "warning", "ratesim: a command panicked (a bug in ratesim; the request was not decided)");
            api::reply_error(ctx, "ERR ratesim: internal error (a bug; see the server log)");
        }
    }
    raw::REDISMODULE_OK as c_int
}

/// The server's clock: nanoseconds since the Unix epoch.
fn server_now() -> Nanos {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as u64)
}

/// The policy and plan a request names.
fn lookup(cmd: &str, policy: &[u8], plan: &[u8]) -> Result<(Arc<Loaded>, usize), CmdError> {
    let Some(loaded) = registry::get(policy) else {
        let name = String::from_utf8_lossy(policy);
        return Err(CmdError::Msg(format!(
            "ERR {cmd}: no policy named {name:?} is loaded (load it with RATESIM.POLICY.LOAD {name} <toml>)"
        )));
    };
    let Some(index) = loaded.policy.plans.iter().position(|p| p.name.as_bytes() == plan) else {
        return Err(CmdError::err(
            cmd,
            format!(
                "policy {:?} has no plan {:?}; its plans are: {}",
                loaded.name,
                String::from_utf8_lossy(plan),
                loaded.policy.plan_names().join(", ")
            ),
        ));
    };
    Ok((loaded, index))
}

/// Reports the positions of the identities (the command's keys).
fn report_keys(ctx: Ctx, argv: &[RStr], fixed: usize) {
    for pos in args::key_positions(argv, fixed) {
        api::key_at(ctx, pos);
    }
}

/// Replicates a command that changed state so that it decides the same on
/// replicas and in the AOF: as called if it carried `AT`, else with the
/// instant used appended as `AT`.
fn replicate(ctx: Ctx, name: &std::ffi::CStr, argv: &[RStr], at_given: bool, now: Nanos) {
    if at_given {
        api::replicate_verbatim(ctx);
    } else {
        api::replicate_with_at(ctx, name, &argv[1..], now);
    }
}

/// `RATESIM.CHECK key policy plan [options]`.
pub fn check(ctx: Ctx, argv: &[RStr]) -> Result<(), CmdError> {
    const CMD: &str = "RATESIM.CHECK";
    if api::is_keys_position_request(ctx) {
        report_keys(ctx, argv, 0);
        return Ok(());
    }
    let (a, _) = args::parse(CMD, argv, 0)?;
    let (loaded, p) = lookup(CMD, a.policy, a.plan)?;
    let plan = &loaded.policy.plans[p];
    let req = a.request();
    let now = a.at.unwrap_or_else(server_now);
    let mut applicable: LimitSet = 0;
    for (i, limit) in plan.limits.iter().enumerate() {
        if limit.selector.matches(&req) {
            applicable |= 1 << i;
        }
    }
    // A denial changes state only where a limit counts denied requests
    // (the INCR-then-compare dialects): then it is written and replicated
    // like an admission.
    let counts_denials = limits_in(applicable).any(|i| plan.limits[i].engine.counts_denied());
    let mut store = RedisStore::open(ctx, plan, &loaded.plans[p], &req, applicable, CMD)?;
    let d = plan.check(&mut store, now, &req);
    let changed = d.applied > 0 && (d.allowed || counts_denials);
    store.finish(changed, now);
    drop(store);
    if changed {
        replicate(ctx, c"RATESIM.CHECK", argv, a.at.is_some(), now);
    }
    reply_decision(ctx, &loaded, p, &d, now, a.render);
    Ok(())
}

/// The reply of `RATESIM.CHECK`: see the crate docs.
fn reply_decision(ctx: Ctx, loaded: &Loaded, p: usize, d: &PlanDecision, now: Nanos, rendering: bool) {
    let plan = &loaded.policy.plans[p];
    let figures = d.denial.or(d.reported.map(|(_, r)| r));
    let rendered = if rendering {
        render(&loaded.policy, plan, d, now)
    } else {
        Rendered { status: d.status, headers: Vec::new(), body: None }
    };
    api::reply_array(ctx, 10);
    api::reply_int(ctx, d.allowed as i64);
    api::reply_int(ctx, d.status as i64);
    api::reply_opt_bulk(ctx, d.denied_by.map(|i| plan.limits[i].id.as_bytes()));
    api::reply_opt_u64(ctx, figures.map(|f| f.remaining));
    api::reply_opt_u64(ctx, figures.map(|f| f.reset).filter(|&r| r != Nanos::MAX));
    api::reply_opt_u64(ctx, d.retry.at().map(|t| t - now));
    api::reply_array(ctx, 2 * rendered.headers.len());
    for (name, value) in &rendered.headers {
        api::reply_bulk(ctx, name.as_bytes());
        api::reply_bulk(ctx, value.as_bytes());
    }
    api::reply_opt_bulk(ctx, rendered.body.as_deref().map(str::as_bytes));
    api::reply_opt_bulk(ctx, ticket::encode(&d.tickets).as_deref().map(str::as_bytes));
    api::reply_u64(ctx, d.delay);
}

/// `RATESIM.COMPLETE key policy plan ticket [options]`.
pub fn complete(ctx: Ctx, argv: &[RStr]) -> Result<(), CmdError> {
    const CMD: &str = "RATESIM.COMPLETE";
    if api::is_keys_position_request(ctx) {
        report_keys(ctx, argv, 1);
        return Ok(());
    }
    let (a, positional) = args::parse(CMD, argv, 1)?;
    let (loaded, p) = lookup(CMD, a.policy, a.plan)?;
    let plan = &loaded.policy.plans[p];
    let text = std::str::from_utf8(api::bytes(positional[0]))
        .map_err(|_| CmdError::err(CMD, "the ticket is not valid UTF-8"))?;
    let tickets = ticket::decode(text, plan.limits.len()).map_err(|e| CmdError::err(CMD, e))?;
    let req = a.request();
    let now = a.at.unwrap_or_else(server_now);
    let mut set: LimitSet = 0;
    for (i, _) in tickets.iter() {
        set |= 1 << i;
    }
    let mut store = RedisStore::open(ctx, plan, &loaded.plans[p], &req, set, CMD)?;
    let done = plan.complete(&mut store, now, &req, &tickets);
    store.finish(true, now);
    drop(store);
    replicate(ctx, c"RATESIM.COMPLETE", argv, a.at.is_some(), now);
    api::reply_u64(ctx, done.overshoot);
    Ok(())
}

fn utf8<'a>(cmd: &str, what: &str, arg: RStr) -> Result<&'a str, CmdError> {
    std::str::from_utf8(api::bytes(arg)).map_err(|_| CmdError::err(cmd, format!("{what} is not valid UTF-8")))
}

/// `RATESIM.POLICY.LOAD name toml`: loads or replaces a policy.
pub fn policy_load(ctx: Ctx, argv: &[RStr]) -> Result<(), CmdError> {
    const CMD: &str = "RATESIM.POLICY.LOAD";
    if argv.len() != 3 {
        return Err(CmdError::Arity);
    }
    let name = utf8(CMD, "the policy name", argv[1])?;
    let text = utf8(CMD, "the policy", argv[2])?;
    let loaded = registry::parse(name, text).map_err(|e| CmdError::Msg(format!("ERR {e}")))?;
    let summary = registry::summary(&loaded);
    registry::insert(loaded);
    api::replicate_verbatim(ctx);
    api::reply_simple(ctx, &summary);
    Ok(())
}

/// `RATESIM.POLICY.DEL name`: unloads a policy (its states stay until they
/// expire); 1 if it was loaded.
pub fn policy_del(ctx: Ctx, argv: &[RStr]) -> Result<(), CmdError> {
    if argv.len() != 2 {
        return Err(CmdError::Arity);
    }
    let removed = registry::remove(&String::from_utf8_lossy(api::bytes(argv[1])));
    if removed {
        api::replicate_verbatim(ctx);
    }
    api::reply_int(ctx, removed as i64);
    Ok(())
}

/// `RATESIM.POLICY.GET name`: the policy's TOML, or nil.
pub fn policy_get(ctx: Ctx, argv: &[RStr]) -> Result<(), CmdError> {
    if argv.len() != 2 {
        return Err(CmdError::Arity);
    }
    let loaded = registry::get(api::bytes(argv[1]));
    api::reply_opt_bulk(ctx, loaded.as_ref().map(|l| l.text.as_bytes()));
    Ok(())
}

/// `RATESIM.POLICY.LIST`: the loaded policies' one-line summaries, by name.
pub fn policy_list(ctx: Ctx, argv: &[RStr]) -> Result<(), CmdError> {
    if argv.len() != 1 {
        return Err(CmdError::Arity);
    }
    let all = registry::all();
    api::reply_array(ctx, all.len());
    for l in all {
        api::reply_bulk(ctx, registry::summary(&l).as_bytes());
    }
    Ok(())
}

/// `RATESIM.STATE identity policy plan [AT ns]`: what the identity's states
/// say at an instant: per limit with a state that is not at rest, its id,
/// the units remaining for a request of cost 1, the reset instant and the
/// state itself (its `Debug` form, after forgetting what expired). For
/// people, and for comparing a replica with its primary.
pub fn state(ctx: Ctx, argv: &[RStr]) -> Result<(), CmdError> {
    const CMD: &str = "RATESIM.STATE";
    if !(argv.len() == 4 || argv.len() == 6) {
        return Err(CmdError::Arity);
    }
    let identity = utf8(CMD, "the identity", argv[1])?;
    let (loaded, p) = lookup(CMD, api::bytes(argv[2]), api::bytes(argv[3]))?;
    let now = match argv.get(4) {
        None => server_now(),
        Some(&opt) if api::bytes(opt).eq_ignore_ascii_case(b"AT") => {
            args::number(CMD, "AT (nanoseconds since the Unix epoch)", argv[5], i64::MAX as u64)?
        }
        Some(&opt) => {
            return Err(CmdError::err(
                CMD,
                format!("unknown option {:?}; the only option is AT", String::from_utf8_lossy(api::bytes(opt))),
            ))
        }
    };
    let plan = &loaded.policy.plans[p];
    let info = &loaded.plans[p];
    let mut name = Vec::new();
    info.key_name(identity, &mut name);
    let key_name = api::new_string(ctx, &name);
    // SAFETY: a read-only look at one key, closed before returning.
    let stored = unsafe {
        let key = api!(RedisModule_OpenKey)(ctx, key_name, raw::REDISMODULE_READ as i32);
        let value = if api!(RedisModule_ModuleTypeGetType)(key) == value::type_ptr() {
            Some((*(api!(RedisModule_ModuleTypeGetValue)(key) as *const StateValue)).clone())
        } else {
            None
        };
        api!(RedisModule_CloseKey)(key);
        value
    };
    api::free_string(ctx, key_name);
    let mut rows = Vec::new();
    for entry in stored.map(|v| v.entries).unwrap_or_default() {
        let Some(i) = info.fingerprints.iter().position(|&f| f == entry.fingerprint) else { continue };
        let engine = &plan.limits[i].engine;
        if !value::same_kind(engine, &entry.state) {
            continue;
        }
        let mut s = entry.state;
        let d = engine.decide(&mut s, now, 1);
        if !engine.is_idle(&s, now) {
            rows.push((i, d, format!("{s:?}")));
        }
    }
    rows.sort_by_key(|r| r.0);
    api::reply_array(ctx, rows.len());
    for (i, d, debug) in rows {
        api::reply_array(ctx, 4);
        api::reply_bulk(ctx, plan.limits[i].id.as_bytes());
        api::reply_u64(ctx, d.remaining);
        api::reply_opt_u64(ctx, Some(d.reset).filter(|&r| r != Nanos::MAX));
        api::reply_bulk(ctx, debug.as_bytes());
    }
    Ok(())
}

/// `RATESIM.STATE.RESTORE statekey bytes`: sets a state key from its
/// encoded value (what an AOF rewrite writes; also a way to move states).
pub fn state_restore(ctx: Ctx, argv: &[RStr]) -> Result<(), CmdError> {
    const CMD: &str = "RATESIM.STATE.RESTORE";
    if argv.len() != 3 {
        return Err(CmdError::Arity);
    }
    let value = StateValue::decode(api::bytes(argv[2])).map_err(|e| CmdError::err(CMD, e))?;
    // SAFETY: opens the key, replaces its value (Redis takes ownership of
    // the box), closes it.
    unsafe {
        let key = api!(RedisModule_OpenKey)(ctx, argv[1], (raw::REDISMODULE_READ | raw::REDISMODULE_WRITE) as i32);
        let kind = api!(RedisModule_KeyType)(key) as isize;
        if kind != raw::REDISMODULE_KEYTYPE_EMPTY
            && (kind != raw::REDISMODULE_KEYTYPE_MODULE
                || api!(RedisModule_ModuleTypeGetType)(key) != value::type_ptr())
        {
            api!(RedisModule_CloseKey)(key);
            return Err(CmdError::Msg("WRONGTYPE Operation against a key holding the wrong kind of value".into()));
        }
        api!(RedisModule_ModuleTypeSetValue)(key, value::type_ptr(), Box::into_raw(Box::new(value)) as *mut _);
        api!(RedisModule_SignalModifiedKey)(ctx, argv[1]);
        api!(RedisModule_CloseKey)(key);
    }
    api::replicate_verbatim(ctx);
    api::reply_simple(ctx, "OK");
    Ok(())
}
