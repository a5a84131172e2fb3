//! What the commands read, resolved and checked before any long work: the
//! built-in default policy and trace, synthetic specs loaded once, seeds,
//! and the bound on how many rows a spec may produce unconfirmed.
//!
//! `ratesim run` defaults to `policies/runinfra.toml` and
//! `traces/steady-over.toml`, paths relative to the repository root. Both
//! files are also compiled into the binary: when a default path does not
//! exist (the command runs from another directory, or an installed binary
//! runs anywhere), the built-in copy is used and named as such
//! (`policies/runinfra.toml (built in)`). A file at the default path, as in
//! the repository, is always read from disk, so editing it takes effect.

use std::path::{Path, PathBuf};

use crate::policy::{self, Override, Policy, PolicyDocument};
use crate::report::group;
use crate::time::{format_duration, Nanos};
use crate::trace::scale::Scaling;
use crate::trace::synth::{self, Spec, MAX_ROWS_UNCONFIRMED};
use crate::trace::{self, TraceError, TraceSource};

/// `ratesim run`'s default policy file.
pub(super) const DEFAULT_POLICY: &str = "policies/runinfra.toml";
/// `ratesim run`'s default trace.
pub(super) const DEFAULT_TRACE: &str = "traces/steady-over.toml";

const BUILTIN_POLICY: &str = include_str!("../../policies/runinfra.toml");
const BUILTIN_TRACE: &str = include_str!("../../traces/steady-over.toml");

/// The built-in copy of a default input: its name and text, if `path` is
/// that default and no such file exists.
fn builtin(path: &Path, default: &str, text: &'static str) -> Option<(String, &'static str)> {
    (path == Path::new(default) && !path.exists()).then(|| (format!("{default} (built in)"), text))
}

/// The policy at `path` (or the built-in default) and the name to show for it.
pub(super) fn load_policy(path: &Path) -> Result<(Policy, String), policy::PolicyError> {
    match builtin(path, DEFAULT_POLICY, BUILTIN_POLICY) {
        Some((name, text)) => Ok((policy::parse(text, &name)?, name)),
        None => Ok((policy::load(path)?, path.display().to_string())),
    }
}

/// The policy at `path` (or the built-in default) with `overrides` applied
/// (`--set`), the effective document when there are any, and the name to
/// show for it.
pub(super) fn load_policy_with(
    path: &Path,
    overrides: &[Override],
) -> Result<(Policy, Option<PolicyDocument>, String), policy::PolicyError> {
    if overrides.is_empty() {
        let (policy, name) = load_policy(path)?;
        return Ok((policy, None, name));
    }
    let (document, name) = match builtin(path, DEFAULT_POLICY, BUILTIN_POLICY) {
        Some((name, text)) => (PolicyDocument::parse(text, &name)?, name),
        None => (PolicyDocument::load(path)?, path.display().to_string()),
    };
    let (policy, effective) = document.with_overrides(overrides)?;
    Ok((policy, Some(effective), name))
}

/// A trace argument: a recorded file, or a synthetic spec loaded and
/// validated once (from a file or built in).
pub(super) enum TraceInput {
    /// A `.csv` or `.jsonl` file (or a file with an unknown extension, which
    /// [`trace::open`] refuses), opened when needed.
    Recorded { path: PathBuf, scaling: Scaling },
    /// A synthetic spec and the name to show for it.
    Spec { spec: Box<Spec>, name: String, file: Option<PathBuf> },
}

