//! Headroom of one key: what the remaining header showed it over time.
//!
//! [`Headroom`] is a decision sink: for every attempt of the chosen key it
//! renders the response the client received with
//! [`crate::policy::render`] (the same path that writes production
//! responses) and reads the remaining header (`X-RateLimit-Remaining`, or
//! the policy's name for it; the IETF `RateLimit` field's `r=` when the
//! policy sends only that) and the limit header. Each point keeps the
//! lowest and highest value shown and the key's denials by status. The
//! chart draws the range shown (a band and its lowest value), the limit
//! header as a dashed line, and the denials as dots on the time axis.

use crate::policy::{render, Plan, Policy};
use crate::sim::{DecisionRecord, DecisionSink};
use crate::time::Nanos;

use super::axis::{time_axis, Axis};
use super::figure::{colour, Figure, Key, Layer, Mark, Panel};
use super::series::{Coarse, Merge, STATUSES};
use super::{RunContext, DRAW_POINTS};
use crate::report::group;

/// What one key's responses showed over one point.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeadroomPoint {
    /// Attempts of the key.
    pub attempts: u64,
    /// Lowest remaining value shown.
    pub min: Option<u64>,
    /// Highest remaining value shown.
    pub max: Option<u64>,
    /// Highest limit value shown.
    pub limit: Option<u64>,
    /// Denials by status: 429, 402, 503, other.
    pub denied: [u64; 4],
}

impl Merge for HeadroomPoint {
    fn merge(&mut self, b: &HeadroomPoint) {
        self.attempts += b.attempts;
        self.min = match (self.min, b.min) {
            (Some(a), Some(c)) => Some(a.min(c)),
            (a, c) => a.or(c),
        };
        self.max = self.max.max(b.max);
        self.limit = self.limit.max(b.limit);
        for (a, c) in self.denied.iter_mut().zip(b.denied) {
            *a += c;
        }
    }
}

/// Collects the headroom of one key from the decisions.
pub struct Headroom<'p> {
    policy: &'p Policy,
    plan: &'p Plan,
    /// The key.
    pub key: String,
    /// The points, on the run's buckets.
    pub coarse: Coarse<HeadroomPoint>,
    /// Attempts of the key that carried no remaining header.
    pub without_header: u64,
}

impl<'p> Headroom<'p> {
    /// The headroom of `key` under `plan`, on buckets `bucket` ns wide,
    /// kept within `[from_ns, to_ns)` after the trace start.
    pub fn new(
        policy: &'p Policy,
        plan: &'p Plan,
        key: &str,
        bucket: Nanos,
        from_ns: Nanos,
        to_ns: Option<Nanos>,
    ) -> Self {
        let from = from_ns / bucket;
        let to = to_ns.map_or(u64::MAX, |t| t.div_ceil(bucket).max(from + 1));
        Headroom { policy, plan, key: key.to_string(), coarse: Coarse::new(bucket, from, to), without_header: 0 }
    }

    /// The header the chart reads, as the policy names it.
    pub fn header_name(&self) -> String {
        let style = &self.policy.response;
        if style.x_ratelimit {
            style.remaining_header.clone()
        } else if style.ietf {
            "RateLimit (r=)".to_string()
        } else {
            "no remaining header".to_string()
        }
    }

    /// The remaining and limit values a rendered response shows.
    fn shown(&self, r: &crate::policy::Rendered) -> (Option<u64>, Option<u64>) {
        let style = &self.policy.response;
        if style.x_ratelimit {
            let num = |h: &str| r.header(h).and_then(|v| v.trim().parse::<u64>().ok());
            (num(&style.remaining_header), num(&style.limit_header))
        } else if style.ietf {
            let remaining = r.header("RateLimit").and_then(|v| {
                v.split(';').find_map(|part| part.trim().strip_prefix("r=").and_then(|n| n.parse::<u64>().ok()))
            });
            let limit = r.header("RateLimit-Policy").and_then(|v| {
                v.split(';').find_map(|part| part.trim().strip_prefix("q=").and_then(|n| n.parse::<u64>().ok()))
            });
            (remaining, limit)
        } else {
            (None, None)
        }
    }
}

impl DecisionSink for Headroom<'_> {
    fn decision(&mut self, d: &DecisionRecord<'_>) -> std::io::Result<()> {
        let Some(decision) = d.decision.filter(|_| d.key == self.key) else {
            return Ok(());
        };
        let rendered = render(self.policy, self.plan, decision, d.at);
        let (remaining, limit) = self.shown(&rendered);
        if remaining.is_none() {
            self.without_header += 1;
        }
        let index = d.t_ns / self.coarse.bucket;
        let Some(p) = self.coarse.at(index) else { return Ok(()) };
        let mut q = HeadroomPoint { attempts: 1, min: remaining, max: remaining, limit, ..HeadroomPoint::default() };
        if !d.allowed {
            let k = STATUSES.iter().position(|s| *s == d.status).unwrap_or(3);
            q.denied[k] = 1;
        }
        p.merge(&q);
        Ok(())
    }
}

