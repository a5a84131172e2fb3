//! Text in charts: the bundled DejaVu Sans, laid out and drawn by ratesim
//! itself, the same way in SVG and PNG.
//!
//! plotters writes SVG text as `<text font-family="sans-serif">`, which
//! each viewer sets in whatever font it has: the labels plotters measured
//! with one font are drawn with another (wider ones overflow their boxes),
//! and a chart looks different in a browser, `rsvg-convert` and an image
//! viewer. Here every string is drawn as the outlines of the bundled
//! font's glyphs: in SVG each glyph used is a `<path>` defined once in
//! `<defs>` and placed with `<use>`; in PNG the same outlines are
//! rasterized. The text stays machine-readable in an `aria-label` on its
//! group. Widths come from the font's advances and kerning (exact integers
//! in font units), so a layout computed here is the layout drawn.
//!
//! Sizes are plotters' font sizes: the font is scaled so that its ascent
//! plus descent is the size in pixels (an em of 0.86 × size for DejaVu
//! Sans), and a text box is `size / 1.24` high, as plotters measures it.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, GlyphId, OutlineCurve};

static FONT_BYTES: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// The bundled font.
pub(super) fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| {
        // The bundled font is valid; a failure here is a build defect.
        FontRef::try_from_slice(FONT_BYTES).expect("the bundled DejaVu Sans font parses")
    })
}

/// Registers the bundled font with plotters as `sans-serif`, so that its
/// own layout (label areas, estimated text sizes) uses the same metrics.
pub(super) fn register_with_plotters() {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        if plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT_BYTES).is_err() {
            panic!("the bundled DejaVu Sans font does not parse: the build is broken");
        }
    });
}

/// A string laid out: its glyphs and their pen positions in font units.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Layout {
    /// Glyph and x of its origin, font units from the start of the string.
    pub glyphs: Vec<(GlyphId, f32)>,
    /// Advance of the whole string, font units.
    pub width: f32,
}

/// Lays out `text` on one line: advances and kerning, as plotters measures.
pub(super) fn layout(text: &str) -> Layout {
    let f = font();
    let mut glyphs = Vec::with_capacity(text.len());
    let mut x = 0f32;
    let mut prev: Option<GlyphId> = None;
    for c in text.chars() {
        let id = f.glyph_id(c);
        if let Some(p) = prev {
            x += f.kern_unscaled(p, id);
        }
        glyphs.push((id, x));
        x += f.h_advance_unscaled(id);
        prev = Some(id);
    }
    Layout { glyphs, width: x }
}

/// Pixels per font unit at plotters font size `size`.
pub(super) fn px_per_unit(size: f64) -> f64 {
    size / font().height_unscaled() as f64
}

/// Width in pixels of `text` at `size` (what plotters estimates too).
pub fn text_width(text: &str, size: f64) -> f64 {
    layout(text).width as f64 * px_per_unit(size)
}

/// The box plotters lays `text` out in at `size`: whole pixels.
pub(super) fn text_box(text: &str, size: f64) -> (u32, u32) {
    (text_width(text, size) as u32, box_height(size) as u32)
}

/// Whether glyph `id` draws anything (a space does not).
pub(super) fn has_ink(id: GlyphId) -> bool {
    font().outline(id).is_some()
}

/// Height of a text box at `size`, as plotters measures it.
pub(super) fn box_height(size: f64) -> f64 {
    size / 1.24
}

/// Distance from a text box's top to the baseline: capitals sit centred
/// in the box.
pub(super) fn baseline_offset(size: f64) -> f64 {
    // DejaVu Sans' capital height is 1493 font units.
    (box_height(size) + 1493.0 * px_per_unit(size)) / 2.0
}

/// A number for SVG: at most `decimals` decimals, no trailing zeros, no
/// `-0`; the same value always gives the same text.
pub(super) fn num(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// The outline of glyph `id` as SVG path data, in font units with y
/// pointing down (empty for a glyph without ink, such as a space).
/// Relative commands keep it short; TrueType outlines are quadratic, with
/// points on the integer or half-integer font-unit grid, so it is exact.
pub(super) fn glyph_path(id: GlyphId) -> String {
    let Some(outline) = font().outline(id) else { return String::new() };
    let mut d = String::new();
    // Current point, and the start of the current contour.
    let mut cur = (0f32, 0f32);
    let mut start = (0f32, 0f32);
    let mut open = false;
    let p = |pt: ab_glyph::Point| (pt.x, -pt.y);
    let rel = |d: &mut String, cmd: char, pts: &[(f32, f32)], from: (f32, f32)| {
        d.push(cmd);
        for (i, (x, y)) in pts.iter().enumerate() {
            if i > 0 {
                d.push(' ');
            }
            d.push_str(&num((x - from.0) as f64, 1));
            d.push(' ');
            d.push_str(&num((y - from.1) as f64, 1));
        }
    };
    for curve in &outline.curves {
        let (first, rest): ((f32, f32), Vec<(f32, f32)>) = match *curve {
            OutlineCurve::Line(a, b) => (p(a), vec![p(b)]),
            OutlineCurve::Quad(a, b, c) => (p(a), vec![p(b), p(c)]),
            OutlineCurve::Cubic(a, b, c, e) => (p(a), vec![p(b), p(c), p(e)]),
        };
        if !open || first != cur {
            if open {
                d.push('z');
                cur = start;
            }
            rel(&mut d, 'm', &[first], cur);
            start = first;
            cur = first;
            open = true;
        }
        let cmd = match rest.len() {
            1 => 'l',
            2 => 'q',
            _ => 'c',
        };
        rel(&mut d, cmd, &rest, cur);
        cur = *rest.last().expect("a curve ends somewhere");
    }
    if open {
        d.push('z');
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_stable() {
        assert_eq!(num(1.0, 2), "1");
        assert_eq!(num(-0.0001, 2), "0");
        assert_eq!(num(2.5, 1), "2.5");
        assert_eq!(num(0.007131, 6), "0.007131");
        assert_eq!(num(120.0, 0), "120");
    }

    #[test]
    fn layout_uses_advances_and_kerning() {
        let a = layout("AV");
        let f = font();
        let (ga, gv) = (f.glyph_id('A'), f.glyph_id('V'));
        // DejaVu Sans kerns A against V.
        assert!(f.kern_unscaled(ga, gv) < 0.0);
        assert_eq!(a.width, f.h_advance_unscaled(ga) + f.kern_unscaled(ga, gv) + f.h_advance_unscaled(gv));
        assert_eq!(layout("").width, 0.0);
        // plotters measures the same width (it truncates to whole pixels).
        register_with_plotters();
        let font = plotters::style::FontDesc::from(("sans-serif", 17.0));
        let ((x0, _), (x1, _)) = font.layout_box("requests per second").unwrap();
        assert_eq!((x1 - x0) as f64, text_width("requests per second", 17.0).trunc());
    }

    #[test]
    fn glyph_paths_close_their_contours() {
        let f = font();
        let o = glyph_path(f.glyph_id('o'));
        // Two contours (outside and the hole), each closed.
        assert_eq!(o.matches('m').count(), 2, "{o}");
        assert_eq!(o.matches('z').count(), 2, "{o}");
        assert!(glyph_path(f.glyph_id(' ')).is_empty());
    }
}
