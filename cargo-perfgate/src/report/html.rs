//! `cargo perfgate report`: one self-contained HTML page (inline CSS and SVG, no script, no CDN) with,
//! per scenario, the latency percentile curve (baseline vs current, log-scaled tail), throughput and
//! p99 per second, the service's CPU, RSS and open descriptors over time (with the leak checks'
//! fitted lines), the load generator's own memory, and the verdict table of the current run.
//!
//! With several results files the first is the baseline and the last the current run; the ones in
//! between are drawn as thin lines. The charts are hand-written SVG.

use std::fmt::Write as _;

use perfgate_runtime::format::{
    decode_histogram, format_ms, LatencySummary, ScenarioResult, TrendMetric,
};

use crate::report::table::summary_line;
use crate::results::{RunResults, ScenarioRun};
use crate::slo::Verdict;
use crate::text::escape_xml as esc;
use crate::text::{
    cost_rows, describe_attribution, describe_duration, describe_load, COST_COLUMNS,
};
use crate::text::{decision_value, describe_change, format_tolerance, outcome_str};

/// One results file given to `report`.
pub struct Run {
    /// What the legend calls it: `baseline`, `current`, or the run id.
    pub label: String,
    pub report: RunResults,
}

#[derive(Clone, Copy, PartialEq)]
enum XScale {
    Linear,
    /// x is `-log10(1 - q)`: 0 → p0, 1 → p90, 2 → p99, 3 → p99.9 …
    Percentile,
}

struct Series {
    name: String,
    color: &'static str,
    dashed: bool,
    thin: bool,
    points: Vec<(f64, f64)>,
}

struct Chart<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    x_scale: XScale,
    series: Vec<Series>,
    y_fmt: fn(f64) -> String,
}

const W: f64 = 540.0;
const H: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 44.0;

const CURRENT: &str = "#1f6feb";
const FIT_PASS: &str = "#1a7f37";
const FIT_FAIL: &str = "#cf222e";
const FIT_OPEN: &str = "#bf8700";
const BASELINE: &str = "#8b949e";
const MIDDLE: &str = "#a371f7";

