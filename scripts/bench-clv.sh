#!/usr/bin/env bash
# CLV benchmark: BG/NBD and Gamma-Gamma fits by python lifetimes
# (`benches/baselines/clv_lifetimes.py`) and by retain-clv (`crates/clv/examples/clv_timing.rs`)
# on the same summaries in one run: the CDNOW summary replicated K times (CDNOW size, ~100k, ~1M),
# and ~1M customers whose copies are time-scaled so that rows repeat only within a copy
# (`--distinct`, fed to both tools as one CSV). Both report the median of 3 fits. Writes the
# figures to docs/BENCHMARKS.md between the clv markers. The Python side runs in .venv-bench/,
# which benches/baselines/venv.sh creates.
#
# usage: scripts/bench-clv.sh [K ...]        (default K: 1 43 425)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=bench-data
mkdir -p "$DATA"
KS=("$@")
[ ${#KS[@]} -gt 0 ] || KS=(1 43 425)

. benches/baselines/venv.sh   # sets BASELINES and PY
cargo build --release --quiet -p retain-clv --example clv_timing
RUST=target/release/examples/clv_timing
RESULTS="$DATA/clv-bench.jsonl"
: > "$RESULTS"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

for K in "${KS[@]}"; do
  echo "replicate $K: lifetimes…" >&2
  P=$("$PY" "$BASELINES/clv_lifetimes.py" --replicate "$K")
  echo "replicate $K: retain-clv…" >&2
  R=$("$RUST" --replicate "$K")
  echo "{\"case\": \"CDNOW x $K\", \"python\": $P, \"rust\": $R}" >> "$RESULTS"
done

K=${KS[${#KS[@]}-1]}
DISTINCT="$DATA/clv_distinct_$K.csv"
echo "distinct x $K: retain-clv…" >&2
R=$("$RUST" --replicate "$K" --distinct --write "$DISTINCT")
echo "distinct x $K: lifetimes…" >&2
P=$("$PY" "$BASELINES/clv_lifetimes.py" --summary "$DISTINCT")
echo "{\"case\": \"CDNOW x $K, rows distinct across copies\", \"python\": $P, \"rust\": $R}" >> "$RESULTS"

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
"$PY" - "$RESULTS" "$(nproc)" "$(date -u +%Y-%m-%d)" "${KS[*]}" "$LOAD_BEFORE" "$LOAD_AFTER" <<'PY'
import json, re, sys
path, cores, day, ks, load_before, load_after = sys.argv[1:7]
rows = [json.loads(l) for l in open(path)]

def ms(s):
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"

def fmt_params(b, keys):
    return ", ".join(f"{k}={b[k]:.6f}" for k in keys)

lines = [
    "<!-- clv:begin -->",
    f"Measured {day} on {cores} cores by `scripts/bench-clv.sh {ks}`: lifetimes 0.11.3 "
    "(`clv_lifetimes.py`, autograd + scipy) against `clv_timing` (release build, rayon on all "
    "cores), each fitting the same summaries and reporting the median of 3 fits. The `distinct` "
    "case gives both tools one CSV in which copy j of CDNOW has its times scaled by 1 + j·1e-6, "
    "so customers repeat only within a copy. Load average (1, 5, 15 min) before / after the run: "
    f"{load_before} / {load_after} (other work shared the machine; both tools ran under it).",
    "",
    "| data | customers | BG/NBD lifetimes | BG/NBD retain | ratio | Gamma-Gamma lifetimes | Gamma-Gamma retain | ratio |",
    "|---|---|---|---|---|---|---|---|",
]
for r in rows:
    p, q = r["python"], r["rust"]
    bg = q["bgnbd"]["seconds"] / p["bgnbd"]["seconds"]
    gg = q["gamma_gamma"]["seconds"] / p["gamma_gamma"]["seconds"]
    lines.append(
        f"| {r['case']} | {p['customers']:,} | {ms(p['bgnbd']['seconds'])} | "
        f"{ms(q['bgnbd']['seconds'])} | **{bg:.3f}×** | {ms(p['gamma_gamma']['seconds'])} | "
        f"{ms(q['gamma_gamma']['seconds'])} | **{gg:.3f}×** |"
    )
lines += [
    "",
    "Target: ≤ 0.05× lifetimes' time for the BG/NBD fit. Agreement in the same runs "
    "(lifetimes' log-likelihood is recomputed by the script in the data's time unit):",
    "",
    "| data | lifetimes r, α, a, b | retain r, α, a, b | log-likelihood lifetimes / retain | retain: evaluations, distinct rows | retain `predict` (fits + P(alive), 90-day purchases, 12-month CLV for all) |",
    "|---|---|---|---|---|---|",
]
for r in rows:
    p, q = r["python"], r["rust"]
    keys = ["r", "alpha", "a", "b"]
    lines.append(
        f"| {r['case']} | {fmt_params(p['bgnbd'], keys)} | {fmt_params(q['bgnbd'], keys)} | "
        f"{p['bgnbd']['log_likelihood']:.4f} / {q['bgnbd']['log_likelihood']:.4f} | "
        f"{q['bgnbd']['evaluations']}, {q['bgnbd']['distinct_rows']:,} | {ms(q['predict']['seconds'])} |"
    )
lines.append("<!-- clv:end -->")
table = "\n".join(lines)
print(table)
doc = "docs/BENCHMARKS.md"
try:
    s = open(doc).read()
except FileNotFoundError:
    s = "# Benchmarks\n"
if "<!-- clv:begin -->" in s:
    s = re.sub(r"<!-- clv:begin -->.*?<!-- clv:end -->", lambda m: table, s, flags=re.S)
else:
    s = s.rstrip("\n") + "\n\n## CLV models\n\n" + table + "\n"
open(doc, "w").write(s)
PY
