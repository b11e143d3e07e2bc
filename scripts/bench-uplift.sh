#!/usr/bin/env bash
# Uplift benchmark: retain's T- and X-learners (`crates/uplift/examples/uplift_timing.rs`) against
# a scikit-learn T-learner (`benches/baselines/uplift_sklearn.py`, HistGradientBoostingClassifier
# with the same tree settings) on the same seeded simulation of N past campaign members (10
# campaigns, 90% mailed, a heterogeneous effect; 3 campaigns held out). Fit time (median of 3),
# evaluation time and the held-out Qini coefficient. Writes the figures to docs/BENCHMARKS.md
# between the uplift markers. The Python side runs in .venv-bench/ (benches/baselines/venv.sh).
#
# usage: scripts/bench-uplift.sh [N]        (default N: 200000 members)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=bench-data
N=${1:-200000}
mkdir -p "$DATA"

. benches/baselines/venv.sh   # sets BASELINES and PY
cargo build --release --quiet -p retain-uplift --example uplift_timing
RESULTS="$DATA/uplift-bench.jsonl"
CSV="$DATA/uplift_${N}.csv"
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
echo "retain…" >&2
target/release/examples/uplift_timing "$N" 7 "$CSV" > "$RESULTS"
echo "scikit-learn…" >&2
"$PY" "$BASELINES/uplift_sklearn.py" "$CSV" >> "$RESULTS"
LOAD_AFTER=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")

"$PY" - "$RESULTS" "$(nproc)" "$(date -u +%Y-%m-%d)" "$N" "$LOAD_BEFORE" "$LOAD_AFTER" <<'PY'
import json, re, sys
path, cores, day, n, lb, la = sys.argv[1:7]
rows = [json.loads(l) for l in open(path) if l.strip()]
names = {
    "retain-t": "retain T-learner (gradient-boosted trees)",
    "retain-x": "retain X-learner (gradient-boosted trees)",
    "scikit-learn-t": "scikit-learn 1.9.1 T-learner (`HistGradientBoostingClassifier` ×2)",
}
lines = [
    "<!-- uplift:begin -->",
    f"Measured {day} on {cores} cores by `scripts/bench-uplift.sh {n}`: {int(n):,} simulated members "
    f"of 10 campaigns (90% mailed; `retain_uplift::simulate`, heterogeneous effect), 3 campaigns "
    f"({rows[0]['test']:,} members) held out, fitted on {rows[0]['train']:,}. Load average {lb} before, "
    f"{la} after (shared machine).",
    "",
    "| learner | fit (median of 3) | evaluate | held-out Qini |",
    "|---|---|---|---|",
]
for r in rows:
    lines.append(f"| {names.get(r['tool'], r['tool'])} | {r['fit_s']:.2f} s | {r['evaluate_s']:.2f} s | {r['qini']:.4f} |")
lines.append("<!-- uplift:end -->")
doc = open("docs/BENCHMARKS.md").read()
block = "\n".join(lines)
if "<!-- uplift:begin -->" in doc:
    doc = re.sub(r"<!-- uplift:begin -->.*?<!-- uplift:end -->", block, doc, flags=re.S)
else:
    doc = doc.rstrip() + "\n\n## Uplift models\n\n" + block + "\n"
open("docs/BENCHMARKS.md", "w").write(doc)
print(block)
PY
