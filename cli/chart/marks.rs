//! How each series looks: a colour, a marker shape and a dash pattern, all three different
//! from series to series, so lines stay apart in grey print and for colour-blind readers.

use plotters::coord::CoordTranslate;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

pub type Area<'a, CT> = DrawingArea<SVGBackend<'a>, CT>;
pub type Drawn = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// The Okabe-Ito palette, which colour-blind readers can tell apart (its yellow left out:
/// too faint on white).
const COLORS: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xb2),
    RGBColor(0xd5, 0x5e, 0x00),
    RGBColor(0x00, 0x9e, 0x73),
    RGBColor(0xcc, 0x79, 0xa7),
    RGBColor(0xe6, 0x9f, 0x00),
    RGBColor(0x56, 0xb4, 0xe9),
    RGBColor(0x00, 0x00, 0x00),
];

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    Circle,
    Square,
    TriangleUp,
    Diamond,
    TriangleDown,
    Star,
    Pentagon,
}

const SHAPES: [Shape; 7] = [
    Shape::Circle,
    Shape::Square,
    Shape::TriangleUp,
    Shape::Diamond,
    Shape::TriangleDown,
    Shape::Star,
    Shape::Pentagon,
];

/// Pixels drawn and skipped along a line; (0, 0) is a solid line.
const DASHES: [(u32, u32); 7] = [(0, 0), (12, 5), (2, 4), (6, 4), (18, 4), (3, 8), (9, 3)];

pub const LINE_WIDTH: u32 = 2;
const MARK_RADIUS: f64 = 5.0;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Look {
    pub color: RGBColor,
    pub shape: Shape,
    pub dash: (u32, u32),
}

/// The look of the `i`-th series of a chart (by its place before any merging, so a policy
/// keeps its look from one chart to the next).
pub fn look(i: usize) -> Look {
    // Past the palette, the shapes and dashes shift by a round of colours each time, so a
    // colour comes back with another marker and dash (49 looks before one repeats).
    let round = i / COLORS.len();
    Look {
        color: COLORS[i % COLORS.len()],
        shape: SHAPES[(i + round) % SHAPES.len()],
        dash: DASHES[(i + 2 * round) % DASHES.len()],
    }
}

/// A line through `points`, solid or dashed.
pub fn draw_line<CT: CoordTranslate>(area: &Area<CT>, points: Vec<CT::From>, color: RGBColor, dash: (u32, u32)) -> Drawn
where
    CT::From: Clone + 'static,
{
    let style = color.stroke_width(LINE_WIDTH);
    match dash {
        (0, _) => area.draw(&PathElement::new(points, style)),
        (on, off) => area.draw(&DashedPathElement::new(points, on, off, style)),
    }
}

/// The vertices of a shape around (0, 0), in pixels (None for a circle).
fn outline(shape: Shape) -> Option<Vec<(i32, i32)>> {
    let polygon = |corners: usize, turn: f64, radii: &[f64]| {
        (0..corners)
            .map(|k| {
                let angle = turn + std::f64::consts::TAU * k as f64 / corners as f64;
                let r = MARK_RADIUS * radii[k % radii.len()];
                ((r * angle.cos()).round() as i32, (r * angle.sin()).round() as i32)
            })
            .collect()
    };
    let up = -std::f64::consts::FRAC_PI_2;
    match shape {
        Shape::Circle => None,
        Shape::Square => Some(polygon(4, std::f64::consts::FRAC_PI_4, &[1.15])),
        Shape::TriangleUp => Some(polygon(3, up, &[1.35])),
        Shape::Diamond => Some(polygon(4, 0.0, &[1.3])),
        Shape::TriangleDown => Some(polygon(3, -up, &[1.35])),
        Shape::Star => Some(polygon(10, up, &[1.5, 0.65])),
        Shape::Pentagon => Some(polygon(5, up, &[1.2])),
    }
}

/// The series' marker at `at`: filled, or hollow (white inside) for a point the chart
/// flags (within timing noise, a prediction rather than a measurement).
pub fn draw_mark<CT: CoordTranslate>(area: &Area<CT>, at: CT::From, look: Look, hollow: bool) -> Drawn
where
    CT::From: Clone + 'static,
{
    let inside = if hollow { WHITE.filled() } else { look.color.filled() };
    let edge = look.color.stroke_width(LINE_WIDTH);
    match outline(look.shape) {
        None => {
            let r = MARK_RADIUS as i32;
            area.draw(&(EmptyElement::at(at.clone()) + Circle::new((0, 0), r, inside)))?;
            area.draw(&(EmptyElement::at(at) + Circle::new((0, 0), r, edge)))
        }
        Some(corners) => {
            let mut closed = corners.clone();
            closed.push(corners[0]);
            area.draw(&(EmptyElement::at(at.clone()) + Polygon::new(corners, inside)))?;
            area.draw(&(EmptyElement::at(at) + PathElement::new(closed, edge)))
        }
    }
}

/// A ring around a point the legend names (a policy's largest batch): the series' own
/// shape, twice its marker's size, so rings of neighbouring points stay told apart.
pub fn draw_ring<CT: CoordTranslate>(area: &Area<CT>, at: CT::From, look: Look) -> Drawn
where
    CT::From: Clone + 'static,
{
    let edge = look.color.stroke_width(LINE_WIDTH);
    match outline(look.shape) {
        None => area.draw(&(EmptyElement::at(at) + Circle::new((0, 0), (2.0 * MARK_RADIUS) as i32, edge))),
        Some(corners) => {
            let mut ring: Vec<(i32, i32)> = corners.iter().map(|&(x, y)| (2 * x, 2 * y)).collect();
            ring.push(ring[0]);
            area.draw(&(EmptyElement::at(at) + PathElement::new(ring, edge)))
        }
    }
}

/// An error bar at `x` from `low` to `high` (chart coordinates), cut at the edges of
/// `range`; an end inside it gets a short cap, an end cut off none (the bar goes on).
pub fn draw_bar<CT: CoordTranslate<From = (f64, f64)>>(
    area: &Area<CT>,
    x: f64,
    (low, high): (f64, f64),
    range: (f64, f64),
    color: RGBColor,
) -> Drawn {
    let style = color.mix(0.7).stroke_width(1);
    let (from, to) = (low.max(range.0), high.min(range.1));
    area.draw(&PathElement::new(vec![(x, from), (x, to)], style))?;
    for end in [low, high].into_iter().filter(|y| *y >= range.0 && *y <= range.1) {
        area.draw(&(EmptyElement::at((x, end)) + PathElement::new(vec![(-4, 0), (4, 0)], style)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_series_differ_in_colour_shape_and_dash_alike() {
        let looks: Vec<Look> = (0..7).map(look).collect();
        for (i, a) in looks.iter().enumerate() {
            for b in &looks[i + 1..] {
                assert!(
                    a.color != b.color && a.shape != b.shape && a.dash != b.dash,
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn past_the_palette_a_colour_comes_back_with_another_marker() {
        let looks: Vec<Look> = (0..49).map(look).collect();
        for (i, a) in looks.iter().enumerate() {
            for b in &looks[i + 1..] {
                assert!(a.color != b.color || a.shape != b.shape, "{a:?} {b:?}");
            }
        }
    }
}
