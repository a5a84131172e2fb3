//! Parameter overrides: `--set PLAN.LIMIT.FIELD=VALUE` applied to a policy
//! document, then validated exactly as a file is.
//!
//! A capacity planner asks "what if Pro were 600/min with a burst of 100?"
//! without copying the policy file. An [`Override`] names a plan (or `*`,
//! every plan that has the limit), a limit id, a field and a value. It is
//! applied to the policy's TOML *document* (not to the validated [`Policy`]),
//! and the edited document goes through the same [`parse`](super::parse()) as
//! a file, so an override is checked by the same rules and refused with the
//! same message, naming the `--set` argument instead of a file position:
//!
//! ```text
//! --set pro.rpm.burst=0: plan "pro" > limit "rpm" > burst: expected a burst (in cost units; at least one request) of at least 1, found 0
//! ```
//!
//! # Semantics (what an edit of the file would do)
//!
//! - **Any field** of a limit except `id` may be set, including fields
//!   added to the format later: the value is read as a TOML literal (`100`,
//!   `1.5`, `true`, `"measured"`), and anything that is not one is a string
//!   (`600/min`, `1min`, `measured`). Unknown fields are refused by the
//!   parser, as in a file.
//! - **`rate` against `limit` + `period`.** Setting `limit` or `period` on a
//!   rate-like limit written as `rate = "C/P"` first rewrites it as
//!   `limit = C`, `period = "P"`; setting `rate` on one written with `limit`
//!   and `period` removes those two. (A budget's `limit` is its amount and a
//!   concurrency limit's `limit` its maximum: they are set as written.)
//! - **Inheritance.** An override of a plan edits that plan's own table. A
//!   limit the plan inherits through `extends` is first copied into it (as
//!   you would write it by hand: a limit with the same `id` replaces the
//!   inherited one in place). Plans that `extends` an edited plan inherit
//!   the edit, unless they replace that limit themselves, exactly as they
//!   would if the file were edited.
//! - **`*`** edits every plan that has the limit: those that define it, and
//!   those that inherit it from a plan that is not itself edited.
//! - Overrides apply in the order given; a later one on the same field wins.
//!
//! A plan name may contain dots (the limit id and the field are the last two
//! dot-separated parts); a limit id may not.

use std::path::Path;

use toml::{Table, Value};

use super::{parse, Policy, PolicyError};
use crate::time::{format_duration, Rate};

/// Which plans an override edits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanSelector {
    /// The plan of this name.
    Named(String),
    /// Every plan that has the limit (`*`).
    All,
}

/// One `PLAN.LIMIT.FIELD=VALUE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// The argument as given (trimmed), to name it in errors.
    pub text: String,
    /// The plan (or `*`).
    pub plan: PlanSelector,
    /// The limit id.
    pub limit: String,
    /// The field of the limit.
    pub field: String,
    /// The value as written.
    pub value: String,
}

const FORM: &str = "PLAN.LIMIT.FIELD=VALUE, e.g. pro.rpm.rate=600/min or *.rpm.burst=100";

impl Override {
    /// Parses `PLAN.LIMIT.FIELD=VALUE`.
    pub fn parse(text: &str) -> Result<Override, String> {
        let text = text.trim();
        let (target, value) =
            text.split_once('=').ok_or_else(|| format!("expected {FORM}, found {text:?} (no `=`)"))?;
        let (plan, limit, field) = parse_target(target).map_err(|e| format!("{e}, found {text:?}"))?;
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("expected {FORM}, found {text:?} (no value after `=`)"));
        }
        Ok(Override {
            text: format!("{target}={value}", target = target.trim()),
            plan,
            limit,
            field,
            value: value.into(),
        })
    }

    /// `PLAN.LIMIT.FIELD` as written.
    pub fn target(&self) -> &str {
        self.text.split_once('=').map_or(&self.text, |(t, _)| t)
    }
}

/// Splits `PLAN.LIMIT.FIELD` (the plan may contain dots).
pub fn parse_target(target: &str) -> Result<(PlanSelector, String, String), String> {
    let target = target.trim();
    let mut parts = target.rsplitn(3, '.');
    let field = parts.next().unwrap_or("").trim();
    let limit = parts.next().unwrap_or("").trim();
    let plan = parts.next().unwrap_or("").trim();
    if plan.is_empty() || limit.is_empty() || field.is_empty() {
        return Err(format!("expected {FORM}"));
    }
    if field == "id" {
        return Err("the `id` of a limit names it and cannot be overridden".into());
    }
    let plan = if plan == "*" { PlanSelector::All } else { PlanSelector::Named(plan.to_string()) };
    Ok((plan, limit.to_string(), field.to_string()))
}

