//! `ratesim trace gen` and `ratesim trace check`.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::inputs;
use super::outputs::{self, Named};
use crate::report::group;
use crate::time::{format_decimal_seconds, format_duration, format_rfc3339};
use crate::trace::{self, csv, synth, TraceError, TraceRow, TraceSource, TraceTime};

#[derive(Subcommand, Debug)]
pub(super) enum TraceCommand {
    /// Expand a synthetic spec (.toml) into a recorded CSV trace.
    ///
    /// Rows are streamed to the file as they are generated, in constant
    /// memory whatever the length. The seed also drives `ratesim run`'s
    /// client jitter, so replay the CSV with the seed it was generated with
    /// (the summary line prints it): then `ratesim run --trace FILE.csv --seed
    /// N` simulates exactly what `ratesim run --trace SPEC --seed N` does.
    ///
    /// The CSV form has no columns for polling jobs (`job = { poll_every =
    /// ... }`) or `batch`; a warning says so when the spec uses them.
    #[command(after_help = "Example:\n  \
        ratesim trace gen traces/steady-over.toml -o steady-over.csv\n  \
        ratesim run --trace steady-over.csv --seed 2    # the same run as --trace traces/steady-over.toml")]
    Gen(GenArgs),
    /// Check traces and specs by reading every row.
    ///
    /// Reads recorded traces (.csv, .jsonl) and expands synthetic specs
    /// (.toml) to the end, and prints for each file its rows, distinct keys
    /// and first and last time on stdout, or the first error with its file,
    /// line, column and field on stderr. Exits 1 if any file fails.
    Check(CheckArgs),
    /// Turn a `ratesim serve --log` file into a trace of its arrivals.
    ///
    /// Writes one JSON Lines row per logged decision, in arrival order, with
    /// its instant (RFC 3339), key, user, workspace, endpoint,
    /// authentication, tokens, money and how long it held its permits.
    /// Replaying it with `ratesim run --client none --decisions FILE` decides
    /// the same requests at the same instants: the decisions file holds the
    /// log's decision columns, line for line.
    #[command(after_help = "Example:\n  \
        ratesim trace from-log serve.jsonl -o replay.jsonl\n  \
        ratesim run --policy policies/runinfra.toml --plan pro --trace replay.jsonl --client none --decisions replayed.jsonl")]
    FromLog(FromLogArgs),
}

/// Arguments of `ratesim trace from-log`.
#[derive(Args, Debug)]
pub(super) struct FromLogArgs {
    /// Decision log written by `ratesim serve --log`.
    #[arg(value_name = "LOG.jsonl")]
    log: PathBuf,
    /// JSON Lines trace to write (replaced if it exists).
    #[arg(short, long, value_name = "FILE.jsonl")]
    out: PathBuf,
}

/// Arguments of `ratesim trace gen`.
#[derive(Args, Debug)]
pub(super) struct GenArgs {
    /// Synthetic trace spec (.toml), e.g. traces/steady-over.toml.
    #[arg(value_name = "SPEC")]
    spec: PathBuf,
    /// CSV file to write (replaced if it exists; written in full or not at all).
    #[arg(short, long, value_name = "FILE.csv")]
    out: PathBuf,
    /// Seed of the arrivals and request attributes, overriding the spec's own
    /// `seed`, from 0 to 2^64 - 1. Default: the spec's seed, else 42 (as
    /// `ratesim run`).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = inputs::seed_value)]
    seed: Option<u64>,
    /// Generate a spec expected to produce more than a billion rows
    /// (refused without this flag).
    #[arg(long)]
    allow_huge: bool,
}

/// Arguments of `ratesim trace check`.
#[derive(Args, Debug)]
pub(super) struct CheckArgs {
    /// Recorded traces (.csv, .jsonl, .ndjson) or synthetic specs (.toml).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Seed to expand synthetic specs with, from 0 to 2^64 - 1. Default:
    /// each spec's seed, else 42.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = inputs::seed_value)]
    seed: Option<u64>,
    /// Expand specs expected to produce more than a billion rows (refused
    /// without this flag).
    #[arg(long)]
    allow_huge: bool,
}