/// A "nice" step (1, 2, 2.5 or 5 × 10^n) giving about `n` intervals over `span`.
fn nice_step(span: f64, n: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / n;
    let mag = 10f64.powf(raw.log10().floor());
    let r = raw / mag;
    let m = if r <= 1.0 {
        1.0
    } else if r <= 2.0 {
        2.0
    } else if r <= 2.5 {
        2.5
    } else if r <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

fn trim_num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

fn percentile_tick(x: f64) -> String {
    // 1 − 10^−x as a percentage: 0, 90, 99, 99.9 …
    if x == 0.0 {
        "p0".into()
    } else {
        let q = 100.0 * (1.0 - 10f64.powf(-x));
        format!("p{}", trim_num((q * 1000.0).round() / 1000.0))
    }
}

impl Chart<'_> {
    fn svg(&self) -> String {
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" \
             role=\"img\" aria-label=\"{}\">\n<rect width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>\n\
             <text x=\"{LEFT}\" y=\"20\" class=\"title\">{}</text>\n",
            esc(self.title),
            esc(self.title)
        );
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if pts.is_empty() {
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" class=\"empty\" text-anchor=\"middle\">no data</text>\n</svg>",
                W / 2.0,
                H / 2.0
            );
            return s;
        }
        let (mut x0, mut x1) = pts
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let y_max = pts.iter().fold(0.0f64, |a, p| a.max(p.1));
        if self.x_scale == XScale::Percentile {
            x0 = 0.0;
            x1 = x1.ceil().max(2.0);
        } else {
            // Time axes start at 0.
            x0 = x0.min(0.0);
            if x1 - x0 < 1.0 {
                x1 = x0 + 1.0;
            }
        }
        let y_step = nice_step(if y_max > 0.0 { y_max } else { 1.0 }, 5.0);
        let y1 = (y_max / y_step).ceil().max(1.0) * y_step;
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
        let sy = |y: f64| TOP + ph - (y / y1) * ph;

        // Grid and y ticks.
        let mut y = 0.0;
        while y <= y1 + y_step * 0.01 {
            let py = sy(y);
            let _ = writeln!(
                s,
                "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" class=\"grid\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{}</text>",
                W - RIGHT,
                LEFT - 6.0,
                py + 4.0,
                esc(&(self.y_fmt)(y))
            );
            y += y_step;
        }
        // x ticks.
        let xt: Vec<(f64, String)> = match self.x_scale {
            XScale::Percentile => (0..=(x1 as i64))
                .map(|k| (k as f64, percentile_tick(k as f64)))
                .collect(),
            XScale::Linear => {
                let step = nice_step(x1 - x0, 6.0);
                let mut v = (x0 / step).ceil() * step;
                let mut out = Vec::new();
                while v <= x1 + step * 0.01 {
                    out.push((v, trim_num(v)));
                    v += step;
                }
                out
            }
        };
        for (v, label) in xt {
            let px = sx(v);
            // The last label would overflow the chart's right edge.
            let anchor = if px > W - RIGHT - 20.0 {
                "end"
            } else {
                "middle"
            };
            let _ = writeln!(
                s,
                "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" class=\"grid\"/>\
                 <text x=\"{px:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"{anchor}\">{}</text>",
                TOP + ph,
                TOP + ph + 16.0,
                esc(&label)
            );
        }
        let _ = writeln!(
            s,
            "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" class=\"frame\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"middle\">{}</text>\
             <text x=\"14\" y=\"{:.1}\" class=\"axis\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
            LEFT + pw / 2.0,
            H - 8.0,
            esc(self.x_label),
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            esc(self.y_label)
        );
        // Lines, then the legend.
        for se in &self.series {
            let path: Vec<String> = se
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            if path.is_empty() {
                continue;
            }
            let width = if se.thin { 1.2 } else { 2.2 };
            let dash = if se.dashed {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            };
            if path.len() == 1 {
                let (x, y) = path[0].split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(
                    s,
                    "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{}\"/>",
                    se.color
                );
            } else {
                let _ = writeln!(
                    s,
                    "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"{width}\"{dash} \
                     stroke-linejoin=\"round\" points=\"{}\"/>",
                    se.color,
                    path.join(" ")
                );
            }
        }
        let mut lx = W - RIGHT - 8.0;
        for se in self.series.iter().rev() {
            let w = 30.0 + 6.5 * se.name.chars().count() as f64;
            lx -= w;
            let dash = if se.dashed {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "<line x1=\"{lx:.1}\" y1=\"16\" x2=\"{:.1}\" y2=\"16\" stroke=\"{}\" stroke-width=\"2.2\"{dash}/>\
                 <text x=\"{:.1}\" y=\"20\" class=\"legend\">{}</text>",
                lx + 20.0,
                se.color,
                lx + 24.0,
                esc(&se.name)
            );
        }
        s.push_str("</svg>");
        s
    }
}

/// Points of the percentile curve: x = −log10(1 − q), y = latency in ms. From the HDR histogram when
/// it decodes, else from the summary's percentiles.
pub fn percentile_curve(histogram: &str, summary: &LatencySummary) -> Vec<(f64, f64)> {
    if let Ok(h) = decode_histogram(histogram) {
        if !h.is_empty() {
            let n = h.len() as f64;
            // Beyond 1/n the tail is the maximum: stop there.
            let x_max = n.log10().clamp(1.0, 6.0);
            let mut pts = Vec::new();
            let steps = (x_max * 20.0).ceil() as usize;
            for i in 0..=steps {
                let x = x_max * i as f64 / steps as f64;
                let q = 1.0 - 10f64.powf(-x);
                pts.push((x, h.value_at_quantile(q) as f64 / 1000.0));
            }
            return pts;
        }
    }
    if summary.count == 0 {
        return Vec::new();
    }
    vec![
        (0.0, summary.min_ms),
        (std::f64::consts::LOG10_2, summary.p50_ms),
        (1.0, summary.p90_ms),
        (1.0 + std::f64::consts::LOG10_2, summary.p95_ms),
        (2.0, summary.p99_ms),
        (3.0, summary.p999_ms),
    ]
}

