//! The axes of a sweep and its deterministic scenario list.
//!
//! A sweep is the product of its axes, outermost first: plans, each `--set`
//! axis (in the order given), scale factors, key multipliers, clients, and
//! seeds innermost. Scenario `i` is the mixed-radix decoding of `i` over
//! those axis lengths, so the list is the same on every machine and a shard
//! (`--shard K/N`: scenarios `i` with `i mod N = K − 1`) is known without
//! running anything. The seeds of one *point* (every axis but the seed)
//! are consecutive, so replication statistics close as soon as a point's
//! last seed is done.
//!
//! [`SweepDefinition`] is everything that determines the scenarios and
//! their results; it is recorded in each results file, and two parts merge
//! only if their definitions are equal.

use serde::{Deserialize, Serialize};

use crate::trace::scale::Factor;

/// Most values one axis may list (a range is expanded).
pub const MAX_AXIS_VALUES: usize = 100_000;

/// A file and the SHA-256 of its bytes (what `sha256sum` prints).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// The path as given.
    pub path: String,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
}

impl FileRef {
    /// Hashes the file at `path` (streaming).
    pub fn of(path: &std::path::Path) -> Result<FileRef, String> {
        use sha2::{Digest, Sha256};
        use std::io::Read;
        let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(FileRef { path: path.display().to_string(), sha256 })
    }
}

/// One `--set PLAN.LIMIT.FIELD=V1,V2,...` axis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAxis {
    /// `PLAN.LIMIT.FIELD`.
    pub target: String,
    /// The values, ranges expanded.
    pub values: Vec<String>,
}

impl SetAxis {
    /// Parses `PLAN.LIMIT.FIELD=LIST`: values separated by `,`; a value
    /// `A..B:STEP` (whole numbers, `B` included, `:STEP` default 1) expands
    /// to `A, A+STEP, …`; a `/PERIOD` after the range applies to each value
    /// (`400..600:100/min` is `400/min,500/min,600/min`).
    pub fn parse(text: &str) -> Result<SetAxis, String> {
        let (target, list) = text
            .split_once('=')
            .ok_or_else(|| format!("expected PLAN.LIMIT.FIELD=VALUE[,VALUE...], found {:?} (no `=`)", text.trim()))?;
        crate::policy::overrides::parse_target(target).map_err(|e| format!("{e}, found {:?}", text.trim()))?;
        let values = parse_list(list, expand_range)?;
        if values.is_empty() {
            return Err(format!("expected at least one value after `=`, found {:?}", text.trim()));
        }
        Ok(SetAxis { target: target.trim().to_string(), values })
    }
}

/// Splits a comma-separated list, expanding each item with `expand`.
fn parse_list(text: &str, expand: impl Fn(&str) -> Result<Vec<String>, String>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("empty value in the list {:?}", text.trim()));
        }
        out.extend(expand(item)?);
        if out.len() > MAX_AXIS_VALUES {
            return Err(format!("more than {MAX_AXIS_VALUES} values in {:?}", text.trim()));
        }
    }
    Ok(out)
}

/// `A..B[:STEP][/UNIT]` → its values; anything else is one value.
fn expand_range(item: &str) -> Result<Vec<String>, String> {
    let Some((from, rest)) = item.split_once("..") else { return Ok(vec![item.to_string()]) };
    let (rest, suffix) = match rest.split_once('/') {
        Some((r, unit)) => (r, format!("/{unit}")),
        None => (rest, String::new()),
    };
    let (to, step) = rest.split_once(':').unwrap_or((rest, "1"));
    let bad =
        || format!("expected a range of whole numbers A..B or A..B:STEP (e.g. 100000..600000:50000), found {item:?}");
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    let (from, to, step) = (num(from)?, num(to)?, num(step)?);
    if step == 0 || to < from {
        return Err(format!("{} (B must be at least A, and STEP at least 1)", bad()));
    }
    if (to - from) / step >= MAX_AXIS_VALUES as u64 {
        return Err(format!("the range {item:?} has more than {MAX_AXIS_VALUES} values"));
    }
    Ok((0..=(to - from) / step).map(|k| format!("{}{suffix}", from + k * step)).collect())
}

