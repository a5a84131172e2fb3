//! `ratesim gallery`: regenerates the documentation gallery by running the
//! command of each chart ([`crate::report::gallery`]) with this very binary,
//! or checks that the committed gallery is what they draw.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;

use crate::report::gallery::{self, Entry};

/// Arguments of `ratesim gallery`.
#[derive(Args, Debug)]
pub(super) struct GalleryArgs {
    /// The gallery manifest (run from the repository root: the commands'
    /// paths are relative to it).
    #[arg(long, value_name = "FILE", default_value = "docs/gallery/gallery.toml")]
    manifest: PathBuf,
    /// Where to write the charts and README.md.
    #[arg(long, value_name = "DIR", default_value = "docs/gallery")]
    out: PathBuf,
    /// Write nothing: compare what the commands draw with the files in
    /// --out, and fail naming each file that differs.
    #[arg(long)]
    check: bool,
}

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    1
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `e`'s command with `--charts dir`; returns the chart's bytes.
fn draw(exe: &Path, e: &Entry, dir: &Path) -> Result<Vec<u8>, String> {
    let out = Command::new(exe)
        .args(&e.args)
        .arg("--charts")
        .arg(dir)
        .output()
        .map_err(|err| format!("{}: cannot start {}: {err}", e.name, exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{}: `{}` failed ({}):\n{}",
            e.name,
            e.command(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    let chart = dir.join(format!("{}.svg", e.chart));
    std::fs::read(&chart).map_err(|err| {
        format!("{}: `{}` wrote no {} ({err}); check the entry's `chart`", e.name, e.command(), chart.display())
    })
}

pub(super) fn run(args: GalleryArgs) -> u8 {
    let manifest = match gallery::load(&args.manifest) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return fail(format!("cannot find the ratesim binary to run the commands: {e}")),
    };
    if !args.check {
        if let Err(e) = std::fs::create_dir_all(&args.out) {
            return fail(format!("cannot create {}: {e}", args.out.display()));
        }
    }
    let scratch = Scratch(std::env::temp_dir().join(format!("ratesim-gallery-{}", std::process::id())));
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for e in &manifest.chart {
        let dir = scratch.0.join(&e.name);
        match draw(&exe, e, &dir) {
            Ok(bytes) => files.push((e.file(), bytes)),
            Err(err) => return fail(err),
        }
    }
    files.push(("README.md".to_string(), gallery::index(&manifest).into_bytes()));
    if args.check {
        let stale: Vec<String> = files
            .iter()
            .filter(|(name, bytes)| std::fs::read(args.out.join(name)).ok().as_ref() != Some(bytes))
            .map(|(name, _)| args.out.join(name).display().to_string())
            .collect();
        if !stale.is_empty() {
            return fail(format!(
                "the gallery is out of date: {} differ from what the commands draw; run `ratesim gallery` from the repository root",
                stale.join(", ")
            ));
        }
        println!("ok     {} gallery files are what their commands draw", files.len());
        return 0;
    }
    for (name, bytes) in &files {
        let path = args.out.join(name);
        if let Err(e) = std::fs::write(&path, bytes) {
            return fail(format!("cannot write {}: {e}", path.display()));
        }
    }
    let total: usize = files.iter().map(|f| f.1.len()).sum();
    println!("wrote {} files to {} ({} KB)", files.len(), args.out.display(), total.div_ceil(1024));
    0
}