impl TraceInput {
    /// Resolves `path`: loads and validates a spec now, so its errors come
    /// before any output is touched.
    pub(super) fn resolve(path: &Path) -> Result<TraceInput, TraceError> {
        if let Some((name, text)) = builtin(path, DEFAULT_TRACE, BUILTIN_TRACE) {
            let spec = synth::parse_spec(text, &name)?;
            return Ok(TraceInput::Spec { spec: Box::new(spec), name, file: None });
        }
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
            let spec = synth::load_spec(path)?;
            return Ok(TraceInput::Spec {
                spec: Box::new(spec),
                name: path.display().to_string(),
                file: Some(path.to_path_buf()),
            });
        }
        Ok(TraceInput::Recorded { path: path.to_path_buf(), scaling: Scaling::default() })
    }

    /// This trace at another offered load or over more keys (`--scale`,
    /// `--scale-keys`): a spec's arrival rates and key counts are scaled
    /// now (so [`check_rows`] sees the scaled spec), a recorded trace is
    /// thinned or superposed when opened (see [`crate::trace::scale`]).
    pub(super) fn scaled(self, scaling: Scaling) -> Result<TraceInput, TraceError> {
        match self {
            TraceInput::Recorded { path, .. } => Ok(TraceInput::Recorded { path, scaling }),
            TraceInput::Spec { spec, name, file } => {
                if scaling.is_identity() {
                    return Ok(TraceInput::Spec { spec, name, file });
                }
                let scaled = spec.scaled(scaling.factor).and_then(|s| s.with_key_copies(scaling.key_copies));
                match scaled {
                    Ok(s) => Ok(TraceInput::Spec { spec: Box::new(s), name, file }),
                    Err(message) => Err(TraceError { file: name, line: 0, column: 0, field: String::new(), message }),
                }
            }
        }
    }

    /// The name to show for the trace.
    pub(super) fn name(&self) -> String {
        match self {
            TraceInput::Recorded { path, .. } => path.display().to_string(),
            TraceInput::Spec { name, .. } => name.clone(),
        }
    }

    /// The file read, if any (a built-in spec has none).
    pub(super) fn file(&self) -> Option<&Path> {
        match self {
            TraceInput::Recorded { path, .. } => Some(path),
            TraceInput::Spec { file, .. } => file.as_deref(),
        }
    }

    /// The spec, for a synthetic trace.
    pub(super) fn spec(&self) -> Option<&Spec> {
        match self {
            TraceInput::Recorded { .. } => None,
            TraceInput::Spec { spec, .. } => Some(spec),
        }
    }

    /// The rows: a recorded file streamed, or the spec generated with `seed`.
    pub(super) fn open(&self, seed: u64) -> Result<Box<dyn TraceSource>, TraceError> {
        match self {
            TraceInput::Recorded { path, scaling } => trace::open_scaled(path, Some(seed), scaling, None),
            TraceInput::Spec { spec, .. } => Ok(Box::new(spec.generate(seed))),
        }
    }
}

/// Refuses a spec expected to produce more than [`MAX_ROWS_UNCONFIRMED`]
/// rows (up to `until`, if given) unless `allow_huge`. `remedy` says what
/// the command can do instead, e.g. "pass --until DURATION to simulate less
/// of it, or --allow-huge to run it all".
pub(super) fn check_rows(
    name: &str,
    spec: &Spec,
    until: Option<Nanos>,
    allow_huge: bool,
    remedy: &str,
) -> Result<(), String> {
    let rows = spec.expected_rows(until);
    if allow_huge || rows <= MAX_ROWS_UNCONFIRMED {
        return Ok(());
    }
    let span = match until {
        Some(u) if u < spec.horizon() => {
            format!("in the first {} of its {}", format_duration(u), format_duration(spec.horizon()))
        }
        _ => format!("over its horizon of {}", format_duration(spec.horizon())),
    };
    Err(format!(
        "{name}: this spec would produce about {} rows ({} client{} {span}); more than {} rows \
         (about ten minutes of simulation) needs a confirmation: {remedy}",
        approximate(rows),
        group(spec.clients()),
        if spec.clients() == 1 { "" } else { "s" },
        group(MAX_ROWS_UNCONFIRMED as u64),
    ))
}

/// A large count for people: `1,234,567,890`, or `3.2e21` beyond what
/// digit groups make readable.
fn approximate(n: f64) -> String {
    if n < 1e15 {
        group(n.round() as u64)
    } else {
        format!("{n:.1e}")
    }
}

/// Parses a `--seed` value: a whole number from 0 to 2^64 - 1. (Declared
/// with `allow_negative_numbers`, so `--seed -1` reaches this parser and is
/// told the range instead of being taken for an unknown option.)
pub(super) fn seed_value(text: &str) -> Result<u64, String> {
    text.trim().parse::<u64>().map_err(|_| format!("expected a seed, a whole number from 0 to {}", u64::MAX))
}
