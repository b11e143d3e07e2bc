#!/usr/bin/env bash
# Recommendation benchmark: the seeded shop (default 10M order lines, 1M customers, 50,000
# products) written once as CSV, then retain's model (build, top-10 for every customer, peak
# memory) and the scipy sparse co-occurrence baseline on the same lines, in the same run. Each
# process runs under /usr/bin/time (wall, user, system, peak RSS); the load average is printed
# before each, since other processes on the machine inflate the wall times.
# env: LINES, CUSTOMERS, PRODUCTS (sizes), BENCH_DIR (where the CSV goes; default bench-data),
#      BASELINE_TIMEOUT (seconds, default 1800).
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/baselines/venv.sh
LINES="${LINES:-10000000}"
CUSTOMERS="${CUSTOMERS:-1000000}"
PRODUCTS="${PRODUCTS:-50000}"
DIR="${BENCH_DIR:-bench-data}"
mkdir -p "$DIR"
CSV="$DIR/lines-$LINES.csv"
cargo build --release -p retain-recommend --example recommend_bench
BIN="${CARGO_TARGET_DIR:-target}/release/examples/recommend_bench"
SIZE=(--lines "$LINES" --customers "$CUSTOMERS" --products "$PRODUCTS")
[ -f "$CSV" ] || "$BIN" "${SIZE[@]}" --csv "$CSV" --csv-only
TIME=(/usr/bin/time -f '%e s wall %U user %S sys %M KiB')
echo "== retain-recommend (load: $(cut -d' ' -f1-3 /proc/loadavg))"
"${TIME[@]}" "$BIN" "${SIZE[@]}"
echo "== scipy (load: $(cut -d' ' -f1-3 /proc/loadavg))"
"${TIME[@]}" timeout "${BASELINE_TIMEOUT:-1800}" "$PY" "$BASELINES/recommend_scipy.py" "$CSV" \
  || echo "{\"scipy\": \"did not finish (exit $?)\"}"
