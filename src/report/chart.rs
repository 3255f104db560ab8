//! The report's charts as inline SVG, drawn with `plotters` (SVG backend only; its text is laid
//! out by plotters' built-in estimate, so no font or system library is needed). No script: the
//! page stays static. The numbers drawn are those of src/report/series.rs.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::Outage;
use super::series::Series;

/// The narrowest an outage is drawn, pixels.
const OUTAGE_MIN_PIXELS: f64 = 3.0;

/// Picks one percentile of a slot.
type PercentileOf = fn(&super::Percentiles) -> Option<f64>;

/// Width and height of a chart, pixels.
const SIZE: (u32, u32) = (480, 220);

/// The colour outages are shaded in on the availability chart.
pub const OUTAGE_COLOR: RGBColor = RGBColor(214, 39, 40);
/// The colour of the p50 line (and of the resource trends).
pub const P50_COLOR: RGBColor = RGBColor(31, 119, 180);
/// The colour of the p95 line.
pub const P95_COLOR: RGBColor = RGBColor(255, 127, 14);
/// The colour of the p99 line.
pub const P99_COLOR: RGBColor = RGBColor(148, 103, 189);
/// The colour of the availability line.
pub const AVAILABILITY_COLOR: RGBColor = RGBColor(44, 160, 44);

/// Why a chart could not be drawn (plotters' drawing errors, as text).
#[derive(Debug, thiserror::Error)]
#[error("drawing a chart: {0}")]
pub struct ChartError(String);

fn err<E: std::fmt::Display>(e: E) -> ChartError {
    ChartError(e.to_string())
}

/// `HH:MM` (UTC) of a Unix time, for the x axis.
fn clock(unix: f64) -> String {
    let day = unix.rem_euclid(86_400.0) as u64;
    format!("{:02}:{:02}", day / 3600, day % 3600 / 60)
}

/// Runs of consecutive slots that have a value: the points of one unbroken line each.
fn runs(points: impl Iterator<Item = (f64, Option<f64>)>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (x, y) in points {
        match (y, out.last_mut()) {
            (Some(y), Some(run)) => run.push((x, y)),
            (None, Some(run)) if !run.is_empty() => out.push(Vec::new()),
            _ => {}
        }
    }
    out.retain(|run| !run.is_empty());
    out
}

/// The largest p99 of both series, milliseconds (the shared y scale of a comparison).
pub fn latency_ceiling(series: &[&Series]) -> f64 {
    series
        .iter()
        .flat_map(|s| s.slots.iter())
        .filter_map(|s| s.latency.p99_ms)
        .fold(0.0_f64, f64::max)
}

/// The plotting area of a chart by time: x in Unix seconds, y from 0 to a top.
type TimeChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The axes every chart shares: what one chart looks like, besides what it draws.
struct Frame<'t> {
    title: &'t str,
    x: (f64, f64),
    y_top: f64,
    y_labels: usize,
    y_desc: &'t str,
    y_label_area: u32,
    /// Draw the legend of the labelled series (upper left).
    legend: bool,
}

impl Frame<'_> {
    /// Draws the frame (white ground, caption, mesh with `HH:MM` on the x axis), lets `draw` fill
    /// it, and returns the SVG text.
    fn svg(
        &self,
        draw: impl FnOnce(&mut TimeChart<'_, '_>) -> Result<(), ChartError>,
    ) -> Result<String, ChartError> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(self.title, ("sans-serif", 14))
                .margin(8)
                .x_label_area_size(24)
                .y_label_area_size(self.y_label_area)
                .build_cartesian_2d(self.x.0..self.x.1, 0.0..self.y_top)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_labels(6)
                .y_labels(self.y_labels)
                .x_label_formatter(&|x| clock(*x))
                .y_desc(self.y_desc)
                .draw()
                .map_err(err)?;
            draw(&mut chart)?;
            if self.legend {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .position(SeriesLabelPosition::UpperLeft)
                    .draw()
                    .map_err(err)?;
            }
            root.present().map_err(err)?;
        }
        Ok(svg)
    }
}

