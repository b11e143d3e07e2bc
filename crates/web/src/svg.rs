//! Hand-made SVG charts for the dashboard and the HTML report: grouped or stacked bars, lines,
//! a funnel, estimates with error bars, a histogram, a heat grid and a scatter. Each returns one
//! self-contained `<svg>` element (no script, no external resource) with escaped labels and a
//! `<title>` per mark, so it reads the same in a browser, an email client and a saved file.

use std::fmt::Write;

use crate::views::escape;

/// Colours of series, in order.
pub const PALETTE: &[&str] = &[
    "#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#718096", "#d69e2e", "#319795",
];

/// One named series of values.
#[derive(Debug, Clone)]
pub struct Series<'a> {
    pub name: &'a str,
    pub values: Vec<f64>,
}

/// Chart width: the dashboard's content width (main is 1100 px wide), so charts use the page.
const W: f64 = 1040.0;
const H: f64 = 240.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 40.0;

fn open(out: &mut String, w: f64, h: f64, label: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"100%\" \
         style=\"max-width:{w}px;font:11px sans-serif\" role=\"img\" aria-label=\"{}\">",
        escape(label)
    );
}

/// A compact axis label: 1234 → 1.2k.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A "nice" upper bound for an axis.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn y_axis(out: &mut String, lo: f64, hi: f64, plot_h: f64, w: f64) {
    for i in 0..=4 {
        let v = lo + (hi - lo) * f64::from(i) / 4.0;
        let y = TOP + plot_h - (v - lo) / (hi - lo) * plot_h;
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e2e8f0\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#4a5568\">{}</text>",
            w - RIGHT,
            LEFT - 4.0,
            y + 4.0,
            escape(&short(v))
        );
    }
}

/// Labels under the x axis: at most 12, each cut to the room it has (`slot` px per label).
fn x_labels(out: &mut String, labels: &[String], x_of: impl Fn(usize) -> f64, h: f64, slot: f64) {
    let step = labels.len().div_ceil(12).max(1);
    let room = ((slot * step as f64) / 6.5).floor().max(3.0) as usize;
    for (i, l) in labels.iter().enumerate() {
        if i % step != 0 {
            continue;
        }
        let l = if l.chars().count() > room {
            let mut cut: String = l.chars().take(room.saturating_sub(1)).collect();
            cut.push('…');
            cut
        } else {
            l.clone()
        };
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#4a5568\">{}</text>",
            x_of(i),
            h - BOTTOM + 16.0,
            escape(&l)
        );
    }
}

fn legend(out: &mut String, series: &[Series<'_>], h: f64) {
    let mut x = LEFT;
    for (i, s) in series.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{c}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#2d3748\">{}</text>",
            h - 14.0,
            x + 14.0,
            h - 5.0,
            escape(s.name)
        );
        x += 24.0 + 7.0 * s.name.chars().count() as f64;
    }
}

/// Bars per label: side by side, or stacked.
pub fn bars(label: &str, labels: &[String], series: &[Series<'_>], stacked: bool) -> String {
    let mut out = String::new();
    open(&mut out, W, H, label);
    let n = labels.len().max(1);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let max = if stacked {
        (0..n)
            .map(|i| {
                series
                    .iter()
                    .map(|s| s.values.get(i).copied().unwrap_or(0.0).max(0.0))
                    .sum::<f64>()
            })
            .fold(0.0, f64::max)
    } else {
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .fold(0.0, f64::max)
    };
    let hi = nice_max(max);
    y_axis(&mut out, 0.0, hi, plot_h, W);
    let slot = plot_w / n as f64;
    let k = if stacked { 1 } else { series.len().max(1) };
    let bw = (slot * 0.8 / k as f64).max(1.0);
    for i in 0..n {
        let mut base = 0.0;
        for (j, s) in series.iter().enumerate() {
            let v = s.values.get(i).copied().unwrap_or(0.0).max(0.0);
            let hgt = v / hi * plot_h;
            let x = LEFT + slot * i as f64 + slot * 0.1 + if stacked { 0.0 } else { bw * j as f64 };
            let y = TOP + plot_h - hgt - if stacked { base / hi * plot_h } else { 0.0 };
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{hgt:.1}\" fill=\"{}\">\
                 <title>{} {}: {}</title></rect>",
                PALETTE[j % PALETTE.len()],
                escape(labels.get(i).map(String::as_str).unwrap_or("")),
                escape(s.name),
                escape(&short(v))
            );
            if stacked {
                base += v;
            }
        }
    }
    x_labels(
        &mut out,
        labels,
        |i| LEFT + slot * (i as f64 + 0.5),
        H,
        slot,
    );
    legend(&mut out, series, H);
    out.push_str("</svg>");
    out
}

