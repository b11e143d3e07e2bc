#!/usr/bin/env bash
# k-means benchmark: scikit-learn's KMeans (`benches/baselines/kmeans_sklearn.py`: its seeded
# 1M x 3 standardised RFM-like matrix, k=8, one k-means++ init, tol=1e-4, median of 3 fits)
# against retain's k-means (f64 and f32 distance loops) and linfa-clustering's own KMeans, all on
# exactly the same matrix (the baseline's `--write` dump) in one run. Writes the figures to
# docs/BENCHMARKS.md between the kmeans markers. The Python side runs in .venv-bench/, which
# benches/baselines/venv.sh creates.
#
# usage: scripts/bench-kmeans.sh [N]        (default N: 1000000 rows)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=bench-data
N=${1:-1000000}
mkdir -p "$DATA"

. benches/baselines/venv.sh   # sets BASELINES and PY
cargo build --release --quiet -p retain-clustering --example kmeans_raw
RUST=target/release/examples/kmeans_raw
MATRIX="$DATA/kmeans_${N}_x3.f64"
RESULTS="$DATA/kmeans-bench.jsonl"
: > "$RESULTS"

LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
echo "scikit-learn…" >&2
"$PY" "$BASELINES/kmeans_sklearn.py" --n "$N" --k 8 --write "$MATRIX" >> "$RESULTS"
echo "retain (f64, f32) and linfa…" >&2
"$RUST" "$MATRIX" --dim 3 --k 8 --repeat 3 --engines native64,native32,linfa >> "$RESULTS"
LOAD_AFTER=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")

"$PY" - "$RESULTS" "$(nproc)" "$(date -u +%Y-%m-%d)" "$N" "$LOAD_BEFORE" "$LOAD_AFTER" <<'PY'
import json, re, sys
path, cores, day, n, load_before, load_after = sys.argv[1:7]
rows = [json.loads(l) for l in open(path) if l.strip()]
sk = next(r for r in rows if r["tool"] == "scikit-learn")
names = {
    "scikit-learn": "scikit-learn 1.9.1 `KMeans` (lloyd)",
    "retain-native64": "retain k-means, f64 distances (default)",
    "retain-native32": "retain k-means, f32 distances",
    "retain-linfa": "linfa-clustering 0.8.1 `KMeans`",
}
lines = [
    "<!-- kmeans:begin -->",
    f"Measured {day} on {cores} cores by `scripts/bench-kmeans.sh {n}`: the baseline's seeded "
    f"{int(n):,} × 3 matrix, k = 8, one k-means++ initialisation, scikit-learn's tolerance "
    "(1e-4 × mean variance on the squared centre shift; linfa compares the unsquared shift, so it "
    "gets 1e-2), median of 3 fits each. Inertia is the sum of squared distances for every tool "
    f"(linfa's is recomputed from its labels). Load average {load_before} before, {load_after} after "
    "(the machine is shared; wall times under load are inflated).",
    "",
    "| tool | wall (median of 3) | vs scikit-learn | CPU time | iterations | inertia | vs scikit-learn |",
    "|---|---|---|---|---|---|---|",
]
for r in rows:
    ratio = r["seconds"] / sk["seconds"]
    dev = (r["inertia"] - sk["inertia"]) / sk["inertia"] * 100
    cpu = f"{r['cpu_seconds']:.2f} s" if "cpu_seconds" in r else "—"
    it = r.get("n_iter")
    lines.append(
        f"| {names.get(r['tool'], r['tool'])} | {r['seconds']:.3f} s | "
        f"{'—' if r is sk else f'**{ratio:.2f}×**'} | {cpu} | {it if it is not None else '—'} | "
        f"{r['inertia']:,.1f} | {'—' if r is sk else f'{dev:+.3f}%'} |"
    )
lines += [
    "",
    "Target: ≤ 0.5× scikit-learn's wall time with inertia within 1%. Iteration counts differ "
    "because each tool draws its own k-means++ seeds.",
    "<!-- kmeans:end -->",
]
table = "\n".join(lines)
print(table)
doc = "docs/BENCHMARKS.md"
try:
    s = open(doc).read()
except FileNotFoundError:
    s = "# Benchmarks\n"
if "<!-- kmeans:begin -->" in s:
    s = re.sub(r"<!-- kmeans:begin -->.*?<!-- kmeans:end -->", lambda m: table, s, flags=re.S)
else:
    s = s.rstrip("\n") + "\n\n## Segmentation\n\n" + table + "\n"
open(doc, "w").write(s)
PY
