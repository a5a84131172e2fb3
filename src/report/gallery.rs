//! The documentation gallery (`docs/gallery/`): charts of each provider
//! page's documented behaviour, drawn by the commands a reader can run.
//!
//! The manifest (`docs/gallery/gallery.toml`) lists, for each chart, the
//! `ratesim` command that draws it (its arguments, run from the repository
//! root with `--charts DIR` added), which of the charts it writes to keep,
//! the file name in the gallery, and a caption. `ratesim gallery` runs every
//! command and writes the charts and `docs/gallery/README.md` (the captions
//! and commands); running it again reproduces the same bytes, which a test
//! checks. The scenario files the commands read live in
//! `docs/gallery/traces/`.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use super::html::shell_line;

/// One chart of the gallery.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// File stem in the gallery: `NAME.svg`.
    pub name: String,
    /// The section it belongs to (a provider page, or a comparison).
    pub section: String,
    /// Which chart of the command's `--charts` directory: `timeline`,
    /// `load`, ….
    pub chart: String,
    /// What the chart shows, for readers.
    pub caption: String,
    /// The command's arguments after `ratesim` (`run`, `--policy`, …).
    pub args: Vec<String>,
}

/// The manifest.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The charts, in gallery order.
    pub chart: Vec<Entry>,
}

/// The shortest file name a chart may have, and the characters it may use.
fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Reads and checks the manifest at `path`.
pub fn load(path: &Path) -> Result<Manifest, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| {
            format!(
                "cannot read the gallery manifest {}: {e} (run `ratesim gallery` from the repository root, or pass --manifest)",
                path.display()
            )
        })?;
    let m: Manifest = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut seen = std::collections::BTreeSet::new();
    for (i, e) in m.chart.iter().enumerate() {
        let at = format!("{}: chart {} ({:?})", path.display(), i + 1, e.name);
        if !valid_name(&e.name) {
            return Err(format!("{at}: a name is lower-case letters, digits and `-`"));
        }
        if !seen.insert(e.name.clone()) {
            return Err(format!("{at}: the name is used twice"));
        }
        if !matches!(e.args.first().map(String::as_str), Some("run" | "sweep" | "solve")) {
            return Err(format!("{at}: args must start with run, sweep or solve"));
        }
        if e.args.iter().any(|a| a == "--charts" || a == "--chart" || a == "--report" || a == "--out") {
            return Err(format!("{at}: args must not choose outputs (the gallery adds --charts)"));
        }
    }
    Ok(m)
}

impl Entry {
    /// The command a reader runs to draw the chart into `DIR`.
    pub fn command(&self) -> String {
        let mut args = vec!["ratesim".to_string()];
        args.extend(self.args.iter().cloned());
        args.extend(["--charts".to_string(), "DIR".to_string()]);
        shell_line(&args)
    }

    /// The gallery's file name.
    pub fn file(&self) -> String {
        format!("{}.svg", self.name)
    }
}

/// `docs/gallery/README.md`: every chart with its caption and command.
pub fn index(m: &Manifest) -> String {
    let mut o = String::new();
    o.push_str("# Gallery\n\n");
    o.push_str("Charts of what each provider page documents, simulated by ratesim. Every chart is\n");
    o.push_str("drawn by the command under it, run from the repository root (it writes the chart\n");
    o.push_str("to `DIR/<chart>.svg`); `ratesim gallery` runs them all and rewrites this directory,\n");
    o.push_str("byte for byte the same. The scenarios are in [`traces/`](traces/).\n");
    let mut section = "";
    for e in &m.chart {
        if e.section != section {
            let _ = write!(o, "\n## {}\n", e.section);
            section = &e.section;
        }
        let _ = write!(
            o,
            "\n![{}]({})\n\n{}\n\n```console\n$ {}\n```\n\n(the chart is `DIR/{}.svg`)\n",
            e.caption.split(". ").next().unwrap_or(&e.caption).trim_end_matches('.'),
            e.file(),
            e.caption,
            e.command(),
            e.chart
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_add_the_charts_directory() {
        let e = Entry {
            name: "x".into(),
            section: "S".into(),
            chart: "timeline".into(),
            caption: "What it shows. More.".into(),
            args: ["run", "--client", "fixed-1s,jitter=full"].map(String::from).to_vec(),
        };
        assert_eq!(e.command(), "ratesim run --client fixed-1s,jitter=full --charts DIR");
        let md = index(&Manifest { chart: vec![e] });
        assert!(md.contains("![What it shows](x.svg)"), "{md}");
        assert!(md.contains("$ ratesim run --client fixed-1s,jitter=full --charts DIR"));
    }
}
