//! The HTML report (`--report FILE.html` on `run`, `sweep` and `solve`):
//! one self-contained page that opens from disk with no network.
//!
//! A page is plain data ([`Page`]: sections of blocks: paragraphs, term
//! lists, preformatted text, tables, charts) rendered by [`render`] with
//! fixed formatting: charts inline as SVG (each with its own id prefix),
//! the style sheet inline, no script, no external resource, no timestamp.
//! The same inputs give the same bytes.

use std::fmt::Write as _;

use super::chart::{self, Figure};

/// One piece of a section.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    /// A paragraph of text.
    Para(String),
    /// Terms and their descriptions.
    Terms(Vec<(String, String)>),
    /// Preformatted text (a summary as printed, a command line).
    Pre(String),
    /// A table: header, rows; columns whose cells are right-aligned.
    Table {
        /// Column names.
        head: Vec<String>,
        /// Rows of cells.
        rows: Vec<Vec<String>>,
        /// Right-align column `i` (numbers).
        numeric: Vec<bool>,
    },
    /// A chart and its caption.
    Chart {
        /// The chart.
        figure: Box<Figure>,
        /// What it shows.
        caption: String,
    },
}

/// A titled section.
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    /// Heading.
    pub heading: String,
    /// Content.
    pub blocks: Vec<Block>,
}

/// A report page.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// The page title (and its heading).
    pub title: String,
    /// A line under the heading.
    pub lead: String,
    /// Sections, in order.
    pub sections: Vec<Section>,
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
:root { color-scheme: light; }
body { margin: 0; background: #f4f4f2; color: #222; font: 16px/1.45 system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.25em; margin: 32px 0 10px; border-bottom: 1px solid #ccc; padding-bottom: 4px; }
p.lead { color: #555; margin: 0 0 8px; }
pre { background: #fff; border: 1px solid #ddd; padding: 10px 12px; overflow-x: auto; font: 13px/1.4 ui-monospace, 'DejaVu Sans Mono', monospace; }
table { border-collapse: collapse; background: #fff; font-size: 14px; margin: 6px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eee; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 6px 0; }
dt { font-weight: 600; }
dd { margin: 0; }
figure { margin: 18px 0; background: #fff; border: 1px solid #ddd; padding: 8px; }
figure svg { display: block; width: 100%; height: auto; }
figcaption { color: #444; font-size: 14px; margin-top: 6px; }
";

/// The page as HTML.
pub fn render(page: &Page) -> Result<String, String> {
    let mut o = String::new();
    let _ = writeln!(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">");
    let _ = writeln!(o, "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    let _ = writeln!(o, "<title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<main>", escape(&page.title));
    let _ = writeln!(o, "<h1>{}</h1>", escape(&page.title));
    if !page.lead.is_empty() {
        let _ = writeln!(o, "<p class=\"lead\">{}</p>", escape(&page.lead));
    }
    let mut charts = 0;
    for s in &page.sections {
        let _ = writeln!(o, "<h2>{}</h2>", escape(&s.heading));
        for b in &s.blocks {
            match b {
                Block::Para(t) => {
                    let _ = writeln!(o, "<p>{}</p>", escape(t));
                }
                Block::Terms(items) => {
                    o.push_str("<dl>\n");
                    for (t, d) in items {
                        let _ = writeln!(o, "<dt>{}</dt><dd>{}</dd>", escape(t), escape(d));
                    }
                    o.push_str("</dl>\n");
                }
                Block::Pre(t) => {
                    let _ = writeln!(o, "<pre>{}</pre>", escape(t.trim_end()));
                }
                Block::Table { head, rows, numeric } => {
                    o.push_str("<table>\n<tr>");
                    for h in head {
                        let _ = write!(o, "<th>{}</th>", escape(h));
                    }
                    o.push_str("</tr>\n");
                    for r in rows {
                        o.push_str("<tr>");
                        for (i, c) in r.iter().enumerate() {
                            let class = if numeric.get(i).copied().unwrap_or(false) { " class=\"n\"" } else { "" };
                            let _ = write!(o, "<td{class}>{}</td>", escape(c));
                        }
                        o.push_str("</tr>\n");
                    }
                    o.push_str("</table>\n");
                }
                Block::Chart { figure, caption } => {
                    charts += 1;
                    let svg = chart::to_svg(figure, &format!("c{charts}-"))?;
                    let _ = writeln!(
                        o,
                        "<figure id=\"chart-{charts}\">\n{}<figcaption>{}</figcaption>\n</figure>",
                        svg,
                        escape(caption)
                    );
                }
            }
        }
    }
    o.push_str("</main>\n</body>\n</html>\n");
    Ok(o)
}

/// A command line as a shell would take it back: each argument quoted
/// when it holds anything but plain characters.
pub fn shell_line(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let args: Vec<String> = [
            "ratesim",
            "run",
            "--client",
            "openai-python,pace=bucket:500:1min:50",
            "--clients",
            "none;fixed-1s",
            "--x",
            "it's",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            shell_line(&args),
            "ratesim run --client openai-python,pace=bucket:500:1min:50 --clients 'none;fixed-1s' --x 'it'\\''s'"
        );
    }

    #[test]
    fn pages_escape_text_and_number_their_charts() {
        let page = Page {
            title: "a < b".into(),
            lead: String::new(),
            sections: vec![Section {
                heading: "S".into(),
                blocks: vec![Block::Table {
                    head: vec!["x".into()],
                    rows: vec![vec!["1 & 2".into()]],
                    numeric: vec![true],
                }],
            }],
        };
        let html = render(&page).unwrap();
        assert!(html.contains("<title>a &lt; b</title>"));
        assert!(html.contains("<td class=\"n\">1 &amp; 2</td>"));
        assert!(!html.contains("<script") && !html.contains(" src="), "self-contained, no script");
    }
}
