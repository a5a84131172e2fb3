//! The module's entry points: commands, data type and load-time setup.

use std::ffi::CStr;
use std::os::raw::c_int;

use redis_module::{raw, redis_module, Context, RedisString, Status};

use crate::api::{api, Ctx, RStr};
use crate::value::STATE_TYPE;
use crate::{commands, value};

/// Declares the C entry point of a command.
macro_rules! entry {
    ($name:ident, $body:path) => {
        extern "C" fn $name(ctx: Ctx, argv: *mut RStr, argc: c_int) -> c_int {
            commands::run(ctx, argv, argc, $body)
        }
    };
}

entry!(check_entry, commands::check);
entry!(complete_entry, commands::complete);
entry!(policy_load_entry, commands::policy_load);
entry!(policy_del_entry, commands::policy_del);
entry!(policy_get_entry, commands::policy_get);
entry!(policy_list_entry, commands::policy_list);
entry!(state_entry, commands::state);
entry!(state_restore_entry, commands::state_restore);

type Entry = extern "C" fn(Ctx, *mut RStr, c_int) -> c_int;

/// The commands: name, entry, flags, first key, last key, key step.
const COMMANDS: [(&CStr, Entry, &CStr, c_int, c_int, c_int); 8] = [
    (c"ratesim.check", check_entry, c"write deny-oom fast getkeys-api", 1, 1, 1),
    (c"ratesim.complete", complete_entry, c"write deny-oom fast getkeys-api", 1, 1, 1),
    (c"ratesim.policy.load", policy_load_entry, c"write deny-oom", 0, 0, 0),
    (c"ratesim.policy.del", policy_del_entry, c"write", 0, 0, 0),
    (c"ratesim.policy.get", policy_get_entry, c"readonly fast", 0, 0, 0),
    (c"ratesim.policy.list", policy_list_entry, c"readonly", 0, 0, 0),
    (c"ratesim.state", state_entry, c"readonly", 1, 1, 1),
    (c"ratesim.state.restore", state_restore_entry, c"write deny-oom", 1, 1, 1),
];

fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    let raw_ctx = ctx.ctx;
    value::set_type_ptr();
    // SAFETY: registration calls on the load context.
    unsafe {
        // Keys are signalled modified only when a command changed them (a
        // denial opens keys for writing but changes nothing).
        api!(RedisModule_SetModuleOptions)(raw_ctx, raw::REDISMODULE_OPTION_NO_IMPLICIT_SIGNAL_MODIFIED as c_int);
        for (name, entry, flags, first, last, step) in COMMANDS {
            let ok =
                api!(RedisModule_CreateCommand)(raw_ctx, name.as_ptr(), Some(entry), flags.as_ptr(), first, last, step);
            if ok != raw::REDISMODULE_OK as c_int {
                ctx.log_warning(&format!("ratesim: cannot create command {name:?}"));
                return Status::Err;
            }
        }
    }
    Status::Ok
}

redis_module! {
    name: "ratesim",
    version: 100,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [STATE_TYPE],
    init: init,
}