/// A policy file as a TOML document, to which overrides are applied.
///
/// Built only from a document that validates, so every error after an
/// override is the override's.
#[derive(Clone, Debug)]
pub struct PolicyDocument {
    file: String,
    doc: Table,
}

impl PolicyDocument {
    /// Reads and validates the policy file at `path`.
    pub fn load(path: &Path) -> Result<PolicyDocument, PolicyError> {
        super::load(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot read the policy file: {e}"),
        })?;
        PolicyDocument::parse(&text, &path.display().to_string())
    }

    /// Validates policy TOML `text` (`file` names it in errors).
    pub fn parse(text: &str, file: &str) -> Result<PolicyDocument, PolicyError> {
        parse(text, file)?;
        let doc: Table = toml::from_str(text).map_err(|e| PolicyError {
            file: file.to_string(),
            line: 0,
            column: 0,
            field: String::new(),
            message: e.message().to_string(),
        })?;
        Ok(PolicyDocument { file: file.to_string(), doc })
    }

    /// The plan names in file order.
    pub fn plan_names(&self) -> Vec<String> {
        self.plans().iter().filter_map(|p| p.get("name").and_then(Value::as_str)).map(str::to_string).collect()
    }

    /// The policy with `overrides` applied, validated as a file is. The
    /// error of an override that makes the policy invalid names it
    /// (`--set ARG`) in place of a file position.
    pub fn with_overrides(&self, overrides: &[Override]) -> Result<(Policy, PolicyDocument), PolicyError> {
        let mut edited = self.clone();
        for o in overrides {
            edited.apply(o).map_err(|message| override_error(o, String::new(), message))?;
        }
        match edited.validate() {
            Ok(policy) => Ok((policy, edited)),
            Err(e) => {
                // Name the first override after which the document fails.
                let mut prefix = self.clone();
                for o in overrides {
                    prefix.apply(o).map_err(|message| override_error(o, String::new(), message))?;
                    if let Err(e) = prefix.validate() {
                        return Err(override_error(o, e.field, e.message));
                    }
                }
                let last = overrides.last().expect("the unedited document validates");
                Err(override_error(last, e.field, e.message))
            }
        }
    }

    /// Validates the document.
    fn validate(&self) -> Result<Policy, PolicyError> {
        let text = toml::to_string(&self.doc).map_err(|e| PolicyError {
            file: self.file.clone(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot write the edited policy: {e}"),
        })?;
        parse(&text, &self.file)
    }

    /// The limits `plan` has, inheritance resolved, as the document writes
    /// them (JSON objects): what a run of that plan enforces.
    pub fn effective_limits(&self, plan: &str) -> Vec<serde_json::Value> {
        self.resolved_limits(plan, 0)
            .into_iter()
            .map(|t| serde_json::to_value(&t).unwrap_or(serde_json::Value::Null))
            .collect()
    }

    fn plans(&self) -> &[Value] {
        self.doc.get("plan").and_then(Value::as_array).map_or(&[], Vec::as_slice)
    }

    fn plan_index(&self, name: &str) -> Option<usize> {
        self.plans().iter().position(|p| p.get("name").and_then(Value::as_str) == Some(name))
    }

    fn own_limits(&self, plan: usize) -> &[Value] {
        self.plans()[plan].get("limit").and_then(Value::as_array).map_or(&[], Vec::as_slice)
    }

    /// The plan's limits with `extends` resolved (depth-guarded: a valid
    /// document only extends earlier plans).
    fn resolved_limits(&self, plan: &str, depth: usize) -> Vec<Table> {
        let Some(i) = self.plan_index(plan) else { return Vec::new() };
        let mut limits = match self.plans()[i].get("extends").and_then(Value::as_str) {
            Some(base) if depth < self.plans().len() => self.resolved_limits(base, depth + 1),
            _ => Vec::new(),
        };
        for l in self.own_limits(i).iter().filter_map(Value::as_table) {
            match limits.iter_mut().find(|x| x.get("id") == l.get("id")) {
                Some(slot) => *slot = l.clone(),
                None => limits.push(l.clone()),
            }
        }
        limits
    }

    /// Applies one override to the document (structure only: the value is
    /// checked when the document is validated).
    fn apply(&mut self, o: &Override) -> Result<(), String> {
        let names = self.plan_names();
        let has = |doc: &PolicyDocument, plan: &str| {
            doc.resolved_limits(plan, 0).iter().any(|l| l.get("id").and_then(Value::as_str) == Some(&o.limit))
        };
        let targets: Vec<String> = match &o.plan {
            PlanSelector::Named(p) => {
                if !names.contains(p) {
                    return Err(format!("no plan named {p:?} in {}; its plans are: {}", self.file, names.join(", ")));
                }
                if !has(self, p) {
                    let ids: Vec<String> = self
                        .resolved_limits(p, 0)
                        .iter()
                        .filter_map(|l| l.get("id").and_then(Value::as_str).map(str::to_string))
                        .collect();
                    return Err(format!("plan {p:?} has no limit {:?}; its limits are: {}", o.limit, ids.join(", ")));
                }
                vec![p.clone()]
            }
            PlanSelector::All => {
                let with: Vec<String> = names.iter().filter(|p| has(self, p)).cloned().collect();
                if with.is_empty() {
                    return Err(format!("no plan of {} has a limit {:?}", self.file, o.limit));
                }
                // A plan that inherits the limit from an edited plan gets the edit.
                with.iter()
                    .filter(|p| self.defines(p, &o.limit) || !self.inherits_from_any(p, &o.limit, &with))
                    .cloned()
                    .collect()
            }
        };
        let value = literal(&o.value);
        for plan in targets {
            let limit = self.own_limit_mut(&plan, &o.limit);
            set_field(limit, &o.field, value.clone());
        }
        Ok(())
    }

    fn defines(&self, plan: &str, limit: &str) -> bool {
        self.plan_index(plan)
            .is_some_and(|i| self.own_limits(i).iter().any(|l| l.get("id").and_then(Value::as_str) == Some(limit)))
    }

    /// Whether `plan` inherits `limit` from one of `edited` (through its
    /// `extends` chain, up to the plan that defines it).
    fn inherits_from_any(&self, plan: &str, limit: &str, edited: &[String]) -> bool {
        let mut current = plan.to_string();
        for _ in 0..self.plans().len() {
            let Some(i) = self.plan_index(&current) else { return false };
            let Some(base) = self.plans()[i].get("extends").and_then(Value::as_str) else { return false };
            if edited.iter().any(|e| e == base) {
                return true;
            }
            if self.defines(base, limit) {
                return false;
            }
            current = base.to_string();
        }
        false
    }

    /// The plan's own table of `limit`, copied from the plan it inherits
    /// it from if it has none yet.
    fn own_limit_mut(&mut self, plan: &str, limit: &str) -> &mut Table {
        let i = self.plan_index(plan).expect("checked");
        if !self.defines(plan, limit) {
            let inherited = self
                .resolved_limits(plan, 0)
                .into_iter()
                .find(|l| l.get("id").and_then(Value::as_str) == Some(limit))
                .expect("checked");
            let table = self.doc.get_mut("plan").and_then(Value::as_array_mut).expect("plans")[i]
                .as_table_mut()
                .expect("a plan is a table");
            table
                .entry("limit")
                .or_insert_with(|| Value::Array(Vec::new()))
                .as_array_mut()
                .expect("limits are an array")
                .push(Value::Table(inherited));
        }
        self.doc.get_mut("plan").and_then(Value::as_array_mut).expect("plans")[i]
            .get_mut("limit")
            .and_then(Value::as_array_mut)
            .expect("limits")
            .iter_mut()
            .filter_map(Value::as_table_mut)
            .find(|l| l.get("id").and_then(Value::as_str) == Some(limit))
            .expect("defined")
    }
}

