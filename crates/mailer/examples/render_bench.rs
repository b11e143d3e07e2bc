//! Render throughput of tera on the newsletter benchmark (benches/data/newsletter.html, a tera
//! translation of the jinja2 baseline's template) with the contexts the baseline wrote
//! (`render_jinja2.py --write-contexts FILE`): one thread, median of 3 passes of ~2 s (the
//! set rendered repeatedly), one JSON line.
//! With `--inline`, also times render + CSS inlining the way `retain send` does it: the
//! template loaded as a `TemplateSet`, its CSS inlined once at load time
//! (`render_and_inline_per_s`), and, for comparison, every rendered page inlined on its own
//! (`render_and_inline_per_message_per_s`, what the send engine did before).
//!
//! usage: render_bench CONTEXTS.json [--inline]

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .ok_or("usage: render_bench CONTEXTS.json [--inline]")?;
    let inline = args.any(|a| a == "--inline");
    let contexts: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
    let mut tera = tera::Tera::new();
    retain_mailer::templates::register_helpers(&mut tera);
    tera.add_raw_template(
        "newsletter.html",
        include_str!("../benches/data/newsletter.html"),
    )?;
    let ctxs: Vec<tera::Context> = contexts
        .iter()
        .map(tera::Context::from_serialize)
        .collect::<Result<_, _>>()?;
    let mut times = Vec::new();
    let mut bytes = 0usize;
    let mut buf = Vec::with_capacity(16 * 1024);
    // Each pass renders the whole set `reps` times so that it lasts about as long as the
    // baseline's (seconds, not a fraction of one): short passes are at the mercy of other
    // processes on a shared machine.
    let mut reps = 1;
    for pass in 0..4 {
        let t = Instant::now();
        bytes = 0;
        for _ in 0..reps {
            for c in &ctxs {
                buf.clear();
                tera.render_to("newsletter.html", c, &mut buf)?;
                bytes += buf.len();
            }
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        if pass == 0 {
            reps = ((2.0 / s.max(1e-6)).ceil() as usize).clamp(1, 50);
        } else {
            times.push(s);
        }
    }
    bytes /= reps;
    times.sort_by(f64::total_cmp);
    let m = times[1];
    let n = ctxs.len();
    let mut out = serde_json::json!({
        "tool": "tera", "n": n, "seconds": (m * 1000.0).round() / 1000.0,
        "renders_per_s": (n as f64 / m).round(), "mean_bytes": bytes / n.max(1),
    });
    if inline {
        let set = retain_mailer::TemplateSet::from_sources(
            "newsletter",
            &[(
                "newsletter.html".to_string(),
                include_str!("../benches/data/newsletter.html").to_string(),
            )],
            "https://t.example.com",
            b"0123456789abcdef0123456789abcdef",
        )?;
        if let Some(why) = set.per_message_inlining() {
            return Err(format!("the newsletter inlines per message: {why}").into());
        }
        // Same passes as above: median of 3 after a calibration pass.
        let time = |per_message: bool| -> Result<f64, Box<dyn std::error::Error>> {
            let mut times = Vec::new();
            let mut reps = 1;
            for pass in 0..4 {
                let t = Instant::now();
                for _ in 0..reps {
                    for c in &ctxs {
                        let html = if per_message {
                            set.render_html_per_message(c)?
                        } else {
                            set.render_html(c)?
                        };
                        std::hint::black_box(html);
                    }
                }
                let s = t.elapsed().as_secs_f64() / reps as f64;
                if pass == 0 {
                    reps = ((2.0 / s.max(1e-6)).ceil() as usize).clamp(1, 50);
                } else {
                    times.push(s);
                }
            }
            times.sort_by(f64::total_cmp);
            Ok((n as f64 / times[1]).round())
        };
        out["render_and_inline_per_s"] = serde_json::json!(time(false)?);
        out["render_and_inline_per_message_per_s"] = serde_json::json!(time(true)?);
    }
    println!("{out}");
    Ok(())
}
