//! The few Redis module API calls the module makes, as safe-looking Rust
//! over `redis_module::raw`: argument bytes, replies, errors, logging.
//!
//! The `redis-module` crate's own wrappers allocate a `Vec` of retained
//! strings per call and do not catch panics; the hot commands go through
//! these instead (see [`crate::commands::run`]).

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_longlong};

use redis_module::raw;

/// The module context of one call.
pub type Ctx = *mut raw::RedisModuleCtx;
/// A Redis string handle.
pub type RStr = *mut raw::RedisModuleString;

/// A module API function pointer. Every function used here exists in Redis
/// 7.0, the oldest version the module supports (checked at load time).
macro_rules! api {
    ($name:ident) => {{
        // SAFETY: Redis fills these pointers once, in `RedisModule_Init`,
        // before any module code runs; reading a copy is then race-free.
        #[allow(unused_unsafe)]
        let f = unsafe { redis_module::raw::$name };
        f.expect(concat!(stringify!($name), " is missing from this Redis"))
    }};
}
pub(crate) use api;

/// The bytes of a Redis string (an argument: valid for the call).
pub fn bytes<'a>(s: RStr) -> &'a [u8] {
    let mut len = 0usize;
    // SAFETY: `s` is a live string of this call; Redis returns a pointer to
    // its `len` bytes, valid while the string lives (the whole call).
    unsafe {
        let p = api!(RedisModule_StringPtrLen)(s, &mut len);
        if p.is_null() {
            return &[];
        }
        std::slice::from_raw_parts(p as *const u8, len)
    }
}

/// A new Redis string holding `b` (to be freed with [`free_string`] or
/// handed to Redis).
pub fn new_string(ctx: Ctx, b: &[u8]) -> RStr {
    // SAFETY: Redis copies the bytes.
    unsafe { api!(RedisModule_CreateString)(ctx, b.as_ptr() as *const c_char, b.len()) }
}

/// Frees a string made by [`new_string`].
pub fn free_string(ctx: Ctx, s: RStr) {
    // SAFETY: `s` was created by this module and not freed before.
    unsafe { api!(RedisModule_FreeString)(ctx, s) }
}

/// Replies with an error. `msg` must start with an error code (`ERR`,
/// `WRONGTYPE`, ...); line breaks are replaced by spaces (a RESP error is one
/// line) and NUL bytes removed.
pub fn reply_error(ctx: Ctx, msg: &str) {
    let one_line: String =
        msg.chars().filter(|&c| c != '\0').map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect();
    let c = CString::new(one_line).expect("NUL bytes were removed");
    // SAFETY: Redis copies the message.
    unsafe {
        api!(RedisModule_ReplyWithError)(ctx, c.as_ptr());
    }
}

/// Replies with a simple status string such as `OK` (one line, no NUL).
pub fn reply_simple(ctx: Ctx, msg: &str) {
    let c = CString::new(msg.replace(['\r', '\n', '\0'], " ")).expect("NUL bytes were replaced");
    // SAFETY: Redis copies the string.
    unsafe {
        api!(RedisModule_ReplyWithSimpleString)(ctx, c.as_ptr());
    }
}

/// Starts an array reply of `len` elements.
pub fn reply_array(ctx: Ctx, len: usize) {
    // SAFETY: plain reply call on a live context.
    unsafe {
        api!(RedisModule_ReplyWithArray)(ctx, len as std::os::raw::c_long);
    }
}

/// Replies with an integer.
pub fn reply_int(ctx: Ctx, v: i64) {
    // SAFETY: plain reply call on a live context.
    unsafe {
        api!(RedisModule_ReplyWithLongLong)(ctx, v as c_longlong);
    }
}

/// Replies with an unsigned value as an integer, or nil when it does not fit
/// a Redis integer (above `i64::MAX`: instants past the year 2262).
pub fn reply_u64(ctx: Ctx, v: u64) {
    match i64::try_from(v) {
        Ok(v) => reply_int(ctx, v),
        Err(_) => reply_null(ctx),
    }
}

/// Replies with a bulk string.
pub fn reply_bulk(ctx: Ctx, b: &[u8]) {
    // SAFETY: Redis copies the bytes.
    unsafe {
        api!(RedisModule_ReplyWithStringBuffer)(ctx, b.as_ptr() as *const c_char, b.len());
    }
}

/// Replies with nil.
pub fn reply_null(ctx: Ctx) {
    // SAFETY: plain reply call on a live context.
    unsafe {
        api!(RedisModule_ReplyWithNull)(ctx);
    }
}

/// Replies with an integer, or nil for `None`.
pub fn reply_opt_u64(ctx: Ctx, v: Option<u64>) {
    match v {
        Some(v) => reply_u64(ctx, v),
        None => reply_null(ctx),
    }
}

/// Replies with a bulk string, or nil for `None`.
pub fn reply_opt_bulk(ctx: Ctx, v: Option<&[u8]>) {
    match v {
        Some(v) => reply_bulk(ctx, v),
        None => reply_null(ctx),
    }
}

/// Writes `msg` to the Redis log at `level` (`"warning"`, `"notice"`, ...).
pub fn log(ctx: Ctx, level: &str, msg: &str) {
    let level = CString::new(level).expect("a log level has no NUL");
    let fmt = CString::new("%s").expect("no NUL");
    let msg = CString::new(msg.replace('\0', " ")).expect("NUL bytes were replaced");
    // SAFETY: `%s` with one C string argument.
    unsafe {
        api!(RedisModule_Log)(ctx, level.as_ptr(), fmt.as_ptr(), msg.as_ptr());
    }
}

/// The context flags (`REDISMODULE_CTX_FLAGS_*`).
pub fn ctx_flags(ctx: Ctx) -> u32 {
    // SAFETY: plain query on a live context.
    unsafe { api!(RedisModule_GetContextFlags)(ctx) as u32 }
}

/// Whether the call is only asking for the positions of its keys
/// (`getkeys-api`); then [`key_at`] reports them and nothing else runs.
pub fn is_keys_position_request(ctx: Ctx) -> bool {
    // SAFETY: plain query on a live context.
    unsafe { api!(RedisModule_IsKeysPositionRequest)(ctx) != 0 }
}

/// Reports argument `pos` as a key (during a keys position request).
pub fn key_at(ctx: Ctx, pos: usize) {
    // SAFETY: plain call on a live context.
    unsafe { api!(RedisModule_KeyAtPos)(ctx, pos as c_int) }
}

/// Replies with the standard wrong-arity error.
pub fn wrong_arity(ctx: Ctx) {
    // SAFETY: plain reply call on a live context.
    unsafe {
        api!(RedisModule_WrongArity)(ctx);
    }
}

/// Replicates the current command to replicas and the AOF as it was called.
pub fn replicate_verbatim(ctx: Ctx) {
    // SAFETY: plain call on a live context.
    unsafe {
        api!(RedisModule_ReplicateVerbatim)(ctx);
    }
}

/// Replicates `cmd` with the arguments `args` followed by `AT <at>`.
pub fn replicate_with_at(ctx: Ctx, cmd: &std::ffi::CStr, args: &[RStr], at: u64) {
    let fmt = c"vcl";
    // SAFETY: the format says: an array of strings and its length (`v`),
    // a C string (`c`), a long long (`l`); Redis retains what it keeps.
    unsafe {
        api!(RedisModule_Replicate)(
            ctx,
            cmd.as_ptr(),
            fmt.as_ptr(),
            args.as_ptr(),
            args.len(),
            c"AT".as_ptr(),
            at as c_longlong,
        );
    }
}
