//! The HTML report: one self-contained file (no scripts, no external links)
//! with a chart placing every op against the hardware's limits (a roofline on
//! cpu and npu targets, the floorline terms on neuromorphic ones), a
//! per-level traffic table and an energy breakdown.

use arch_cost::evaluate::CostReport;
use arch_sema::hardware::{HardwareModel, HwClass};
use arch_sema::model::WorkloadModel;
use arch_sema::units::{format_quantity, Dim};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Peak operations per second for the workload's element type and the
/// outermost bandwidth, for the roofline.
fn roofs(w: &WorkloadModel, hw: &HardwareModel) -> (f64, f64) {
    // The same parameters the models use, for the workload's element type.
    let dtype = w
        .ops
        .first()
        .map_or(arch_sema::dtype::DType::F32, |op| w.compute_dtype(op));
    match hw.class {
        HwClass::Npu => arch_cost::npu::NpuParams::from_hardware(hw).map_or((0.0, 0.0), |p| {
            (
                2.0 * (p.rows * p.cols) as f64 * p.clock_hz,
                p.levels.first().map_or(0.0, |l| l.2),
            )
        }),
        HwClass::Gpu => {
            arch_cost::gpu::GpuParams::from_hardware(hw, dtype).map_or((0.0, 0.0), |p| {
                (
                    p.flops_per_cycle_per_sm * p.sms as f64 * p.clock_hz,
                    p.hbm.1,
                )
            })
        }
        _ => arch_cost::cpu::CpuParams::from_hardware(hw, dtype).map_or((0.0, 0.0), |p| {
            (
                p.flops_per_cycle_per_core * p.cores as f64 * p.clock_hz,
                p.levels.first().map_or(0.0, |l| l.1),
            )
        }),
    }
}

fn roofline_svg(w: &WorkloadModel, hw: &HardwareModel, r: &CostReport) -> String {
    let (peak, bw) = roofs(w, hw);
    let (width, height, pad) = (640.0, 400.0, 56.0);
    // log10 axes: intensity 1e-2 .. 1e4 flop/B, throughput peak/1e5 .. peak*2.
    let (x0, x1) = (-2.0f64, 4.0f64);
    let y1 = (peak.max(1.0) * 2.0).log10();
    let y0 = y1 - 5.5;
    let px = |x: f64| pad + (x.log10().clamp(x0, x1) - x0) / (x1 - x0) * (width - 2.0 * pad);
    let py = |y: f64| {
        height - pad - (y.max(1e-30).log10().clamp(y0, y1) - y0) / (y1 - y0) * (height - 2.0 * pad)
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"roofline\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
    );
    // Axes with a tick per decade.
    svg.push_str(&format!(
        "<line x1=\"{pad}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>\n<line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{:.1}\" stroke=\"#999\"/>\n",
        height - pad,
        width - pad,
        height - pad,
        height - pad
    ));
    for e in (x0 as i32)..=(x1 as i32) {
        let x = px(10f64.powi(e));
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">1e{e}</text>\n",
            x,
            height - pad + 14.0
        ));
    }
    for e in (y0.ceil() as i32)..=(y1.floor() as i32) {
        let y = py(10f64.powi(e));
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">1e{e}</text>\n",
            pad - 4.0,
            y + 3.0
        ));
    }
    // The roof: bandwidth slope up to the ridge, then the compute ceiling.
    let ridge = if bw > 0.0 { peak / bw } else { 1.0 };
    let mut roof = String::new();
    for i in 0..=60 {
        let x = 10f64.powf(x0 + (x1 - x0) * i as f64 / 60.0);
        let y = (x * bw).min(peak);
        roof.push_str(&format!("{:.1},{:.1} ", px(x), py(y)));
    }
    svg.push_str(&format!(
        "<polyline points=\"{roof}\" fill=\"none\" stroke=\"#333\" stroke-width=\"2\"/>\n"
    ));
    svg.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">peak {}op/s, ridge at {:.1} op/B</text>\n",
        px(ridge).min(width - 260.0),
        py(peak) - 6.0,
        si(peak),
        ridge
    ));
    for op in &r.ops {
        let Some(o) = w.ops.iter().find(|o| w.tensors[o.output].name == op.name) else {
            continue;
        };
        let work = 2.0 * o.iteration_points() as f64;
        let dram = op
            .predicted
            .levels
            .first()
            .map_or(0.0, |l| l.bytes)
            .max(1.0);
        let x = work / dram;
        let y = work / op.predicted.latency_s.max(1e-30);
        svg.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"#c33\"><title>{}: {:.2} op/B, {}op/s</title></circle>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>\n",
            px(x),
            py(y),
            escape(&op.name),
            x,
            si(y),
            px(x) + 7.0,
            py(y) + 4.0,
            escape(&op.name)
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">operational intensity (op per DRAM byte, log)</text>\n<text x=\"14\" y=\"{:.1}\" font-size=\"12\" transform=\"rotate(-90 14 {:.1})\">throughput (op/s, log)</text>\n</svg>",
        width / 2.0 - 140.0,
        height - 16.0,
        height / 2.0 + 60.0,
        height / 2.0 + 60.0
    ));
    svg
}

