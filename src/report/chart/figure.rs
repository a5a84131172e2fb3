//! A chart as plain data: a [`Figure`] is a frame (title, subtitle, legend)
//! over panels of layers (bands, lines, points, cells, rules, labels).
//!
//! Every chart module builds a `Figure` from results; [`super::render`]
//! draws any figure with plotters. Tests read the figure as data, and the
//! SVG carries the same texts.

use plotters::style::RGBColor;

use super::axis::Axis;

/// Canvas width of every chart, px (readable scaled to ~800 px).
pub const WIDTH: u32 = 960;

/// The palette. Status colours are fixed across charts: 429 red, 402
/// purple, 503 brown; admitted green; requests blue; retries orange.
pub mod colour {
    use plotters::style::RGBColor;

    /// Admitted attempts.
    pub const ADMITTED: RGBColor = RGBColor(44, 160, 44);
    /// Admitted after a server-side delay (nginx `limit_req`).
    pub const DELAYED: RGBColor = RGBColor(23, 100, 23);
    /// 429 denials.
    pub const DENIED_429: RGBColor = RGBColor(214, 39, 40);
    /// 402 denials.
    pub const DENIED_402: RGBColor = RGBColor(148, 103, 189);
    /// 503 denials.
    pub const DENIED_503: RGBColor = RGBColor(140, 86, 75);
    /// Denials with another status.
    pub const DENIED_OTHER: RGBColor = RGBColor(127, 127, 127);
    /// New requests, first attempts.
    pub const REQUESTS: RGBColor = RGBColor(31, 119, 180);
    /// Retries.
    pub const RETRIES: RGBColor = RGBColor(255, 127, 14);
    /// Job status polls.
    pub const POLLS: RGBColor = RGBColor(23, 190, 207);
    /// Envelopes, references.
    pub const GREY: RGBColor = RGBColor(120, 120, 120);
    /// Text.
    pub const INK: RGBColor = RGBColor(34, 34, 34);
    /// Secondary text.
    pub const MUTED: RGBColor = RGBColor(85, 85, 85);
    /// Lines, one per plan, client or scenario (Tableau 10, in order).
    pub const SERIES: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];

    /// A lighter shade of `c` (`t` = 0: `c`, 1: white), opaque.
    pub fn tint(c: RGBColor, t: f64) -> RGBColor {
        let m = |v: u8| (v as f64 + (255.0 - v as f64) * t).round() as u8;
        RGBColor(m(c.0), m(c.1), m(c.2))
    }

    /// The colour of denials with `status`.
    pub fn of_status(status: u16) -> RGBColor {
        match status {
            429 => DENIED_429,
            402 => DENIED_402,
            503 => DENIED_503,
            _ => DENIED_OTHER,
        }
    }
}

/// How a legend entry is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mark {
    /// A filled square.
    Fill(RGBColor),
    /// A line of this width.
    Line(RGBColor, u32),
    /// A dashed line.
    Dashed(RGBColor),
    /// A dot.
    Dot(RGBColor),
}

/// One legend entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// What it shows.
    pub label: String,
    /// How.
    pub mark: Mark,
}

impl Key {
    /// An entry.
    pub fn new(label: impl Into<String>, mark: Mark) -> Key {
        Key { label: label.into(), mark }
    }
}

/// What is drawn in a panel, in order (later on top).
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// The area between two curves sharing their x values (a stacked
    /// area's slice, a confidence band, an envelope).
    Band {
        /// x values.
        x: Vec<f64>,
        /// Lower edge.
        lower: Vec<f64>,
        /// Upper edge.
        upper: Vec<f64>,
        /// Fill colour.
        fill: RGBColor,
        /// Colour of the upper edge, if drawn.
        edge: Option<RGBColor>,
    },
    /// A polyline.
    Line {
        /// Points.
        points: Vec<(f64, f64)>,
        /// Colour.
        colour: RGBColor,
        /// Stroke width.
        width: u32,
        /// Dashed.
        dashed: bool,
    },
    /// Dots.
    Points {
        /// Centres.
        points: Vec<(f64, f64)>,
        /// Colour.
        colour: RGBColor,
        /// Radius, px.
        radius: u32,
    },
    /// Filled rectangles in data coordinates (heatmap cells, bars).
    Rects {
        /// `(x0, y0, x1, y1, fill)`.
        rects: Vec<(f64, f64, f64, f64, RGBColor)>,
    },
    /// Texts centred at data points.
    Labels {
        /// `(x, y, text, colour)`.
        items: Vec<(f64, f64, String, RGBColor)>,
    },
    /// A vertical rule across the panel, labelled at its top.
    VRule {
        /// Where.
        x: f64,
        /// Colour.
        colour: RGBColor,
        /// Label (may be empty).
        label: String,
    },
    /// A horizontal dashed rule, labelled at its right end.
    HRule {
        /// Where.
        y: f64,
        /// Colour.
        colour: RGBColor,
        /// Label (may be empty).
        label: String,
    },
}

/// One panel: axes and layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    /// A heading over the panel (empty: none), e.g. which client it shows.
    pub title: String,
    /// Height of the panel, px (axis labels included).
    pub height: u32,
    /// x axis.
    pub x: Axis,
    /// y axis.
    pub y: Axis,
    /// x axis description, with its unit.
    pub x_desc: String,
    /// y axis description, with its unit.
    pub y_desc: String,
    /// Layers, drawn in order.
    pub layers: Vec<Layer>,
}

/// A whole chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// What was simulated, in a line.
    pub title: String,
    /// Further facts, joined with ` · ` and wrapped to the width.
    pub notes: Vec<String>,
    /// Legend, above the panels (it never covers data).
    pub legend: Vec<Key>,
    /// Panels, top to bottom.
    pub panels: Vec<Panel>,
}

impl Figure {
    /// Every text the figure shows in its frame: title, notes, legend.
    pub fn texts(&self) -> Vec<String> {
        let mut t = vec![self.title.clone()];
        t.extend(self.notes.iter().cloned());
        t.extend(self.legend.iter().map(|k| k.label.clone()));
        t
    }
}
