//! The arguments of `RATESIM.CHECK` and `RATESIM.COMPLETE`: a request, as
//! [`ratesim::policy::Request`] describes it, and an optional instant.
//!
//! ```text
//! <key> <policy> <plan> [USER u] [WORKSPACE w] [ENDPOINT e] [AUTH 0|1]
//!                       [TOKENS n] [COST n] [AT ns] [RENDER 0|1]
//! ```
//!
//! Options are case-insensitive and given at most once. `TOKENS` is the
//! request's token count, `COST` its money amount in minor units (the
//! trace's `cost` column); both default to 0. `AUTH` defaults to 1
//! (authenticated). `AT` is the instant in nanoseconds since the Unix epoch
//! (at most `i64::MAX`, so replies can carry it); without it the server's
//! clock decides. `RENDER 0` leaves out the rendered headers and body (the
//! reply's fields 7 and 8 are then empty and nil): the decision and its
//! figures only, for a caller that renders responses itself.

use ratesim::policy::Request;

use crate::api::{self, RStr};

/// A malformed command, answered as a Redis error.
#[derive(Debug)]
pub enum CmdError {
    /// Too few or too many arguments: Redis's own arity error.
    Arity,
    /// Anything else; the text starts with an error code.
    Msg(String),
}

impl CmdError {
    /// An `ERR` error of command `cmd`.
    pub fn err(cmd: &str, msg: impl std::fmt::Display) -> CmdError {
        CmdError::Msg(format!("ERR {cmd}: {msg}"))
    }
}

/// A parsed request.
#[derive(Debug)]
pub struct Args<'a> {
    /// The API key (argument 1).
    pub key: &'a str,
    /// The policy name (argument 2).
    pub policy: &'a [u8],
    /// The plan name (argument 3).
    pub plan: &'a [u8],
    /// `USER`.
    pub user: Option<&'a str>,
    /// `WORKSPACE`.
    pub workspace: Option<&'a str>,
    /// `ENDPOINT` (default empty).
    pub endpoint: &'a str,
    /// `AUTH` (default authenticated).
    pub authenticated: bool,
    /// `TOKENS` (default 0).
    pub tokens: u64,
    /// `COST`: money in minor units (default 0).
    pub money: u64,
    /// `AT`, if given.
    pub at: Option<u64>,
    /// `RENDER` (default 1): whether to render headers and body.
    pub render: bool,
}

impl<'a> Args<'a> {
    /// The request.
    pub fn request(&self) -> Request<'a> {
        Request {
            key: self.key,
            user: self.user,
            workspace: self.workspace,
            endpoint: self.endpoint,
            authenticated: self.authenticated,
            tokens: self.tokens,
            money: self.money,
        }
    }
}

fn text<'a>(cmd: &str, what: &str, arg: RStr) -> Result<&'a str, CmdError> {
    std::str::from_utf8(api::bytes(arg)).map_err(|_| CmdError::err(cmd, format!("{what} is not valid UTF-8")))
}

fn identity<'a>(cmd: &str, what: &str, arg: RStr) -> Result<&'a str, CmdError> {
    let s = text(cmd, what, arg)?;
    if s.is_empty() {
        return Err(CmdError::err(cmd, format!("{what} is empty")));
    }
    Ok(s)
}

fn flag(cmd: &str, what: &str, expected: &str, arg: RStr) -> Result<bool, CmdError> {
    match api::bytes(arg) {
        b"1" => Ok(true),
        b"0" => Ok(false),
        other => {
            let shown = String::from_utf8_lossy(other);
            Err(CmdError::err(cmd, format!("{what} expects {expected}, found {shown:?}")))
        }
    }
}

/// A whole number of at most `max` (decimal digits only).
pub fn number(cmd: &str, what: &str, arg: RStr, max: u64) -> Result<u64, CmdError> {
    let b = api::bytes(arg);
    let shown = String::from_utf8_lossy(b);
    let n = std::str::from_utf8(b)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| CmdError::err(cmd, format!("{what} expects a whole number of 0 or more, found {shown:?}")))?;
    if n > max {
        return Err(CmdError::err(cmd, format!("{what} is at most {max}, found {n}")));
    }
    Ok(n)
}

/// Parses `argv` (the command name first): the key, policy and plan, then
/// `fixed` more positional arguments (returned), then the options.
pub fn parse<'a>(cmd: &str, argv: &'a [RStr], fixed: usize) -> Result<(Args<'a>, &'a [RStr]), CmdError> {
    if argv.len() < 4 + fixed {
        return Err(CmdError::Arity);
    }
    let mut args = Args {
        key: identity(cmd, "the key", argv[1])?,
        policy: api::bytes(argv[2]),
        plan: api::bytes(argv[3]),
        user: None,
        workspace: None,
        endpoint: "",
        authenticated: true,
        tokens: 0,
        money: 0,
        at: None,
        render: true,
    };
    let positional = &argv[4..4 + fixed];
    let mut seen: Vec<String> = Vec::new();
    let mut i = 4 + fixed;
    while i < argv.len() {
        let name = String::from_utf8_lossy(api::bytes(argv[i])).to_ascii_uppercase();
        let known = ["USER", "WORKSPACE", "ENDPOINT", "AUTH", "TOKENS", "COST", "AT", "RENDER"];
        if !known.contains(&name.as_str()) {
            return Err(CmdError::err(
                cmd,
                format!(
                    "unknown option {name:?}; options are USER, WORKSPACE, ENDPOINT, AUTH, TOKENS, COST, AT and RENDER"
                ),
            ));
        }
        if seen.contains(&name) {
            return Err(CmdError::err(cmd, format!("option {name} given twice")));
        }
        let Some(&value) = argv.get(i + 1) else {
            return Err(CmdError::err(cmd, format!("option {name} needs a value")));
        };
        match name.as_str() {
            "USER" => args.user = Some(identity(cmd, "USER", value)?),
            "WORKSPACE" => args.workspace = Some(identity(cmd, "WORKSPACE", value)?),
            "ENDPOINT" => args.endpoint = text(cmd, "ENDPOINT", value)?,
            "AUTH" => args.authenticated = flag(cmd, "AUTH", "1 (authenticated) or 0", value)?,
            "RENDER" => args.render = flag(cmd, "RENDER", "1 (headers and body) or 0", value)?,
            "TOKENS" => args.tokens = number(cmd, "TOKENS", value, u64::MAX)?,
            "COST" => args.money = number(cmd, "COST", value, u64::MAX)?,
            "AT" => args.at = Some(number(cmd, "AT (nanoseconds since the Unix epoch)", value, i64::MAX as u64)?),
            _ => unreachable!("every known option has an arm"),
        }
        seen.push(name);
        i += 2;
    }
    Ok((args, positional))
}

/// The positions of the identities in `argv`, for a keys position request:
/// as [`parse`] would find them, tolerating anything malformed.
pub fn key_positions(argv: &[RStr], fixed: usize) -> Vec<usize> {
    let mut out = vec![1];
    let mut i = 4 + fixed;
    while i + 1 < argv.len() {
        let name = api::bytes(argv[i]);
        if name.eq_ignore_ascii_case(b"USER") || name.eq_ignore_ascii_case(b"WORKSPACE") {
            out.push(i + 1);
        }
        i += 2;
    }
    out.retain(|&p| p < argv.len());
    out
}
