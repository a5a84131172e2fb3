//! The report pages of `run` (and, with [`crate::whatif`], of `sweep` and
//! `solve`): what goes on each, as an [`super::html::Page`].

use std::path::Path;

use super::chart::Figure;
use super::html::{shell_line, Block, Page, Section};
use super::RunInfo;

/// A chart for a page: its figure and caption.
pub struct Captioned {
    /// The chart.
    pub figure: Figure,
    /// What it shows, for a reader.
    pub caption: String,
}

/// What the page of one run shows.
pub struct RunPage<'a> {
    /// The run.
    pub info: &'a RunInfo,
    /// The terminal summary, as printed.
    pub summary_text: &'a str,
    /// The plan explained (`ratesim policy explain`).
    pub policy_text: &'a str,
    /// The trace, in words (rows, keys, span; a spec's populations).
    pub trace_text: &'a str,
    /// The command line that reproduces the run (`argv`).
    pub command: &'a [String],
    /// The charts.
    pub charts: Vec<Captioned>,
}

/// The page of one run.
pub fn run_page(p: RunPage<'_>) -> Page {
    let i = p.info;
    let mut setup = vec![
        ("provider".to_string(), i.provider.clone()),
        ("policy".to_string(), i.policy.clone()),
        ("plan".to_string(), i.plan.clone()),
        ("trace".to_string(), i.trace.clone()),
        ("client".to_string(), format!("{}: {}", i.client, i.client_behaviour)),
        ("seed".to_string(), i.seed.to_string()),
        ("start".to_string(), i.start.clone()),
        ("bucket".to_string(), super::human_duration(i.bucket_ns)),
        ("ratesim".to_string(), i.version.clone()),
    ];
    setup.retain(|(_, v)| !v.is_empty());
    Page {
        title: format!("ratesim run: {} {} · client {}", i.provider, i.plan, i.client),
        lead: format!("trace {} · seed {} · start {}", i.trace, i.seed, i.start),
        sections: vec![
            Section { heading: "Summary".into(), blocks: vec![Block::Pre(p.summary_text.to_string())] },
            charts_section("Charts", p.charts),
            Section {
                heading: "What was simulated".into(),
                blocks: vec![
                    Block::Terms(setup),
                    Block::Para("The plan, as ratesim policy explain describes it:".into()),
                    Block::Pre(p.policy_text.to_string()),
                    Block::Para("The trace:".into()),
                    Block::Pre(p.trace_text.to_string()),
                ],
            },
            reproduce_section("From the same directory, with the same files:", p.command),
        ],
    }
}

/// What the page of a sweep (or a merge of its parts) shows.
pub struct SweepPage<'a> {
    /// The sweep.
    pub definition: &'a crate::whatif::axes::SweepDefinition,
    /// The terminal table, as printed (title, header, lines).
    pub table_text: &'a str,
    /// The policy's plans explained.
    pub policy_text: &'a str,
    /// The trace, in words.
    pub trace_text: &'a str,
    /// The command line.
    pub command: &'a [String],
    /// The charts.
    pub charts: Vec<Captioned>,
}

