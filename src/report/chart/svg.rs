//! A plotters drawing backend that writes compact, byte-deterministic SVG.
//!
//! Why not plotters' own `SVGBackend`: it writes text as `<text
//! font-family="sans-serif">` (so every viewer substitutes its own font
//! for the one the layout was measured with), an `opacity` attribute on
//! every element and one element per grid line. This backend writes:
//!
//! - text as outlines of the bundled font ([`super::text`]): glyph paths
//!   defined once in `<defs>` with ids `{prefix}g{glyph id}` and placed by
//!   `<use>`, inside a `<g aria-label="the text">`;
//! - consecutive lines of one style as one `<path>`;
//! - colours as `#rrggbb`, with `*-opacity` only when not opaque;
//! - integer coordinates (plotters' are integers), other numbers with a
//!   fixed number of decimals;
//! - a `<title>` (and `<desc>`) first, for screen readers and tooltips.
//!
//! Nothing depends on the clock, the machine or a random source, and ids
//! are derived from glyph ids and a caller-chosen prefix (so several charts
//! can share one HTML page without clashing).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use ab_glyph::GlyphId;
use plotters::prelude::DrawingBackend;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::DrawingErrorKind;
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, FontTransform};

use super::text::{baseline_offset, box_height, glyph_path, has_ink, layout, num, px_per_unit, text_box};

/// Error type of [`SvgCanvas`] (writing to a string cannot fail).
#[derive(Debug)]
pub struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unreachable")
    }
}

impl std::error::Error for Never {}

/// An SVG document being drawn; `present` writes it to the target string.
pub struct SvgCanvas<'a> {
    out: &'a mut String,
    size: (u32, u32),
    body: String,
    glyphs: BTreeSet<u16>,
    prefix: String,
    title: String,
    desc: String,
    /// Lines waiting to be written as one path: their style attributes and
    /// path data.
    pending: Option<(String, String)>,
}

