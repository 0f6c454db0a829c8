//! One chart drawn with plotters: the plot on the left (axes with round ticks, reference
//! lines, each series' line, error bars and markers) and its legend on the right, where no
//! text can land on the data.

use super::axis;
use super::axis::Ticks;
use super::legend::{self, Entry};
use super::marks::{self, Area, Drawn};
use super::merge::{merge, Merged};
use super::{Chart, GuideKind, Point, WIDTH};
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;

const LEGEND_WIDTH: u32 = 300;
/// The title above a chart, with its space (`titled`, 22 px), and a margin below the legend.
const TITLE_ROOM: u32 = 48;
pub const FONT: &str = "sans-serif";
const LIMIT_RED: RGBColor = RGBColor(0xb0, 0x00, 0x20);
const REFERENCE_GREY: RGBColor = RGBColor(0x70, 0x70, 0x70);
const GRID: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);

/// A guide's colour and dash.
pub fn guide_look(kind: GuideKind) -> (RGBColor, (u32, u32)) {
    match kind {
        GuideKind::Limit => (LIMIT_RED, (10, 4)),
        GuideKind::Reference => (REFERENCE_GREY, (4, 3)),
    }
}

/// An axis as plotters sees it: a range in chart coordinates with our own round ticks and
/// their labels (plotters' own ticks fall on fractions of an epoch, and know no KiB).
struct Scale {
    range: (f64, f64),
    ticks: Ticks,
}

impl Ranged for Scale {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let share = (v - self.range.0) / (self.range.1 - self.range.0);
        limit.0 + ((limit.1 - limit.0) as f64 * share).round() as i32
    }

    /// The ticks are the grid's bold lines; no light lines between them.
    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.at.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.0..self.range.1
    }
}

impl ValueFormatter<f64> for Scale {
    /// The label of the tick nearest `v`.
    fn format_ext(&self, v: &f64) -> String {
        let ticks = &self.ticks;
        ticks
            .at
            .iter()
            .zip(&ticks.labels)
            .min_by(|a, b| (a.0 - v).abs().total_cmp(&(b.0 - v).abs()))
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    }
}

/// Pixels between the points of neighbouring series at one x, when the chart has error
/// bars: side by side, the bars of series measured at the same x stay apart.
const DODGE: f64 = 7.0;

fn drawable(chart: &Chart, p: &Point) -> bool {
    chart.x.shows(p.x) && chart.y.shows(p.y)
}

/// How far error bars may stretch the y range past the points, in units of the larger of
/// the points' own span and the median bar: one wild bar (a step that stalled) must not
/// flatten every line; it runs off the plot instead, uncapped.
const BAR_REACH: f64 = 1.0;

/// The chart ranges (in chart coordinates) that hold every drawable point, every guide,
/// and the error bars as far as `BAR_REACH` lets them.
fn ranges(chart: &Chart) -> ((f64, f64), (f64, f64)) {
    let points: Vec<&Point> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter(|p| drawable(chart, p)))
        .collect();
    let guides = |vertical: bool| {
        chart
            .guides
            .iter()
            .filter(move |g| g.vertical == vertical)
            .map(|g| g.at)
    };
    let xs = points.iter().map(|p| p.x).chain(guides(true));
    let (lo, hi) = points
        .iter()
        .map(|p| p.y)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
    let mut spreads: Vec<f64> = points.iter().filter_map(|p| p.spread).collect();
    spreads.sort_by(f64::total_cmp);
    let median = spreads.get(spreads.len() / 2).copied().unwrap_or(0.0);
    let reach = BAR_REACH * (hi - lo).max(median);
    let bars = points
        .iter()
        .filter_map(|p| p.spread.map(|s| (p.y, s)))
        .flat_map(|(y, s)| [(y - s).max(lo - reach), (y + s).min(hi + reach)]);
    let ys = points.iter().map(|p| p.y).chain(bars).chain(guides(false));
    (chart.x.range(xs), chart.y.range(ys))
}

/// Pixels left of the plot for the y ticks' labels and the axis title beside them: the
/// longest label at about 9 pixels a character (the 16-pixel font), at least the usual 92.
fn y_label_room(labels: &[String]) -> u32 {
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u32;
    (longest * 9 + 36).max(92)
}

