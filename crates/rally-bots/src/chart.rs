//! The SVG latency chart: p50 and p99 of the latencies recorded in each second.

use plotters::prelude::*;

use crate::report::Report;

/// The chart's size in pixels.
const SIZE: (u32, u32) = (900, 500);

/// Draws `report`'s timeline as an SVG document.
pub(crate) fn svg(report: &Report) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(&root, report).map_err(|e| anyhow::anyhow!("cannot draw the chart: {e}"))?;
    }
    Ok(out)
}

fn draw(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    report: &Report,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    root.fill(&WHITE)?;
    let points = |f: fn(&crate::Second) -> f64| -> Vec<(f64, f64)> {
        report
            .timeline
            .iter()
            .filter(|s| s.window.samples > 0)
            .map(|s| (s.elapsed_secs, f(s)))
            .collect()
    };
    let p50 = points(|s| s.window.p50);
    let p99 = points(|s| s.window.p99);
    let x_max = report.duration_secs.max(1.0);
    let y_max = p99.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "input-to-state latency: {} bots over {}",
                report.bots, report.transport
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("latency (ms)")
        .draw()?;
    chart
        .draw_series(LineSeries::new(p50, &BLUE))?
        .label("p50 per second")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(p99, &RED))?
        .label("p99 per second")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()
}