/// The page of a sweep.
pub fn sweep_page(p: SweepPage<'_>) -> Page {
    let d = p.definition;
    let list = |v: &[String]| v.join(", ");
    let mut terms = vec![
        ("provider".to_string(), d.provider.clone()),
        ("policy".to_string(), format!("{} (sha256 {})", d.policy.path, d.policy.sha256)),
        ("trace".to_string(), format!("{} (sha256 {})", d.trace.path, d.trace.sha256)),
        ("plans".to_string(), list(&d.plans)),
    ];
    for a in &d.set {
        terms.push((format!("--set {}", a.target), list(&a.values)));
    }
    terms.push(("offered load (--scale)".to_string(), list(&d.scale)));
    terms.push((
        "key multiplier (--scale-keys)".to_string(),
        d.scale_keys.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
    ));
    terms.push(("clients".to_string(), d.clients.join("; ")));
    terms.push(("seeds".to_string(), d.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")));
    terms.push(("start".to_string(), d.start.clone()));
    if let Some(u) = &d.until {
        terms.push(("until".to_string(), u.clone()));
    }
    terms.push(("ratesim".to_string(), d.version.clone()));
    let clients: Vec<(String, String)> = d
        .clients
        .iter()
        .map(|c| (c.clone(), crate::client::ClientSpec::parse(c).map(|s| s.describe()).unwrap_or_default()))
        .collect();
    Page {
        title: format!(
            "ratesim sweep: {} · {} scenarios",
            d.provider,
            crate::report::group(d.scenarios().unwrap_or(0))
        ),
        lead: format!("trace {} · plans {} · clients {}", d.trace.path, list(&d.plans), d.clients.join("; ")),
        sections: vec![
            Section { heading: "Results".into(), blocks: vec![Block::Pre(p.table_text.to_string())] },
            charts_section("Charts", p.charts),
            Section {
                heading: "What was simulated".into(),
                blocks: vec![
                    Block::Terms(terms),
                    Block::Para("The clients:".into()),
                    Block::Terms(clients),
                    Block::Para("The plans, as ratesim policy explain describes them (before any --set):".into()),
                    Block::Pre(p.policy_text.to_string()),
                    Block::Para("The trace:".into()),
                    Block::Pre(p.trace_text.to_string()),
                ],
            },
            reproduce_section("From the same directory, with the same files (their SHA-256 above):", p.command),
        ],
    }
}

/// What the page of a solve shows.
pub struct SolvePage<'a> {
    /// Title line: what was solved.
    pub heading: &'a str,
    /// The search and its answer, as printed.
    pub search_text: &'a str,
    /// The plan explained.
    pub policy_text: &'a str,
    /// The trace, in words.
    pub trace_text: &'a str,
    /// The client, in words.
    pub client_text: &'a str,
    /// The command line.
    pub command: &'a [String],
    /// The chart.
    pub charts: Vec<Captioned>,
}

/// The page of a solve.
pub fn solve_page(p: SolvePage<'_>) -> Page {
    Page {
        title: format!("ratesim solve: {}", p.heading),
        lead: String::new(),
        sections: vec![
            Section { heading: "Search and answer".into(), blocks: vec![Block::Pre(p.search_text.to_string())] },
            charts_section("Chart", p.charts),
            Section {
                heading: "What was simulated".into(),
                blocks: vec![
                    Block::Terms(vec![("client".to_string(), p.client_text.to_string())]),
                    Block::Para("The plan, as ratesim policy explain describes it (before the varied value):".into()),
                    Block::Pre(p.policy_text.to_string()),
                    Block::Para("The trace:".into()),
                    Block::Pre(p.trace_text.to_string()),
                ],
            },
            reproduce_section("From the same directory:", p.command),
        ],
    }
}

/// A section of charts with their captions.
fn charts_section(heading: &str, charts: Vec<Captioned>) -> Section {
    let blocks = charts.into_iter().map(|c| Block::Chart { figure: Box::new(c.figure), caption: c.caption }).collect();
    Section { heading: heading.into(), blocks }
}

/// The "Reproduce" section: `note`, then the command line.
fn reproduce_section(note: &str, command: &[String]) -> Section {
    Section { heading: "Reproduce".into(), blocks: vec![Block::Para(note.into()), Block::Pre(shell_line(command))] }
}

/// The trace in words for the report: a spec's own text (it says what
/// traffic was generated), or a recorded trace's row count and first lines.
pub fn describe_trace(path: &Path, requests: Option<u64>) -> String {
    const MAX: usize = 16 * 1024;
    use std::io::{BufRead, Read};
    let is_spec = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let Ok(file) = std::fs::File::open(path) else { return format!("{} (no longer readable)", path.display()) };
    if is_spec {
        let mut bytes = Vec::new();
        let _ = file.take(MAX as u64 + 1).read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes);
        let mut t = match requests {
            Some(n) => format!("synthetic spec {} ({} requests generated):\n\n", path.display(), super::group(n)),
            None => format!("synthetic spec {}:\n\n", path.display()),
        };
        if text.len() > MAX {
            let cut = (0..=MAX).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            t.push_str(&text[..cut]);
            t.push_str("\n[… the rest of the spec is not shown]");
        } else {
            t.push_str(&text);
        }
        t
    } else {
        let mut t = match requests {
            Some(n) => format!("recorded trace {}: {} requests; its first lines:\n\n", path.display(), super::group(n)),
            None => format!("recorded trace {}; its first lines:\n\n", path.display()),
        };
        let mut lines = std::io::BufReader::new(file.take(MAX as u64));
        for _ in 0..8 {
            let mut line = String::new();
            if lines.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            t.push_str(&line.trim_end().chars().take(200).collect::<String>());
            t.push('\n');
        }
        t
    }
}