fn ms_fmt(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else {
        format_ms(v)
    }
}

fn per_sec_fmt(v: f64) -> String {
    if v >= 1000.0 {
        format!("{}k/s", trim_num(v / 1000.0))
    } else {
        format!("{}/s", trim_num(v))
    }
}

fn cores_fmt(v: f64) -> String {
    trim_num(v)
}

const MIB: f64 = 1024.0 * 1024.0;

/// Resident memory over time, in MiB.
fn rss_mib(r: &perfgate_runtime::format::ResourceStats) -> Vec<(f64, f64)> {
    r.timeseries
        .iter()
        .map(|p| (p.t, p.rss_bytes as f64 / MIB))
        .collect()
}

fn count_fmt(v: f64) -> String {
    trim_num(v)
}

fn mib_fmt(v: f64) -> String {
    format!("{} MiB", trim_num(v))
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail | Verdict::Error => "fail",
        Verdict::Invalid => "warn",
    }
}

/// Style of the i-th of `n` runs: the first is the baseline (dashed grey), the last the current run.
fn style(i: usize, n: usize) -> (&'static str, bool, bool) {
    if n > 1 && i == 0 {
        (BASELINE, true, false)
    } else if i + 1 == n {
        (CURRENT, false, false)
    } else {
        (MIDDLE, false, true)
    }
}

fn series_of<'a>(
    runs: &'a [Run],
    id: &str,
    f: impl Fn(&'a ScenarioRun) -> Option<Vec<(f64, f64)>>,
) -> Vec<Series> {
    runs.iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let s = r.report.scenarios.iter().find(|s| s.id == id)?;
            let points = f(s)?;
            let (color, dashed, thin) = style(i, runs.len());
            Some(Series {
                name: r.label.clone(),
                color,
                dashed,
                thin,
                points,
            })
        })
        .collect()
}

fn result_of(s: &ScenarioRun) -> Option<&ScenarioResult> {
    s.result.as_ref()
}

/// The fitted line of a leak check of the current run, as a dashed series (`scale` converts the
/// metric's unit to the chart's).
fn fit_series(current: &ScenarioRun, metric: TrendMetric, scale: f64) -> Option<Series> {
    let c = current.trends.iter().find(|t| t.trend.metric == metric)?;
    let fit = c.fit.as_ref()?;
    let color = match c.outcome {
        crate::gate::Outcome::Pass => FIT_PASS,
        crate::gate::Outcome::Fail => FIT_FAIL,
        _ => FIT_OPEN,
    };
    Some(Series {
        name: format!(
            "fit {} ({})",
            metric.format_rate(fit.slope * 3600.0),
            crate::text::trend_outcome_str(c.outcome)
        ),
        color,
        dashed: true,
        thin: false,
        points: vec![
            (fit.t0, fit.at(fit.t0) * scale),
            (fit.t1, fit.at(fit.t1) * scale),
        ],
    })
}

