//! The report pages of `run` (and, with [`crate::whatif`], of `sweep` and
//! `solve`): what goes on each, as an [`html::Page`].

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
    let charts =
        p.charts.into_iter().map(|c| Block::Chart { figure: Box::new(c.figure), caption: c.caption }).collect();
    Page {
        title: format!("ratesim run: {} {} · client {}", i.provider, i.plan, i.client),
        lead: format!("trace {} · seed {} · start {}", i.trace, i.seed, i.start),
        sections: vec![
            Section { heading: "Summary".into(), blocks: vec![Block::Pre(p.summary_text.to_string())] },
            Section { heading: "Charts".into(), blocks: charts },
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
            Section {
                heading: "Reproduce".into(),
                blocks: vec![
                    Block::Para("From the same directory, with the same files:".into()),
                    Block::Pre(shell_line(p.command)),
                ],
            },
        ],
    }
}