/// Lines per series over the labels. `percent` formats the axis as shares.
pub fn lines(label: &str, labels: &[String], series: &[Series<'_>]) -> String {
    let mut out = String::new();
    open(&mut out, W, H, label);
    let n = labels.len().max(1);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let vals = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite());
    let (mn, mx) = vals.fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let hi = nice_max(mx);
    let lo = if mn < 0.0 { -nice_max(-mn) } else { 0.0 };
    y_axis(&mut out, lo, hi, plot_h, W);
    let x_of = |i: usize| {
        if n == 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (n - 1) as f64
        }
    };
    for (j, s) in series.iter().enumerate() {
        let c = PALETTE[j % PALETTE.len()];
        let pts: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| {
                format!(
                    "{:.1},{:.1}",
                    x_of(i),
                    TOP + plot_h - (v - lo) / (hi - lo) * plot_h
                )
            })
            .collect();
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>",
            pts.join(" "),
            escape(s.name)
        );
        for (i, v) in s.values.iter().enumerate().filter(|(_, v)| v.is_finite()) {
            let _ = write!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{c}\"><title>{} {}: {}</title></circle>",
                x_of(i),
                TOP + plot_h - (v - lo) / (hi - lo) * plot_h,
                escape(labels.get(i).map(String::as_str).unwrap_or("")),
                escape(s.name),
                escape(&short(*v))
            );
        }
    }
    x_labels(
        &mut out,
        labels,
        x_of,
        H,
        plot_w / n.max(2).saturating_sub(1) as f64,
    );
    legend(&mut out, series, H);
    out.push_str("</svg>");
    out
}

/// Horizontal bars, widest first: sent → opened → clicked → converted.
pub fn funnel(label: &str, steps: &[(String, f64)]) -> String {
    let mut out = String::new();
    let h = 30.0 * steps.len() as f64 + 10.0;
    open(&mut out, W, h, label);
    let max = steps.iter().map(|s| s.1).fold(0.0, f64::max).max(1.0);
    let first = steps.first().map(|s| s.1).unwrap_or(0.0);
    for (i, (name, v)) in steps.iter().enumerate() {
        let y = 5.0 + 30.0 * i as f64;
        let w = (v / max * (W - 260.0)).max(1.0);
        let share = if first > 0.0 {
            format!(" ({:.1}%)", v / first * 100.0)
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<text x=\"110\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#2d3748\">{}</text>\
             <rect x=\"118\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"22\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#2d3748\">{}{}</text>",
            y + 15.0,
            escape(name),
            PALETTE[i % PALETTE.len()],
            124.0 + w,
            y + 15.0,
            escape(&short(*v)),
            escape(&share)
        );
    }
    out.push_str("</svg>");
    out
}