fn colour(c: BackendColor) -> String {
    let (r, g, b) = c.rgb;
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// `name="#rrggbb"` plus `name-opacity` when translucent.
fn paint(name: &str, c: BackendColor) -> String {
    if c.alpha >= 1.0 {
        format!("{name}=\"{}\"", colour(c))
    } else {
        format!("{name}=\"{}\" {name}-opacity=\"{}\"", colour(c), num(c.alpha, 3))
    }
}

/// A shape's paint: filled with `c`, or outlined in `c` `width` wide.
fn fill_or_outline(c: BackendColor, fill: bool, width: u32) -> String {
    if fill {
        paint("fill", c)
    } else {
        format!("fill=\"none\" {} stroke-width=\"{width}\"", paint("stroke", c))
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

impl<'a> SvgCanvas<'a> {
    /// A canvas of `size` pixels, written to `out` when presented; `prefix`
    /// starts every id in the document.
    pub fn new(out: &'a mut String, size: (u32, u32), prefix: &str, title: &str, desc: &str) -> SvgCanvas<'a> {
        SvgCanvas {
            out,
            size,
            body: String::new(),
            glyphs: BTreeSet::new(),
            prefix: prefix.to_string(),
            title: title.to_string(),
            desc: desc.to_string(),
            pending: None,
        }
    }

    fn flush(&mut self) {
        if let Some((style, d)) = self.pending.take() {
            let _ = writeln!(self.body, "<path {style} d=\"{d}\"/>");
        }
    }

    /// The finished document.
    fn finish(&mut self) -> String {
        self.flush();
        let (w, h) = self.size;
        let mut out = String::with_capacity(self.body.len() + 4096);
        let _ = writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">"
        );
        let _ = writeln!(out, "<title>{}</title>", escape(&self.title));
        if !self.desc.is_empty() {
            let _ = writeln!(out, "<desc>{}</desc>", escape(&self.desc));
        }
        if !self.glyphs.is_empty() {
            out.push_str("<defs>\n");
            for g in &self.glyphs {
                let _ = writeln!(out, "<path id=\"{}g{g}\" d=\"{}\"/>", self.prefix, glyph_path(GlyphId(*g)));
            }
            out.push_str("</defs>\n");
        }
        out.push_str(&self.body);
        out.push_str("</svg>\n");
        out
    }
}

impl DrawingBackend for SvgCanvas<'_> {
    type ErrorType = Never;

    fn get_size(&self) -> (u32, u32) {
        self.size
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Never>> {
        Ok(())
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Never>> {
        *self.out = self.finish();
        Ok(())
    }

    fn draw_pixel(&mut self, p: BackendCoord, c: BackendColor) -> Result<(), DrawingErrorKind<Never>> {
        if c.alpha == 0.0 {
            return Ok(());
        }
        self.flush();
        let _ =
            writeln!(self.body, "<rect x=\"{}\" y=\"{}\" width=\"1\" height=\"1\" {}/>", p.0, p.1, paint("fill", c));
        Ok(())
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Never>> {
        let c = style.color();
        if c.alpha == 0.0 {
            return Ok(());
        }
        let attrs = format!("fill=\"none\" {} stroke-width=\"{}\"", paint("stroke", c), style.stroke_width());
        let seg = format!("M{} {}L{} {}", from.0, from.1, to.0, to.1);
        match &mut self.pending {
            Some((a, d)) if *a == attrs => d.push_str(&seg),
            _ => {
                self.flush();
                self.pending = Some((attrs, seg));
            }
        }
        Ok(())
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        a: BackendCoord,
        b: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Never>> {
        let c = style.color();
        if c.alpha == 0.0 {
            return Ok(());
        }
        self.flush();
        let (x0, x1) = (a.0.min(b.0), a.0.max(b.0));
        let (y0, y1) = (a.1.min(b.1), a.1.max(b.1));
        let paint = fill_or_outline(c, fill, style.stroke_width());
        // A filled rectangle covers its last pixel row and column, as
        // plotters' bitmap does.
        let grow = i32::from(fill);
        let _ = writeln!(
            self.body,
            "<rect x=\"{x0}\" y=\"{y0}\" width=\"{}\" height=\"{}\" {paint}/>",
            x1 - x0 + grow,
            y1 - y0 + grow
        );
        Ok(())
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Never>> {
        let c = style.color();
        if c.alpha == 0.0 {
            return Ok(());
        }
        self.flush();
        let points = points_attribute(path);
        let _ = writeln!(
            self.body,
            "<polyline fill=\"none\" {} stroke-width=\"{}\" stroke-linejoin=\"round\" points=\"{points}\"/>",
            paint("stroke", c),
            style.stroke_width()
        );
        Ok(())
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Never>> {
        let c = style.color();
        if c.alpha == 0.0 {
            return Ok(());
        }
        self.flush();
        let paint = fill_or_outline(c, fill, style.stroke_width());
        let _ = writeln!(self.body, "<circle cx=\"{}\" cy=\"{}\" r=\"{radius}\" {paint}/>", center.0, center.1);
        Ok(())
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Never>> {
        let c = style.color();
        if c.alpha == 0.0 {
            return Ok(());
        }
        self.flush();
        let points = points_attribute(vert);
        let _ = writeln!(self.body, "<polygon {} points=\"{points}\"/>", paint("fill", c));
        Ok(())
    }

    fn estimate_text_size<T: BackendTextStyle>(
        &self,
        text: &str,
        style: &T,
    ) -> Result<(u32, u32), DrawingErrorKind<Never>> {
        Ok(text_box(text, style.size()))
    }

    fn draw_text<T: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Never>> {
        let c = style.color();
        if c.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        self.flush();
        let size = style.size();
        let l = layout(text);
        let k = px_per_unit(size);
        let (lx, ly) = anchor_offset(style, l.width as f64 * k, size);
        let place = match style.transform() {
            FontTransform::Rotate90 => format!("translate({} {}) rotate(90) ", pos.0, pos.1),
            FontTransform::Rotate180 => format!("translate({} {}) rotate(180) ", pos.0, pos.1),
            FontTransform::Rotate270 => format!("translate({} {}) rotate(-90) ", pos.0, pos.1),
            FontTransform::None => String::new(),
        };
        let (tx, ty) = match style.transform() {
            FontTransform::None => (pos.0 as f64 + lx, pos.1 as f64 + ly),
            _ => (lx, ly),
        };
        let _ = writeln!(
            self.body,
            "<g aria-label=\"{}\" transform=\"{place}translate({} {}) scale({})\" {}>",
            escape(text),
            num(tx, 2),
            num(ty, 2),
            num(k, 6),
            paint("fill", c)
        );
        for (g, x) in &l.glyphs {
            if !has_ink(*g) {
                continue;
            }
            self.glyphs.insert(g.0);
            let _ = writeln!(self.body, "<use xlink:href=\"#{}g{}\" x=\"{}\"/>", self.prefix, g.0, num(*x as f64, 1));
        }
        self.body.push_str("</g>\n");
        Ok(())
    }
}

/// Where a string's baseline origin sits relative to its anchor point, for
/// a string `width` pixels wide at `size` (plotters' anchors: the box is
/// `box_height(size)` high, capitals centred in it).
pub(super) fn anchor_offset<T: BackendTextStyle>(style: &T, width: f64, size: f64) -> (f64, f64) {
    let height = box_height(size);
    let dx = match style.anchor().h_pos {
        HPos::Left => 0.0,
        HPos::Right => -width,
        HPos::Center => -width / 2.0,
    };
    let dy = match style.anchor().v_pos {
        VPos::Top => 0.0,
        VPos::Center => -height / 2.0,
        VPos::Bottom => -height,
    };
    (dx, dy + baseline_offset(size))
}

/// The `points` attribute of a polyline or polygon: `x,y` pairs separated
/// by spaces.
fn points_attribute<I: IntoIterator<Item = BackendCoord>>(coords: I) -> String {
    let mut points = String::new();
    for (i, (x, y)) in coords.into_iter().enumerate() {
        if i > 0 {
            points.push(' ');
        }
        let _ = write!(points, "{x},{y}");
    }
    points
}
