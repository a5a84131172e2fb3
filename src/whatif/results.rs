//! Results of a sweep as plain data, and the files they are written to.
//!
//! [`ScenarioResult`] is one scenario: where it sits on every axis and its
//! [`Summary`]. [`PointStatistics`] is one point (every axis but the seed):
//! the mean and 95% interval of every numeric metric over its seeds. Both
//! are what charts and notebooks read; the files are renderings of them:
//!
//! - `results.csv`: one row per scenario: `index`, `point`, `plan`, one
//!   `set:PLAN.LIMIT.FIELD` column per `--set` axis, `scale`, `scale_keys`,
//!   `client`, `seed`, `error`, then every summary field flattened
//!   (`time_to_success_p99_ns`, `denied_by_status_402`, `denied_by_limit_rpm`,
//!   …: one column for each status and limit of the swept plans), the
//!   derived `rate_STATUS` (denials with that status / attempts), and the
//!   provenance (`policy`, `policy_sha256`, `trace`, `trace_sha256`,
//!   `version`).
//! - `statistics.csv`: one row per point with `METRIC_mean` and
//!   `METRIC_ci95` (half-width) for every numeric column above (sweeps of
//!   two or more seeds); a flag such as `time_to_success_exact` counts 1
//!   when true, so its mean is the share of seeds where it holds.
//! - `results.json`: `sweep` (the [`SweepDefinition`]), `shard`,
//!   `scenarios` (one [`ScenarioResult`] per line, `summary` as in
//!   `summary.json`), `statistics` and, last, `complete` (false when the
//!   sweep was interrupted; a file cut short is not valid JSON).
//!
//! The columns come from the definition (the plans' statuses and limits,
//! the `--set` axes), never from the data, so the header is known before
//! the first scenario and equal in every shard. Rows stream in scenario
//! order; the JSON statistics wait in a temporary file until the scenarios
//! are written, so memory does not grow with the sweep.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::axes::{Shard, SweepDefinition};
use super::stats::{Accumulator, Estimate};
use crate::metrics::{ratio, Delays, Summary};
use crate::trace::csv::write_text;

/// Where a point sits on the sweep's axes (every axis but the seed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Plan.
    pub plan: String,
    /// `--set` values by `PLAN.LIMIT.FIELD`, in axis order.
    pub set: Map<String, Value>,
    /// Offered-load factor.
    pub scale: f64,
    /// Key multiplier.
    pub scale_keys: u32,
    /// Client behaviour.
    pub client: String,
}

/// One scenario of a sweep and its outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Position in the sweep's scenario list.
    pub index: u64,
    /// The point's index: `index / seeds`.
    pub point: u64,
    /// The point's axis values.
    #[serde(flatten)]
    pub at: Point,
    /// Seed.
    pub seed: u64,
    /// Why the scenario failed, if it did.
    pub error: Option<String>,
    /// The run's summary, if it ran.
    pub summary: Option<Summary>,
    /// The plan's limits as run, after the `--set` overrides (only in
    /// sweeps that have overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_plan: Option<Vec<Value>>,
    /// The run's time series and time-to-success distribution, when the
    /// sweep keeps them for charts ([`super::sweep::Sweep::keep_series`]);
    /// never in the files.
    #[serde(skip)]
    pub series: Option<crate::report::chart::RunSeries>,
}

/// One point's statistics over its seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointStatistics {
    /// The point's index.
    pub point: u64,
    /// The point's axis values.
    #[serde(flatten)]
    pub at: Point,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds whose scenario failed (left out of the metrics).
    pub errors: u64,
    /// Every numeric metric's estimate, in column order.
    #[serde(serialize_with = "as_map")]
    pub metrics: Vec<(String, Estimate)>,
}

impl PointStatistics {
    /// The estimate of one metric (a `results.csv` column name).
    pub fn metric(&self, name: &str) -> Option<&Estimate> {
        self.metrics.iter().find(|(n, _)| n == name).map(|(_, e)| e)
    }
}