/// Draws one unbroken run as a line with a dot at each point.
fn draw_run(
    chart: &mut TimeChart<'_, '_>,
    run: &[(f64, f64)],
    color: RGBColor,
) -> Result<(), ChartError> {
    chart
        .draw_series(LineSeries::new(run.to_vec(), color.stroke_width(2)))
        .map_err(err)?;
    chart
        .draw_series(run.iter().map(|p| Circle::new(*p, 2, color.filled())))
        .map_err(err)?;
    Ok(())
}

/// p50, p95 and p99 of each slot of `series`, on a y axis from 0 to `ceiling_ms`, titled.
pub fn latency_svg(title: &str, series: &Series, ceiling_ms: f64) -> Result<String, ChartError> {
    let frame = Frame {
        title,
        x: span(series),
        y_top: if ceiling_ms > 0.0 {
            ceiling_ms * 1.1
        } else {
            1.0
        },
        y_labels: 5,
        y_desc: "ms",
        y_label_area: 48,
        legend: series.slots.iter().any(|s| s.latency.observations > 0),
    };
    frame.svg(|chart| {
        let half = series.slot_seconds / 2.0;
        let lines: [(&str, RGBColor, PercentileOf); 3] = [
            ("p50", P50_COLOR, |p| p.p50_ms),
            ("p95", P95_COLOR, |p| p.p95_ms),
            ("p99", P99_COLOR, |p| p.p99_ms),
        ];
        for (name, color, value) in lines {
            let runs = runs(
                series
                    .slots
                    .iter()
                    .map(|s| (s.start + half, value(&s.latency))),
            );
            // The legend entry: drawn once per percentile, as an empty series.
            if !runs.is_empty() {
                chart
                    .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())
                    .map_err(err)?
                    .label(name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
            }
            for run in &runs {
                draw_run(chart, run, color)?;
            }
        }
        Ok(())
    })
}

/// Availability of each slot of `series` (0-100 %), with every outage shaded in
/// [`OUTAGE_COLOR`] from its start to its end (or the period's end while it goes on).
pub fn availability_svg(
    title: &str,
    series: &Series,
    outages: &[Outage],
) -> Result<String, ChartError> {
    let (from, to) = span(series);
    let frame = Frame {
        title,
        x: (from, to),
        y_top: 105.0,
        y_labels: 6,
        y_desc: "%",
        y_label_area: 48,
        legend: false,
    };
    frame.svg(|chart| {
        // A short outage in a long period is still drawn, at least OUTAGE_MIN_PIXELS wide.
        let min_width = (to - from) * OUTAGE_MIN_PIXELS / f64::from(SIZE.0);
        chart
            .draw_series(outages.iter().map(|o| {
                let start = o.start.max(from);
                let end = o.end.unwrap_or(to).max(start + min_width).min(to);
                Rectangle::new(
                    [(start, 0.0), (end, 105.0)],
                    OUTAGE_COLOR.mix(0.35).filled(),
                )
            }))
            .map_err(err)?;
        let half = series.slot_seconds / 2.0;
        for run in runs(
            series
                .slots
                .iter()
                .map(|s| (s.start + half, s.availability_percent)),
        ) {
            draw_run(chart, &run, AVAILABILITY_COLOR)?;
        }
        Ok(())
    })
}

/// One figure by time: `points` (`(unix seconds, value)`, a gap where `None`) over
/// `[from, to)`, from 0 to the largest value, its axis titled `unit`.
pub fn trend_svg(
    title: &str,
    unit: &str,
    from: f64,
    to: f64,
    points: &[(f64, Option<f64>)],
) -> Result<String, ChartError> {
    let top = points.iter().filter_map(|p| p.1).fold(0.0_f64, f64::max);
    let frame = Frame {
        title,
        x: (from, if to > from { to } else { from + 1.0 }),
        y_top: if top > 0.0 { top * 1.1 } else { 1.0 },
        y_labels: 5,
        y_desc: unit,
        y_label_area: 56,
        legend: false,
    };
    frame.svg(|chart| {
        for run in runs(points.iter().copied()) {
            draw_run(chart, &run, P50_COLOR)?;
        }
        Ok(())
    })
}

