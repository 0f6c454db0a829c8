//! Minimal SVG line charts for `train --plot`, `remat` and `scale`: one line per series,
//! optional log axes. Points that cannot be drawn (NaN, infinite, or not positive on a log
//! axis) are left out, so every chart is valid SVG with readable ticks.

use std::fmt::Write;

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// A point to ring and label (a policy's maximum), if any.
    pub mark: Option<((f64, f64), String)>,
}

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// The points of `series` a chart can draw.
fn drawable(series: &[Series], log_x: bool, log_y: bool) -> Vec<Series> {
    let ok = |(x, y): (f64, f64)| x.is_finite() && y.is_finite() && (!log_x || x > 0.0) && (!log_y || y > 0.0);
    series
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            points: s.points.iter().copied().filter(|&p| ok(p)).collect(),
            mark: s.mark.clone().filter(|(p, _)| ok(*p)),
        })
        .collect()
}

/// Charts stacked in one SVG document, top to bottom.
pub fn stacked(charts: &[String]) -> String {
    let (w, h) = (720.0, 440.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}">"#,
        h * charts.len() as f64
    );
    for (i, chart) in charts.iter().enumerate() {
        let _ = write!(
            s,
            r#"<g transform="translate(0,{})">{}</g>"#,
            h * i as f64,
            chart.trim_end()
        );
    }
    s.push_str("</svg>\n");
    s
}

pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series], log_x: bool, log_y: bool) -> String {
    let series = &drawable(series, log_x, log_y);
    let (w, h, left, right, top, bottom) = (720.0, 440.0, 80.0, 170.0, 40.0, 60.0);
    let tx = |v: f64| if log_x { v.max(1e-300).log10() } else { v };
    let ty = |v: f64| if log_y { v.max(1e-300).log10() } else { v };
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(x, y)| (tx(x), ty(y))))
        .collect();
    let (mut x0, mut x1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (mut y0, mut y1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if pts.is_empty() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-12 {
        y1 = y0 + 1.0;
    }
    let pad = (y1 - y0) * 0.05;
    let (y0, y1) = (if log_y { y0 - pad } else { y0.min(0.0) }, y1 + pad);
    let px = |x: f64| left + (tx(x) - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| h - bottom - (ty(y) - y0) / (y1 - y0) * (h - top - bottom);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="24" font-size="15" text-anchor="middle">{title}</text>"#,
        w / 2.0
    );
    let _ = write!(
        s,
        r#"<line x1="{left}" y1="{0}" x2="{1}" y2="{0}" stroke="black"/><line x1="{left}" y1="{top}" x2="{left}" y2="{0}" stroke="black"/>"#,
        h - bottom,
        w - right
    );
    for i in 0..=4 {
        let fx = x0 + (x1 - x0) * i as f64 / 4.0;
        let fy = y0 + (y1 - y0) * i as f64 / 4.0;
        let (vx, vy) = (
            if log_x { 10f64.powf(fx) } else { fx },
            if log_y { 10f64.powf(fy) } else { fy },
        );
        let (sx, sy) = (
            left + (w - left - right) * i as f64 / 4.0,
            h - bottom - (h - top - bottom) * i as f64 / 4.0,
        );
        let _ = write!(
            s,
            r#"<text x="{sx}" y="{}" text-anchor="middle">{}</text>"#,
            h - bottom + 18.0,
            tick(vx)
        );
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text><line x1="{left}" y1="{sy}" x2="{}" y2="{sy}" stroke="#eee"/>"##,
            left - 6.0,
            sy + 4.0,
            tick(vy),
            w - right
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{x_label}</text>"#,
        (left + w - right) / 2.0,
        h - 15.0
    );
    let _ = write!(
        s,
        r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">{y_label}</text>"#,
        (top + h - bottom) / 2.0
    );
    for (i, ser) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let path: Vec<String> = ser
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for &(x, y) in &ser.points {
            let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#, px(x), py(y));
        }
        if let Some(((x, y), label)) = &ser.mark {
            let (mx, my) = (px(*x), py(*y));
            let _ = write!(
                s,
                r#"<circle cx="{mx:.1}" cy="{my:.1}" r="7" fill="none" stroke="{c}" stroke-width="2"/><text x="{:.1}" y="{:.1}" fill="{c}" text-anchor="end">{label}</text>"#,
                mx - 9.0,
                my - 9.0
            );
        }
        let ly = top + 10.0 + 18.0 * i as f64;
        let _ = write!(
            s,
            r#"<line x1="{0}" y1="{ly}" x2="{1}" y2="{ly}" stroke="{c}" stroke-width="2"/><text x="{2}" y="{3}">{4}</text>"#,
            w - right + 12.0,
            w - right + 32.0,
            w - right + 38.0,
            ly + 4.0,
            ser.name
        );
    }
    s.push_str("</svg>\n");
    s
}

fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}