fn floorline_svg(r: &CostReport) -> String {
    let (width, bar, pad) = (640.0, 28.0, 8.0);
    let height = pad * 2.0 + r.ops.len() as f64 * (bar + pad) + 20.0;
    let longest = r
        .ops
        .iter()
        .map(|o| o.predicted.latency_s)
        .fold(0.0, f64::max)
        .max(1e-30);
    let mut svg = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"floorline\">\n");
    for (i, op) in r.ops.iter().enumerate() {
        let y = pad + i as f64 * (bar + pad);
        let full = (width - 300.0) * op.predicted.latency_s / longest;
        let floor = (width - 300.0) * op.predicted.lower_bound_s / longest;
        svg.push_str(&format!(
            "<rect x=\"120\" y=\"{y:.1}\" width=\"{full:.1}\" height=\"{bar}\" fill=\"#e8a\"><title>{}: {}</title></rect>\n<rect x=\"120\" y=\"{:.1}\" width=\"{floor:.1}\" height=\"6\" fill=\"#333\"/>\n<text x=\"4\" y=\"{:.1}\" font-size=\"11\">{}</text>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>\n",
            escape(&op.name),
            escape(&op.predicted.bottleneck),
            y + bar - 6.0,
            y + bar / 2.0 + 4.0,
            escape(&op.name),
            124.0 + full,
            y + bar / 2.0 + 4.0,
            escape(&op.predicted.bottleneck)
        ));
    }
    svg.push_str(&format!(
        "<text x=\"120\" y=\"{:.1}\" font-size=\"11\">bar: predicted time; black: the floor (all cores, free messages)</text>\n</svg>",
        height - 6.0
    ));
    svg
}

fn si(v: f64) -> String {
    for (scale, prefix) in [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if v >= scale {
            return format!("{} {prefix}", trim(v / scale));
        }
    }
    format!("{} ", trim(v))
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The whole report as one HTML document.
pub fn render(w: &WorkloadModel, hw: &HardwareModel, r: &CostReport) -> String {
    let q = |v: f64, d: Dim| escape(&format_quantity(v, d));
    let chart = match hw.class {
        HwClass::Neuromorphic => floorline_svg(r),
        _ => roofline_svg(w, hw, r),
    };
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} on {}</title>\n<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}th:first-child,td:first-child{{text-align:left}}</style></head><body>\n<h1>{} on {}</h1>\n<p>Predicted: <b>{}</b> and <b>{}</b> ({} class).</p>\n{chart}\n",
        escape(&r.workload),
        escape(&r.target),
        escape(&r.workload),
        escape(&r.target),
        q(r.total.latency_s, Dim::TIME),
        q(r.total.energy_j, Dim::ENERGY),
        hw.class.name()
    );
    for op in &r.ops {
        let p = &op.predicted;
        html.push_str(&format!(
            "<h2>{}</h2>\n<p>{} ({} cycles), bound by {}, {:.0}% of the speed-of-light; lower bound {}.</p>\n<table><tr><th>level</th><th>bytes</th><th>time</th><th>energy</th></tr>\n",
            escape(&op.name),
            q(p.latency_s, Dim::TIME),
            p.cycles,
            escape(&p.bottleneck),
            p.utilization * 100.0,
            q(p.lower_bound_s, Dim::TIME)
        ));
        let mut level_energy = 0.0;
        for l in &p.levels {
            let e_per_byte = hw
                .level(&l.name)
                .and_then(|x| x.energy_j_per_byte)
                .map_or(0.0, |e| e.value.0);
            level_energy += l.bytes * e_per_byte;
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                escape(&l.name),
                q(l.bytes, Dim::BYTES),
                q(l.time_s, Dim::TIME),
                q(l.bytes * e_per_byte, Dim::ENERGY)
            ));
        }
        html.push_str(&format!(
            "<tr><td>compute and events</td><td></td><td></td><td>{}</td></tr>\n<tr><th>total</th><th></th><th>{}</th><th>{}</th></tr></table>\n<table><tr><th>knob</th><th>value</th></tr>\n",
            q((p.energy_j - level_energy).max(0.0), Dim::ENERGY),
            q(p.latency_s, Dim::TIME),
            q(p.energy_j, Dim::ENERGY)
        ));
        for (k, v) in &op.mapping {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>\n",
                escape(k),
                escape(v)
            ));
        }
        html.push_str("</table>\n");
    }
    html.push_str("</body></html>\n");
    html
}