pub(super) fn run(cmd: TraceCommand) -> u8 {
    match cmd {
        TraceCommand::Gen(args) => gen(args),
        TraceCommand::Check(args) => check(args),
        TraceCommand::FromLog(args) => from_log(args),
    }
}

fn from_log(args: FromLogArgs) -> u8 {
    match crate::serve::log::to_trace(&args.log, &args.out) {
        Ok(w) => {
            println!(
                "wrote {}: {} rows, {} of arrivals (replay with --client none)",
                args.out.display(),
                group(w.rows),
                crate::serve::log::human_span(w.span)
            );
            0
        }
        Err(e) => fail(e),
    }
}

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    1
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn plural(n: u64, word: &str) -> String {
    format!("{} {word}{}", group(n), if n == 1 { "" } else { "s" })
}

/// What a pass over a trace saw.
#[derive(Default)]
struct Tally {
    rows: u64,
    keys: HashSet<String>,
    first: Option<TraceTime>,
    last: Option<TraceTime>,
    /// Rows of asynchronous jobs that poll (lost in the CSV form).
    polled: u64,
    /// Rows carrying more than one item (lost in the CSV form).
    batched: u64,
}

impl Tally {
    fn add(&mut self, row: &TraceRow) {
        self.rows += 1;
        if !self.keys.contains(row.key.as_str()) {
            self.keys.insert(row.key.clone());
        }
        self.first.get_or_insert(row.t);
        self.last = Some(row.t);
        self.polled += u64::from(row.poll_every > 0);
        self.batched += u64::from(row.items != 1);
    }

    /// `N rows, K keys, t FIRST … LAST`.
    fn describe(&self) -> String {
        let mut s = format!("{}, {}", plural(self.rows, "row"), plural(self.keys.len() as u64, "key"));
        if let (Some(first), Some(last)) = (self.first, self.last) {
            s.push_str(&format!(", t {} … {}", show_time(first), show_time(last)));
        }
        s
    }
}

fn show_time(t: TraceTime) -> String {
    match t {
        TraceTime::Offset(ns) => format!("{} s", format_decimal_seconds(ns)),
        TraceTime::Absolute(ns) => format_rfc3339(ns),
    }
}

/// The seed a spec is expanded with: `--seed`, else the spec's, else 42.
fn seed_for(flag: Option<u64>, spec: &synth::Spec) -> u64 {
    flag.or(spec.seed()).unwrap_or(42)
}

fn gen(args: GenArgs) -> u8 {
    if !has_extension(&args.spec, "toml") {
        return fail(format!(
            "{}: expected a synthetic trace spec (.toml); recorded traces need no generating",
            args.spec.display()
        ));
    }
    if !has_extension(&args.out, "csv") {
        return fail(format!(
            "-o {}: the output file name must end in .csv (the extension tells `ratesim run --trace` how to read it)",
            args.out.display()
        ));
    }
    let spec = match synth::load_spec(&args.spec) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let seed = seed_for(args.seed, &spec);
    let name = args.spec.display().to_string();
    if let Err(e) = inputs::check_rows(&name, &spec, None, args.allow_huge, "pass --allow-huge to generate it all") {
        return fail(e);
    }
    let read = [Named { flag: "spec", path: &args.spec }];
    if let Err(e) = outputs::check(&read, &[Named { flag: "-o", path: &args.out }]) {
        return fail(e);
    }

    // Write next to the target and rename at the end, so that a failed run
    // never leaves a truncated trace that would replay as a shorter one.
    let name = args.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = args.out.with_file_name(format!(".{name}.partial"));
    let tally = match write_csv(&mut spec.generate(seed), &partial, &args.out) {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return fail(e);
        }
    };
    if let Err(e) = std::fs::rename(&partial, &args.out) {
        let _ = std::fs::remove_file(&partial);
        return fail(format!("cannot write {}: {e}", args.out.display()));
    }

    println!(
        "wrote {}: {}, {}, horizon {} (seed {seed}: replay with --seed {seed} to match the spec)",
        args.out.display(),
        plural(tally.rows, "row"),
        plural(tally.keys.len() as u64, "key"),
        format_duration(spec.horizon()),
    );
    if tally.polled > 0 {
        eprintln!(
            "warning: {} of the spec's rows are asynchronous jobs that poll; the CSV has no columns for \
             polling, so replaying {} sends no polls and will not match a run of {}",
            group(tally.polled),
            args.out.display(),
            args.spec.display()
        );
    }
    if tally.batched > 0 {
        eprintln!(
            "warning: {} of the spec's rows carry a `batch` of several items; the CSV has no column for \
             items, so replaying {} counts one item per request and its item totals will not match a run of {}",
            group(tally.batched),
            args.out.display(),
            args.spec.display()
        );
    }
    0
}