/// Parses `--seeds`: seeds or inclusive ranges `A..B`, comma-separated,
/// each seed once.
pub fn parse_seeds(text: &str) -> Result<Vec<u64>, String> {
    let items = parse_list(text, |item| match item.split_once("..") {
        None => Ok(vec![item.to_string()]),
        Some(_) if item.contains(':') || item.contains('/') => {
            Err(format!("expected a seed or a range of seeds such as 1..30, found {item:?}"))
        }
        Some(_) => expand_range(item),
    })?;
    let mut seeds = Vec::with_capacity(items.len());
    let mut seen = std::collections::HashSet::new();
    for s in items {
        let n: u64 =
            s.parse().map_err(|_| format!("expected a seed (a whole number from 0 to {}), found {s:?}", u64::MAX))?;
        if !seen.insert(n) {
            return Err(format!("seed {n} is listed twice; each seed is one replication"));
        }
        seeds.push(n);
    }
    Ok(seeds)
}

/// The seeds of `--seeds` (a list, see [`parse_seeds`]) or of
/// `--replications N` (`default` and the `N − 1` after it), else `default`.
pub fn seeds_from(seeds: Option<&str>, replications: Option<u64>, default: u64) -> Result<Vec<u64>, String> {
    match (seeds, replications) {
        (Some(s), _) => parse_seeds(s).map_err(|e| format!("--seeds: {e}")),
        (None, Some(0)) => Err("--replications: expected at least 1".into()),
        (None, Some(n)) => (0..n)
            .map(|k| default.checked_add(k))
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| "--replications: the seeds would pass 2^64; give --seeds instead".into()),
        (None, None) => Ok(vec![default]),
    }
}

/// Parses a comma-separated list of scale factors.
pub fn parse_scales(text: &str) -> Result<Vec<Factor>, String> {
    parse_list(text, |i| Ok(vec![i.to_string()]))?.iter().map(|s| Factor::parse(s)).collect()
}

/// Parses a comma-separated list of key multipliers (whole numbers ≥ 1).
pub fn parse_key_copies(text: &str) -> Result<Vec<u32>, String> {
    parse_list(text, expand_range)?
        .iter()
        .map(|s| {
            s.parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("expected a whole number of key copies, at least 1, found {s:?}"))
        })
        .collect()
}

/// Everything that determines a sweep's scenarios and their results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepDefinition {
    /// ratesim version that ran it.
    pub version: String,
    /// The policy's provider.
    pub provider: String,
    /// The policy file.
    pub policy: FileRef,
    /// The trace file or spec.
    pub trace: FileRef,
    /// Plans, in sweep order.
    pub plans: Vec<String>,
    /// `--set` axes, in the order given.
    pub set: Vec<SetAxis>,
    /// Scale factors (`--scale`).
    pub scale: Vec<String>,
    /// Key multipliers (`--scale-keys`).
    pub scale_keys: Vec<u32>,
    /// Shift window of recorded-trace copies (`--scale-window`), if given.
    pub scale_window: Option<String>,
    /// Client behaviours, as given.
    pub clients: Vec<String>,
    /// Seeds (replications), innermost.
    pub seeds: Vec<u64>,
    /// Virtual instant of trace offset 0 (RFC 3339).
    pub start: String,
    /// `--until`, if given.
    pub until: Option<String>,
    /// Time-series bucket width (for the peak attempts per bucket).
    pub bucket: String,
}

/// Where one scenario sits on every axis (indices into the definition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coordinates {
    /// Index of the plan.
    pub plan: usize,
    /// Index of each `--set` axis's value.
    pub set: Vec<usize>,
    /// Index of the combination of `--set` values (mixed radix, first axis outermost).
    pub combination: usize,
    /// Index of the scale factor.
    pub scale: usize,
    /// Index of the key multiplier.
    pub scale_keys: usize,
    /// Index of the client.
    pub client: usize,
    /// Index of the seed.
    pub seed: usize,
}

impl SweepDefinition {
    /// Combinations of `--set` values.
    pub fn combinations(&self) -> u64 {
        self.set.iter().map(|a| a.values.len() as u64).product()
    }

    /// Scenarios in all (`None` if the count overflows).
    pub fn scenarios(&self) -> Option<u64> {
        [
            self.plans.len() as u64,
            self.combinations(),
            self.scale.len() as u64,
            self.scale_keys.len() as u64,
            self.clients.len() as u64,
            self.seeds.len() as u64,
        ]
        .into_iter()
        .try_fold(1u64, |a, b| a.checked_mul(b))
    }

    /// Points: scenarios without the seed axis.
    pub fn points(&self) -> u64 {
        self.scenarios().unwrap_or(0) / self.seeds.len().max(1) as u64
    }