/// The error of an override: the parser's field and message, located at
/// the `--set` argument.
fn override_error(o: &Override, field: String, message: String) -> PolicyError {
    PolicyError { file: format!("--set {}", o.text), line: 0, column: 0, field, message }
}

/// A value as a TOML literal if it is one (`100`, `1.5`, `true`,
/// `"quoted"`), else the text as a string (`600/min`, `1min`).
fn literal(text: &str) -> Value {
    match toml::from_str::<Table>(&format!("v = {text}")) {
        Ok(mut t) => match t.remove("v") {
            Some(Value::Datetime(_)) | None => Value::String(text.to_string()),
            Some(v) => v,
        },
        Err(_) => Value::String(text.to_string()),
    }
}

/// Sets `field` of a limit table, keeping `rate` and `limit` + `period`
/// from being given together (see the module docs).
fn set_field(limit: &mut Table, field: &str, value: Value) {
    let algorithm = limit.get("algorithm").and_then(Value::as_str).unwrap_or("");
    let rate_like = !matches!(algorithm, "budget" | "concurrency");
    if rate_like && matches!(field, "limit" | "period") {
        if let Some(rate) = limit.get("rate").and_then(Value::as_str).and_then(|r| Rate::parse(r).ok()) {
            limit.remove("rate");
            limit.insert("limit".into(), Value::Integer(rate.count().min(i64::MAX as u64) as i64));
            limit.insert("period".into(), Value::String(format_duration(rate.period())));
        }
    }
    if rate_like && field == "rate" && limit.contains_key("limit") && limit.contains_key("period") {
        limit.remove("limit");
        limit.remove("period");
    }
    limit.insert(field.to_string(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
provider = "Example"
[[plan]]
name = "free"
[[plan.limit]]
id = "rpm"
algorithm = "gcra"
rate = "60/min"
burst = 10
[[plan]]
name = "pro"
extends = "free"
[[plan.limit]]
id = "day"
algorithm = "fixed-window"
limit = 1000
period = "1day"
"#;

    fn doc() -> PolicyDocument {
        PolicyDocument::parse(POLICY, "p.toml").unwrap()
    }

    fn set(args: &[&str]) -> Result<Policy, PolicyError> {
        let overrides: Vec<Override> = args.iter().map(|a| Override::parse(a).unwrap()).collect();
        doc().with_overrides(&overrides).map(|(p, _)| p)
    }

    #[test]
    fn parses_targets() {
        let o = Override::parse(" my.plan.rpm.rate = 600/min ").unwrap();
        assert_eq!(o.plan, PlanSelector::Named("my.plan".into()));
        assert_eq!((o.limit.as_str(), o.field.as_str(), o.value.as_str()), ("rpm", "rate", "600/min"));
        assert_eq!(o.text, "my.plan.rpm.rate=600/min");
        assert_eq!(Override::parse("*.rpm.burst=5").unwrap().plan, PlanSelector::All);
        for bad in ["rpm.rate=1/s", "pro.rpm.rate", "pro.rpm.rate=", "pro.rpm.id=x", ".rpm.rate=1/s"] {
            assert!(Override::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_inherited_limit_is_copied_into_the_plan() {
        let p = set(&["pro.rpm.burst=20"]).unwrap();
        assert_eq!(p.plan("pro").unwrap().limits[0].engine.capacity(), 20);
        assert_eq!(p.plan("pro").unwrap().limits[0].id, "rpm", "replaced in place, order kept");
        assert_eq!(p.plan("free").unwrap().limits[0].engine.capacity(), 10, "the base plan is unchanged");
        // Editing the base plan is inherited, as an edit of the file would be.
        let p = set(&["free.rpm.burst=30"]).unwrap();
        assert_eq!(p.plan("pro").unwrap().limits[0].engine.capacity(), 30);
        let p = set(&["*.rpm.burst=40"]).unwrap();
        assert_eq!(p.plan("free").unwrap().limits[0].engine.capacity(), 40);
        assert_eq!(p.plan("pro").unwrap().limits[0].engine.capacity(), 40);
    }

    #[test]
    fn limit_and_period_replace_a_rate() {
        let p = set(&["free.rpm.limit=120"]).unwrap();
        let l = &p.plan("free").unwrap().limits[0];
        assert_eq!(
            l.engine,
            crate::engines::Engine::Gcra(
                crate::engines::Gcra::new(Rate::new(120, 60_000_000_000).unwrap(), 10).unwrap()
            )
        );
        let p = set(&["pro.day.rate=10/h"]).unwrap();
        assert_eq!(p.plan("pro").unwrap().limits[1].engine.capacity(), 10);
    }

    #[test]
    fn errors_name_the_argument_and_say_what_the_file_would() {
        let e = set(&["free.rpm.burst=0"]).unwrap_err().to_string();
        assert_eq!(
            e,
            "--set free.rpm.burst=0: plan \"free\" > limit \"rpm\" > burst: expected a burst (in cost units; at least one request) of at least 1, found 0"
        );
        let e = set(&["free.rpm.rate=100/fortnight"]).unwrap_err().to_string();
        assert!(
            e.starts_with("--set free.rpm.rate=100/fortnight: plan \"free\" > limit \"rpm\" > rate: expected a rate"),
            "{e}"
        );
        let e = set(&["gold.rpm.rate=1/s"]).unwrap_err().to_string();
        assert!(e.contains("no plan named \"gold\"") && e.contains("free, pro"), "{e}");
        let e = set(&["free.day.limit=5"]).unwrap_err().to_string();
        assert!(e.contains("plan \"free\" has no limit \"day\"; its limits are: rpm"), "{e}");
        let e = set(&["free.rpm.bogus=5"]).unwrap_err().to_string();
        assert!(e.starts_with("--set free.rpm.bogus=5: ") && e.contains("bogus"), "{e}");
        // The second override is the one that breaks the plan.
        let e = set(&["free.rpm.burst=20", "free.rpm.cost=30"]).unwrap_err().to_string();
        assert!(e.starts_with("--set free.rpm.cost=30: ") && e.contains("could never fit"), "{e}");
    }
}