fn as_map<S: Serializer>(metrics: &[(String, Estimate)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(metrics.iter().map(|(k, v)| (k, v)))
}

/// The result columns of a sweep, fixed by its definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Columns {
    /// `--set` targets.
    pub set: Vec<String>,
    /// Denial statuses the swept plans can answer, ascending.
    pub statuses: Vec<u16>,
    /// Limit ids of the swept plans, in order of first appearance.
    pub limits: Vec<String>,
    /// Whether a swept plan can delay admissions.
    pub delayed: bool,
    /// Flattened summary columns (then the derived `rate_STATUS`).
    pub metrics: Vec<String>,
}

/// Summary fields whose keys are statuses or limit ids.
const BY_STATUS: &str = "denied_by_status";
const BY_LIMIT: &str = "denied_by_limit";

impl Columns {
    /// Columns for a sweep over plans that deny with `statuses` from
    /// `limits`. Every field of [`Summary`] becomes columns (nested objects
    /// flattened with `_`; the by-status and by-limit maps one column per
    /// status and limit); lists (`top_denied_keys`) stay in the JSON only.
    pub fn new(set: Vec<String>, mut statuses: Vec<u16>, limits: Vec<String>, delayed: bool) -> Columns {
        statuses.sort_unstable();
        statuses.dedup();
        let mut metrics = Vec::new();
        // Optional parts of a summary are columns when the plans can have them.
        let template = Summary { delayed: delayed.then(Delays::default), ..Summary::default() };
        let template = serde_json::to_value(template).expect("a summary serializes");
        for (k, v) in template.as_object().expect("a summary is an object") {
            match (k.as_str(), v) {
                (BY_STATUS, _) => metrics.extend(statuses.iter().map(|s| format!("{k}_{s}"))),
                (BY_LIMIT, _) => metrics.extend(limits.iter().map(|l| format!("{k}_{l}"))),
                _ => flatten_names(k, v, &mut metrics),
            }
        }
        for s in &statuses {
            let name = format!("rate_{s}");
            if !metrics.contains(&name) {
                metrics.push(name);
            }
        }
        Columns { set, statuses, limits, delayed, metrics }
    }

    /// The metric values of `summary`, one per [`Columns::metrics`] (`Null`
    /// where undefined, e.g. a percentile with no successes).
    pub fn metric_values(&self, summary: &Summary) -> Vec<Value> {
        let v = summary.to_json_value();
        self.metrics.iter().map(|m| lookup(summary, &v, m).unwrap_or(Value::Null)).collect()
    }
}

/// The column names of a summary field: nested objects joined with `_`;
/// lists are left to the JSON.
fn flatten_names(name: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => o.iter().for_each(|(k, sub)| flatten_names(&format!("{name}_{k}"), sub, out)),
        Value::Array(_) => {}
        _ => out.push(name.to_string()),
    }
}

/// The value of metric `name` (a `results.csv` column) in `summary`:
/// `None` if no such metric; `Some(Null)` if undefined in this run.
fn lookup(summary: &Summary, v: &Value, name: &str) -> Option<Value> {
    let o = v.as_object()?;
    if let Some(x) = o.get(name) {
        return (!x.is_object() && !x.is_array()).then(|| x.clone());
    }
    if let Some(status) = name.strip_prefix("rate_").and_then(|r| r.parse::<u16>().ok()) {
        let denied = summary.denied_by_status.get(&status).copied().unwrap_or(0);
        return Some(serde_json::json!(ratio(denied, summary.attempts)));
    }
    for (k, sub) in o {
        if let (Some(rest), Value::Object(m)) = (name.strip_prefix(k.as_str()).and_then(|r| r.strip_prefix('_')), sub) {
            if k == BY_STATUS || k == BY_LIMIT {
                return Some(m.get(rest).cloned().unwrap_or(Value::from(0u64)));
            }
            if let Some(x) = nested(sub, rest) {
                return Some(x);
            }
        }
    }
    // Also an optional part absent from this run (`delayed` of a plan that
    // cannot delay): its columns stay empty.
    None
}