    /// The coordinates of scenario `index`.
    pub fn coordinates(&self, index: u64) -> Coordinates {
        let mut i = index;
        let mut take = |n: usize| {
            let n = n.max(1) as u64;
            let v = (i % n) as usize;
            i /= n;
            v
        };
        let seed = take(self.seeds.len());
        let client = take(self.clients.len());
        let scale_keys = take(self.scale_keys.len());
        let scale = take(self.scale.len());
        let mut set = vec![0; self.set.len()];
        for (k, axis) in self.set.iter().enumerate().rev() {
            set[k] = take(axis.values.len());
        }
        let plan = take(self.plans.len());
        let mut combination = 0;
        for (k, axis) in self.set.iter().enumerate() {
            combination = combination * axis.values.len() + set[k];
        }
        Coordinates { plan, set, combination, scale, scale_keys, client, seed }
    }

    /// The `--set` values of combination `c`, one per axis.
    pub fn combination_values(&self, mut c: usize) -> Vec<&str> {
        let mut out = vec![""; self.set.len()];
        for (k, axis) in self.set.iter().enumerate().rev() {
            out[k] = &axis.values[c % axis.values.len()];
            c /= axis.values.len();
        }
        out
    }
}

/// `--shard K/N`: the `K`-th of `N` parts (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This part, 1 to `count`.
    pub index: u64,
    /// Parts in all.
    pub count: u64,
}

impl Shard {
    /// Parses `K/N` (`1 ≤ K ≤ N`).
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("expected K/N with 1 <= K <= N, e.g. 3/16, found {:?}", text.trim());
        let (k, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let (index, count): (u64, u64) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether scenario `i` is in this part.
    pub fn contains(&self, i: u64) -> bool {
        i % self.count == self.index - 1
    }

    /// Scenarios of this part among `total`.
    pub fn len(&self, total: u64) -> u64 {
        (total + self.count - self.index) / self.count
    }

    /// Whether the part is empty.
    pub fn is_empty(&self, total: u64) -> bool {
        self.len(total) == 0
    }

    /// The `k`-th scenario of this part.
    pub fn scenario(&self, k: u64) -> u64 {
        k * self.count + self.index - 1
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        let a = SetAxis::parse("pro.rpm.rate=400..600:100/min,1000/min").unwrap();
        assert_eq!(a.target, "pro.rpm.rate");
        assert_eq!(a.values, ["400/min", "500/min", "600/min", "1000/min"]);
        let b = SetAxis::parse("aicredits.budget.limit=100000..600000:50000").unwrap();
        assert_eq!(b.values.len(), 11);
        assert_eq!(b.values.last().unwrap(), "600000");
        assert!(SetAxis::parse("pro.rpm.rate").is_err());
        assert!(SetAxis::parse("pro.rpm.rate=5..1").is_err());
        assert!(SetAxis::parse("pro.rpm.rate=1,,2").is_err());
        assert_eq!(parse_seeds("1..3,7").unwrap(), [1, 2, 3, 7]);
        assert!(parse_seeds("1,1").unwrap_err().contains("twice"));
        assert!(parse_seeds("-1").is_err());
        assert_eq!(parse_key_copies("1,10").unwrap(), [1, 10]);
    }

    #[test]
    fn coordinates_enumerate_the_product_seeds_innermost() {
        let d = SweepDefinition {
            version: "0".into(),
            provider: "P".into(),
            policy: FileRef { path: "p".into(), sha256: String::new() },
            trace: FileRef { path: "t".into(), sha256: String::new() },
            plans: vec!["a".into(), "b".into()],
            set: vec![
                SetAxis { target: "*.x.y".into(), values: vec!["1".into(), "2".into(), "3".into()] },
                SetAxis { target: "*.x.z".into(), values: vec!["4".into(), "5".into()] },
            ],
            scale: vec!["1".into()],
            scale_keys: vec![1],
            scale_window: None,
            clients: vec!["none".into()],
            seeds: vec![7, 8],
            start: String::new(),
            until: None,
            bucket: "1s".into(),
        };
        assert_eq!(d.scenarios(), Some(24));
        let c = d.coordinates(0);
        assert_eq!((c.plan, c.combination, c.seed), (0, 0, 0));
        let c = d.coordinates(1);
        assert_eq!((c.plan, c.combination, c.seed), (0, 0, 1));
        let c = d.coordinates(3);
        assert_eq!((c.set.clone(), c.combination, c.seed), (vec![0, 1], 1, 1));
        assert_eq!(d.combination_values(c.combination), ["1", "5"]);
        let c = d.coordinates(23);
        assert_eq!((c.plan, c.set, c.seed), (1, vec![2, 1], 1));
        let s = Shard::parse("2/3").unwrap();
        let part: Vec<u64> = (0..s.len(10)).map(|k| s.scenario(k)).collect();
        assert_eq!(part, [1, 4, 7]);
        assert!(part.iter().all(|&i| s.contains(i)));
        assert!(Shard::parse("0/3").is_err() && Shard::parse("4/3").is_err());
    }
}
