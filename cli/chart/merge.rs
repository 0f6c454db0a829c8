//! Series that coincide, found before drawing: one drawn over another would hide it (three
//! policies with the same peaks showed as one line under five legend names). A series equal
//! to an earlier one joins it ("none = cheap = budget"); one that starts out equal to an
//! earlier one is drawn from where they part, and the legend says up to where they agree.

use super::{Chart, Point, Series};

/// How near two y values must be, relative to the larger, to count as the same point: the
/// legend then says the series are equal, so only rounding may separate them.
const SAME: f64 = 1e-9;

/// A series to draw: its name (joined with those it equals), its drawable points sorted by
/// x, the index of its first series (which gives its look), and how many leading points an
/// earlier series already drew.
pub struct Merged<'a> {
    pub first: usize,
    pub name: String,
    pub series: &'a Series,
    pub points: Vec<Point>,
    pub shared: Option<Shared>,
}

/// The leading points a series shares with an earlier one.
pub struct Shared {
    pub with: String,
    pub points: usize,
    /// The x of the last shared point.
    pub up_to: f64,
}

fn same_point(p: &Point, q: &Point) -> bool {
    p.x == q.x && (p.y - q.y).abs() <= SAME * p.y.abs().max(q.y.abs()) && p.hollow == q.hollow
}

fn shared_prefix(a: &[Point], b: &[Point]) -> usize {
    a.iter().zip(b).take_while(|(p, q)| same_point(p, q)).count()
}

/// `chart`'s series to draw, each once.
pub fn merge(chart: &Chart) -> Vec<Merged<'_>> {
    let mut merged: Vec<Merged> = Vec::new();
    for (i, s) in chart.series.iter().enumerate() {
        let mut points: Vec<Point> = s
            .points
            .iter()
            .filter(|p| chart.x.shows(p.x) && chart.y.shows(p.y))
            .copied()
            .collect();
        points.sort_by(|a, b| a.x.total_cmp(&b.x));
        // Nothing to draw, nothing to name: a legend entry without a line would mislead.
        if points.is_empty() {
            continue;
        }
        let equal = |m: &Merged| m.points.len() == points.len() && shared_prefix(&m.points, &points) == points.len();
        if let Some(m) = merged.iter_mut().find(|m| equal(m)) {
            m.name = format!("{} = {}", m.name, s.name);
            continue;
        }
        // The earliest series sharing the longest start; one shared point is no line.
        let shared = merged
            .iter()
            .map(|m| (m, shared_prefix(&m.points, &points)))
            .filter(|(_, n)| *n >= 2)
            .reduce(|best, next| if next.1 > best.1 { next } else { best })
            .map(|(m, n)| Shared {
                with: m.name.clone(),
                points: n,
                up_to: points[n - 1].x,
            });
        merged.push(Merged {
            first: i,
            name: s.name.clone(),
            series: s,
            points,
            shared,
        });
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::{series, Axis, Unit};

    fn chart(series: Vec<Series>) -> Chart {
        Chart {
            title: String::new(),
            x: Axis::new("batch", Unit::Count, true),
            y: Axis::new("peak", Unit::Bytes, true),
            series,
            guides: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn coinciding_series_are_drawn_once_and_named_together() {
        let c = chart(vec![
            series("none", &[1e6, 2e6, 4e6]),
            series("cheap", &[1e6, 2e6, 4e6]),
            series("sqrt", &[1e6, 1.5e6, 2e6]),
            series("budget", &[1e6, 2e6, 4e6]),
        ]);
        let merged = merge(&c);
        let names: Vec<&str> = merged.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["none = cheap = budget", "sqrt"]);
        assert_eq!(merged[1].first, 2, "sqrt keeps its own look");
        // 0.1% apart is a different line, which the legend must not call equal.
        assert_eq!(
            merge(&chart(vec![series("a", &[1.0, 2.0]), series("b", &[1.0, 2.002])])).len(),
            2
        );
    }

    #[test]
    fn a_series_that_starts_out_equal_is_drawn_from_where_it_parts() {
        let c = chart(vec![
            series("none", &[1e6, 2e6, 4e6]),
            series("sqrt", &[1e6, 2e6, 3e6, 5e6]),
            series("every:2", &[1e6, 1.5e6]),
        ]);
        let merged = merge(&c);
        let shared = merged[1].shared.as_ref().expect("sqrt starts as none");
        assert_eq!((shared.with.as_str(), shared.points, shared.up_to), ("none", 2, 2.0));
        assert!(merged[2].shared.is_none(), "one equal point is not a shared line");
    }
}
