//! PNG charts a reader would rather look at than read: training curves and
//! evaluation plots. Text uses the bundled DejaVu Sans (assets/fonts), so
//! rendering needs no system fonts.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::ensemble::{Loss, Task, TrainConfig};

static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn ensure_font() {
    REGISTER.call_once(|| {
        // The bundled font is valid; a failure here would only lose text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot draw plot: {reason}")]
pub struct PlotError {
    pub path: String,
    pub reason: String,
}

/// Draws with `draw` into a PNG at `path`, written atomically (the temporary
/// name keeps the `.png` ending, which the encoder needs).
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<(), PlotError> {
    ensure_font();
    let err = |reason: String| PlotError {
        path: path.display().to_string(),
        reason,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".tmp-{}-{name}", std::process::id()));
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        draw(&root).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

/// One member's curve: (epoch, training loss, validation loss, validation score).
pub type Curve = Vec<(usize, f64, f64, f64)>;

/// The name of the loss `training` minimises, as the curve plot's axis says it.
pub fn loss_label(training: &TrainConfig) -> String {
    match (training.task, training.loss) {
        (Task::Classify, _) => "cross-entropy".into(),
        (Task::Regress, Loss::Huber) => format!(
            "Huber (delta {}), standardised labels",
            training.huber_delta
        ),
        (Task::Regress, Loss::Mae) => "MAE, standardised labels".into(),
        (Task::Regress, Loss::Smape) => "SMAPE, 2|p - y| / (|p| + |y|)".into(),
    }
}

type Area<'b> = DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>;
type EpochChart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordusize, plotters::coord::types::RangedCoordf64>,
>;

/// One panel of the training curves: epochs 0 to `epochs` across, `y_desc`
/// from `lo` to `hi` up, its axes drawn.
fn epoch_panel<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    y_desc: &str,
    epochs: usize,
    (lo, hi): (f64, f64),
) -> Result<EpochChart<'a, 'b>, String> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0usize..epochs + 1, lo..hi)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// Training and validation loss (left) and the selection score (right) per epoch,
/// one colour per member, the best epoch marked; the loss axis names the loss
/// of `training`.
pub fn training_curves(
    path: &Path,
    training: &TrainConfig,
    score_name: &str,
    members: &[Curve],
) -> Result<(), PlotError> {
    let loss = loss_label(training);
    render(path, (1200, 500), |root| {
        let (left, right) = root.split_horizontally(600);
        let epochs = members
            .iter()
            .flat_map(|c| c.iter().map(|r| r.0))
            .max()
            .unwrap_or(1);
        let (lo, hi) = range(
            members
                .iter()
                .flat_map(|c| c.iter().flat_map(|r| [r.1, r.2])),
        );
        let mut chart = epoch_panel(
            &left,
            "loss (solid: training, dashed: validation)",
            &loss,
            epochs,
            (lo, hi),
        )?;
        for (m, curve) in members.iter().enumerate() {
            let colour = Palette99::pick(m).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    curve.iter().map(|r| (r.0, r.1)),
                    colour.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(format!("member {m}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], colour));
            for w in curve.windows(2).step_by(2) {
                chart
                    .draw_series(LineSeries::new(
                        w.iter().map(|r| (r.0, r.2)),
                        colour.stroke_width(1),
                    ))
                    .map_err(|e| e.to_string())?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;

        let (lo, hi) = range(members.iter().flat_map(|c| c.iter().map(|r| r.3)));
        let mut chart = epoch_panel(
            &right,
            &format!("validation score ({score_name}); dot: best epoch"),
            score_name,
            epochs,
            (lo, hi),
        )?;
        for (m, curve) in members.iter().enumerate() {
            let colour = Palette99::pick(m).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    curve.iter().map(|r| (r.0, r.3)),
                    colour.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?;
            if let Some(best) = curve.iter().min_by(|a, b| a.3.total_cmp(&b.3)) {
                chart
                    .draw_series(std::iter::once(Circle::new(
                        (best.0, best.3),
                        5,
                        colour.filled(),
                    )))
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })
}

/// Predicted against true values of one label, with the one-to-one line.
pub fn predicted_vs_true(
    path: &Path,
    label: &str,
    truth: &[f64],
    predicted: &[f64],
) -> Result<(), PlotError> {
    render(path, (600, 600), |root| {
        let (lo, hi) = range(truth.iter().chain(predicted).copied());
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("{label}: ensemble mean against catalog value"),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, lo..hi)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(format!("true {label}"))
            .y_desc(format!("predicted {label}"))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.stroke_width(1)))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                truth
                    .iter()
                    .zip(predicted)
                    .map(|(t, p)| Circle::new((*t, *p), 2, BLUE.mix(0.6).filled())),
            )
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Absolute error against SNR(g) for one label.
pub fn error_vs_snr(
    path: &Path,
    label: &str,
    snr: &[f64],
    abs_error: &[f64],
) -> Result<(), PlotError> {
    render(path, (700, 450), |root| {
        let (xlo, xhi) = range(snr.iter().map(|s| s.max(1.0).log10()));
        let (_, yhi) = range(abs_error.iter().copied());
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("{label}: |predicted - true| against SNR(g)"),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(xlo..xhi, 0.0..yhi)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("log10 SNR(g)")
            .y_desc(format!("|error| {label}"))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                snr.iter()
                    .zip(abs_error)
                    .filter(|(s, _)| s.is_finite())
                    .map(|(s, e)| Circle::new((s.max(1.0).log10(), *e), 2, RED.mix(0.6).filled())),
            )
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// A histogram of `values` in `bins` equal bins.
pub fn histogram(
    path: &Path,
    title: &str,
    x_desc: &str,
    values: &[f64],
    bins: usize,
) -> Result<(), PlotError> {
    render(path, (700, 450), |root| {
        let (lo, hi) = range(values.iter().copied());
        let width = (hi - lo) / bins as f64;
        let mut counts = vec![0u32; bins];
        for v in values.iter().filter(|v| v.is_finite()) {
            counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(1) as f64 * 1.1;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0.0..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc("stars")
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, c)| {
                let x0 = lo + i as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, *c as f64)], BLUE.mix(0.5).filled())
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Points of the fine-tuning domain plot, each `(x, y)` in two model inputs.
#[derive(Debug, Clone, Default)]
pub struct DomainSets {
    /// The parent's training rows (a subsample).
    pub parent: Vec<(f64, f64)>,
    /// Anchor rows some member trained on.
    pub anchors: Vec<(f64, f64)>,
    pub new_train: Vec<(f64, f64)>,
    pub new_held_out: Vec<(f64, f64)>,
}

/// The parent's domain and the new set's in two model inputs, anchors marked.
pub fn input_domains(path: &Path, axes: &[String; 2], sets: &DomainSets) -> Result<(), PlotError> {
    render(path, (700, 600), |root| {
        let all = || {
            sets.parent
                .iter()
                .chain(&sets.anchors)
                .chain(&sets.new_train)
                .chain(&sets.new_held_out)
        };
        let (x0, x1) = range(all().map(|p| p.0));
        let (y0, y1) = range(all().map(|p| p.1));
        let mut chart = ChartBuilder::on(root)
            .caption(
                "fine-tuning domains in the model's input space",
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(axes[0].as_str())
            .y_desc(axes[1].as_str())
            .draw()
            .map_err(|e| e.to_string())?;
        let layers = [
            (
                &sets.parent[..],
                BLACK.mix(0.15),
                1u32,
                "parent's training rows",
            ),
            (&sets.anchors[..], RED.mix(0.8), 2, "anchors"),
            (
                &sets.new_train[..],
                BLUE.mix(0.9),
                3,
                "new set, training part",
            ),
            (
                &sets.new_held_out[..],
                GREEN.mix(0.9),
                3,
                "new set, held out",
            ),
        ];
        for (points, colour, size, name) in layers {
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|p| Circle::new(*p, size, colour.filled())),
                )
                .map_err(|e| e.to_string())?
                .label(format!("{name} ({})", points.len()))
                .legend(move |(x, y)| Circle::new((x, y), 4, colour.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// A named, coloured line of points.
type Line<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// Calibration of one label's uncertainties: the fraction of errors within
/// `k` sigma against `k`, for the reported sigma and the raw member spread,
/// beside what a Gaussian gives. A calibrated model follows the Gaussian curve.
pub fn calibration(
    path: &Path,
    label: &str,
    abs_error: &[f64],
    sigma: &[f64],
    spread: &[f64],
) -> Result<(), PlotError> {
    let ks: Vec<f64> = (0..=60).map(|i| i as f64 * 0.05).collect();
    let within = |s: &[f64], k: f64| crate::metrics::fraction_within(abs_error, s, k);
    // P(|z| <= k) for a standard normal, by erf's series (|k| <= 3 here).
    let gauss = |k: f64| {
        let x = k / std::f64::consts::SQRT_2;
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-12 {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        (2.0 / std::f64::consts::PI.sqrt() * sum).clamp(0.0, 1.0)
    };
    render(path, (600, 500), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("{label}: errors within k sigma"),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..3.0, 0.0..1.0)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("k")
            .y_desc("fraction of |error| <= k sigma")
            .draw()
            .map_err(|e| e.to_string())?;
        let curves: [Line; 3] = [
            (
                "Gaussian",
                BLACK,
                ks.iter().map(|&k| (k, gauss(k))).collect(),
            ),
            (
                "reported sigma",
                RED,
                ks.iter().map(|&k| (k, within(sigma, k))).collect(),
            ),
            (
                "member spread",
                BLUE,
                ks.iter().map(|&k| (k, within(spread, k))).collect(),
            ),
        ];
        for (name, colour, points) in curves {
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_axis_names_the_loss_trained_on() {
        let t = |task, loss| {
            loss_label(&TrainConfig {
                task,
                loss,
                ..TrainConfig::default()
            })
        };
        assert_eq!(
            t(Task::Regress, Loss::Huber),
            "Huber (delta 1), standardised labels"
        );
        assert_eq!(t(Task::Regress, Loss::Mae), "MAE, standardised labels");
        assert!(t(Task::Regress, Loss::Smape).starts_with("SMAPE"));
        assert_eq!(t(Task::Classify, Loss::Mae), "cross-entropy");
    }
}
