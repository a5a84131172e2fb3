//! Shards put back together: `ratesim sweep merge part-*/ --out all`.
//!
//! Each part's `results.json` records the sweep's definition (axes,
//! policy and trace with their SHA-256, version), its column layout and
//! its shard. [`read_parts`] refuses parts of different sweeps (naming the
//! first field that differs), parts cut short or interrupted, and a set of
//! shards with one missing or given twice; it returns the scenarios in
//! sweep order, which then go through the same writers as an unsharded
//! sweep, so the merged files are identical byte for byte to the files of
//! the sweep run in one piece.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::axes::{Shard, SweepDefinition};
use super::results::{ColumnLayout, ResultsFile, ScenarioResult};

/// The sweep the parts make up.
#[derive(Debug)]
pub struct Merged {
    /// The sweep's definition.
    pub definition: SweepDefinition,
    /// Its column layout.
    pub columns: ColumnLayout,
    /// Every scenario, in sweep order.
    pub scenarios: Vec<ScenarioResult>,
}

/// The results file of a part: `DIR/results.json` for a directory.
fn results_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("results.json")
    } else {
        p.to_path_buf()
    }
}

/// Reads and checks the parts (see the module docs).
pub fn read_parts(parts: &[PathBuf]) -> Result<Merged, String> {
    if parts.is_empty() {
        return Err("expected the parts to merge: their directories (or results.json files)".into());
    }
    let mut read: Vec<(String, ResultsFile)> = Vec::new();
    for p in parts {
        let path = results_path(p);
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {name}: {e}"))?;
        let file: ResultsFile = serde_json::from_str(&text)
            .map_err(|e| format!("{name}: not a complete ratesim sweep results file ({e}); was the part cut short?"))?;
        if !file.complete {
            return Err(format!(
                "{name}: shard {} was interrupted after {} scenarios; run it again",
                file.shard.map_or("1/1".into(), |s| s.to_string()),
                file.scenarios.len()
            ));
        }
        read.push((name, file));
    }
    let (first_name, first) = &read[0];
    for (name, f) in &read[1..] {
        if f.sweep != first.sweep {
            return Err(format!(
                "{name} is not a part of the same sweep as {first_name}: {}",
                difference(&first.sweep, &f.sweep)
            ));
        }
        if f.columns != first.columns {
            return Err(format!("{name} is not a part of the same sweep as {first_name}: their columns differ"));
        }
    }
    let count = first.shard.map_or(1, |s| s.count);
    let mut by_index: Vec<Option<usize>> = vec![None; count as usize];
    for (i, (name, f)) in read.iter().enumerate() {
        let shard = f.shard.unwrap_or(Shard { index: 1, count: 1 });
        if shard.count != count {
            return Err(format!(
                "{name} is shard {shard} but {first_name} is shard {}: parts of one split have the same N",
                first.shard.unwrap_or(Shard { index: 1, count: 1 })
            ));
        }
        let slot = &mut by_index[shard.index as usize - 1];
        if let Some(other) = slot {
            return Err(format!("shard {shard} is given twice: {} and {name}", read[*other].0));
        }
        *slot = Some(i);
    }
    let missing: Vec<String> =
        by_index.iter().enumerate().filter(|(_, s)| s.is_none()).map(|(k, _)| format!("{}/{count}", k + 1)).collect();
    if !missing.is_empty() {
        let have: Vec<String> = read.iter().filter_map(|(_, f)| f.shard.map(|s| s.to_string())).collect();
        return Err(format!(
            "missing shard{} {} (given: {}); every part of the split is needed",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            have.join(", ")
        ));
    }
    let total = first.sweep.scenarios().ok_or("the sweep has more scenarios than can be counted")?;
    for (name, f) in &read {
        let shard = f.shard.unwrap_or(Shard { index: 1, count: 1 });
        if f.scenarios.len() as u64 != shard.len(total) {
            return Err(format!(
                "{name}: shard {shard} of {total} scenarios should hold {}, found {}",
                shard.len(total),
                f.scenarios.len()
            ));
        }
        if let Some((k, r)) = f.scenarios.iter().enumerate().find(|(k, r)| r.index != shard.scenario(*k as u64)) {
            return Err(format!(
                "{name}: its scenario number {} is scenario {} of the sweep, which is not the {}-th of shard {shard}",
                k + 1,
                r.index,
                k + 1
            ));
        }
    }
    let definition = first.sweep.clone();
    let columns = first.columns.clone();
    let mut iters: Vec<_> =
        by_index.into_iter().map(|i| std::mem::take(&mut read[i.expect("checked")].1.scenarios).into_iter()).collect();
    let mut scenarios = Vec::with_capacity(total as usize);
    for i in 0..total {
        scenarios.push(iters[(i % count) as usize].next().expect("counted"));
    }
    Ok(Merged { definition, columns, scenarios })
}

/// The first field in which two definitions differ, for the error.
fn difference(a: &SweepDefinition, b: &SweepDefinition) -> String {
    let (va, vb) = (serde_json::to_value(a).unwrap_or(Value::Null), serde_json::to_value(b).unwrap_or(Value::Null));
    if let (Value::Object(oa), Value::Object(ob)) = (&va, &vb) {
        for (k, x) in oa {
            let y = ob.get(k).unwrap_or(&Value::Null);
            if x != y {
                let short = |v: &Value| {
                    let s = v.to_string();
                    if s.chars().count() > 80 {
                        format!("{}…", s.chars().take(80).collect::<String>())
                    } else {
                        s
                    }
                };
                return format!("their `{k}` differ ({} vs {})", short(x), short(y));
            }
        }
    }
    "their definitions differ".into()
}