/// The x range a series covers: its first slot's start to its last slot's end.
fn span(series: &Series) -> (f64, f64) {
    let from = series.slots.first().map_or(0.0, |s| s.start);
    let to = series
        .slots
        .last()
        .map_or(from + 1.0, |s| s.start + series.slot_seconds);
    (from, if to > from { to } else { from + 1.0 })
}

/// `rgb` as the `#RRGGBB` plotters writes in an SVG `fill`.
pub fn hex(rgb: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", rgb.0, rgb.1, rgb.2)
}

#[cfg(test)]
mod tests {
    use super::super::series::{ProbePoint, series};
    use super::*;
    use crate::report::Cause;

    fn sample() -> Series {
        let probes: Vec<ProbePoint> = (0..480)
            .map(|s| ProbePoint {
                ts: s as f64,
                up: !(100..150).contains(&s),
                latency_seconds: Some(if s % 7 == 0 { 0.3 } else { 0.02 }),
            })
            .collect();
        series(&probes, 0.0, 480.0, &[])
    }

    #[test]
    fn latency_chart_is_an_svg_with_a_line_per_percentile() {
        let s = sample();
        let svg = latency_svg("latency", &s, latency_ceiling(&[&s])).expect("chart");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        for color in [P50_COLOR, P95_COLOR, P99_COLOR] {
            assert!(svg.contains(&hex(color)), "no {} line", hex(color));
        }
        assert!(
            svg.split("</text>").any(|t| t.trim_end().ends_with("p99")),
            "no legend: {svg}"
        );
    }

    #[test]
    fn availability_chart_shades_each_outage() {
        let s = sample();
        let outage = Outage {
            start: 100.0,
            end: Some(150.0),
            duration_seconds: 50.0,
            reason: "down".into(),
            cause: Cause::Probe,
        };
        let with = availability_svg("availability", &s, &[outage]).expect("chart");
        let without = availability_svg("availability", &s, &[]).expect("chart");
        let fill = format!("fill=\"{}\"", hex(OUTAGE_COLOR));
        assert_eq!(with.matches(&fill).count(), 1, "{with}");
        assert_eq!(without.matches(&fill).count(), 0);
    }

    #[test]
    fn a_one_second_outage_in_a_day_is_still_visible() {
        let day = series(&[], 0.0, 86_400.0, &[]);
        let outage = Outage {
            start: 40_000.0,
            end: Some(40_001.0),
            duration_seconds: 1.0,
            reason: "down".into(),
            cause: Cause::Probe,
        };
        let svg = availability_svg("availability", &day, &[outage]).expect("chart");
        let fill = format!("fill=\"{}\"", hex(OUTAGE_COLOR));
        let rect = svg
            .split("<rect")
            .find(|r| r.contains(&fill))
            .expect("the outage's rectangle");
        let width: f64 = rect
            .split("width=\"")
            .nth(1)
            .and_then(|w| w.split('"').next())
            .and_then(|w| w.parse().ok())
            .expect("a width");
        assert!(width >= 2.0, "{rect}");
    }

    #[test]
    fn an_empty_series_still_draws() {
        let empty = series(&[], 0.0, 480.0, &[]);
        assert!(latency_svg("latency", &empty, 0.0).is_ok());
        assert!(availability_svg("availability", &empty, &[]).is_ok());
    }

    #[test]
    fn lines_break_where_slots_have_no_value() {
        let r = runs(
            [
                (0.0, Some(1.0)),
                (1.0, None),
                (2.0, Some(2.0)),
                (3.0, Some(3.0)),
            ]
            .into_iter(),
        );
        assert_eq!(r, vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]);
    }
}