fn scenario_section(runs: &[Run], current: &ScenarioRun) -> String {
    let id = current.id.as_str();
    let mut h = String::new();
    let _ = write!(
        h,
        "<section class=\"scenario\"><h2>{} <span class=\"badge {}\">{}</span></h2>",
        esc(id),
        verdict_class(current.verdict),
        current.verdict.as_str()
    );
    if let Some(sp) = &current.spec {
        let slos: Vec<String> = sp.slos.iter().map(|s| s.describe()).collect();
        let _ = write!(
            h,
            "<p class=\"meta\">{} · {} · SLOs: {} · <code>{}:{}</code></p>",
            esc(&describe_load(&sp.load)),
            esc(&describe_duration(sp)),
            esc(&if slos.is_empty() {
                "none".to_string()
            } else {
                slos.join(", ")
            }),
            esc(&sp.file),
            sp.line
        );
    }
    if let Some(e) = &current.error {
        let _ = write!(h, "<pre class=\"error\">{}</pre>", esc(e));
    }
    let charts = [
        Chart {
            title: "Latency by percentile",
            x_label: "percentile (log-scaled tail)",
            y_label: "latency",
            x_scale: XScale::Percentile,
            series: series_of(runs, id, |s| {
                result_of(s)
                    .map(|r| percentile_curve(&r.iterations.histogram, &r.iterations.latency))
            }),
            y_fmt: ms_fmt,
        },
        Chart {
            title: "Throughput per second",
            x_label: "seconds into the measured window",
            y_label: "iterations/s",
            x_scale: XScale::Linear,
            series: series_of(runs, id, |s| {
                result_of(s).map(|r| {
                    r.timeseries
                        .iter()
                        .map(|p| (f64::from(p.t), p.iterations as f64))
                        .collect()
                })
            }),
            y_fmt: per_sec_fmt,
        },
        Chart {
            title: "p99 latency per second",
            x_label: "seconds into the measured window",
            y_label: "p99",
            x_scale: XScale::Linear,
            series: series_of(runs, id, |s| {
                result_of(s).map(|r| {
                    r.timeseries
                        .iter()
                        .filter(|p| p.iterations > 0)
                        .map(|p| (f64::from(p.t), p.p99_ms))
                        .collect()
                })
            }),
            y_fmt: ms_fmt,
        },
        Chart {
            title: "Service CPU",
            x_label: "seconds since the scenario started",
            y_label: "cores",
            x_scale: XScale::Linear,
            series: series_of(runs, id, |s| {
                s.resources
                    .as_ref()
                    .map(|r| r.timeseries.iter().map(|p| (p.t, p.cpu_util)).collect())
            }),
            y_fmt: cores_fmt,
        },
        Chart {
            title: "Service memory (RSS)",
            x_label: "seconds since the scenario started",
            y_label: "RSS",
            x_scale: XScale::Linear,
            series: series_of(runs, id, |s| s.resources.as_ref().map(rss_mib))
                .into_iter()
                .chain(fit_series(current, TrendMetric::RssGrowth, 1.0 / MIB))
                .collect(),
            y_fmt: mib_fmt,
        },
    ];
    h.push_str("<div class=\"charts\">");
    for c in &charts {
        let _ = write!(h, "<figure>{}</figure>", c.svg());
    }
    // Descriptors and the generator's own memory, when they were sampled.
    let fds = Chart {
        title: "Service open file descriptors (sockets left out)",
        x_label: "seconds since the scenario started",
        y_label: "descriptors",
        x_scale: XScale::Linear,
        series: series_of(runs, id, |s| {
            s.resources
                .as_ref()
                .filter(|r| r.max_fds > 0)
                .map(|r| r.timeseries.iter().map(|p| (p.t, p.fds)).collect())
        })
        .into_iter()
        .chain(fit_series(current, TrendMetric::FdsGrowth, 1.0))
        .collect(),
        y_fmt: count_fmt,
    };
    if !fds.series.is_empty() {
        let _ = write!(h, "<figure>{}</figure>", fds.svg());
    }
    let generator = Chart {
        title: "Load generator memory (RSS)",
        x_label: "seconds since the round started",
        y_label: "RSS",
        x_scale: XScale::Linear,
        series: series_of(runs, id, |s| s.generator.as_ref().map(rss_mib)),
        y_fmt: mib_fmt,
    };
    if !generator.series.is_empty() {
        let _ = write!(h, "<figure>{}</figure>", generator.svg());
    }
    h.push_str("</div>");

    // The checks and regressions of the current run.
    if !current.checks.is_empty() {
        h.push_str("<table><tr><th>SLO</th><th>measured</th><th>result</th></tr>");
        for c in &current.checks {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                esc(&c.description),
                esc(&c.message),
                if c.passed { "pass" } else { "fail" },
                if c.passed { "pass" } else { "FAIL" }
            );
        }
        h.push_str("</table>");
    }
    if !current.trends.is_empty() {
        h.push_str(
            "<table><tr><th>leak or drift check</th><th>slope [interval] per hour</th><th>fitted over</th>\
             <th>result</th><th class=\"note\">note</th></tr>",
        );
        for t in &current.trends {
            let (slope, over) = (t.slope(), t.fitted_over());
            let _ = write!(
                h,
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td class=\"note\">{}</td></tr>",
                esc(&t.description),
                if t.implicit { " (default)" } else { "" },
                esc(&slope),
                esc(&over),
                match t.outcome {
                    crate::gate::Outcome::Pass => "pass",
                    crate::gate::Outcome::Fail => "fail",
                    _ => "warn",
                },
                crate::text::trend_outcome_str(t.outcome),
                esc(&t.message)
            );
        }
        h.push_str("</table>");
    }
    let decisions = &current.regressions;
    if !decisions.is_empty() {
        h.push_str(
            "<table><tr><th>metric</th><th>baseline</th><th>current</th><th>change [interval]</th>\
             <th>tolerance</th><th>outcome</th><th class=\"note\">note</th></tr>",
        );
        for d in decisions {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td class=\"note\">{}</td></tr>",
                esc(&d.check_name()),
                esc(&decision_value(d.metric, d.baseline)),
                esc(&decision_value(d.metric, d.current)),
                esc(&describe_change(d)),
                format_tolerance(d),
                match d.outcome {
                    crate::gate::Outcome::Pass => "pass",
                    crate::gate::Outcome::Fail => "fail",
                    _ => "warn",
                },
                outcome_str(d.outcome),
                esc(&d.note)
            );
        }
        h.push_str("</table>");
    }
    if let Some(c) = &current.cost {
        let _ = write!(
            h,
            "<table class=\"cost\"><tr><th>cost (valgrind)</th><th>{}</th></tr>",
            COST_COLUMNS.join("</th><th>")
        );
        for (label, values) in cost_rows(c) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&label),
                values.map(|v| esc(&v)).join("</td><td>")
            );
        }
        h.push_str("</table>");
        if !c.attribution.is_empty() {
            let _ = write!(
                h,
                "<p class=\"note\">Instructions per iteration changed most in: {}</p>",
                esc(&describe_attribution(&c.attribution))
            );
        }
    }
    if let Some(ab) = &current.ab {
        let _ = write!(
            h,
            "<p class=\"note\">Measured against {} on this machine (--ab): {} pair{} of rounds in ABBA order; {}</p>",
            esc(ab.base_commit.get(..10).unwrap_or(&ab.base_commit)),
            ab.pairs,
            if ab.pairs == 1 { "" } else { "s" },
            esc(&ab.stopped)
        );
    }
    h.push_str("</section>\n");
    h
}

