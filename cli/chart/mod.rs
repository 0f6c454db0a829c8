//! Line charts as SVG, drawn with `plotters`, for `train --plot`, `remat` and `scale`: what a
//! chart holds (series of points, reference lines, notes) and the one call that draws them.
//! Drawing is in `draw`, the legend beside the plot in `legend`, ticks in `axis`, each
//! series' colour, marker and dash in `marks`, and series that coincide found in `merge`.

mod axis;
mod draw;
mod legend;
mod marks;
mod merge;

pub use axis::{Axis, Unit};
use plotters::prelude::*;

/// One chart's size in pixels; charts in one file stack top to bottom.
const WIDTH: u32 = 1000;
const HEIGHT: u32 = 460;

pub struct Chart {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
    pub guides: Vec<Guide>,
    /// Lines under the legend that say what the chart's marks mean.
    pub notes: Vec<String>,
}

pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
    /// A fact the legend gives beside the name (a policy's largest batch), rather than a
    /// label on the plot that could land on another.
    pub detail: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    /// Drawn as an error bar of ± this much, when known.
    pub spread: Option<f64>,
    /// Drawn hollow: a point the chart's notes say to read with care.
    pub hollow: bool,
    /// Ringed: the point the series' detail is about.
    pub ringed: bool,
}

impl Point {
    pub fn at(x: f64, y: f64) -> Self {
        Point {
            x,
            y,
            ..Default::default()
        }
    }
}

/// A reference line across the plot, named in the legend.
pub struct Guide {
    pub at: f64,
    pub vertical: bool,
    pub label: String,
    pub kind: GuideKind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GuideKind {
    /// A bound the data must stay under (a memory limit): drawn in red, labelled on the plot.
    Limit,
    /// A point of reference (the best epoch): grey, named in the legend only.
    Reference,
}

/// `charts` as one SVG document, stacked top to bottom.
pub fn svg(charts: &[Chart]) -> anyhow::Result<String> {
    // Each chart is as tall as its legend needs, and never shorter than HEIGHT.
    let heights: Vec<u32> = charts.iter().map(|c| HEIGHT.max(draw::legend_height(c))).collect();
    let mut text = String::new();
    {
        let size = (WIDTH, heights.iter().sum::<u32>().max(HEIGHT));
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE)?;
        let mut rest = root.clone();
        for (chart, &height) in charts.iter().zip(&heights) {
            let (area, below) = rest.split_vertically(height);
            draw::chart(&area, chart)?;
            rest = below;
        }
        root.present()?;
    }
    Ok(text)
}

/// A series at x = 1, 2, 3, ... for the chart's tests.
#[cfg(test)]
fn series(name: &str, ys: &[f64]) -> Series {
    Series {
        name: name.to_string(),
        points: ys
            .iter()
            .enumerate()
            .map(|(i, &y)| Point::at(i as f64 + 1.0, y))
            .collect(),
        detail: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>) -> Chart {
        Chart {
            title: "Peak memory vs depth".to_string(),
            x: Axis::new("depth", Unit::Count, true),
            y: Axis::new("peak", Unit::Bytes, true),
            series,
            guides: vec![Guide {
                at: 64.0 * 1048576.0,
                vertical: false,
                label: "limit 64 MiB".to_string(),
                kind: GuideKind::Limit,
            }],
            notes: vec!["hollow: predicted".to_string()],
        }
    }

    /// The words of every <text> element (plotters puts them on lines of their own).
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim().to_string()))
            .collect()
    }

    #[test]
    fn the_svg_is_one_document_with_every_legend_name_and_no_decimal_megabytes() {
        let text = svg(&[chart(vec![
            series("none", &[3e6, 6e6, 12e6]),
            series("cheap", &[3e6, 6e6, 12e6]),
            series("sqrt", &[3e6, 4e6, 5e6]),
        ])])
        .unwrap();
        assert!(
            text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
            "{text}"
        );
        assert_eq!(text.matches("<svg").count(), 1);
        let words = texts(&text);
        for expected in ["none = cheap", "sqrt", "limit 64 MiB", "peak (log scale)", "8 MiB"] {
            assert!(words.iter().any(|w| w == expected), "{expected} in {words:?}");
        }
        assert!(
            !words.iter().any(|w| w.ends_with('M')) && !text.contains("NaN"),
            "{words:?}"
        );
    }

    #[test]
    fn points_a_log_axis_cannot_place_are_left_out_not_drawn_as_nan() {
        let text = svg(&[chart(vec![series("none", &[0.0, f64::NAN, 4e6])])]).unwrap();
        assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
    }

    /// The height an SVG document declares.
    fn declared_height(svg: &str) -> u32 {
        let at = svg.find("height=\"").expect("a height") + 8;
        svg[at..].split('"').next().unwrap().parse().unwrap()
    }

    #[test]
    fn a_chart_grows_to_hold_a_long_legend_and_no_shorter_one_changes() {
        let few = chart(vec![series("none", &[1e6, 2e6]), series("sqrt", &[1e6, 1.5e6])]);
        assert_eq!(declared_height(&svg(&[few]).unwrap()), HEIGHT);
        let many = || {
            let series = (0..20).map(|i| series(&format!("revolve:{i}"), &[1e6, 2e6 + 1e5 * f64::from(i)]));
            chart(series.collect())
        };
        let tall = svg(&[many()]).unwrap();
        let needed = draw::legend_height(&many());
        assert!(needed > HEIGHT && declared_height(&tall) == needed, "{needed}");
    }
}
