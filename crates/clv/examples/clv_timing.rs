//! Times the CLV fits the way `clv_lifetimes.py` times lifetimes, and prints one JSON line.
//!
//! usage: clv_timing [--summary FILE] [--replicate K] [--distinct] [--write FILE] [--repeats N]
//!
//! - `--summary FILE`: a CSV with columns `frequency,recency,T[,monetary_value]` (any order,
//!   extra columns ignored); default: the CDNOW summary in `data/cdnow`.
//! - `--replicate K`: the summary repeated K times (as `clv_lifetimes.py --replicate K`).
//! - `--distinct`: scale copy j's times by `1 + j·1e-6`, so that no two customers share
//!   `(x, t_x, T)` and the merged-row reduction cannot help.
//! - `--write FILE`: also write the (replicated) summary as a CSV `clv_lifetimes.py --summary`
//!   reads, so both tools fit the very same rows.
//!
//! Reports the median of `--repeats` (default 3) runs of each fit, like the Python script, and
//! one run of the whole `predict` (both fits plus P(alive), 90-day purchases and 12-month CLV for
//! every customer).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use retain_clv::{bgnbd, gamma_gamma, predict, PredictOptions, Summary};

fn die(msg: &str) -> ! {
    eprintln!("clv_timing: {msg}");
    std::process::exit(2)
}

fn read_summary(path: &PathBuf) -> Vec<Summary> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| die(&format!("{}: {e}", path.display())));
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_else(|| die("empty summary file"))
        .split(',')
        .map(|h| h.trim().to_string())
        .collect();
    let col = |names: &[&str]| header.iter().position(|h| names.contains(&h.as_str()));
    let fx = col(&["frequency", "x"]).unwrap_or_else(|| die("no frequency column"));
    let ftx = col(&["recency", "t_x"]).unwrap_or_else(|| die("no recency column"));
    let ft = col(&["T"]).unwrap_or_else(|| die("no T column"));
    let fm = col(&["monetary_value", "zbar", "monetary"]);
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Vec<f64> = line
                .split(',')
                .map(|c| {
                    c.trim()
                        .parse()
                        .unwrap_or_else(|_| die(&format!("bad number in {line}")))
                })
                .collect();
            Summary {
                frequency: v[fx],
                recency: v[ftx],
                t: v[ft],
                monetary: fm.map_or(0.0, |i| v[i]),
            }
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn timed<T>(repeats: usize, mut f: impl FnMut() -> T) -> (T, f64) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        last = Some(f());
        times.push(t.elapsed().as_secs_f64());
    }
    (last.unwrap_or_else(|| die("no run")), median(times))
}

fn main() {
    let mut summary = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/cdnow/cdnow_customers_summary_with_transactions.csv");
    let (mut replicate, mut distinct, mut write, mut repeats) = (1usize, false, None, 3usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--summary" => summary = PathBuf::from(value()),
            "--replicate" => replicate = value().parse().unwrap_or_else(|_| die("bad K")),
            "--repeats" => repeats = value().parse().unwrap_or_else(|_| die("bad N")),
            "--distinct" => distinct = true,
            "--write" => write = Some(PathBuf::from(value())),
            other => die(&format!("unknown argument {other}")),
        }
    }
    let base = read_summary(&summary);
    let data: Vec<Summary> = (0..replicate)
        .flat_map(|j| {
            let f = if distinct { 1.0 + j as f64 * 1e-6 } else { 1.0 };
            base.iter().map(move |s| Summary {
                recency: s.recency * f,
                t: s.t * f,
                ..*s
            })
        })
        .collect();
    if let Some(path) = &write {
        let file = std::fs::File::create(path)
            .unwrap_or_else(|e| die(&format!("{}: {e}", path.display())));
        let mut w = std::io::BufWriter::new(file);
        let mut line = |s: &str| {
            w.write_all(s.as_bytes())
                .unwrap_or_else(|e| die(&e.to_string()))
        };
        line("frequency,recency,T,monetary_value\n");
        for s in &data {
            // 17 significant digits: the Python side parses exactly the same doubles.
            line(&format!(
                "{:?},{:?},{:?},{:?}\n",
                s.frequency, s.recency, s.t, s.monetary
            ));
        }
    }

    let (bg, bg_s) = timed(repeats, || {
        bgnbd::fit(&data).unwrap_or_else(|e| die(&e.to_string()))
    });
    let pairs = gamma_gamma::repeat_customers(&data);
    let gg = (!pairs.is_empty()).then(|| {
        timed(repeats, || {
            gamma_gamma::fit(&pairs).unwrap_or_else(|e| die(&e.to_string()))
        })
    });
    let named: Vec<(String, Summary)> = data
        .iter()
        .enumerate()
        .map(|(i, s)| (i.to_string(), *s))
        .collect();
    let (run, predict_s) = timed(1, || {
        predict(&named, &PredictOptions::default()).unwrap_or_else(|e| die(&e.to_string()))
    });

    let p = bg.params;
    let mut out = serde_json::json!({
        "tool": "retain-clv",
        "customers": data.len(),
        "distinct": distinct,
        "threads": rayon::current_num_threads(),
        "bgnbd": {
            "r": p.r, "alpha": p.alpha, "a": p.a, "b": p.b,
            "log_likelihood": bg.log_likelihood,
            "seconds": bg_s,
            "iterations": bg.iterations,
            "evaluations": bg.evaluations,
            "distinct_rows": bg.distinct_rows,
            "converged": bg.converged,
        },
        "predict": { "seconds": predict_s, "clv_mean": run.clv_mean, "p_alive_mean": run.p_alive_mean },
    });
    if let Some((gg, gg_s)) = gg {
        out["gamma_gamma"] = serde_json::json!({
            "p": gg.params.p, "q": gg.params.q, "v": gg.params.v,
            "seconds": gg_s, "iterations": gg.iterations, "evaluations": gg.evaluations,
        });
    }
    println!("{out}");
}