/// One estimate with its 95 % interval.
#[derive(Debug, Clone)]
pub struct Estimate {
    pub label: String,
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

/// Estimates as dots with error bars around a zero line; `scale` multiplies values for display
/// (100 for percentage points).
pub fn error_bars(label: &str, items: &[Estimate], scale: f64, unit: &str) -> String {
    let mut out = String::new();
    let h = 28.0 * items.len() as f64 + 40.0;
    open(&mut out, W, h, label);
    let ext = items
        .iter()
        .flat_map(|e| [e.lo.abs(), e.hi.abs(), e.value.abs()])
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        * scale;
    let m = nice_max(ext);
    let (x0, x1) = (180.0, W - 20.0);
    let x_of = |v: f64| x0 + (v * scale + m) / (2.0 * m) * (x1 - x0);
    let zero = x_of(0.0);
    let _ = write!(
        out,
        "<line x1=\"{zero:.1}\" x2=\"{zero:.1}\" y1=\"4\" y2=\"{:.1}\" stroke=\"#a0aec0\" stroke-dasharray=\"4 3\"/>",
        h - 24.0
    );
    for (t, v) in [(-m, -m / scale), (0.0, 0.0), (m, m / scale)] {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#4a5568\">{}{}</text>",
            x_of(v),
            h - 8.0,
            escape(&short(t)),
            escape(unit)
        );
    }
    for (i, e) in items.iter().enumerate() {
        let y = 16.0 + 28.0 * i as f64;
        let c = if e.lo > 0.0 {
            "#38a169"
        } else if e.hi < 0.0 {
            "#e53e3e"
        } else {
            "#2b6cb0"
        };
        let _ = write!(
            out,
            "<text x=\"170\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#2d3748\">{}</text>\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{c}\" stroke-width=\"2\"/>\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{c}\"/>\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{c}\"/>\
             <circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{c}\"><title>{}: {:.2}{} (95% CI {:.2} to {:.2})</title></circle>",
            y + 4.0,
            escape(&e.label),
            x_of(e.lo),
            x_of(e.hi),
            x_of(e.lo),
            x_of(e.lo),
            y - 5.0,
            y + 5.0,
            x_of(e.hi),
            x_of(e.hi),
            y - 5.0,
            y + 5.0,
            x_of(e.value),
            escape(&e.label),
            e.value * scale,
            escape(unit),
            e.lo * scale,
            e.hi * scale
        );
    }
    out.push_str("</svg>");
    out
}

/// A histogram of `values` in `bins` equal-width bins.
pub fn histogram(label: &str, values: &[f64], bins: usize) -> String {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    let bins = bins.max(1);
    if finite.is_empty() {
        return bars(label, &[], &[], false);
    }
    let width = if hi > lo {
        (hi - lo) / bins as f64
    } else {
        1.0
    };
    let mut counts = vec![0.0; bins];
    for v in &finite {
        let i = (((v - lo) / width) as usize).min(bins - 1);
        counts[i] += 1.0;
    }
    let labels: Vec<String> = (0..bins).map(|i| short(lo + width * i as f64)).collect();
    bars(
        label,
        &labels,
        &[Series {
            name: "customers",
            values: counts,
        }],
        false,
    )
}

