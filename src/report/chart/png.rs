//! PNG output: plotters' bitmap backend, with text drawn from the same
//! glyph outlines and layout as the SVG ([`super::text`]), so both formats
//! place every label alike.

use ab_glyph::{Font, PxScale};
use plotters::backend::BitMapBackend;
use plotters::prelude::DrawingBackend;
use plotters_backend::DrawingErrorKind;
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, FontTransform};

use super::svg::anchor_offset;
use super::text::{font, layout, px_per_unit, text_box};

/// A bitmap canvas saved as PNG on `present`.
pub struct PngCanvas<'a>(pub BitMapBackend<'a>);

type Err<'a> = DrawingErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

impl<'a> DrawingBackend for PngCanvas<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), Err<'a>> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), Err<'a>> {
        self.0.present()
    }

    fn draw_pixel(&mut self, p: BackendCoord, c: BackendColor) -> Result<(), Err<'a>> {
        self.0.draw_pixel(p, c)
    }

    fn draw_line<S: BackendStyle>(&mut self, a: BackendCoord, b: BackendCoord, s: &S) -> Result<(), Err<'a>> {
        self.0.draw_line(a, b, s)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        a: BackendCoord,
        b: BackendCoord,
        s: &S,
        fill: bool,
    ) -> Result<(), Err<'a>> {
        self.0.draw_rect(a, b, s, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        s: &S,
    ) -> Result<(), Err<'a>> {
        self.0.draw_path(path, s)
    }

    fn draw_circle<S: BackendStyle>(&mut self, c: BackendCoord, r: u32, s: &S, fill: bool) -> Result<(), Err<'a>> {
        self.0.draw_circle(c, r, s, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        s: &S,
    ) -> Result<(), Err<'a>> {
        self.0.fill_polygon(vert, s)
    }

    fn estimate_text_size<T: BackendTextStyle>(&self, text: &str, style: &T) -> Result<(u32, u32), Err<'a>> {
        Ok(text_box(text, style.size()))
    }

    fn draw_text<T: BackendTextStyle>(&mut self, text: &str, style: &T, pos: BackendCoord) -> Result<(), Err<'a>> {
        let colour = style.color();
        if colour.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let size = style.size();
        let l = layout(text);
        let k = px_per_unit(size);
        let (lx, ly) = anchor_offset(style, l.width as f64 * k, size);
        let rotate = |x: f64, y: f64| match style.transform() {
            FontTransform::None => (x, y),
            FontTransform::Rotate90 => (-y, x),
            FontTransform::Rotate180 => (-x, -y),
            FontTransform::Rotate270 => (y, -x),
        };
        let (w, h) = self.get_size();
        let f = font();
        for (id, x) in &l.glyphs {
            // Rasterize upright at the glyph's place in the string, then
            // turn each pixel about the anchor.
            let origin = ab_glyph::point((lx + *x as f64 * k) as f32, ly as f32);
            let glyph = id.with_scale_and_position(PxScale::from(size as f32), origin);
            let Some(outlined) = f.outline_glyph(glyph) else { continue };
            let b = outlined.px_bounds();
            let mut pixels = Vec::new();
            outlined.draw(|gx, gy, cover| {
                if cover > 0.0 {
                    pixels.push((b.min.x as f64 + gx as f64, b.min.y as f64 + gy as f64, cover.min(1.0)));
                }
            });
            for (x, y, cover) in pixels {
                // Turn the pixel's centre, not its corner.
                let (rx, ry) = rotate(x + 0.5, y + 0.5);
                let (px, py) = (pos.0 + (rx - 0.5).round() as i32, pos.1 + (ry - 0.5).round() as i32);
                if px >= 0 && py >= 0 && (px as u32) < w && (py as u32) < h {
                    let c = BackendColor { alpha: colour.alpha * cover as f64, rgb: colour.rgb };
                    self.0.draw_pixel((px, py), c)?;
                }
            }
        }
        Ok(())
    }
}
