//! Parsing: spec TOML to raw serde structs (with spans), then validated
//! into a [`Spec`] with located [`TraceError`]s.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{Arrival, Dist, Job, Population, Spec, Workspaces, MAX_CLIENTS};
use crate::time::{parse_duration, Nanos, Rate, HOUR, MAX_DURATION, SECOND};
use crate::toml_input;
use crate::trace::{TraceError, MAX_AMOUNT};

/// Reads and validates the spec file at `path` (UTF-8, at most
/// [`MAX_TOML_BYTES`](crate::toml_input::MAX_TOML_BYTES)).
pub fn load_spec(path: &Path) -> Result<Spec, TraceError> {
    let file = path.display().to_string();
    let text = toml_input::read(path, "synthetic trace spec").map_err(|e| TraceError {
        file: file.clone(),
        line: e.line as u64,
        column: e.column as u64,
        field: String::new(),
        message: e.message,
    })?;
    parse_spec(&text, &file)
}

/// Validates spec TOML `text`; `file` names it in errors.
pub fn parse_spec(text: &str, file: &str) -> Result<Spec, TraceError> {
    let cx = Cx { text, file };
    let raw: RawSpec = toml::from_str(text).map_err(|e| {
        let (offset, field, message) = toml_input::serde_error(text, &e);
        cx.err(offset, &field, message)
    })?;
    cx.spec(raw)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    horizon: Option<Spanned<String>>,
    seed: Option<Spanned<i64>>,
    description: Option<String>,
    #[serde(default)]
    population: Vec<Spanned<RawPopulation>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPopulation {
    name: Option<Spanned<String>>,
    description: Option<String>,
    clients: Option<Spanned<i64>>,
    prefix: Option<Spanned<String>>,
    start: Option<Spanned<String>>,
    end: Option<Spanned<String>>,
    keys: Option<Spanned<String>>,
    shared_keys: Option<Spanned<i64>>,
    users: Option<Spanned<i64>>,
    workspaces: Option<Spanned<i64>>,
    users_per_workspace: Option<Spanned<i64>>,
    arrival: Option<Spanned<RawArrival>>,
    endpoint: Option<Spanned<String>>,
    endpoints: Option<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    auth: Option<bool>,
    batch: Option<Spanned<i64>>,
    tokens: Option<Spanned<RawDist>>,
    cost: Option<Spanned<RawDist>>,
    duration: Option<Spanned<RawDist>>,
    job: Option<Spanned<RawJob>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArrival {
    kind: Option<Spanned<String>>,
    rate: Option<Spanned<String>>,
    phase: Option<Spanned<String>>,
    on: Option<Spanned<String>>,
    off: Option<Spanned<String>>,
    durations: Option<Spanned<String>>,
    peak_ratio: Option<Spanned<toml::Value>>,
    period: Option<Spanned<String>>,
    peak_at: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    over: Option<Spanned<String>>,
    at: Option<Spanned<String>>,
    peak: Option<Spanned<String>>,
    decay: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDist {
    dist: Option<Spanned<String>>,
    value: Option<Spanned<toml::Value>>,
    mean: Option<Spanned<toml::Value>>,
    median: Option<Spanned<toml::Value>>,
    mu: Option<Spanned<toml::Value>>,
    sigma: Option<Spanned<toml::Value>>,
    min: Option<Spanned<toml::Value>>,
    max: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    mode: Option<Spanned<String>>,
    poll_every: Option<Spanned<String>>,
    poll_endpoint: Option<Spanned<String>>,
}

/// Parsing context: the text (for line numbers) and the file name.
struct Cx<'a> {
    text: &'a str,
    file: &'a str,
}

/// What a distribution measures, for units and messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Tokens,
    Cost,
    Seconds,
}

type Res<T> = Result<T, TraceError>;

impl Cx<'_> {
    fn err(&self, offset: usize, field: &str, message: impl Into<String>) -> TraceError {
        let (line, column) = toml_input::line_column(self.text, offset);
        TraceError {
            file: self.file.to_string(),
            line: line as u64,
            column: column as u64,
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn at<T>(&self, v: &Spanned<T>, field: &str, message: impl Into<String>) -> TraceError {
        self.err(v.span().start, field, message)
    }

    fn duration(&self, v: &Spanned<String>, field: &str) -> Res<Nanos> {
        parse_duration(v.get_ref()).map_err(|e| self.at(v, field, e))
    }

    fn positive_duration(&self, v: &Spanned<String>, field: &str) -> Res<Nanos> {
        let d = self.duration(v, field)?;
        if d == 0 {
            return Err(self.at(v, field, format!("expected a duration longer than zero, found {:?}", v.get_ref())));
        }
        Ok(d)
    }

    /// A rate in requests per nanosecond; `"0/s"` only if `allow_zero`.
    fn rate(&self, v: &Spanned<String>, field: &str, allow_zero: bool) -> Res<f64> {
        let text = v.get_ref();
        if allow_zero {
            if let Some((count, unit)) = text.split_once('/') {
                if count.trim() == "0" {
                    // Check the unit with a count of one.
                    let one = format!("1/{unit}");
                    Rate::parse(&one).map_err(|e| {
                        self.at(v, field, e.replace(&format!("found {one:?}"), &format!("found {text:?}")))
                    })?;
                    return Ok(0.0);
                }
            }
        }
        let rate = self.exact_rate(v, field)?;
        Ok(rate.count() as f64 / rate.period() as f64)
    }

    fn exact_rate(&self, v: &Spanned<String>, field: &str) -> Res<Rate> {
        Rate::parse(v.get_ref()).map_err(|e| self.at(v, field, e))
    }

    /// A whole number in `min..=max`.
    fn count(&self, v: &Spanned<i64>, field: &str, min: i64, max: i64, what: &str) -> Res<u64> {
        let n = *v.get_ref();
        if n < min || n > max {
            return Err(self.at(v, field, format!("expected {what} from {min} to {max}, found {n}")));
        }
        Ok(n as u64)
    }

    /// A finite number (integer or float).
    fn number(&self, v: &Spanned<toml::Value>, field: &str) -> Res<f64> {
        let x = match v.get_ref() {
            toml::Value::Integer(i) => *i as f64,
            toml::Value::Float(f) => *f,
            other => return Err(self.at(v, field, format!("expected a number, found {}", other.type_str()))),
        };
        if !x.is_finite() {
            return Err(self.at(v, field, format!("expected a finite number, found {x}")));
        }
        Ok(x)
    }

    fn non_negative(&self, v: &Spanned<toml::Value>, field: &str) -> Res<f64> {
        let x = self.number(v, field)?;
        if x < 0.0 {
            return Err(self.at(v, field, format!("expected a number of at least 0, found {x}")));
        }
        Ok(x)
    }

    fn spec(&self, raw: RawSpec) -> Res<Spec> {
        let horizon = match &raw.horizon {
            Some(h) => self.positive_duration(h, "horizon")?,
            None => {
                return Err(self.err(
                    0,
                    "horizon",
                    "missing field `horizon`: the trace length, e.g. `horizon = \"1h\"`",
                ))
            }
        };
        let seed = match &raw.seed {
            Some(s) => Some(self.count(s, "seed", 0, i64::MAX, "a seed")?),
            None => None,
        };
        if raw.population.is_empty() {
            return Err(self.err(
                self.text.len(),
                "population",
                "expected at least one [[population]] with `name`, `clients` and `arrival`",
            ));
        }
        let mut populations: Vec<Population> = Vec::new();
        let mut total: u64 = 0;
        for (i, rp) in raw.population.into_iter().enumerate() {
            // The error points at the `clients` that goes over the limit.
            let at = rp.get_ref().clients.as_ref().map_or(rp.span().start, |c| c.span().start);
            let pop = self.population(rp, i, horizon, &populations)?;
            total += pop.clients as u64;
            if total > MAX_CLIENTS {
                return Err(self.err(
                    at,
                    "population > clients",
                    format!("at most {MAX_CLIENTS} clients in one spec, found {total} so far"),
                ));
            }
            populations.push(pop);
        }
        Ok(Spec { horizon, seed, description: raw.description, populations })
    }

    fn population(
        &self,
        rp: Spanned<RawPopulation>,
        index: usize,
        horizon: Nanos,
        earlier: &[Population],
    ) -> Res<Population> {
        let start_at = rp.span().start;
        let rp = rp.into_inner();
        let name = match &rp.name {
            Some(n) => {
                let name = n.get_ref().trim().to_string();
                if name.is_empty() {
                    return Err(self.at(n, "population > name", "expected a population name, found an empty string"));
                }
                if earlier.iter().any(|p| p.name == name) {
                    return Err(self.at(
                        n,
                        "population > name",
                        format!("duplicate population name {name:?}: each needs its own name"),
                    ));
                }
                name
            }
            None => {
                return Err(self.err(
                    start_at,
                    "population > name",
                    format!("missing field `name` in population #{}", index + 1),
                ))
            }
        };
        let ctx = format!("population {name:?}");
        let f = |k: &str| format!("{ctx} > {k}");
        let missing = |k: &str, what: &str| self.err(start_at, &f(k), format!("missing field `{k}`: {what}"));

        let clients = match &rp.clients {
            Some(c) => self.count(c, &f("clients"), 1, u32::MAX as i64, "a number of clients")? as u32,
            None => return Err(missing("clients", "the number of clients, e.g. `clients = 10`")),
        };
        let prefix = match &rp.prefix {
            Some(p) if p.get_ref().trim().is_empty() => {
                return Err(self.at(p, &f("prefix"), "expected a non-empty name prefix"))
            }
            Some(p) => p.get_ref().trim().to_string(),
            None => name.clone(),
        };
        let start = match &rp.start {
            Some(s) => self.duration(s, &f("start"))?,
            None => 0,
        };
        let end = match &rp.end {
            Some(e) => {
                let end = self.duration(e, &f("end"))?;
                if end > horizon {
                    return Err(self.at(
                        e,
                        &f("end"),
                        format!(
                            "expected an end no later than the horizon ({}), found {:?}",
                            crate::time::format_duration(horizon),
                            e.get_ref()
                        ),
                    ));
                }
                end
            }
            None => horizon,
        };
        if start >= end {
            let at = rp.start.as_ref().map_or(start_at, |s| s.span().start);
            return Err(self.err(
                at,
                &f("start"),
                format!(
                    "expected a start before the population's end ({}), found {}",
                    crate::time::format_duration(end),
                    crate::time::format_duration(start)
                ),
            ));
        }

        // Identities.
        let shared_keys = match (&rp.keys, &rp.shared_keys) {
            (None, None) => None,
            (Some(k), sk) => match k.get_ref().as_str() {
                "per-client" => {
                    if let Some(sk) = sk {
                        return Err(self.at(sk, &f("shared_keys"), "`shared_keys` needs `keys = \"shared\"`"));
                    }
                    None
                }
                "shared" => Some(match sk {
                    Some(sk) => {
                        self.count(sk, &f("shared_keys"), 1, clients as i64, "a number of keys (at most `clients`)")?
                            as u32
                    }
                    None => 1,
                }),
                other => {
                    return Err(self.at(
                        k,
                        &f("keys"),
                        format!("expected \"per-client\" or \"shared\", found {other:?}"),
                    ))
                }
            },
            (None, Some(sk)) => return Err(self.at(sk, &f("shared_keys"), "`shared_keys` needs `keys = \"shared\"`")),
        };
        let keys = shared_keys.unwrap_or(clients);
        let users = match &rp.users {
            Some(u) => {
                self.count(u, &f("users"), 1, keys as i64, "a number of users (at most the number of keys)")? as u32
            }
            None => keys,
        };
        let workspaces = match (&rp.workspaces, &rp.users_per_workspace) {
            (None, None) => Workspaces::PerUser,
            (Some(w), None) => Workspaces::Modulo(self.count(
                w,
                &f("workspaces"),
                1,
                users as i64,
                "a number of workspaces (at most the number of users)",
            )? as u32),
            (None, Some(n)) => Workspaces::Blocks(self.count(
                n,
                &f("users_per_workspace"),
                1,
                users as i64,
                "a number of users per workspace (at most the number of users)",
            )? as u32),
            (Some(w), Some(_)) => {
                return Err(self.at(w, &f("workspaces"), "give `workspaces` or `users_per_workspace`, not both"))
            }
        };

        let arrival = match rp.arrival {
            Some(a) => self.arrival(a, &ctx, end - start)?,
            None => {
                return Err(missing(
                    "arrival",
                    "the arrival process, e.g. `arrival = { kind = \"poisson\", rate = \"2/s\" }`",
                ))
            }
        };

        let endpoints = match (&rp.endpoint, &rp.endpoints) {
            (Some(e), None) => {
                if e.get_ref().trim().is_empty() {
                    return Err(self.at(e, &f("endpoint"), "expected an endpoint name"));
                }
                vec![(e.get_ref().trim().to_string(), 1.0)]
            }
            (None, Some(map)) => self.endpoints(map, &f("endpoints"))?,
            (None, None) => Vec::new(),
            (Some(e), Some(_)) => {
                return Err(self.at(
                    e,
                    &f("endpoint"),
                    "give `endpoint` (one name) or `endpoints` (a weighted mix), not both",
                ))
            }
        };

        let batch = match &rp.batch {
            Some(b) => self.count(b, &f("batch"), 1, u32::MAX as i64, "items per request")? as u32,
            None => 1,
        };
        let tokens = match &rp.tokens {
            Some(d) => Some(self.dist(d, &f("tokens"), Unit::Tokens)?),
            None => None,
        };
        let cost = match &rp.cost {
            Some(d) => Some(self.dist(d, &f("cost"), Unit::Cost)?),
            None => None,
        };
        let duration = match &rp.duration {
            Some(d) => Some(self.dist(d, &f("duration"), Unit::Seconds)?),
            None => None,
        };
        let job = match &rp.job {
            Some(j) => Some(self.job(j, &f("job"))?),
            None => None,
        };
        Ok(Population {
            name,
            description: rp.description.clone(),
            prefix,
            clients,
            start,
            end,
            shared_keys,
            users,
            workspaces,
            arrival,
            endpoints,
            auth: rp.auth.unwrap_or(true),
            batch,
            tokens,
            cost,
            duration,
            job,
        })
    }

    fn endpoints(&self, map: &Spanned<BTreeMap<String, Spanned<toml::Value>>>, field: &str) -> Res<Vec<(String, f64)>> {
        if map.get_ref().is_empty() {
            return Err(self.at(
                map,
                field,
                "expected at least one endpoint weight, e.g. `{ invoke = 0.8, health = 0.2 }`",
            ));
        }
        let mut out = Vec::with_capacity(map.get_ref().len());
        let mut total = 0.0;
        for (name, w) in map.get_ref() {
            let fname = format!("{field} > {name}");
            if name.trim().is_empty() {
                return Err(self.at(w, &fname, "expected an endpoint name, found an empty key"));
            }
            if w.get_ref().is_table() {
                return Err(self.at(
                    w,
                    &fname,
                    format!(
                        "expected a weight, found a table; quote endpoint names that contain dots, e.g. `\"{name}.create\" = 0.8`"
                    ),
                ));
            }
            let x = self.number(w, &fname)?;
            if x < 0.0 {
                return Err(self.at(w, &fname, format!("expected a non-negative weight, found {x}")));
            }
            total += x;
            out.push((name.clone(), total));
        }
        if total <= 0.0 {
            return Err(self.at(map, field, "expected at least one positive weight; all endpoint weights are zero"));
        }
        if !total.is_finite() {
            return Err(self.at(map, field, "the endpoint weights are too large"));
        }
        Ok(out)
    }

    fn arrival(&self, ra: Spanned<RawArrival>, ctx: &str, span: Nanos) -> Res<Arrival> {
        let start_at = ra.span().start;
        let ra = ra.into_inner();
        let base = format!("{ctx} > arrival");
        let f = |k: &str| format!("{base} > {k}");
        let kind_v = match &ra.kind {
            Some(k) => k,
            None => {
                return Err(self.err(
                    start_at,
                    &f("kind"),
                    "missing field `kind`: one of constant, poisson, on-off, diurnal, ramp, flash-crowd",
                ))
            }
        };
        let kind = kind_v.get_ref().as_str();
        // Which optional keys each kind takes (besides `kind`).
        let allowed: &[&str] = match kind {
            "constant" => &["rate", "phase"],
            "poisson" => &["rate"],
            "on-off" => &["rate", "on", "off", "durations", "phase"],
            "diurnal" => &["rate", "peak_ratio", "period", "peak_at"],
            "ramp" => &["from", "to", "over"],
            "flash-crowd" => &["rate", "at", "peak", "decay"],
            other => {
                return Err(self.at(
                    kind_v,
                    &f("kind"),
                    format!("unknown arrival kind {other:?}; expected one of constant, poisson, on-off, diurnal, ramp, flash-crowd"),
                ))
            }
        };
        let present: [(&str, Option<usize>); 14] = [
            ("rate", ra.rate.as_ref().map(|v| v.span().start)),
            ("phase", ra.phase.as_ref().map(|v| v.span().start)),
            ("on", ra.on.as_ref().map(|v| v.span().start)),
            ("off", ra.off.as_ref().map(|v| v.span().start)),
            ("durations", ra.durations.as_ref().map(|v| v.span().start)),
            ("peak_ratio", ra.peak_ratio.as_ref().map(|v| v.span().start)),
            ("period", ra.period.as_ref().map(|v| v.span().start)),
            ("peak_at", ra.peak_at.as_ref().map(|v| v.span().start)),
            ("from", ra.from.as_ref().map(|v| v.span().start)),
            ("to", ra.to.as_ref().map(|v| v.span().start)),
            ("over", ra.over.as_ref().map(|v| v.span().start)),
            ("at", ra.at.as_ref().map(|v| v.span().start)),
            ("peak", ra.peak.as_ref().map(|v| v.span().start)),
            ("decay", ra.decay.as_ref().map(|v| v.span().start)),
        ];
        for (key, at) in present {
            if let Some(at) = at {
                if !allowed.contains(&key) {
                    return Err(self.err(
                        at,
                        &f(key),
                        format!(
                            "`{key}` does not apply to kind = {kind:?}; it takes {}",
                            allowed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        let need = |v: &Option<Spanned<String>>, key: &str, example: &str| -> Res<Spanned<String>> {
            v.clone().ok_or_else(|| {
                self.err(
                    start_at,
                    &f(key),
                    format!("missing field `{key}`: a {kind} arrival needs e.g. `{key} = {example}`"),
                )
            })
        };
        let phase = |v: &Option<Spanned<String>>| -> Res<bool> {
            match v {
                None => Ok(true),
                Some(p) => match p.get_ref().as_str() {
                    "random" => Ok(true),
                    "zero" => Ok(false),
                    other => Err(self.at(p, &f("phase"), format!("expected \"random\" or \"zero\", found {other:?}"))),
                },
            }
        };
        Ok(match kind {
            "constant" => Arrival::Constant {
                rate: self.exact_rate(&need(&ra.rate, "rate", "\"2/s\"")?, &f("rate"))?,
                random_phase: phase(&ra.phase)?,
            },
            "poisson" => Arrival::Poisson { rate: self.rate(&need(&ra.rate, "rate", "\"2/s\"")?, &f("rate"), false)? },
            "on-off" => {
                let rate = self.rate(&need(&ra.rate, "rate", "\"5/s\"")?, &f("rate"), false)?;
                let on = self.positive_duration(&need(&ra.on, "on", "\"10s\"")?, &f("on"))?;
                let off = self.duration(&need(&ra.off, "off", "\"50s\"")?, &f("off"))?;
                let exponential = match &ra.durations {
                    None => false,
                    Some(d) => match d.get_ref().as_str() {
                        "fixed" => false,
                        "exponential" => true,
                        other => {
                            return Err(self.at(
                                d,
                                &f("durations"),
                                format!("expected \"fixed\" or \"exponential\", found {other:?}"),
                            ))
                        }
                    },
                };
                Arrival::OnOff { rate, on: on as f64, off: off as f64, exponential, random_phase: phase(&ra.phase)? }
            }
            "diurnal" => {
                let rate = self.rate(&need(&ra.rate, "rate", "\"2/s\"")?, &f("rate"), false)?;
                let ratio = match &ra.peak_ratio {
                    Some(r) => {
                        let x = self.number(r, &f("peak_ratio"))?;
                        if x < 1.0 {
                            return Err(self.at(
                                r,
                                &f("peak_ratio"),
                                format!("expected the peak/trough rate ratio, at least 1, found {x}"),
                            ));
                        }
                        x
                    }
                    None => {
                        return Err(self.err(
                            start_at,
                            &f("peak_ratio"),
                            "missing field `peak_ratio`: peak rate / trough rate, e.g. `peak_ratio = 4`",
                        ))
                    }
                };
                let period = match &ra.period {
                    Some(p) => self.positive_duration(p, &f("period"))?,
                    None => 24 * HOUR,
                };
                let peak_at = match &ra.peak_at {
                    Some(p) => self.duration(p, &f("peak_at"))?,
                    None => period / 2,
                };
                Arrival::Diurnal {
                    rate,
                    amplitude: (ratio - 1.0) / (ratio + 1.0),
                    period: period as f64,
                    peak_at: peak_at as f64,
                }
            }
            "ramp" => {
                let from_v = need(&ra.from, "from", "\"1/s\"")?;
                let from = self.rate(&from_v, &f("from"), true)?;
                let to = self.rate(&need(&ra.to, "to", "\"20/s\"")?, &f("to"), true)?;
                if from == 0.0 && to == 0.0 {
                    return Err(self.at(&from_v, &f("from"), "expected a positive `from` or `to` rate; both are zero"));
                }
                let over = match &ra.over {
                    Some(o) => self.positive_duration(o, &f("over"))?,
                    None => span,
                };
                Arrival::Ramp { from, to, over: over as f64 }
            }
            "flash-crowd" => {
                let base = self.rate(&need(&ra.rate, "rate", "\"1/s\"")?, &f("rate"), true)?;
                let at = self.duration(&need(&ra.at, "at", "\"10min\"")?, &f("at"))?;
                let peak_v = need(&ra.peak, "peak", "\"50/s\"")?;
                let peak = self.rate(&peak_v, &f("peak"), false)?;
                if peak < base {
                    return Err(self.at(
                        &peak_v,
                        &f("peak"),
                        format!("expected a peak rate at least the base rate, found {:?}", peak_v.get_ref()),
                    ));
                }
                let decay = self.positive_duration(&need(&ra.decay, "decay", "\"2min\"")?, &f("decay"))?;
                Arrival::FlashCrowd { base, at: at as f64, peak, decay: decay as f64 }
            }
            _ => unreachable!("kind checked above"),
        })
    }

    fn dist(&self, rd: &Spanned<RawDist>, field: &str, unit: Unit) -> Res<Dist> {
        let start_at = rd.span().start;
        let rd = rd.get_ref();
        let f = |k: &str| format!("{field} > {k}");
        let kind_v = match &rd.dist {
            Some(k) => k,
            None => {
                return Err(self.err(
                    start_at,
                    &f("dist"),
                    "missing field `dist`: one of constant, exponential, lognormal, uniform",
                ))
            }
        };
        let kind = kind_v.get_ref().as_str();
        let allowed: &[&str] = match kind {
            "constant" => &["value"],
            "exponential" => &["mean"],
            "lognormal" => &["median", "mu", "sigma"],
            "uniform" => &["min", "max"],
            other => {
                return Err(self.at(
                    kind_v,
                    &f("dist"),
                    format!(
                        "unknown distribution {other:?}; expected one of constant, exponential, lognormal, uniform"
                    ),
                ))
            }
        };
        let present = [
            ("value", &rd.value),
            ("mean", &rd.mean),
            ("median", &rd.median),
            ("mu", &rd.mu),
            ("sigma", &rd.sigma),
            ("min", &rd.min),
            ("max", &rd.max),
        ];
        for (key, v) in present {
            if let Some(v) = v {
                if !allowed.contains(&key) {
                    return Err(self.at(
                        v,
                        &f(key),
                        format!(
                            "`{key}` does not apply to dist = {kind:?}; it takes {}",
                            allowed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        let need = |v: &Option<Spanned<toml::Value>>, key: &str| -> Res<Spanned<toml::Value>> {
            v.clone().ok_or_else(|| self.err(start_at, &f(key), format!("missing field `{key}` for dist = {kind:?}")))
        };
        // The largest size a parameter (and a sample) may have, in output units.
        let (max, too_large) = match unit {
            Unit::Tokens => (MAX_AMOUNT as f64, "tokens (10^15, the most one request may carry)"),
            Unit::Cost => (MAX_AMOUNT as f64, "minor currency units (10^15, the most one request may carry)"),
            Unit::Seconds => (MAX_DURATION as f64, "seconds (100 years)"),
        };
        let at_most = |v: &Spanned<toml::Value>, key: &str, x: f64| -> Res<f64> {
            if x > max {
                let limit = if unit == Unit::Seconds { MAX_DURATION / SECOND } else { MAX_AMOUNT };
                let found = self.text.get(v.span()).unwrap_or_default().trim();
                let message = if key == "mu" {
                    format!("expected a `mu` whose median e^mu is at most {limit} {too_large}, found mu = {found}")
                } else {
                    format!("expected at most {limit} {too_large}, found {found}")
                };
                return Err(self.at(v, &f(key), message));
            }
            Ok(x)
        };
        // A parameter in output units (tokens, minor units, nanoseconds).
        let param = |v: &Spanned<toml::Value>, key: &str| -> Res<f64> {
            if unit == Unit::Seconds {
                if let toml::Value::String(s) = v.get_ref() {
                    return parse_duration(s).map(|d| d as f64).map_err(|e| self.at(v, &f(key), e));
                }
            }
            let x = self.non_negative(v, &f(key))?;
            at_most(v, key, if unit == Unit::Seconds { x * SECOND as f64 } else { x })
        };
        Ok(match kind {
            "constant" => Dist::Constant(param(&need(&rd.value, "value")?, "value")?),
            "exponential" => {
                let v = need(&rd.mean, "mean")?;
                let mean = param(&v, "mean")?;
                if mean <= 0.0 {
                    return Err(self.at(&v, &f("mean"), "expected a mean greater than 0"));
                }
                Dist::Exponential { mean }
            }
            "lognormal" => {
                let sigma_v = need(&rd.sigma, "sigma")?;
                let sigma = self.non_negative(&sigma_v, &f("sigma"))?;
                let mu = match (&rd.median, &rd.mu) {
                    (Some(m), None) => {
                        let median = param(m, "median")?;
                        if median <= 0.0 {
                            return Err(self.at(m, &f("median"), "expected a median greater than 0"));
                        }
                        median.ln()
                    }
                    (None, Some(m)) => {
                        let mu = self.number(m, &f("mu"))?;
                        let mu = if unit == Unit::Seconds { mu + (SECOND as f64).ln() } else { mu };
                        // The median e^mu is a size like the others.
                        at_most(m, "mu", mu.exp())?;
                        mu
                    }
                    (Some(m), Some(_)) => return Err(self.at(m, &f("median"), "give `median` or `mu`, not both")),
                    (None, None) => {
                        return Err(self.err(
                            start_at,
                            &f("median"),
                            "missing field `median` (or `mu`) for dist = \"lognormal\"",
                        ))
                    }
                };
                Dist::LogNormal { mu, sigma }
            }
            "uniform" => {
                let min = param(&need(&rd.min, "min")?, "min")?;
                let max_v = need(&rd.max, "max")?;
                let max = param(&max_v, "max")?;
                if max < min {
                    return Err(self.at(&max_v, &f("max"), "expected `max` at least `min`"));
                }
                Dist::Uniform { min, max }
            }
            _ => unreachable!("kind checked above"),
        })
    }

    fn job(&self, rj: &Spanned<RawJob>, field: &str) -> Res<Job> {
        let start_at = rj.span().start;
        let rj = rj.get_ref();
        let f = |k: &str| format!("{field} > {k}");
        let webhook = match &rj.mode {
            None => false,
            Some(m) => match m.get_ref().as_str() {
                "poll" => false,
                "webhook" => true,
                other => {
                    return Err(self.at(m, &f("mode"), format!("expected \"poll\" or \"webhook\", found {other:?}")))
                }
            },
        };
        if webhook {
            if let Some(p) = &rj.poll_every {
                return Err(self.at(p, &f("poll_every"), "a webhook job does not poll"));
            }
            if let Some(p) = &rj.poll_endpoint {
                return Err(self.at(p, &f("poll_endpoint"), "a webhook job does not poll"));
            }
            return Ok(Job { poll_every: 0, poll_endpoint: String::new() });
        }
        let poll_every = match &rj.poll_every {
            Some(p) => self.positive_duration(p, &f("poll_every"))?,
            None => {
                return Err(self.err(
                    start_at,
                    &f("poll_every"),
                    "missing field `poll_every`: how often the client polls, e.g. `poll_every = \"1s\"` (or `mode = \"webhook\"`)",
                ))
            }
        };
        let poll_endpoint = match &rj.poll_endpoint {
            Some(p) if p.get_ref().trim().is_empty() => {
                return Err(self.at(p, &f("poll_endpoint"), "expected an endpoint name"))
            }
            Some(p) => p.get_ref().trim().to_string(),
            None => {
                return Err(self.err(
                    start_at,
                    &f("poll_endpoint"),
                    "missing field `poll_endpoint`: the endpoint polls go to, e.g. `poll_endpoint = \"jobs.get\"`",
                ))
            }
        };
        Ok(Job { poll_every, poll_endpoint })
    }
}