/// A grid of cells shaded by value (rows × columns), with the value written in each cell.
pub fn heat_grid(
    label: &str,
    rows: &[String],
    cols: &[String],
    values: &[Vec<f64>],
    fmt: fn(f64) -> String,
) -> String {
    let mut out = String::new();
    let (cw, ch) = (((W - 110.0) / cols.len().max(1) as f64).min(90.0), 26.0);
    let h = ch * rows.len() as f64 + 30.0;
    open(&mut out, W, h, label);
    let max = values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    for (j, c) in cols.iter().enumerate() {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"14\" text-anchor=\"middle\" fill=\"#4a5568\">{}</text>",
            110.0 + cw * (j as f64 + 0.5),
            escape(c)
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = 20.0 + ch * i as f64;
        let _ = write!(
            out,
            "<text x=\"104\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#2d3748\">{}</text>",
            y + 17.0,
            escape(r)
        );
        for (j, _) in cols.iter().enumerate() {
            let v = values
                .get(i)
                .and_then(|row| row.get(j))
                .copied()
                .unwrap_or(f64::NAN);
            let shade = if v.is_finite() && max > 0.0 {
                v / max
            } else {
                0.0
            };
            let light = 96.0 - 50.0 * shade;
            let text = if v.is_finite() { fmt(v) } else { String::new() };
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"hsl(212,60%,{light:.0}%)\" stroke=\"#fff\">\
                 <title>{} × {}: {}</title></rect>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{}\">{}</text>",
                110.0 + cw * j as f64,
                cw - 1.0,
                ch - 1.0,
                escape(r),
                escape(cols.get(j).map(String::as_str).unwrap_or("")),
                escape(&text),
                110.0 + cw * (j as f64 + 0.5),
                y + 17.0,
                if shade > 0.6 { "#fff" } else { "#1a202c" },
                escape(&text)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// Points (x, y) with a y = x diagonal: predicted against actual.
pub fn scatter(label: &str, points: &[(f64, f64)], x_name: &str, y_name: &str) -> String {
    let mut out = String::new();
    open(&mut out, W, H + 20.0, label);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let m = nice_max(
        points
            .iter()
            .flat_map(|p| [p.0, p.1])
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max),
    );
    y_axis(&mut out, 0.0, m, plot_h, W);
    let px = |v: f64| LEFT + v / m * plot_w;
    let py = |v: f64| TOP + plot_h - v / m * plot_h;
    let _ = write!(
        out,
        "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#a0aec0\" stroke-dasharray=\"4 3\"/>",
        px(0.0),
        py(0.0),
        px(m),
        py(m)
    );
    for (x, y) in points.iter().filter(|p| p.0.is_finite() && p.1.is_finite()) {
        let _ = write!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"#2b6cb0\" fill-opacity=\"0.5\"/>",
            px(*x),
            py(*y)
        );
    }
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#4a5568\">{} (0 – {})</text>\
         <text x=\"12\" y=\"{:.1}\" fill=\"#4a5568\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">{}</text>",
        LEFT + plot_w / 2.0,
        H + 6.0,
        escape(x_name),
        escape(&short(m)),
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(y_name)
    );
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_single_svgs_with_escaped_labels() {
        let labels = vec!["<a>".to_string(), "b&c".to_string()];
        let s = [Series {
            name: "x\"y",
            values: vec![1.0, 3.0],
        }];
        for svg in [
            bars("t", &labels, &s, true),
            bars("t", &labels, &s, false),
            lines("t", &labels, &s),
            funnel("f", &[("sent".into(), 10.0), ("opened".into(), 4.0)]),
            error_bars(
                "e",
                &[Estimate {
                    label: "<seg>".into(),
                    value: 0.01,
                    lo: -0.01,
                    hi: 0.03,
                }],
                100.0,
                "pp",
            ),
            histogram("h", &[1.0, 2.0, 2.5, 10.0], 4),
            heat_grid(
                "g",
                &labels,
                &labels,
                &[vec![1.0, 2.0], vec![3.0, f64::NAN]],
                short,
            ),
            scatter("s", &[(1.0, 2.0), (3.0, 1.0)], "pred", "act"),
        ] {
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
            assert_eq!(svg.matches("<svg").count(), 1);
            assert!(!svg.contains("<a>") && !svg.contains("<seg>"), "{svg}");
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        }
    }

    #[test]
    fn stacked_bars_stack_to_the_total() {
        let svg = bars(
            "t",
            &["p".into()],
            &[
                Series {
                    name: "a",
                    values: vec![30.0],
                },
                Series {
                    name: "b",
                    values: vec![70.0],
                },
            ],
            true,
        );
        // Axis max is 100; the plot is 186 px tall: heights 55.8 and 130.2 add up to the axis.
        assert!(
            svg.contains("height=\"55.8\"") && svg.contains("height=\"130.2\""),
            "{svg}"
        );
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(101.0), 150.0);
        assert_eq!(nice_max(255.0), 300.0);
        assert_eq!(short(1234.0), "1.2k");
    }
}