/// The scalar at `path` (keys joined by `_`) inside `v`.
fn nested(v: &Value, path: &str) -> Option<Value> {
    let o = v.as_object()?;
    if let Some(x) = o.get(path) {
        return (!x.is_object() && !x.is_array()).then(|| x.clone());
    }
    o.iter().find_map(|(k, sub)| {
        path.strip_prefix(k.as_str()).and_then(|r| r.strip_prefix('_')).and_then(|r| nested(sub, r))
    })
}

/// The value of metric `name` (a `results.csv` column, e.g.
/// `success_ratio`, `time_to_success_p99_ns`, `denied_by_status_402`,
/// `rate_503`) in `summary`: `Err` if there is no such metric, `Ok(None)`
/// where it is undefined (a percentile when nothing succeeded). Statuses
/// and limits that denied nothing count 0.
pub fn metric_value(summary: &Summary, name: &str) -> Result<Option<f64>, String> {
    let v = summary.to_json_value();
    match lookup(summary, &v, name) {
        Some(Value::Null) => Ok(None),
        Some(x) => x.as_f64().map(Some).ok_or_else(|| format!("metric {name:?} is not a number")),
        None => Err(format!("no metric {name:?}")),
    }
}

/// The sweep's provenance columns.
fn provenance(def: &SweepDefinition) -> [&str; 5] {
    [&def.policy.path, &def.policy.sha256, &def.trace.path, &def.trace.sha256, &def.version]
}

fn cell(w: &mut impl Write, v: &Value) -> io::Result<()> {
    match v {
        Value::Null => Ok(()),
        Value::String(s) => write_text(w, s),
        other => write!(w, "{other}"),
    }
}

/// The axis cells of a point: plan, `--set` values, scale, keys, client.
fn write_point(w: &mut impl Write, at: &Point, columns: &Columns) -> io::Result<()> {
    write_text(w, &at.plan)?;
    for t in &columns.set {
        w.write_all(b",")?;
        cell(w, at.set.get(t).unwrap_or(&Value::Null))?;
    }
    write!(w, ",{},{},", Value::from(at.scale), at.scale_keys)?;
    write_text(w, &at.client)
}

/// The header of `results.csv`.
pub fn results_csv_header(columns: &Columns) -> String {
    let mut h = String::from("index,point,plan");
    for t in &columns.set {
        h.push_str(&format!(",set:{t}"));
    }
    h.push_str(",scale,scale_keys,client,seed,error");
    for m in &columns.metrics {
        h.push(',');
        h.push_str(m);
    }
    h.push_str(",policy,policy_sha256,trace,trace_sha256,version\n");
    h
}

/// One row of `results.csv`.
pub fn write_results_csv_row(
    w: &mut impl Write,
    r: &ScenarioResult,
    columns: &Columns,
    def: &SweepDefinition,
) -> io::Result<()> {
    write!(w, "{},{},", r.index, r.point)?;
    write_point(w, &r.at, columns)?;
    write!(w, ",{},", r.seed)?;
    write_text(w, r.error.as_deref().unwrap_or(""))?;
    match &r.summary {
        Some(s) => {
            for v in columns.metric_values(s) {
                w.write_all(b",")?;
                cell(w, &v)?;
            }
        }
        None => w.write_all(",".repeat(columns.metrics.len()).as_bytes())?,
    }
    for p in provenance(def) {
        w.write_all(b",")?;
        write_text(w, p)?;
    }
    w.write_all(b"\n")
}

/// The header of `statistics.csv`.
pub fn statistics_csv_header(columns: &Columns) -> String {
    let mut h = String::from("point,plan");
    for t in &columns.set {
        h.push_str(&format!(",set:{t}"));
    }
    h.push_str(",scale,scale_keys,client,seeds,errors");
    for m in &columns.metrics {
        h.push_str(&format!(",{m}_mean,{m}_ci95"));
    }
    h.push('\n');
    h
}