pub fn chart(area: &Area<Shift>, chart: &Chart) -> Drawn {
    let area = area.titled(&chart.title, (FONT, 22))?;
    let (plot, side) = area.split_horizontally(WIDTH - LEGEND_WIDTH);
    let (x_range, y_range) = ranges(chart);
    let x_scale = Scale {
        range: x_range,
        ticks: chart.x.ticks(x_range),
    };
    let y_scale = Scale {
        range: y_range,
        ticks: chart.y.ticks(y_range),
    };
    let mut ctx = ChartBuilder::on(&plot)
        .margin(12)
        .margin_right(24)
        .x_label_area_size(52)
        .y_label_area_size(y_label_room(&y_scale.ticks.labels))
        .build_cartesian_2d(x_scale, y_scale)?;
    ctx.configure_mesh()
        .x_desc(chart.x.title())
        .y_desc(chart.y.title())
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 17))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .draw()?;
    let plotting = ctx.plotting_area();
    draw_guides(plotting, chart, (x_range, y_range))?;
    let merged = merge(chart);
    // Error bars at one x are set apart; named places are apart already.
    let dodging =
        chart.x.categories.is_none() && chart.series.iter().flat_map(|s| &s.points).any(|p| p.spread.is_some());
    let pixel = (x_range.1 - x_range.0) / f64::from(plotting.dim_in_pixel().0.max(1));
    for layer in [Layer::Bars, Layer::Line, Layer::Marks] {
        for (k, m) in merged.iter().enumerate() {
            let shift = if dodging {
                (k as f64 - (merged.len() - 1) as f64 / 2.0) * DODGE * pixel
            } else {
                0.0
            };
            draw_series(plotting, chart, m, layer, shift, y_range)?;
        }
    }

    legend::draw(&side, &legend_entries(chart, &merged))
}

/// The height `chart` needs for its legend below its title (its plot takes what it gets).
pub fn legend_height(chart: &Chart) -> u32 {
    TITLE_ROOM + legend::height(&legend_entries(chart, &merge(chart)))
}

/// What the legend lists: each drawn series (with its detail, and up to where it shares
/// an earlier series' points), each guide, then the notes.
fn legend_entries(chart: &Chart, merged: &[Merged]) -> Vec<Entry> {
    let shared = |m: &Merged| {
        m.shared.as_ref().map(|s| {
            let x = axis::label(chart.x.unit, s.up_to, 1.0);
            format!("same as {} up to {} {x}", s.with, chart.x.label)
        })
    };
    let series = merged.iter().map(|m| Entry::Series {
        look: marks::look(m.first),
        name: m.name.clone(),
        details: m.series.detail.iter().cloned().chain(shared(m)).collect(),
    });
    let guides = chart.guides.iter().map(|g| Entry::Guide {
        kind: g.kind,
        label: g.label.clone(),
    });
    let notes = chart.notes.iter().map(|n| Entry::Note(n.clone()));
    series.chain(guides).chain(notes).collect()
}

type Plotting<'a> = Area<'a, Cartesian2d<Scale, Scale>>;

fn draw_guides(plotting: &Plotting, chart: &Chart, (x_range, y_range): ((f64, f64), (f64, f64))) -> Drawn {
    for g in &chart.guides {
        let (color, dash) = guide_look(g.kind);
        let ends = if g.vertical {
            let x = chart.x.to_chart(g.at);
            vec![(x, y_range.0), (x, y_range.1)]
        } else {
            let y = chart.y.to_chart(g.at);
            vec![(x_range.0, y), (x_range.1, y)]
        };
        marks::draw_line(plotting, ends, color, dash)?;
        // A limit is also named on the plot, at the left end just above its line, where
        // peaks (which grow to the right) are lowest.
        if g.kind == GuideKind::Limit && !g.vertical {
            let style = TextStyle::from((FONT, 15).into_font())
                .color(&color)
                .pos(Pos::new(HPos::Left, VPos::Bottom));
            let at = (x_range.0, chart.y.to_chart(g.at));
            plotting.draw(&(EmptyElement::at(at) + Text::new(g.label.clone(), (6, -4), style)))?;
        }
    }
    Ok(())
}

/// Which part of the series a pass draws: every series' bars go under every line, and
/// every line under every marker, so no line hides another series' point.
#[derive(Clone, Copy, PartialEq)]
enum Layer {
    Bars,
    Line,
    Marks,
}

/// One layer of one (merged) series, `shift` to the side in chart coordinates; the points
/// an earlier series drew are left to it (its line starts at the last of them). Error bars
/// stop at the edges of `y_range`.
fn draw_series(plotting: &Plotting, chart: &Chart, m: &Merged, layer: Layer, shift: f64, y_range: (f64, f64)) -> Drawn {
    let look = marks::look(m.first);
    let at = |p: &Point| (chart.x.to_chart(p.x) + shift, chart.y.to_chart(p.y));
    let drawn_before = m.shared.as_ref().map_or(0, |s| s.points);
    let own = &m.points[drawn_before..];
    match layer {
        Layer::Bars => {
            for p in own {
                let Some(s) = p.spread.filter(|s| *s > 0.0) else {
                    continue;
                };
                let low = if chart.y.shows(p.y - s) {
                    chart.y.to_chart(p.y - s)
                } else {
                    f64::NEG_INFINITY
                };
                let high = chart.y.to_chart(p.y + s);
                let x = at(p).0;
                marks::draw_bar(plotting, x, (low, high), y_range, look.color)?;
            }
        }
        Layer::Line => {
            let line = m.points[drawn_before.saturating_sub(1)..].iter().map(at).collect();
            marks::draw_line(plotting, line, look.color, look.dash)?;
        }
        Layer::Marks => {
            for p in own {
                marks::draw_mark(plotting, at(p), look, p.hollow)?;
            }
            for p in m.points.iter().filter(|p| p.ringed) {
                marks::draw_ring(plotting, at(p), look)?;
            }
        }
    }
    Ok(())
}