fn verdict_table(report: &RunResults) -> String {
    let mut h = String::from(
        "<table class=\"verdicts\"><tr><th>scenario</th><th>iterations</th><th>rate/s</th><th>p50</th>\
         <th>p95</th><th>p99</th><th>errors</th><th>CPU</th><th>peak RSS</th><th>verdict</th></tr>",
    );
    for s in &report.scenarios {
        let _ = write!(h, "<tr><td><a href=\"#{0}\">{0}</a></td>", esc(&s.id));
        match &s.result {
            Some(r) => {
                let it = &r.iterations;
                let _ = write!(
                    h,
                    "<td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}%</td>",
                    it.count,
                    it.throughput,
                    format_ms(it.latency.p50_ms),
                    format_ms(it.latency.p95_ms),
                    format_ms(it.latency.p99_ms),
                    it.error_rate() * 100.0
                );
            }
            None => h.push_str(&"<td>-</td>".repeat(6)),
        }
        match &s.resources {
            Some(r) => {
                let _ = write!(
                    h,
                    "<td>{:.2} cores</td><td>{:.1} MiB</td>",
                    r.cpu_util,
                    r.peak_rss_bytes as f64 / (1024.0 * 1024.0)
                );
            }
            None => h.push_str("<td>-</td><td>-</td>"),
        }
        let _ = write!(
            h,
            "<td class=\"{}\">{}</td></tr>",
            verdict_class(s.verdict),
            s.verdict.as_str()
        );
    }
    h.push_str("</table>");
    h
}