/// One row of `statistics.csv`.
pub fn write_statistics_csv_row(w: &mut impl Write, p: &PointStatistics, columns: &Columns) -> io::Result<()> {
    write!(w, "{},", p.point)?;
    write_point(w, &p.at, columns)?;
    write!(w, ",{},{}", p.seeds, p.errors)?;
    for m in &columns.metrics {
        match p.metric(m) {
            Some(e) => {
                write!(w, ",{}", Value::from(e.mean))?;
                match e.ci95 {
                    Some(ci) => write!(w, ",{}", Value::from(ci))?,
                    None => w.write_all(b",")?,
                }
            }
            None => w.write_all(b",,")?,
        }
    }
    w.write_all(b"\n")
}

/// Accumulates a point's seeds as results arrive in scenario order.
#[derive(Debug)]
pub struct PointAccumulator {
    seeds: u64,
    current: Option<(ScenarioResult, u64, u64, Vec<Accumulator>)>,
}

impl PointAccumulator {
    /// For a sweep of `seeds` seeds per point.
    pub fn new(seeds: usize) -> PointAccumulator {
        PointAccumulator { seeds: seeds as u64, current: None }
    }

    /// Adds a result; returns the point's statistics when it was its last
    /// seed (or a result of another point closes the previous one, which
    /// then comes first).
    pub fn add(&mut self, r: &ScenarioResult, columns: &Columns) -> Vec<PointStatistics> {
        let mut out = Vec::new();
        if self.current.as_ref().is_some_and(|(first, ..)| first.point != r.point) {
            out.extend(self.finish(columns));
        }
        let (_, seeds, errors, acc) =
            self.current.get_or_insert_with(|| (r.clone(), 0, 0, vec![Accumulator::default(); columns.metrics.len()]));
        *seeds += 1;
        match &r.summary {
            Some(s) => {
                for (a, v) in acc.iter_mut().zip(columns.metric_values(s)) {
                    // A flag (`time_to_success_exact`) counts 1 when true: its
                    // mean is the share of seeds where it holds.
                    if let Some(x) = v.as_f64().or_else(|| v.as_bool().map(|b| f64::from(u8::from(b)))) {
                        a.add(x);
                    }
                }
            }
            None => *errors += 1,
        }
        if *seeds == self.seeds {
            out.extend(self.finish(columns));
        }
        out
    }

    /// The statistics of a point left open (an interrupted sweep).
    pub fn finish(&mut self, columns: &Columns) -> Option<PointStatistics> {
        let (first, seeds, errors, acc) = self.current.take()?;
        let metrics =
            columns.metrics.iter().zip(&acc).filter_map(|(m, a)| a.estimate().map(|e| (m.clone(), e))).collect();
        Some(PointStatistics { point: first.point, at: first.at, seeds, errors, metrics })
    }
}

/// `results.json` written as results arrive (see the module docs).
pub struct JsonResults<W: Write> {
    out: W,
    scenarios: u64,
    statistics: u64,
    spill: Spill,
}