/// Streams `source` into a new CSV file at `path`; errors name `shown`.
fn write_csv(source: &mut dyn TraceSource, path: &Path, shown: &Path) -> Result<Tally, String> {
    let file = File::create(path).map_err(|e| format!("cannot create {}: {e}", shown.display()))?;
    let mut w = BufWriter::with_capacity(64 * 1024, file);
    let io_err = |e: std::io::Error| format!("cannot write {}: {e}", shown.display());
    csv::write_header(&mut w).map_err(io_err)?;
    let mut tally = Tally::default();
    let mut row = TraceRow::default();
    while source.next_row(&mut row).map_err(|e| e.to_string())? {
        csv::write_row(&mut w, &row).map_err(io_err)?;
        tally.add(&row);
    }
    w.into_inner().map_err(|e| io_err(e.into_error()))?.sync_all().map_err(io_err)?;
    Ok(tally)
}

fn check(args: CheckArgs) -> u8 {
    let mut failed = 0;
    for file in &args.files {
        match check_one(file, args.seed, args.allow_huge) {
            Ok(line) => println!("ok     {}: {line}", file.display()),
            Err(e) => {
                failed += 1;
                eprintln!("error  {e}");
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "{failed} of {} trace file{} failed the check",
            args.files.len(),
            if args.files.len() == 1 { "" } else { "s" }
        );
        1
    } else {
        0
    }
}

/// Reads one trace or spec to the end; its description, or the first error.
fn check_one(path: &Path, seed: Option<u64>, allow_huge: bool) -> Result<String, TraceError> {
    let mut tally = Tally::default();
    let mut row = TraceRow::default();
    if has_extension(path, "toml") {
        let spec = synth::load_spec(path)?;
        let name = path.display().to_string();
        inputs::check_rows(&name, &spec, None, allow_huge, "pass --allow-huge to check it all").map_err(|message| {
            // The message names the file already.
            let message = message.strip_prefix(&format!("{name}: ")).unwrap_or(&message).to_string();
            TraceError { file: name.clone(), line: 0, column: 0, field: String::new(), message }
        })?;
        let seed = seed_for(seed, &spec);
        let mut source = spec.generate(seed);
        while source.next_row(&mut row)? {
            tally.add(&row);
        }
        if tally.rows == 0 {
            return Err(TraceError::no_rows(path));
        }
        Ok(format!(
            "{} (synthetic: {}, {}, horizon {}, seed {seed})",
            tally.describe(),
            plural(spec.populations().len() as u64, "population"),
            plural(spec.clients(), "client"),
            format_duration(spec.horizon())
        ))
    } else {
        let mut source = trace::open(path, None)?;
        while source.next_row(&mut row)? {
            tally.add(&row);
        }
        if tally.rows == 0 {
            return Err(TraceError::no_rows(path));
        }
        Ok(tally.describe())
    }
}