const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1f2328;background:#f6f8fa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:0 0 6px}
.meta{color:#57606a;font-size:13px;margin:4px 0 12px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px;margin:16px 0}
.charts{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;border:1px solid #eaeef2;border-radius:6px}
table{border-collapse:collapse;margin:12px 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right}th{background:#f6f8fa}
td:first-child,th:first-child,.note{text-align:left}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:700}.warn{color:#9a6700;font-weight:700}
.badge{font-size:12px;padding:2px 8px;border-radius:10px;border:1px solid currentColor;vertical-align:middle}
pre.error{background:#fff8f8;border:1px solid #ffcecb;padding:8px;white-space:pre-wrap;font-size:12px}
svg .title{font-size:14px;font-weight:600;fill:#1f2328}svg .tick{font-size:11px;fill:#57606a}
svg .axis{font-size:12px;fill:#57606a}svg .legend{font-size:12px;fill:#1f2328}
svg .grid{stroke:#eaeef2;stroke-width:1}svg .frame{fill:none;stroke:#d0d7de}
svg .empty{font-size:14px;fill:#8c959f}
";

/// The page. `runs` is not empty; the last is the current run, the first (when several) the baseline.
pub fn render(runs: &[Run]) -> String {
    let current = &runs.last().expect("at least one run").report;
    let mut h = String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    let _ = write!(
        h,
        "<meta name=\"viewport\" content=\"width=device-width\"><title>perfgate — {}</title><style>{CSS}</style></head><body>",
        esc(&current.run_id)
    );
    let _ = write!(h, "<h1>perfgate report — run {}</h1>", esc(&current.run_id));
    let env = &current.environment;
    let mut meta = vec![summary_line(current)];
    if let Some(c) = &env.git_commit {
        meta.push(format!("commit {}", &c[..c.len().min(12)]));
    }
    if let Some(cpu) = &env.cpu_model {
        meta.push(format!("{cpu}, {} cores", env.cores));
    }
    if !env.os.is_empty() {
        meta.push(env.os.clone());
    }
    let _ = write!(h, "<p class=\"meta\">{}</p>", esc(&meta.join(" · ")));
    if runs.len() > 1 {
        let names: Vec<String> = runs
            .iter()
            .map(|r| format!("{} ({})", r.label, r.report.run_id))
            .collect();
        let _ = write!(
            h,
            "<p class=\"meta\">compared: {}</p>",
            esc(&names.join(" → "))
        );
    }
    h.push_str("<section><h2>Verdicts</h2>");
    h.push_str(&verdict_table(current));
    h.push_str("</section>\n");
    for s in &current.scenarios {
        let _ = write!(h, "<a id=\"{}\"></a>", esc(&s.id));
        h.push_str(&scenario_section(runs, s));
    }
    h.push_str("</body></html>\n");
    h
}

/// Labels of the given files: `current` alone; `baseline`, …, `current` for several.
pub fn labels(n: usize, run_ids: &[String]) -> Vec<String> {
    (0..n)
        .map(|i| match (i, n) {
            (_, 1) => "current".to_string(),
            (0, _) => "baseline".to_string(),
            (i, n) if i + 1 == n => "current".to_string(),
            (i, _) => run_ids
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("run {i}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_ticks_are_round() {
        assert_eq!(nice_step(100.0, 5.0), 20.0);
        assert_eq!(nice_step(12.0, 5.0), 2.5);
        assert_eq!(nice_step(0.7, 5.0), 0.2);
        assert_eq!(percentile_tick(0.0), "p0");
        assert_eq!(percentile_tick(1.0), "p90");
        assert_eq!(percentile_tick(3.0), "p99.9");
    }

    #[test]
    fn curves_come_from_histograms_or_summaries() {
        let mut h = perfgate_runtime::format::new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let enc = perfgate_runtime::format::encode_histogram(&h);
        let pts = percentile_curve(&enc, &LatencySummary::default());
        assert!(pts.len() > 20);
        // Monotonic, up to about the maximum (10 ms).
        assert!(pts.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!(
            (pts.last().unwrap().1 - 10.0).abs() < 0.1,
            "{:?}",
            pts.last()
        );
        let s = LatencySummary {
            count: 5,
            p99_ms: 9.0,
            ..Default::default()
        };
        assert_eq!(percentile_curve("", &s)[4], (2.0, 9.0));
        assert!(percentile_curve("", &LatencySummary::default()).is_empty());
    }
}