/// A temporary file for the statistics section, removed when dropped.
struct Spill {
    path: PathBuf,
    file: BufWriter<File>,
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl<W: Write> JsonResults<W> {
    /// Writes the head (`sweep`, `shard`) to `out`; `spill_dir` holds the
    /// temporary statistics file.
    pub fn begin(
        mut out: W,
        def: &SweepDefinition,
        columns: &Columns,
        shard: Option<Shard>,
        spill_dir: &Path,
    ) -> io::Result<Self> {
        static SPILLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SPILLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = spill_dir.join(format!(".ratesim-statistics-{}-{n}.tmp", std::process::id()));
        let file = BufWriter::new(File::options().read(true).write(true).create(true).truncate(true).open(&path)?);
        writeln!(out, "{{")?;
        writeln!(out, "\"sweep\": {},", serde_json::to_string(def).map_err(io::Error::other)?)?;
        let layout = ColumnLayout {
            statuses: columns.statuses.clone(),
            limits: columns.limits.clone(),
            delayed: columns.delayed,
        };
        writeln!(out, "\"columns\": {},", serde_json::to_string(&layout).map_err(io::Error::other)?)?;
        writeln!(out, "\"shard\": {},", serde_json::to_string(&shard).map_err(io::Error::other)?)?;
        write!(out, "\"scenarios\": [")?;
        Ok(JsonResults { out, scenarios: 0, statistics: 0, spill: Spill { path, file } })
    }

    /// One scenario.
    pub fn scenario(&mut self, r: &ScenarioResult) -> io::Result<()> {
        let sep = if self.scenarios == 0 { "\n" } else { ",\n" };
        write!(self.out, "{sep}{}", serde_json::to_string(r).map_err(io::Error::other)?)?;
        self.scenarios += 1;
        Ok(())
    }

    /// One point's statistics (held back until the scenarios are written).
    pub fn statistics(&mut self, p: &PointStatistics) -> io::Result<()> {
        let sep = if self.statistics == 0 { "\n" } else { ",\n" };
        write!(self.spill.file, "{sep}{}", serde_json::to_string(p).map_err(io::Error::other)?)?;
        self.statistics += 1;
        Ok(())
    }

    /// Writes the statistics and `complete`; returns the writer.
    pub fn finish(mut self, complete: bool) -> io::Result<W> {
        writeln!(self.out, "{}],", if self.scenarios > 0 { "\n" } else { "" })?;
        write!(self.out, "\"statistics\": [")?;
        self.spill.file.flush()?;
        let file = self.spill.file.get_mut();
        file.seek(io::SeekFrom::Start(0))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            self.out.write_all(&buf[..n])?;
        }
        writeln!(self.out, "{}],", if self.statistics > 0 { "\n" } else { "" })?;
        writeln!(self.out, "\"complete\": {complete}")?;
        writeln!(self.out, "}}")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The statuses and limits that make a sweep's columns (recorded in
/// `results.json`, so a merge needs no policy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnLayout {
    /// Denial statuses, ascending.
    pub statuses: Vec<u16>,
    /// Limit ids.
    pub limits: Vec<String>,
    /// Whether a swept plan can delay admissions (`delayed_*` columns).
    pub delayed: bool,
}

/// A results file read back (`ratesim sweep merge`).
#[derive(Debug, Deserialize)]
pub struct ResultsFile {
    /// The sweep.
    pub sweep: SweepDefinition,
    /// Its column layout.
    pub columns: ColumnLayout,
    /// The part, if sharded.
    pub shard: Option<Shard>,
    /// The scenarios it holds.
    pub scenarios: Vec<ScenarioResult>,
    /// Whether the sweep (part) ran to its end.
    pub complete: bool,
}

/// The output files of a sweep (or a merge), fed results in scenario order.
pub struct ResultsFiles<'a> {
    def: &'a SweepDefinition,
    columns: &'a Columns,
    csv: Option<(PathBuf, BufWriter<File>)>,
    statistics_csv: Option<(PathBuf, BufWriter<File>)>,
    json: Option<(String, JsonResults<Box<dyn Write + 'a>>)>,
    points: Option<PointAccumulator>,
    written: Vec<String>,
}

/// Where a sweep's results go.
#[derive(Clone, Debug, Default)]
pub struct Destinations {
    /// `--out DIR`: `results.csv`, `results.json` and (with statistics)
    /// `statistics.csv`.
    pub dir: Option<PathBuf>,
    /// `--csv FILE`: the results CSV.
    pub csv: Option<PathBuf>,
    /// `--json`: `results.json` on standard output.
    pub json_stdout: bool,
}

fn create(path: &Path) -> io::Result<BufWriter<File>> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display())))
}