/// The headroom figure of `h` (the run's points reach `run_end` buckets).
pub fn figure(ctx: &RunContext<'_>, h: &Headroom<'_>, run_end: u64) -> Figure {
    let mut coarse = h.coarse.clone();
    coarse.reach(run_end);
    let s = coarse.coarsened(DRAW_POINTS);
    let bucket_s = s.bucket as f64 / 1e9;
    // Dots at each point's middle; the band and line step over each point.
    let x: Vec<f64> = (0..s.points.len()).map(|i| s.x(i) + s.buckets_in(i) as f64 * bucket_s / 2.0).collect();
    let steps = super::timeline::xs(&s);
    let (from, to) = s.span();
    let (x_axis, x_desc) = time_axis(from, to, ctx.clock, 8.0);
    let header = h.header_name();
    let limit = s.points.iter().filter_map(|p| p.limit).max();
    // The scale is what the key was shown; a limit header far above it
    // (RunInfra advertises 500 for a bucket of 50) is named, not drawn.
    let highest = s.points.iter().filter_map(|p| p.max).max().unwrap_or(0);
    let limit_drawn = limit.filter(|l| *l as f64 <= 1.5 * highest.max(1) as f64);
    let y = Axis::from_zero(highest.max(limit_drawn.unwrap_or(0)).max(1) as f64 * 1.08, 5.0, "");
    let mut layers = Vec::new();
    let mut legend = Vec::new();
    let mut notes_extra = Vec::new();
    // Runs of points that showed the header: a band of the range shown
    // and a line of the lowest value.
    let band = colour::tint(colour::REQUESTS, 0.7);
    let mut run: Vec<usize> = Vec::new();
    let flush = |run: &mut Vec<usize>, layers: &mut Vec<Layer>| {
        if run.is_empty() {
            return;
        }
        let xs: Vec<f64> = run.iter().flat_map(|&i| [steps[2 * i], steps[2 * i + 1]]).collect();
        let lo: Vec<f64> = super::timeline::twice(run.iter().map(|&i| s.points[i].min.unwrap_or(0) as f64));
        let hi: Vec<f64> = super::timeline::twice(run.iter().map(|&i| s.points[i].max.unwrap_or(0) as f64));
        if run.len() == 1 {
            layers.push(Layer::Points { points: vec![(x[run[0]], lo[0])], colour: colour::REQUESTS, radius: 3 });
        } else {
            layers.push(Layer::Band { x: xs.clone(), lower: lo.clone(), upper: hi, fill: band, edge: None });
            layers.push(Layer::Line {
                points: xs.into_iter().zip(lo).collect(),
                colour: colour::REQUESTS,
                width: 2,
                dashed: false,
            });
        }
        run.clear();
    };
    for (i, p) in s.points.iter().enumerate() {
        if p.min.is_some() {
            run.push(i);
        } else {
            flush(&mut run, &mut layers);
        }
    }
    flush(&mut run, &mut layers);
    legend.push(Key::new(format!("lowest {header} shown"), Mark::Line(colour::REQUESTS, 2)));
    if s.factor > 1 {
        legend.push(Key::new("range shown within each point", Mark::Fill(band)));
    }
    if let Some(l) = limit {
        let name = if h.policy.response.x_ratelimit {
            h.policy.response.limit_header.clone()
        } else {
            "RateLimit-Policy q".to_string()
        };
        if limit_drawn.is_some() {
            layers.push(Layer::HRule { y: l as f64, colour: colour::GREY, label: String::new() });
            legend.push(Key::new(format!("{name}: {}", group(l)), Mark::Dashed(colour::GREY)));
        } else {
            notes_extra.push(format!("{name} showed {} (above the scale)", group(l)));
        }
    }
    for (k, status) in STATUSES.iter().enumerate() {
        let pts: Vec<(f64, f64)> =
            s.points.iter().enumerate().filter(|(_, p)| p.denied[k] > 0).map(|(i, _)| (x[i], 0.0)).collect();
        if pts.is_empty() {
            continue;
        }
        let c = colour::of_status(*status);
        let total: u64 = s.points.iter().map(|p| p.denied[k]).sum();
        layers.push(Layer::Points { points: pts, colour: c, radius: 3 });
        legend.push(Key::new(format!("denied {}: {}", super::timeline::status_name(k), group(total)), Mark::Dot(c)));
    }
    let attempts: u64 = s.points.iter().map(|p| p.attempts).sum();
    let mut notes = ctx.notes();
    notes.push(ctx.resolution(s.width(), s.factor));
    notes.push(format!("key {}: {} attempts in the window", h.key, group(attempts)));
    if !h.policy.response.headers_on_allowed {
        notes.push("the policy sends the headers on denials only".to_string());
    }
    notes.extend(notes_extra);
    if h.without_header > 0 {
        notes.push(format!("{} attempts carried no remaining header", group(h.without_header)));
    }
    Figure {
        title: ctx.title(&format!("Headroom of key {}", h.key)),
        notes,
        legend,
        panels: vec![Panel {
            title: String::new(),
            height: 380,
            x: x_axis,
            y,
            x_desc,
            y_desc: format!("{header} (units left)"),
            layers,
        }],
    }
}