impl<'a> ResultsFiles<'a> {
    /// Creates every output file now (so a bad path fails before anything
    /// runs) and writes the headers. Statistics are kept when `statistics`
    /// (an unsharded sweep of two or more seeds).
    pub fn create(
        to: &Destinations,
        def: &'a SweepDefinition,
        columns: &'a Columns,
        shard: Option<Shard>,
        statistics: bool,
    ) -> io::Result<ResultsFiles<'a>> {
        let mut files = ResultsFiles {
            def,
            columns,
            csv: None,
            statistics_csv: None,
            json: None,
            points: statistics.then(|| PointAccumulator::new(def.seeds.len())),
            written: Vec::new(),
        };
        if let Some(dir) = &to.dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot create the directory {}: {e}", dir.display())))?;
            let path = dir.join("results.json");
            let w: Box<dyn Write> = Box::new(create(&path)?);
            files.json = Some((path.display().to_string(), JsonResults::begin(w, def, columns, shard, dir)?));
            let path = dir.join("results.csv");
            files.csv = Some((path.clone(), create(&path)?));
            if statistics {
                let path = dir.join("statistics.csv");
                files.statistics_csv = Some((path.clone(), create(&path)?));
            }
        } else if to.json_stdout {
            let w: Box<dyn Write> = Box::new(io::stdout());
            files.json = Some((String::new(), JsonResults::begin(w, def, columns, shard, &std::env::temp_dir())?));
        }
        if let Some(path) = &to.csv {
            files.csv = Some((path.clone(), create(path)?));
        }
        if let Some((path, w)) = &mut files.csv {
            w.write_all(results_csv_header(columns).as_bytes()).map_err(|e| at(path, e))?;
        }
        if let Some((path, w)) = &mut files.statistics_csv {
            w.write_all(statistics_csv_header(columns).as_bytes()).map_err(|e| at(path, e))?;
        }
        Ok(files)
    }

    /// Whether per-point statistics are kept.
    pub fn keeps_statistics(&self) -> bool {
        self.points.is_some()
    }

    /// Writes one scenario; returns the statistics of the points it closes.
    pub fn add(&mut self, r: &ScenarioResult) -> io::Result<Vec<PointStatistics>> {
        if let Some((path, w)) = &mut self.csv {
            write_results_csv_row(w, r, self.columns, self.def).map_err(|e| at(path, e))?;
        }
        if let Some((_, j)) = &mut self.json {
            j.scenario(r)?;
        }
        let closed = match &mut self.points {
            Some(acc) => acc.add(r, self.columns),
            None => Vec::new(),
        };
        for p in &closed {
            self.write_point(p)?;
        }
        Ok(closed)
    }

    fn write_point(&mut self, p: &PointStatistics) -> io::Result<()> {
        if let Some((path, w)) = &mut self.statistics_csv {
            write_statistics_csv_row(w, p, self.columns).map_err(|e| at(path, e))?;
        }
        if let Some((_, j)) = &mut self.json {
            j.statistics(p)?;
        }
        Ok(())
    }

    /// Closes the files (`complete`: the sweep ran to its end); returns the
    /// statistics of a point left open by an interruption, and the files
    /// written.
    pub fn finish(mut self, complete: bool) -> io::Result<(Option<PointStatistics>, Vec<String>)> {
        let open = self.points.as_mut().and_then(|acc| acc.finish(self.columns));
        if let Some(p) = &open {
            self.write_point(p)?;
        }
        if let Some((path, j)) = self.json.take() {
            j.finish(complete)?;
            if !path.is_empty() {
                self.written.push(path);
            }
        }
        for (path, mut w) in [self.csv.take(), self.statistics_csv.take()].into_iter().flatten() {
            w.flush().map_err(|e| at(&path, e))?;
            self.written.push(path.display().to_string());
        }
        Ok((open, self.written))
    }
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
}
